//! The consensus engine: the tokio shell around the pure driver.
//!
//! One task owns the [`Driver`] and executes its effects in order:
//! `PersistOwn` is written to the WAL and the sign guard *and synced* before
//! the next effect (usually the `Broadcast` of the same message) runs, so a
//! signature never leaves the node before it is durable. On start the node
//! rebuilds the chain state from its blocks, replays the WAL into the driver,
//! and only then opens the network.

pub mod evidence;
mod log_limit;
mod serve_limit;
mod servers;
mod startup;
pub mod sync;

use crate::admission;
use crate::cli::{resolve, usage, CliResult};
use crate::config::{parse_peer, NodeConfig};
use crate::evidence_pool::EvidencePool;
use crate::metrics::{ComponentLabels, Direction, Metrics, MsgKind, ValidatorLabel};
use crate::pool::{AttestationPool, FinalizedKey};
use crate::state::{EngineRequest, HeadEvent, Shared, Status};
use anyhow::Context as _;
use bizra_consensus::chain::ChainState;
use bizra_consensus::driver::{Admission, Driver, Effect, Input, Timeout, Timeouts, FUTURE_HEIGHTS};
use bizra_consensus::genesis::Genesis;
use bizra_consensus::signing::Signer;
use bizra_consensus::types::{SignPosition, SignStep};
use bizra_consensus::{certificate, quorum};
use bizra_p2p::{P2pConfig, P2pEvent, P2pHandle, PeerId, Topic, Validation};
use bizra_proto::{
    consensus_message::Msg, sync_request::Req, sync_response::Resp, BlockRange, ChainStatus, ConsensusMessage,
    FinalizedBlock, StatusRequest, SyncRequest, SyncResponse,
};
use bizra_storage::{DataDirIdentity, SledStore, Store, WalEntry, WalKind};
use prost::Message;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use sync::SyncState;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, error, info, warn};

/// How often peers are asked for their status.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);
/// Peers asked for their status per round (see [`Engine::ask_status`]).
const STATUS_FANOUT: usize = 4;
/// Bound on [`Engine::verified`]: a height has about 3 messages per validator
/// per round.
const MAX_VERIFIED: usize = 65_536;
/// Attestations per gossip batch, at most ...
const ATT_BATCH_MAX: usize = 256;
/// ... and how long the first of a batch waits for company.
const ATT_BATCH_DELAY: Duration = Duration::from_millis(5);
/// Finalized heights between two prunes of the WAL.
const WAL_PRUNE_EVERY: u64 = 16;

/// Copies of one signed content forwarded per height (re-sends differ in
/// `attempt` only; a rogue peer can mint any number of them).
const MAX_FORWARDS: u8 = 8;

/// What [`Engine::check_gossip_once`] found: the gossip verdict and, for a
/// message to show the driver, the input, the message and its content key.
struct GossipCheck {
    verdict: Validation,
    input: Option<(Input, ConsensusMessage, [u8; 32])>,
}

impl GossipCheck {
    fn verdict(verdict: Validation) -> Self {
        GossipCheck { verdict, input: None }
    }
}

/// Whether `data` is the one encoding of `msg` (prost's, field order, no
/// unknown fields): what honest senders produce.
fn is_canonical(msg: &ConsensusMessage, data: &[u8]) -> bool {
    msg.encoded_len() == data.len() && msg.encode_to_vec() == data
}

/// [`content_key`] of a message whose canonical encoding is `data`, without
/// re-encoding it: `attempt` (field 10) is the last field, so the content is
/// `data` without its `attempt` suffix.
fn canonical_content_key(msg: &ConsensusMessage, data: &[u8]) -> [u8; 32] {
    if msg.attempt == 0 {
        return *blake3::hash(data).as_bytes();
    }
    let suffix = 1 + prost::encoding::encoded_len_varint(msg.attempt);
    match data.len().checked_sub(suffix) {
        Some(end) if data[end] == 10 << 3 => *blake3::hash(&data[..end]).as_bytes(),
        _ => content_key(msg),
    }
}

/// The signed content of a consensus message: BLAKE3 of its encoding with
/// the unsigned `attempt` zeroed (re-sends differ only in `attempt`).
fn content_key(msg: &ConsensusMessage) -> [u8; 32] {
    let mut m = msg.clone();
    m.attempt = 0;
    *blake3::hash(&m.encode_to_vec()).as_bytes()
}

/// Answers a `/bizra/sync/1` request from the published status and the
/// store: no driver state, so it runs apart from the engine (`sync_server`).
fn serve_sync(shared: &Shared, store: &dyn Store, max_message_bytes: usize, req: &SyncRequest) -> SyncResponse {
    let resp = match &req.req {
        Some(Req::Status(_)) => {
            let s = shared.status();
            Resp::Status(ChainStatus {
                chain_id: shared.genesis.chain_id().to_string(),
                genesis_hash: shared.genesis.hash.to_vec(),
                height: s.finalized_height,
                head_hash: s.finalized_hash.to_vec(),
            })
        }
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

/// Inbound sync requests waiting for [`sync_server`]; more are answered
/// "busy" by the p2p service.
const SYNC_SERVER_QUEUE: usize = 256;

/// Serves sync requests on their own task, so that a node busy validating
/// gossip still answers status and block-range requests at once. Blocks
/// are read from the store on a blocking thread.
async fn sync_server(
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
            tokio::task::spawn_blocking(move || serve_sync(&shared, store.as_ref(), max_message_bytes, &request))
                .await
                .unwrap_or_else(|e| SyncResponse {
                    resp: Some(Resp::Error(format!("internal: {e}"))),
                })
        } else {
            serve_sync(&shared, store.as_ref(), max_message_bytes, &request)
        };
        limits.charge(peer, resp.encoded_len());
        debug!(%peer, "served sync request");
        p2p.respond(channel, resp);
    }
}

