//! Helpers of the attack suite (`tests/tests/attacks.rs`): rogue libp2p
//! peers, a validator's key, the Prometheus endpoint, finality rate,
//! memory of the node processes and the restart check.

use crate::Testnet;
use bizra_p2p::{P2pConfig, P2pEvent, P2pHandle, PeerId, Topic};
use bizra_testnet::Ports;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Memory floor for the memory check: a node whose baseline RSS is below
/// this is compared against it instead (a small debug node's RSS moves by
/// tens of MiB with allocator arenas alone, so 2x a tiny baseline is noise).
pub const RSS_FLOOR_KIB: u64 = 40 * 1024;

/// A validator key file: `(secret, id)`.
pub fn load_key(home: &Path) -> ([u8; 32], String) {
    let text = std::fs::read_to_string(home.join("validator.key")).expect("validator.key");
    let v: serde_json::Value = serde_json::from_str(&text).expect("key json");
    let secret: [u8; 32] = hex::decode(v["secret"].as_str().expect("secret"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    (secret, v["id"].as_str().expect("id").to_string())
}

/// The libp2p peer id of a validator id (hex Ed25519 public key).
pub fn peer_of(id: &str) -> PeerId {
    let pk: [u8; 32] = hex::decode(id).expect("hex id").try_into().expect("32 bytes");
    bizra_p2p::peer_id_from_ed25519_public(pk)
}

/// A small deterministic PRNG for junk (no dependency, reproducible).
pub struct Junk(u64);

impl Junk {
    /// A generator seeded with `seed` (forced odd, so never zero).
    pub fn new(seed: u64) -> Self {
        Junk(seed | 1)
    }
    /// The next xorshift64 output.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// `n` pseudo-random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
    /// 32 pseudo-random bytes, e.g. for a throwaway Ed25519 secret key.
    pub fn secret(&mut self) -> [u8; 32] {
        self.bytes(32).try_into().expect("32")
    }
}

impl Testnet {
    /// The peer id of node k.
    pub fn peer_id(&self, k: usize) -> PeerId {
        peer_of(&load_key(&self.nodes[k].home).1)
    }

    /// `/ip4/127.0.0.1/tcp/P+k/p2p/<node k>`.
    pub fn p2p_addr(&self, k: usize) -> bizra_p2p::Multiaddr {
        format!(
            "/ip4/127.0.0.1/tcp/{}/p2p/{}",
            Ports::at(self.base_port, k).p2p,
            self.peer_id(k)
        )
        .parse()
        .expect("multiaddr")
    }

    /// The OpenMetrics text of node k (`GET 127.0.0.1:P+200+k/metrics`).
    pub async fn metrics(&self, k: usize) -> String {
        let port = Ports::at(self.base_port, k).metrics;
        bizra_client::scrape(port).await.unwrap_or_default()
    }

    /// Sum of the samples of `name` (e.g. `bizra_votes_total`) whose labels
    /// contain every one of `labels` (e.g. `result="late_round"`).
    pub async fn metric(&self, k: usize, name: &str, labels: &[&str]) -> f64 {
        metric_sum(&self.metrics(k).await, name, labels)
    }

    /// Sum of [`Testnet::metric`] over nodes.
    pub async fn metric_all(&self, nodes: &[usize], name: &str, labels: &[&str]) -> f64 {
        let mut s = 0.0;
        for &k in nodes {
            s += self.metric(k, name, labels).await;
        }
        s
    }

    /// The lowest finalized height among `nodes`.
    pub async fn min_height(&self, nodes: &[usize]) -> u64 {
        let mut m = u64::MAX;
        for &k in nodes {
            m = m.min(self.height(k).await);
        }
        m
    }

    /// The highest finalized height among `nodes`.
    pub async fn max_height(&self, nodes: &[usize]) -> u64 {
        let mut m = 0;
        for &k in nodes {
            m = m.max(self.height(k).await);
        }
        m
    }

    /// Blocks per second finalized by the slowest of `nodes` over `window`.
    pub async fn finality_rate(&self, nodes: &[usize], window: Duration) -> f64 {
        let t0 = Instant::now();
        let h0 = self.min_height(nodes).await;
        tokio::time::sleep_until((t0 + window).into()).await;
        let h1 = self.min_height(nodes).await;
        h1.saturating_sub(h0) as f64 / t0.elapsed().as_secs_f64()
    }

    /// VmRSS of each node, KiB.
    pub fn rss(&self, nodes: &[usize]) -> Vec<u64> {
        nodes
            .iter()
            .map(|&k| self.pid(k).and_then(|p| proc_kib(p, "VmRSS")).unwrap_or(0))
            .collect()
    }

    /// VmHWM (peak RSS) of each node, KiB.
    pub fn hwm(&self, nodes: &[usize]) -> Vec<u64> {
        nodes
            .iter()
            .map(|&k| self.pid(k).and_then(|p| proc_kib(p, "VmHWM")).unwrap_or(0))
            .collect()
    }

    /// Stops node k (SIGTERM), starts it again and checks it reaches the
    /// height the others have then, and is still running a few seconds later
    /// (no crash loop).
    pub async fn assert_restart(&mut self, k: usize, others: &[usize]) {
        let code = self.stop(k);
        println!("restart: node{k} stopped (exit code {code:?})");
        let t0 = Instant::now();
        self.start(k);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut all: Vec<usize> = others.to_vec();
        all.push(k);
        let target = self.max_height(others).await + 2;
        self.wait_height(&all, target, Duration::from_secs(90)).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            self.alive(k),
            "node{k} exited after its restart:\n{}",
            tail(&self.log(k))
        );
        let h = self.height(k).await;
        assert!(h >= target, "node{k} at {h} after restart, want >= {target}");
        println!(
            "restart: node{k} back at height {h} (others {target}+) after {:.1}s, still running",
            t0.elapsed().as_secs_f64()
        );
    }
}

/// The last few KiB of a log.
pub fn tail(log: &str) -> &str {
    let mut start = log.len().saturating_sub(4000);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}

/// A `/proc/PID/status` field in KiB.
pub fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    bizra_testnet::supervisor::status_kib(pid, field)
}

