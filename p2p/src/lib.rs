//! libp2p networking for bizra validators.
//!
//! One swarm per node over TCP + noise + yamux, whose libp2p identity is the
//! validator's Ed25519 key ([`keypair_from_ed25519_secret`],
//! [`peer_id_from_ed25519_public`]), so a validator id names its `PeerId`.
//! [`start`] spawns the swarm task and returns a cheap-to-clone [`P2pHandle`]
//! plus the bounded receiver of [`P2pEvent`]s.
//!
//! # Gossip
//! Four gossipsub topics per chain ([`Topic`]):
//! `/bizra/{chain_id}/proposals/1`, `/bizra/{chain_id}/votes/1`,
//! `/bizra/{chain_id}/attestations/2` (`AttestationBatch`) and
//! `/bizra/{chain_id}/evidence/1` (one `Evidence` per message). Gossipsub runs
//! in anonymous mode: every bizra payload carries its author's signature, so
//! libp2p's own envelope signature would be pure cost (ADR 0006). The message id is the first 20 bytes of
//! BLAKE3(data), so the same bytes published twice (or by two peers) are one
//! message, remembered for three minutes.
//!
//! Validation happens before forwarding: a received message is handed to the
//! node as [`P2pEvent::Gossip`] and is not forwarded until the node calls
//! [`P2pHandle::report_validation`]. `Accept` forwards it, `Ignore` drops it,
//! `Reject` drops it and penalises the peer that sent it (one application
//! strike, plus gossipsub score P4 in mesh mode; flood and direct mode keep
//! no gossipsub scores). Use `Ignore` for messages that are merely
//! useless (stale heights, duplicates), `Reject` only for provably invalid
//! ones. A peer with [`BAN_THRESHOLD`] strikes (rejected messages and
//! [`P2pHandle::penalize`] calls; one strike is forgiven per minute) is
//! disconnected and banned for [`BAN_DURATION`]. A message must be validated
//! within about six seconds, after which it has left the message cache.
//!
//! With up to [`FLOOD_MAX_VALIDATORS`] validators every connected peer is an
//! explicit gossipsub peer, so messages flood to all of them; larger networks
//! use a gossipsub mesh sized by [`MeshParams::for_validators`] (8 peers for
//! 100 validators) while a publisher still sends its own messages to every
//! connected peer (flood publishing).
//!
//! # Direct mode
//! Validators are few and known from genesis. When a node's configured peers
//! name every other validator ([`P2pConfig::direct`]), every connection is an
//! explicit peer and a publisher sends its message to each validator itself:
//! one hop, no mesh. The node then reports `Ignore` for valid consensus
//! messages, so nothing is relayed: each message crosses each link once
//! instead of D times (ADR 0012). Attestation batches are still relayed.
//! Of two validators that list each other, the one with the smaller peer id
//! dials first; the other dials only if no connection came within two
//! seconds.
//!
//! # Sync
//! Request-response protocol `/bizra/sync/1`: the request is a
//! [`bizra_proto::SyncRequest`] and the response a [`bizra_proto::SyncResponse`],
//! each a protobuf message framed by a big-endian `u32` length, at most
//! `max_message_bytes` long. An oversized or undecodable request is answered
//! with an error response (it never reaches the node); an oversized or
//! undecodable response fails the request ([`P2pEvent::SyncFailure`]). Either
//! counts as a strike against the sender. Requests time out after
//! [`REQUEST_TIMEOUT`].
//!
//! # Peers
//! The configured peers (`/ip4/…/tcp/…/p2p/…` or `/dns4/…/tcp/…/p2p/…`) are
//! dialled at start and redialled with exponential backoff (0.5 s to 30 s)
//! whenever disconnected. Other peers may connect too. Peers exchange
//! `/bizra/{chain_id}/1` through libp2p identify; a peer of another chain is
//! disconnected.
//!
//! # Back-pressure
//! Events go through a bounded channel of [`EVENT_CHANNEL_CAPACITY`]. When it
//! is full, gossip events are dropped (and counted, see
//! [`P2pHandle::dropped_gossip`]) while other events are queued, so the swarm
//! never blocks on a slow node.

