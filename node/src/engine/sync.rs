//! Catch-up sync over the request-response protocol.
//!
//! Every few seconds (and when a peer connects, or the driver sees messages
//! from a higher height) the node asks peers for their [`ChainStatus`]. While
//! any peer reports a finalized height above ours the node is *catching up*:
//! it fetches batched block ranges with their commit certificates from that
//! peer, one request at a time, and feeds them to the driver, which verifies
//! each certificate against the epoch's weights before applying the block.
//!
//! CometBFT's known failure is a lagging node that reports itself caught up;
//! here `catching_up` is true until some peer has reported its status, and
//! then while any peer ever reported a height above ours (see
//! [`SyncState::catching_up`]).

use bizra_consensus::certificate::{self, CheckedCertificate};
use bizra_consensus::driver::{Driver, Effect, Input};
use bizra_consensus::genesis::Genesis;
use bizra_p2p::PeerId;
use bizra_proto::{Block, ChainStatus, FinalizedBlock};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Blocks asked for per request.
pub const BATCH: u32 = 128;
/// How far above the best height peers report a consensus message may be
/// and still say we are behind ([`SyncState::catching_up`]).
pub const SEEN_HINT_SLACK: u64 = 16;
/// A request without an answer after this long is abandoned.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Synced blocks are flushed at least this often (in blocks) ...
pub const SYNC_FLUSH_BLOCKS: u64 = 2048;
/// ... and in time, while catching up; and at once when caught up.
pub const SYNC_FLUSH_EVERY: Duration = Duration::from_millis(500);

/// The one outstanding block-range request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inflight {
    /// The peer asked.
    pub peer: PeerId,
    /// The p2p service's id of the request; the answer must carry it.
    pub id: u64,
    /// When it was sent; [`REQUEST_TIMEOUT`] counts from here.
    pub at: Instant,
    /// What was asked: blocks `from ..` , at most `max` of them.
    pub from: u64,
    /// Most blocks asked for ([`BATCH`]).
    pub max: u32,
}

/// The engine's catch-up state: the heights peers claim, the one block
/// request in flight, and the flush accounting of synced blocks.
pub struct SyncState {
    /// Latest finalized height each peer reported.
    pub peer_heights: HashMap<PeerId, u64>,
    /// The one outstanding block request.
    pub inflight: Option<Inflight>,
    /// Blocks applied through sync since start (what
    /// `bizra_sync_blocks_total` counts).
    pub blocks_applied: u64,
    /// Highest finalized height any peer reported (a disconnect does not
    /// lower it, so a lagging node cannot look caught up; a peer that fails
    /// to serve the height it claimed does, see [`SyncState::failed`]).
    /// Never below any claim in `peer_heights`, so it is also their maximum
    /// when one is needed on every event.
    pub best_seen: u64,
    /// Whether any peer has reported its status yet.
    pub heard: bool,
    /// Synced blocks stored since the last flush.
    pub unflushed: u64,
    /// When synced blocks were last flushed ([`SYNC_FLUSH_EVERY`]).
    pub last_flush: Instant,
}

impl Default for SyncState {
    fn default() -> Self {
        SyncState {
            peer_heights: HashMap::new(),
            inflight: None,
            blocks_applied: 0,
            best_seen: 0,
            heard: false,
            unflushed: 0,
            last_flush: Instant::now(),
        }
    }
}

impl SyncState {
    /// The peer with the highest claimed finalized height, and that height
    /// (a tie goes to the greater peer id bytes, so the choice is stable).
    pub fn best_peer(&self) -> Option<(PeerId, u64)> {
        self.peer_heights
            .iter()
            .max_by_key(|(p, h)| (**h, p.to_bytes()))
            .map(|(p, h)| (*p, *h))
    }

    /// The highest height a peer currently claims; 0 if none does.
    pub fn best_height(&self) -> u64 {
        self.best_peer().map(|(_, h)| h).unwrap_or(0)
    }

