//! `bizra testnet init|compose`

use super::{usage, CliResult};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum TestnetCommand {
    /// Write DIR/genesis.json and DIR/nodeK/ (config + key) for K = 0..N-1.
    Init(InitArgs),
    /// As init, plus DIR/docker-compose.yml and what it needs to build the image with no registry.
    Compose(ComposeArgs),
}

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
    /// Host of node K; `{k}` is replaced by K (e.g. `node{k}` for docker). Default 127.0.0.1.
    #[arg(long, default_value = "127.0.0.1")]
    pub host_template: String,
    /// Blocks per epoch (weights are recomputed at each boundary).
    #[arg(long, default_value_t = 100)]
    pub epoch_length: u64,
    /// Pause between blocks, in ms (consensus.block_interval_ms).
    #[arg(long, default_value_t = 200)]
    pub block_interval_ms: u64,
}

#[derive(Args, Debug, Clone)]
pub struct ComposeArgs {
    #[command(flatten)]
    pub init: InitArgs,
}

pub fn run(c: TestnetCommand) -> CliResult {
    match c {
        TestnetCommand::Init(a) => init(&a).map(|_| ()),
        TestnetCommand::Compose(_a) => Err(usage("testnet compose: not available yet")),
    }
}

/// Writes the layout; returns each node's home directory.
pub fn init(_a: &InitArgs) -> Result<Vec<PathBuf>, super::Failure> {
    Err(usage("testnet init: not available yet"))
}
