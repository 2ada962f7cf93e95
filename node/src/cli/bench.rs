//! `bizra bench`: measurements that print a table and write JSON.

use super::{usage, CliResult};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {}

pub fn run(_c: BenchCommand) -> CliResult {
    Err(usage("bench: not available yet"))
}
