//! `bizra bench scale`: `bench consensus` at several validator counts in one
//! go (4, 16, 32, 64, 100 by default), then the curve in one table: blocks per
//! minute, finality p50/p99, rounds per height, CPU per height (one node and
//! all nodes), the signature floor beside it (N x 2N strict verifies) and
//! the consensus traffic per height and node. Each size runs on fresh data
//! directories, one after the other, so every row has the machine to itself.

use super::common;
use super::consensus::{self, ConsensusArgs, Summary};
use crate::BenchResult;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// Validator counts, comma-separated (each 1..=100).
    #[arg(long, value_delimiter = ',', default_values_t = [4u32, 16, 32, 64, 100])]
    pub validators: Vec<u32>,
    /// Measurement window per size, in seconds (after the warm-up).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Warm-up per size after every node finalized a block, in seconds.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Block pacing (`consensus.block_interval_ms`) for every size; 0 runs
    /// unpaced, 200 is what `bizra testnet init` writes.
    #[arg(long, default_value_t = 0)]
    pub block_interval_ms: u64,
    /// First port (peers P+K, gRPC P+100+K, metrics P+200+K).
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// Write the curve as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(a: ScaleArgs) -> BenchResult {
    if a.validators.is_empty() || a.validators.iter().any(|n| !(1..=100).contains(n)) {
        return Err(crate::usage("--validators: each count must be in 1..=100"));
    }
    let mut rows: Vec<Summary> = Vec::new();
    for &n in &a.validators {
        println!("\n=== bench scale: {n} validators ===");
        let s = consensus::run_summary(ConsensusArgs {
            validators: n,
            duration: a.duration,
            warmup: a.warmup,
            base_port: a.base_port,
            home: None,
            log_level: Some("warn".into()),
            json: None,
            block_interval_ms: a.block_interval_ms,
        })?;
        rows.push(s);
    }
    println!("\nbizra bench scale (block_interval_ms = {})", a.block_interval_ms);
    println!(
        "{:>4} {:>10} {:>9} {:>9} {:>7} {:>10} {:>10} {:>10} {:>7} {:>9} {:>9} {:>8}",
        "N",
        "blocks/min",
        "p50 ms",
        "p99 ms",
        "rounds",
        "node ms/h",
        "all ms/h",
        "floor ms/h",
        "x floor",
        "msgs in/h",
        "KiB in/h",
        "RSS MiB"
    );
    for r in &rows {
        println!(
            "{:>4} {:>10.1} {:>9.1} {:>9.1} {:>7} {:>10.2} {:>10.1} {:>10.1} {:>7.2} {:>9.0} {:>9.1} {:>8}",
            r.validators,
            r.blocks_per_min,
            r.p50_ms,
            r.p99_ms,
            r.rounds_per_height
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into()),
            r.node_cpu_ms_per_height,
            r.all_cpu_ms_per_height,
            r.sig_floor_ms,
            r.all_cpu_ms_per_height / r.sig_floor_ms,
            r.msgs_recv_per_height,
            r.kib_recv_per_height,
            r.max_rss_mib.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into()),
        );
    }
    println!("(per height: node = median node's CPU; all = every node's CPU summed; floor = N x 2N strict verifies; msgs/KiB in = consensus messages received by the median node)");
    let value = json!({
        "bench": "scale",
        "machine": common::machine(),
        "block_interval_ms": a.block_interval_ms,
        "window_s": a.duration,
        "rows": rows.iter().map(|r| json!({
            "validators": r.validators,
            "blocks_per_min": common::round3(r.blocks_per_min),
            "finality_p50_ms": common::round3(r.p50_ms),
            "finality_p99_ms": common::round3(r.p99_ms),
            "rounds_per_height": r.rounds_per_height.map(common::round3),
            "node_cpu_ms_per_height": common::round3(r.node_cpu_ms_per_height),
            "all_nodes_cpu_ms_per_height": common::round3(r.all_cpu_ms_per_height),
            "signature_floor_ms": common::round3(r.sig_floor_ms),
            "messages_received_per_height": common::round3(r.msgs_recv_per_height),
            "messages_sent_per_height": common::round3(r.msgs_sent_per_height),
            "kib_received_per_height": common::round3(r.kib_recv_per_height),
            "kib_sent_per_height": common::round3(r.kib_sent_per_height),
            "max_peak_rss_mib": r.max_rss_mib.map(common::round3),
        })).collect::<Vec<_>>(),
    });
    common::write_json(a.json.as_deref(), &value)?;
    Ok(())
}
