//! `bizra testnet perturb`: the CometBFT e2e idea for our compose testnets.
//!
//! From a seed it schedules `kill` then `start`, `pause`/`unpause`,
//! `docker network disconnect`/`connect` and `restart` against random
//! validators, never more than a third of the validators (equal weights, so
//! under a third of the weight) at a time. After each perturbation is undone
//! it measures the time until every validator is past the height the chain
//! had reached, and it tracks each node's largest height lag. At the end it
//! checks over gRPC that every validator answers and that all agree on a
//! common height (the `wq-proof` check over all of them), samples CPU and
//! memory per container, and writes a JSON report plus a short summary.
//!
//! With `--stack NAME` (or a DIR holding stack.yml and no docker-compose.yml)
//! the testnet is a Docker Swarm stack and the perturbations go through Swarm
//! (see `swarm.rs`): kill a task (Swarm replaces it), scale a service to zero
//! and back, pause, and cut a task off the overlay network.

mod compose;
mod observe;
mod report;
mod swarm;
mod target;

use super::wq_proof::{wq_proof, WqProofArgs};
use super::{check, usage, CliResult};
use bizra_proto::SubscribeHeadsRequest;
use clap::Args;
use compose::{container_memory, memory_of, Docker};
use observe::{grpc_urls, heights, metrics_addrs, note_lag, scrape_all};
use rand::{Rng, SeedableRng};
use report::{finality, percentile, spread, ContainerStat, Outcome, Report, SwarmInfo};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use target::{detect_mode, Applied, Mode, Target};

/// Arguments of `bizra testnet perturb`.
#[derive(Args, Debug, Clone)]
pub struct PerturbArgs {
    /// The directory written by `bizra testnet compose` (with docker-compose.yml), already `up`,
    /// or by `bizra testnet stack` (with stack.yml), already deployed.
    #[arg(long)]
    pub dir: PathBuf,
    /// Seed of the perturbation schedule.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Total run time, seconds.
    #[arg(long, default_value_t = 300)]
    pub duration: u64,
    /// How long each perturbation is held before it is undone, seconds.
    #[arg(long, default_value_t = 10)]
    pub hold: u64,
    /// Longest wait for recovery after a perturbation, seconds.
    #[arg(long, default_value_t = 180)]
    pub recover_timeout: u64,
    /// gRPC base port, used only when DIR/testnet.json does not list each
    /// validator's URL: validator K is then reached on 127.0.0.1:BASE+100+K.
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// Compose project name (default: the directory's name).
    #[arg(long)]
    pub project: Option<String>,
    /// Swarm stack name (`docker stack deploy ... NAME`): perturb through Swarm instead of
    /// compose. The default when DIR holds stack.yml and no docker-compose.yml: the directory's
    /// name.
    #[arg(long, conflicts_with = "project")]
    pub stack: Option<String>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "perturb_report.json")]
    pub report: PathBuf,
}

/// A kind of perturbation applied to a set of validators.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Compose: `docker-compose kill` the nodes, then start them again.
    KillStart,
    /// Pause the nodes' containers, then unpause them.
    PauseUnpause,
    /// Cut the nodes' containers off their network, then reconnect them.
    Disconnect,
    /// Compose: `docker-compose restart` the nodes.
    Restart,
    /// Swarm: `docker kill` the task's container; Swarm starts a new task.
    KillTask,
    /// Swarm: `docker service scale S=0`, then `S=1`.
    ScaleToZero,
}

/// One scheduled perturbation: an action on some validators at once.
#[derive(Clone, Debug, Serialize)]
pub struct Perturbation {
    /// What is done to the nodes.
    pub action: Action,
    /// Indices of the validators perturbed, sorted, each once.
    pub nodes: Vec<usize>,
}

