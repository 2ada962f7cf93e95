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
//! (see [`swarm`]): kill a task (Swarm replaces it), scale a service to zero
//! and back, pause, and cut a task off the overlay network.

mod swarm;

use super::bench::common::{scrape_at, HistDelta, Scrape};
use super::wq_proof::{wq_proof, WqProofArgs};
use super::{check, usage, CliResult};
use bizra_proto::node_client::NodeClient;
use bizra_proto::{GetStatusRequest, SubscribeHeadsRequest};
use clap::Args;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    KillStart,
    PauseUnpause,
    Disconnect,
    Restart,
    /// Swarm: `docker kill` the task's container; Swarm starts a new task.
    KillTask,
    /// Swarm: `docker service scale S=0`, then `S=1`.
    ScaleToZero,
}

#[derive(Clone, Debug, Serialize)]
pub struct Perturbation {
    pub action: Action,
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

#[derive(Serialize)]
struct Outcome {
    action: Action,
    nodes: Vec<usize>,
    started_s: f64,
    /// How long applying and undoing took (docker calls on a busy host):
    /// the nodes were affected for about apply_s + hold + undo_s.
    apply_s: f64,
    undo_s: f64,
    recovered: bool,
    recover_s: f64,
    height_at_undo: u64,
    /// Swarm: the scheduled action this one stood in for (a disconnect
    /// Docker refused, done as pause/unpause) and Docker's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    substitute_for: Option<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    substitution_reason: Option<String>,
    /// Swarm: what did not go as planned in the undo (a reconnect Docker
    /// refused at the old address, a killed task not replaced in time).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

/// How a swarm run perturbed the stack (absent for compose).
#[derive(Serialize)]
struct SwarmInfo {
    stack: String,
    network: String,
    /// Scheduled disconnects done as `docker network disconnect`/`connect`.
    disconnects: usize,
    /// Scheduled disconnects Docker refused, done as pause/unpause instead.
    disconnects_substituted: usize,
}

#[derive(Serialize)]
struct ContainerStat {
    name: String,
    cpu: String,
    mem: String,
}

#[derive(Serialize)]
struct Report {
    version: &'static str,
    seed: u64,
    validators: usize,
    duration_s: f64,
    perturbations: Vec<Outcome>,
    max_height_lag: Vec<u64>,
    final_height: u64,
    agreement: String,
    all_agree: bool,
    block_interval_p50_s: f64,
    block_interval_p99_s: f64,
    blocks_per_min: f64,
    /// From every node's `bizra_finality_latency_seconds` over the run
    /// (interpolated inside the histogram's buckets; a restarted node counts
    /// from its restart).
    finality: Finality,
    /// Resident memory per validator process, KiB (`VmRSS` / `VmHWM` of each
    /// container's init process, read from the host's /proc).
    rss: Vec<ProcMem>,
    containers: Vec<ContainerStat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    swarm: Option<SwarmInfo>,
}

#[derive(Serialize, Default)]
struct Finality {
    observations: f64,
    mean_s: Option<f64>,
    p50_s: Option<f64>,
    p99_s: Option<f64>,
    nodes_scraped: usize,
}

#[derive(Serialize)]
struct ProcMem {
    name: String,
    pid: u32,
    vm_rss_kib: Option<u64>,
    vm_hwm_kib: Option<u64>,
}

struct Docker {
    compose: Vec<String>,
}

impl Docker {
    fn new(dir: &Path, project: &str) -> Result<Docker, String> {
        let file = dir.join("docker-compose.yml");
        let base: Vec<String> = if Command::new("docker")
            .args(["compose", "version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            vec!["docker".into(), "compose".into()]
        } else {
            vec!["docker-compose".into()]
        };
        let mut compose = base;
        compose.extend(["-f".into(), file.display().to_string(), "-p".into(), project.into()]);
        Ok(Docker { compose })
    }

    fn compose(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.compose[0])
            .args(&self.compose[1..])
            .args(args)
            .output()
            .map_err(|e| format!("{}: {e}", self.compose.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "compose {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn docker(args: &[&str]) -> Result<String, String> {
        let out = Command::new("docker")
            .args(args)
            .output()
            .map_err(|e| format!("docker: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "docker {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The container id of each of `svcs`, with one compose and one docker
    /// call (a compose call per node took tens of seconds each at alpha-100).
    fn containers(&self, svcs: &[String]) -> Result<Vec<String>, String> {
        let ids = self.compose(&["ps", "-q"])?;
        let mut args = vec![
            "inspect",
            "-f",
            "{{index .Config.Labels \"com.docker.compose.service\"}} {{.Id}}",
        ];
        args.extend(ids.lines().map(str::trim).filter(|l| !l.is_empty()));
        let out = Docker::docker(&args)?;
        let by_service: std::collections::HashMap<&str, &str> =
            out.lines().filter_map(|l| l.trim().split_once(' ')).collect();
        svcs.iter()
            .map(|s| {
                by_service
                    .get(s.as_str())
                    .map(|id| id.to_string())
                    .ok_or_else(|| format!("{s}: no container"))
            })
            .collect()
    }
}

fn services(p: &Perturbation) -> Vec<String> {
    p.nodes.iter().map(|k| format!("node{k}")).collect()
}

/// `[verb, nodeA, nodeB, ...]`: one compose command for a perturbation's nodes.
fn verb_args<'a>(verb: &'a str, svcs: &'a [String]) -> Vec<&'a str> {
    std::iter::once(verb).chain(svcs.iter().map(String::as_str)).collect()
}

/// Applies a perturbation; returns the undo steps' state (network + IP per node).
///
/// One compose command for all the perturbation's nodes: with 100 services
/// each `docker-compose` call takes tens of seconds on a busy host, so a
/// call per node made a 20-node kill last ten minutes.
fn apply(d: &Docker, p: &Perturbation) -> Result<Vec<(String, String, String)>, String> {
    let svcs = services(p);
    let with = |verb: &'static str| verb_args(verb, &svcs);
    let mut undo = Vec::new();
    match p.action {
        Action::KillStart => {
            d.compose(&with("kill"))?;
        }
        Action::PauseUnpause => {
            d.compose(&with("pause"))?;
        }
        Action::Restart => {
            d.compose(&with("restart"))?;
        }
        Action::KillTask | Action::ScaleToZero => return Err(format!("{:?} is a swarm action", p.action)),
        Action::Disconnect => {
            let ids = d.containers(&svcs)?;
            let mut args = vec![
                "inspect",
                "-f",
                "{{range $n, $c := .NetworkSettings.Networks}}{{$n}} {{$c.IPAddress}}{{end}}",
            ];
            args.extend(ids.iter().map(String::as_str));
            let nets = Docker::docker(&args)?;
            let nets: Vec<&str> = nets.lines().collect();
            if nets.len() != ids.len() {
                return Err(format!(
                    "docker inspect: {} answers for {} containers",
                    nets.len(),
                    ids.len()
                ));
            }
            for ((c, line), svc) in ids.iter().zip(nets).zip(&svcs) {
                let (net, ip) = line
                    .trim()
                    .split_once(' ')
                    .ok_or_else(|| format!("{svc}: no network"))?;
                Docker::docker(&["network", "disconnect", net, c])?;
                undo.push((c.clone(), net.to_string(), ip.to_string()));
            }
        }
    }
    Ok(undo)
}

fn undo(d: &Docker, p: &Perturbation, nets: &[(String, String, String)]) -> Result<(), String> {
    let svcs = services(p);
    let with = |verb: &'static str| verb_args(verb, &svcs);
    match p.action {
        Action::KillStart => {
            d.compose(&with("start"))?;
        }
        Action::PauseUnpause => {
            d.compose(&with("unpause"))?;
        }
        Action::Restart | Action::Disconnect => {}
        Action::KillTask | Action::ScaleToZero => return Err(format!("{:?} is a swarm action", p.action)),
    }
    for (c, net, ip) in nets {
        Docker::docker(&["network", "connect", "--ip", ip, net, c])?;
    }
    Ok(())
}

/// Every validator's finalized height, queried concurrently (None: no
/// answer). On a CPU-starved host (100 containers on 2 cores) a node can take
/// seconds to answer, so each query gets generous timeouts and three tries.
async fn heights(urls: &[String]) -> Vec<Option<u64>> {
    let mut set = tokio::task::JoinSet::new();
    for (k, u) in urls.iter().enumerate() {
        let u = u.clone();
        set.spawn(async move { (k, height(&u).await) });
    }
    let mut out = vec![None; urls.len()];
    while let Some(r) = set.join_next().await {
        if let Ok((k, h)) = r {
            out[k] = h;
        }
    }
    out
}

async fn height(url: &str) -> Option<u64> {
    for attempt in 0..3u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
        }
        let Ok(ep) = tonic::transport::Channel::from_shared(url.to_string()) else {
            return None;
        };
        let Ok(ch) = ep
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
        else {
            continue;
        };
        if let Ok(s) = NodeClient::new(ch).get_status(GetStatusRequest {}).await {
            return Some(s.into_inner().finalized_height);
        }
    }
    None
}

/// Raises each answering validator's max lag behind the highest answer (a
/// node that does not answer - killed, paused, cut off - is not sampled).
fn note_lag(lag: &mut [u64], hs: &[Option<u64>]) {
    let max = hs.iter().flatten().copied().max().unwrap_or(0);
    for (l, h) in lag.iter_mut().zip(hs) {
        if let Some(h) = h {
            *l = (*l).max(max - h);
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Compose or Swarm, and the project or stack name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Mode {
    Compose { project: String },
    Swarm { stack: String },
}

/// `--stack` means Swarm; else a DIR with stack.yml and no
/// docker-compose.yml (and no `--project`) means Swarm with the directory's
/// name as the stack name; else compose, as before.
fn detect_mode(
    stack: Option<&str>,
    project: Option<&str>,
    dir_name: &str,
    has_compose_yml: bool,
    has_stack_yml: bool,
) -> Mode {
    if let Some(s) = stack {
        return Mode::Swarm { stack: s.to_string() };
    }
    if project.is_none() && has_stack_yml && !has_compose_yml {
        return Mode::Swarm {
            stack: dir_name.to_string(),
        };
    }
    Mode::Compose {
        project: project.unwrap_or(dir_name).to_string(),
    }
}

/// Where the perturbations go.
enum Target {
    Compose(Docker),
    Swarm(swarm::Swarm),
}

/// What [`Target::apply`] did, for the undo.
enum Applied {
    Compose(Vec<(String, String, String)>),
    Swarm(swarm::Step),
}

impl Target {
    /// The action that is applied for a scheduled one (before any substitution).
    fn action(&self, scheduled: Action) -> Action {
        match self {
            Target::Compose(_) => scheduled,
            Target::Swarm(_) => swarm::swarm_action(scheduled),
        }
    }

    fn apply(&self, p: &Perturbation) -> Result<Applied, String> {
        match self {
            Target::Compose(d) => apply(d, p).map(Applied::Compose),
            Target::Swarm(s) => s.apply(p.action, &p.nodes).map(Applied::Swarm),
        }
    }

    /// Undoes a perturbation; for a killed swarm task, waits (up to
    /// `timeout`) until Swarm runs a new container for each killed service.
    /// Returns notes (swarm: a reconnect at a new address).
    async fn undo(&self, p: &Perturbation, done: &Applied, timeout: Duration) -> Result<Vec<String>, String> {
        match (self, done) {
            (Target::Compose(d), Applied::Compose(nets)) => undo(d, p, nets).map(|()| Vec::new()),
            (Target::Swarm(s), Applied::Swarm(step)) => {
                let mut notes = s.undo(step)?;
                if !step.killed.is_empty() {
                    let t = Instant::now();
                    while !s.replaced(step) && t.elapsed() < timeout {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    if !s.replaced(step) {
                        notes.push(format!("swarm did not replace the killed task within {timeout:?}"));
                    }
                }
                Ok(notes)
            }
            _ => Err("internal: undo of another backend's perturbation".into()),
        }
    }

    /// Every node's metrics address now (a swarm task's address changes
    /// when Swarm replaces it).
    fn metrics(&self, from_manifest: &[(String, u16)]) -> Vec<(String, u16)> {
        match self {
            Target::Compose(_) => from_manifest.to_vec(),
            Target::Swarm(s) => s.metrics_addrs(from_manifest),
        }
    }
}

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

/// The gRPC URL of each validator: from DIR/testnet.json when it lists them
/// (published host ports, or the container's fixed address, which the docker
/// host reaches over the bridge), else 127.0.0.1:BASE+100+K.
fn grpc_urls(a: &PerturbArgs, n: usize) -> Result<Vec<String>, super::Failure> {
    let fallback = || -> Vec<String> {
        (0..n)
            .map(|k| format!("http://127.0.0.1:{}", a.base_port as usize + 100 + k))
            .collect()
    };
    let Some(doc) = manifest(a)? else {
        return Ok(fallback());
    };
    let urls: Option<Vec<String>> = doc["nodes"].as_array().map(|nodes| {
        nodes
            .iter()
            .filter_map(|node| node["grpc"].as_str().map(str::to_string))
            .collect()
    });
    match urls {
        Some(u) if u.len() == n => Ok(u),
        _ => Ok(fallback()),
    }
}

/// Each validator's metrics endpoint `(host, port)`: its host and metrics
/// port from DIR/testnet.json (the container's address, which the docker
/// host reaches over the bridge), else 127.0.0.1:BASE+200+K.
fn metrics_addrs(a: &PerturbArgs, n: usize) -> Result<Vec<(String, u16)>, super::Failure> {
    let fallback = || -> Vec<(String, u16)> {
        (0..n)
            .map(|k| ("127.0.0.1".to_string(), (a.base_port as usize + 200 + k) as u16))
            .collect()
    };
    let Some(doc) = manifest(a)? else {
        return Ok(fallback());
    };
    let addrs: Option<Vec<(String, u16)>> = doc["nodes"].as_array().map(|nodes| {
        nodes
            .iter()
            .filter_map(|node| {
                let host = node["host"].as_str()?;
                let port = u16::try_from(node["metrics_port"].as_u64()?).ok()?;
                Some((host.to_string(), port))
            })
            .collect()
    });
    match addrs {
        Some(v) if v.len() == n => Ok(v),
        _ => Ok(fallback()),
    }
}

/// DIR/testnet.json, parsed; None when there is no such file.
fn manifest(a: &PerturbArgs) -> Result<Option<serde_json::Value>, super::Failure> {
    let path = a.dir.join("testnet.json");
    let Ok(raw) = std::fs::read(&path) else {
        return Ok(None);
    };
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// Every node's metrics, scraped concurrently (None: no answer).
async fn scrape_all(addrs: &[(String, u16)]) -> Vec<Option<Scrape>> {
    let mut set = tokio::task::JoinSet::new();
    for (k, (host, port)) in addrs.iter().enumerate() {
        let (host, port) = (host.clone(), *port);
        set.spawn(async move { (k, scrape_at(&host, port).await.map(|t| Scrape::parse(&t))) });
    }
    let mut out = vec![None; addrs.len()];
    while let Some(r) = set.join_next().await {
        if let Ok((k, s)) = r {
            out[k] = s;
        }
    }
    out
}

const FINALITY: &str = "bizra_finality_latency_seconds";

/// Finality over the run, summed over nodes: each node's histogram at the
/// end minus at the start, or its whole histogram if it restarted meanwhile
/// (counts went down).
fn finality(before: &[Option<Scrape>], after: &[Option<Scrape>]) -> Finality {
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

/// VmRSS and VmHWM of every running container of the project, by the PID
/// docker reports (`bizra run` is each container's init process).
fn container_memory(d: &Docker) -> Vec<ProcMem> {
    let Ok(ids) = d.compose(&["ps", "-q"]) else {
        return Vec::new();
    };
    let ids: Vec<&str> = ids.lines().filter(|l| !l.trim().is_empty()).collect();
    memory_of(ids)
}

/// VmRSS and VmHWM of the given containers' init processes.
fn memory_of(ids: Vec<&str>) -> Vec<ProcMem> {
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["inspect", "-f", "{{.Name}} {{.State.Pid}}"];
    args.extend(ids);
    let Ok(out) = Docker::docker(&args) else {
        return Vec::new();
    };
    let mut v: Vec<ProcMem> = out
        .lines()
        .filter_map(|l| {
            let (name, pid) = l.trim().split_once(' ')?;
            let pid: u32 = pid.parse().ok().filter(|p| *p > 0)?;
            Some(ProcMem {
                name: name.trim_start_matches('/').to_string(),
                pid,
                vm_rss_kib: proc_status_kib(pid, "VmRSS:"),
                vm_hwm_kib: proc_status_kib(pid, "VmHWM:"),
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// min / median / max of the present values.
fn spread(mut v: Vec<u64>) -> Option<(u64, u64, u64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some((v[0], v[v.len() / 2], v[v.len() - 1]))
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
        let Ok(ep) = tonic::transport::Channel::from_shared(stream_url) else {
            return;
        };
        let Ok(ch) = ep.connect().await else { return };
        let Ok(resp) = NodeClient::new(ch).subscribe_heads(SubscribeHeadsRequest {}).await else {
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
mod tests {
    use super::*;

    #[test]
    fn schedule_is_seeded_and_bounded_to_a_third() {
        let a = schedule(7, 100, 50);
        let b = schedule(7, 100, 50);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_ne!(format!("{a:?}"), format!("{:?}", schedule(8, 100, 50)));
        for p in &a {
            assert!(!p.nodes.is_empty() && p.nodes.len() <= 33, "{p:?}");
            assert!(p.nodes.iter().all(|&k| k < 100));
        }
        for p in schedule(1, 4, 20) {
            assert_eq!(p.nodes.len(), 1, "4 validators: one at a time");
        }
        let kinds: std::collections::HashSet<_> = a.iter().map(|p| format!("{:?}", p.action)).collect();
        assert_eq!(kinds.len(), 4);
    }

    fn hist(counts: [u64; 3], sum: f64) -> Scrape {
        // cumulative buckets le=10, le=60, le=+Inf
        Scrape::parse(&format!(
            "{FINALITY}_bucket{{le=\"10.0\"}} {}\n{FINALITY}_bucket{{le=\"60.0\"}} {}\n{FINALITY}_bucket{{le=\"+Inf\"}} {}\n{FINALITY}_sum {sum}\n{FINALITY}_count {}\n",
            counts[0], counts[1], counts[2], counts[2]
        ))
    }

    #[test]
    fn finality_is_the_runs_window_and_a_restart_counts_from_zero() {
        // node0: 10 fast before, +10 slow (10..60 s) during the run.
        // node1: restarted (its count went down): all 4 of its slow ones count.
        // node2: no answer at the end: left out.
        let before = vec![
            Some(hist([10, 10, 10], 50.0)),
            Some(hist([0, 50, 50], 1000.0)),
            Some(hist([1, 1, 1], 1.0)),
        ];
        let after = vec![Some(hist([10, 20, 20], 450.0)), Some(hist([0, 4, 4], 160.0)), None];
        let f = finality(&before, &after);
        assert_eq!(f.nodes_scraped, 2);
        assert_eq!(f.observations, 14.0);
        assert_eq!(f.mean_s, Some((400.0 + 160.0) / 14.0));
        let p50 = f.p50_s.expect("p50");
        assert!(p50 > 10.0 && p50 < 60.0, "{p50}");
        // None of the 10 fast pre-run observations are in the window.
        assert_eq!(
            HistDelta::between(&before[0].clone().unwrap(), &after[0].clone().unwrap(), FINALITY).buckets[0].1,
            0.0
        );
    }

    #[test]
    fn verb_args_is_one_command_for_all_nodes() {
        let p = Perturbation {
            action: Action::KillStart,
            nodes: vec![3, 17],
        };
        let svcs = services(&p);
        assert_eq!(verb_args("kill", &svcs), vec!["kill", "node3", "node17"]);
    }

    #[test]
    fn lag_counts_only_answering_nodes() {
        let mut lag = vec![0, 5, 0];
        note_lag(&mut lag, &[Some(10), Some(8), None]);
        assert_eq!(lag, vec![0, 5, 0]);
        note_lag(&mut lag, &[Some(20), Some(11), Some(2)]);
        assert_eq!(lag, vec![0, 9, 18]);
    }

    #[test]
    fn mode_follows_the_flags_and_the_directory() {
        let compose = |p: &str| Mode::Compose { project: p.into() };
        let swarm = |s: &str| Mode::Swarm { stack: s.into() };
        // As before: a compose directory, or anything without stack.yml.
        assert_eq!(detect_mode(None, None, "t4", true, false), compose("t4"));
        assert_eq!(detect_mode(None, None, "t4", false, false), compose("t4"));
        assert_eq!(detect_mode(None, Some("p"), "t4", true, false), compose("p"));
        // Both files: compose unless asked for the stack.
        assert_eq!(detect_mode(None, None, "t4", true, true), compose("t4"));
        assert_eq!(detect_mode(Some("s"), None, "t4", true, true), swarm("s"));
        // stack.yml only: the stack named after the directory.
        assert_eq!(detect_mode(None, None, "st4", false, true), swarm("st4"));
        assert_eq!(detect_mode(Some("other"), None, "st4", false, true), swarm("other"));
        // An explicit compose project wins over the directory's contents.
        assert_eq!(detect_mode(None, Some("p"), "st4", false, true), compose("p"));
    }

    #[test]
    fn stack_and_project_conflict() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: PerturbArgs,
        }
        let ok = Cli::try_parse_from(["x", "--dir", "/tmp/st4", "--stack", "st4"]).expect("parses");
        assert_eq!(ok.a.stack.as_deref(), Some("st4"));
        assert!(Cli::try_parse_from(["x", "--dir", "d", "--stack", "s", "--project", "p"]).is_err());
    }

    #[test]
    fn swarm_fields_are_absent_from_a_compose_report() {
        let o = Outcome {
            action: Action::KillStart,
            nodes: vec![1],
            started_s: 0.0,
            apply_s: 0.0,
            undo_s: 0.0,
            recovered: true,
            recover_s: 1.0,
            height_at_undo: 5,
            substitute_for: None,
            substitution_reason: None,
            notes: Vec::new(),
        };
        let j = serde_json::to_value(&o).expect("json");
        assert!(j.get("substitute_for").is_none() && j.get("substitution_reason").is_none());
        assert!(j.get("notes").is_none());
        let o = Outcome {
            action: Action::PauseUnpause,
            substitute_for: Some(Action::Disconnect),
            substitution_reason: Some("refused".into()),
            ..o
        };
        let j = serde_json::to_value(&o).expect("json");
        assert_eq!(j["action"], "pause_unpause");
        assert_eq!(j["substitute_for"], "disconnect");
        assert_eq!(j["substitution_reason"], "refused");
        assert_eq!(
            serde_json::to_value(Action::ScaleToZero).expect("json"),
            "scale_to_zero"
        );
        assert_eq!(serde_json::to_value(Action::KillTask).expect("json"), "kill_task");
    }

    #[test]
    fn spread_is_min_median_max() {
        assert_eq!(spread(vec![]), None);
        assert_eq!(spread(vec![5, 1, 9, 3]), Some((1, 5, 9)));
    }
}
