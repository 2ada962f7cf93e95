//! `bizra bench consensus`: real validators over loopback with no block
//! pacing (`block_interval_ms = 0`).
//!
//! * blocks/s: finalized heights gained per node over the window (median node);
//! * finality latency per height and node: the time from the previous height's
//!   finalization to this one's as seen by a `SubscribeHeads` stream on every
//!   node (with no pacing this is exactly what the node's
//!   `bizra_finality_latency_seconds` observes: start of a height to its
//!   decision), p50/p99 over all nodes; the node's own histogram (window delta,
//!   summed over nodes) is reported beside it as a cross-check (its buckets
//!   are 1, 2.5, 5, 10, 25 ms..., so its quantiles are interpolations);
//! * the physical floor of this machine: 3 one-way loopback hops (propose,
//!   prevote, precommit; one hop = half the median TCP round trip) plus one
//!   fsync (median of 200 `fdatasync` of a 64-byte write in the testnet's
//!   filesystem), measured before the nodes start and again after they stop
//!   (the disk of a shared VM varies a lot; the lower median is used);
//! * CPU: the machine's busy share over the window and the CPU the nodes used,
//!   per finalized block, so a run on a busy machine is recognisable;
//! * the signature floor: every node checks about 2N signatures per height
//!   (N prevotes, N precommits), so all nodes together at least
//!   N x 2N x one strict Ed25519 verify (timed here, on a vote);
//! * per height and node (median node): rounds, consensus messages and bytes
//!   sent and received (the nodes' `bizra_consensus_messages_total`,
//!   `bizra_consensus_message_bytes_total` and
//!   `bizra_consensus_rounds_per_height`, window deltas).

use super::common::{self, Goal, HistDelta, Nodes};
use crate::{failed, usage, BenchError, BenchResult};
use bizra_proto::SubscribeHeadsRequest;
use bizra_testnet::write;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct ConsensusArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub validators: u32,
    /// Measurement window, in seconds (after a warm-up).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Warm-up after every node finalized a block, in seconds (not measured).
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
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
    /// Block pacing (`consensus.block_interval_ms`); 0 runs as fast as the
    /// nodes can, 200 is what `bizra testnet init` writes.
    #[arg(long, default_value_t = 0)]
    pub block_interval_ms: u64,
}

/// The figures `bench scale` puts in its curve.
#[derive(Debug, Clone)]
pub struct Summary {
    pub validators: usize,
    pub blocks_per_min: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rounds_per_height: Option<f64>,
    pub node_cpu_ms_per_height: f64,
    pub all_cpu_ms_per_height: f64,
    pub sig_floor_ms: f64,
    pub msgs_recv_per_height: f64,
    pub msgs_sent_per_height: f64,
    pub kib_recv_per_height: f64,
    pub kib_sent_per_height: f64,
    pub max_rss_mib: Option<f64>,
}

/// Finalization arrivals per node: (height, when the stream delivered it).
type Arrivals = Arc<Mutex<Vec<(u64, Instant)>>>;

pub fn run(a: ConsensusArgs) -> BenchResult {
    run_summary(a).map(|_| ())
}

/// Runs the benchmark, prints its report and returns the curve figures.
pub fn run_summary(a: ConsensusArgs) -> Result<Summary, BenchError> {
    let n = a.validators as usize;
    bizra_testnet::check_ports_free(a.base_port, n).map_err(|e| usage(format!("{e:#}")))?;
    let home = common::bench_home(&a.home, "consensus");
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
    println!(
        "bench consensus: {n} validators in {}, block_interval_ms = {}",
        home.display(),
        a.block_interval_ms
    );
    let rt = crate::runtime();
    let mut nodes = Nodes::new(homes, a.base_port, a.log_level.as_deref());
    let result = rt.block_on(measure(&mut nodes, &a, &home));
    nodes.stop_all();
    drop(rt);
    if a.home.is_none() && result.is_ok() {
        let _ = std::fs::remove_dir_all(&home);
    }
    result
}

