//! Gossipsub configuration: topics, message ids, mesh sizing and peer scoring.

use std::{collections::HashMap, time::Duration};

use libp2p::gossipsub::{
    self, score_parameter_decay, IdentTopic, MessageId, PeerScoreParams, PeerScoreThresholds, TopicHash,
    TopicScoreParams, ValidationMode,
};

use crate::{P2pError, Topic};

/// Gossipsub heartbeat interval.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// How long message ids are remembered to drop duplicates. Each id is kept
/// twice (map and expiry queue), so the cache grows with the message rate
/// times this: at 180 s (the value until session 10) it held ~40k ids at 100
/// validators. Gossip older than this is refused by the driver's admission on
/// its claim (an old height), before any decoding of a block or signature
/// check, so remembering ids longer buys nothing.
pub const DUPLICATE_CACHE_TIME: Duration = Duration::from_secs(30);

/// Networks with at most this many validators flood: every connected peer is
/// made an explicit gossipsub peer, so each message goes straight to every
/// peer. Larger networks use a normal gossipsub mesh (see [`MeshParams`]).
pub const FLOOD_MAX_VALIDATORS: usize = 16;

/// Extra room in a gossipsub RPC frame on top of the message data (signature,
/// key, topic, control messages).
const RPC_OVERHEAD: usize = 64 * 1024;

/// Number of heartbeats a message stays in the message cache; a message
/// must be validated by the node within `HISTORY_LENGTH * HEARTBEAT` (6 s)
/// to be forwarded.
const HISTORY_LENGTH: usize = 12;
const HISTORY_GOSSIP: usize = 3;

/// Length of gossipsub's per-connection send queue (messages; half for our
/// own messages, half for forwards). The ring is allocated in full when a
/// peer connects: 512 entries were ~57 KiB per peer (massif, session 10),
/// 5.6 MiB for a full mesh of 100 validators. Validators send a peer a few
/// messages a height in direct mode (ADR 0012), so 128 is still many heights
/// of room; a peer that lets it fill does not read, and re-sends and sync
/// repair what it lost.
pub const SEND_QUEUE_LEN: usize = 128;

/// Largest mesh degree D. Every node receives each message about D times,
/// so the gossip cost of a network grows with n * D: at 100 validators on
/// 2 cores, D = 8 (gossipsub's usual value) spent more CPU on duplicate
/// copies than on verifying signatures. With D = 5 (low 3, high 7) the mesh
/// still stays connected over the bounded peer graph, and IHAVE/IWANT gossip
/// (to `gossip_lazy` non-mesh peers) repairs a missed copy.
pub const MAX_MESH_N: usize = 5;

/// Per-topic gossipsub mesh sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshParams {
    /// Target number of mesh peers per topic (gossipsub D).
    pub mesh_n: usize,
    /// Below this many mesh peers, more are grafted (D_low).
    pub mesh_n_low: usize,
    /// Above this many mesh peers, some are pruned (D_high).
    pub mesh_n_high: usize,
    /// Least number of outbound peers kept in the mesh (D_out).
    pub mesh_outbound_min: usize,
    /// Number of non-mesh peers sent IHAVE gossip each heartbeat (D_lazy).
    pub gossip_lazy: usize,
}

impl MeshParams {
    /// Mesh sizes for a network of `validator_count` validators: a mesh of
    /// everyone when small, capped at `MAX_MESH_N` beyond.
    pub fn for_validators(validator_count: usize) -> Self {
        let others = validator_count.saturating_sub(1);
        let mesh_n = others.clamp(1, MAX_MESH_N);
        let mesh_n_low = (mesh_n * 3 / 4).max(1);
        let mesh_n_high = (mesh_n * 3 / 2).max(mesh_n + 1);
        let mesh_outbound_min = (mesh_n / 3).min(mesh_n_low);
        Self {
            mesh_n,
            mesh_n_low,
            mesh_n_high,
            mesh_outbound_min,
            gossip_lazy: mesh_n.max(3),
        }
    }
}

/// The message id: the first 20 bytes of BLAKE3(data).
pub fn message_id(data: &[u8]) -> MessageId {
    MessageId::new(&blake3::hash(data).as_bytes()[..20])
}

/// The four topics with their gossipsub identities for `chain_id`.
pub fn topics(chain_id: &str) -> Vec<(Topic, IdentTopic)> {
    Topic::ALL
        .iter()
        .map(|t| (*t, IdentTopic::new(t.name(chain_id))))
        .collect()
}

