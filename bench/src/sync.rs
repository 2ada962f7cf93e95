//! `bizra bench sync`: how fast a late node catches up.
//!
//! 1. `testnet init` with 2 validators, then a genesis written here with the
//!    same keys but weight parameters that let node0 finalize alone:
//!    `base = 1, stake_gain = 1000, poi_gain = rep_gain = 0` and stakes 10^8
//!    vs 1, so node0 holds 10^7+1 of 10^7+1002 (99.99 %) of the weight.
//! 2. The chain: N blocks generated in-process into node0's data dir with the
//!    consensus crate (`ChainState::build_block`, validated, one precommit
//!    signed with node0's key, `SledStore::put_finalized`) — much faster than
//!    running consensus for N heights, and the same bytes a node writes.
//! 3. node0 starts on that chain (block_interval_ms = 1000, so it adds about
//!    one block per second while we measure); then node1 starts with an empty
//!    data dir and syncs. Its `GetStatus` is polled every 10 ms: the rate is
//!    the heights gained from its first synced block to height N, over that
//!    time (also reported: the 10 %..90 % rate and the wall time from spawn).
//!
//! Every synced block costs node1 two Ed25519 verifications (its certificate
//! and the parent's certificate inside it), the block checks, and one
//! flushed `put_finalized`.

use super::common::{self, Goal, Nodes, Scrape};
use crate::{failed, usage, BenchError, BenchResult};
use bizra_consensus::chain::ChainState;
use bizra_consensus::genesis::{Genesis, GenesisDoc, GenesisParams, GenesisValidator};
use bizra_consensus::messages::{new_vote, sign_vote};
use bizra_consensus::signing::Signer;
use bizra_consensus::weights::WeightParams;
use bizra_proto::{CommitCertificate, GetStatusRequest, VoteKind};
use bizra_storage::{Compaction, DataDirIdentity, SledStore, Store, DEFAULT_CACHE_BYTES};
use bizra_testnet::write;
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Length of the chain the late node catches up on.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub blocks: u64,
    /// Give up after this many seconds of catching up (the partial rate is still reported).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// First port (peers P+K, gRPC P+100+K, metrics P+200+K).
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// Testnet directory, created fresh (default: a new temporary directory, removed afterwards).
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// Override every node's log.level (e.g. `warn`); default: as generated (`info`).
    #[arg(long)]
    pub log_level: Option<String>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

const CHAIN_ID: &str = "bizra-bench-sync";

pub fn run(a: SyncArgs) -> BenchResult {
    bizra_testnet::check_ports_free(a.base_port, 2).map_err(|e| usage(format!("{e:#}")))?;
    let home = common::bench_home(&a.home, "sync");
    let init = write::Options {
        validators: 2,
        out: home.clone(),
        chain_id: CHAIN_ID.into(),
        base_port: a.base_port,
        host_template: "127.0.0.1".into(),
        epoch_length: 100,
        block_interval_ms: 1000,
    };
    let homes = write::init(&init).map_err(usage)?;
    let signers: Vec<Signer> = homes
        .iter()
        .map(|h| bizra_node::keys::read(&h.join("validator.key")).map_err(|e| usage(format!("{e:#}"))))
        .collect::<Result<_, _>>()?;
    let genesis = write_genesis(&home, &homes, &signers, a.blocks)?;
    println!(
        "bench sync: 2 validators in {} (node0 holds 99.99% of the weight), generating {} blocks",
        home.display(),
        a.blocks
    );
    let t = Instant::now();
    let gen_rss_before = common::self_hwm_kib();
    generate(&genesis, &signers[0], &homes[0].join("data"), a.blocks)?;
    let gen_secs = t.elapsed().as_secs_f64();
    println!(
        "generated {} blocks in {gen_secs:.1} s ({:.0} blocks/s, one flushed put_finalized each)",
        a.blocks,
        a.blocks as f64 / gen_secs
    );

    let rt = crate::runtime();
    let mut nodes = Nodes::new(homes, a.base_port, a.log_level.as_deref());
    let result = rt.block_on(measure(&mut nodes, &a, gen_secs, gen_rss_before));
    nodes.stop_all();
    drop(rt);
    if a.home.is_none() && result.is_ok() {
        let _ = std::fs::remove_dir_all(&home);
    }
    result
}

