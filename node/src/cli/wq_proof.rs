//! `bizra wq-proof`: the 3-validator agreement gate (CONTRACT section 6).

use super::{usage, CliResult};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct WqProofArgs {
    /// Comma-separated gRPC endpoints, e.g. http://127.0.0.1:7500,http://127.0.0.1:7501
    #[arg(long, value_delimiter = ',', required = true)]
    pub grpc: Vec<String>,
    /// Lowest height to prove.
    #[arg(long, default_value_t = 3)]
    pub min_height: u64,
    /// Seconds to wait for a common finalized height.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Where to write the proof.
    #[arg(long, default_value = "wq_proof.json")]
    pub out: PathBuf,
}

pub fn run(_a: WqProofArgs) -> CliResult {
    Err(usage("wq-proof: not available yet"))
}
