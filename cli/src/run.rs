//! `bizra run --home DIR`

use super::{check, usage, CliResult};
use bizra_node::engine::RunError;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `bizra run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Node home: config.toml, genesis, key and data dir.
    #[arg(long)]
    pub home: PathBuf,
}

/// Runs `bizra run`: one validator until stopped; a setup error is exit 2, a node that stops on an error exit 1.
pub fn run(a: RunArgs) -> CliResult {
    bizra_node::engine::run_node(&a.home).map_err(|e| match e {
        RunError::Setup(m) => usage(m),
        RunError::Stopped(m) => check(m),
    })
}