#![warn(missing_docs)]

mod codec;
mod gossip;
mod service;

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

pub use codec::SYNC_PROTOCOL;
pub use gossip::{message_id, MeshParams, FLOOD_MAX_VALIDATORS};
pub use libp2p::{gossipsub::MessageId, identity::Keypair, Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

/// Default cap on a gossip message and on a sync frame: 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Capacity of the event channel returned by [`start`].
pub const EVENT_CHANNEL_CAPACITY: usize = 4096;
/// Strikes after which a peer is disconnected and banned.
pub const BAN_THRESHOLD: u32 = 20;
/// How long a banned peer stays banned.
pub const BAN_DURATION: Duration = Duration::from_secs(10 * 60);
/// Timeout of a sync request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle timeout of a connection.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

/// A gossip topic. The topic string is chain specific, see [`Topic::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Signed block proposals (`/bizra/{chain_id}/proposals/1`).
    Proposals,
    /// Signed prevotes and precommits (`/bizra/{chain_id}/votes/1`).
    Votes,
    /// `AttestationBatch`es (`/bizra/{chain_id}/attestations/2`).
    Attestations,
    /// One `Evidence` per message (`/bizra/{chain_id}/evidence/1`).
    Evidence,
}

impl Topic {
    /// All topics; a node subscribes to each of them.
    pub const ALL: [Topic; 4] = [Topic::Proposals, Topic::Votes, Topic::Attestations, Topic::Evidence];

    /// The gossipsub topic string, e.g. `/bizra/{chain_id}/votes/1`.
    pub fn name(self, chain_id: &str) -> String {
        let (kind, version) = match self {
            Topic::Proposals => ("proposals", 1),
            Topic::Votes => ("votes", 1),
            // 2: an `AttestationBatch` per message (1 was one `Envelope`).
            Topic::Attestations => ("attestations", 2),
            Topic::Evidence => ("evidence", 1),
        };
        format!("/bizra/{chain_id}/{kind}/{version}")
    }
}

/// Configuration of [`start`].
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Node identity; build it with [`keypair_from_ed25519_secret`].
    pub keypair: Keypair,
    /// TCP listen address (port 0 picks a free port, see
    /// [`P2pHandle::listen_addrs`]).
    pub listen: SocketAddr,
    /// Peers to dial and keep connected, each
    /// `/ip4/A.B.C.D/tcp/PORT/p2p/PEERID` or `/dns4/NAME/tcp/PORT/p2p/PEERID`.
    /// An entry naming this node itself is skipped.
    pub peers: Vec<Multiaddr>,
    /// Chain id, part of every topic name.
    pub chain_id: String,
    /// Cap on gossip message data and on sync frames; 0 means
    /// [`DEFAULT_MAX_MESSAGE_BYTES`].
    pub max_message_bytes: usize,
    /// Number of validators, to size the gossip mesh.
    pub validator_count: usize,
    /// Where inbound sync requests go (`P2pEvent::SyncRequest` only). None:
    /// on the main event channel, in order with gossip. With a channel of
    /// its own a node answers sync (a few microseconds of work) without
    /// waiting behind a backlog of gossip to validate: at alpha-100 peers'
    /// requests queued behind gossip until libp2p dropped new streams
    /// ("at capacity") and catching up stalled. A full channel answers
    /// `Resp::Error("busy")` at once.
    pub sync_requests: Option<mpsc::Sender<P2pEvent>>,
    /// The configured peers name every validator (a full mesh): every
    /// connected peer is an explicit gossipsub peer, whatever the number of
    /// validators, so a publisher reaches each validator in one hop. The node
    /// then relays no consensus message (see the crate docs, "Direct mode").
    pub direct: bool,
}