/// What one run measured, as the goals read it.
struct Measured {
    validators: usize,
    p50_ms: f64,
    p99_ms: f64,
    cpu_ms_per_block: f64,
    floor_ratio: f64,
    blocks_per_min: f64,
    max_rss_mib: Option<f64>,
}

/// The goals of issue 13 that apply to a run of `m.validators`.
fn goals(m: &Measured) -> Vec<Goal> {
    // Issue 13's goals, each at the size it names: at 4 validators no
    // regression (p50 and CPU per block), from 32 the floor ratio, at 100
    // the rest. A size without a goal prints none (the p50 bound of 4
    // validators used to be applied, and reported MISSED, at every size).
    let mut goals = Vec::new();
    if m.validators == 4 {
        goals.push(Goal::at_most("finality p50 at 4 validators", m.p50_ms, 10.0, "ms"));
        goals.push(Goal::at_most(
            "node CPU per block at 4 validators",
            m.cpu_ms_per_block,
            3.6,
            "ms",
        ));
    }
    if m.validators >= 32 {
        goals.push(Goal::at_most(
            "all nodes' CPU per height / signature floor",
            m.floor_ratio,
            2.5,
            "x",
        ));
    }
    if m.validators == 100 {
        goals.push(Goal::at_least(
            "blocks/min at 100 validators",
            m.blocks_per_min,
            30.0,
            "/min",
        ));
        goals.push(Goal::at_most(
            "node CPU per height at 100 validators",
            m.cpu_ms_per_block,
            25.0,
            "ms",
        ));
        goals.push(Goal::at_most("finality p99 at 100 validators", m.p99_ms, 5000.0, "ms"));
        if let Some(r) = m.max_rss_mib {
            goals.push(Goal::at_most("peak RSS per validator at 100", r, 40.0, "MiB"));
        }
    }
    goals
}

/// One strict Ed25519 verification of a signed vote, in microseconds: the
/// fastest of 25 runs of 200. On this noisy shared machine the median of 9
/// runs moved between 34.6 and 51.6 us from one bench run to the next, and
/// a slow probe inflates the floor, flattering the CPU-per-floor ratio; the
/// fastest run is the steadier and the stricter referee.
pub fn vote_verify_us() -> f64 {
    use bizra_consensus::messages;
    use bizra_consensus::signing::{self, Signer};
    let s = Signer::from_secret([7; 32]);
    let vote = bizra_proto::Vote {
        chain_id: "bizra-bench".into(),
        height: 12,
        round: 0,
        kind: bizra_proto::VoteKind::Prevote as i32,
        block_hash: vec![1; 32],
        validator: s.id().to_string(),
    };
    let sv = messages::sign_vote(&s, vote.clone());
    let payload = messages::encode_vote(&vote);
    let key = s.public_key();
    let mut runs = Vec::new();
    for _ in 0..25 {
        let t = Instant::now();
        for _ in 0..200 {
            signing::verify(
                &key,
                bizra_proto::payload_type::VOTE,
                std::hint::black_box(&payload),
                &sv.signature,
            )
            .expect("valid");
        }
        runs.push(t.elapsed().as_secs_f64() * 1e6 / 200.0);
    }
    runs.into_iter().fold(f64::INFINITY, f64::min)
}

/// Sum over kinds of a per-kind counter with `direction`, after minus before.
fn by_direction(before: &common::Scrape, after: &common::Scrape, family: &str, direction: &str) -> f64 {
    bizra_node::metrics::MSG_KINDS
        .iter()
        .map(|kind| {
            let key = format!("{family}{{kind=\"{kind}\",direction=\"{direction}\"}}");
            after.get(&key) - before.get(&key)
        })
        .sum()
}

/// Sum over message kinds of `bizra_votes_total` with a result in
/// `results`, after minus before.
fn votes_with(before: &common::Scrape, after: &common::Scrape, results: &[&str]) -> f64 {
    let mut sum = 0.0;
    for kind in bizra_node::metrics::VOTE_KINDS {
        for result in results {
            let key = format!("bizra_votes_total{{kind=\"{kind}\",result=\"{result}\"}}");
            sum += after.get(&key) - before.get(&key);
        }
    }
    sum
}

