//! `bizra testnet init|compose|stack|perturb`: the arguments, their
//! conversion into the options of the layout writer
//! ([`bizra_testnet::write`], which generates the keys and configs and
//! writes the files, or nothing), the printed summary and the exit codes
//! (every refusal of the writer is exit 2, nothing written).

use super::{usage, CliResult};
use bizra_testnet::docker;
use bizra_testnet::write::{self, Kind, Written};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// The `bizra testnet` subcommands.
#[derive(Subcommand, Debug)]
pub enum TestnetCommand {
    /// Write DIR/genesis.json and DIR/nodeK/ (config + key) for K = 0..N-1.
    #[command(long_about = INIT_ABOUT)]
    Init(InitArgs),
    /// As init, plus DIR/docker-compose.yml and what it needs to build the image with no registry.
    #[command(long_about = COMPOSE_ABOUT)]
    Compose(ComposeArgs),
    /// As init, plus DIR/stack.yml for `docker stack deploy` (Docker Swarm, one or many hosts).
    #[command(long_about = STACK_ABOUT)]
    Stack(StackArgs),
    /// Perturb a running compose testnet or Swarm stack (kill/pause/disconnect/restart or scale to
    /// zero, under a third of the validators at a time), check recovery and agreement, write a JSON report.
    Perturb(super::perturb::PerturbArgs),
}

const STACK_ABOUT: &str = "As `testnet init`, plus DIR/stack.yml, DIR/Dockerfile, DIR/.dockerignore and \
DIR/build-image.sh, for Docker Swarm: one service per validator (nodeK, endpoint_mode dnsrr) on an attachable \
overlay network, peers by DNS name (re-resolved after every failed dial, so a rescheduled task is found on its \
new IP), keys as Docker secrets, configs and genesis as Docker configs, limits, restart policy and placement \
under deploy:, a gRPC health check, and each validator's gRPC port (P+100+K) published in host mode.\n\n\
No registry: build the image once, `docker save` it and `docker load` it on every host, then \
`docker stack deploy -c DIR/stack.yml --resolve-image never STACK`. See docs/TESTNET.md.";

/// Arguments of `bizra testnet stack`.
#[derive(Args, Debug, Clone)]
pub struct StackArgs {
    /// The arguments shared with `bizra testnet init`.
    #[command(flatten)]
    pub init: InitArgs,
    /// Publish the gRPC ports of node0..node{N-1} (host mode); default: every validator.
    #[arg(long)]
    pub publish_grpc: Option<usize>,
    /// Image tag built by build-image.sh and used by every service.
    #[arg(long, default_value = docker::DEFAULT_IMAGE)]
    pub image: String,
    /// Memory limit per task (deploy.resources.limits.memory).
    #[arg(long, default_value = docker::DEFAULT_MEM_LIMIT)]
    pub mem_limit: String,
    /// CPU limit per task (deploy.resources.limits.cpus).
    #[arg(long, default_value = docker::DEFAULT_CPUS)]
    pub cpus: String,
    /// Constrain node K to the Swarm host labelled bizra.node=nodeK, so its data (and sign guard) stay put.
    #[arg(long)]
    pub pin_to_hosts: bool,
}

const INIT_ABOUT: &str = "Writes DIR/genesis.json, DIR/testnet.json and DIR/nodeK/{config.toml, validator.key, \
genesis.json} for K = 0..N-1 (validators named node0..nodeN-1, equal stake).\n\n\
Ports: node K listens for peers on P+K, serves gRPC on P+100+K and metrics on P+200+K. With the default host \
(127.0.0.1) everything listens on loopback; with any other host template the sockets bind to 0.0.0.0.\n\n\
Peers: up to 128 validators every node peers with every other one (a full mesh: votes go one hop, ADR 0012); \
above that each node gets 8 peers (node K peers with K +- o mod N for four fixed offsets, the first being 1), a \
connected graph with a small diameter.\n\n\
Refuses (exit 2, nothing written) a non-empty DIR, ports beyond 65535, more than 100 validators on one host \
(the port ranges would overlap), an invalid chain id or host template.";

const COMPOSE_ABOUT: &str = "As `testnet init`, plus DIR/docker-compose.yml, DIR/Dockerfile, DIR/.dockerignore and \
DIR/build-image.sh. No registry is used: the image is FROM scratch plus a statically linked bizra binary that \
build-image.sh compiles from this source tree.\n\n\
Containers are named and have hostname nodeK and a fixed IPv4 address on a private bridge network (--subnet; \
node K = base + 10 + K). Peers are given by those addresses, because a static binary cannot resolve names \
through NSS, so --host-template is not used. Ports follow the init layout inside each container; the gRPC \
ports of the first --publish-grpc validators are published on the host's 127.0.0.1.\n\n\
alpha-100: bizra testnet compose --validators 100 --out /tmp/alpha100 && cd /tmp/alpha100 && ./build-image.sh \
&& docker compose up -d";

/// Arguments of `bizra testnet init`; flattened into `compose` and `stack`, and filled in by `devnet`.
#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub validators: u32,
    /// Output directory (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Chain id written to genesis.
    #[arg(long, default_value = "bizra-local")]
    pub chain_id: String,
    /// Node K listens for peers on P+K, gRPC on P+100+K, metrics on P+200+K.
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// Host of node K; `{k}` is replaced by K (e.g. `node{k}`, `10.0.0.{k}`). Not used by compose (fixed IPs).
    #[arg(long, default_value = "127.0.0.1")]
    pub host_template: String,
    /// Blocks per epoch (weights are recomputed at each boundary).
    #[arg(long, default_value_t = 100)]
    pub epoch_length: u64,
    /// Pause between blocks, in ms (consensus.block_interval_ms).
    #[arg(long, default_value_t = 200)]
    pub block_interval_ms: u64,
}