    /// Records a peer's status answer: its finalized height becomes its
    /// claim (replacing an earlier one), may raise `best_seen`, and sets
    /// `heard`. The caller checks the chain first ([`is_foreign_status`]).
    pub fn note_status(&mut self, peer: PeerId, s: &ChainStatus) {
        self.peer_heights.insert(peer, s.height);
        self.best_seen = self.best_seen.max(s.height);
        self.heard = true;
    }

    /// Whether a node at finalized height `ours` is catching up. Until some
    /// peer has reported, the answer is yes: a node that cannot tell must not
    /// claim to be caught up (CometBFT's known failure). `seen` is the highest
    /// height seen in consensus messages: more than 2 above ours means we are
    /// behind, but only within [`SEEN_HINT_SLACK`] of what peers report
    /// (statuses lag by a round of heartbeats). Without that bound one signed
    /// vote for a far height (any validator can sign one) pinned
    /// `catching_up` for good, as the driver never forgets the highest
    /// height it saw.
    pub fn catching_up(&self, ours: u64, seen: u64, solo: bool) -> bool {
        if solo {
            return false;
        }
        let corroborated = self.best_seen.max(ours).saturating_add(SEEN_HINT_SLACK);
        !self.heard || self.best_seen > ours || (seen > ours.saturating_add(2) && seen <= corroborated)
    }

    /// Drops a peer's claim and its in-flight request, if any (a
    /// disconnect). `best_seen` is not lowered.
    pub fn forget(&mut self, peer: &PeerId) {
        self.peer_heights.remove(peer);
        if self.inflight.as_ref().is_some_and(|f| f.peer == *peer) {
            self.inflight = None;
        }
    }

    /// `peer` did not serve the height it claimed (an empty, wrong, late or
    /// failed answer): its claim is dropped and no longer counts towards
    /// `best_seen`, so one lie (say, height u64::MAX) cannot make it the only
    /// sync source forever, nor pin `catching_up` to true. It is asked again
    /// only after it reports a status again (and the caller penalizes it).
    pub fn failed(&mut self, peer: &PeerId, ours: u64) {
        self.forget(peer);
        self.best_seen = self.peer_heights.values().copied().max().unwrap_or(0).max(ours);
    }

    /// Takes the in-flight request if `id` from `peer` answers it.
    pub fn take_inflight(&mut self, peer: &PeerId, id: u64) -> Option<Inflight> {
        match self.inflight {
            Some(f) if f.id == id && f.peer == *peer => self.inflight.take(),
            _ => None,
        }
    }

    /// The peer of a request unanswered for [`REQUEST_TIMEOUT`], which is
    /// then abandoned (the caller treats it as [`SyncState::failed`]).
    pub fn expired(&mut self) -> Option<PeerId> {
        let f = self.inflight?;
        if f.at.elapsed() < REQUEST_TIMEOUT {
            return None;
        }
        self.inflight = None;
        Some(f.peer)
    }

    /// A peer to fetch from, if we are behind and no request is in flight.
    pub fn next_request(&mut self, our_height: u64) -> Option<PeerId> {
        if self.inflight.is_some() {
            return None;
        }
        match self.best_peer() {
            Some((p, h)) if h > our_height => Some(p),
            _ => None,
        }
    }
}

/// Whether a peer's status is of another chain or genesis: the peer is
/// penalized and its status ignored.
pub fn is_foreign_status(genesis: &Genesis, s: &ChainStatus) -> bool {
    s.chain_id != genesis.chain_id() || s.genesis_hash != genesis.hash
}

