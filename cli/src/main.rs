//! `bizra`: the validator node and its tools. See `bizra --help`.

use bizra_cli as cli;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    cli::memory::tune_malloc();
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    cli::main(args)
}