fn topic_kind(topic: Topic) -> &'static str {
    match topic {
        Topic::Proposals => "proposal",
        Topic::Votes => "vote",
        Topic::Attestations => "attestation",
        Topic::Evidence => "evidence",
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sets up `tracing` from the config (`log.format`, `log.level`; `RUST_LOG`
/// overrides the level).
pub fn init_logging(format: &str, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Everything `bizra run` needs, loaded and checked before anything starts.
pub struct NodeSetup {
    pub cfg: NodeConfig,
    pub genesis: Arc<Genesis>,
    pub signer: Signer,
    pub store: Arc<dyn Store>,
}

/// Loads config, genesis, key and data dir; any problem is a one-line error.
pub fn load(home: &Path) -> Result<NodeSetup, String> {
    let cfg = NodeConfig::load(home).map_err(|e| e.to_string())?;
    let gpath = resolve(home, &cfg.genesis);
    let bytes = std::fs::read(&gpath).map_err(|e| format!("cannot read genesis {}: {e}", gpath.display()))?;
    let genesis = Genesis::from_bytes(&bytes).map_err(|e| format!("genesis {}: {e}", gpath.display()))?;
    let signer = crate::keys::read(&resolve(home, &cfg.key)).map_err(|e| e.to_string())?;
    if genesis.members.index_of(signer.id()).is_none() {
        return Err(format!(
            "validator key {} is not in the genesis validator set",
            signer.id()
        ));
    }
    let identity = DataDirIdentity {
        chain_id: genesis.chain_id().to_string(),
        genesis_hash: genesis.hash,
        validator: signer.id().to_string(),
    };
    let data = resolve(home, &cfg.data_dir);
    let store = SledStore::open(&data, &identity).map_err(|e| format!("data dir {}: {e}", data.display()))?;
    Ok(NodeSetup {
        cfg,
        genesis: Arc::new(genesis),
        signer,
        store: Arc::new(store),
    })
}

pub fn run_node(home: &Path) -> CliResult {
    let setup = load(home).map_err(usage)?;
    init_logging(&setup.cfg.log.format, &setup.cfg.log.level);
    let rt = node_runtime();
    rt.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop_tx.send(true);
        });
        run_engine(setup, stop_rx).await
    })
    .map_err(|e| {
        error!("node stopped: {e:#}");
        crate::cli::check(format!("{e:#}"))
    })
}

