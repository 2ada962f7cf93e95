//! `bizra devnet`: the README's main command.
//!
//! Makes a fresh testnet in a temporary (or given) directory, starts one
//! `bizra run` process per validator on loopback, shows a live table of every
//! node's finalized head, round, peers and weight share, and stops after
//! `--blocks B` (or on Ctrl-C / SIGTERM). It exits 0 only if every node agrees on every
//! height it finalized; it always stops the processes it started (through
//! the `bizra-testnet` supervisor, by PID).

use super::testnet::InitArgs;
use super::{check, usage, CliResult, Failure};
use bizra_client::{Channel, ConnectError, NodeClient, Timeouts};
use bizra_proto::{get_block_request::Selector, GetBlockRequest, GetStatusRequest, GetValidatorsRequest};
use bizra_testnet::supervisor::{StartError, STOP_GRACE};
use bizra_testnet::{Ports, Supervisor};
use clap::Args;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `bizra devnet`.
#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub validators: u32,
    /// Stop after this many finalized blocks (default: run until Ctrl-C).
    #[arg(long)]
    pub blocks: Option<u64>,
    /// Testnet directory, created fresh (default: a new temporary directory).
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// First port (peers P+K, gRPC P+100+K, metrics P+200+K).
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// Pause between blocks, in ms.
    #[arg(long, default_value_t = 200)]
    pub block_interval_ms: u64,
    /// Blocks per epoch (weights are recomputed at each boundary).
    #[arg(long, default_value_t = 100)]
    pub epoch_length: u64,
    /// Give up (exit 1) if no node finalizes a new block for this many seconds.
    #[arg(long, default_value_t = 60)]
    pub stall_timeout: u64,
}

#[derive(Default, Clone)]
struct Row {
    height: u64,
    hash: Vec<u8>,
    round: u32,
    peers: u32,
    share_bps: u32,
    /// First epoch this validator is free again, while it is jailed.
    jailed_until: Option<u64>,
    catching_up: bool,
    up: bool,
}

/// What devnet knows of one node (its process is the supervisor's).
struct Node {
    grpc: String,
    client: Option<NodeClient<Channel>>,
    row: Row,
    /// Hashes this node finalized, checked up to this height.
    checked: u64,
}

/// A node that could not be started: a log file that cannot be opened is
/// bad usage (exit 2), a process that cannot be spawned a failed check (exit 1).
pub(crate) fn start_failure(e: StartError) -> Failure {
    match e {
        StartError::Log(_) => usage(e),
        StartError::Spawn { .. } | StartError::Running { .. } => check(e),
    }
}

/// Runs `bizra devnet`: starts the local testnet, shows the live table, and stops every node it started.
pub fn run(a: DevnetArgs) -> CliResult {
    let temporary = a.home.is_none();
    let home = match &a.home {
        Some(h) => h.clone(),
        None => std::env::temp_dir().join(format!(
            "bizra-devnet-{}-{}",
            std::process::id(),
            bizra_node::engine::now_ms()
        )),
    };
    let init = InitArgs {
        validators: a.validators,
        out: home.clone(),
        chain_id: "bizra-devnet".into(),
        base_port: a.base_port,
        host_template: "127.0.0.1".into(),
        epoch_length: a.epoch_length,
        block_interval_ms: a.block_interval_ms,
    };
    let homes = super::testnet::init(&init)?;
    let exe = std::env::current_exe().map_err(|e| usage(format!("cannot find the bizra binary: {e}")))?;
    println!("devnet: {} validators in {}", homes.len(), home.display());
    // Backstop for SIGKILL of devnet: the nodes get SIGTERM when the
    // spawning thread dies. Dropping the supervisor stops them by PID.
    let mut sup = Supervisor::new(exe, homes).fresh_logs().die_with_parent();
    let mut nodes = Vec::new();
    for k in 0..sup.len() {
        let pid = match sup.start(k) {
            Ok(pid) => pid,
            Err(e) => {
                sup.stop_all(STOP_GRACE);
                return Err(start_failure(e));
            }
        };
        let ports = Ports::at(a.base_port, k);
        let grpc = ports.grpc_url("127.0.0.1");
        println!(
            "  node{k}: pid {pid} grpc {grpc} metrics http://127.0.0.1:{}/metrics log {}",
            ports.metrics,
            sup.log_path(k).display()
        );
        nodes.push(Node {
            grpc,
            client: None,
            row: Row::default(),
            checked: 0,
        });
    }
    let rt = super::runtime();
    let result = rt.block_on(watch(&mut sup, &mut nodes, &a));
    sup.stop_all(STOP_GRACE);
    // A temporary testnet is removed after a clean run; on failure its logs stay.
    if temporary && result.is_ok() {
        let _ = std::fs::remove_dir_all(&home);
    } else if result.is_err() {
        eprintln!("devnet: logs kept in {}", home.display());
    }
    result
}