/// The seeded schedule: at most `(n - 1) / 3` nodes per perturbation.
pub fn schedule(seed: u64, n: usize, count: usize) -> Vec<Perturbation> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let max = ((n.saturating_sub(1)) / 3).max(1).min(n.saturating_sub(1).max(1));
    (0..count)
        .map(|_| {
            let action = match rng.random_range(0..4) {
                0 => Action::KillStart,
                1 => Action::PauseUnpause,
                2 => Action::Disconnect,
                _ => Action::Restart,
            };
            let k = rng.random_range(1..=max);
            let mut nodes: Vec<usize> = Vec::new();
            while nodes.len() < k {
                let v = rng.random_range(0..n);
                if !nodes.contains(&v) {
                    nodes.push(v);
                }
            }
            nodes.sort();
            Perturbation { action, nodes }
        })
        .collect()
}

/// Runs `bizra testnet perturb`: applies the seeded schedule, measures recovery and agreement, and writes the JSON report.
pub fn run(a: PerturbArgs) -> CliResult {
    let genesis = std::fs::read(a.dir.join("genesis.json")).map_err(|e| {
        usage(format!(
            "{}: {e} (run `bizra testnet compose` or `bizra testnet stack` first)",
            a.dir.join("genesis.json").display()
        ))
    })?;
    let g = bizra_consensus::genesis::Genesis::from_bytes(&genesis).map_err(|e| usage(format!("genesis: {e}")))?;
    let n = g.members.len();
    let dir_name = a
        .dir
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "bizra".into());
    let mode = detect_mode(
        a.stack.as_deref(),
        a.project.as_deref(),
        &dir_name,
        a.dir.join("docker-compose.yml").is_file(),
        a.dir.join("stack.yml").is_file(),
    );
    let target = match &mode {
        Mode::Compose { project } => Target::Compose(Docker::new(&a.dir, project).map_err(usage)?),
        Mode::Swarm { stack } => {
            println!(
                "swarm stack {stack}: services {}..{}",
                swarm::service(stack, 0),
                swarm::service(stack, n.saturating_sub(1))
            );
            Target::Swarm(swarm::Swarm::new(stack))
        }
    };
    let urls = grpc_urls(&a, n)?;
    let metrics = metrics_addrs(&a, n)?;
    super::runtime().block_on(run_async(a, n, target, urls, metrics))
}

