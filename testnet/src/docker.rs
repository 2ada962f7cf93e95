//! Docker assets for `bizra testnet compose`: `docker-compose.yml`,
//! `Dockerfile`, `.dockerignore` and `build-image.sh`.
//!
//! No registry is involved anywhere: the image is `FROM scratch` plus a
//! statically linked `bizra` binary, built locally by `build-image.sh` and
//! referenced by every service as `image:` (with a `build:` fallback on the
//! same context), so `docker compose up` never pulls.
//!
//! Sizing for alpha-100 (100 validators on 2 cores and 24 GiB):
//! * `mem_limit: 128m` per node: 100 x 128 MiB = 12.5 GiB, about half of the
//!   host, leaving room for the kernel, page cache and dockerd. A validator
//!   of a 100-node testnet holds a small sled database, gossip caches and
//!   vote sets: tens of MiB.
//! * `cpus: 0.5` per node: a cap, not a reservation. 100 nodes share 2 cores,
//!   so a node's fair share when all are busy is 0.02 core, which CFS
//!   enforces by itself; the cap only stops one node from taking a whole
//!   core. It must leave room for bursts: a round's votes arrive together,
//!   and with the first cap (0.1) a node's ~10 ms of work per burst was
//!   stretched over 100 ms throttle periods, queues grew past gossipsub's
//!   forward deadline and votes were lost (alpha-100, docs/TESTNET.md).
//! * Consensus timeouts grow with the validator count ([`Timeouts::for_compose`]),
//!   because with CPU caps a height needs seconds, not milliseconds.

use crate::{Ipv4Net, Plan};
use std::fmt::Write as _;

/// The Dockerfile (see `testnet/docker/Dockerfile`).
pub const DOCKERFILE: &str = include_str!("../docker/Dockerfile");
/// `.dockerignore`: only the binary and the Dockerfile enter the context.
pub const DOCKERIGNORE: &str = include_str!("../docker/dockerignore");
const BUILD_IMAGE_SH: &str = include_str!("../docker/build-image.sh");

/// Default image of the node services.
pub const DEFAULT_IMAGE: &str = "bizra-node:local";
/// Default per-node memory limit (compose `mem_limit`).
pub const DEFAULT_MEM_LIMIT: &str = "128m";
/// Default per-node CPU cap (compose `cpus`).
pub const DEFAULT_CPUS: &str = "0.5";
/// Validators whose gRPC port is published on the host's 127.0.0.1.
pub const DEFAULT_PUBLISH_GRPC: usize = 3;
/// Where each node directory is mounted in its container.
pub const CONTAINER_HOME: &str = "/home/bizra";
/// The compose network's name.
pub const NETWORK: &str = "bizra";

/// Everything about the compose file that is not in the [`Plan`].
#[derive(Clone, Debug)]
pub struct ComposeOptions {
    /// Docker image every node service runs.
    pub image: String,
    /// Subnet of the compose network; node K gets base + [`crate::IP_OFFSET`] + K.
    pub subnet: Ipv4Net,
    /// How many validators (node0, node1, ...) get their gRPC port published
    /// on the host's 127.0.0.1 (same port number as in the container).
    pub publish_grpc: usize,
    /// Per-node memory limit: digits then `k`, `m` or `g` (e.g. `128m`).
    pub mem_limit: String,
    /// Per-node CPU cap, a decimal number of CPUs in (0, 1024] (e.g. `0.5`).
    pub cpus: String,
    /// `user:` of the containers (uid, gid): the owner of the generated
    /// files, so the node can read its 0600 key and write its data dir.
    pub user: Option<(u32, u32)>,
}

impl ComposeOptions {
    /// The defaults (image, limits, published gRPC ports) for `subnet`, with no `user:`.
    pub fn new(subnet: Ipv4Net) -> Self {
        ComposeOptions {
            image: DEFAULT_IMAGE.into(),
            subnet,
            publish_grpc: DEFAULT_PUBLISH_GRPC,
            mem_limit: DEFAULT_MEM_LIMIT.into(),
            cpus: DEFAULT_CPUS.into(),
            user: None,
        }
    }

