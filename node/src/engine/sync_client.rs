//! The client side of catch-up: status requests to a few peers in turn,
//! block ranges from the best peer (the next one requested before the
//! current one is applied), and the answers: a range is taken only as the
//! answer to the request in flight, shape-checked, its signatures checked
//! across all cores (`sync::check_range`), then applied through the driver
//! (`sync::apply_range`) and stored in flushed groups.

use super::{now_ms, sync, Engine};
use anyhow::Context as _;
use bizra_p2p::PeerId;
use bizra_proto::{sync_request::Req, sync_response::Resp, StatusRequest, SyncRequest, SyncResponse};
use std::time::Instant;
use tracing::{debug, info, warn};

/// Peers asked for their status per round (see [`Engine::ask_status`]).
const STATUS_FANOUT: usize = 4;

impl Engine {
    pub(super) async fn request(&mut self, peer: PeerId, req: Req) -> Option<u64> {
        match self.p2p.request(peer, SyncRequest { req: Some(req) }).await {
            Ok(id) => Some(id),
            Err(e) => {
                debug!(%peer, "sync request: {e}");
                None
            }
        }
    }

    /// Asks [`STATUS_FANOUT`] peers for their status, taking the connected
    /// peers in turn: O(1) requests per node per round, not O(N) (at 100
    /// validators in a full mesh, asking everyone was 5,000 requests a
    /// second across the network). A node that hears votes from a higher
    /// height asks again at once (`SyncNeeded`), and every peer is asked
    /// when it connects.
    pub(super) async fn ask_status(&mut self) {
        self.last_status_ask = Instant::now();
        let mut peers = self.p2p.peers();
        peers.sort();
        let n = peers.len();
        let take = n.min(STATUS_FANOUT);
        for i in 0..take {
            let peer = peers[(self.status_cursor + i) % n];
            self.request(peer, Req::Status(StatusRequest {})).await;
        }
        self.status_cursor = if n == 0 { 0 } else { (self.status_cursor + take) % n };
        self.maybe_fetch_blocks().await;
    }

    async fn maybe_fetch_blocks(&mut self) {
        let ours = self.shared.status().finalized_height;
        if let Some(peer) = self.sync.expired() {
            if let Some(suppressed) = self.logs.allow("sync_unanswered", Instant::now()) {
                warn!(%peer, suppressed, "sync request unanswered: dropping the peer's claimed height");
            }
            self.p2p.penalize(peer, "sync request unanswered");
            self.sync.failed(&peer, ours);
        }
        if let Some(peer) = self.sync.next_request(ours) {
            self.request_blocks(peer, ours + 1).await;
        }
    }

    async fn request_blocks(&mut self, peer: PeerId, from: u64) {
        let req = bizra_proto::BlockRangeRequest {
            from_height: from,
            max_blocks: sync::BATCH,
        };
        if let Some(id) = self.request(peer, Req::Blocks(req)).await {
            self.sync.inflight = Some(sync::Inflight {
                peer,
                id,
                at: Instant::now(),
                from,
                max: sync::BATCH,
            });
        }
    }

    /// Applies a synced range: the certificates' signatures first, across
    /// all cores on a blocking thread, then the blocks in order through the
    /// driver. The first bad block stops the range and its sender is
    /// penalized; the blocks before it are kept.
    async fn apply_synced_range(
        &mut self,
        peer: PeerId,
        blocks: Vec<bizra_proto::FinalizedBlock>,
    ) -> anyhow::Result<u64> {
        let genesis = self.shared.genesis.clone();
        let from = self.driver.height();
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let (checked, bad_sig) =
            tokio::task::spawn_blocking(move || sync::check_range(&genesis, blocks, from, threads))
                .await
                .context("sync signature checks")?;
        let (fx, applied, refused) = sync::apply_range(&mut self.driver, now_ms(), checked);
        self.execute(fx).await?;
        self.store_synced_batch()?;
        if let Some(e) = refused.or(bad_sig) {
            if let Some(suppressed) = self.logs.allow("invalid_synced_block", Instant::now()) {
                warn!(%peer, height = e.height, suppressed, "invalid synced block: {}", e.reason);
            }
            self.p2p.penalize(peer, "invalid synced block");
            let ours = self.shared.status().finalized_height;
            self.sync.failed(&peer, ours);
        }
        Ok(applied)
    }

