//! `bizra run --home DIR`

use super::CliResult;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Node home: config.toml, genesis, key and data dir.
    #[arg(long)]
    pub home: PathBuf,
}

pub fn run(a: RunArgs) -> CliResult {
    crate::engine::run_node(&a.home)
}
