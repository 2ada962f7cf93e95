//! Offline verification of a release bundle against the release public key.
//!
//! The checks, in this order (the first failure is reported, naming its file):
//! 1. Each envelope (`manifest.dsse.json`, `provenance.intoto.dsse.json`,
//!    `sbom.dsse.json`): its payloadType, exactly one signature, whose keyid
//!    is the given key, valid under the one signature rule
//!    ([`bizra_consensus::signing::verify`]); then its payload equals the
//!    bytes of the file it signs (`manifest.json`, `provenance.intoto.json`,
//!    `sbom.cdx.json`), byte for byte.
//! 2. `manifest.json`: its version, `signer` is the given key, every path is a
//!    safe relative path listed once, and `bin/bizra`, `sbom.cdx.json` and
//!    `provenance.intoto.json` are listed.
//! 3. Every listed file, in manifest order: a regular file with the listed
//!    size and SHA-256.
//! 4. No file in the bundle besides those listed, the manifest and the envelopes.
//! 5. The provenance statement's subject `bizra` has the SHA-256 of
//!    `bin/bizra`, and every external manifest entry is a subject with its
//!    SHA-256; the SBOM's `metadata.component` hash is that of `bin/bizra`.

use crate::dsse::{Envelope, MANIFEST_TYPE, PROVENANCE_TYPE, SBOM_TYPE};
use crate::manifest::{is_safe_relative_path, Manifest, MANIFEST_VERSION};
use crate::names;
use crate::provenance::{PREDICATE_TYPE, STATEMENT_TYPE};
use crate::sha256_file;
use ed25519_dalek::VerifyingKey;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Why a bundle failed verification; each variant maps to the CLI exit code noted on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A check failed on this file of the bundle (exit 1).
    #[error("{file}: {reason}")]
    Bad {
        /// Bundle-relative name of the file that failed.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The bundle directory cannot be used at all (exit 2).
    #[error("{0}")]
    Input(String),
}

impl VerifyError {
    /// The bundle-relative file a failed check names.
    pub fn file(&self) -> Option<&str> {
        match self {
            VerifyError::Bad { file, .. } => Some(file),
            VerifyError::Input(_) => None,
        }
    }
}

fn bad(file: &str, reason: impl std::fmt::Display) -> VerifyError {
    VerifyError::Bad {
        file: file.to_string(),
        reason: reason.to_string(),
    }
}

/// What a good bundle holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifySummary {
    /// Files listed in the manifest and checked (not counting external entries).
    pub files: usize,
    /// Number of external (digest-only) entries, each checked to be a provenance subject.
    pub external: usize,
    /// Lower-case hex SHA-256 of `bin/bizra`.
    pub binary_sha256: String,
    /// Lower-case hex public key named as signer (equal to the given key).
    pub signer: String,
    /// The manifest's `created` timestamp.
    pub created: String,
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, VerifyError> {
    let p = dir.join(name);
    match std::fs::symlink_metadata(&p) {
        Ok(m) if m.is_file() => std::fs::read(&p).map_err(|e| bad(name, format!("cannot read: {e}"))),
        Ok(_) => Err(bad(name, "is not a regular file")),
        Err(_) => Err(bad(name, "missing")),
    }
}

