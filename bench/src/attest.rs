//! `bizra bench attest`: PoI attestation throughput of a local testnet.
//!
//! Starts N validators (`block_interval_ms` from `--block-interval-ms`,
//! default 0: no pacing), then `--concurrency` tasks
//! per node submit attestations over gRPC `SubmitAttestation`, each signed by
//! that node's own validator key (`poi::build`, generated before the nodes
//! start so that signing does not compete with them for the CPU). After a
//! warm-up, the window counts attestations *finalized* on node0
//! (`bizra_attestations_total{result="finalized"}`: the sum of
//! `attestations.len()` over the blocks it finalized) per second.
//!
//! The ceiling: every node verifies every attestation once (its own
//! submissions at the gRPC edge, the others' when they arrive by gossip), so
//! with a single-core Ed25519 rate R (`signing::verify` in a loop for ~1 s,
//! measured before the nodes start) a node cannot admit more than R / N per
//! second per core it gives to verification. Reported: ceiling = R / N (the
//! issue's definition, one core per node) and, for this machine where all N
//! nodes share `nproc` cores, R x nproc / N.

use super::common::{self, Goal, Nodes};
use crate::{failed, usage, BenchResult};
use bizra_consensus::poi::{self, Draft};
use bizra_consensus::signing::{self, Signer};
use bizra_proto::{payload_type, SubmitAttestationRequest};
use bizra_testnet::write;
use clap::Args;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Code;

#[derive(Args, Debug)]
pub struct AttestArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub validators: u32,
    /// Measurement window, in seconds (after the warm-up).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Seconds of load before the window opens (not measured).
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Concurrent submitting tasks per node (each with its own connection).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Attestations signed before the run (0: enough for 20,000/s over warm-up + window, plus 50,000).
    #[arg(long, default_value_t = 0)]
    pub pregenerate: usize,
    /// First port (peers P+K, gRPC P+100+K, metrics P+200+K).
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// Testnet directory, created fresh (default: a new temporary directory, removed afterwards).
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// Override every node's log.level (e.g. `warn`); default: as generated (`info`).
    #[arg(long)]
    pub log_level: Option<String>,
    /// The nodes' block pacing (`consensus.block_interval_ms`). 0 runs
    /// consensus flat out (many small blocks); the shipped default is 200.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub block_interval_ms: u64,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(a: AttestArgs) -> BenchResult {
    let n = a.validators as usize;
    bizra_testnet::check_ports_free(a.base_port, n).map_err(|e| usage(format!("{e:#}")))?;
    let home = common::bench_home(&a.home, "attest");
    let init = write::Options {
        validators: a.validators,
        out: home.clone(),
        chain_id: "bizra-bench".into(),
        base_port: a.base_port,
        host_template: "127.0.0.1".into(),
        epoch_length: 100,
        block_interval_ms: a.block_interval_ms,
    };
    let homes = write::init(&init).map_err(usage)?;
    let signers: Vec<Signer> = homes
        .iter()
        .map(|h| bizra_node::keys::read(&h.join("validator.key")).map_err(|e| usage(format!("{e:#}"))))
        .collect::<Result<_, _>>()?;
    println!(
        "bench attest: {n} validators in {}, block_interval_ms = {}",
        home.display(),
        a.block_interval_ms
    );

    // Single-core Ed25519 rate under the one rule, on an attestation payload.
    let (verify_rate, verify_us) = verify_rate(&signers[0]);
    println!("signing::verify: {verify_rate:.0}/s on one core ({verify_us:.1} us each)");

    let total = if a.pregenerate > 0 {
        a.pregenerate
    } else {
        20_000 * (a.duration + a.warmup) as usize + 50_000
    };
    let t = Instant::now();
    let per_node = pregenerate(&signers, total);
    println!("signed {total} attestations in {:.1} s", t.elapsed().as_secs_f64());

    let rt = crate::runtime();
    let mut nodes = Nodes::new(homes, a.base_port, a.log_level.as_deref());
    let result = rt.block_on(measure(&mut nodes, &a, per_node, total, verify_rate, verify_us));
    nodes.stop_all();
    drop(rt);
    if a.home.is_none() && result.is_ok() {
        let _ = std::fs::remove_dir_all(&home);
    }
    result
}