/// The genesis that lets node0 finalize alone, written over the generated one.
fn write_genesis(home: &Path, homes: &[PathBuf], signers: &[Signer], blocks: u64) -> Result<Genesis, BenchError> {
    let now = bizra_node::engine::now_ms();
    let doc = GenesisDoc {
        chain_id: CHAIN_ID.into(),
        // Block k gets time genesis + k ms: all in the past.
        genesis_time_ms: now.saturating_sub(blocks + 60_000),
        params: GenesisParams {
            weights: WeightParams {
                base: 1,
                poi_gain: 0,
                rep_gain: 0,
                stake_gain: 1000,
                ..WeightParams::default()
            },
            ..GenesisParams::default()
        },
        validators: vec![
            GenesisValidator {
                id: signers[0].id().to_string(),
                stake: 100_000_000,
                name: "node0".into(),
            },
            GenesisValidator {
                id: signers[1].id().to_string(),
                stake: 1,
                name: "node1".into(),
            },
        ],
    };
    let (g, bytes) = Genesis::from_doc(&doc).map_err(|e| failed(format!("bench genesis: {e}")))?;
    for p in std::iter::once(home.join("genesis.json")).chain(homes.iter().map(|h| h.join("genesis.json"))) {
        std::fs::write(&p, &bytes).map_err(|e| usage(format!("{}: {e}", p.display())))?;
    }
    Ok(g)
}

/// N finalized blocks in node0's data dir, each validated against its parent
/// and certified by node0's precommit.
fn generate(g: &Genesis, signer: &Signer, data: &Path, n: u64) -> Result<(), BenchError> {
    let identity = DataDirIdentity {
        chain_id: g.chain_id().to_string(),
        genesis_hash: g.hash,
        validator: signer.id().to_string(),
    };
    // As the node stores them: compactly (docs/adr/0021).
    let compaction = Compaction::new(g.chain_id(), g.members.clone());
    let store = SledStore::open_compact(data, &identity, DEFAULT_CACHE_BYTES, compaction)
        .map_err(|e| failed(format!("data dir {}: {e}", data.display())))?;
    let mut state = ChainState::genesis(g);
    let mut last_commit: Option<CommitCertificate> = None;
    for h in 1..=n {
        let proposer = g.members.get(state.proposer(0)).id.clone();
        let time = g.doc.genesis_time_ms + h;
        let block = state.build_block(g, &proposer, time, last_commit.take(), Vec::new());
        let hash = state
            .validate_block(g, &block)
            .map_err(|e| failed(format!("generated block {h}: {e}")))?;
        let vote = sign_vote(
            signer,
            new_vote(g.chain_id(), h, 0, VoteKind::Precommit, Some(hash), signer.id()),
        );
        let commit = CommitCertificate {
            height: h,
            round: 0,
            block_hash: hash.to_vec(),
            precommits: vec![vote],
        };
        state.apply(g, &block, hash);
        store
            .put_finalized(&block, &commit, &state.to_bytes())
            .map_err(|e| failed(format!("store block {h}: {e}")))?;
        last_commit = Some(commit);
    }
    store.flush().map_err(|e| failed(format!("flush: {e}")))?;
    Ok(())
}

