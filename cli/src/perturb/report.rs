//! The report of a perturbation run: what each perturbation did and how
//! long recovery took, finality over the run from the nodes' histograms,
//! memory per validator, and the JSON document (`perturb-report/1`).

use super::Action;
use bizra_client::{HistDelta, Scrape};
use serde::Serialize;

#[derive(Serialize)]
pub(super) struct Outcome {
    pub(super) action: Action,
    pub(super) nodes: Vec<usize>,
    pub(super) started_s: f64,
    /// How long applying and undoing took (docker calls on a busy host):
    /// the nodes were affected for about apply_s + hold + undo_s.
    pub(super) apply_s: f64,
    pub(super) undo_s: f64,
    pub(super) recovered: bool,
    pub(super) recover_s: f64,
    pub(super) height_at_undo: u64,
    /// Swarm: the scheduled action this one stood in for (a disconnect
    /// Docker refused, done as pause/unpause) and Docker's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) substitute_for: Option<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) substitution_reason: Option<String>,
    /// Swarm: what did not go as planned in the undo (a reconnect Docker
    /// refused at the old address, a killed task not replaced in time).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) notes: Vec<String>,
}

/// How a swarm run perturbed the stack (absent for compose).
#[derive(Serialize)]
pub(super) struct SwarmInfo {
    pub(super) stack: String,
    pub(super) network: String,
    /// Scheduled disconnects done as `docker network disconnect`/`connect`.
    pub(super) disconnects: usize,
    /// Scheduled disconnects Docker refused, done as pause/unpause instead.
    pub(super) disconnects_substituted: usize,
}

#[derive(Serialize)]
pub(super) struct ContainerStat {
    pub(super) name: String,
    pub(super) cpu: String,
    pub(super) mem: String,
}

#[derive(Serialize)]
pub(super) struct Report {
    pub(super) version: &'static str,
    pub(super) seed: u64,
    pub(super) validators: usize,
    pub(super) duration_s: f64,
    pub(super) perturbations: Vec<Outcome>,
    pub(super) max_height_lag: Vec<u64>,
    pub(super) final_height: u64,
    pub(super) agreement: String,
    pub(super) all_agree: bool,
    pub(super) block_interval_p50_s: f64,
    pub(super) block_interval_p99_s: f64,
    pub(super) blocks_per_min: f64,
    /// From every node's `bizra_finality_latency_seconds` over the run
    /// (interpolated inside the histogram's buckets; a restarted node counts
    /// from its restart).
    pub(super) finality: Finality,
    /// Resident memory per validator process, KiB (`VmRSS` / `VmHWM` of each
    /// container's init process, read from the host's /proc).
    pub(super) rss: Vec<ProcMem>,
    pub(super) containers: Vec<ContainerStat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) swarm: Option<SwarmInfo>,
}

#[derive(Serialize, Default)]
pub(super) struct Finality {
    pub(super) observations: f64,
    pub(super) mean_s: Option<f64>,
    pub(super) p50_s: Option<f64>,
    pub(super) p99_s: Option<f64>,
    pub(super) nodes_scraped: usize,
}

#[derive(Serialize)]
pub(super) struct ProcMem {
    pub(super) name: String,
    pub(super) pid: u32,
    pub(super) vm_rss_kib: Option<u64>,
    pub(super) vm_hwm_kib: Option<u64>,
}

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(super) const FINALITY: &str = "bizra_finality_latency_seconds";

/// Finality over the run, summed over nodes: each node's histogram at the
/// end minus at the start, or its whole histogram if it restarted meanwhile
/// (counts went down).
pub(super) fn finality(before: &[Option<Scrape>], after: &[Option<Scrape>]) -> Finality {
    let mut total = HistDelta::default();
    let mut nodes = 0;
    for (b, a) in before.iter().zip(after) {
        let Some(a) = a else { continue };
        let empty = Scrape::default();
        let b = match b {
            Some(b) if b.get(&format!("{FINALITY}_count")) <= a.get(&format!("{FINALITY}_count")) => b,
            _ => &empty,
        };
        total.add(&HistDelta::between(b, a, FINALITY));
        nodes += 1;
    }
    Finality {
        observations: total.count,
        mean_s: total.mean(),
        p50_s: total.quantile(0.5),
        p99_s: total.quantile(0.99),
        nodes_scraped: nodes,
    }
}

/// min / median / max of the present values.
pub(super) fn spread(mut v: Vec<u64>) -> Option<(u64, u64, u64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some((v[0], v[v.len() / 2], v[v.len() - 1]))
}
