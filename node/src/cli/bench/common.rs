//! Shared pieces of `bizra bench`: node processes, Prometheus scraping,
//! percentiles, peak RSS, the physical floor, goals, tables and JSON.

use crate::cli::{check, usage, Failure};
use bizra_proto::node_client::NodeClient;
use bizra_proto::{GetStatusRequest, GetStatusResponse};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

// ---------------------------------------------------------------- processes

/// `bizra run` child processes of one testnet. Dropping it stops them all
/// (SIGTERM, then SIGKILL after 10 s), by PID.
pub struct Nodes {
    pub homes: Vec<PathBuf>,
    pub base_port: u16,
    children: Vec<Option<Child>>,
    env: Vec<(String, String)>,
}

impl Nodes {
    /// Nothing started yet. `log_level` overrides `log.level` of every node.
    pub fn new(homes: Vec<PathBuf>, base_port: u16, log_level: Option<&str>) -> Nodes {
        let mut env = Vec::new();
        if let Some(l) = log_level {
            env.push(("BIZRA_LOG_LEVEL".to_string(), l.to_string()));
        }
        let children = homes.iter().map(|_| None).collect();
        Nodes {
            homes,
            base_port,
            children,
            env,
        }
    }

    pub fn len(&self) -> usize {
        self.homes.len()
    }

    pub fn grpc_url(&self, k: usize) -> String {
        format!("http://127.0.0.1:{}", self.base_port as u32 + 100 + k as u32)
    }

    pub fn metrics_port(&self, k: usize) -> u16 {
        (self.base_port as u32 + 200 + k as u32) as u16
    }