async fn run_async(a: PerturbArgs, n: usize, t: Target, urls: Vec<String>, metrics: Vec<(String, u16)>) -> CliResult {
    let started = Instant::now();
    // Every validator must answer before we start.
    let mut hs = heights(&urls).await;
    let wait = Instant::now();
    while hs.iter().any(|h| h.is_none()) && wait.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        hs = heights(&urls).await;
    }
    if let Some(k) = hs.iter().position(|h| h.is_none()) {
        return Err(check(format!(
            "node{k} does not answer on {} (publish every gRPC port)",
            urls[k]
        )));
    }
    let scrape_start = scrape_all(&t.metrics(&metrics)).await;
    // Block cadence from node0's head stream.
    let stream_url = urls[0].clone();
    let intervals = std::sync::Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let iv = intervals.clone();
    let stream_task = tokio::spawn(async move {
        // No timeouts: the stream lasts the whole run.
        let Ok(mut c) = bizra_client::connect_once(&stream_url, bizra_client::Timeouts::default()).await else {
            return;
        };
        let Ok(resp) = c.subscribe_heads(SubscribeHeadsRequest {}).await else {
            return;
        };
        let mut s = resp.into_inner();
        let mut last: Option<Instant> = None;
        while let Ok(Some(_)) = s.message().await {
            let now = Instant::now();
            if let Some(l) = last {
                iv.lock().expect("intervals").push(now.duration_since(l).as_secs_f64());
            }
            last = Some(now);
        }
    });
    let per = (a.hold + 20).max(1);
    let plan = schedule(a.seed, n, (a.duration / per).max(1) as usize);
    let mut lag = vec![0u64; n];
    let mut outcomes = Vec::new();
    let first_height = hs.iter().flatten().copied().max().unwrap_or(0);
    for p in plan {
        if started.elapsed() > Duration::from_secs(a.duration) {
            break;
        }
        let t0 = started.elapsed().as_secs_f64();
        println!("[{t0:>6.0}s] {:?} on {:?}", t.action(p.action), p.nodes);
        let t_apply = Instant::now();
        let done = t.apply(&p).map_err(check)?;
        let apply_s = t_apply.elapsed().as_secs_f64();
        let (action, substitute_for, substitution_reason) = match &done {
            Applied::Compose(_) => (p.action, None, None),
            Applied::Swarm(step) => (step.action, step.substitute_for, step.reason.clone()),
        };
        if let Some(was) = substitute_for {
            println!(
                "         {was:?} refused by docker ({}); done as {action:?} instead",
                substitution_reason.as_deref().unwrap_or("")
            );
        }
        // Hold, sampling the lag of the validators that still answer.
        let hold_until = Instant::now() + Duration::from_secs(a.hold);
        while Instant::now() < hold_until {
            note_lag(&mut lag, &heights(&urls).await);
            tokio::time::sleep(Duration::from_secs(2).min(hold_until.saturating_duration_since(Instant::now()))).await;
        }
        let t_undo = Instant::now();
        let notes = t
            .undo(&p, &done, Duration::from_secs(a.recover_timeout))
            .await
            .map_err(check)?;
        for n in &notes {
            println!("         note: {n}");
        }
        let undo_s = t_undo.elapsed().as_secs_f64();
        let undo_at = Instant::now();
        let hs = heights(&urls).await;
        let target = hs.iter().flatten().copied().max().unwrap_or(0) + 1;
        let mut recovered = false;
        while undo_at.elapsed() < Duration::from_secs(a.recover_timeout) {
            let hs = heights(&urls).await;
            note_lag(&mut lag, &hs);
            if hs.iter().all(|h| h.is_some_and(|h| h >= target)) {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let rec = undo_at.elapsed().as_secs_f64();
        println!(
            "         applied in {apply_s:.1}s, undone in {undo_s:.1}s; recovered={recovered} in {rec:.1}s (all past B{target})"
        );
        outcomes.push(Outcome {
            action,
            nodes: p.nodes,
            started_s: t0,
            apply_s,
            undo_s,
            recovered,
            recover_s: rec,
            height_at_undo: target - 1,
            substitute_for,
            substitution_reason,
            notes,
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // Final check: every validator answers and all agree on a common height.
    let args = WqProofArgs {
        grpc: urls.clone(),
        min_height: 3,
        timeout: a.recover_timeout,
        out: a.report.with_extension("wq_proof.json"),
        genesis: Some(a.dir.join("genesis.json")),
    };
    let proof = wq_proof(&args).await;
    let (agreement, all_agree, final_height) = match &proof {
        Ok(o) => (o.line.clone(), o.ok, o.proof.height),
        Err(e) => (format!("wq-proof failed: {e}"), false, 0),
    };
    stream_task.abort();
    let mut iv = intervals.lock().expect("intervals").clone();
    iv.sort_by(|a, b| a.total_cmp(b));
    let elapsed = started.elapsed().as_secs_f64();
    let last = heights(&urls).await.iter().flatten().copied().max().unwrap_or(0);
    let finality = finality(&scrape_start, &scrape_all(&t.metrics(&metrics)).await);
    let (rss, stats) = match &t {
        Target::Compose(d) => (
            container_memory(d),
            Docker::docker(&[
                "stats",
                "--no-stream",
                "--format",
                "{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}",
            ])
            .unwrap_or_default(),
        ),
        // The stack's task containers only, found by the service label.
        Target::Swarm(s) => {
            let ids = s.stack_containers();
            let mut args = vec![
                "stats",
                "--no-stream",
                "--format",
                "{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}",
            ];
            args.extend(ids.iter().map(String::as_str));
            let stats = if ids.is_empty() {
                String::new()
            } else {
                Docker::docker(&args).unwrap_or_default()
            };
            (memory_of(ids.iter().map(String::as_str).collect()), stats)
        }
    };
    let containers = stats
        .lines()
        .filter_map(|l| {
            let mut it = l.split('\t');
            Some(ContainerStat {
                name: it.next()?.into(),
                cpu: it.next()?.into(),
                mem: it.next()?.into(),
            })
        })
        .collect();
    let swarm_info = match &t {
        Target::Compose(_) => None,
        Target::Swarm(s) => Some(SwarmInfo {
            stack: s.stack.clone(),
            network: swarm::network(&s.stack),
            disconnects: outcomes.iter().filter(|o| o.action == Action::Disconnect).count(),
            disconnects_substituted: outcomes
                .iter()
                .filter(|o| o.substitute_for == Some(Action::Disconnect))
                .count(),
        }),
    };
    let report = Report {
        version: "perturb-report/1",
        seed: a.seed,
        validators: n,
        duration_s: elapsed,
        perturbations: outcomes,
        max_height_lag: lag,
        final_height,
        agreement: agreement.clone(),
        all_agree,
        block_interval_p50_s: percentile(&iv, 0.5),
        block_interval_p99_s: percentile(&iv, 0.99),
        blocks_per_min: (last.saturating_sub(first_height)) as f64 / (elapsed / 60.0),
        finality,
        rss,
        containers,
        swarm: swarm_info,
    };
    let json = serde_json::to_string_pretty(&report).expect("report json");
    std::fs::write(&a.report, json + "\n").map_err(|e| check(format!("write {}: {e}", a.report.display())))?;
    let failed = report.perturbations.iter().filter(|o| !o.recovered).count();
    println!(
        "perturb: {} perturbations, {failed} did not recover; block interval p50 {:.2}s p99 {:.2}s; {:.1} blocks/min; max lag {:?}",
        report.perturbations.len(),
        report.block_interval_p50_s,
        report.block_interval_p99_s,
        report.blocks_per_min,
        report.max_height_lag.iter().max()
    );
    let f = &report.finality;
    let secs = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.1}s"));
    println!(
        "finality over {} observations on {} nodes: p50 {} p99 {} mean {}",
        f.observations,
        f.nodes_scraped,
        secs(f.p50_s),
        secs(f.p99_s),
        secs(f.mean_s)
    );
    let mib = |k: u64| k as f64 / 1024.0;
    if let Some((lo, mid, hi)) = spread(report.rss.iter().filter_map(|m| m.vm_rss_kib).collect()) {
        println!(
            "RSS per validator: min {:.0} / median {:.0} / max {:.0} MiB",
            mib(lo),
            mib(mid),
            mib(hi)
        );
    }
    if let Some((lo, mid, hi)) = spread(report.rss.iter().filter_map(|m| m.vm_hwm_kib).collect()) {
        println!(
            "peak RSS (VmHWM) per validator: min {:.0} / median {:.0} / max {:.0} MiB",
            mib(lo),
            mib(mid),
            mib(hi)
        );
    }
    if let Some(sw) = &report.swarm {
        let refused = report
            .perturbations
            .iter()
            .find_map(|o| o.substitution_reason.as_deref());
        println!(
            "swarm stack {}: {} disconnects from {} (docker network disconnect/connect), {} refused by docker and done as pause/unpause{}",
            sw.stack,
            sw.disconnects,
            sw.network,
            sw.disconnects_substituted,
            refused.map_or(String::new(), |r| format!(" ({r})"))
        );
    }
    println!("{agreement}");
    if failed > 0 || !all_agree {
        return Err(check(format!(
            "{failed} perturbations did not recover; agreement: {all_agree}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
