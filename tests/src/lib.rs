//! Harness for end-to-end tests: builds (or finds) the `bizra` binary, lays
//! out a testnet with `bizra testnet init`, runs one process per validator on
//! loopback (through `bizra-testnet`'s supervisor) and talks to them over
//! gRPC (`bizra-client`). Every process started here is killed by its PID
//! when the [`Testnet`] is dropped.

#![warn(missing_docs)]

pub mod attack;

use bizra_client::{Channel, NodeClient, Timeouts};
use bizra_proto::{get_block_request::Selector, GetBlockRequest, GetStatusRequest, GetStatusResponse};
use bizra_testnet::supervisor::Signal;
use bizra_testnet::{Ports, Supervisor};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `bizra` binary: `$BIZRA_BIN`, or built once with cargo.
pub fn bizra_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("BIZRA_BIN") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace")
            .to_path_buf();
        let st = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "-q", "-p", "bizra-cli", "--bin", "bizra"])
            .status()
            .expect("run cargo build");
        assert!(st.success(), "cargo build of bizra failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("bizra")
    })
    .clone()
}

/// `$TMPDIR/bizra-e2e-NAME-PID`, emptied (removed if present, not created).
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bizra-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// One node of a [`Testnet`]: its home and gRPC URL (its process is the
/// supervisor's).
pub struct NodeProc {
    /// The node's home directory (`DIR/nodeK`).
    pub home: PathBuf,
    /// The node's gRPC URL on 127.0.0.1.
    pub grpc: String,
}

/// A testnet laid out by `bizra testnet init`, one `bizra run` process per
/// node; dropping it kills them (and removes `dir` unless panicking).
pub struct Testnet {
    /// The testnet directory (genesis and one `nodeK` home per node).
    pub dir: PathBuf,
    /// Base port `P` of the layout (node K: p2p `P+K`, gRPC `P+100+K`).
    pub base_port: u16,
    /// Every node, by index.
    pub nodes: Vec<NodeProc>,
    /// The `bizra run` processes, through `bizra-testnet`'s supervisor.
    procs: Supervisor,
}

/// How long [`Testnet::stop`] waits for a clean exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

impl Testnet {
    /// `bizra testnet init` with N validators; nothing started yet.
    pub fn init(name: &str, n: usize, base_port: u16, extra: &[&str]) -> Testnet {
        let dir = temp_dir(name);
        let out = Command::new(bizra_bin())
            .args([
                "testnet",
                "init",
                "--validators",
                &n.to_string(),
                "--base-port",
                &base_port.to_string(),
                "--out",
            ])
            .arg(&dir)
            .args(extra)
            .output()
            .expect("run bizra testnet init");
        assert!(
            out.status.success(),
            "testnet init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let nodes: Vec<NodeProc> = (0..n)
            .map(|k| NodeProc {
                home: dir.join(format!("node{k}")),
                grpc: Ports::at(base_port, k).grpc_url("127.0.0.1"),
            })
            .collect();
        let homes = nodes.iter().map(|n| n.home.clone()).collect();
        let procs = Supervisor::new(bizra_bin(), homes).env("BIZRA_LOG_LEVEL", "info");
        Testnet {
            dir,
            base_port,
            nodes,
            procs,
        }
    }

    /// Starts node k's `bizra run`; panics if it is already running.
    pub fn start(&mut self, k: usize) {
        assert!(self.procs.pid(k).is_none(), "node{k} already running");
        self.procs.start(k).expect("spawn bizra run");
    }

    /// Starts every node.
    pub fn start_all(&mut self) {
        for k in 0..self.nodes.len() {
            self.start(k);
        }
    }

    /// Node k's PID while it is started (None after a stop or kill).
    pub fn pid(&self, k: usize) -> Option<u32> {
        self.procs.pid(k)
    }

    /// Whether node k's process is still running.
    pub fn alive(&mut self, k: usize) -> bool {
        self.procs.alive(k)
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill9(&mut self, k: usize) {
        self.procs.kill(k);
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub fn stop(&mut self, k: usize) -> Option<i32> {
        self.procs.stop(k, STOP_GRACE)
    }

    /// SIGSTOP node k (it stays alive but does nothing).
    pub fn pause(&self, k: usize) {
        self.procs.signal(k, Signal::Stop);
    }
    /// SIGCONT node k after a [`Testnet::pause`].
    pub fn resume(&self, k: usize) {
        self.procs.signal(k, Signal::Cont);
    }

    /// Node k's whole `node.log` ("" when there is none).
    pub fn log(&self, k: usize) -> String {
        self.procs.log(k)
    }

    /// Node k's `GetStatus` answer, or None if it cannot be reached within the timeouts.
    pub async fn status(&self, k: usize) -> Option<GetStatusResponse> {
        let mut c = connect(&self.nodes[k].grpc).await?;
        tokio::time::timeout(Duration::from_secs(2), c.get_status(GetStatusRequest {}))
            .await
            .ok()?
            .ok()
            .map(|r| r.into_inner())
    }

    /// Node k's finalized height (0 when it cannot be reached).
    pub async fn height(&self, k: usize) -> u64 {
        self.status(k).await.map(|s| s.finalized_height).unwrap_or(0)
    }

    /// Hash of the block node k holds at height `h`, or None on any error.
    pub async fn block_hash(&self, k: usize, h: u64) -> Option<Vec<u8>> {
        let mut c = connect(&self.nodes[k].grpc).await?;
        let r = c
            .get_block(GetBlockRequest {
                selector: Some(Selector::Height(h)),
            })
            .await
            .ok()?;
        Some(r.into_inner().block_hash)
    }

    /// Waits until every listed node has finalized `h`; panics with the logs on timeout.
    pub async fn wait_height(&self, nodes: &[usize], h: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let mut all = true;
            for &k in nodes {
                if self.height(k).await < h {
                    all = false;
                }
            }
            if all {
                return;
            }
            if Instant::now() > deadline {
                let mut heights = Vec::new();
                for &k in nodes {
                    heights.push(self.height(k).await);
                }
                let tail: String = nodes
                    .iter()
                    .map(|&k| {
                        let l = self.log(k);
                        let start = l.len().saturating_sub(3000);
                        format!("--- node{k} log tail ---\n{}\n", &l[start..])
                    })
                    .collect();
                panic!("timeout waiting for height {h}: heights {heights:?}\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Asserts every listed node has the same hash at every height 1..=h.
    pub async fn assert_agreement(&self, nodes: &[usize], h: u64) {
        for height in 1..=h {
            let mut first: Option<Vec<u8>> = None;
            for &k in nodes {
                let got = self
                    .block_hash(k, height)
                    .await
                    .unwrap_or_else(|| panic!("node{k} lacks block {height}"));
                match &first {
                    None => first = Some(got),
                    Some(f) => assert_eq!(f, &got, "node{k} disagrees at height {height}"),
                }
            }
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        self.procs.kill_all();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A client of the node at `url`: one attempt (500 ms to connect, 3 s per call).
pub async fn connect(url: &str) -> Option<NodeClient<Channel>> {
    bizra_client::connect_once(url, Timeouts::new(Duration::from_millis(500), Duration::from_secs(3)))
        .await
        .ok()
}
