//! `bizra head --grpc URL`

use super::{usage, CliResult};
use clap::Args;

#[derive(Args, Debug)]
pub struct HeadArgs {
    /// gRPC endpoint, e.g. http://127.0.0.1:7500
    #[arg(long)]
    pub grpc: String,
}

pub fn run(_a: HeadArgs) -> CliResult {
    Err(usage("head: not available yet"))
}
