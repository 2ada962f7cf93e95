//! `bizra devnet`: the README's main command.

use super::{usage, CliResult};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub validators: u32,
    /// Stop after this many finalized blocks (default: run until Ctrl-C).
    #[arg(long)]
    pub blocks: Option<u64>,
    /// Testnet directory (default: a fresh temporary directory).
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// First port (peers P+K, gRPC P+100+K, metrics P+200+K).
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// Pause between blocks, in ms.
    #[arg(long, default_value_t = 200)]
    pub block_interval_ms: u64,
    /// Blocks per epoch.
    #[arg(long, default_value_t = 100)]
    pub epoch_length: u64,
}

pub fn run(_a: DevnetArgs) -> CliResult {
    Err(usage("devnet: not available yet"))
}
