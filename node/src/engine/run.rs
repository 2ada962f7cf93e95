//! [`run_engine`]: the start-up order (chain state from the stored snapshot,
//! the WAL replayed into the driver, only then p2p, the sync server, gRPC
//! and metrics) and the engine's event loop until the stop signal.

use super::gossip::check_message;
use super::setup::{driver_timeouts, names_every_validator, now_ms, peer_multiaddr, NodeSetup};
use super::sync::SyncState;
use super::sync_server::{sync_server, SYNC_SERVER_QUEUE};
use super::{log_limit, servers, startup, Engine};
use crate::admission;
use crate::evidence_pool::EvidencePool;
use crate::metrics::Metrics;
use crate::pool::AttestationPool;
use crate::state::{HeadEvent, Shared, Status};
use anyhow::Context as _;
use bizra_consensus::driver::{Driver, Input};
use bizra_p2p::P2pConfig;
use bizra_storage::WalKind;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{info, warn};

/// How often peers are asked for their status.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);
/// Attestations per gossip batch, at most ...
const ATT_BATCH_MAX: usize = 256;
/// ... and how long the first of a batch waits for company.
const ATT_BATCH_DELAY: Duration = Duration::from_millis(5);

/// Runs a loaded node until `stop` turns true. Starts from the chain-state
/// snapshot stored with the head, replays the WAL into the driver, then
/// starts p2p, the sync server, gRPC and metrics, marks the node serving and
/// runs the event loop (gossip and sync, API requests, timers, the
/// attestation outbox, the background history check, and every 2 s a status
/// round with late precommits stored and evidence re-gossiped). On stop or
/// error it stores late precommits, marks the node not serving, shuts p2p
/// down, flushes the store and waits up to 3 s for each server. Returns the
/// error that stopped the node, a failed history check ("data dir is
/// corrupt") included.
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
    let guard = store.guard_position()?;
    let timeouts = driver_timeouts(&cfg.consensus);
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
        wal_received: (0, Vec::new()),
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
                        let n = past.epoch_count;
                        for w in past.epochs.values() {
                            engine.shared.remember_epoch(w, true);
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
                for s in log_limit::take_foreign_suppressed() {
                    warn!(
                        target_module = %s.target,
                        callsite = s.callsite,
                        suppressed = s.count,
                        "warnings of another crate not written (at most {} a minute per call site)",
                        log_limit::PER_WINDOW
                    );
                }
                engine.write_received();
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
    engine.write_received();
    engine.store_pending_commit();
    engine.shared.status.write().expect("status").serving = false;
    p2p.shutdown();
    let flushed = engine.store.flush();
    servers.join(Duration::from_secs(3)).await;
    flushed?;
    result
}
