//! `bizra release bundle` and `bizra verify bundle`: the signed release
//! evidence bundle (SBOM, provenance, manifest, DSSE envelopes). The logic is
//! in `bizra-release`; this maps its errors to exit codes.

use super::{check, usage, CliResult, Failure};
use bizra_release::bundle::{self, BundleError, BundleRequest};
use bizra_release::verify::{self, VerifyError};
use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;
use std::path::{Path, PathBuf};

/// The `bizra release` subcommands.
#[derive(Subcommand, Debug)]
pub enum ReleaseCommand {
    /// Write a signed release evidence bundle: DIR/ and DIR.tar with bin/bizra, a CycloneDX 1.5 SBOM,
    /// SLSA provenance, manifest.json and their DSSE envelopes. Check it with `bizra verify bundle DIR --key PUBKEY`.
    Bundle(BundleArgs),
}

/// Arguments of `bizra release bundle`.
#[derive(Args, Debug)]
pub struct BundleArgs {
    /// The bundle directory to create (absent or empty); DIR.tar is written beside it.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The bizra binary to bundle (copied to bin/bizra).
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,
    /// The release signing key file (from `bizra keygen`).
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// The Cargo workspace the binary was built from (for `cargo metadata --offline`, Cargo.lock, git).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub workspace: PathBuf,
    /// The target triple the binary was built for (the SBOM's platform filter); default: this bizra's own.
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// A container image tarball: recorded by SHA-256 and size (provenance subject, external manifest entry), not copied.
    #[arg(long, value_name = "FILE")]
    pub image_tar: Option<PathBuf>,
    /// A wq_proof.json to include (as wq_proof.json).
    #[arg(long, value_name = "FILE")]
    pub wq_proof: Option<PathBuf>,
    /// An attestation.json to include (as attestation.json).
    #[arg(long, value_name = "FILE")]
    pub attestation: Option<PathBuf>,
    /// Benchmark output files to include (as bench/<file name>); repeatable.
    // The text is also the --help line, so the tag-like `<file name>` stays.
    #[allow(rustdoc::invalid_html_tags)]
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub bench: Vec<PathBuf>,
}

/// Runs the chosen `bizra release` subcommand.
pub fn run(c: ReleaseCommand) -> CliResult {
    match c {
        ReleaseCommand::Bundle(a) => run_bundle(a),
    }
}

fn bundle_failure(e: BundleError) -> Failure {
    match e {
        BundleError::Input(m) => usage(m),
        BundleError::Check(m) | BundleError::Write(m) => check(m),
    }
}

fn run_bundle(a: BundleArgs) -> CliResult {
    let req = BundleRequest {
        out: a.out,
        binary: a.binary,
        image_tar: a.image_tar,
        wq_proof: a.wq_proof,
        attestation: a.attestation,
        bench: a.bench,
    };
    // All inputs before running cargo or writing anything.
    req.check().map_err(bundle_failure)?;
    let signer = bizra_node::keys::read(&a.key).map_err(usage)?;
    let info = bundle::collect_build_info(&a.workspace, a.target.as_deref()).map_err(bundle_failure)?;
    let s = bundle::write_bundle(&req, &info, &signer).map_err(bundle_failure)?;
    println!(
        "release bundle of bizra {}: {} files, {} SBOM components, bin/bizra sha256 {}, signed by {}",
        s.version, s.files, s.components, s.binary_sha256, s.signer
    );
    println!("{}", s.dir.display());
    println!("{}", s.tar.display());
    Ok(())
}

/// The release public key from `--key`: 64 hex digits, or a file holding
/// them, or a bizra key file (its public key).
pub fn release_key(arg: &str) -> Result<VerifyingKey, Failure> {
    let parse = |hex: &str| {
        bizra_consensus::signing::parse_validator_id(&hex.to_ascii_lowercase())
            .map_err(|e| usage(format!("--key {hex}: {e}")))
    };
    let t = arg.trim();
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return parse(t);
    }
    let path = Path::new(arg);
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("--key {arg}: neither 64 hex digits nor a readable file ({e})")))?;
    let t = text.trim();
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return parse(t);
    }
    bizra_node::keys::read(path)
        .map(|s| s.public_key())
        .map_err(|e| usage(format!("--key {arg}: not a hex public key nor a bizra key file: {e}")))
}

/// `bizra verify bundle DIR --key PUBKEY`.
pub fn verify_bundle(dir: &Path, key: &str) -> CliResult {
    let key = release_key(key)?;
    let s = verify::verify_bundle(dir, &key).map_err(|e| match e {
        VerifyError::Bad { .. } => check(e),
        VerifyError::Input(m) => usage(m),
    })?;
    println!(
        "bundle OK: {} files and {} external digest(s) match the manifest, 3 signatures by {}, bin/bizra sha256 {}",
        s.files, s.external, s.signer, s.binary_sha256
    );
    Ok(())
}