/// Sum of the samples of metric `name` whose label set contains all `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (lab, value) = if let Some(r) = rest.strip_prefix('{') {
            let Some(end) = r.find('}') else { continue };
            (&r[..end], r[end + 1..].trim())
        } else if rest.starts_with(' ') {
            ("", rest.trim())
        } else {
            continue;
        };
        if labels.iter().all(|l| lab.contains(l)) {
            sum += value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    sum
}

/// Asserts every node's peak RSS stays below twice its baseline RSS (or
/// twice [`RSS_FLOOR_KIB`] when the baseline is below it).
pub fn assert_memory(label: &str, nodes: &[usize], base: &[u64], hwm: &[u64]) {
    for (i, &k) in nodes.iter().enumerate() {
        let b = base[i];
        let h = hwm[i];
        println!(
            "{label}: node{k} RSS baseline {} MiB, HWM after {} MiB ({:.2}x)",
            b / 1024,
            h / 1024,
            h as f64 / b.max(1) as f64
        );
        let cap = 2 * b.max(RSS_FLOOR_KIB);
        assert!(
            h < cap,
            "{label}: node{k} VmHWM {h} KiB >= 2 x max(baseline {b} KiB, floor)"
        );
    }
}

/// Asserts the attack rate is at least half the baseline.
pub fn assert_rate(label: &str, baseline: f64, attack: f64) {
    println!("{label}: finality rate baseline {baseline:.2} blocks/s, under attack {attack:.2} blocks/s");
    assert!(baseline > 0.0, "{label}: no blocks in the baseline window");
    assert!(
        attack >= 0.5 * baseline,
        "{label}: rate under attack {attack:.2} < 0.5 x baseline {baseline:.2}"
    );
}

/// A libp2p peer on the chain, listening on `listen_port` (0: any) and
/// dialling `peers`; waits until every peer is connected and subscribed to
/// the votes topic (or 20 s pass).
pub async fn rogue(
    secret: [u8; 32],
    chain_id: &str,
    listen_port: u16,
    peers: Vec<bizra_p2p::Multiaddr>,
    max_message_bytes: usize,
) -> (P2pHandle, mpsc::Receiver<P2pEvent>) {
    let mut cfg = P2pConfig::new(
        bizra_p2p::keypair_from_ed25519_secret(secret),
        format!("127.0.0.1:{listen_port}").parse().expect("addr"),
        chain_id.to_string(),
    );
    let want: Vec<PeerId> = peers
        .iter()
        .filter_map(|a| {
            a.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                _ => None,
            })
        })
        .collect();
    cfg.peers = peers;
    cfg.validator_count = 4;
    cfg.max_message_bytes = max_message_bytes;
    let (h, ev) = bizra_p2p::start(cfg).await.expect("rogue p2p");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let subs = h.topic_peers(Topic::Votes).await.unwrap_or_default();
        if want.iter().all(|p| subs.contains(p)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (h, ev)
}

/// CPU time (user + system) of a process, in seconds (0 when unknown).
pub fn cpu_secs(pid: u32) -> f64 {
    bizra_testnet::supervisor::cpu_secs(pid).unwrap_or(0.0)
}

impl Testnet {
    /// Total CPU seconds used so far by the running nodes among `nodes`.
    pub fn cpu(&self, nodes: &[usize]) -> f64 {
        nodes.iter().filter_map(|&k| self.pid(k)).map(cpu_secs).sum()
    }
}

/// CPU seconds used so far by this (the attacker's) process.
pub fn own_cpu() -> f64 {
    cpu_secs(std::process::id())
}
