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
//! here `catching_up` is derived from the best height any peer reported and
//! stays true until we have finalized that height ourselves.

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