    /// Checks the free-form options.
    pub fn check(&self) -> anyhow::Result<()> {
        let img_ok = !self.image.is_empty()
            && self
                .image
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._-/:@".contains(&c));
        if !img_ok {
            anyhow::bail!("image name {:?} is invalid", self.image);
        }
        let mem_ok = self.mem_limit.len() > 1
            && self.mem_limit[..self.mem_limit.len() - 1]
                .bytes()
                .all(|c| c.is_ascii_digit())
            && matches!(self.mem_limit.as_bytes()[self.mem_limit.len() - 1], b'm' | b'g' | b'k');
        if !mem_ok {
            anyhow::bail!("memory limit {:?} is invalid: use e.g. 128m or 1g", self.mem_limit);
        }
        match self.cpus.parse::<f64>() {
            Ok(c) if c > 0.0 && c <= 1024.0 => {}
            _ => anyhow::bail!("cpu limit {:?} is invalid: use e.g. 0.1", self.cpus),
        }
        Ok(())
    }
}

/// Consensus timeouts of a node config, in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Propose timeout of round 0, in ms.
    pub propose_ms: u64,
    /// Prevote timeout of round 0, in ms.
    pub prevote_ms: u64,
    /// Precommit timeout of round 0, in ms.
    pub precommit_ms: u64,
    /// Added to each timeout per round, in ms.
    pub delta_ms: u64,
}

impl Timeouts {
    /// Timeouts for `n` CPU-capped containers sharing a small host: the
    /// node defaults (1000/500/500, +250 per round) plus a share per
    /// validator, since vote traffic and signature checks grow with `n`.
    /// For 100 validators: 4000/2000/2000, +750 per round.
    pub fn for_compose(n: usize) -> Timeouts {
        let n = n as u64;
        Timeouts {
            propose_ms: 1000 + 30 * n,
            prevote_ms: 500 + 15 * n,
            precommit_ms: 500 + 15 * n,
            delta_ms: 250 + 5 * n,
        }
    }
}

/// The contents of `build-image.sh`. `source_dir` is the bizra workspace
/// the script builds from (overridable with `BIZRA_SRC`); `nodes` sizes its
/// check of the host's neighbour table.
pub fn build_image_sh(image: &str, source_dir: &str, nodes: usize) -> String {
    BUILD_IMAGE_SH
        .replace("@IMAGE@", image)
        .replace("@SOURCE_DIR@", &sh_quote(source_dir))
        .replace("@NEIGHBOURS@", &neighbour_entries(nodes).to_string())
        .replace("@NODES@", &nodes.to_string())
}

/// Neighbour (ARP) entries the host needs when `nodes` containers on one
/// host each talk to all the others: Linux keeps one table for all network
/// namespaces, and its default hard limit (`gc_thresh3`, 1024) is passed at
/// about 33 validators. Beyond it containers lose each other ("neighbor
/// table overflow" in the kernel log).
pub fn neighbour_entries(nodes: usize) -> usize {
    nodes.saturating_mul(nodes.saturating_sub(1)).saturating_add(256)
}

/// A single-quoted shell word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("string serializes")
}

/// The gRPC URL at which node `k` is reachable from the docker host:
/// the published loopback port, or the container's fixed address.
pub fn host_grpc_url(plan: &Plan, opts: &ComposeOptions, k: usize) -> String {
    let n = &plan.nodes[k];
    if k < opts.publish_grpc {
        format!("http://127.0.0.1:{}", n.ports.grpc)
    } else {
        n.grpc_url()
    }
}