impl P2pConfig {
    /// A configuration with no peers, the default message cap and a
    /// validator count of 1.
    pub fn new(keypair: Keypair, listen: SocketAddr, chain_id: impl Into<String>) -> Self {
        Self {
            keypair,
            listen,
            peers: Vec::new(),
            chain_id: chain_id.into(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            validator_count: 1,
            sync_requests: None,
            direct: false,
        }
    }
}

/// The libp2p keypair of a validator from its 32-byte Ed25519 secret key.
pub fn keypair_from_ed25519_secret(secret: [u8; 32]) -> Keypair {
    let mut secret = secret;
    Keypair::ed25519_from_bytes(&mut secret).expect("a 32-byte Ed25519 secret key is always valid")
}

/// The `PeerId` of the validator with Ed25519 public key `pk`.
///
/// Ed25519 keys are short enough to be inlined in the peer id (identity
/// multihash of the protobuf-encoded key), so this needs no key validation.
pub fn peer_id_from_ed25519_public(pk: [u8; 32]) -> PeerId {
    // Multihash: code 0x00 (identity), length 36, then the protobuf encoding
    // of the public key: field 1 (KeyType) = 1 (Ed25519), field 2 (Data) = pk.
    let mut bytes = Vec::with_capacity(38);
    bytes.extend_from_slice(&[0x00, 36, 0x08, 0x01, 0x12, 32]);
    bytes.extend_from_slice(&pk);
    PeerId::from_bytes(&bytes).expect("identity multihash of an Ed25519 key is a valid peer id")
}

/// The node's verdict on a gossip message, see [`P2pHandle::report_validation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Valid: forward it.
    Accept,
    /// Invalid: drop it and penalise the peer that sent it.
    Reject,
    /// Useless but not malicious (stale, duplicate): drop it.
    Ignore,
}

/// Opaque handle of an inbound sync request, to pass back to
/// [`P2pHandle::respond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseToken(u64);

/// Something that happened on the network.
#[derive(Debug)]
pub enum P2pEvent {
    /// A gossip message to validate. `source` is the peer that sent it to us
    /// (not necessarily its author); pass `id` and `source` to
    /// [`P2pHandle::report_validation`].
    Gossip {
        /// Topic the message arrived on.
        topic: Topic,
        /// The message bytes, not yet validated.
        data: Vec<u8>,
        /// Peer that forwarded it to us.
        source: PeerId,
        /// Gossipsub message id (first 20 bytes of BLAKE3 of `data`).
        id: MessageId,
    },
    /// A peer asks for sync data; answer with [`P2pHandle::respond`].
    SyncRequest {
        /// The requesting peer.
        peer: PeerId,
        /// What it asks for.
        request: bizra_proto::SyncRequest,
        /// Token to pass back to [`P2pHandle::respond`].
        channel: ResponseToken,
    },
    /// The answer to [`P2pHandle::request`] number `request_id`.
    SyncResponse {
        /// The peer that answered.
        peer: PeerId,
        /// Number [`P2pHandle::request`] returned for the request.
        request_id: u64,
        /// The decoded answer.
        response: bizra_proto::SyncResponse,
    },
    /// Request `request_id` failed (dial failure, timeout, closed connection,
    /// oversized or undecodable response, ...).
    SyncFailure {
        /// The peer the request was sent to.
        peer: PeerId,
        /// Number [`P2pHandle::request`] returned for the request.
        request_id: u64,
        /// What went wrong, for logs.
        error: String,
    },
    /// First connection to a peer.
    PeerConnected(PeerId),
    /// Last connection to a peer closed.
    PeerDisconnected(PeerId),
}

