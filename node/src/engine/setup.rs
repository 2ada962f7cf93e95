//! Loading a node before anything starts (config, genesis, key, data dir),
//! its runtime, logging and signals, and the peer addresses and direct mode
//! derived from `p2p.peers`.

use super::run_engine;
use crate::config::{parse_peer, resolve, ConsensusSection, NodeConfig};
use bizra_consensus::driver::Timeouts;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::signing::Signer;
use bizra_storage::{Compaction, DataDirIdentity, SledStore, Store};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tracing::error;

/// Milliseconds since the Unix epoch by the system clock (0 before 1970):
/// the time the driver and the attestation rules are given.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sets up `tracing` from the config (`log.format`, `log.level`; `RUST_LOG`
/// overrides the level). Warnings from other crates are rate-limited per
/// call site (`log_limit::ForeignWarnings`): a peer can make libp2p warn once
/// per message.
pub fn init_logging(format: &str, level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let registry = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let foreign = super::log_limit::foreign_warnings();
    let _ = if format == "json" {
        registry.with(fmt.json().with_filter(foreign)).try_init()
    } else {
        registry.with(fmt.with_filter(foreign)).try_init()
    };
}

/// Everything `bizra run` needs, loaded and checked before anything starts.
pub struct NodeSetup {
    /// The config, environment overrides applied and validated.
    pub cfg: NodeConfig,
    /// The genesis file, parsed and checked.
    pub genesis: Arc<Genesis>,
    /// This validator's key, a member of the genesis validator set.
    pub signer: Signer,
    /// The sled data dir, opened for this chain id, genesis hash and
    /// validator.
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
    // Blocks and commits are stored compactly over the genesis validator
    // order (docs/adr/0021).
    let compaction = Compaction::new(genesis.chain_id(), genesis.members.clone());
    let store = SledStore::open_compact(&data, &identity, cfg.storage.cache_mib << 20, compaction)
        .map_err(|e| format!("data dir {}: {e}", data.display()))?;
    Ok(NodeSetup {
        cfg,
        genesis: Arc::new(genesis),
        signer,
        store: Arc::new(store),
    })
}

/// Why `bizra run` stopped with an error: the setup was refused before
/// anything started (bad input, exit 2), or the running node failed (exit 1).
#[derive(Debug)]
pub enum RunError {
    /// Config, genesis, key or data dir refused; nothing started.
    Setup(String),
    /// The node stopped on an error.
    Stopped(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Setup(m) | RunError::Stopped(m) => f.write_str(m),
        }
    }
}

/// Runs one validator until SIGINT/SIGTERM (`bizra run`).
pub fn run_node(home: &Path) -> Result<(), RunError> {
    let setup = load(home).map_err(RunError::Setup)?;
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
        RunError::Stopped(format!("{e:#}"))
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
        return tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_signal() {
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

/// Whether the configured peers (`<validator-id>@host:port`) name every
/// validator of `genesis` other than `me`: then the node runs in direct mode
/// (ADR 0012).
pub(super) fn names_every_validator(genesis: &bizra_consensus::genesis::Genesis, me: &str, peers: &[String]) -> bool {
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

pub(super) fn peer_multiaddr(spec: &str) -> anyhow::Result<bizra_p2p::Multiaddr> {
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

/// The driver's timeouts from the `[consensus]` section.
pub fn driver_timeouts(c: &ConsensusSection) -> Timeouts {
    Timeouts {
        propose_ms: c.propose_timeout_ms,
        prevote_ms: c.prevote_timeout_ms,
        precommit_ms: c.precommit_timeout_ms,
        delta_ms: c.timeout_delta_ms,
        commit_ms: c.block_interval_ms,
    }
}