async fn measure(nodes: &mut Nodes, a: &ConsensusArgs, home: &std::path::Path) -> Result<Summary, BenchError> {
    let n = nodes.len();
    let verify_us = vote_verify_us();
    // The floor first, on a machine without our nodes running.
    let fsync_before = common::fsync_median(home, 200)?;
    let rtt = common::loopback_rtt(5000).await?;
    println!(
        "floor probes: loopback rtt p50 {:.1} us, fsync p50 {:.3} ms",
        common::us(rtt),
        common::ms(fsync_before)
    );

    nodes.start_all()?;
    let all: Vec<usize> = (0..n).collect();
    common::wait_ready(nodes, &all, 1, n > 1, Duration::from_secs(90 + 2 * n as u64)).await?;
    println!("all {n} nodes finalize; warming up {} s", a.warmup);
    tokio::time::sleep(Duration::from_secs(a.warmup)).await;
    nodes.check_alive()?;

    // Subscribe everywhere, then open the window.
    let mut subs = Vec::new();
    let mut arrivals: Vec<Arrivals> = Vec::new();
    for k in 0..n {
        let log: Arrivals = Arc::new(Mutex::new(Vec::new()));
        arrivals.push(log.clone());
        let url = nodes.grpc_url(k);
        subs.push(tokio::spawn(async move {
            let Some(mut c) = common::connect(&url).await else {
                return;
            };
            let Ok(resp) = c.subscribe_heads(SubscribeHeadsRequest {}).await else {
                return;
            };
            let mut stream = resp.into_inner();
            while let Ok(Some(h)) = stream.message().await {
                let now = Instant::now();
                log.lock().expect("arrivals").push((h.height, now));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = common::scrape_all(nodes).await?;
    let h0 = heights(nodes).await;
    let cpu = common::CpuWindow::start(nodes.pids());
    let t0 = Instant::now();
    let window = Duration::from_secs(a.duration);
    while t0.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(500).min(window.saturating_sub(t0.elapsed()))).await;
        nodes.check_alive()?;
    }
    let elapsed = t0.elapsed();
    let cpu = cpu.stop();
    let after = common::scrape_all(nodes).await?;
    let h1 = heights(nodes).await;
    let rss = nodes.peak_rss_kib();
    for s in &subs {
        s.abort();
    }
    nodes.stop_all();
    let fsync_after = common::fsync_median(home, 200)?;
    let fsync = fsync_before.min(fsync_after);
    let hop = rtt / 2;
    let floor = hop * 3 + fsync;

    // Latencies from the streams: consecutive heights inside the window.
    let t_end = t0 + elapsed;
    let mut lat = Vec::new();
    let mut per_node_p50 = Vec::new();
    for log in &arrivals {
        let v = log.lock().expect("arrivals").clone();
        let mut mine = Vec::new();
        for w in v.windows(2) {
            let ((ha, ta), (hb, tb)) = (w[0], w[1]);
            if hb == ha + 1 && tb >= t0 && tb <= t_end {
                mine.push(tb - ta);
            }
        }
        mine.sort();
        per_node_p50.push(common::percentile(&mine, 50.0));
        lat.extend(mine);
    }
    lat.sort();
    if lat.is_empty() {
        return Err(failed("no block was finalized during the window"));
    }
    let p50 = common::percentile(&lat, 50.0);
    let p99 = common::percentile(&lat, 99.0);
    let max = *lat.last().expect("non-empty");
    let mut rates: Vec<f64> = h0
        .iter()
        .zip(&h1)
        .map(|(a, b)| b.saturating_sub(*a) as f64 / elapsed.as_secs_f64())
        .collect();
    let blocks_per_s = common::median_f64(&mut rates);
    let gained: Vec<u64> = h0.iter().zip(&h1).map(|(a, b)| b.saturating_sub(*a)).collect();
    let cpu_per_block: Vec<Option<f64>> = cpu
        .proc_secs
        .iter()
        .zip(&gained)
        .map(|(s, g)| s.filter(|_| *g > 0).map(|s| s * 1e3 / *g as f64))
        .collect();
    let mut cpb: Vec<f64> = cpu_per_block.iter().flatten().copied().collect();
    let cpu_ms_per_block = common::median_f64(&mut cpb);

    let mut hist = HistDelta::default();
    for (b, af) in before.iter().zip(&after) {
        hist.add(&HistDelta::between(b, af, "bizra_finality_latency_seconds"));
    }
    let ratio_floor = p50.as_secs_f64() / floor.as_secs_f64();
    // Per height and node, over the nodes that gained heights.
    let per_height_of = |count: &dyn Fn(&common::Scrape, &common::Scrape) -> f64| -> f64 {
        let mut v: Vec<f64> = before
            .iter()
            .zip(&after)
            .zip(&gained)
            .filter(|(_, g)| **g > 0)
            .map(|((b, af), g)| count(b, af) / *g as f64)
            .collect();
        common::median_f64(&mut v)
    };
    let per_height = |family: &str, direction: &str| -> f64 {
        per_height_of(&|b: &common::Scrape, af: &common::Scrape| by_direction(b, af, family, direction))
    };
    // Gossip messages whose signature was checked, and prevotes dropped
    // unverified after their round's polka (ADR 0020).
    let verified = per_height_of(&|b: &common::Scrape, af: &common::Scrape| {
        votes_with(b, af, &["accepted", "out_of_window", "invalid"])
    });
    let after_polka = per_height_of(&|b: &common::Scrape, af: &common::Scrape| votes_with(b, af, &["after_polka"]));
    let msgs_recv = per_height("bizra_consensus_messages_total", "received");
    let msgs_sent = per_height("bizra_consensus_messages_total", "sent");
    let kib_recv = per_height("bizra_consensus_message_bytes_total", "received") / 1024.0;
    let kib_sent = per_height("bizra_consensus_message_bytes_total", "sent") / 1024.0;
    let mut rounds = HistDelta::default();
    for (b, af) in before.iter().zip(&after) {
        rounds.add(&HistDelta::between(b, af, "bizra_consensus_rounds_per_height"));
    }
    let rounds_per_height = (rounds.count > 0.0).then(|| rounds.sum / rounds.count);
    let mut g: Vec<f64> = gained.iter().map(|x| *x as f64).collect();
    let median_gained = common::median_f64(&mut g);
    let all_cpu_ms = if median_gained > 0.0 {
        cpu.total_proc_secs() * 1e3 / median_gained
    } else {
        f64::NAN
    };
    let sig_floor_ms = (n * 2 * n) as f64 * verify_us / 1e3;
    let blocks_per_min = blocks_per_s * 60.0;
    let max_rss_mib = rss.iter().flatten().max().map(|k| *k as f64 / 1024.0);
    let goals = goals(&Measured {
        validators: n,
        p50_ms: common::ms(p50),
        p99_ms: common::ms(p99),
        cpu_ms_per_block,
        floor_ratio: all_cpu_ms / sig_floor_ms,
        blocks_per_min,
        max_rss_mib,
    });

    let mut rows = vec![
        ("validators".to_string(), n.to_string()),
        ("window".to_string(), format!("{:.1} s", elapsed.as_secs_f64())),
        (
            "heights (node0)".to_string(),
            format!(
                "B{} -> B{}",
                h0.first().copied().unwrap_or(0),
                h1.first().copied().unwrap_or(0)
            ),
        ),
        ("blocks/s (median node)".to_string(), format!("{blocks_per_s:.1}")),
        ("blocks/min (median node)".to_string(), format!("{blocks_per_min:.1}")),
        (
            "rounds per height (mean)".to_string(),
            rounds_per_height
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "-".into()),
        ),
        ("finality samples".to_string(), lat.len().to_string()),
        ("finality p50".to_string(), format!("{:.3} ms", common::ms(p50))),
        ("finality p99".to_string(), format!("{:.3} ms", common::ms(p99))),
        ("finality max".to_string(), format!("{:.3} ms", common::ms(max))),
        (
            "finality p50 per node".to_string(),
            per_node_p50
                .iter()
                .map(|d| format!("{:.2}", common::ms(*d)))
                .collect::<Vec<_>>()
                .join(" / ")
                + " ms",
        ),
        (
            "metric mean / ~p50 / ~p99".to_string(),
            format!(
                "{} / {} / {} ms (bizra_finality_latency_seconds, {} obs)",
                opt_ms(hist.mean()),
                opt_ms(hist.quantile(0.5)),
                opt_ms(hist.quantile(0.99)),
                hist.count
            ),
        ),
        (
            "node CPU per block (median node)".to_string(),
            format!("{cpu_ms_per_block:.2} ms"),
        ),
        (
            "all nodes' CPU per height".to_string(),
            format!(
                "{all_cpu_ms:.1} ms ({:.2}x the signature floor)",
                all_cpu_ms / sig_floor_ms
            ),
        ),
        (
            "signature floor".to_string(),
            format!(
                "{sig_floor_ms:.1} ms = {n} nodes x {} verifies x {verify_us:.1} us",
                2 * n
            ),
        ),
        (
            "messages per height per node".to_string(),
            format!(
                "received {msgs_recv:.0} ({kib_recv:.1} KiB), sent {msgs_sent:.0} ({kib_sent:.1} KiB to all peers)"
            ),
        ),
        (
            "gossip signatures checked per height per node".to_string(),
            format!("{verified:.0} (prevotes dropped unverified after a polka: {after_polka:.0})"),
        ),
        ("cpu during window".to_string(), cpu.describe(elapsed)),
        ("loopback rtt p50".to_string(), format!("{:.1} us", common::us(rtt))),
        (
            "fsync p50 (before / after)".to_string(),
            format!("{:.3} / {:.3} ms", common::ms(fsync_before), common::ms(fsync_after)),
        ),
        (
            "floor (3 hops + 1 fsync)".to_string(),
            format!("{:.3} ms", common::ms(floor)),
        ),
        ("p50 / floor".to_string(), format!("{ratio_floor:.1}x")),
    ];
    common::rss_rows(&mut rows, "node", &rss);
    common::print_report("bizra bench consensus", &rows, &goals);

    let value = json!({
        "bench": "consensus",
        "machine": common::machine(),
        "validators": n,
        "block_interval_ms": a.block_interval_ms,
        "window_s": common::round3(elapsed.as_secs_f64()),
        "heights_start": h0,
        "heights_end": h1,
        "blocks_per_s": common::round3(blocks_per_s),
        "finality_ms": {
            "samples": lat.len(),
            "p50": common::round3(common::ms(p50)),
            "p99": common::round3(common::ms(p99)),
            "max": common::round3(common::ms(max)),
            "p50_per_node": per_node_p50.iter().map(|d| common::round3(common::ms(*d))).collect::<Vec<_>>(),
            "source": "SubscribeHeads arrival deltas of consecutive heights, all nodes",
        },
        "finality_metric": {
            "count": hist.count,
            "mean_ms": hist.mean().map(|x| common::round3(x * 1e3)),
            "p50_ms_interpolated": hist.quantile(0.5).map(|x| common::round3(x * 1e3)),
            "p99_ms_interpolated": hist.quantile(0.99).map(|x| common::round3(x * 1e3)),
        },
        "floor": {
            "loopback_rtt_us": common::round3(common::us(rtt)),
            "hop_us": common::round3(common::us(hop)),
            "fsync_ms": common::round3(common::ms(fsync)),
            "fsync_before_ms": common::round3(common::ms(fsync_before)),
            "fsync_after_ms": common::round3(common::ms(fsync_after)),
            "floor_ms": common::round3(common::ms(floor)),
            "definition": "3 one-way loopback hops (rtt/2 each) + 1 fdatasync (lower of the medians before and after)",
            "p50_over_floor": common::round3(ratio_floor),
        },
        "blocks_per_min": common::round3(blocks_per_min),
        "rounds_per_height": rounds_per_height.map(common::round3),
        "all_nodes_cpu_ms_per_height": common::round3(all_cpu_ms),
        "signature_floor": {
            "verify_us": common::round3(verify_us),
            "ms": common::round3(sig_floor_ms),
            "definition": "N nodes x 2N strict Ed25519 verifies x the measured verify time",
            "ratio": common::round3(all_cpu_ms / sig_floor_ms),
        },
        "per_height_per_node": {
            "messages_received": common::round3(msgs_recv),
            "messages_sent": common::round3(msgs_sent),
            "kib_received": common::round3(kib_recv),
            "kib_sent": common::round3(kib_sent),
            "signatures_checked": common::round3(verified),
            "prevotes_after_polka": common::round3(after_polka),
        },
        "node_cpu_ms_per_block": cpu_per_block.iter().map(|x| x.map(common::round3)).collect::<Vec<_>>(),
        "cpu": cpu.json(elapsed),
        "peak_rss_kib": common::rss_json(&rss),
        "goals": goals.iter().map(Goal::json).collect::<Vec<_>>(),
    });
    common::write_json(a.json.as_deref(), &value)?;
    Ok(Summary {
        validators: n,
        blocks_per_min,
        p50_ms: common::ms(p50),
        p99_ms: common::ms(p99),
        rounds_per_height,
        node_cpu_ms_per_height: cpu_ms_per_block,
        all_cpu_ms_per_height: all_cpu_ms,
        sig_floor_ms,
        msgs_recv_per_height: msgs_recv,
        msgs_sent_per_height: msgs_sent,
        kib_recv_per_height: kib_recv,
        kib_sent_per_height: kib_sent,
        max_rss_mib,
    })
}

fn opt_ms(x: Option<f64>) -> String {
    x.map(|v| format!("{:.2}", v * 1e3)).unwrap_or_else(|| "-".into())
}

async fn heights(nodes: &Nodes) -> Vec<u64> {
    let mut out = Vec::new();
    for k in 0..nodes.len() {
        out.push(
            common::status(&nodes.grpc_url(k))
                .await
                .map(|s| s.finalized_height)
                .unwrap_or(0),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(validators: usize, p50_ms: f64) -> Measured {
        Measured {
            validators,
            p50_ms,
            p99_ms: 900.0,
            cpu_ms_per_block: 3.0,
            floor_ratio: 2.0,
            blocks_per_min: 60.0,
            max_rss_mib: Some(35.0),
        }
    }

    fn names(g: &[Goal]) -> Vec<&str> {
        g.iter().map(|g| g.name.as_str()).collect()
    }

    /// Each goal is checked at the size issue 13 gives it: a 100-validator
    /// run is not held to the 10 ms p50 of 4 validators.
    #[test]
    fn goals_apply_at_their_own_size() {
        let at4 = goals(&run(4, 4.0));
        assert_eq!(
            names(&at4),
            ["finality p50 at 4 validators", "node CPU per block at 4 validators"]
        );
        assert!(at4.iter().all(|g| g.met));
        assert!(goals(&run(16, 200.0)).is_empty());
        assert_eq!(
            names(&goals(&run(64, 250.0))),
            ["all nodes' CPU per height / signature floor"]
        );
        let at100 = goals(&run(100, 650.0));
        assert!(!names(&at100).iter().any(|n| n.contains("p50")));
        assert_eq!(at100.len(), 5);
        assert!(at100.iter().all(|g| g.met), "{:?}", names(&at100));
    }

    /// A measurement past a bound is reported missed.
    #[test]
    fn a_missed_bound_is_reported() {
        let slow = goals(&run(4, 12.0));
        assert!(!slow[0].met && slow[1].met);
        let mut m = run(100, 650.0);
        m.max_rss_mib = Some(41.0);
        m.floor_ratio = 2.6;
        let g = goals(&m);
        let missed: Vec<&str> = g.iter().filter(|g| !g.met).map(|g| g.name.as_str()).collect();
        assert_eq!(
            missed,
            [
                "all nodes' CPU per height / signature floor",
                "peak RSS per validator at 100"
            ]
        );
    }
}
