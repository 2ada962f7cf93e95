//! # bizra-testnet
//!
//! Testnet layouts for `bizra testnet init|compose|stack` (and `bizra devnet`,
//! `bizra bench`): the genesis document, each node's ports, addresses and
//! peer list, and the docker assets (compose file, Dockerfile, image build
//! script).
//!
//! [`plan`] only computes. The layout writer, [`write`](mod@write),
//! generates the keys, asks [`plan`] for the layout, turns each [`NodePlan`]
//! into a `NodeConfig` (`bizra-node`) and writes it all; the `bizra testnet`
//! command (bizra-cli) only parses the arguments, prints the summary and maps
//! errors to exit codes.
//!
//! ## Ports (docs/PROTOCOL.md §2)
//! With base port `P`, node `K` listens for peers on `P+K`, serves gRPC on
//! `P+100+K` and metrics on `P+200+K` ([`Ports::of`]). Every port must fit in
//! a `u16` ([`check_ports`]). The rule lives in one place, `ports.rs`.
//!
//! ## Local processes ([`Supervisor`])
//! `bizra devnet`, `bizra bench` and the end-to-end tests run one
//! `bizra run --home nodeK` process per validator through the one
//! supervisor: log files, PIDs, liveness, stop by PID (SIGTERM, then
//! SIGKILL), restart, peak RSS from /proc. Its `sys` module is the only
//! `unsafe` code of the crate.
//!
//! ## Peer graph ([`peer_graph`])
//! Up to [`FULL_MESH_MAX`] validators (128), every node peers with every
//! other one, which puts the nodes in direct mode: each consensus message
//! goes from its author to every validator in one hop (ADR 0012). Above that
//! each node gets a bounded,
//! deterministic peer list: the circulant graph on the ring `0..N` with four
//! offsets, each taken in both directions, so 8 peers per node (node K peers
//! with K +- o mod N). The first offset is 1, so the graph is a ring plus
//! chords, hence connected; the other three are chosen greedily to minimise
//! the diameter ([`ring_offsets`]; N = 100: offsets 1, 18, 11, 42, at most 4
//! hops between any two validators; the offsets are still computed for
//! N = 100 in a test). The graph is symmetric: if A lists B
//! then B lists A, so either side redials a lost link.
//!
//! ## Addressing ([`Addressing`])
//! * `Template`: node K's host is the template with `{k}` replaced by K.
//!   Loopback hosts (the default `127.0.0.1`) are also the listen address;
//!   any other host listens on `0.0.0.0`.
//! * `FixedIps`: docker compose. Every container gets a fixed IPv4 address on
//!   a private bridge network (node K = subnet base + 10 + K) and peers are
//!   given by those addresses: a plain compose testnet on one host needs no
//!   DNS at all.
//! * Docker Swarm stacks ([`swarm`]) use `Template("node{k}")`: peers are
//!   service names, resolved by the node in Rust (a static binary has no
//!   NSS) and again after every failed dial, since a rescheduled task comes
//!   back on another IP.

#![deny(unsafe_code)] // allowed in one module: supervisor/sys.rs
#![warn(missing_docs)]

pub mod docker;
mod ports;
pub mod supervisor;
pub mod swarm;
pub mod write;

pub use ports::{check_ports, check_ports_free, Ports, GRPC_OFFSET, METRICS_OFFSET};
pub use supervisor::Supervisor;

use anyhow::{bail, Context};
use bizra_consensus::genesis::{Genesis, GenesisDoc, GenesisParams, GenesisValidator};
use serde::Serialize;
use std::net::Ipv4Addr;

/// Largest validator count that gets a full mesh. A full mesh puts every
/// node in direct mode (ADR 0012): consensus messages go one hop, unrelayed.
pub const FULL_MESH_MAX: usize = 128;
/// Stake of every generated validator.
pub const DEFAULT_STAKE: u64 = 1_000_000;
/// Default base port (docs/PROTOCOL.md §2).
pub const DEFAULT_BASE_PORT: u16 = 7400;
/// Default host template: everything on loopback.
pub const DEFAULT_HOST_TEMPLATE: &str = "127.0.0.1";
/// Default docker subnet for compose testnets.
pub const DEFAULT_SUBNET: &str = "172.28.0.0/16";
/// Node K gets the subnet's base address + `IP_OFFSET` + K (the first ones
/// are left to docker: network address, gateway).
pub const IP_OFFSET: u32 = 10;