/// `docker-compose.yml` for `plan` (which must use fixed IPs in
/// `opts.subnet`). Valid for `docker compose` (v2) and `docker-compose`
/// 1.27+ (Compose Specification; no `version:` key).
pub fn compose_yaml(plan: &Plan, opts: &ComposeOptions) -> String {
    let n = plan.nodes.len();
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# bizra testnet: {n} validators, chain {chain}, genesis {hash}.
# Generated by `bizra testnet compose`. Build the image first (no registry is
# used: FROM scratch + a static binary), then start:
#   ./build-image.sh && docker compose up -d      (or: docker-compose up -d)
#
# Networking: one private bridge network, {subnet}; node K has the fixed
# address base+{off}+K and hostname nodeK. Peers are listed by those fixed
# IPv4 addresses, not names: the binary is statically linked, and a static
# binary cannot use NSS to resolve names, so no DNS is involved at all.
# Every node listens on 0.0.0.0 inside its container with the docs/PROTOCOL.md §2 port
# layout (peers P+K, gRPC P+100+K, metrics P+200+K). The gRPC ports of the
# first {publish} validator(s) are published on the host's 127.0.0.1 only.
#
# Limits, sized so that 100 validators fit on 2 cores and 24 GiB:
#   mem_limit {mem}: 100 x 128 MiB = 12.5 GiB, about half the host, leaving the
#     rest to the kernel, page cache and dockerd; a validator of a 100-node
#     testnet needs tens of MiB (small sled database, gossip caches, vote sets).
#   cpus {cpus}: a cap, not a reservation. With all 100 nodes busy each gets
#     2/100 = 0.02 core, shared fairly by CFS; the cap only keeps one node
#     from taking a whole core, and leaves room to absorb a round's burst of
#     votes quickly (a 0.1 cap stretched each burst over throttle periods and
#     votes missed their rounds). Consensus timeouts in each config.toml are
#     raised with the validator count to match.
# Health: `/bizra head --grpc http://127.0.0.1:<grpc port>` inside the
# container (there is no shell or grpc client in a scratch image); it exits 0
# when the node answers over gRPC.
# Logs: JSON on stdout (BIZRA_LOG_FORMAT=json), rotated by docker.
",
        chain = plan.genesis.chain_id(),
        hash = plan.genesis_hash_hex(),
        subnet = opts.subnet,
        off = crate::IP_OFFSET,
        publish = opts.publish_grpc.min(n),
        mem = opts.mem_limit,
        cpus = opts.cpus,
    );
    y.push_str("services:\n");
    for (k, node) in plan.nodes.iter().enumerate() {
        let _ = writeln!(y, "  {}:", node.name);
        let _ = writeln!(y, "    image: {}", q(&opts.image));
        y.push_str("    build:\n      context: .\n      dockerfile: Dockerfile\n");
        let _ = writeln!(y, "    hostname: {}", node.name);
        let _ = writeln!(y, "    command: [\"run\", \"--home\", {}]", q(CONTAINER_HOME));
        if let Some((uid, gid)) = opts.user {
            let _ = writeln!(y, "    user: {}", q(&format!("{uid}:{gid}")));
        }
        let _ = writeln!(
            y,
            "    volumes:\n      - {}",
            q(&format!("./{}:{CONTAINER_HOME}", node.name))
        );
        y.push_str("    environment:\n      BIZRA_LOG_FORMAT: \"json\"\n");
        let _ = writeln!(
            y,
            "    networks:\n      {NETWORK}:\n        ipv4_address: {}",
            node.host
        );
        if k < opts.publish_grpc {
            let g = node.ports.grpc;
            let _ = writeln!(y, "    ports:\n      - {}", q(&format!("127.0.0.1:{g}:{g}")));
        }
        let _ = writeln!(
            y,
            "    healthcheck:\n      test: [\"CMD\", \"/bizra\", \"head\", \"--grpc\", {}]\n      interval: 30s\n      timeout: 10s\n      retries: 5\n      start_period: 120s",
            q(&format!("http://127.0.0.1:{}", node.ports.grpc))
        );
        let _ = writeln!(
            y,
            "    mem_limit: {}\n    memswap_limit: {}",
            opts.mem_limit, opts.mem_limit
        );
        let _ = writeln!(y, "    cpus: {}", opts.cpus);
        y.push_str(
            "    pids_limit: 1024
    read_only: true
    cap_drop: [\"ALL\"]
    security_opt: [\"no-new-privileges:true\"]
    restart: unless-stopped
    stop_signal: SIGTERM
    stop_grace_period: 30s
    logging:
      driver: json-file
      options:
        max-size: \"10m\"
        max-file: \"3\"
",
        );
    }
    let _ = writeln!(
        y,
        "networks:\n  {NETWORK}:\n    driver: bridge\n    ipam:\n      config:\n        - subnet: {}",
        q(&opts.subnet.to_string())
    );
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{plan, Addressing, Spec};
    use bizra_consensus::signing::Signer;

    fn compose_plan(n: usize) -> (Plan, ComposeOptions) {
        let net = Ipv4Net::parse(crate::DEFAULT_SUBNET).unwrap();
        let spec = Spec {
            validators: n,
            chain_id: "alpha".into(),
            base_port: 7400,
            addressing: Addressing::FixedIps(net),
            epoch_length: 100,
            genesis_time_ms: 1,
            stake: 1,
        };
        let ids: Vec<String> = (0..n)
            .map(|i| Signer::from_secret([i as u8 + 1; 32]).id().to_string())
            .collect();
        let mut o = ComposeOptions::new(net);
        o.user = Some((1000, 1000));
        (plan(&spec, &ids).unwrap(), o)
    }

    #[test]
    fn compose_has_one_service_per_validator_with_fixed_ips() {
        let (p, o) = compose_plan(100);
        let y = compose_yaml(&p, &o);
        assert_eq!(y.matches("    hostname: node").count(), 100);
        assert!(y.contains("  node99:\n"));
        assert!(y.contains("ipv4_address: 172.28.0.109"));
        assert!(y.contains("- \"./node7:/home/bizra\""));
        assert!(y.contains("\"http://127.0.0.1:7599\"]"));
        assert!(y.contains("user: \"1000:1000\""));
        // Exactly the first three gRPC ports are published, on loopback.
        assert_eq!(y.matches("    ports:").count(), 3);
        assert!(y.contains("- \"127.0.0.1:7502:7502\""));
        assert!(!y.contains("7503:7503"));
        assert!(y.contains("subnet: \"172.28.0.0/16\""));
        assert!(!y.contains("\t"));
        assert_eq!(host_grpc_url(&p, &o, 1), "http://127.0.0.1:7501");
        assert_eq!(host_grpc_url(&p, &o, 50), "http://172.28.0.60:7550");
    }

    #[test]
    fn assets_and_options() {
        assert!(DOCKERFILE.contains("FROM scratch"));
        assert!(DOCKERIGNORE.contains("!bizra"));
        let sh = build_image_sh("img:1", "/src/it's", 100);
        assert!(sh.contains("IMAGE=${IMAGE:-img:1}"));
        assert!(sh.contains("need=10156"), "100 x 99 + 256");
        assert_eq!(neighbour_entries(4), 268);
        assert!(sh.contains(r"SRC=${BIZRA_SRC:-'/src/it'\''s'}"));
        assert!(!sh.contains('@'));
        let mut o = ComposeOptions::new(Ipv4Net::parse("10.0.0.0/24").unwrap());
        assert!(o.check().is_ok());
        o.mem_limit = "lots".into();
        assert!(o.check().is_err());
        o.mem_limit = "256m".into();
        o.cpus = "0".into();
        assert!(o.check().is_err());
        o.cpus = "0.05".into();
        o.image = "a b".into();
        assert!(o.check().is_err());
        assert_eq!(
            Timeouts::for_compose(100),
            Timeouts {
                propose_ms: 4000,
                prevote_ms: 2000,
                precommit_ms: 2000,
                delta_ms: 750
            }
        );
    }
}