async fn watch(sup: &mut Supervisor, nodes: &mut [Node], a: &DevnetArgs) -> CliResult {
    let tty = std::io::stdout().is_terminal();
    let mut canonical: BTreeMap<u64, (Vec<u8>, usize)> = BTreeMap::new();
    let mut disagreement: Option<String> = None;
    let mut last_progress = Instant::now();
    let mut best = 0u64;
    let mut last_print = Instant::now() - Duration::from_secs(10);
    // Ctrl-C or SIGTERM: stop the children and report (kill <devnet pid> must
    // not leave validators running).
    let stop = bizra_node::engine::wait_for_signal();
    tokio::pin!(stop);
    loop {
        for (k, n) in nodes.iter_mut().enumerate() {
            if let Some(status) = sup.exited(k) {
                return Err(check(format!(
                    "node{k} exited unexpectedly ({status}); see its node.log"
                )));
            }
            poll(n).await;
            // Record every newly finalized height's hash and compare.
            while n.checked < n.row.height {
                let h = n.checked + 1;
                let Some(hash) = block_hash_at(n, h).await else { break };
                match canonical.get(&h) {
                    Some((c, j)) if *c != hash => {
                        disagreement.get_or_insert(format!(
                            "height {h}: node{k} finalized {} but node{j} finalized {}",
                            hex::encode(&hash[..4]),
                            hex::encode(&c[..4])
                        ));
                    }
                    Some(_) => {}
                    None => {
                        canonical.insert(h, (hash, k));
                    }
                }
                n.checked = h;
            }
        }
        let min = nodes.iter().map(|n| n.checked).min().unwrap_or(0);
        let max = nodes.iter().map(|n| n.row.height).max().unwrap_or(0);
        if max > best {
            best = max;
            last_progress = Instant::now();
        }
        if tty || last_print.elapsed() >= Duration::from_secs(2) {
            print_table(nodes, tty);
            last_print = Instant::now();
        }
        if let Some(d) = &disagreement {
            return Err(check(format!("DISAGREEMENT: {d}")));
        }
        if let Some(b) = a.blocks {
            if min >= b {
                print_table(nodes, false);
                println!(
                    "devnet: all {} nodes finalized {b} blocks in agreement (B{b} = {})",
                    nodes.len(),
                    hex::encode(&canonical[&b].0[..4])
                );
                return Ok(());
            }
        }
        if last_progress.elapsed() > Duration::from_secs(a.stall_timeout) {
            print_table(nodes, false);
            return Err(check(format!("no new finalized block for {} s", a.stall_timeout)));
        }
        tokio::select! {
            _ = &mut stop => {
                print_table(nodes, false);
                println!("devnet: interrupted; {} heights checked on every node, all in agreement", min);
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

async fn poll(n: &mut Node) {
    if n.client.is_none() {
        let timeouts = Timeouts::new(Duration::from_millis(300), Duration::from_secs(2));
        match bizra_client::connect_once(&n.grpc, timeouts).await {
            Ok(c) => n.client = Some(c),
            Err(ConnectError::BadUrl { .. }) => return,
            Err(ConnectError::Unreachable { .. }) => {
                n.row.up = false;
                return;
            }
        }
    }
    let c = n.client.as_mut().expect("connected");
    match c.get_status(GetStatusRequest {}).await {
        Ok(s) => {
            let s = s.into_inner();
            n.row.up = true;
            n.row.height = s.finalized_height;
            n.row.hash = s.finalized_hash;
            n.row.round = s.consensus_round;
            n.row.peers = s.peers;
            n.row.catching_up = s.catching_up;
        }
        Err(_) => {
            n.row.up = false;
            n.client = None;
            return;
        }
    }
    if let Ok(v) = c.get_validators(GetValidatorsRequest { epoch: None }).await {
        let v = v.into_inner();
        let me = c
            .get_status(GetStatusRequest {})
            .await
            .ok()
            .map(|s| s.into_inner().validator);
        if let Some(info) = v.validators.iter().find(|x| Some(&x.id) == me.as_ref()) {
            n.row.share_bps = info.weight_share_bps;
            n.row.jailed_until = info.jailed.then_some(info.jailed_until_epoch);
        }
    }
}

async fn block_hash_at(n: &mut Node, h: u64) -> Option<Vec<u8>> {
    let c = n.client.as_mut()?;
    let r = c
        .get_block(GetBlockRequest {
            selector: Some(Selector::Height(h)),
        })
        .await
        .ok()?;
    Some(r.into_inner().block_hash)
}

fn print_table(nodes: &[Node], tty: bool) {
    let mut out = String::new();
    if tty {
        out.push_str("\x1b[2J\x1b[H");
    }
    out.push_str(&format!(
        "{:<7} {:>8} {:<9} {:<10} {:>5} {:>5} {:>7}  {}\n",
        "node", "height", "label", "head", "round", "peers", "weight", "state"
    ));
    for (k, n) in nodes.iter().enumerate() {
        let r = &n.row;
        let state = if !r.up {
            "starting/down".to_string()
        } else if let Some(until) = r.jailed_until {
            format!("jailed until epoch {until}")
        } else if r.catching_up {
            "catching up".to_string()
        } else {
            "ok".to_string()
        };
        out.push_str(&format!(
            "node{:<3} {:>8} {:<9} {:<10} {:>5} {:>5} {:>6.2}%  {}\n",
            k,
            r.height,
            format!("B{}", r.height),
            if r.hash.len() >= 4 {
                hex::encode(&r.hash[..4])
            } else {
                "-".into()
            },
            r.round,
            r.peers,
            r.share_bps as f64 / 100.0,
            state
        ));
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
}
