//! `bizra verify FILE --genesis GENESIS`: offline checks of wq_proof.json and
//! attestation.json.

use super::{usage, CliResult};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// A wq_proof.json or attestation.json.
    pub file: PathBuf,
    /// The chain's genesis.json.
    #[arg(long)]
    pub genesis: PathBuf,
}

pub fn run(_a: VerifyArgs) -> CliResult {
    Err(usage("verify: not available yet"))
}
