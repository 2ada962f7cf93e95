//! The node processes of a bench: a `bizra-testnet` [`Supervisor`] with the
//! bench's output and exit codes, and what the bench asks them over gRPC
//! and HTTP (status, readiness, metrics).

use crate::{failed, usage, BenchError};
use bizra_client::{scrape, Channel, NodeClient, Scrape, Timeouts};
use bizra_proto::{GetStatusRequest, GetStatusResponse};
use bizra_testnet::supervisor::{StartError, STOP_GRACE};
use bizra_testnet::{Ports, Supervisor};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `bizra run` child processes of one testnet on loopback. Dropping it
/// stops them all (SIGTERM, then SIGKILL after 10 s), by PID.
pub struct Nodes {
    base_port: u16,
    sup: Supervisor,
    /// Why the `bizra` binary cannot be found, reported at the first start.
    exe_error: Option<String>,
}

impl Nodes {
    /// Nothing started yet. `log_level` overrides `log.level` of every node.
    pub fn new(homes: Vec<PathBuf>, base_port: u16, log_level: Option<&str>) -> Nodes {
        let (exe, exe_error) = match std::env::current_exe() {
            Ok(p) => (p, None),
            Err(e) => (PathBuf::from("bizra"), Some(e.to_string())),
        };
        // The nodes get SIGTERM if the spawning thread dies, so a killed
        // bench leaves no node behind.
        let mut sup = Supervisor::new(exe, homes).die_with_parent();
        if let Some(l) = log_level {
            sup = sup.env("BIZRA_LOG_LEVEL", l);
        }
        Nodes {
            base_port,
            sup,
            exe_error,
        }
    }

    pub fn len(&self) -> usize {
        self.sup.len()
    }

    pub fn grpc_url(&self, k: usize) -> String {
        Ports::at(self.base_port, k).grpc_url("127.0.0.1")
    }

    pub fn metrics_port(&self, k: usize) -> u16 {
        Ports::at(self.base_port, k).metrics
    }

    /// Starts node `k` (`bizra run --home`), logging to `nodeK/node.log`.
    pub fn start(&mut self, k: usize) -> Result<(), BenchError> {
        if let Some(e) = &self.exe_error {
            return Err(usage(format!("cannot find the bizra binary: {e}")));
        }
        let pid = self.sup.start(k).map_err(start_failure)?;
        println!(
            "  node{k}: pid {pid} grpc {} metrics http://127.0.0.1:{}/metrics log {}",
            self.grpc_url(k),
            self.metrics_port(k),
            self.sup.log_path(k).display()
        );
        Ok(())
    }

    pub fn start_all(&mut self) -> Result<(), BenchError> {
        for k in 0..self.len() {
            self.start(k)?;
        }
        Ok(())
    }

    pub fn pids(&self) -> Vec<Option<u32>> {
        self.sup.pids()
    }

    /// Exit 1 (with the log tail) if a started node has exited.
    pub fn check_alive(&mut self) -> Result<(), BenchError> {
        if let Some((k, st)) = self.sup.first_exited() {
            let tail = self.sup.log_tail(k, 8);
            return Err(failed(format!("node{k} exited unexpectedly ({st}); log tail:\n{tail}")));
        }
        Ok(())
    }

    /// Peak resident set (VmHWM, KiB) of each running node.
    pub fn peak_rss_kib(&self) -> Vec<Option<u64>> {
        self.sup.peak_rss_kib()
    }

    /// SIGTERM every child, wait up to 10 s, then SIGKILL what is left.
    pub fn stop_all(&mut self) {
        self.sup.stop_all(STOP_GRACE);
    }
}

/// A node that cannot be started: an unusable log file is bad input (exit
/// 2), a failed spawn or a node already running a measurement failure
/// (exit 1); the same mapping as `bizra devnet`'s.
fn start_failure(e: StartError) -> BenchError {
    match e {
        StartError::Log(_) => usage(e),
        StartError::Spawn { .. } | StartError::Running { .. } => failed(e),
    }
}

/// A client of the node at `url`: one attempt (500 ms to connect, 5 s per call).
pub async fn connect(url: &str) -> Option<NodeClient<Channel>> {
    bizra_client::connect_once(url, Timeouts::new(Duration::from_millis(500), Duration::from_secs(5)))
        .await
        .ok()
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
) -> Result<(), BenchError> {
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
            return Err(failed(format!(
                "nodes not ready within {} s (need height >= {min_height} and peers): {}",
                limit.as_secs(),
                seen.join(" ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One scrape of every node's metrics.
pub async fn scrape_all(nodes: &Nodes) -> Result<Vec<Scrape>, BenchError> {
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
        let text = text.ok_or_else(|| failed(format!("node{k}: cannot scrape metrics on port {port} (3 tries)")))?;
        out.push(Scrape::parse(&text));
    }
    Ok(out)
}
