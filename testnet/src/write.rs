//! The layout writer of `bizra testnet init|compose|stack`, `bizra devnet`
//! and `bizra bench`: generates the keys, asks [`plan`](crate::plan) for the
//! layout, turns each node of it into a [`NodeConfig`] and writes everything:
//!
//! ```text
//! DIR/genesis.json            the genesis (validators node0..nodeN-1)
//! DIR/testnet.json            ids and endpoints of every node, for scripts
//! DIR/nodeK/config.toml       NodeConfig of node K
//! DIR/nodeK/validator.key     its Ed25519 key (mode 0600)
//! DIR/nodeK/genesis.json      a byte-identical copy: each node dir is self-contained
//! compose only:
//! DIR/docker-compose.yml, DIR/Dockerfile, DIR/.dockerignore, DIR/build-image.sh
//! stack only (Docker Swarm):
//! DIR/stack.yml, DIR/Dockerfile, DIR/.dockerignore, DIR/build-image.sh
//! ```
//!
//! Every input is checked before anything is written; if writing fails half
//! way, what was written is removed again. Either way a [`WriteError`] means
//! nothing was written (`bizra testnet` exits 2 with its message, which names
//! the command's flags: `--out`, `--subnet`, `--host-template`).

use crate::docker::{self, ComposeOptions, Timeouts};
use crate::swarm::{self, StackOptions};
use crate::{Addressing, Ipv4Net, NodePlan, Plan, Spec};
use bizra_consensus::signing::Signer;
use bizra_node::config::{ConsensusSection, GrpcSection, MetricsSection, NodeConfig, P2pSection};
use std::path::{Path, PathBuf};

/// The inputs of every layout: those of `bizra testnet init`, which
/// `compose` and `stack` extend with a [`Kind`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of validators.
    pub validators: u32,
    /// Output directory (must not exist or be empty).
    pub out: PathBuf,
    /// Chain id written to genesis.
    pub chain_id: String,
    /// Node K listens for peers on P+K, gRPC on P+100+K, metrics on P+200+K.
    pub base_port: u16,
    /// Host of node K; `{k}` is replaced by K. Must be the default
    /// ([`DEFAULT_HOST_TEMPLATE`](crate::DEFAULT_HOST_TEMPLATE)) for compose
    /// and stack.
    pub host_template: String,
    /// Blocks per epoch (weights are recomputed at each boundary).
    pub epoch_length: u64,
    /// Pause between blocks, in ms (consensus.block_interval_ms).
    pub block_interval_ms: u64,
}

/// Which layout to write.
#[derive(Clone, Debug)]
pub enum Kind {
    /// Genesis, manifest and node directories only.
    Init,
    /// As [`Kind::Init`], plus docker compose assets.
    Compose(Compose),
    /// As [`Kind::Init`], plus a Docker Swarm stack.
    Stack(Stack),
}

/// What `bizra testnet compose` adds to [`Options`].
#[derive(Clone, Debug)]
pub struct Compose {
    /// Private docker network for the containers (node K gets base + 10 + K), `A.B.C.D/PREFIX`.
    pub subnet: String,
    /// Publish the gRPC ports of node0..node{N-1} on the host's 127.0.0.1.
    pub publish_grpc: usize,
    /// Image tag built by build-image.sh and used by every service.
    pub image: String,
    /// Memory limit per container (mem_limit).
    pub mem_limit: String,
    /// CPU limit per container (cpus).
    pub cpus: String,
}

/// What `bizra testnet stack` adds to [`Options`].
#[derive(Clone, Debug)]
pub struct Stack {
    /// Publish the gRPC ports of node0..node{N-1} (host mode); `None`: every validator.
    pub publish_grpc: Option<usize>,
    /// Image tag built by build-image.sh and used by every service.
    pub image: String,
    /// Memory limit per task (deploy.resources.limits.memory).
    pub mem_limit: String,
    /// CPU limit per task (deploy.resources.limits.cpus).
    pub cpus: String,
    /// Constrain node K to the Swarm host labelled bizra.node=nodeK.
    pub pin_to_hosts: bool,
}

/// What was written.
#[derive(Clone, Debug)]
pub struct Written {
    /// The layout.
    pub plan: Plan,
    /// Absolute home directory of each node.
    pub homes: Vec<PathBuf>,
    /// gRPC URL of each node as reachable from this host.
    pub grpc: Vec<String>,
}

