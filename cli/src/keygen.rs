//! `bizra keygen --out FILE`

use super::{usage, CliResult};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `bizra keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the key file (mode 0600). Refuses to overwrite.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `bizra keygen`: writes a new key file and prints its validator id.
pub fn run(a: KeygenArgs) -> CliResult {
    let signer = bizra_node::keys::generate();
    bizra_node::keys::write(&a.out, &signer).map_err(usage)?;
    println!("{}", signer.id());
    Ok(())
}