/// The checks of a block-range answer that cost no signature, run before
/// [`check_range`]: at most `max` blocks, the first at `from`, heights
/// consecutive, each with a header and a commit for that height and
/// block, each block's parent the block before it. An empty answer is an
/// error too: the peer claimed a height above `from`.
pub fn check_shape(blocks: &[FinalizedBlock], from: u64, max: u32) -> Result<(), RangeError> {
    let err = |height, reason: &str| {
        Err(RangeError {
            height,
            reason: reason.to_string(),
        })
    };
    if blocks.is_empty() {
        return err(from, "empty range for a claimed height");
    }
    if blocks.len() > max as usize {
        return err(from, &format!("{} blocks, {max} asked", blocks.len()));
    }
    let mut prev: Option<(u64, bizra_consensus::types::Hash)> = None;
    for fb in blocks {
        let (Some(b), Some(c)) = (&fb.block, &fb.commit) else {
            return err(prev.map_or(from, |p| p.0 + 1), "block without header or commit");
        };
        let Some(h) = b.header.as_ref() else {
            return err(prev.map_or(from, |p| p.0 + 1), "block without header");
        };
        match prev {
            None if h.height != from => return err(h.height, "range does not start where asked"),
            Some((ph, phash)) if h.height != ph + 1 || h.parent_hash.as_slice() != phash.as_slice() => {
                return err(h.height, "range is not a chain")
            }
            _ => {}
        }
        let Some(hash) = bizra_consensus::messages::block_hash(b) else {
            return err(h.height, "block without header");
        };
        if c.height != h.height || c.block_hash.as_slice() != hash.as_slice() {
            return err(h.height, "commit is for another block");
        }
        prev = Some((h.height, hash));
    }
    Ok(())
}

/// A synced block whose certificate's signatures passed the one rule.
pub type CheckedBlock = (Block, CheckedCertificate);

/// Why a synced range stopped early: the height of the first bad block and
/// what is wrong with it. The peer that sent it is penalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError {
    /// Height of the first bad block (`from` for an empty range; 0 for a
    /// missing block or header in [`check_range`]).
    pub height: u64,
    /// What is wrong with it, for the log.
    pub reason: String,
}

fn block_height(b: &Block) -> u64 {
    b.header.as_ref().map(|h| h.height).unwrap_or(0)
}

/// The context-free half of checking a synced range, spread over `threads`
/// threads: each block must come with a commit whose precommits pass the
/// one signature rule. Blocks below `from_height` (already final here) are
/// dropped unchecked. Returns the checked blocks in order up to the first
/// bad one, and the error for that one.
///
/// This is where sync spends its CPU (one or more Ed25519 checks per block);
/// the contextual checks (parent, epoch weights, quorum) follow in
/// [`apply_range`], in order, on the driver.
pub fn check_range(
    genesis: &Genesis,
    blocks: Vec<FinalizedBlock>,
    from_height: u64,
    threads: usize,
) -> (Vec<CheckedBlock>, Option<RangeError>) {
    let blocks: Vec<FinalizedBlock> = blocks
        .into_iter()
        .filter(|fb| fb.block.as_ref().is_none_or(|b| block_height(b) >= from_height))
        .collect();
    let check = |fb: FinalizedBlock| -> Result<CheckedBlock, RangeError> {
        let height = fb.block.as_ref().map(block_height).unwrap_or(0);
        let (Some(block), Some(commit)) = (fb.block, fb.commit) else {
            return Err(RangeError {
                height,
                reason: "sync block without commit".into(),
            });
        };
        let commit =
            certificate::check_signatures(genesis.chain_id(), &genesis.members, commit).map_err(|e| RangeError {
                height,
                reason: format!("commit: {e}"),
            })?;
        Ok((block, commit))
    };
    let threads = threads.clamp(1, 16);
    let results: Vec<Result<CheckedBlock, RangeError>> = if threads == 1 || blocks.len() < 8 {
        blocks.into_iter().map(check).collect()
    } else {
        let chunk = blocks.len().div_ceil(threads);
        let mut chunks: Vec<Vec<FinalizedBlock>> = Vec::new();
        let mut it = blocks.into_iter().peekable();
        while it.peek().is_some() {
            chunks.push(it.by_ref().take(chunk).collect());
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|c| s.spawn(move || c.into_iter().map(check).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("signature checks do not panic"))
                .collect()
        })
    };
    let mut ok = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(b) => ok.push(b),
            Err(e) => return (ok, Some(e)),
        }
    }
    (ok, None)
}