/// Gossipsub configuration for a node.
pub fn config(max_message_bytes: usize, validator_count: usize) -> Result<gossipsub::Config, P2pError> {
    let mesh = MeshParams::for_validators(validator_count);
    gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| message_id(&m.data))
        .max_transmit_size(max_message_bytes.saturating_add(RPC_OVERHEAD))
        .heartbeat_interval(HEARTBEAT)
        .heartbeat_initial_delay(Duration::from_millis(100))
        .history_length(HISTORY_LENGTH)
        .history_gossip(HISTORY_GOSSIP)
        .duplicate_cache_time(DUPLICATE_CACHE_TIME)
        .mesh_n(mesh.mesh_n)
        .mesh_n_low(mesh.mesh_n_low)
        .mesh_n_high(mesh.mesh_n_high)
        .mesh_outbound_min(mesh.mesh_outbound_min)
        .gossip_lazy(mesh.gossip_lazy)
        .flood_publish(true)
        // Each peer's send queue is a ring allocated (and touched) in full
        // when the peer connects: gossipsub's default of 5,000 entries costs
        // ~0.6 MiB per peer, 60 MiB of RSS for a full mesh of 100
        // validators. A vote burst per peer is a few messages; a queue that
        // fills means a peer that does not read, whose losses re-sends and
        // sync repair.
        .connection_handler_queue_len(SEND_QUEUE_LEN)
        // Our own messages may wait this long in a peer's send queue. Longer
        // than the default 5 s: gossipsub 0.49 does not release the queue
        // slot of a publish dropped as stale, so frequent stale drops would
        // eventually block publishing to that peer until it reconnects.
        .publish_queue_duration(Duration::from_secs(30))
        // A forwarded vote is stale only after a round, not after gossipsub's
        // 1 s default: on a CPU-starved host (100 validators on 2 cores) a
        // send queue can take longer than that, and dropping forwards there
        // lost votes that rounds then waited for.
        .forward_queue_duration(Duration::from_secs(10))
        // Gossipsub's own re-dial of disconnected explicit peers (every
        // minute); the swarm task redials configured peers with backoff.
        .check_explicit_peers_ticks(120)
        .build()
        .map_err(|e| P2pError::Config(format!("gossipsub: {e}")))
}

fn topic_score() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        // P1: small reward for time in the mesh.
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 300.0,
        // P2: reward first deliveries.
        first_message_deliveries_weight: 0.5,
        first_message_deliveries_decay: score_parameter_decay(Duration::from_secs(60)),
        first_message_deliveries_cap: 20.0,
        // P3 / P3b off: consensus traffic is bursty and a quiet mesh peer is
        // not misbehaving.
        mesh_message_deliveries_weight: 0.0,
        mesh_message_deliveries_decay: 0.5,
        mesh_message_deliveries_cap: 100.0,
        mesh_message_deliveries_threshold: 1.0,
        mesh_message_deliveries_window: Duration::from_millis(10),
        mesh_message_deliveries_activation: Duration::from_secs(5),
        mesh_failure_penalty_weight: 0.0,
        mesh_failure_penalty_decay: 0.5,
        // P4: invalid messages. The penalty is counter^2 * weight: 8 rejected
        // messages on a topic pass the gossip threshold, 16 the publish one
        // and 21 the graylist, just after the application ban at 20 strikes
        // (a graylisted peer's messages no longer reach the node, so they
        // could not count towards the ban).
        invalid_message_deliveries_weight: -0.2,
        invalid_message_deliveries_decay: score_parameter_decay(Duration::from_secs(300)),
    }
}

/// Peer score parameters (with the per-topic ones for `chain_id`) and
/// thresholds.
pub fn scoring(chain_id: &str) -> (PeerScoreParams, PeerScoreThresholds) {
    let topics: HashMap<TopicHash, TopicScoreParams> = topics(chain_id)
        .into_iter()
        .map(|(_, ident)| (ident.hash(), topic_score()))
        .collect();
    let params = PeerScoreParams {
        topics,
        topic_score_cap: 10.0,
        // P5 unused: the application's strikes lead to a ban instead.
        app_specific_weight: 0.0,
        // P6 off: validators of a testnet share one host address.
        ip_colocation_factor_weight: 0.0,
        // P7: broken IWANT promises and GRAFT during backoff.
        behaviour_penalty_weight: -5.0,
        behaviour_penalty_threshold: 6.0,
        behaviour_penalty_decay: score_parameter_decay(Duration::from_secs(300)),
        ..PeerScoreParams::default()
    };
    let thresholds = PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 100.0,
        opportunistic_graft_threshold: 5.0,
    };
    (params, thresholds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_params_are_valid_for_any_size() {
        for n in 0..=300 {
            let m = MeshParams::for_validators(n);
            assert!(
                m.mesh_outbound_min <= m.mesh_n_low
                    && m.mesh_n_low <= m.mesh_n
                    && m.mesh_n < m.mesh_n_high
                    && m.mesh_outbound_min * 2 <= m.mesh_n,
                "n={n}: {m:?}"
            );
            config(4 << 20, n).expect("valid gossipsub config");
        }
        let big = MeshParams::for_validators(100);
        assert_eq!(big.mesh_n, MAX_MESH_N);
        assert_eq!((big.mesh_n_low, big.mesh_n_high), (3, 7));
        assert_eq!(MeshParams::for_validators(4).mesh_n, 3);
    }

    #[test]
    fn scoring_is_valid() {
        let (params, thresholds) = scoring("bizra-test");
        params.validate().unwrap();
        thresholds.validate().unwrap();
        assert_eq!(params.topics.len(), 4);
        // The application ban must come before gossipsub graylisting, which
        // would hide the peer's messages from the node.
        for t in params.topics.values() {
            let strikes = f64::from(crate::BAN_THRESHOLD);
            let p4 = t.topic_weight * t.invalid_message_deliveries_weight * strikes * strikes;
            assert!(p4 >= thresholds.graylist_threshold, "{p4}");
            let p4_past = t.topic_weight * t.invalid_message_deliveries_weight * (strikes + 1.0).powi(2);
            assert!(p4_past < thresholds.graylist_threshold, "{p4_past}");
        }
    }

    #[test]
    fn message_id_is_blake3_prefix() {
        let id = message_id(b"hello");
        assert_eq!(id.0.len(), 20);
        assert_eq!(id.0[..], blake3::hash(b"hello").as_bytes()[..20]);
        assert_ne!(message_id(b"hello"), message_id(b"hellp"));
    }
}