async fn measure(nodes: &mut Nodes, a: &SyncArgs, gen_secs: f64, gen_rss: Option<u64>) -> BenchResult {
    let n = a.blocks;
    nodes.start(0)?;
    common::wait_ready(nodes, &[0], n, false, Duration::from_secs(300)).await?;
    println!("node0 serves B{n}; starting node1");

    let url1 = nodes.grpc_url(1);
    let spawn = Instant::now();
    nodes.start(1)?;
    let cpu = common::CpuWindow::start(nodes.pids());
    let mut client = None;
    let mut series: Vec<(Duration, u64)> = Vec::new();
    let mut up: Option<Duration> = None;
    let deadline = spawn + Duration::from_secs(a.timeout);
    let mut timed_out = false;
    loop {
        nodes.check_alive()?;
        if client.is_none() {
            client = common::connect(&url1).await;
            if client.is_some() {
                up.get_or_insert(spawn.elapsed());
            }
        }
        if let Some(c) = client.as_mut() {
            match c.get_status(GetStatusRequest {}).await {
                Ok(s) => {
                    let h = s.into_inner().finalized_height;
                    series.push((spawn.elapsed(), h));
                    if h >= n {
                        break;
                    }
                }
                Err(_) => client = None,
            }
        }
        if Instant::now() > deadline {
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu = cpu.stop();
    let scrape = common::scrape(nodes.metrics_port(1)).await.map(|t| Scrape::parse(&t));
    let rss = nodes.peak_rss_kib();

    let reached = series.last().map(|x| x.1).unwrap_or(0);
    let t_done = series.last().map(|x| x.0).unwrap_or_default();
    // First poll that saw synced blocks, and the last poll before it.
    let first = series.iter().position(|(_, h)| *h > 0);
    let (t_first, h_first) = match first {
        Some(i) if i > 0 => series[i - 1],
        Some(i) => series[i],
        None => (t_done, reached),
    };
    let span = t_done.saturating_sub(t_first).as_secs_f64().max(1e-3);
    let rate = reached.saturating_sub(h_first) as f64 / span;
    let at = |frac: f64| series.iter().find(|(_, h)| *h as f64 >= frac * n as f64).copied();
    let steady = match (at(0.1), at(0.9)) {
        (Some((ta, ha)), Some((tb, hb))) if tb > ta => Some((hb - ha) as f64 / (tb - ta).as_secs_f64()),
        _ => None,
    };
    let wall = reached as f64 / t_done.as_secs_f64().max(1e-3);
    let synced_metric = scrape.as_ref().map(|s| s.get("bizra_sync_blocks_total"));
    let goals = vec![Goal::at_least("sync blocks/s (catch-up)", rate, 10_000.0, "blocks/s")];
    let mut rows = vec![
        (
            "chain".to_string(),
            format!("{n} blocks, 1 precommit each, no attestations"),
        ),
        (
            "generation (in-process)".to_string(),
            format!("{gen_secs:.1} s ({:.0} blocks/s)", n as f64 / gen_secs),
        ),
        (
            "node1 gRPC up after".to_string(),
            up.map(|d| format!("{:.2} s", d.as_secs_f64()))
                .unwrap_or_else(|| "never".into()),
        ),
        (
            "first synced block seen after".to_string(),
            first
                .map(|i| format!("{:.2} s", series[i].0.as_secs_f64()))
                .unwrap_or_else(|| "never".into()),
        ),
        (
            "reached".to_string(),
            format!(
                "B{reached} after {:.2} s{}",
                t_done.as_secs_f64(),
                if timed_out { " (TIMED OUT)" } else { "" }
            ),
        ),
        (
            "catch-up rate".to_string(),
            format!("{rate:.0} blocks/s (first synced block -> B{reached})"),
        ),
        (
            "steady rate (10%..90%)".to_string(),
            steady.map(|r| format!("{r:.0} blocks/s")).unwrap_or_else(|| "-".into()),
        ),
        ("wall rate (from spawn)".to_string(), format!("{wall:.0} blocks/s")),
        (
            "bizra_sync_blocks_total (node1)".to_string(),
            synced_metric.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into()),
        ),
        (
            "node1 CPU per synced block".to_string(),
            match cpu.proc_secs.get(1).copied().flatten() {
                Some(s) if reached > 0 => format!("{:.0} us", s * 1e6 / reached as f64),
                _ => "-".into(),
            },
        ),
        ("cpu from node1 spawn to done".to_string(), cpu.describe(t_done)),
        (
            "bench process peak RSS (generation)".to_string(),
            gen_rss
                .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
                .unwrap_or_else(|| "n/a".into()),
        ),
    ];
    common::rss_rows(&mut rows, "node", &rss);
    common::print_report("bizra bench sync", &rows, &goals);
    let value = json!({
        "bench": "sync",
        "machine": common::machine(),
        "blocks": n,
        "generation_s": common::round3(gen_secs),
        "node1_up_s": up.map(|d| common::round3(d.as_secs_f64())),
        "first_synced_s": first.map(|i| common::round3(series[i].0.as_secs_f64())),
        "reached": reached,
        "done_s": common::round3(t_done.as_secs_f64()),
        "timed_out": timed_out,
        "catchup_blocks_per_s": common::round3(rate),
        "steady_blocks_per_s": steady.map(common::round3),
        "wall_blocks_per_s": common::round3(wall),
        "sync_blocks_total": synced_metric,
        "cpu": cpu.json(t_done),
        "peak_rss_kib": {"nodes": common::rss_json(&rss), "bench_process": common::self_hwm_kib()},
        "goals": goals.iter().map(Goal::json).collect::<Vec<_>>(),
    });
    common::write_json(a.json.as_deref(), &value)?;
    Ok(())
}
