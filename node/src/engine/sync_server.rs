//! The server side of `/bizra/sync/1`: peers' status and block-range
//! requests, answered from the published status and the store ([`serve`], a
//! pure function that the `sync_request` fuzz target calls too), on a task of
//! their own ([`sync_server`]) within per-peer budgets
//! (`serve_limit.rs`), so they never wait behind gossip in the driver's queue.

use super::serve_limit;
use super::sync;
use crate::state::Shared;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::types::Hash;
use bizra_p2p::{P2pEvent, P2pHandle};
use bizra_proto::{
    sync_request::Req, sync_response::Resp, BlockRange, ChainStatus, FinalizedBlock, SyncRequest, SyncResponse,
};
use bizra_storage::Store;
use prost::Message;
use std::sync::Arc;
use std::time::Instant;
use tracing::debug;

/// Inbound sync requests waiting for [`sync_server`]; more are answered
/// "busy" by the p2p service.
pub const SYNC_SERVER_QUEUE: usize = 256;

/// Answers a `/bizra/sync/1` request: a status request with our chain and
/// finalized head (`finalized_height`, `finalized_hash`), a block range
/// from the store (at most [`sync::BATCH`] blocks from `from_height`, 0 read
/// as 1, and at most 3/4 of `max_message_bytes` of them, the first block
/// always). No driver state, so it runs apart from the engine.
pub fn serve(
    genesis: &Genesis,
    finalized_height: u64,
    finalized_hash: Hash,
    store: &dyn Store,
    max_message_bytes: usize,
    req: &SyncRequest,
) -> SyncResponse {
    let resp = match &req.req {
        Some(Req::Status(_)) => Resp::Status(ChainStatus {
            chain_id: genesis.chain_id().to_string(),
            genesis_hash: genesis.hash.to_vec(),
            height: finalized_height,
            head_hash: finalized_hash.to_vec(),
        }),
        Some(Req::Blocks(r)) => {
            let max = r.max_blocks.clamp(1, sync::BATCH) as usize;
            match store.blocks_range(r.from_height.max(1), max, max_message_bytes / 4 * 3) {
                Ok(blocks) => Resp::Blocks(BlockRange {
                    blocks: blocks
                        .into_iter()
                        .map(|(b, c)| FinalizedBlock {
                            block: Some(b),
                            commit: Some(c),
                        })
                        .collect(),
                }),
                Err(e) => Resp::Error(format!("store: {e}")),
            }
        }
        None => Resp::Error("empty request".into()),
    };
    SyncResponse { resp: Some(resp) }
}

/// [`serve`] with the status the engine publishes in `shared`.
pub fn serve_shared(shared: &Shared, store: &dyn Store, max_message_bytes: usize, req: &SyncRequest) -> SyncResponse {
    let s = shared.status();
    serve(
        &shared.genesis,
        s.finalized_height,
        s.finalized_hash,
        store,
        max_message_bytes,
        req,
    )
}

/// Serves sync requests on their own task, so that a node busy validating
/// gossip still answers status and block-range requests at once. Blocks
/// are read from the store on a blocking thread.
pub async fn sync_server(
    mut rx: tokio::sync::mpsc::Receiver<P2pEvent>,
    p2p: P2pHandle,
    shared: Arc<Shared>,
    store: Arc<dyn Store>,
    max_message_bytes: usize,
) {
    let mut limits = serve_limit::ServeLimiter::default();
    while let Some(ev) = rx.recv().await {
        let P2pEvent::SyncRequest { peer, request, channel } = ev else {
            continue;
        };
        if !limits.admit(peer, Instant::now()) {
            debug!(%peer, "sync request rate limited");
            p2p.respond(
                channel,
                SyncResponse {
                    resp: Some(Resp::Error("rate limited".into())),
                },
            );
            continue;
        }
        let resp = if matches!(request.req, Some(Req::Blocks(_))) {
            let (shared, store) = (shared.clone(), store.clone());
            tokio::task::spawn_blocking(move || serve_shared(&shared, store.as_ref(), max_message_bytes, &request))
                .await
                .unwrap_or_else(|e| SyncResponse {
                    resp: Some(Resp::Error(format!("internal: {e}"))),
                })
        } else {
            serve_shared(&shared, store.as_ref(), max_message_bytes, &request)
        };
        limits.charge(peer, resp.encoded_len());
        debug!(%peer, "served sync request");
        p2p.respond(channel, resp);
    }
}
