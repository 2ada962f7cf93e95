//! Signed release evidence bundles and their offline verification.
//!
//! A bundle is a directory (and a tarball of it) holding the `bizra` binary
//! (`bin/bizra`), its CycloneDX 1.5 SBOM (`sbom.cdx.json`), an in-toto
//! Statement v1 with a SLSA provenance v1 predicate (`provenance.intoto.json`),
//! optional evidence copied in (`wq_proof.json`, `attestation.json`,
//! `bench/<file>`), and `manifest.json` listing every file with its SHA-256 and
//! size (plus external artifacts, such as an image tarball, by digest only).
//! `manifest.json`, the provenance statement and the SBOM are each signed as a
//! DSSE envelope (docs/PROTOCOL.md §9 format) with the release key, using the
//! one signature rule of [`bizra_consensus::signing`].
//!
//! [`bundle::write_bundle`] writes a bundle; [`verify::verify_bundle`] checks
//! one offline against a public key. Neither does networking; the only outside
//! processes are `cargo metadata`, `git` and `rustc -vV`, run by
//! [`bundle::collect_build_info`] before anything is written.

#![warn(missing_docs)]

pub mod bundle;
pub mod dsse;
pub mod manifest;
pub mod provenance;
pub mod sbom;
pub mod verify;

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// File names inside a bundle.
pub mod names {
    /// Path of the `bizra` binary inside a bundle.
    pub const BINARY: &str = "bin/bizra";
    /// The CycloneDX 1.5 SBOM (JSON).
    pub const SBOM: &str = "sbom.cdx.json";
    /// The in-toto Statement v1 carrying the SLSA provenance v1 predicate.
    pub const PROVENANCE: &str = "provenance.intoto.json";
    /// The manifest listing every bundled file with its SHA-256 and size.
    pub const MANIFEST: &str = "manifest.json";
    /// Optional copied-in `wq-proof/1` document.
    pub const WQ_PROOF: &str = "wq_proof.json";
    /// Optional copied-in `poi-attestation/1` document.
    pub const ATTESTATION: &str = "attestation.json";
    /// Directory holding the copied-in `--bench` files.
    pub const BENCH_DIR: &str = "bench";
    /// DSSE envelope signing `manifest.json`.
    pub const MANIFEST_DSSE: &str = "manifest.dsse.json";
    /// DSSE envelope signing `provenance.intoto.json`.
    pub const PROVENANCE_DSSE: &str = "provenance.intoto.dsse.json";
    /// DSSE envelope signing `sbom.cdx.json`.
    pub const SBOM_DSSE: &str = "sbom.dsse.json";
    /// Files of a bundle that `manifest.json` does not list: itself and the envelopes.
    pub const UNLISTED: [&str; 4] = [MANIFEST, MANIFEST_DSSE, PROVENANCE_DSSE, SBOM_DSSE];
}

/// The target triple this crate was compiled for (set by build.rs).
pub const HOST_TARGET: &str = env!("BIZRA_RELEASE_TARGET");

/// Lower-case hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lower-case hex SHA-256 and size of a file, read in chunks (binaries are large).
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

/// Now, UTC, whole seconds, RFC 3339 (`2026-05-01T12:00:00Z`).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond");
    now.format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats as RFC 3339")
}

#[cfg(test)]
mod tests;