impl P2pEvent {
    /// The variant name, for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            P2pEvent::Gossip { .. } => "gossip",
            P2pEvent::SyncRequest { .. } => "sync request",
            P2pEvent::SyncResponse { .. } => "sync response",
            P2pEvent::SyncFailure { .. } => "sync failure",
            P2pEvent::PeerConnected(_) => "peer connected",
            P2pEvent::PeerDisconnected(_) => "peer disconnected",
        }
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The swarm task has stopped.
    #[error("the p2p service has shut down")]
    Shutdown,
    /// No connected peer is subscribed to the topic (yet); not fatal.
    #[error("no peers subscribed to the topic")]
    InsufficientPeers,
    /// The same data was already published or seen recently; not fatal.
    #[error("duplicate message")]
    Duplicate,
    /// The data exceeds `max_message_bytes`.
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Size of the data, in bytes.
        size: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// Publishing failed otherwise (e.g. every peer's send queue is full).
    #[error("publish failed: {0}")]
    Publish(String),
    /// Invalid configuration.
    #[error("invalid p2p configuration: {0}")]
    Config(String),
    /// Transport or listen failure.
    #[error("transport error: {0}")]
    Transport(String),
}

impl P2pError {
    /// Whether the error is routine and can be ignored by a publisher
    /// ([`P2pError::InsufficientPeers`], [`P2pError::Duplicate`]).
    pub fn is_benign(&self) -> bool {
        matches!(self, P2pError::InsufficientPeers | P2pError::Duplicate)
    }
}

pub(crate) enum Command {
    Publish {
        topic: Topic,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), P2pError>>,
    },
    Validate {
        id: MessageId,
        source: PeerId,
        validation: Validation,
    },
    Penalize {
        peer: PeerId,
        reason: String,
    },
    Request {
        peer: PeerId,
        request: bizra_proto::SyncRequest,
        request_id: u64,
    },
    Respond {
        token: ResponseToken,
        response: bizra_proto::SyncResponse,
    },
    TopicPeers {
        topic: Topic,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Shutdown,
}

/// State shared by the handles and the swarm task.
pub(crate) struct Shared {
    pub(crate) local_peer_id: PeerId,
    pub(crate) connected: AtomicUsize,
    pub(crate) peers: Mutex<HashSet<PeerId>>,
    pub(crate) listen_addrs: Mutex<Vec<Multiaddr>>,
    pub(crate) dropped_gossip: AtomicU64,
    pub(crate) next_request_id: AtomicU64,
}

/// Handle to the swarm task. Cheap to clone; every method only queues a
/// command for the task (or reads shared state).
#[derive(Clone)]
pub struct P2pHandle {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    max_message_bytes: usize,
}

impl std::fmt::Debug for P2pHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pHandle")
            .field("local_peer_id", &self.shared.local_peer_id)
            .field("connected_peers", &self.connected_peers())
            .finish()
    }
}

