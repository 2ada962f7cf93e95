//! `bizra devnet`: the README's main command.
//!
//! Makes a fresh testnet in a temporary (or given) directory, starts one
//! `bizra run` process per validator on loopback, shows a live table of every
//! node's finalized head, round, peers and weight share, and stops after
//! `--blocks B` (or on Ctrl-C / SIGTERM). It exits 0 only if every node agrees on every
//! height it finalized; it always stops the processes it started.

use super::testnet::InitArgs;
use super::{check, usage, CliResult};
use bizra_proto::node_client::NodeClient;
use bizra_proto::{get_block_request::Selector, GetBlockRequest, GetStatusRequest, GetValidatorsRequest};
use clap::Args;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

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

struct Node {
    child: Child,
    grpc: String,
    client: Option<NodeClient<Channel>>,
    row: Row,
    /// Hashes this node finalized, checked up to this height.
    checked: u64,
}

pub fn run(a: DevnetArgs) -> CliResult {
    let temporary = a.home.is_none();
    let home = match &a.home {
        Some(h) => h.clone(),
        None => std::env::temp_dir().join(format!(
            "bizra-devnet-{}-{}",
            std::process::id(),
            crate::engine::now_ms()
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
    let mut nodes = Vec::new();
    for (k, h) in homes.iter().enumerate() {
        let log = std::fs::File::create(h.join("node.log")).map_err(|e| usage(format!("node log: {e}")))?;
        let mut cmd = Command::new(&exe);
        cmd.args(["run", "--home"])
            .arg(h)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| usage(e.to_string()))?)
            .stderr(log);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl(2) is async-signal-safe. Backstop for SIGKILL of
            // devnet: the child gets SIGTERM when its parent thread dies.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let child = cmd.spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut nodes);
                return Err(check(format!("cannot start node{k}: {e}")));
            }
        };
        let grpc = format!("http://127.0.0.1:{}", a.base_port as u32 + 100 + k as u32);
        println!(
            "  node{k}: pid {} grpc {grpc} metrics http://127.0.0.1:{}/metrics log {}",
            child.id(),
            a.base_port as u32 + 200 + k as u32,
            h.join("node.log").display()
        );
        nodes.push(Node {
            child,
            grpc,
            client: None,
            row: Row::default(),
            checked: 0,
        });
    }
    let rt = super::runtime();
    let result = rt.block_on(watch(&mut nodes, &a));
    stop_all(&mut nodes);
    // A temporary testnet is removed after a clean run; on failure its logs stay.
    if temporary && result.is_ok() {
        let _ = std::fs::remove_dir_all(&home);
    } else if result.is_err() {
        eprintln!("devnet: logs kept in {}", home.display());
    }
    result
}

/// SIGTERM every child, wait up to 10 s, then SIGKILL what is left.
fn stop_all(nodes: &mut [Node]) {
    for n in nodes.iter() {
        // SAFETY: kill(2) on a pid we spawned and have not reaped.
        unsafe {
            libc::kill(n.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in nodes.iter_mut() {
        loop {
            match n.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Ok(None) => {
                    let _ = n.child.kill();
                    let _ = n.child.wait();
                    break;
                }
            }
        }
    }
}

async fn watch(nodes: &mut [Node], a: &DevnetArgs) -> CliResult {
    let tty = std::io::stdout().is_terminal();
    let mut canonical: BTreeMap<u64, (Vec<u8>, usize)> = BTreeMap::new();
    let mut disagreement: Option<String> = None;
    let mut last_progress = Instant::now();
    let mut best = 0u64;
    let mut last_print = Instant::now() - Duration::from_secs(10);
    // Ctrl-C or SIGTERM: stop the children and report (kill <devnet pid> must
    // not leave validators running).
    let stop = crate::engine::wait_for_signal();
    tokio::pin!(stop);
    loop {
        for (k, n) in nodes.iter_mut().enumerate() {
            if let Ok(Some(status)) = n.child.try_wait() {
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
        let Ok(ep) = Channel::from_shared(n.grpc.clone()) else {
            return;
        };
        let ep = ep
            .connect_timeout(Duration::from_millis(300))
            .timeout(Duration::from_secs(2));
        match ep.connect().await {
            Ok(ch) => n.client = Some(NodeClient::new(ch)),
            Err(_) => {
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