fn draft(chain_id: &str, i: u64, now: u64) -> Draft {
    let mut dims = BTreeMap::new();
    dims.insert("quality".to_string(), 7000 + (i % 3000) as u32);
    dims.insert("reach".to_string(), 5000);
    let mut weights = BTreeMap::new();
    weights.insert("quality".to_string(), 6000);
    weights.insert("reach".to_string(), 4000);
    let mut nonce = vec![0u8; 16];
    nonce[..8].copy_from_slice(&i.to_le_bytes());
    nonce[8..].copy_from_slice(&now.to_le_bytes());
    Draft {
        chain_id: chain_id.to_string(),
        subject: format!("bench-subject-{}", i % 1000),
        evidence_digest: *blake3::hash(&i.to_le_bytes()).as_bytes(),
        evidence_len: 4096,
        dimensions: dims,
        weights,
        window_start_ms: now.saturating_sub(60_000),
        window_end_ms: now.saturating_sub(1_000),
        nonce,
    }
}

fn verify_rate(s: &Signer) -> (f64, f64) {
    let env = poi::build(s, draft("bizra-bench", 1, bizra_node::engine::now_ms())).expect("valid draft");
    let key = s.public_key();
    let sig = env.signatures[0].sig.clone();
    // Warm up, then count for ~1 s.
    for _ in 0..200 {
        signing::verify(&key, payload_type::POI, &env.payload, &sig).expect("valid");
    }
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < Duration::from_secs(1) {
        for _ in 0..100 {
            signing::verify(&key, payload_type::POI, std::hint::black_box(&env.payload), &sig).expect("valid");
        }
        n += 100;
    }
    let secs = t.elapsed().as_secs_f64();
    (n as f64 / secs, secs * 1e6 / n as f64)
}