impl P2pHandle {
    /// Publishes `data` on `topic` to the connected peers. The node does not
    /// receive its own message back. [`P2pError::InsufficientPeers`] and
    /// [`P2pError::Duplicate`] are routine (see [`P2pError::is_benign`]).
    pub async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), P2pError> {
        if data.len() > self.max_message_bytes {
            return Err(P2pError::MessageTooLarge {
                size: data.len(),
                max: self.max_message_bytes,
            });
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Publish { topic, data, reply })?;
        rx.await.map_err(|_| P2pError::Shutdown)?
    }

    /// Reports the node's verdict on gossip message `id` received from
    /// `source` (both from [`P2pEvent::Gossip`]). Only an accepted message
    /// is forwarded; a rejected one also counts a strike against `source`.
    pub fn report_validation(&self, id: MessageId, source: PeerId, v: Validation) {
        let _ = self.send(Command::Validate {
            id,
            source,
            validation: v,
        });
    }

    /// Counts a strike against `peer` (e.g. for an invalid sync response);
    /// strikes add up with rejected gossip towards a ban.
    pub fn penalize(&self, peer: PeerId, reason: &str) {
        let _ = self.send(Command::Penalize {
            peer,
            reason: reason.to_owned(),
        });
    }

    /// Sends a sync request to `peer` (dialling it if it is a configured peer
    /// that is not connected). The answer arrives as [`P2pEvent::SyncResponse`]
    /// or [`P2pEvent::SyncFailure`] carrying the returned request id.
    pub async fn request(&self, peer: PeerId, req: bizra_proto::SyncRequest) -> Result<u64, P2pError> {
        let request_id = self.shared.next_request_id.fetch_add(1, Ordering::Relaxed);
        self.send(Command::Request {
            peer,
            request: req,
            request_id,
        })?;
        Ok(request_id)
    }

    /// Answers the inbound request identified by `channel`. A response larger
    /// than `max_message_bytes` is replaced by an error response. Answering
    /// after the request timed out does nothing.
    pub fn respond(&self, channel: ResponseToken, resp: bizra_proto::SyncResponse) {
        let _ = self.send(Command::Respond {
            token: channel,
            response: resp,
        });
    }

    /// Number of connected peers.
    pub fn connected_peers(&self) -> usize {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<PeerId> {
        lock(&self.shared.peers).iter().copied().collect()
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.shared.local_peer_id
    }

    /// The addresses the node listens on (with the actual port when the
    /// configured one was 0).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        lock(&self.shared.listen_addrs).clone()
    }

    /// Connected peers known to be subscribed to `topic`.
    pub async fn topic_peers(&self, topic: Topic) -> Result<Vec<PeerId>, P2pError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::TopicPeers { topic, reply })?;
        rx.await.map_err(|_| P2pError::Shutdown)
    }

    /// Gossip events dropped so far because the event channel was full.
    pub fn dropped_gossip(&self) -> u64 {
        self.shared.dropped_gossip.load(Ordering::Relaxed)
    }

    /// Stops the swarm task, closing every connection. Idempotent. The task
    /// also stops once every handle has been dropped.
    pub fn shutdown(&self) {
        let _ = self.send(Command::Shutdown);
    }

    fn send(&self, cmd: Command) -> Result<(), P2pError> {
        self.commands.send(cmd).map_err(|_| P2pError::Shutdown)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the swarm on the current tokio runtime: listens on `cfg.listen`,
/// subscribes to every [`Topic`] and dials `cfg.peers`. Returns once the
/// listener is up (an unusable listen address is an error).
pub async fn start(cfg: P2pConfig) -> Result<(P2pHandle, mpsc::Receiver<P2pEvent>), P2pError> {
    let max_message_bytes = if cfg.max_message_bytes == 0 {
        DEFAULT_MAX_MESSAGE_BYTES
    } else {
        cfg.max_message_bytes
    };
    let cfg = P2pConfig {
        max_message_bytes,
        ..cfg
    };
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
    let shared = Arc::new(Shared {
        local_peer_id: cfg.keypair.public().to_peer_id(),
        connected: AtomicUsize::new(0),
        peers: Mutex::new(HashSet::new()),
        listen_addrs: Mutex::new(Vec::new()),
        dropped_gossip: AtomicU64::new(0),
        next_request_id: AtomicU64::new(1),
    });
    let task = service::Service::new(cfg, shared.clone(), command_rx, event_tx).await?;
    tokio::spawn(task.run());
    Ok((
        P2pHandle {
            commands,
            shared,
            max_message_bytes,
        },
        event_rx,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_from_public_matches_keypair() {
        for seed in [[0u8; 32], [7u8; 32], [255u8; 32]] {
            let kp = keypair_from_ed25519_secret(seed);
            let pk: [u8; 32] = kp.public().try_into_ed25519().unwrap().to_bytes();
            assert_eq!(peer_id_from_ed25519_public(pk), kp.public().to_peer_id());
        }
        assert_ne!(
            keypair_from_ed25519_secret([1; 32]).public().to_peer_id(),
            keypair_from_ed25519_secret([2; 32]).public().to_peer_id()
        );
    }

    #[test]
    fn topic_names() {
        assert_eq!(Topic::Votes.name("c1"), "/bizra/c1/votes/1");
        assert_eq!(Topic::Proposals.name("c1"), "/bizra/c1/proposals/1");
        assert_eq!(Topic::Attestations.name("c1"), "/bizra/c1/attestations/2");
        assert_eq!(Topic::Evidence.name("c1"), "/bizra/c1/evidence/1");
    }
}