/// An IPv4 network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The network address (host bits are zero).
    pub addr: Ipv4Addr,
    /// Prefix length, 8 to 28.
    pub prefix: u8,
}

impl Ipv4Net {
    /// Parses `A.B.C.D/PREFIX`; refuses a prefix outside 8..=28 or an address with host bits set.
    pub fn parse(s: &str) -> anyhow::Result<Ipv4Net> {
        let (a, p) = s
            .split_once('/')
            .with_context(|| format!("subnet {s:?}: expected A.B.C.D/PREFIX"))?;
        let addr: Ipv4Addr = a.parse().with_context(|| format!("subnet {s:?}: bad address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| (8..=28).contains(p))
            .with_context(|| format!("subnet {s:?}: prefix must be between 8 and 28"))?;
        let net = Ipv4Net { addr, prefix };
        if u32::from(addr) & !net.mask() != 0 {
            bail!(
                "subnet {s:?}: host bits are set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(u32::from(addr) & net.mask())
            );
        }
        Ok(net)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    /// Node `k`'s address, or an error if the subnet is too small.
    pub fn host(&self, k: usize) -> anyhow::Result<Ipv4Addr> {
        let size = 1u64 << (32 - self.prefix);
        let off = IP_OFFSET as u64 + k as u64;
        // The last address is the broadcast address.
        if off >= size - 1 {
            bail!("subnet {self} is too small for node{k} (node K gets base + {IP_OFFSET} + K)");
        }
        Ok(Ipv4Addr::from(u32::from(self.addr) + off as u32))
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// How nodes address each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// Host of node K = the template with `{k}` replaced by K.
    Template(String),
    /// Fixed IPv4 addresses in a docker subnet; listen on 0.0.0.0.
    FixedIps(Ipv4Net),
}

/// Renders a host template for node `k`. Only `{k}` is a placeholder; the
/// result must be an IPv4 address or a host name.
pub fn render_host(template: &str, k: usize) -> anyhow::Result<String> {
    let host = template.replace("{k}", &k.to_string());
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_');
    if !ok {
        bail!(
            "host template {template:?} gives {host:?} for node{k}: use a host name or IPv4 address, with {{k}} for the node index"
        );
    }
    Ok(host)
}

/// The address node's sockets bind to, for a node reachable at `host`:
/// the loopback address itself, or `0.0.0.0` for anything else.
pub fn listen_host(host: &str) -> String {
    if host.eq_ignore_ascii_case("localhost") {
        return "127.0.0.1".into();
    }
    match host.parse::<Ipv4Addr>() {
        Ok(ip) if ip.is_loopback() => host.into(),
        _ => "0.0.0.0".into(),
    }
}

/// The undirected peer graph: `peer_graph(n)[k]` lists node k's peers,
/// sorted. Full mesh up to [`FULL_MESH_MAX`] nodes; above, the circulant
/// graph described in the crate docs (8 peers per node).
pub fn peer_graph(n: usize) -> Vec<Vec<usize>> {
    if n <= FULL_MESH_MAX {
        return (0..n).map(|k| (0..n).filter(|&j| j != k).collect()).collect();
    }
    let offsets = ring_offsets(n);
    (0..n)
        .map(|k| {
            let mut v: Vec<usize> = offsets.iter().flat_map(|&o| [(k + o) % n, (k + n - o) % n]).collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect()
}

/// Four distinct offsets in `1..n/2` for the circulant peer graph: 1
/// (the ring, for connectivity), then greedily, three times, the offset
/// that minimises the graph's diameter and then its total hop distance (ties:
/// the smaller offset). An offset of exactly n/2 is skipped (both directions
/// would be one peer). For n = 100: 1, 18, 11, 42 (diameter 4).
pub fn ring_offsets(n: usize) -> Vec<usize> {
    assert!(n > 16, "ring offsets are for more than 16 nodes");
    let mut out = vec![1];
    let mut cand = out.clone();
    for _ in 0..3 {
        let mut best: Option<((usize, usize), usize)> = None;
        for o in 2..n.div_ceil(2) {
            if out.contains(&o) || 2 * o == n {
                continue;
            }
            cand.clear();
            cand.extend_from_slice(&out);
            cand.push(o);
            let score = circulant_distances(n, &cand);
            if best.is_none_or(|(b, _)| score < b) {
                best = Some((score, o));
            }
        }
        out.push(best.expect("n > 16 leaves room for four offsets").1);
    }
    out
}

/// (eccentricity, sum of distances) of node 0 in the circulant graph; the
/// graph is vertex-transitive, so this is its diameter and total distance.
fn circulant_distances(n: usize, offsets: &[usize]) -> (usize, usize) {
    let mut d = vec![usize::MAX; n];
    let mut queue = std::collections::VecDeque::from([0]);
    d[0] = 0;
    while let Some(u) = queue.pop_front() {
        for &o in offsets {
            for v in [(u + o) % n, (u + n - o) % n] {
                if d[v] == usize::MAX {
                    d[v] = d[u] + 1;
                    queue.push_back(v);
                }
            }
        }
    }
    (d.iter().copied().max().unwrap_or(0), d.iter().sum())
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Number of validators (nodes).
    pub validators: usize,
    /// The genesis chain id.
    pub chain_id: String,
    /// Base port `P` of the port rule (see [`Ports::of`]).
    pub base_port: u16,
    /// How each node's host address is chosen.
    pub addressing: Addressing,
    /// Epoch length in blocks, written to the genesis parameters.
    pub epoch_length: u64,
    /// Genesis time, in ms since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Stake of every validator in the genesis (all equal).
    pub stake: u64,
}

/// One node of the layout.
#[derive(Clone, Debug, Serialize)]
pub struct NodePlan {
    /// Node index K (0-based).
    pub index: usize,
    /// `node{K}`: moniker, genesis name, directory name, compose service name.
    pub name: String,
    /// Validator id (lower-case hex public key).
    pub id: String,
    /// The host other nodes dial.
    pub host: String,
    /// The host this node's sockets bind to.
    pub listen_host: String,
    /// Its p2p, gRPC and metrics ports (see [`Ports::of`]).
    pub ports: Ports,
    /// `p2p.peers`: `<validator-id>@<host>:<port>`.
    pub peers: Vec<String>,
}

impl NodePlan {
    /// `listen_host:p2p`, the p2p listen address.
    pub fn p2p_listen(&self) -> String {
        format!("{}:{}", self.listen_host, self.ports.p2p)
    }
    /// `listen_host:grpc`, the gRPC listen address.
    pub fn grpc_listen(&self) -> String {
        format!("{}:{}", self.listen_host, self.ports.grpc)
    }
    /// `listen_host:metrics`, the metrics listen address.
    pub fn metrics_listen(&self) -> String {
        format!("{}:{}", self.listen_host, self.ports.metrics)
    }
    /// gRPC URL at the node's own host address.
    pub fn grpc_url(&self) -> String {
        self.ports.grpc_url(&self.host)
    }
}

/// A complete layout.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The genesis document shared by every node.
    pub genesis: Genesis,
    /// The exact genesis bytes: `DIR/genesis.json` and every `nodeK/genesis.json`.
    pub genesis_bytes: Vec<u8>,
    /// Every node of the layout, in index order.
    pub nodes: Vec<NodePlan>,
}

impl Plan {
    /// Lower-case hex of the genesis hash.
    pub fn genesis_hash_hex(&self) -> String {
        hex::encode(self.genesis.hash)
    }
}

/// Checks everything about a spec that does not need the keys.
pub fn check_spec(spec: &Spec) -> anyhow::Result<()> {
    let shared_host = match &spec.addressing {
        Addressing::Template(t) => !t.contains("{k}"),
        Addressing::FixedIps(_) => false,
    };
    check_ports(spec.base_port, spec.validators, shared_host)?;
    for k in 0..spec.validators {
        match &spec.addressing {
            Addressing::Template(t) => {
                render_host(t, k)?;
            }
            Addressing::FixedIps(net) => {
                net.host(k)?;
            }
        }
    }
    // Chain id, epoch length: validated with a dummy validator set.
    let dummy = bizra_consensus::signing::Signer::from_secret([1; 32]);
    let doc = genesis_doc(spec, &[dummy.id().to_string()]);
    Genesis::from_doc(&doc).map_err(|e| anyhow::anyhow!("genesis: {e}"))?;
    Ok(())
}

/// The genesis document for `ids` (validator K is named `node{K}`).
pub fn genesis_doc(spec: &Spec, ids: &[String]) -> GenesisDoc {
    GenesisDoc {
        chain_id: spec.chain_id.clone(),
        genesis_time_ms: spec.genesis_time_ms,
        params: GenesisParams {
            epoch_length: spec.epoch_length,
            ..GenesisParams::default()
        },
        validators: ids
            .iter()
            .enumerate()
            .map(|(k, id)| GenesisValidator {
                id: id.clone(),
                stake: spec.stake,
                name: format!("node{k}"),
            })
            .collect(),
    }
}

/// The full layout for validators `ids` (one per node, in order).
pub fn plan(spec: &Spec, ids: &[String]) -> anyhow::Result<Plan> {
    check_spec(spec)?;
    if ids.len() != spec.validators {
        bail!("{} keys for {} validators", ids.len(), spec.validators);
    }
    let (genesis, genesis_bytes) =
        Genesis::from_doc(&genesis_doc(spec, ids)).map_err(|e| anyhow::anyhow!("genesis: {e}"))?;
    let n = spec.validators;
    let mut hosts = Vec::with_capacity(n);
    let mut listen = Vec::with_capacity(n);
    for k in 0..n {
        let (h, l) = match &spec.addressing {
            Addressing::Template(t) => {
                let h = render_host(t, k)?;
                let l = listen_host(&h);
                (h, l)
            }
            Addressing::FixedIps(net) => (net.host(k)?.to_string(), "0.0.0.0".to_string()),
        };
        hosts.push(h);
        listen.push(l);
    }
    let graph = peer_graph(n);
    let mut nodes = Vec::with_capacity(n);
    for k in 0..n {
        let peers = graph[k]
            .iter()
            .map(|&j| Ok(format!("{}@{}:{}", ids[j], hosts[j], Ports::of(spec.base_port, j)?.p2p)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        nodes.push(NodePlan {
            index: k,
            name: format!("node{k}"),
            id: ids[k].clone(),
            host: hosts[k].clone(),
            listen_host: listen[k].clone(),
            ports: Ports::of(spec.base_port, k)?,
            peers,
        });
    }
    Ok(Plan {
        genesis,
        genesis_bytes,
        nodes,
    })
}

/// `DIR/testnet.json`: a summary of the layout for scripts (endpoints, ids).
/// `grpc_endpoints[k]` is the URL at which node K's gRPC is reachable from
/// where the operator runs tools.
pub fn manifest_json(plan: &Plan, grpc_endpoints: &[String]) -> String {
    #[derive(Serialize)]
    struct Node<'a> {
        name: &'a str,
        id: &'a str,
        home: &'a str,
        host: &'a str,
        p2p_port: u16,
        grpc_port: u16,
        metrics_port: u16,
        grpc: &'a str,
        peers: usize,
    }
    #[derive(Serialize)]
    struct Manifest<'a> {
        chain_id: &'a str,
        genesis_hash: String,
        validators: usize,
        nodes: Vec<Node<'a>>,
    }
    let m = Manifest {
        chain_id: plan.genesis.chain_id(),
        genesis_hash: plan.genesis_hash_hex(),
        validators: plan.nodes.len(),
        nodes: plan
            .nodes
            .iter()
            .zip(grpc_endpoints)
            .map(|(n, g)| Node {
                name: &n.name,
                id: &n.id,
                home: &n.name,
                host: &n.host,
                p2p_port: n.ports.p2p,
                grpc_port: n.ports.grpc,
                metrics_port: n.ports.metrics,
                grpc: g,
                peers: n.peers.len(),
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&m).expect("manifest serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use bizra_consensus::signing::Signer;
    use std::collections::VecDeque;

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let mut s = [0u8; 32];
                s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                Signer::from_secret(s).id().to_string()
            })
            .collect()
    }

    fn spec(n: usize) -> Spec {
        Spec {
            validators: n,
            chain_id: "bizra-test".into(),
            base_port: DEFAULT_BASE_PORT,
            addressing: Addressing::Template(DEFAULT_HOST_TEMPLATE.into()),
            epoch_length: 50,
            genesis_time_ms: 1_700_000_000_000,
            stake: DEFAULT_STAKE,
        }
    }

    /// Hop distances from `src`, `usize::MAX` when unreachable.
    fn bfs(g: &[Vec<usize>], src: usize) -> Vec<usize> {
        let mut d = vec![usize::MAX; g.len()];
        d[src] = 0;
        let mut q = VecDeque::from([src]);
        while let Some(u) = q.pop_front() {
            for &v in &g[u] {
                if d[v] == usize::MAX {
                    d[v] = d[u] + 1;
                    q.push_back(v);
                }
            }
        }
        d
    }

    #[test]
    fn ports_follow_the_contract_layout() {
        assert_eq!(
            Ports::of(7400, 0).unwrap(),
            Ports {
                p2p: 7400,
                grpc: 7500,
                metrics: 7600
            }
        );
        assert_eq!(
            Ports::of(7400, 99).unwrap(),
            Ports {
                p2p: 7499,
                grpc: 7599,
                metrics: 7699
            }
        );
        assert!(Ports::of(65335, 0).is_ok());
        assert!(Ports::of(65336, 0).unwrap_err().to_string().contains("65536"));
        assert!(check_ports(65335, 1, true).is_ok());
        assert!(check_ports(65335, 2, true).is_err());
        assert!(check_ports(7400, 0, true).is_err());
        assert!(check_ports(0, 4, true).is_err());
        assert!(check_ports(7400, 100, true).is_ok());
        assert!(check_ports(7400, 101, true)
            .unwrap_err()
            .to_string()
            .contains("at most 100"));
        assert!(check_ports(7400, 1000, false).is_ok());
        assert!(check_ports(7400, 101, false).is_ok());
    }

    #[test]
    fn layout_of_four_loopback_nodes() {
        let ids = ids(4);
        let p = plan(&spec(4), &ids).unwrap();
        assert_eq!(p.nodes.len(), 4);
        assert_eq!(Genesis::from_bytes(&p.genesis_bytes).unwrap().hash, p.genesis.hash);
        assert_eq!(p.genesis.doc.params.epoch_length, 50);
        for (k, n) in p.nodes.iter().enumerate() {
            assert_eq!(n.name, format!("node{k}"));
            assert_eq!(p.genesis.doc.validators[k].name, n.name);
            assert_eq!(p.genesis.doc.validators[k].id, ids[k]);
            assert_eq!(p.genesis.doc.validators[k].stake, DEFAULT_STAKE);
            assert_eq!(n.p2p_listen(), format!("127.0.0.1:{}", 7400 + k));
            assert_eq!(n.grpc_listen(), format!("127.0.0.1:{}", 7500 + k));
            assert_eq!(n.metrics_listen(), format!("127.0.0.1:{}", 7600 + k));
            assert_eq!(n.peers.len(), 3);
            for j in (0..4).filter(|&j| j != k) {
                assert!(n.peers.contains(&format!("{}@127.0.0.1:{}", ids[j], 7400 + j)));
            }
        }
    }

    #[test]
    fn host_templates_and_listen_addresses() {
        let mut s = spec(3);
        s.addressing = Addressing::Template("node{k}".into());
        let p = plan(&s, &ids(3)).unwrap();
        assert_eq!(p.nodes[2].host, "node2");
        assert_eq!(p.nodes[2].grpc_listen(), "0.0.0.0:7502");
        assert!(p.nodes[0].peers[0].ends_with("@node1:7401"));
        assert_eq!(listen_host("localhost"), "127.0.0.1");
        assert_eq!(listen_host("127.0.0.2"), "127.0.0.2");
        assert_eq!(listen_host("10.0.0.7"), "0.0.0.0");
        assert_eq!(render_host("10.0.{k}.1", 7).unwrap(), "10.0.7.1");
        for bad in ["", "node {k}", "a@b", "h:1", "x{j}", "[::1]"] {
            assert!(render_host(bad, 0).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fixed_ips_for_docker() {
        let net = Ipv4Net::parse(DEFAULT_SUBNET).unwrap();
        assert_eq!(net.host(0).unwrap(), Ipv4Addr::new(172, 28, 0, 10));
        assert_eq!(net.host(99).unwrap(), Ipv4Addr::new(172, 28, 0, 109));
        assert_eq!(net.host(300).unwrap(), Ipv4Addr::new(172, 28, 1, 54));
        let small = Ipv4Net::parse("10.1.2.0/28").unwrap();
        assert!(small.host(4).is_ok());
        assert!(small.host(5).is_err());
        assert!(Ipv4Net::parse("172.28.0.1/16")
            .unwrap_err()
            .to_string()
            .contains("host bits"));
        assert!(Ipv4Net::parse("172.28.0.0").is_err());
        assert!(Ipv4Net::parse("172.28.0.0/4").is_err());
        let mut s = spec(100);
        s.addressing = Addressing::FixedIps(net);
        let p = plan(&s, &ids(100)).unwrap();
        assert_eq!(p.nodes[5].host, "172.28.0.15");
        assert_eq!(p.nodes[5].p2p_listen(), "0.0.0.0:7405");
        assert!(p.nodes.iter().all(|n| n.peers.iter().all(|x| x.contains("@172.28.0."))));
        s.addressing = Addressing::FixedIps(Ipv4Net::parse("10.9.9.0/26").unwrap());
        assert!(plan(&s, &ids(100)).err().unwrap().to_string().contains("too small"));
    }

    #[test]
    fn peer_graph_is_symmetric_bounded_and_connected() {
        for n in (1..=120).chain([128, 255, 256, 500, 999, 1000]) {
            let g = peer_graph(n);
            assert_eq!(g.len(), n);
            for (k, peers) in g.iter().enumerate() {
                assert!(!peers.contains(&k), "n={n}: node{k} peers with itself");
                assert!(peers.len() <= (n - 1).min(8).max(n.min(FULL_MESH_MAX + 1) - 1), "n={n}");
                if n > FULL_MESH_MAX {
                    assert!(
                        (7..=8).contains(&peers.len()),
                        "n={n}: node{k} has {} peers",
                        peers.len()
                    );
                }
                for &j in peers {
                    assert!(g[j].contains(&k), "n={n}: {k}->{j} not symmetric");
                }
            }
            assert!(bfs(&g, 0).iter().all(|&d| d != usize::MAX), "n={n}: not connected");
        }
    }

    #[test]
    fn alpha_100_is_a_full_mesh_and_larger_networks_a_small_diameter_graph() {
        // alpha-100: every validator lists every other one (direct mode).
        let g = peer_graph(100);
        assert!(g.iter().all(|p| p.len() == 99));
        let p = plan(&spec(100), &ids(100)).unwrap();
        assert!(p.nodes.iter().all(|n| n.peers.len() == 99));
        // Above FULL_MESH_MAX: 8 peers, at most 4 hops apart.
        assert_eq!(ring_offsets(100), vec![1, 18, 11, 42]);
        let g = peer_graph(200);
        assert!(g.iter().all(|p| p.len() == 8));
        let diameter = (0..200).map(|s| *bfs(&g, s).iter().max().unwrap()).max().unwrap();
        assert!(diameter <= 5, "diameter {diameter}");
        assert_eq!(g, peer_graph(200));
    }

    #[test]
    fn refusals() {
        assert!(plan(&spec(0), &[]).unwrap_err().to_string().contains("at least 1"));
        let mut s = spec(4);
        s.chain_id = "bad chain".into();
        let e = plan(&s, &ids(4)).unwrap_err().to_string();
        assert!(e.contains("chain_id") && e.contains("invalid"), "{e}");
        let mut s = spec(4);
        s.epoch_length = 0;
        assert!(plan(&s, &ids(4)).unwrap_err().to_string().contains("epoch_length"));
        let mut s = spec(4);
        s.base_port = 65400;
        assert!(plan(&s, &ids(4)).is_err());
        assert!(plan(&spec(4), &ids(3)).is_err());
        assert!(plan(&spec(101), &ids(101))
            .unwrap_err()
            .to_string()
            .contains("at most 100"));
        let mut s = spec(101);
        s.addressing = Addressing::Template("node{k}".into());
        assert!(plan(&s, &ids(101)).is_ok());
        s.addressing = Addressing::Template("node {k}".into());
        assert!(plan(&s, &ids(101)).unwrap_err().to_string().contains("host template"));
        let mut d = ids(4);
        d[3] = d[0].clone();
        assert!(plan(&spec(4), &d).unwrap_err().to_string().contains("more than once"));
    }

    #[test]
    fn manifest_lists_every_node() {
        let p = plan(&spec(2), &ids(2)).unwrap();
        let urls: Vec<String> = p.nodes.iter().map(|n| n.grpc_url()).collect();
        let v: serde_json::Value = serde_json::from_str(&manifest_json(&p, &urls)).unwrap();
        assert_eq!(v["validators"], 2);
        assert_eq!(v["nodes"][1]["grpc"], "http://127.0.0.1:7501");
        assert_eq!(v["genesis_hash"].as_str().unwrap().len(), 64);
    }
}