/// `total` attestations, split evenly over the nodes, each signed by the key
/// of the node it will be submitted to. Signed on all cores.
fn pregenerate(signers: &[Signer], total: usize) -> Vec<Vec<SubmitAttestationRequest>> {
    let now = bizra_node::engine::now_ms();
    let per = total.div_ceil(signers.len());
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = signers
            .iter()
            .map(|s| {
                let s = s.clone();
                (0..threads)
                    .map(|t| {
                        let s = s.clone();
                        scope.spawn(move || {
                            (t..per)
                                .step_by(threads)
                                .map(|i| SubmitAttestationRequest {
                                    envelope: Some(
                                        poi::build(&s, draft("bizra-bench", i as u64, now)).expect("valid draft"),
                                    ),
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        handles
            .into_iter()
            .map(|hs| hs.into_iter().flat_map(|h| h.join().expect("signer thread")).collect())
            .collect()
    })
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    busy: AtomicU64,
    rejected: AtomicU64,
    /// Accepted inside the window.
    accepted_window: AtomicU64,
}

async fn measure(
    nodes: &mut Nodes,
    a: &AttestArgs,
    per_node: Vec<Vec<SubmitAttestationRequest>>,
    total: usize,
    verify_rate: f64,
    verify_us: f64,
) -> BenchResult {
    let n = nodes.len();
    nodes.start_all()?;
    let all: Vec<usize> = (0..n).collect();
    common::wait_ready(nodes, &all, 2, n > 1, Duration::from_secs(90)).await?;
    println!(
        "all {n} nodes finalize; submitting with {} tasks per node",
        a.concurrency
    );

    let counters = Arc::new(Counters::default());
    let first_reject: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let start = Instant::now();
    let t0 = start + Duration::from_secs(a.warmup);
    let end = t0 + Duration::from_secs(a.duration);
    let mut tasks = Vec::new();
    let mut exhausted_at: Vec<Arc<AtomicU64>> = Vec::new();
    for (k, reqs) in per_node.into_iter().enumerate() {
        let c = a.concurrency as usize;
        let mut parts: Vec<Vec<SubmitAttestationRequest>> = (0..c).map(|_| Vec::new()).collect();
        for (i, r) in reqs.into_iter().enumerate() {
            parts[i % c].push(r);
        }
        for part in parts {
            let url = nodes.grpc_url(k);
            let counters = counters.clone();
            let first_reject = first_reject.clone();
            let ran_out = Arc::new(AtomicU64::new(0));
            exhausted_at.push(ran_out.clone());
            tasks.push(tokio::spawn(async move {
                let Some(mut client) = common::connect(&url).await else {
                    return;
                };
                let mut it = part.into_iter();
                let mut next = it.next();
                while let Some(req) = next.take() {
                    if Instant::now() >= end {
                        return;
                    }
                    match client.submit_attestation(req.clone()).await {
                        Ok(_) => {
                            counters.accepted.fetch_add(1, Ordering::Relaxed);
                            let now = Instant::now();
                            if now >= t0 && now < end {
                                counters.accepted_window.fetch_add(1, Ordering::Relaxed);
                            }
                            next = it.next();
                        }
                        Err(e) if matches!(e.code(), Code::ResourceExhausted | Code::Unavailable) => {
                            counters.busy.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            next = Some(req);
                        }
                        Err(e) => {
                            counters.rejected.fetch_add(1, Ordering::Relaxed);
                            first_reject
                                .lock()
                                .expect("first reject")
                                .get_or_insert_with(|| format!("{:?}: {}", e.code(), e.message()));
                            next = it.next();
                        }
                    }
                }
                ran_out.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            }));
        }
    }

    // Window.
    tokio::time::sleep_until(t0.into()).await;
    nodes.check_alive()?;
    let before = common::scrape_all(nodes).await?;
    let h0 = common::status(&nodes.grpc_url(0))
        .await
        .map(|s| s.finalized_height)
        .unwrap_or(0);
    let cpu = common::CpuWindow::start(nodes.pids());
    let client_cpu = common::CpuWindow::start(vec![Some(std::process::id())]);
    let w0 = Instant::now();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500).min(end.saturating_duration_since(Instant::now()))).await;
        nodes.check_alive()?;
    }
    let cpu = cpu.stop();
    let client_cpu = client_cpu.stop();
    let after = common::scrape_all(nodes).await?;
    let window = w0.elapsed();
    let h1 = common::status(&nodes.grpc_url(0))
        .await
        .map(|s| s.finalized_height)
        .unwrap_or(0);
    let rss = nodes.peak_rss_kib();
    for t in &tasks {
        t.abort();
    }
    let ran_out: Vec<u64> = exhausted_at
        .iter()
        .map(|x| x.load(Ordering::Relaxed))
        .filter(|&x| x > 0)
        .collect();

    let key = "bizra_attestations_total{result=\"finalized\"}";
    let finalized: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, af)| af.get(key) - b.get(key))
        .collect();
    let rate = finalized[0] / window.as_secs_f64();
    let blocks = h1.saturating_sub(h0);
    let per_block = if blocks > 0 { finalized[0] / blocks as f64 } else { 0.0 };
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let ceiling = verify_rate / n as f64;
    let machine_ceiling = verify_rate * nproc / n as f64;
    let accepted_rate = counters.accepted_window.load(Ordering::Relaxed) as f64 / window.as_secs_f64();
    if finalized[0] <= 0.0 && accepted_rate <= 0.0 {
        return Err(failed(format!(
            "no attestation was accepted or finalized in the window (first refusal: {})",
            first_reject
                .lock()
                .expect("first reject")
                .clone()
                .unwrap_or_else(|| "none".into())
        )));
    }
    let goals = vec![
        Goal::at_least("finalized attestations/s", rate, 20_000.0, "/s"),
        Goal::at_least("finalized / ceiling (R/N)", rate / ceiling, 0.5, "x"),
    ];
    let mut rows = vec![
        ("validators".to_string(), n.to_string()),
        (
            "window".to_string(),
            format!("{:.1} s (after {} s warm-up)", window.as_secs_f64(), a.warmup),
        ),
        ("finalized attestations/s".to_string(), format!("{rate:.0} (node0)")),
        (
            "finalized in window per node".to_string(),
            finalized
                .iter()
                .map(|f| format!("{f:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
        ),
        ("accepted submissions/s".to_string(), format!("{accepted_rate:.0}")),
        (
            "submissions ok / busy / rejected".to_string(),
            format!(
                "{} / {} / {} (busy = RESOURCE_EXHAUSTED or UNAVAILABLE, retried)",
                counters.accepted.load(Ordering::Relaxed),
                counters.busy.load(Ordering::Relaxed),
                counters.rejected.load(Ordering::Relaxed)
            ),
        ),
        (
            "blocks in window (node0)".to_string(),
            format!(
                "{blocks} ({:.1}/s, {per_block:.0} attestations/block)",
                blocks as f64 / window.as_secs_f64()
            ),
        ),
        (
            "signing::verify, one core".to_string(),
            format!("{verify_rate:.0}/s ({verify_us:.1} us)"),
        ),
        ("ceiling R/N".to_string(), format!("{ceiling:.0}/s")),
        (
            "machine ceiling R*nproc/N".to_string(),
            format!("{machine_ceiling:.0}/s ({nproc} cores shared by {n} nodes)"),
        ),
        ("finalized / ceiling".to_string(), format!("{:.3}x", rate / ceiling)),
        (
            "finalized / machine ceiling".to_string(),
            format!("{:.3}x", rate / machine_ceiling),
        ),
        ("pre-signed attestations".to_string(), total.to_string()),
        (
            "node CPU per finalized attestation".to_string(),
            if finalized[0] > 0.0 {
                format!(
                    "{:.0} us (all {n} nodes together)",
                    cpu.total_proc_secs() * 1e6 / finalized[0]
                )
            } else {
                "-".into()
            },
        ),
        ("cpu during window".to_string(), cpu.describe(window)),
        (
            "bench client (submitters) CPU".to_string(),
            format!("{:.2} cores", client_cpu.total_proc_secs() / window.as_secs_f64()),
        ),
    ];
    if let Some(r) = first_reject.lock().expect("first reject").clone() {
        rows.push(("first rejection".to_string(), r));
    }
    if !ran_out.is_empty() {
        rows.push((
            "WARNING".to_string(),
            format!(
                "{} submitters ran out of pre-signed attestations; raise --pregenerate",
                ran_out.len()
            ),
        ));
    }
    common::rss_rows(&mut rows, "node", &rss);
    common::print_report("bizra bench attest", &rows, &goals);
    let value = json!({
        "bench": "attest",
        "machine": common::machine(),
        "validators": n,
        "concurrency_per_node": a.concurrency,
        "block_interval_ms": a.block_interval_ms,
        "window_s": common::round3(window.as_secs_f64()),
        "finalized_per_s": common::round3(rate),
        "finalized_in_window_per_node": finalized,
        "accepted_per_s": common::round3(accepted_rate),
        "submissions": {
            "ok": counters.accepted.load(Ordering::Relaxed),
            "busy_retried": counters.busy.load(Ordering::Relaxed),
            "rejected": counters.rejected.load(Ordering::Relaxed),
            "first_rejection": *first_reject.lock().expect("first reject"),
            "submitters_ran_out": ran_out.len(),
            "pregenerated": total,
        },
        "blocks_in_window": blocks,
        "attestations_per_block": common::round3(per_block),
        "verify_single_core_per_s": common::round3(verify_rate),
        "verify_us": common::round3(verify_us),
        "ceiling_per_s": common::round3(ceiling),
        "machine_ceiling_per_s": common::round3(machine_ceiling),
        "finalized_over_ceiling": common::round3(rate / ceiling),
        "finalized_over_machine_ceiling": common::round3(rate / machine_ceiling),
        "cpu": cpu.json(window),
        "client_cpu_cores": common::round3(client_cpu.total_proc_secs() / window.as_secs_f64()),
        "peak_rss_kib": common::rss_json(&rss),
        "goals": goals.iter().map(Goal::json).collect::<Vec<_>>(),
    });
    common::write_json(a.json.as_deref(), &value)?;
    Ok(())
}
