//! The consensus engine: the tokio shell around the pure driver.
//!
//! One task owns the [`Driver`] and executes its effects in order:
//! `PersistOwn` is written to the WAL and the sign guard *and synced* before
//! the next effect (usually the `Broadcast` of the same message) runs, so a
//! signature never leaves the node before it is durable. On start the node
//! rebuilds the chain state from its blocks, replays the WAL into the driver,
//! and only then opens the network.
//!
//! By concern:
//!
//! * `setup.rs`: loading a node (config, genesis, key, data dir), its
//!   runtime, logging, signals and peer addresses;
//! * `run.rs`: [`run_engine`], the start-up order and the event loop;
//! * `inbound.rs`: what arrives (p2p events, API requests);
//! * `gossip.rs`: the gossip checks of votes, proposals and attestation
//!   batches, pure functions the fuzz targets call too;
//! * `effects.rs`: executing the driver's effects (persist, broadcast,
//!   decisions and what follows them); `timers.rs`: its timeouts;
//! * `sync.rs` (catch-up state and range checks), `sync_client.rs` (asking
//!   peers and applying what they serve), `sync_server.rs` (serving peers);
//! * `evidence.rs`, `startup.rs`, `servers.rs`, `log_limit.rs`,
//!   `serve_limit.rs`.

mod effects;
pub mod evidence;
pub mod gossip;
mod inbound;
mod log_limit;
mod run;
mod serve_limit;
mod servers;
mod setup;
mod startup;
pub mod sync;
mod sync_client;
pub mod sync_server;
mod timers;

pub use run::run_engine;
pub use setup::wait_for_signal;
pub use setup::{driver_timeouts, init_logging, load, now_ms, run_node, NodeSetup, RunError};

use crate::admission;
use crate::evidence_pool::EvidencePool;
use crate::metrics::Metrics;
use crate::pool::AttestationPool;
use crate::state::Shared;
use bizra_consensus::chain::ChainState;
use bizra_consensus::driver::{Driver, Timeout};
use bizra_p2p::P2pHandle;
use bizra_storage::Store;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use sync::SyncState;

/// A decided block, as the driver's `Effect::Decided` reports it.
struct Decision {
    block: bizra_proto::Block,
    hash: [u8; 32],
    commit: bizra_proto::CommitCertificate,
    round: u32,
    state: ChainState,
}

struct Engine {
    shared: Arc<Shared>,
    driver: Driver,
    store: Arc<dyn Store>,
    p2p: P2pHandle,
    sync: SyncState,
    timers: BTreeMap<(Instant, u64), Timeout>,
    timer_seq: u64,
    /// Content hashes of messages published at this height (rebroadcasts get
    /// a fresh `attempt` so gossip does not drop them as duplicates).
    published: HashSet<[u8; 32]>,
    attempt: u64,
    height_started: Instant,
    last_block_at: Option<Instant>,
    max_block_attestations: usize,
    pool: AttestationPool,
    max_message_bytes: usize,
    last_status_ask: Instant,
    /// True while a synced range is applied: its decisions collect in
    /// `synced_batch` and are stored in one write.
    applying_synced: bool,
    synced_batch: Vec<Decision>,
    /// Admitted submissions waiting to be gossiped as one batch.
    att_outbox: admission::Outbox,
    /// Content hashes (attempt zeroed) of consensus messages accepted at
    /// `verified_height`: see [`gossip::check_consensus_gossip`].
    verified: HashMap<[u8; 32], u8>,
    /// Warnings that outside input triggers are rate-limited (issue 14, D8).
    logs: log_limit::LogLimiter,
    /// Attestations of gossiped proposals already verified (issue 14, D3).
    payloads_verified: admission::VerifiedPayloads,
    verified_height: u64,
    /// The latest certificate grown by late precommits, not yet stored.
    pending_commit: Option<bizra_proto::CommitCertificate>,
    /// Received messages the driver kept at `wal_received.0`, not yet in the
    /// WAL: written as one record before our next signature's flush (or on
    /// the status tick), not one sled insert each.
    wal_received: (u64, Vec<bizra_proto::ConsensusMessage>),
    /// False in direct mode (ADR 0012): every validator is a peer and hears
    /// each author itself, so valid consensus messages are not forwarded.
    relay_consensus: bool,
    /// Where the next status round starts in the sorted peer list.
    status_cursor: usize,
    /// Misbehaviour evidence waiting for a block (issue 15).
    evidence: EvidencePool,
    last_evidence_gossip: Instant,
}

impl Engine {
    fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    fn refresh_status(&self) {
        let mut s = self.shared.status.write().expect("status");
        s.consensus_height = self.driver.height();
        s.consensus_round = self.driver.round();
        s.peers = self.p2p.connected_peers() as u32;
        // `best_seen` is at least every peer's claim (see `SyncState`), so
        // no scan of the claims is needed here, on every event.
        s.best_peer_height = self.sync.best_seen;
        let solo = self.shared.genesis.members.len() == 1;
        s.catching_up = self
            .sync
            .catching_up(s.finalized_height, self.driver.max_seen_height(), solo);
        self.metrics().consensus_round.set(self.driver.round() as i64);
        self.metrics().peers.set(s.peers as i64);
        self.metrics().catching_up.set(i64::from(s.catching_up));
        self.metrics().validators.set(self.shared.genesis.members.len() as i64);
    }
}