    /// Starts node `k` (`bizra run --home`), logging to `nodeK/node.log`.
    pub fn start(&mut self, k: usize) -> Result<(), Failure> {
        let exe = std::env::current_exe().map_err(|e| usage(format!("cannot find the bizra binary: {e}")))?;
        let home = &self.homes[k];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("node.log"))
            .map_err(|e| usage(format!("node log: {e}")))?;
        let mut cmd = Command::new(exe);
        cmd.args(["run", "--home"])
            .arg(home)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| usage(e.to_string()))?)
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl(2) is async-signal-safe; the child gets SIGTERM if
            // this (spawning) thread dies, so a killed bench leaves no node behind.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().map_err(|e| check(format!("cannot start node{k}: {e}")))?;
        println!(
            "  node{k}: pid {} grpc {} metrics http://127.0.0.1:{}/metrics log {}",
            child.id(),
            self.grpc_url(k),
            self.metrics_port(k),
            home.join("node.log").display()
        );
        self.children[k] = Some(child);
        Ok(())
    }

    pub fn start_all(&mut self) -> Result<(), Failure> {
        for k in 0..self.len() {
            self.start(k)?;
        }
        Ok(())
    }

    pub fn pids(&self) -> Vec<Option<u32>> {
        (0..self.len()).map(|k| self.pid(k)).collect()
    }

    pub fn pid(&self, k: usize) -> Option<u32> {
        self.children[k].as_ref().map(|c| c.id())
    }

    /// Exit 1 (with the log tail) if a started node has exited.
    pub fn check_alive(&mut self) -> Result<(), Failure> {
        for k in 0..self.len() {
            if let Some(c) = self.children[k].as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    let log = std::fs::read_to_string(self.homes[k].join("node.log")).unwrap_or_default();
                    let tail: String = log
                        .lines()
                        .rev()
                        .take(8)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n");
                    return Err(check(format!("node{k} exited unexpectedly ({st}); log tail:\n{tail}")));
                }
            }
        }
        Ok(())
    }

    /// Peak resident set (VmHWM, KiB) of each running node.
    pub fn peak_rss_kib(&self) -> Vec<Option<u64>> {
        (0..self.len()).map(|k| self.pid(k).and_then(vm_hwm_kib)).collect()
    }

    /// SIGTERM every child, wait up to 10 s, then SIGKILL what is left.
    pub fn stop_all(&mut self) {
        for c in self.children.iter().flatten() {
            // SAFETY: kill(2) on a pid we spawned and have not reaped.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for slot in self.children.iter_mut() {
            let Some(mut c) = slot.take() else { continue };
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    Ok(None) => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// VmHWM (peak resident set, KiB) of a process, from /proc/PID/status.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn self_hwm_kib() -> Option<u64> {
    vm_hwm_kib(std::process::id())
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at state (field 3).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

/// (busy, total) jiffies of the whole machine, from /proc/stat.
fn machine_jiffies() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = s
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// CPU accounting over a window: the machine's busy share and the CPU
/// seconds used by given processes, so a reader can tell a run on a busy
/// machine from a slow node.
pub struct CpuWindow {
    machine: Option<(u64, u64)>,
    procs: Vec<Option<f64>>,
    pids: Vec<Option<u32>>,
}

pub struct CpuUsage {
    /// Busy share of all cores, 0..1.
    pub machine_busy: Option<f64>,
    /// CPU seconds used by each process in the window.
    pub proc_secs: Vec<Option<f64>>,
    pub cores: usize,
}

impl CpuWindow {
    pub fn start(pids: Vec<Option<u32>>) -> CpuWindow {
        let procs = pids.iter().map(|p| p.and_then(proc_cpu_secs)).collect();
        CpuWindow {
            machine: machine_jiffies(),
            procs,
            pids,
        }
    }

    pub fn stop(&self) -> CpuUsage {
        let machine_busy = match (self.machine, machine_jiffies()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1 - b0) as f64 / (t1 - t0) as f64),
            _ => None,
        };
        let proc_secs = self
            .pids
            .iter()
            .zip(&self.procs)
            .map(|(p, before)| Some(p.and_then(proc_cpu_secs)? - (*before)?))
            .collect();
        CpuUsage {
            machine_busy,
            proc_secs,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

impl CpuUsage {
    pub fn total_proc_secs(&self) -> f64 {
        self.proc_secs.iter().flatten().sum()
    }

    /// "machine busy 97% of 2 cores; our processes 1.52 cores, others 0.42".
    pub fn describe(&self, window: Duration) -> String {
        let ours = self.total_proc_secs() / window.as_secs_f64();
        match self.machine_busy {
            Some(b) => format!(
                "machine busy {:.0}% of {} cores: measured processes {:.2} cores, everything else {:.2} cores",
                b * 100.0,
                self.cores,
                ours,
                (b * self.cores as f64 - ours).max(0.0)
            ),
            None => format!("measured processes {ours:.2} cores"),
        }
    }

    pub fn json(&self, window: Duration) -> Value {
        json!({
            "cores": self.cores,
            "machine_busy": self.machine_busy.map(round3),
            "measured_processes_cores": round3(self.total_proc_secs() / window.as_secs_f64()),
            "proc_cpu_s": self.proc_secs.iter().map(|x| x.map(round3)).collect::<Vec<_>>(),
            "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_string()),
        })
    }
}

/// The PID of the process listening on 127.0.0.1:`port` (TCP), found through
/// /proc/net/tcp and the socket inodes in /proc/*/fd. Needs permission to
/// read the other process's fds (same user or root).
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue; // not LISTEN
            }
            let Some((_, p)) = f[1].rsplit_once(':') else { continue };
            if u16::from_str_radix(p, 16).ok() == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

// ---------------------------------------------------------------- gRPC

pub async fn connect(url: &str) -> Option<NodeClient<Channel>> {
    let ep = Channel::from_shared(url.to_string()).ok()?;
    let ch = ep
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .ok()?;
    Some(NodeClient::new(ch))
}

pub async fn status(url: &str) -> Option<GetStatusResponse> {
    let mut c = connect(url).await?;
    tokio::time::timeout(Duration::from_secs(3), c.get_status(GetStatusRequest {}))
        .await
        .ok()?
        .ok()
        .map(|r| r.into_inner())
}

/// Waits until every node of `which` answers GetStatus with
/// `finalized_height >= min_height` and, if `need_peers`, at least one peer.
pub async fn wait_ready(
    nodes: &mut Nodes,
    which: &[usize],
    min_height: u64,
    need_peers: bool,
    limit: Duration,
) -> Result<(), Failure> {
    let deadline = Instant::now() + limit;
    // A node once ready stays counted: heights only grow, and at 100 nodes
    // on 2 cores one pass over all of them takes many seconds.
    let mut done = vec![false; nodes.len()];
    loop {
        nodes.check_alive()?;
        let mut ready = true;
        let mut seen = Vec::new();
        for &k in which {
            if done[k] {
                continue;
            }
            match status(&nodes.grpc_url(k)).await {
                Some(s) => {
                    seen.push(format!("node{k}=B{}/{}p", s.finalized_height, s.peers));
                    if s.finalized_height < min_height || (need_peers && s.peers == 0) {
                        ready = false;
                    } else {
                        done[k] = true;
                    }
                }
                None => {
                    seen.push(format!("node{k}=down"));
                    ready = false;
                }
            }
        }
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(check(format!(
                "nodes not ready within {} s (need height >= {min_height} and peers): {}",
                limit.as_secs(),
                seen.join(" ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------- metrics

/// `GET /metrics` over plain HTTP/1.1 on 127.0.0.1:`port`; the body.
pub async fn scrape(port: u16) -> Option<String> {
    scrape_at("127.0.0.1", port).await
}

/// `GET /metrics` over plain HTTP/1.1 on `host`:`port` (an IPv4 literal or
/// loopback); the body, or None after 5 s.
pub async fn scrape_at(host: &str, port: u16) -> Option<String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            return None;
        }
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            Some(dechunk(body))
        } else {
            Some(body.to_string())
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fut).await.ok().flatten()
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Prometheus text, parsed to `name{labels}` -> value.
#[derive(Clone, Debug, Default)]
pub struct Scrape(pub BTreeMap<String, f64>);

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut m = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            // The value follows the last space outside the label braces.
            let split = match line.rfind('}') {
                Some(close) => line[close..].find(' ').map(|i| close + i),
                None => line.find(' '),
            };
            let Some(at) = split else { continue };
            let (key, rest) = line.split_at(at);
            let Some(v) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            m.insert(key.to_string(), v);
        }
        Scrape(m)
    }

    pub fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// Cumulative buckets `(le, count)` of histogram `name` (labels other than
    /// `le` must match `extra`, e.g. `method="GetHead"`, or be absent).
    pub fn buckets(&self, name: &str, extra: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{");
        let mut out: Vec<(f64, f64)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let labels = k.strip_prefix(&prefix)?.strip_suffix('}')?;
                let mut le = None;
                let mut others = Vec::new();
                for part in labels.split(',') {
                    match part.strip_prefix("le=") {
                        Some(x) => le = Some(x.trim_matches('"')),
                        None => others.push(part),
                    }
                }
                if others.join(",") != extra {
                    return None;
                }
                let le = match le? {
                    "+Inf" => f64::INFINITY,
                    x => x.parse().ok()?,
                };
                Some((le, *v))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// A histogram over a window: the difference of two scrapes' buckets.
#[derive(Clone, Debug, Default)]
pub struct HistDelta {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl HistDelta {
    pub fn between(before: &Scrape, after: &Scrape, name: &str) -> HistDelta {
        let b0 = before.buckets(name, "");
        let b1 = after.buckets(name, "");
        let buckets = b1
            .iter()
            .map(|(le, c)| (*le, c - b0.iter().find(|(l, _)| l == le).map(|x| x.1).unwrap_or(0.0)))
            .collect();
        HistDelta {
            buckets,
            sum: after.get(&format!("{name}_sum")) - before.get(&format!("{name}_sum")),
            count: after.get(&format!("{name}_count")) - before.get(&format!("{name}_count")),
        }
    }

    pub fn add(&mut self, o: &HistDelta) {
        if self.buckets.is_empty() {
            self.buckets = o.buckets.clone();
        } else {
            for (b, ob) in self.buckets.iter_mut().zip(&o.buckets) {
                b.1 += ob.1;
            }
        }
        self.sum += o.sum;
        self.count += o.count;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// Quantile by linear interpolation inside the bucket (as Prometheus'
    /// `histogram_quantile`): only as precise as the bucket bounds.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut prev = (0.0, 0.0);
        for &(le, c) in &self.buckets {
            if c >= rank {
                if le.is_infinite() {
                    return Some(prev.0);
                }
                let width = c - prev.1;
                let frac = if width > 0.0 { (rank - prev.1) / width } else { 1.0 };
                return Some(prev.0 + (le - prev.0) * frac);
            }
            prev = (le, c);
        }
        None
    }
}

/// One scrape of every node's metrics.
pub async fn scrape_all(nodes: &Nodes) -> Result<Vec<Scrape>, Failure> {
    let mut out = Vec::new();
    for k in 0..nodes.len() {
        let port = nodes.metrics_port(k);
        // A node on a saturated host can miss one 5 s deadline.
        let mut text = None;
        for _ in 0..3 {
            text = scrape(port).await;
            if text.is_some() {
                break;
            }
        }
        let text = text.ok_or_else(|| check(format!("node{k}: cannot scrape metrics on port {port} (3 tries)")))?;
        out.push(Scrape::parse(&text));
    }
    Ok(out)
}

// ---------------------------------------------------------------- statistics

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn median_f64(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

// ---------------------------------------------------------------- physical floor

/// Median loopback TCP round trip of a 64-byte message between two tokio
/// tasks (TCP_NODELAY), over `samples` round trips after a warm-up.
pub async fn loopback_rtt(samples: usize) -> Result<Duration, Failure> {
    let io = |e: std::io::Error| check(format!("loopback probe: {e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let echo = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            if s.read_exact(&mut buf).await.is_err() {
                return Ok::<(), std::io::Error>(());
            }
            s.write_all(&buf).await?;
        }
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
    c.set_nodelay(true).map_err(io)?;
    let msg = [0x5au8; 64];
    let mut buf = [0u8; 64];
    let mut rtts = Vec::with_capacity(samples);
    for i in 0..samples + 200 {
        let t = Instant::now();
        c.write_all(&msg).await.map_err(io)?;
        c.read_exact(&mut buf).await.map_err(io)?;
        if i >= 200 {
            rtts.push(t.elapsed());
        }
    }
    drop(c);
    let _ = echo.await;
    rtts.sort();
    Ok(percentile(&rtts, 50.0))
}

/// Median of `samples` small writes + `fdatasync` on a temporary file in `dir`.
pub fn fsync_median(dir: &Path, samples: usize) -> Result<Duration, Failure> {
    use std::io::{Seek, SeekFrom, Write};
    let path = dir.join(format!(".bench-fsync-{}", std::process::id()));
    let io = |e: std::io::Error| check(format!("fsync probe in {}: {e}", dir.display()));
    let mut f = std::fs::File::create(&path).map_err(io)?;
    let mut v = Vec::with_capacity(samples);
    for i in 0..samples + 10 {
        let t = Instant::now();
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        f.write_all(&[i as u8; 64]).map_err(io)?;
        f.sync_data().map_err(io)?;
        if i >= 10 {
            v.push(t.elapsed());
        }
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    v.sort();
    Ok(percentile(&v, 50.0))
}

// ---------------------------------------------------------------- output

/// One goal of the issue: met or missed, with the measured value and ratio.
pub struct Goal {
    pub name: String,
    /// e.g. "<= 10 ms".
    pub target: String,
    pub measured: String,
    /// measured / target for "at least" goals, target / measured for "at most"
    /// goals: >= 1 means met in both cases.
    pub ratio: f64,
    pub met: bool,
}

impl Goal {
    pub fn at_least(name: &str, measured: f64, target: f64, unit: &str) -> Goal {
        let ratio = if target > 0.0 { measured / target } else { f64::INFINITY };
        Goal {
            name: name.into(),
            target: format!(">= {} {unit}", fmt_num(target)),
            measured: format!("{} {unit}", fmt_num(measured)),
            ratio,
            met: measured >= target,
        }
    }

    pub fn at_most(name: &str, measured: f64, target: f64, unit: &str) -> Goal {
        let ratio = if measured > 0.0 {
            target / measured
        } else {
            f64::INFINITY
        };
        Goal {
            name: name.into(),
            target: format!("<= {} {unit}", fmt_num(target)),
            measured: format!("{} {unit}", fmt_num(measured)),
            ratio,
            met: measured <= target,
        }
    }

    pub fn json(&self) -> Value {
        json!({"name": self.name, "target": self.target, "measured": self.measured,
               "ratio": round3(self.ratio), "met": self.met})
    }
}

pub fn fmt_num(x: f64) -> String {
    if x.is_infinite() {
        "inf".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

pub fn round3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        -1.0
    }
}

/// Prints `title`, then aligned `key  value` rows, then the goals.
pub fn print_report(title: &str, rows: &[(String, String)], goals: &[Goal]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0).max(20);
    println!();
    println!("{title}");
    println!("{}", "-".repeat(title.len()));
    for (k, v) in rows {
        println!("  {k:<width$}  {v}");
    }
    if !goals.is_empty() {
        println!();
        println!(
            "  {:<40} {:<20} {:<22} {:>7}  verdict",
            "goal", "target", "measured", "ratio"
        );
        for g in goals {
            println!(
                "  {:<40} {:<20} {:<22} {:>6.2}x  {}",
                g.name,
                g.target,
                g.measured,
                g.ratio,
                if g.met { "met" } else { "MISSED" }
            );
        }
    }
}

pub fn rss_rows(rows: &mut Vec<(String, String)>, label: &str, rss: &[Option<u64>]) {
    for (k, r) in rss.iter().enumerate() {
        rows.push((
            format!("{label}{k} peak RSS (VmHWM)"),
            r.map(|kib| format!("{:.1} MiB", kib as f64 / 1024.0))
                .unwrap_or_else(|| "n/a".into()),
        ));
    }
}

pub fn rss_json(rss: &[Option<u64>]) -> Value {
    Value::Array(rss.iter().map(|r| r.map(|v| json!(v)).unwrap_or(Value::Null)).collect())
}

/// The machine, for the JSON record.
pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .map(|v| v.trim().trim_end_matches("kB").trim().to_string())
            })
        })
        .and_then(|v| v.parse::<u64>().ok());
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu": cpu,
        "mem_total_kib": mem_kib,
        "bizra_version": env!("CARGO_PKG_VERSION"),
    })
}

/// Writes `value` (pretty JSON) to `path` if given.
pub fn write_json(path: Option<&Path>, value: &Value) -> Result<(), Failure> {
    let Some(p) = path else { return Ok(()) };
    let text = serde_json::to_string_pretty(value).map_err(|e| check(format!("JSON: {e}")))?;
    std::fs::write(p, text + "\n").map_err(|e| usage(format!("--json {}: {e}", p.display())))?;
    println!("\nwrote {}", p.display());
    Ok(())
}

/// A fresh testnet directory: `home` if given, else a new temporary one.
pub fn bench_home(home: &Option<PathBuf>, what: &str) -> PathBuf {
    match home {
        Some(h) => h.clone(),
        None => std::env::temp_dir().join(format!(
            "bizra-bench-{what}-{}-{}",
            std::process::id(),
            crate::engine::now_ms()
        )),
    }
}

/// Refuses a base port whose ranges (P+K, P+100+K, P+200+K) overflow or are in use.
pub fn check_ports(base: u16, n: usize) -> Result<(), Failure> {
    for k in 0..n as u32 {
        for off in [0u32, 100, 200] {
            let port = base as u32 + off + k;
            if port > u16::MAX as u32 {
                return Err(usage(format!("--base-port {base}: port {port} is beyond 65535")));
            }
            if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_err() {
                return Err(usage(format!(
                    "--base-port {base}: 127.0.0.1:{port} is in use; pick another --base-port"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
bizra_consensus_height 42\n\
bizra_attestations_total{result=\"finalized\"} 1200\n\
bizra_lat_seconds_bucket{le=\"0.001\"} 1\n\
bizra_lat_seconds_bucket{le=\"0.01\"} 9\n\
bizra_lat_seconds_bucket{le=\"+Inf\"} 10\n\
bizra_lat_seconds_sum 0.05\n\
bizra_lat_seconds_count 10\n\
bizra_grpc_seconds_bucket{le=\"0.001\",method=\"GetHead\"} 5\n\
# EOF\n";

    #[test]
    fn parses_prometheus_text() {
        let s = Scrape::parse(TEXT);
        assert_eq!(s.get("bizra_consensus_height"), 42.0);
        assert_eq!(s.get("bizra_attestations_total{result=\"finalized\"}"), 1200.0);
        assert_eq!(s.buckets("bizra_lat_seconds", "").len(), 3);
        assert_eq!(
            s.buckets("bizra_grpc_seconds", "method=\"GetHead\""),
            vec![(0.001, 5.0)]
        );
        assert!(s.buckets("bizra_grpc_seconds", "").is_empty());
    }

    #[test]
    fn histogram_window_and_quantiles() {
        let before = Scrape::default();
        let after = Scrape::parse(TEXT);
        let h = HistDelta::between(&before, &after, "bizra_lat_seconds");
        assert_eq!(h.count, 10.0);
        assert!((h.mean().unwrap() - 0.005).abs() < 1e-12);
        // Rank 5 of 10 falls in (0.001, 0.01]: 4 of its 8 observations in.
        let p50 = h.quantile(0.5).unwrap();
        assert!((p50 - (0.001 + 0.009 * 0.5)).abs() < 1e-12, "{p50}");
        // Rank 10 is in +Inf: reported as the last finite bound.
        assert_eq!(h.quantile(1.0), Some(0.01));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&v, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn dechunks_http_bodies() {
        assert_eq!(dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
    }

    #[test]
    fn goals_report_ratio_and_verdict() {
        let g = Goal::at_most("p50", 20.0, 10.0, "ms");
        assert!(!g.met && (g.ratio - 0.5).abs() < 1e-12);
        let g = Goal::at_least("rps", 0.9, 0.8, "x");
        assert!(g.met && g.ratio > 1.0);
    }
}
