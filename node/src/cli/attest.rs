//! `bizra attest`: sign and submit a PoI attestation (CONTRACT section 7).

use super::{usage, CliResult};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct AttestArgs {
    /// gRPC endpoint of a validator.
    #[arg(long)]
    pub grpc: String,
    /// The attester's validator key file.
    #[arg(long)]
    pub key: PathBuf,
    /// Subject of the attestation (e.g. a validator id).
    #[arg(long)]
    pub subject: String,
    /// Evidence file; its BLAKE3 digest and length are attested.
    #[arg(long)]
    pub evidence: PathBuf,
    /// A dimension: NAME=VALUE:WEIGHT, value and weight in basis points. Repeat; weights sum to 10000.
    #[arg(long = "dim", required = true)]
    pub dims: Vec<String>,
    /// Start of the observation window, ms since the epoch (default: now - 1h).
    #[arg(long)]
    pub window_start: Option<u64>,
    /// End of the observation window, ms since the epoch (default: now).
    #[arg(long)]
    pub window_end: Option<u64>,
    /// Wait until the attestation is finalized and write attestation.json.
    #[arg(long)]
    pub wait: bool,
    /// Where --wait writes attestation.json.
    #[arg(long, default_value = "attestation.json")]
    pub out: PathBuf,
    /// Seconds --wait waits for finalization.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

pub fn run(_a: AttestArgs) -> CliResult {
    Err(usage("attest: not available yet"))
}