/// The node's runtime: one thread for the engine, the swarm, its
/// connections and the servers (ADR 0012). A gossip message then passes from
/// its connection to the swarm to the engine without waking another thread:
/// with 100 validators on 2 cores the futex wake-ups and context switches of
/// a work-stealing pool cost more than the work. CPU-heavy work (a synced
/// range's signatures, block reads for peers) still runs on blocking threads.
/// `BIZRA_RUNTIME=multi_thread` selects tokio's work-stealing pool instead.
fn node_runtime() -> tokio::runtime::Runtime {
    if std::env::var("BIZRA_RUNTIME").is_ok_and(|v| v == "multi_thread") {
        return crate::cli::runtime();
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn to_store_pos(p: SignPosition) -> bizra_storage::SignPosition {
    bizra_storage::SignPosition {
        height: p.height,
        round: p.round,
        step: p.step as u8,
    }
}

fn from_store_pos(p: bizra_storage::SignPosition) -> SignPosition {
    let step = match p.step {
        0 => SignStep::Proposal,
        1 => SignStep::Prevote,
        _ => SignStep::Precommit,
    };
    SignPosition {
        height: p.height,
        round: p.round,
        step,
    }
}

/// Whether the configured peers (`<validator-id>@host:port`) name every
/// validator of `genesis` other than `me`: then the node runs in direct mode
/// (ADR 0012).
fn names_every_validator(genesis: &bizra_consensus::genesis::Genesis, me: &str, peers: &[String]) -> bool {
    let listed: HashSet<String> = peers
        .iter()
        .filter_map(|p| parse_peer(p).ok())
        .map(|p| p.validator.to_ascii_lowercase())
        .collect();
    genesis
        .doc
        .validators
        .iter()
        .filter(|v| !v.id.eq_ignore_ascii_case(me))
        .all(|v| listed.contains(&v.id.to_ascii_lowercase()))
}

fn peer_multiaddr(spec: &str) -> anyhow::Result<bizra_p2p::Multiaddr> {
    let p = parse_peer(spec).map_err(anyhow::Error::msg)?;
    let pk: [u8; 32] = hex::decode(&p.validator)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("bad key"))?;
    let peer = bizra_p2p::peer_id_from_ed25519_public(pk);
    let proto = if p.host.parse::<std::net::Ipv4Addr>().is_ok() {
        "ip4"
    } else {
        "dns4"
    };
    Ok(format!("/{proto}/{}/tcp/{}/p2p/{peer}", p.host, p.port).parse()?)
}

pub async fn run_engine(setup: NodeSetup, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let NodeSetup {
        cfg,
        genesis,
        signer,
        store,
    } = setup;
    // Start from the snapshot stored with the head (H1); the history behind
    // it is re-checked in the background once consensus runs.
    let state = startup::load_chain(&genesis, store.head()?, store.chain_state()?)?;
    let epochs = startup::initial_epochs(&genesis, &state);
    let pool = AttestationPool::new(crate::pool::DEFAULT_CAPACITY);
    let last_commit = if state.height > 0 {
        store.commit(state.height)?
    } else {
        None
    };
    let guard = store.guard_position()?.map(from_store_pos);
    let c = &cfg.consensus;
    let timeouts = Timeouts {
        propose_ms: c.propose_timeout_ms,
        prevote_ms: c.prevote_timeout_ms,
        precommit_ms: c.precommit_timeout_ms,
        delta_ms: c.timeout_delta_ms,
        commit_ms: c.block_interval_ms,
    };
    let mut driver = Driver::new(
        genesis.clone(),
        state.clone(),
        last_commit,
        Some(signer.clone()),
        guard,
        timeouts,
    );

    // Replay the WAL before taking any network input.
    let mut pending = Vec::new();
    let (mut own, mut received) = (0, 0);
    for entry in store.wal_entries_from(driver.height())? {
        match entry.kind {
            WalKind::Own => {
                pending.extend(driver.handle(now_ms(), Input::RestoreOwn(entry.msg))?);
                own += 1;
            }
            WalKind::Received => {
                if let Some(input) = check_message(&driver, &entry.msg) {
                    if let Ok(fx) = driver.handle(now_ms(), input) {
                        pending.extend(fx);
                    }
                    received += 1;
                }
            }
        }
    }
    info!(
        height = state.height,
        own, received, "chain state rebuilt and WAL replayed"
    );

    let (heads, _) = broadcast::channel(256);
    let (req_tx, mut req_rx) = mpsc::channel(1024);
    let metrics = Arc::new(Metrics::new());
    let shared = Arc::new(Shared {
        genesis: genesis.clone(),
        signer: signer.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        status: RwLock::new(Status {
            finalized_height: state.height,
            finalized_hash: state.last_hash,
            consensus_height: driver.height(),
            epoch: state.weights.epoch,
            ..Default::default()
        }),
        epochs: RwLock::new(epochs),
        heads,
        head: RwLock::new(None),
        requests: req_tx,
        version: env!("CARGO_PKG_VERSION"),
        evidence: RwLock::new(Default::default()),
    });
    if state.height > 0 {
        let block = store
            .block(state.height)?
            .with_context(|| format!("the stored head B{} has no block", state.height))?;
        *shared.head.write().expect("head lock") = Some(Arc::new(HeadEvent {
            height: state.height,
            hash: state.last_hash,
            header: block.header.unwrap_or_default(),
        }));
    }

    // Network, API and metrics.
    let listen = cfg
        .p2p
        .listen
        .parse()
        .with_context(|| format!("p2p.listen {:?} is not host:port", cfg.p2p.listen))?;
    let peers = cfg
        .p2p
        .peers
        .iter()
        .map(|p| peer_multiaddr(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut p2p_cfg = P2pConfig::new(
        bizra_p2p::keypair_from_ed25519_secret(signer.secret_bytes()),
        listen,
        genesis.chain_id(),
    );
    p2p_cfg.peers = peers;
    p2p_cfg.max_message_bytes = cfg.p2p.max_message_bytes;
    p2p_cfg.validator_count = genesis.members.len();
    p2p_cfg.direct = names_every_validator(&genesis, signer.id(), &cfg.p2p.peers);
    let (sync_tx, sync_rx) = tokio::sync::mpsc::channel(SYNC_SERVER_QUEUE);
    p2p_cfg.sync_requests = Some(sync_tx);
    let p2p_cfg_direct = p2p_cfg.direct;
    if p2p_cfg_direct {
        info!("direct mode: the configured peers name every validator; consensus messages go one hop, unrelayed");
    }
    let (p2p, mut events) = bizra_p2p::start(p2p_cfg)
        .await
        .with_context(|| format!("p2p listen {listen}"))?;
    tokio::spawn(sync_server(
        sync_rx,
        p2p.clone(),
        shared.clone(),
        store.clone(),
        cfg.p2p.max_message_bytes,
    ));
    let servers = servers::start(shared.clone(), &cfg, stop.clone()).await?;
    info!(validator = %signer.id(), p2p = %listen, grpc = %cfg.grpc.listen, metrics = %cfg.metrics.listen, "node started");

    let mut engine = Engine {
        shared: shared.clone(),
        driver,
        store,
        p2p: p2p.clone(),
        sync: SyncState::default(),
        timers: BTreeMap::new(),
        timer_seq: 0,
        published: HashSet::new(),
        attempt: rand::random::<u64>() >> 1,
        height_started: Instant::now(),
        last_block_at: None,
        max_block_attestations: cfg.consensus.max_block_attestations,
        pool,
        max_message_bytes: cfg.p2p.max_message_bytes,
        last_status_ask: Instant::now(),
        applying_synced: false,
        synced_batch: Vec::new(),
        att_outbox: admission::Outbox::new(ATT_BATCH_MAX, cfg.p2p.max_message_bytes / 4, ATT_BATCH_DELAY),
        verified: HashMap::new(),
        logs: log_limit::LogLimiter::default(),
        payloads_verified: admission::VerifiedPayloads::default(),
        verified_height: 0,
        relay_consensus: !p2p_cfg_direct,
        pending_commit: None,
        status_cursor: 0,
        evidence: EvidencePool::new(),
        last_evidence_gossip: Instant::now(),
    };
    engine.set_weight_metrics();
    engine.execute(pending).await?;
    let fx = engine.driver.start(now_ms());
    engine.execute(fx).await?;
    engine.shared.status.write().expect("status").serving = true;

    let mut history = {
        let (g, store, snapshot) = (genesis.clone(), engine.store.clone(), state.clone());
        tokio::task::spawn_blocking(move || startup::replay_history(&g, store.as_ref(), &snapshot))
    };
    let mut history_done = false;
    let mut status_tick = tokio::time::interval(STATUS_INTERVAL);
    let result = loop {
        engine.refresh_status();
        let next = engine.timers.keys().next().map(|(t, _)| *t);
        let att_due = engine.att_outbox.deadline();
        let sleep = tokio::time::sleep_until(
            next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
                .into(),
        );
        let step: anyhow::Result<()> = tokio::select! {
            _ = stop.wait_for(|v| *v) => break Ok(()),
            ev = events.recv() => match ev {
                Some(ev) => engine.on_p2p(ev).await,
                None => break Err(anyhow::anyhow!("the p2p service stopped")),
            },
            Some(req) = req_rx.recv() => engine.on_request(req).await,
            _ = sleep => engine.fire_timers().await,
            _ = tokio::time::sleep_until(att_due.unwrap_or_else(Instant::now).into()), if att_due.is_some() => {
                engine.flush_attestations().await
            }
            done = &mut history, if !history_done => {
                history_done = true;
                match done {
                    Ok(Ok(past)) => {
                        let mut epochs = engine.shared.epochs.write().expect("epochs");
                        let n = past.epochs.len();
                        for (e, w) in past.epochs {
                            epochs.entry(e).or_insert(w);
                        }
                        let mut index = engine.shared.evidence.write().expect("evidence index");
                        for (v, h, i) in past.evidence {
                            index.add(v, h, i);
                        }
                        index.complete = true;
                        info!(epochs = n, "history re-checked against the chain-state snapshot");
                        Ok(())
                    }
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(anyhow::anyhow!("history check: {e}")),
                }
            }
            _ = status_tick.tick() => {
                engine.store_pending_commit();
                engine.regossip_evidence().await;
                engine.ask_status().await;
                Ok(())
            }
        };
        if let Err(e) = step {
            break Err(e);
        }
    };
    info!("shutting down");
    engine.store_pending_commit();
    engine.shared.status.write().expect("status").serving = false;
    p2p.shutdown();
    let flushed = engine.store.flush();
    servers.join(Duration::from_secs(3)).await;
    flushed?;
    result
}

/// Checks a consensus message (signature, chain, membership) into a driver input.
fn check_message(driver: &Driver, msg: &ConsensusMessage) -> Option<Input> {
    match &msg.msg {
        Some(Msg::Vote(sv)) => driver.check_vote(sv).ok().map(Input::Vote),
        Some(Msg::Proposal(sp)) => driver.check_proposal(sp).ok().map(Input::Proposal),
        None => None,
    }
}

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
    /// `verified_height`: see [`Engine::check_gossip_once`].
    verified: HashMap<[u8; 32], u8>,
    /// Warnings that outside input triggers are rate-limited (issue 14, D8).
    logs: log_limit::LogLimiter,
    /// Attestations of gossiped proposals already verified (issue 14, D3).
    payloads_verified: admission::VerifiedPayloads,
    verified_height: u64,
    /// The latest certificate grown by late precommits, not yet stored.
    pending_commit: Option<bizra_proto::CommitCertificate>,
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
        s.best_peer_height = self.sync.best_seen.max(self.sync.best_height());
        let solo = self.shared.genesis.members.len() == 1;
        s.catching_up = self
            .sync
            .catching_up(s.finalized_height, self.driver.max_seen_height(), solo);
        self.metrics().consensus_round.set(self.driver.round() as i64);
        self.metrics().peers.set(s.peers as i64);
        self.metrics().catching_up.set(i64::from(s.catching_up));
        self.metrics().validators.set(self.shared.genesis.members.len() as i64);
    }

    async fn execute(&mut self, fx: Vec<Effect>) -> anyhow::Result<()> {
        let mut queue: VecDeque<Effect> = fx.into();
        while let Some(e) = queue.pop_front() {
            match e {
                Effect::PersistOwn { position, msg } => {
                    // Blocks before anything we sign after them.
                    self.store_synced_batch()?;
                    // Durable before anything else happens: guard, then WAL, both synced.
                    let entry = WalEntry {
                        height: position.height,
                        kind: WalKind::Own,
                        msg,
                    };
                    self.store
                        .persist_own(to_store_pos(position), &entry)
                        .context("sign guard and WAL")?;
                }
                Effect::Broadcast(msg) => self.publish(msg).await,
                Effect::ScheduleTimeout { timeout, after_ms } => {
                    self.timer_seq += 1;
                    self.timers.insert(
                        (Instant::now() + Duration::from_millis(after_ms), self.timer_seq),
                        timeout,
                    );
                }
                Effect::RequestValue { height, round } => {
                    if height != self.driver.height() {
                        continue; // a height a synced range has already passed
                    }
                    let attestations = self.payload_for_block();
                    let evidence = self.evidence_for_block();
                    let fx = self.driver.handle(
                        now_ms(),
                        Input::ProposeValue {
                            height,
                            round,
                            attestations,
                            evidence,
                        },
                    )?;
                    queue.extend(fx);
                }
                Effect::Decided {
                    block,
                    hash,
                    commit,
                    round,
                    state,
                } => {
                    let d = Decision {
                        block,
                        hash,
                        commit,
                        round,
                        state: *state,
                    };
                    if self.applying_synced {
                        // Stored with the rest of the range, in one write.
                        self.synced_batch.push(d);
                    } else {
                        self.on_decided(d)?;
                    }
                }
                Effect::CommitUpdated(c) => {
                    // Late precommits arrive one by one after the decision
                    // (dozens at 100 validators); the grown certificate is
                    // written once, with the next block or status tick.
                    if self.pending_commit.as_ref().is_none_or(|p| p.height <= c.height) {
                        self.pending_commit = Some(c);
                    }
                }
                Effect::Evidence(eq) => self.on_equivocation(eq).await,
                Effect::Kept | Effect::Known => {} // handled by the gossip path, which holds the bytes
                Effect::SyncNeeded { from, seen } => {
                    // Normal for a moment after each block; ask at most twice a second.
                    if self.last_status_ask.elapsed() >= Duration::from_millis(500) {
                        debug!(from, seen, "messages from a higher height: asking peers");
                        self.ask_status().await;
                    }
                }
            }
        }
        Ok(())
    }

    fn payload_for_block(&mut self) -> Vec<bizra_proto::Envelope> {
        self.pool.take_for_block(self.max_block_attestations)
    }

    /// Writes the certificate grown by late precommits, if any (unflushed:
    /// the caller's next flush makes it durable).
    fn store_pending_commit(&mut self) {
        if let Some(c) = self.pending_commit.take() {
            if let Err(e) = self.store.update_commit_unsynced(&c) {
                warn!("late precommits not stored: {e}");
            }
        }
    }

    fn on_decided(&mut self, d: Decision) -> anyhow::Result<()> {
        self.store_pending_commit();
        self.store
            .put_finalized(&d.block, &d.commit, &d.state.to_bytes())
            .context("store finalized block")?;
        self.after_stored(d)
    }

    /// Stores the synced blocks decided so far in one write (not flushed:
    /// see `on_sync_response`), then does for each what follows a decision.
    fn store_synced_batch(&mut self) -> anyhow::Result<()> {
        let Some(last) = self.synced_batch.last() else {
            return Ok(());
        };
        let state = last.state.to_bytes();
        let batch = std::mem::take(&mut self.synced_batch);
        let items: Vec<_> = batch.iter().map(|d| (&d.block, &d.commit)).collect();
        self.store
            .put_finalized_range(&items, &state)
            .context("store synced blocks")?;
        for d in batch {
            self.after_stored(d)?;
        }
        Ok(())
    }

    /// What follows a stored decision: metrics, pool, epochs, status, head.
    fn after_stored(&mut self, d: Decision) -> anyhow::Result<()> {
        let Decision {
            block,
            hash,
            commit,
            round,
            state,
        } = d;
        let height = state.height;
        // Replay reads only entries at or above the next height, so older
        // ones are dead weight: drop them every WAL_PRUNE_EVERY heights
        // rather than paying the prune (and its anchor fsync) per height.
        if (height + 1).is_multiple_of(WAL_PRUNE_EVERY) && !self.applying_synced {
            if let Err(e) = self.store.wal_prune_below(height + 1) {
                warn!("WAL prune: {e}");
            }
        }
        let now = Instant::now();
        self.metrics()
            .finality_latency
            .observe(now.duration_since(self.height_started).as_secs_f64());
        if let Some(prev) = self.last_block_at {
            self.metrics()
                .block_interval
                .observe(now.duration_since(prev).as_secs_f64());
        }
        self.last_block_at = Some(now);
        self.height_started = now;
        self.metrics().consensus_height.set(height as i64);
        self.metrics().rounds_per_height.observe(round as f64 + 1.0);
        let tally = certificate::tally_trusted(&self.shared.genesis.members, &state.last_weights, &commit);
        self.metrics()
            .commit_weight_share_bps
            .set(quorum::share_bps(tally.signed_weight, tally.total_weight) as i64);
        self.published.clear();
        self.evidence_after_block(&block, &state);
        let members = &self.shared.genesis.members;
        self.pool.remove_finalized(
            block
                .attestations
                .iter()
                .map(|e| FinalizedKey::from_envelope(e, members)),
        );
        if !block.attestations.is_empty() {
            let finalized = crate::metrics::ResultLabel {
                result: "finalized".into(),
            };
            self.metrics()
                .attestations
                .get_or_create(&finalized)
                .inc_by(block.attestations.len() as u64);
        }
        let new_epoch = {
            let mut epochs = self.shared.epochs.write().expect("epochs");
            let fresh = !epochs.contains_key(&state.weights.epoch);
            epochs
                .entry(state.weights.epoch)
                .or_insert_with(|| state.weights.clone());
            fresh
        };
        {
            let mut s = self.shared.status.write().expect("status");
            s.finalized_height = height;
            s.finalized_hash = hash;
            s.epoch = state.weights.epoch;
        }
        if new_epoch {
            info!(epoch = state.weights.epoch, "new epoch: weights recomputed");
            self.set_weight_metrics();
        }
        let header = block.header.clone().unwrap_or_default();
        debug!(height, round, hash = %hex::encode(&hash[..4]), "finalized");
        self.shared.publish_head(HeadEvent { height, hash, header });
        Ok(())
    }

    fn set_weight_metrics(&self) {
        let Some(w) = self.shared.current_weights() else { return };
        for (i, m) in self.shared.genesis.members.iter().enumerate() {
            let v = m.id.clone();
            self.metrics()
                .wq_weight
                .get_or_create(&ValidatorLabel { validator: v.clone() })
                .set(w.weights[i] as f64);
            let label = ValidatorLabel { validator: v.clone() };
            self.metrics()
                .jailed
                .get_or_create(&label)
                .set(i64::from(w.is_jailed(i)));
            self.metrics()
                .jailed_until
                .get_or_create(&label)
                .set(w.jailed_until(i) as i64);
            let c = &w.components[i];
            for (name, val) in [("stake", c.stake), ("poi", c.poi), ("rep", c.rep)] {
                self.metrics()
                    .wq_weight_component
                    .get_or_create(&ComponentLabels {
                        validator: v.clone(),
                        component: name.into(),
                    })
                    .set(val as f64);
            }
        }
    }

    async fn publish(&mut self, mut msg: ConsensusMessage) {
        let content = content_key(&msg);
        msg.attempt = 0;
        // A re-send (ours again, or a vote we received and now relay in a
        // polka) needs bytes no peer has seen, or gossip drops it as a
        // duplicate. `attempt` starts at a random value per process, so two
        // validators re-sending the same vote do not collide either.
        let first_own_send = self.published.insert(content) && !self.verified.contains_key(&content);
        if !first_own_send {
            self.attempt = self.attempt.wrapping_add(1).max(1);
            msg.attempt = self.attempt;
        }
        let topic = match msg.msg {
            Some(Msg::Proposal(_)) => Topic::Proposals,
            _ => Topic::Votes,
        };
        let data = msg.encode_to_vec();
        if let Some(kind) = msg_kind(&msg) {
            self.metrics()
                .message(kind, Direction::Sent, data.len(), self.p2p.connected_peers());
        }
        if let Err(e) = self.p2p.publish(topic, data).await {
            if e.is_benign() {
                debug!("publish: {e}");
            } else {
                warn!("publish: {e}");
            }
        }
    }

    async fn fire_timers(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        while let Some((&(at, seq), _)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            let t = self.timers.remove(&(at, seq)).expect("present");
            if t.height != self.driver.height() {
                continue;
            }
            let fx = self.driver.handle(now_ms(), Input::Timeout(t))?;
            self.execute(fx).await?;
        }
        Ok(())
    }

    async fn on_request(&mut self, req: EngineRequest) -> anyhow::Result<()> {
        match req {
            EngineRequest::SubmitAttestation {
                envelope,
                checked,
                reply,
            } => {
                let result = admission::admit_checked(self.store.as_ref(), &mut self.pool, *checked, &envelope);
                match &result {
                    Ok(id) => {
                        self.metrics().attestation("accepted");
                        debug!(%id, "attestation accepted");
                        if let Some(batch) = self.att_outbox.push(envelope, Instant::now()) {
                            self.publish_attestations(batch).await;
                        }
                    }
                    Err(e) => {
                        self.metrics().attestation("rejected");
                        debug!("attestation refused: {e}");
                    }
                }
                let _ = reply.send(result);
            }
        }
        Ok(())
    }

    async fn publish_attestations(&mut self, batch: Vec<u8>) {
        if let Err(e) = self.p2p.publish(Topic::Attestations, batch).await {
            debug!("publish attestations: {e}");
        }
    }

    /// Gossips the attestations waiting in the outbox.
    async fn flush_attestations(&mut self) -> anyhow::Result<()> {
        if let Some(batch) = self.att_outbox.take() {
            self.publish_attestations(batch).await;
        }
        Ok(())
    }

    async fn on_p2p(&mut self, ev: P2pEvent) -> anyhow::Result<()> {
        match ev {
            P2pEvent::Gossip {
                topic: Topic::Attestations,
                data,
                source,
                id,
            } => {
                let g = self.shared.genesis.clone();
                let verdict = match admission::admit_batch(&g, self.store.as_ref(), &mut self.pool, &data, now_ms()) {
                    admission::BatchVerdict::Accept { admitted } => {
                        self.metrics().attestations_by("gossip_accepted", admitted as u64);
                        Validation::Accept
                    }
                    admission::BatchVerdict::Ignore { .. } => Validation::Ignore,
                    admission::BatchVerdict::Reject { admitted, reason } => {
                        self.metrics().attestations_by("gossip_accepted", admitted as u64);
                        self.metrics().attestation("gossip_rejected");
                        debug!(%source, "attestation batch rejected: {reason}");
                        Validation::Reject
                    }
                };
                self.p2p.report_validation(id, source, verdict);
            }
            P2pEvent::Gossip {
                topic: Topic::Evidence,
                data,
                source,
                id,
            } => {
                let verdict = self.on_evidence_gossip(&data);
                self.p2p.report_validation(id, source, verdict);
            }
            P2pEvent::Gossip {
                topic,
                data,
                source,
                id,
            } => {
                let GossipCheck { verdict, input } = self.check_gossip_once(topic, &data);
                let verdict = match verdict {
                    Validation::Accept if !self.relay_consensus => Validation::Ignore,
                    v => v,
                };
                self.p2p.report_validation(id, source, verdict);
                if let Some((input, msg, key)) = input {
                    let height = input_height(&input).unwrap_or(0);
                    let current = height == self.driver.height();
                    let fx = self.driver.handle(now_ms(), input)?;
                    if fx.contains(&Effect::Known) && self.verified.len() < MAX_VERIFIED {
                        // Already held (a late precommit the certificate
                        // carried, say): copies need no second check either.
                        self.verified.insert(key, 1);
                    }
                    if fx.contains(&Effect::Kept) {
                        // Only what the driver kept (its quotas bound it), so
                        // a validator signing far-future or far-round messages
                        // cannot grow the WAL; and only kept content skips
                        // verification when re-sent (a vote dropped by the
                        // round window is delivered when it comes again).
                        if self.verified.len() < MAX_VERIFIED {
                            self.verified.insert(key, 1);
                        }
                        // The WAL holds what a restart at this height needs:
                        // messages of this height (future ones come again).
                        if current {
                            let entry = WalEntry {
                                height,
                                kind: WalKind::Received,
                                msg,
                            };
                            if let Err(e) = self.store.wal_append(&entry, false) {
                                warn!("WAL append (received): {e}");
                            }
                        }
                    }
                    self.execute(fx).await?;
                }
            }
            P2pEvent::SyncRequest { peer, request, channel } => {
                let resp = self.serve_sync(&request);
                debug!(%peer, "served sync request");
                self.p2p.respond(channel, resp);
            }
            P2pEvent::SyncResponse {
                peer,
                request_id,
                response,
            } => self.on_sync_response(peer, request_id, response).await?,
            P2pEvent::SyncFailure {
                peer,
                request_id,
                error,
            } => {
                debug!(%peer, request_id, "sync request failed: {error}");
                if self.sync.take_inflight(&peer, request_id).is_some() {
                    // It claimed blocks it did not serve: ask someone else.
                    let ours = self.shared.status().finalized_height;
                    self.sync.failed(&peer, ours);
                }
            }
            P2pEvent::PeerConnected(peer) => {
                info!(%peer, "peer connected");
                self.request(peer, Req::Status(StatusRequest {})).await;
            }
            P2pEvent::PeerDisconnected(peer) => {
                info!(%peer, "peer disconnected");
                self.sync.forget(&peer);
            }
        }
        Ok(())
    }

    /// [`Engine::check_gossip`], after the checks that cost no signature:
    /// the encoding must be canonical (prost drops unknown fields, so padded
    /// or re-encoded variants of one signed message would all pass as new
    /// gossip: a strike), and the driver must be able to use the claim
    /// ([`Driver::admit`]: heights, rounds, proposer, future quotas; else it
    /// is ignored unverified). A re-send of signed content the driver kept at
    /// this height (a rebroadcast differs only in the unsigned `attempt`) is
    /// forwarded without verifying it again, at most [`MAX_FORWARDS`] times
    /// per height, and not shown to the driver, which already has it. At 100
    /// validators re-sends were most of the signature checks.
    fn check_gossip_once(&mut self, topic: Topic, data: &[u8]) -> GossipCheck {
        if self.verified_height != self.driver.height() {
            self.verified.clear();
            self.verified_height = self.driver.height();
        }
        if topic == Topic::Attestations || topic == Topic::Evidence {
            return GossipCheck::verdict(Validation::Ignore);
        }
        let Ok(msg) = ConsensusMessage::decode(data) else {
            self.metrics().vote("unknown", "malformed");
            return GossipCheck::verdict(Validation::Reject);
        };
        let label = match msg_kind(&msg) {
            Some(kind) => {
                self.metrics().message(kind, Direction::Received, data.len(), 1);
                crate::metrics::MSG_KINDS[kind as usize]
            }
            None => topic_kind(topic),
        };
        // The claim first: what the driver cannot use costs no encoding
        // check and no signature (a 4 MiB block is decoded once, then dropped).
        if let Some(claim) = self.driver.claim(&msg) {
            if let Admission::Drop(reason) = self.driver.admit(&claim) {
                self.metrics().vote(label, reason.as_str());
                return GossipCheck::verdict(Validation::Ignore);
            }
        }
        if !is_canonical(&msg, data) {
            self.metrics().vote(label, "non_canonical");
            return GossipCheck::verdict(Validation::Reject);
        }
        let key = canonical_content_key(&msg, data);
        if let Some(copies) = self.verified.get_mut(&key) {
            *copies = copies.saturating_add(1);
            let copies = *copies;
            self.metrics().vote(label, "resent");
            let verdict = if copies <= MAX_FORWARDS {
                Validation::Accept
            } else {
                Validation::Ignore
            };
            return GossipCheck::verdict(verdict);
        }
        let (verdict, input) = self.check_gossip(topic, msg);
        GossipCheck {
            verdict,
            input: input.map(|(i, m)| (i, m, key)),
        }
    }

    /// Validates a decoded gossip message before it may be forwarded: decoding, topic,
    /// signature, chain and membership (Reject, which penalizes the sender),
    /// then the height window (Ignore: not forwarded, no penalty).
    fn check_gossip(&mut self, topic: Topic, msg: ConsensusMessage) -> (Validation, Option<(Input, ConsensusMessage)>) {
        let kind = match (&msg.msg, topic) {
            (Some(Msg::Vote(_)), Topic::Votes) => "vote",
            (Some(Msg::Proposal(_)), Topic::Proposals) => "proposal",
            _ => {
                self.metrics().vote("unknown", "wrong_topic");
                return (Validation::Reject, None);
            }
        };
        let Some(input) = check_message(&self.driver, &msg) else {
            self.metrics().vote(kind, "invalid");
            return (Validation::Reject, None);
        };
        let kind = match &input {
            Input::Vote(v) if v.kind == bizra_proto::VoteKind::Precommit => "precommit",
            Input::Vote(_) => "prevote",
            _ => "proposal",
        };
        if let Input::Proposal(p) = &input {
            let checked = admission::check_payload(
                &self.shared.genesis,
                self.store.as_ref(),
                &self.pool,
                &mut self.payloads_verified,
                p.block(),
            );
            if let Err(e) = checked {
                if let Some(suppressed) = self.logs.allow("proposal_refused", Instant::now()) {
                    warn!(proposer = %p.proposal().proposer, suppressed, "proposal refused: {e}");
                }
                self.metrics().vote(kind, "invalid_payload");
                return (Validation::Ignore, None);
            }
        }
        let h = input_height(&input).unwrap_or(0);
        let ours = self.driver.height();
        if h.saturating_add(1) < ours || h > ours.saturating_add(FUTURE_HEIGHTS) {
            self.metrics().vote(kind, "out_of_window");
            // Still show it to the driver: a far-future height means we are behind.
            return (Validation::Ignore, Some((input, msg)));
        }
        self.metrics().vote(kind, "accepted");
        (Validation::Accept, Some((input, msg)))
    }

    fn serve_sync(&self, req: &SyncRequest) -> SyncResponse {
        serve_sync(&self.shared, self.store.as_ref(), self.max_message_bytes, req)
    }

    async fn request(&mut self, peer: PeerId, req: Req) -> Option<u64> {
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
    async fn ask_status(&mut self) {
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

    async fn on_sync_response(&mut self, peer: PeerId, request_id: u64, response: SyncResponse) -> anyhow::Result<()> {
        match response.resp {
            Some(Resp::Status(s)) => {
                if self.sync.take_inflight(&peer, request_id).is_some() {
                    self.p2p.penalize(peer, "status answer to a block request");
                    let ours = self.shared.status().finalized_height;
                    self.sync.failed(&peer, ours);
                    return Ok(());
                }
                if s.chain_id != self.shared.genesis.chain_id() || s.genesis_hash != self.shared.genesis.hash {
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

/// The kind of a consensus message, for the message counters.
fn msg_kind(msg: &ConsensusMessage) -> Option<MsgKind> {
    match &msg.msg {
        Some(Msg::Proposal(_)) => Some(MsgKind::Proposal),
        Some(Msg::Vote(sv)) => match sv.vote.as_ref().map(|v| v.kind()) {
            Some(bizra_proto::VoteKind::Precommit) => Some(MsgKind::Precommit),
            Some(_) => Some(MsgKind::Prevote),
            None => None,
        },
        None => None,
    }
}

fn input_height(i: &Input) -> Option<u64> {
    match i {
        Input::Vote(v) => Some(v.height()),
        Input::Proposal(p) => Some(p.proposal().height),
        _ => None,
    }
}

#[cfg(test)]
mod gossip_tests {
    use super::*;
    use bizra_proto::{SignedVote, Vote};

    fn vote_msg(attempt: u64) -> ConsensusMessage {
        ConsensusMessage {
            msg: Some(Msg::Vote(SignedVote {
                vote: Some(Vote {
                    chain_id: "c".into(),
                    height: 3,
                    round: 1,
                    kind: 1,
                    block_hash: vec![9; 32],
                    validator: "v".into(),
                }),
                signature: vec![1; 64],
            })),
            attempt,
        }
    }

    /// D1: a real vote padded with an unknown field, or with a field
    /// repeated (prost keeps the last), decodes to the same message; only the
    /// one canonical encoding passes. Re-sends (other `attempt`) are
    /// canonical and share the content key, which bounds their forwarding.
    #[test]
    fn only_the_canonical_encoding_passes_and_attempts_share_a_content_key() {
        let m = vote_msg(0);
        let bytes = m.encode_to_vec();
        assert!(is_canonical(&m, &bytes));
        // Unknown field 15 (varint 1) appended.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[15 << 3, 1]);
        let d = ConsensusMessage::decode(padded.as_slice()).unwrap();
        assert_eq!(d, m, "prost drops the unknown field");
        assert!(!is_canonical(&d, &padded));
        // `attempt` encoded twice (the last one wins).
        let mut twice = vote_msg(5).encode_to_vec();
        twice.extend_from_slice(&[10 << 3, 5]);
        let d = ConsensusMessage::decode(twice.as_slice()).unwrap();
        assert!(!is_canonical(&d, &twice));
        let r = vote_msg(7);
        assert!(is_canonical(&r, &r.encode_to_vec()));
        assert_eq!(content_key(&r), content_key(&m));
        assert_ne!(r.encode_to_vec(), bytes);
        // The content key read off the canonical bytes is the same.
        for attempt in [0, 1, 127, 128, 300, u64::MAX] {
            let v = vote_msg(attempt);
            assert_eq!(
                canonical_content_key(&v, &v.encode_to_vec()),
                content_key(&m),
                "{attempt}"
            );
        }
    }
}
