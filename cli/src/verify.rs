//! `bizra verify FILE --genesis GENESIS`: offline checks of `wq_proof.json`,
//! `attestation.json` and `evidence.json`, and `bizra verify bundle DIR --key
//! PUBKEY` for release bundles. The checks themselves are in the
//! `bizra-proof` crate ([`bizra_proof::verify`], whose docs list the rules);
//! this module maps its [`VerifyError`] to exit codes and re-exports it so that
//! `crate::verify::…` paths keep working.
//!
//! Exit 0 valid; 1 invalid, with a reason that names the failing field;
//! 2 unreadable or malformed input (a file that cannot be read, is not JSON of
//! the schema, or a genesis that does not load).

use super::{check, usage, CliResult, Failure};
use bizra_consensus::genesis::Genesis;
use bizra_proof::VerifyError;
use clap::Args;
use std::path::PathBuf;

pub use bizra_proof::verify::{
    check_commit, check_envelope, check_inclusion, check_poi_fields, check_proof, epoch_weights, keys_from_ids,
    telemetry_weights, CommitSummary, Included, MerkleRoot, ProofSummary, TrustRoot,
};

/// Arguments of `bizra verify` (an artifact with `--genesis`, or `bundle DIR --key`).
#[derive(Args, Debug)]
#[command(
    override_usage = "bizra verify FILE --genesis GENESIS\n       bizra verify bundle DIR --key PUBKEY",
    after_help = "Two forms:\n  \
bizra verify FILE --genesis GENESIS\n      Check a wq_proof.json, attestation.json or evidence.json offline against the chain's genesis \
file (the file's \"version\" key says which it is).\n  \
bizra verify bundle DIR --key PUBKEY\n      Check a release evidence bundle (from `bizra release bundle`) offline: the DSSE \
signatures of manifest.json, provenance.intoto.json and sbom.cdx.json by PUBKEY, every file's sha256 and size \
against manifest.json, no unlisted files, and the provenance subject digest of bin/bizra.\n\n\
Exit codes: 0 valid; 1 a check failed (the message names the first bad file or field); 2 bad usage or unreadable input."
)]
pub struct VerifyArgs {
    /// A wq_proof.json, attestation.json or evidence.json; or the word `bundle`, followed by DIR.
    #[arg(value_name = "FILE|bundle")]
    pub file: PathBuf,
    /// With `bundle`: the release bundle directory.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The chain's genesis.json (the FILE form).
    #[arg(long, value_name = "GENESIS")]
    pub genesis: Option<PathBuf>,
    /// With `bundle`: the release public key, as 64 hex digits, a file holding them, or a bizra key file.
    #[arg(long, value_name = "PUBKEY")]
    pub key: Option<String>,
}

/// Runs `bizra verify`: checks an artifact against genesis, or a release bundle against its key.
pub fn run(a: VerifyArgs) -> CliResult {
    if a.file.as_os_str() == "bundle" {
        let dir = a
            .dir
            .ok_or_else(|| usage("verify bundle needs the bundle directory: bizra verify bundle DIR --key PUBKEY"))?;
        if a.genesis.is_some() {
            return Err(usage("verify bundle takes --key, not --genesis"));
        }
        let key = a
            .key
            .ok_or_else(|| usage("verify bundle needs --key PUBKEY (the release public key)"))?;
        return super::release::verify_bundle(&dir, &key);
    }
    if let Some(d) = &a.dir {
        return Err(usage(format!(
            "unexpected argument {}: use bizra verify FILE --genesis GENESIS, or bizra verify bundle DIR --key PUBKEY",
            d.display()
        )));
    }
    if a.key.is_some() {
        return Err(usage("--key is for bizra verify bundle DIR --key PUBKEY"));
    }
    let genesis_path = a
        .genesis
        .ok_or_else(|| usage("missing --genesis GENESIS: bizra verify FILE --genesis GENESIS"))?;
    let json = std::fs::read(&a.file).map_err(|e| usage(format!("cannot read {}: {e}", a.file.display())))?;
    let genesis = std::fs::read(&genesis_path)
        .map_err(|e| usage(format!("cannot read genesis {}: {e}", genesis_path.display())))?;
    let summary = verify_document(&json, &genesis)?;
    println!("{summary}");
    Ok(())
}

/// A failed check is exit 1, malformed input exit 2; the message is unchanged.
impl From<VerifyError> for Failure {
    fn from(e: VerifyError) -> Failure {
        match e {
            VerifyError::Failed { .. } => check(e),
            VerifyError::Malformed(m) => Failure::Usage(m),
        }
    }
}

/// Checks either artifact, dispatching on its `"version"` key.
pub fn verify_document(json: &[u8], genesis: &[u8]) -> Result<String, Failure> {
    Ok(bizra_proof::verify::verify_document(json, genesis)?)
}

/// Loads genesis bytes; failure is bad input (exit 2).
pub fn load_genesis(bytes: &[u8]) -> Result<Genesis, Failure> {
    Ok(bizra_proof::verify::load_genesis(bytes)?)
}

/// Checks a `wq_proof.json` against a genesis file's bytes (see
/// [`bizra_proof::verify::check_wq_proof`]).
pub fn check_wq_proof(json: &[u8], genesis_bytes: &[u8]) -> Result<String, Failure> {
    Ok(bizra_proof::verify::check_wq_proof(json, genesis_bytes)?)
}

/// Checks an `attestation.json` against a genesis file's bytes (see
/// [`bizra_proof::verify::verify_attestation`]).
pub fn verify_attestation(json: &[u8], genesis: &[u8]) -> Result<String, Failure> {
    Ok(bizra_proof::verify::verify_attestation(json, genesis)?)
}

/// Checks an `evidence.json` against a genesis file's bytes (see
/// [`bizra_proof::verify::verify_evidence`]).
pub fn verify_evidence(json: &[u8], genesis: &[u8]) -> Result<String, Failure> {
    Ok(bizra_proof::verify::verify_evidence(json, genesis)?)
}