    pub(super) async fn on_sync_response(
        &mut self,
        peer: PeerId,
        request_id: u64,
        response: SyncResponse,
    ) -> anyhow::Result<()> {
        match response.resp {
            Some(Resp::Status(s)) => {
                if self.sync.take_inflight(&peer, request_id).is_some() {
                    self.p2p.penalize(peer, "status answer to a block request");
                    let ours = self.shared.status().finalized_height;
                    self.sync.failed(&peer, ours);
                    return Ok(());
                }
                if sync::is_foreign_status(&self.shared.genesis, &s) {
                    if let Some(suppressed) = self.logs.allow("foreign_chain", Instant::now()) {
                        warn!(%peer, chain = %s.chain_id, suppressed, "peer is on another chain or genesis");
                    }
                    self.p2p.penalize(peer, "foreign chain status");
                    return Ok(());
                }
                self.sync.note_status(peer, &s);
                self.maybe_fetch_blocks().await;
            }
            Some(Resp::Blocks(range)) => {
                // Only the answer to our one block request counts, and its
                // shape is checked before any signature (issue 14, D6).
                let Some(asked) = self.sync.take_inflight(&peer, request_id) else {
                    debug!(%peer, request_id, "block range that was not asked for");
                    self.p2p.penalize(peer, "unsolicited block range");
                    return Ok(());
                };
                if let Err(e) = sync::check_shape(&range.blocks, asked.from, asked.max) {
                    if let Some(suppressed) = self.logs.allow("bad_block_range", Instant::now()) {
                        warn!(%peer, height = e.height, suppressed, "bad block range: {}", e.reason);
                    }
                    self.p2p.penalize(peer, "bad block range");
                    let ours = self.shared.status().finalized_height;
                    self.sync.failed(&peer, ours);
                    self.maybe_fetch_blocks().await;
                    return Ok(());
                }
                // Pipeline: ask this peer for the next range before applying
                // this one, so that it reads from its store while we verify.
                let last = range
                    .blocks
                    .last()
                    .and_then(|fb| fb.block.as_ref())
                    .and_then(|b| b.header.as_ref())
                    .map(|h| h.height);
                if let Some(last) = last {
                    let ahead = self.sync.peer_heights.get(&peer).is_some_and(|h| *h > last);
                    if ahead && self.sync.inflight.is_none() && last >= self.driver.height() {
                        self.request_blocks(peer, last + 1).await;
                    }
                }
                self.applying_synced = true;
                let result = self.apply_synced_range(peer, range.blocks).await;
                self.applying_synced = false;
                let applied = *result.as_ref().unwrap_or(&0);
                self.sync.unflushed += applied;
                // Synced blocks are made durable in groups: every
                // SYNC_FLUSH_BLOCKS blocks or SYNC_FLUSH_EVERY, and as soon as
                // we have caught up or the range failed. Losing an unflushed
                // tail in a crash costs only a re-fetch (the anchor is raised
                // only by a flush), and our own votes flush everything first.
                let caught_up = self.shared.status().finalized_height >= self.sync.best_height();
                if result.is_err()
                    || caught_up
                    || self.sync.unflushed >= sync::SYNC_FLUSH_BLOCKS
                    || self.sync.last_flush.elapsed() >= sync::SYNC_FLUSH_EVERY
                {
                    self.store.flush().context("flushing synced blocks")?;
                    self.sync.unflushed = 0;
                    self.sync.last_flush = Instant::now();
                }
                result?;
                if applied > 0 {
                    self.metrics().sync_blocks.inc_by(applied);
                    self.sync.blocks_applied += applied;
                    info!(%peer, applied, height = self.shared.status().finalized_height, "synced blocks");
                }
                self.maybe_fetch_blocks().await;
            }
            Some(Resp::Error(e)) => {
                debug!(%peer, "sync error response: {e}");
                if self.sync.take_inflight(&peer, request_id).is_some() {
                    // Busy or broken, it did not serve the height it
                    // claimed: fetch elsewhere until it reports again.
                    let ours = self.shared.status().finalized_height;
                    self.sync.failed(&peer, ours);
                }
            }
            None => self.p2p.penalize(peer, "empty sync response"),
        }
        Ok(())
    }
}