/// Feeds checked blocks to the driver in order, until the first one it
/// refuses. Returns the effects to execute (in order), how many blocks were
/// decided, and the refusal. A range that starts above the driver's next
/// height (a pipelined answer after an earlier range failed) is dropped
/// without blame.
pub fn apply_range(
    driver: &mut Driver,
    now_ms: u64,
    blocks: Vec<CheckedBlock>,
) -> (Vec<Effect>, u64, Option<RangeError>) {
    let mut effects = Vec::new();
    let mut applied = 0;
    if blocks.first().is_some_and(|(b, _)| block_height(b) > driver.height()) {
        return (effects, 0, None);
    }
    for (block, commit) in blocks {
        let height = block_height(&block);
        if height < driver.height() {
            continue;
        }
        match driver.handle(now_ms, Input::SyncedBlock { block, commit }) {
            Ok(fx) => {
                applied += 1;
                effects.extend(fx);
            }
            Err(e) => {
                return (
                    effects,
                    applied,
                    Some(RangeError {
                        height,
                        reason: e.to_string(),
                    }),
                )
            }
        }
    }
    (effects, applied, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_world::{world, NOW_MS};
    use bizra_consensus::chain::ChainState;
    use bizra_consensus::types::hash_bytes;
    use prost::Message;

    fn range() -> Vec<FinalizedBlock> {
        world()
            .blocks
            .iter()
            .map(|(b, _, c)| FinalizedBlock {
                block: Some(b.clone()),
                commit: Some(c.clone()),
            })
            .collect()
    }

    fn driver_at_genesis() -> Driver {
        world().genesis_driver()
    }

    fn decided(fx: &[Effect]) -> Vec<u64> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Decided { state, .. } => Some(state.height),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_checked_range_applies_in_order_on_any_number_of_threads() {
        let w = world();
        for threads in [1, 2, 3] {
            let (checked, bad) = check_range(&w.genesis, range(), 1, threads);
            assert_eq!((checked.len(), bad), (w.blocks.len(), None));
            let mut d = driver_at_genesis();
            let (fx, applied, refused) = apply_range(&mut d, NOW_MS, checked);
            assert_eq!((applied, refused), (w.blocks.len() as u64, None));
            assert_eq!(decided(&fx), vec![1, 2, 3]);
            assert_eq!(d.height(), 4);
        }
        // Blocks already final are dropped before their signatures are checked.
        let (checked, _) = check_range(&w.genesis, range(), 3, 2);
        assert_eq!(checked.len(), 1);
    }

    #[test]
    fn only_a_parent_certificate_equal_to_the_verified_one_skips_verification() {
        let w = world();
        let (b1, h1, c1) = &w.blocks[0];
        let mut state = ChainState::genesis(&w.genesis);
        state.apply(&w.genesis, b1, *h1);
        // Block 2 with its last commit's signature forged, and the header
        // re-bound to the forged bytes (so only the signature is wrong).
        let mut forged = w.blocks[1].0.clone();
        let mut lc = forged.last_commit.clone().expect("block 2 carries block 1's commit");
        assert_eq!(&lc, c1);
        lc.precommits[0].signature[0] ^= 1;
        forged.header.as_mut().unwrap().last_commit_hash = hash_bytes(&lc.encode_to_vec()).to_vec();
        forged.last_commit = Some(lc.clone());
        assert!(
            state.validate_block(&w.genesis, &forged).is_err(),
            "the forged signature is found"
        );
        assert!(
            state.validate_block_trusting(&w.genesis, &forged, Some(c1)).is_err(),
            "a trusted certificate that differs from the embedded one is no shortcut"
        );
        // Trusting exactly these bytes skips the check: the caller vouches.
        assert!(state.validate_block_trusting(&w.genesis, &forged, Some(&lc)).is_ok());
        // And the real block 2 validates either way.
        let b2 = &w.blocks[1].0;
        assert_eq!(state.validate_block(&w.genesis, b2).ok(), Some(w.blocks[1].1));
        assert_eq!(
            state.validate_block_trusting(&w.genesis, b2, Some(c1)).ok(),
            Some(w.blocks[1].1)
        );
    }

    #[test]
    fn a_bad_signature_stops_the_range_and_keeps_the_blocks_before_it() {
        let w = world();
        let mut blocks = range();
        let c = blocks[1].commit.as_mut().unwrap();
        c.precommits[0].signature[0] ^= 1;
        let (checked, bad) = check_range(&w.genesis, blocks.clone(), 1, 2);
        assert_eq!(checked.len(), 1, "block 1 is kept");
        let bad = bad.expect("block 2's forged precommit is found");
        assert_eq!(bad.height, 2);
        assert!(bad.reason.contains("precommit #0"), "{}", bad.reason);
        // A block without its commit is refused the same way.
        blocks[1].commit = None;
        let (checked, bad) = check_range(&w.genesis, blocks, 1, 1);
        assert_eq!((checked.len(), bad.map(|e| e.height)), (1, Some(2)));
    }

    #[test]
    fn the_driver_refuses_what_does_not_follow_and_a_range_from_above_is_dropped_without_blame() {
        let w = world();
        let (checked, _) = check_range(&w.genesis, range(), 1, 1);
        // Block 1 missing: the range starts above the driver's next height
        // (a pipelined answer after an earlier failure): no effects, no blame.
        let mut d = driver_at_genesis();
        let (fx, applied, refused) = apply_range(&mut d, NOW_MS, checked[1..].to_vec());
        assert!(fx.is_empty());
        assert_eq!((applied, refused), (0, None));
        // Blocks 1 and 3: 3 does not follow 1.
        let (fx, applied, refused) = apply_range(&mut d, NOW_MS, vec![checked[0].clone(), checked[2].clone()]);
        assert_eq!(decided(&fx), vec![1]);
        assert_eq!(applied, 1);
        assert_eq!(refused.map(|e| e.height), Some(3));
    }

    fn status(h: u64) -> ChainStatus {
        ChainStatus {
            height: h,
            ..Default::default()
        }
    }

    #[test]
    fn a_node_that_has_not_heard_from_peers_is_not_caught_up() {
        let mut s = SyncState::default();
        assert!(s.catching_up(0, 0, false), "no peer status yet");
        assert!(!s.catching_up(0, 0, true), "a single validator has no one to wait for");
        let p = PeerId::random();
        s.note_status(p, &status(203));
        assert!(s.catching_up(10, 0, false));
        assert!(!s.catching_up(203, 0, false));
        // A disconnect does not make a lagging node look caught up.
        s.forget(&p);
        assert!(s.catching_up(10, 0, false));
        assert_eq!(s.next_request(10), None, "no connected peer to fetch from");
        // Messages two heights ahead mean we are behind too ...
        assert!(s.catching_up(203, 206, false));
        assert!(!s.catching_up(203, 204, false));
        // ... unless far beyond what any peer reports: one signed vote for a
        // far height does not pin catching_up (the driver keeps max seen).
        assert!(s.catching_up(203, 203 + SEEN_HINT_SLACK, false));
        assert!(!s.catching_up(203, 203 + SEEN_HINT_SLACK + 1, false));
        assert!(!s.catching_up(203, u64::MAX, false));
        assert!(!s.catching_up(u64::MAX - 1, u64::MAX, false));
    }

    /// D5: a peer claiming height u64::MAX is the best peer only until it
    /// fails to serve; then its claim is dropped, `best_seen` comes down to
    /// what honest peers claim, and another peer is asked.
    #[test]
    fn a_peer_that_lies_about_its_height_loses_its_claim_when_it_fails_to_serve() {
        let mut s = SyncState::default();
        let (liar, honest) = (PeerId::random(), PeerId::random());
        s.note_status(liar, &status(u64::MAX));
        s.note_status(honest, &status(50));
        assert_eq!(s.next_request(10), Some(liar));
        s.inflight = Some(Inflight {
            peer: liar,
            id: 7,
            at: Instant::now() - REQUEST_TIMEOUT,
            from: 11,
            max: BATCH,
        });
        assert_eq!(s.next_request(10), None, "one request at a time");
        assert_eq!(s.expired(), Some(liar));
        s.failed(&liar, 10);
        assert_eq!(s.best_seen, 50);
        assert_eq!(s.next_request(10), Some(honest));
        assert!(s.catching_up(10, 0, false));
        s.note_status(honest, &status(60));
        s.failed(&honest, 60);
        assert!(!s.catching_up(60, 0, false), "no lie pins catching_up");
    }

    /// `best_seen` bounds every claim, through reports, disconnects and
    /// failures: the engine reads it instead of scanning the claims.
    #[test]
    fn best_seen_is_never_below_a_claim() {
        let mut s = SyncState::default();
        let peers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        for (i, p) in peers.iter().enumerate() {
            s.note_status(*p, &status(10 * (i as u64 + 1)));
            assert!(s.best_seen >= s.best_height());
        }
        s.note_status(peers[5], &status(5)); // a claim may go down
        assert!(s.best_seen >= s.best_height());
        s.forget(&peers[4]);
        assert!(s.best_seen >= s.best_height());
        s.failed(&peers[3], 1);
        assert_eq!(s.best_seen, s.best_height(), "failure recomputes the max");
        assert_eq!(s.best_seen, 30);
    }

    /// D6: only the answer to the request in flight, from its peer, counts.
    #[test]
    fn only_the_request_in_flight_is_answered() {
        let mut s = SyncState::default();
        let (p, q) = (PeerId::random(), PeerId::random());
        s.inflight = Some(Inflight {
            peer: p,
            id: 3,
            at: Instant::now(),
            from: 1,
            max: BATCH,
        });
        assert_eq!(s.take_inflight(&q, 3), None, "another peer");
        assert_eq!(s.take_inflight(&p, 4), None, "another request");
        assert_eq!(s.take_inflight(&p, 3).map(|f| f.from), Some(1));
        assert_eq!(s.take_inflight(&p, 3), None, "answered once");
    }

    /// D6: count, start, continuity, parents and commits are checked before
    /// any signature.
    #[test]
    fn a_range_of_the_wrong_shape_is_refused_before_its_signatures() {
        let good = range();
        assert_eq!(check_shape(&good, 1, BATCH), Ok(()));
        let fail = |blocks: &[FinalizedBlock], from, max| check_shape(blocks, from, max).unwrap_err().reason;
        assert!(fail(&[], 1, BATCH).contains("empty"));
        assert!(fail(&good, 1, 2).contains("asked"));
        assert!(fail(&good, 2, BATCH).contains("start"));
        assert!(fail(&good[1..], 1, BATCH).contains("start"));
        let gap = vec![good[0].clone(), good[2].clone()];
        assert!(fail(&gap, 1, BATCH).contains("chain"));
        let mut swapped = good.clone();
        swapped[1].commit = good[2].commit.clone();
        assert!(fail(&swapped, 1, BATCH).contains("commit"));
        let mut orphan = good.clone();
        orphan[2].block.as_mut().unwrap().header.as_mut().unwrap().parent_hash = vec![0; 32];
        assert!(fail(&orphan, 1, BATCH).contains("commit") || fail(&orphan, 1, BATCH).contains("chain"));
        let mut bare = good.clone();
        bare[0].commit = None;
        assert!(fail(&bare, 1, BATCH).contains("commit"));
        // A forged signature passes the shape check: that is check_range's job.
        let mut forged = good.clone();
        forged[1].commit.as_mut().unwrap().precommits[0].signature[0] ^= 1;
        assert_eq!(check_shape(&forged, 1, BATCH), Ok(()));
    }
}