/// Arguments of `bizra testnet compose`.
#[derive(Args, Debug, Clone)]
pub struct ComposeArgs {
    /// The arguments shared with `bizra testnet init`.
    #[command(flatten)]
    pub init: InitArgs,
    /// Private docker network for the containers (node K gets base + 10 + K).
    #[arg(long, default_value = bizra_testnet::DEFAULT_SUBNET)]
    pub subnet: String,
    /// Publish the gRPC ports of node0..node{N-1} on the host's 127.0.0.1.
    #[arg(long, default_value_t = docker::DEFAULT_PUBLISH_GRPC)]
    pub publish_grpc: usize,
    /// Image tag built by build-image.sh and used by every service.
    #[arg(long, default_value = docker::DEFAULT_IMAGE)]
    pub image: String,
    /// Memory limit per container (mem_limit).
    #[arg(long, default_value = docker::DEFAULT_MEM_LIMIT)]
    pub mem_limit: String,
    /// CPU limit per container (cpus).
    #[arg(long, default_value = docker::DEFAULT_CPUS)]
    pub cpus: String,
}

/// Runs the chosen `bizra testnet` subcommand.
pub fn run(c: TestnetCommand) -> CliResult {
    match c {
        TestnetCommand::Perturb(a) => super::perturb::run(a),
        TestnetCommand::Init(a) => {
            let w = write_testnet(&a, Kind::Init)?;
            print_summary(&w, &a.out);
            println!("start a validator: bizra run --home {}", w.homes[0].display());
            Ok(())
        }
        TestnetCommand::Stack(a) => {
            let w = write_testnet(&a.init, Kind::Stack(a.options()))?;
            print_summary(&w, &a.init.out);
            println!(
                "build and deploy: cd {} && ./build-image.sh && docker stack deploy -c stack.yml --resolve-image never STACK",
                a.init.out.display()
            );
            Ok(())
        }
        TestnetCommand::Compose(a) => {
            let w = write_testnet(&a.init, Kind::Compose(a.options()))?;
            print_summary(&w, &a.init.out);
            println!(
                "build and start: cd {} && ./build-image.sh && docker compose up -d   (or docker-compose up -d)",
                a.init.out.display()
            );
            Ok(())
        }
    }
}

/// Writes the layout; returns each node's home directory.
pub fn init(a: &InitArgs) -> Result<Vec<PathBuf>, super::Failure> {
    write::init(&a.options()).map_err(usage)
}

/// Writes the layout of `kind`; every refusal is a usage error (exit 2).
fn write_testnet(a: &InitArgs, kind: Kind) -> Result<Written, super::Failure> {
    write::write_testnet(&a.options(), &kind).map_err(usage)
}

impl InitArgs {
    /// The layout writer's options.
    pub fn options(&self) -> write::Options {
        write::Options {
            validators: self.validators,
            out: self.out.clone(),
            chain_id: self.chain_id.clone(),
            base_port: self.base_port,
            host_template: self.host_template.clone(),
            epoch_length: self.epoch_length,
            block_interval_ms: self.block_interval_ms,
        }
    }
}

impl ComposeArgs {
    /// What compose adds to the layout writer's options.
    pub fn options(&self) -> write::Compose {
        write::Compose {
            subnet: self.subnet.clone(),
            publish_grpc: self.publish_grpc,
            image: self.image.clone(),
            mem_limit: self.mem_limit.clone(),
            cpus: self.cpus.clone(),
        }
    }
}

impl StackArgs {
    /// What stack adds to the layout writer's options.
    pub fn options(&self) -> write::Stack {
        write::Stack {
            publish_grpc: self.publish_grpc,
            image: self.image.clone(),
            mem_limit: self.mem_limit.clone(),
            cpus: self.cpus.clone(),
            pin_to_hosts: self.pin_to_hosts,
        }
    }
}

fn print_summary(w: &Written, out: &Path) {
    println!(
        "wrote {} validators to {} (chain {}, genesis {})",
        w.plan.nodes.len(),
        out.display(),
        w.plan.genesis.chain_id(),
        w.plan.genesis_hash_hex()
    );
    for (n, g) in w.plan.nodes.iter().zip(&w.grpc) {
        println!(
            "  {:<7} {}  p2p {}:{}  grpc {g}  peers {}",
            n.name,
            n.id,
            n.host,
            n.ports.p2p,
            n.peers.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer's tests are `bizra_testnet::write`'s; here: its refusals
    /// are usage errors (exit 2), with the writer's message.
    #[test]
    fn testnet_refusal_is_a_usage_error() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let out = std::env::temp_dir().join(format!("bizra-cli-testnet-unit-{}-{nanos}", std::process::id()));
        let a = InitArgs {
            validators: 3,
            out: out.clone(),
            chain_id: "bizra-unit".into(),
            base_port: 7400,
            host_template: "127.0.0.1".into(),
            epoch_length: 10,
            block_interval_ms: 50,
        };
        assert_eq!(init(&a).unwrap().len(), 3);
        // A second init into the same (non-empty) directory is refused.
        match init(&a) {
            Err(super::super::Failure::Usage(m)) => assert!(m.contains("exists and is not empty"), "{m}"),
            other => panic!("expected a usage error, got {other:?}"),
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
}
