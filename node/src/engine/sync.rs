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

use bizra_p2p::PeerId;
use bizra_proto::ChainStatus;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Blocks asked for per request.
pub const BATCH: u32 = 128;
/// A request without an answer after this long is abandoned.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct SyncState {
    /// Latest finalized height each peer reported.
    pub peer_heights: HashMap<PeerId, u64>,
    /// The one outstanding block request: (peer, request id, sent at).
    pub inflight: Option<(PeerId, u64, Instant)>,
    pub blocks_applied: u64,
    /// Highest finalized height any peer ever reported (never decreases, so a
    /// disconnect cannot make a lagging node look caught up).
    pub best_seen: u64,
    /// Whether any peer has reported its status yet.
    pub heard: bool,
}

impl SyncState {
    pub fn best_peer(&self) -> Option<(PeerId, u64)> {
        self.peer_heights
            .iter()
            .max_by_key(|(p, h)| (**h, p.to_bytes()))
            .map(|(p, h)| (*p, *h))
    }

    pub fn best_height(&self) -> u64 {
        self.best_peer().map(|(_, h)| h).unwrap_or(0)
    }

    pub fn note_status(&mut self, peer: PeerId, s: &ChainStatus) {
        self.peer_heights.insert(peer, s.height);
        self.best_seen = self.best_seen.max(s.height);
        self.heard = true;
    }

    /// Whether a node at finalized height `ours` is catching up. Until some
    /// peer has reported, the answer is yes: a node that cannot tell must not
    /// claim to be caught up (CometBFT's known failure). `seen` is the highest
    /// height seen in consensus messages.
    pub fn catching_up(&self, ours: u64, seen: u64, solo: bool) -> bool {
        if solo {
            return false;
        }
        !self.heard || self.best_seen > ours || seen > ours + 2
    }

    pub fn forget(&mut self, peer: &PeerId) {
        self.peer_heights.remove(peer);
        if self.inflight.as_ref().is_some_and(|(p, _, _)| p == peer) {
            self.inflight = None;
        }
    }

    /// A peer to fetch from, if we are behind and no request is in flight.
    pub fn next_request(&mut self, our_height: u64) -> Option<PeerId> {
        if let Some((_, _, at)) = self.inflight {
            if at.elapsed() < REQUEST_TIMEOUT {
                return None;
            }
            self.inflight = None;
        }
        match self.best_peer() {
            Some((p, h)) if h > our_height => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Messages two heights ahead mean we are behind too.
        assert!(s.catching_up(203, 206, false));
        assert!(!s.catching_up(203, 204, false));
    }
}
