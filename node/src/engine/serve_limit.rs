//! Per-peer limits on serving sync (issue 14): a 20-byte request can ask
//! for a 3 MiB block range, so each peer gets a token bucket of requests and
//! one of response bytes. A peer over either limit is answered "rate
//! limited" (a few bytes) until its buckets refill. The bounds are far above
//! what an honest client uses: it keeps one block request in flight and
//! asks a few peers for their status every 2 s.

use bizra_p2p::PeerId;
use std::collections::HashMap;
use std::time::Instant;

/// Requests per second per peer, and the burst.
pub const REQUESTS_PER_SEC: f64 = 200.0;
/// Response bytes per second per peer, and the burst (64 MiB: a full
/// range every 50 ms).
pub const BYTES_PER_SEC: f64 = 64.0 * 1024.0 * 1024.0;
/// Peers tracked at most; the least recently seen is forgotten first.
pub const MAX_PEERS: usize = 4096;

#[derive(Default)]
pub struct ServeLimiter {
    peers: HashMap<PeerId, Buckets>,
}

#[derive(Clone, Copy)]
struct Buckets {
    at: Instant,
    requests: f64,
    bytes: f64,
}

impl ServeLimiter {
    /// Whether a request from `peer` may be served now (takes one request
    /// token; the bytes are charged afterwards with [`ServeLimiter::charge`]).
    pub fn admit(&mut self, peer: PeerId, now: Instant) -> bool {
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&peer) {
            if let Some(oldest) = self.peers.iter().min_by_key(|(_, b)| b.at).map(|(p, _)| *p) {
                self.peers.remove(&oldest);
            }
        }
        let b = self.peers.entry(peer).or_insert(Buckets {
            at: now,
            requests: REQUESTS_PER_SEC,
            bytes: BYTES_PER_SEC,
        });
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        b.at = now;
        b.requests = (b.requests + dt * REQUESTS_PER_SEC).min(REQUESTS_PER_SEC);
        b.bytes = (b.bytes + dt * BYTES_PER_SEC).min(BYTES_PER_SEC);
        if b.requests < 1.0 || b.bytes <= 0.0 {
            return false;
        }
        b.requests -= 1.0;
        true
    }

    /// Charges `bytes` of response to `peer` (its bucket may go negative:
    /// it then waits until it refills).
    pub fn charge(&mut self, peer: PeerId, bytes: usize) {
        if let Some(b) = self.peers.get_mut(&peer) {
            b.bytes -= bytes as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_peer_asking_for_big_ranges_is_held_to_its_byte_rate_and_others_are_not() {
        let mut l = ServeLimiter::default();
        let (greedy, other) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let mut served = 0;
        for _ in 0..100 {
            if l.admit(greedy, t0) {
                served += 1;
                l.charge(greedy, 3 << 20);
            }
        }
        // 64 MiB of burst: 22 ranges of 3 MiB (the last one overdraws).
        assert_eq!(served, 22);
        assert!(l.admit(other, t0), "another peer has its own buckets");
        // A second later about 21 more fit.
        let t1 = t0 + Duration::from_secs(1);
        let mut later = 0;
        for _ in 0..100 {
            if l.admit(greedy, t1) {
                later += 1;
                l.charge(greedy, 3 << 20);
            }
        }
        assert!((20..=22).contains(&later), "{later}");
    }

    #[test]
    fn tiny_requests_are_held_to_the_request_rate() {
        let mut l = ServeLimiter::default();
        let p = PeerId::random();
        let t0 = Instant::now();
        let served = (0..10_000).filter(|_| l.admit(p, t0)).count();
        assert_eq!(served, REQUESTS_PER_SEC as usize);
    }
}