/// Why nothing was written: a refused input (a bad option, an output
/// directory that is not empty) or a write that failed half way and was
/// undone. Every such error is bad input or an unusable output directory:
/// `bizra testnet` reports it as a usage error (exit 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteError(pub String);

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WriteError {}

fn error(msg: impl std::fmt::Display) -> WriteError {
    WriteError(msg.to_string())
}

/// Writes an init layout; returns each node's home directory.
pub fn init(o: &Options) -> Result<Vec<PathBuf>, WriteError> {
    write_testnet(o, &Kind::Init).map(|w| w.homes)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checks that `out` is absent or an empty directory.
fn check_out_dir(out: &Path) -> Result<(), WriteError> {
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(error(format!("--out {}: {e}", out.display()))),
        Ok(m) if !m.is_dir() => Err(error(format!("--out {} exists and is not a directory", out.display()))),
        Ok(_) => {
            let mut entries = std::fs::read_dir(out).map_err(|e| error(format!("--out {}: {e}", out.display())))?;
            if entries.next().is_some() {
                Err(error(format!(
                    "--out {} exists and is not empty; refusing to overwrite",
                    out.display()
                )))
            } else {
                Ok(())
            }
        }
    }
}

/// Checks everything, then writes the layout of `kind` to `a.out`.
pub fn write_testnet(a: &Options, kind: &Kind) -> Result<Written, WriteError> {
    let compose = match kind {
        Kind::Compose(c) => Some(c),
        _ => None,
    };
    let addressing = match kind {
        Kind::Init => Addressing::Template(a.host_template.clone()),
        Kind::Compose(c) => {
            if a.host_template != crate::DEFAULT_HOST_TEMPLATE {
                return Err(error(
                    "testnet compose: --host-template is not used: containers are nodeK on fixed IPs (see --subnet)",
                ));
            }
            Addressing::FixedIps(Ipv4Net::parse(&c.subnet).map_err(|e| error(format!("--subnet: {e:#}")))?)
        }
        Kind::Stack(_) => {
            if a.host_template != crate::DEFAULT_HOST_TEMPLATE {
                return Err(error(
                    "testnet stack: --host-template is not used: services are named nodeK and peers dial those names",
                ));
            }
            Addressing::Template("node{k}".into())
        }
    };
    let spec = Spec {
        validators: a.validators as usize,
        chain_id: a.chain_id.clone(),
        base_port: a.base_port,
        addressing,
        epoch_length: a.epoch_length,
        genesis_time_ms: now_ms(),
        stake: crate::DEFAULT_STAKE,
    };
    let opts = match (compose, &spec.addressing) {
        (Some(c), Addressing::FixedIps(net)) => {
            let mut o = ComposeOptions::new(*net);
            o.image = c.image.clone();
            o.publish_grpc = c.publish_grpc;
            o.mem_limit = c.mem_limit.clone();
            o.cpus = c.cpus.clone();
            o.check().map_err(|e| error(format!("{e:#}")))?;
            Some(o)
        }
        _ => None,
    };
    let stack = match kind {
        Kind::Stack(st) => {
            let mut o = ComposeOptions::new(Ipv4Net::parse(crate::DEFAULT_SUBNET).expect("default subnet"));
            o.image = st.image.clone();
            o.mem_limit = st.mem_limit.clone();
            o.cpus = st.cpus.clone();
            o.check().map_err(|e| error(format!("{e:#}")))?;
            Some(StackOptions {
                compose: o,
                publish_grpc: st.publish_grpc.unwrap_or(swarm::DEFAULT_PUBLISH_GRPC),
                pin_to_hosts: st.pin_to_hosts,
            })
        }
        _ => None,
    };
    crate::check_spec(&spec).map_err(|e| error(format!("{e:#}")))?;
    check_out_dir(&a.out)?;

    let signers: Vec<Signer> = (0..spec.validators).map(|_| bizra_node::keys::generate()).collect();
    let ids: Vec<String> = signers.iter().map(|s| s.id().to_string()).collect();
    let plan = crate::plan(&spec, &ids).map_err(|e| error(format!("{e:#}")))?;
    let containers = opts.is_some() || stack.is_some();
    let timeouts = containers.then(|| Timeouts::for_compose(spec.validators));
    let configs: Vec<String> = plan
        .nodes
        .iter()
        .map(|n| {
            let mut cfg = node_config(n, a.block_interval_ms, timeouts);
            if stack.is_some() {
                // The key is a Docker secret, mounted by Swarm.
                cfg.key = swarm::KEY_PATH.into();
            }
            cfg.validate()
                .map_err(|e| error(format!("{}: generated config is invalid: {e}", n.name)))?;
            Ok(config_text(n, &cfg, kind, spec.validators))
        })
        .collect::<Result<_, WriteError>>()?;
    let grpc: Vec<String> = match (&opts, &stack) {
        (Some(o), _) => (0..plan.nodes.len())
            .map(|k| docker::host_grpc_url(&plan, o, k))
            .collect(),
        (None, Some(st)) => (0..plan.nodes.len())
            .map(|k| swarm::host_grpc_url(&plan, st, k).unwrap_or_else(|| plan.nodes[k].grpc_url()))
            .collect(),
        (None, None) => plan.nodes.iter().map(NodePlan::grpc_url).collect(),
    };

    let created = Created::start(&a.out)?;
    let result = (|| -> anyhow::Result<()> {
        let dir = &a.out;
        write_file(&dir.join("genesis.json"), &plan.genesis_bytes, 0o644)?;
        write_file(
            &dir.join("testnet.json"),
            crate::manifest_json(&plan, &grpc).as_bytes(),
            0o644,
        )?;
        for ((n, cfg), signer) in plan.nodes.iter().zip(&configs).zip(&signers) {
            let home = dir.join(&n.name);
            std::fs::create_dir(&home).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", home.display()))?;
            write_file(&home.join(bizra_node::config::CONFIG_FILE), cfg.as_bytes(), 0o644)?;
            write_file(&home.join("genesis.json"), &plan.genesis_bytes, 0o644)?;
            bizra_node::keys::write(&home.join("validator.key"), signer)?;
        }
        if let Some(o) = &opts {
            let mut o = o.clone();
            o.user = owner(&dir.join("genesis.json"));
            write_file(
                &dir.join("docker-compose.yml"),
                docker::compose_yaml(&plan, &o).as_bytes(),
                0o644,
            )?;
        }
        if let Some(st) = &stack {
            write_file(&dir.join("stack.yml"), swarm::stack_yaml(&plan, st).as_bytes(), 0o644)?;
        }
        if let Some(image) = opts.as_ref().or(stack.as_ref().map(|s| &s.compose)).map(|o| &o.image) {
            write_file(&dir.join("Dockerfile"), docker::DOCKERFILE.as_bytes(), 0o644)?;
            write_file(&dir.join(".dockerignore"), docker::DOCKERIGNORE.as_bytes(), 0o644)?;
            let src = source_dir();
            write_file(
                &dir.join("build-image.sh"),
                docker::build_image_sh(image, &src, plan.nodes.len()).as_bytes(),
                0o755,
            )?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        created.undo();
        return Err(error(format!("writing {}: {e:#}", a.out.display())));
    }
    let root = std::fs::canonicalize(&a.out).unwrap_or_else(|_| a.out.clone());
    let homes = plan.nodes.iter().map(|n| root.join(&n.name)).collect();
    Ok(Written { plan, homes, grpc })
}

/// The node config of one planned node.
fn node_config(n: &NodePlan, block_interval_ms: u64, timeouts: Option<Timeouts>) -> NodeConfig {
    let d = NodeConfig::default();
    let mut consensus = ConsensusSection {
        block_interval_ms,
        ..d.consensus.clone()
    };
    if let Some(t) = timeouts {
        consensus.propose_timeout_ms = t.propose_ms;
        consensus.prevote_timeout_ms = t.prevote_ms;
        consensus.precommit_timeout_ms = t.precommit_ms;
        consensus.timeout_delta_ms = t.delta_ms;
    }
    NodeConfig {
        moniker: n.name.clone(),
        genesis: "genesis.json".into(),
        key: "validator.key".into(),
        data_dir: "data".into(),
        p2p: P2pSection {
            listen: n.p2p_listen(),
            peers: n.peers.clone(),
            ..d.p2p
        },
        grpc: GrpcSection {
            listen: n.grpc_listen(),
            ..d.grpc
        },
        metrics: MetricsSection {
            enabled: true,
            listen: n.metrics_listen(),
        },
        consensus,
        log: d.log,
        storage: d.storage,
    }
}

fn config_text(n: &NodePlan, cfg: &NodeConfig, kind: &Kind, validators: usize) -> String {
    let (compose, cmd) = match kind {
        Kind::Init => (false, "init"),
        Kind::Compose(_) => (true, "compose"),
        Kind::Stack(_) => (true, "stack"),
    };
    let peers_note = if validators <= crate::FULL_MESH_MAX {
        "every other validator".to_string()
    } else {
        format!("{} validators of a bounded, connected peer graph", n.peers.len())
    };
    let timeouts_note = if compose {
        "# Consensus timeouts are raised for CPU-capped containers (see docker-compose.yml or stack.yml).\n"
    } else {
        ""
    };
    format!(
        "# bizra node config for {name} ({id}), generated by `bizra testnet {cmd}`.\n\
# Paths are relative to this directory. Any key can be overridden by an environment\n\
# variable BIZRA_<SECTION>_<KEY> (e.g. BIZRA_LOG_FORMAT=json). Peers: {peers_note}.\n{timeouts_note}\n{body}",
        name = n.name,
        id = n.id,
        cmd = cmd,
        body = cfg.to_toml()
    )
}

/// The bizra workspace this crate (and so the `bizra` binary) was built
/// from, for build-image.sh.
fn source_dir() -> String {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ws = here.parent().unwrap_or(here);
    std::fs::canonicalize(ws)
        .unwrap_or_else(|_| ws.to_path_buf())
        .display()
        .to_string()
}

/// (uid, gid) owning `path`, a file this process wrote: the compose services
/// run as that user, so they can read the 0600 keys and write the data
/// directories.
fn owner(path: &Path) -> Option<(u32, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// Directories created for the output, so a failed write can be undone.
struct Created {
    out: PathBuf,
    /// `out` and any missing ancestors we created, innermost first.
    dirs: Vec<PathBuf>,
}

impl Created {
    /// Creates `out` (and missing parents) if absent. `out` was checked to
    /// be absent or empty.
    fn start(out: &Path) -> Result<Created, WriteError> {
        let mut dirs = Vec::new();
        let mut p = Some(out);
        while let Some(d) = p {
            if d.as_os_str().is_empty() || d.exists() {
                break;
            }
            dirs.push(d.to_path_buf());
            p = d.parent();
        }
        let c = Created {
            out: out.to_path_buf(),
            dirs,
        };
        if let Err(e) = std::fs::create_dir_all(out) {
            c.undo();
            return Err(error(format!("cannot create {}: {e}", out.display())));
        }
        Ok(c)
    }

    /// Removes everything written: the contents of `out` (empty before),
    /// then the directories we created.
    fn undo(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.out) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(out: PathBuf, n: u32) -> Options {
        Options {
            validators: n,
            out,
            chain_id: "bizra-unit".into(),
            base_port: 7400,
            host_template: "127.0.0.1".into(),
            epoch_length: 10,
            block_interval_ms: 50,
        }
    }

    fn tmp(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("bizra-testnet-unit-{tag}-{}-{}", std::process::id(), now_ms()))
    }

    #[test]
    fn testnet_init_writes_loadable_homes() {
        let out = tmp("init");
        let homes = init(&args(out.join("a/b"), 3)).unwrap();
        assert_eq!(homes.len(), 3);
        for (k, h) in homes.iter().enumerate() {
            assert!(h.is_absolute());
            let cfg = NodeConfig::load(h).unwrap();
            assert_eq!(cfg.moniker, format!("node{k}"));
            assert_eq!(cfg.consensus.block_interval_ms, 50);
            assert_eq!(cfg.p2p.peers.len(), 2);
            let key = bizra_node::keys::read(&h.join(&cfg.key)).unwrap();
            let g =
                bizra_consensus::genesis::Genesis::from_bytes(&std::fs::read(h.join(&cfg.genesis)).unwrap()).unwrap();
            assert_eq!(g.doc.validators[k].id, key.id());
            assert_eq!(g.params().epoch_length, 10);
        }
        // A second init into the same (non-empty) directory is refused.
        // (`bizra testnet init` maps every WriteError to exit 2; see the
        // cli's `testnet_refusal_is_a_usage_error`.)
        assert!(init(&args(out.join("a/b"), 3))
            .unwrap_err()
            .to_string()
            .contains("exists and is not empty"));
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn testnet_refusals_write_nothing() {
        let out = tmp("refuse");
        let mut a = args(out.clone(), 3);
        a.chain_id = "no spaces".into();
        let e = init(&a).unwrap_err().to_string();
        assert!(e.contains("chain_id"), "{e}");
        a = args(out.clone(), 3);
        a.base_port = 65400;
        assert!(init(&a).unwrap_err().to_string().contains("65535"));
        a = args(out.clone(), 0);
        assert!(init(&a).is_err());
        a = args(out.clone(), 3);
        a.host_template = "bad host{k}".into();
        assert!(init(&a).is_err());
        assert!(!out.exists());
    }

    #[test]
    fn testnet_compose_writes_docker_assets() {
        let out = tmp("compose");
        let init = args(out.clone(), 4);
        let c = Compose {
            subnet: crate::DEFAULT_SUBNET.into(),
            publish_grpc: 3,
            image: docker::DEFAULT_IMAGE.into(),
            mem_limit: "128m".into(),
            cpus: "0.1".into(),
        };
        let w = write_testnet(&init, &Kind::Compose(c.clone())).unwrap();
        for f in [
            "docker-compose.yml",
            "Dockerfile",
            ".dockerignore",
            "build-image.sh",
            "testnet.json",
        ] {
            assert!(out.join(f).is_file(), "{f}");
        }
        let cfg = NodeConfig::load(&w.homes[2]).unwrap();
        assert_eq!(cfg.grpc.listen, "0.0.0.0:7502");
        assert!(cfg.p2p.peers.iter().all(|p| p.contains("@172.28.0.")));
        assert_eq!(cfg.consensus.propose_timeout_ms, Timeouts::for_compose(4).propose_ms);
        assert_eq!(w.grpc[3], "http://172.28.0.13:7503");
        std::fs::remove_dir_all(&out).unwrap();
        let mut bad = init.clone();
        bad.host_template = "node{k}".into();
        assert!(write_testnet(&bad, &Kind::Compose(c.clone())).is_err());
        let mut bad = c.clone();
        bad.subnet = "300.1.1.0/24".into();
        assert!(write_testnet(&init, &Kind::Compose(bad)).is_err());
        assert!(!out.exists());
    }

    #[test]
    fn testnet_stack_writes_a_swarm_stack_with_named_peers_and_a_secret_key() {
        let out = tmp("stack");
        let init = args(out.clone(), 4);
        let st = Stack {
            publish_grpc: None,
            image: docker::DEFAULT_IMAGE.into(),
            mem_limit: "128m".into(),
            cpus: "0.5".into(),
            pin_to_hosts: false,
        };
        let w = write_testnet(&init, &Kind::Stack(st.clone())).unwrap();
        for f in [
            "stack.yml",
            "Dockerfile",
            ".dockerignore",
            "build-image.sh",
            "testnet.json",
        ] {
            assert!(out.join(f).is_file(), "{f}");
        }
        assert!(!out.join("docker-compose.yml").exists());
        let cfg = NodeConfig::load(&w.homes[2]).unwrap();
        assert_eq!(cfg.key, PathBuf::from(swarm::KEY_PATH));
        assert_eq!(cfg.grpc.listen, "0.0.0.0:7502");
        assert!(cfg.p2p.peers.iter().all(|p| p.contains("@node")), "{:?}", cfg.p2p.peers);
        assert_eq!(cfg.consensus.propose_timeout_ms, Timeouts::for_compose(4).propose_ms);
        // Every validator's gRPC port is published on the swarm host.
        assert_eq!(w.grpc[3], "http://127.0.0.1:7503");
        let y = std::fs::read_to_string(out.join("stack.yml")).unwrap();
        assert!(y.contains("endpoint_mode: dnsrr"));
        // The secret's source file is the key the node dir holds.
        assert!(out.join("node3/validator.key").is_file());
        std::fs::remove_dir_all(&out).unwrap();
        let mut bad = init.clone();
        bad.host_template = "10.0.0.{k}".into();
        assert!(write_testnet(&bad, &Kind::Stack(st)).is_err());
        assert!(!out.exists());
    }
}
