//! The `bizra` command line (docs/PROTOCOL.md §2): argument parsing, the
//! commands and their exit codes. The validator itself is `bizra-node`.
//!
//! Exit codes everywhere: 0 success; 1 a check failed (disagreement, bad
//! signature, timeout); 2 bad usage or bad input, with a one-line reason and
//! nothing written.

#![warn(missing_docs)]

pub mod attest;
pub mod devnet;
pub mod evidence;
pub mod head;
pub mod health;
pub mod keygen;
pub mod memory;
pub mod perturb;
pub mod proof;
pub mod release;
pub mod run;
pub mod testnet;
pub mod verify;
pub mod wq_proof;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// A failure with its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1: a check failed.
    Check(String),
    /// Exit 2: bad usage or bad input.
    Usage(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Check(s) | Failure::Usage(s) => f.write_str(s),
        }
    }
}

impl From<bizra_bench::BenchError> for Failure {
    /// A bench's bad usage is exit 2, its failed measurement exit 1; the message is unchanged.
    fn from(e: bizra_bench::BenchError) -> Failure {
        match e {
            bizra_bench::BenchError::Usage(m) => Failure::Usage(m),
            bizra_bench::BenchError::Failed(m) => Failure::Check(m),
        }
    }
}

/// What every command returns: `Ok` for exit 0, or the [`Failure`] giving exit 1 or 2.
pub type CliResult = Result<(), Failure>;

/// A [`Failure::Usage`] (exit 2) with `msg`.
pub fn usage(msg: impl std::fmt::Display) -> Failure {
    Failure::Usage(msg.to_string())
}
/// A [`Failure::Check`] (exit 1) with `msg`.
pub fn check(msg: impl std::fmt::Display) -> Failure {
    Failure::Check(msg.to_string())
}

/// A `--grpc` endpoint normalized by the one rule
/// ([`bizra_client::endpoint_url`]); anything else is bad usage (exit 2).
pub fn grpc_url(raw: &str) -> Result<String, Failure> {
    bizra_client::endpoint_url(raw).map_err(|e| match e {
        bizra_client::UrlError::Empty => usage("--grpc: empty endpoint"),
        e => usage(format!("--grpc {raw:?}: {e}")),
    })
}

/// The parsed `bizra` command line.
#[derive(Parser, Debug)]
#[command(
    name = "bizra",
    version,
    about = "bizra validator node: weighted-quorum BFT with Proof-of-Impact attestations",
    long_about = "bizra validator node: weighted-quorum BFT consensus (Tendermint over wq_weight) with signed \
Proof-of-Impact attestations.\n\nStart here: `bizra devnet` runs a local 4-validator testnet and shows every node's \
finalized head."
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The `bizra` subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a local testnet: one `bizra run` process per validator on loopback, with a live table.
    Devnet(devnet::DevnetArgs),
    /// Create a new Ed25519 validator key (file mode 0600) and print its public key.
    Keygen(keygen::KeygenArgs),
    /// Generate testnet layouts (genesis, per-node config and keys, docker-compose).
    #[command(subcommand)]
    Testnet(testnet::TestnetCommand),
    /// Run one validator until SIGINT/SIGTERM.
    Run(run::RunArgs),
    /// Print one node's finalized head.
    Head(head::HeadArgs),
    /// Ask a node's gRPC health service (grpc.health.v1): exit 0 when SERVING (container healthchecks).
    Health(health::HealthArgs),
    /// Prove head agreement of validators over gRPC and write wq_proof.json.
    WqProof(wq_proof::WqProofArgs),
    /// Sign a PoI attestation and submit it; prints its id.
    Attest(attest::AttestArgs),
    /// Export committed equivocation evidence (GetEvidence) as evidence.json.
    Evidence(evidence::EvidenceArgs),
    /// Check a wq_proof.json, attestation.json or evidence.json offline against the genesis file, or a release bundle against its key.
    Verify(verify::VerifyArgs),
    /// Release evidence: `release bundle` writes a signed bundle (SBOM, provenance, manifest, DSSE envelopes).
    #[command(subcommand)]
    Release(release::ReleaseCommand),
    /// Measure consensus, gRPC, attestation and sync throughput; prints a table, writes JSON with --json.
    #[command(subcommand)]
    Bench(bizra_bench::BenchCommand),
}

/// Runs the parsed command and maps its result to the process exit code (0, 1 or 2).
pub fn main(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Devnet(a) => devnet::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Testnet(c) => testnet::run(c),
        Command::Run(a) => run::run(a),
        Command::Head(a) => head::run(a),
        Command::Health(a) => health::run(a),
        Command::WqProof(a) => wq_proof::run(a),
        Command::Attest(a) => attest::run(a),
        Command::Evidence(a) => evidence::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Release(c) => release::run(c),
        Command::Bench(c) => bizra_bench::run(c).map_err(Failure::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Check(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
    }
}

/// A multi-thread tokio runtime for commands that need one.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub use bizra_node::config::resolve;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `cargo run ... --bin bizra -- ARGS` command in the README parses
    /// as written (a copied command must not be a usage error).
    #[test]
    fn readme_commands_parse() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let mut seen = 0;
        for line in readme.lines().map(str::trim) {
            let Some((_, args)) = line.split_once("--bin bizra -- ") else {
                continue;
            };
            if !line.starts_with("cargo run") {
                continue;
            }
            let argv = std::iter::once("bizra").chain(args.split_whitespace());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("README command does not parse: {line}\n{e}");
            }
            seen += 1;
        }
        assert!(seen >= 2, "expected the README's devnet commands, found {seen}");
        // The check can fail: the form an earlier README suggested is refused.
        assert!(Cli::try_parse_from(["bizra", "devnet", "--", "--blocks", "10"]).is_err());
    }
}
