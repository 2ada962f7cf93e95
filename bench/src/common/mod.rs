//! Shared pieces of `bizra bench`: node processes ([`Nodes`], over the
//! `bizra-testnet` supervisor), percentiles, peak RSS and CPU, the physical
//! floor, goals, tables and JSON. The gRPC connect and the Prometheus
//! scrape are `bizra-client`'s.

mod cpu;
mod floor;
mod nodes;
mod report;
mod stats;

pub use bizra_client::{scrape, HistDelta, Scrape};
pub use cpu::{pid_listening_on, self_hwm_kib, vm_hwm_kib, CpuWindow};
pub use floor::{fsync_median, loopback_rtt};
pub use nodes::{connect, scrape_all, status, wait_ready, Nodes};
pub use report::{machine, print_report, round3, rss_json, rss_rows, write_json, Goal};
pub use stats::{median_f64, ms, percentile, us};

use std::path::PathBuf;

/// A fresh testnet directory: `home` if given, else a new temporary one.
pub fn bench_home(home: &Option<PathBuf>, what: &str) -> PathBuf {
    match home {
        Some(h) => h.clone(),
        None => std::env::temp_dir().join(format!(
            "bizra-bench-{what}-{}-{}",
            std::process::id(),
            bizra_node::engine::now_ms()
        )),
    }
}
