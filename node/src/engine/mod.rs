//! The consensus engine: the tokio shell around the pure driver.

use crate::cli::{usage, CliResult};

pub fn run_node(_home: &std::path::Path) -> CliResult {
    Err(usage("run: not available yet"))
}