/// Checks the bundle in `dir` against the release public key `key`.
pub fn verify_bundle(dir: &Path, key: &VerifyingKey) -> Result<VerifySummary, VerifyError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(VerifyError::Input(format!("{} is not a directory", dir.display()))),
        Err(e) => return Err(VerifyError::Input(format!("cannot read {}: {e}", dir.display()))),
    }
    let key_hex = hex::encode(key.as_bytes());

    // 1. Envelopes and the files they sign.
    let mut signed: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (env_name, file, ptype) in [
        (names::MANIFEST_DSSE, names::MANIFEST, MANIFEST_TYPE),
        (names::PROVENANCE_DSSE, names::PROVENANCE, PROVENANCE_TYPE),
        (names::SBOM_DSSE, names::SBOM, SBOM_TYPE),
    ] {
        let env = Envelope::from_json(&read(dir, env_name)?).map_err(|e| bad(env_name, e))?;
        let payload = env.open(ptype, key).map_err(|e| bad(env_name, e))?;
        let bytes = read(dir, file)?;
        if bytes != payload {
            return Err(bad(file, format!("differs from the payload signed in {env_name}")));
        }
        signed.insert(file, payload);
    }

    // 2. The manifest.
    let m: Manifest = serde_json::from_slice(&signed[names::MANIFEST])
        .map_err(|e| bad(names::MANIFEST, format!("not a release manifest: {e}")))?;
    if m.version != MANIFEST_VERSION {
        return Err(bad(
            names::MANIFEST,
            format!("version is {:?}, expected {MANIFEST_VERSION:?}", m.version),
        ));
    }
    if m.signer != key_hex {
        return Err(bad(
            names::MANIFEST,
            format!("signer is {}, not the given key {key_hex}", m.signer),
        ));
    }
    let mut listed: BTreeSet<&str> = BTreeSet::new();
    let mut external = Vec::new();
    for (i, f) in m.files.iter().enumerate() {
        if !is_sha256_hex(&f.sha256) {
            return Err(bad(
                names::MANIFEST,
                format!("files[{i}].sha256 is not 64 lower-case hex digits"),
            ));
        }
        match (&f.path, &f.name, f.external) {
            (Some(p), None, false) => {
                if !is_safe_relative_path(p) || names::UNLISTED.contains(&p.as_str()) {
                    return Err(bad(names::MANIFEST, format!("files[{i}].path {p:?} is not allowed")));
                }
                if !listed.insert(p) {
                    return Err(bad(names::MANIFEST, format!("{p} is listed twice")));
                }
            }
            (None, Some(n), true) => external.push((n.as_str(), f.sha256.as_str())),
            _ => {
                return Err(bad(
                    names::MANIFEST,
                    format!("files[{i}] must have a path, or a name and \"external\": true"),
                ))
            }
        }
    }
    for required in [names::BINARY, names::SBOM, names::PROVENANCE] {
        if !listed.contains(required) {
            return Err(bad(names::MANIFEST, format!("does not list {required}")));
        }
    }

    // 3. Every listed file.
    for f in m.files.iter().filter(|f| !f.external) {
        let p = f.path.as_deref().expect("checked above");
        let abs = dir.join(p);
        match std::fs::symlink_metadata(&abs) {
            Ok(md) if md.is_file() => {}
            Ok(_) => return Err(bad(p, "is not a regular file")),
            Err(_) => return Err(bad(p, "listed in manifest.json but missing")),
        }
        let (sha, size) = sha256_file(&abs).map_err(|e| bad(p, format!("cannot read: {e}")))?;
        if size != f.size {
            return Err(bad(
                p,
                format!("size mismatch (manifest says {}, file has {size})", f.size),
            ));
        }
        if sha != f.sha256 {
            return Err(bad(
                p,
                format!("sha256 mismatch (manifest says {}, file has {sha})", f.sha256),
            ));
        }
    }

    // 4. Nothing else.
    let entries =
        crate::bundle::walk(dir).map_err(|e| VerifyError::Input(format!("cannot read {}: {e}", dir.display())))?;
    for (rel, md) in &entries {
        if md.is_dir() {
            continue;
        }
        if !md.is_file() {
            return Err(bad(rel, "is not a regular file"));
        }
        if !listed.contains(rel.as_str()) && !names::UNLISTED.contains(&rel.as_str()) {
            return Err(bad(rel, "is not listed in manifest.json"));
        }
    }

    // 5. The provenance subjects and the SBOM's binary hash.
    let binary_sha = &m
        .files
        .iter()
        .find(|f| f.path.as_deref() == Some(names::BINARY))
        .expect("checked above")
        .sha256;
    let st: serde_json::Value = serde_json::from_slice(&signed[names::PROVENANCE])
        .map_err(|e| bad(names::PROVENANCE, format!("not JSON: {e}")))?;
    if st["_type"] != STATEMENT_TYPE || st["predicateType"] != PREDICATE_TYPE {
        return Err(bad(
            names::PROVENANCE,
            format!("not an in-toto {STATEMENT_TYPE} statement of {PREDICATE_TYPE}"),
        ));
    }
    let subject_sha = |name: &str| -> Option<&str> {
        st["subject"].as_array()?.iter().find(|s| s["name"] == name)?["digest"]["sha256"].as_str()
    };
    match subject_sha(crate::bundle::BINARY_NAME) {
        Some(s) if s == binary_sha => {}
        Some(s) => {
            return Err(bad(
                names::PROVENANCE,
                format!("subject bizra has sha256 {s}, but bin/bizra has {binary_sha}"),
            ))
        }
        None => return Err(bad(names::PROVENANCE, "has no subject named bizra with a sha256")),
    }
    for (name, sha) in &external {
        if subject_sha(name) != Some(sha) {
            return Err(bad(
                names::PROVENANCE,
                format!("external {name} (sha256 {sha} in manifest.json) is not a subject with that digest"),
            ));
        }
    }
    let sbom: serde_json::Value =
        serde_json::from_slice(&signed[names::SBOM]).map_err(|e| bad(names::SBOM, format!("not JSON: {e}")))?;
    let app_sha = sbom["metadata"]["component"]["hashes"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["alg"] == "SHA-256"))
        .and_then(|h| h["content"].as_str());
    if app_sha != Some(binary_sha.as_str()) {
        return Err(bad(
            names::SBOM,
            format!("metadata.component SHA-256 is {app_sha:?}, but bin/bizra has {binary_sha}"),
        ));
    }

    Ok(VerifySummary {
        files: listed.len(),
        external: external.len(),
        binary_sha256: binary_sha.clone(),
        signer: key_hex,
        created: m.created,
    })
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
