//! `manifest.json`: every file of the bundle with its SHA-256 and size.
//!
//! `{"version": "bizra-release-bundle/1", "created", "signer": <hex pubkey>,
//!   "files": [{"path", "sha256", "size"}..., {"name", "sha256", "size", "external": true}...]}`
//!
//! Entries with a `path` are files inside the bundle (relative, `/`-separated).
//! Entries flagged `external` (an image tarball) are recorded by digest only:
//! they have a `name` and no `path`, and are not part of the bundle.
//! The manifest itself and the three DSSE envelopes are not listed.

use serde::{Deserialize, Serialize};

/// The `version` a manifest must carry.
pub const MANIFEST_VERSION: &str = "bizra-release-bundle/1";

/// The contents of `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version, always [`MANIFEST_VERSION`].
    pub version: String,
    /// When the bundle was made, RFC 3339 UTC.
    pub created: String,
    /// Lower-case hex Ed25519 public key of the release key that signs the bundle.
    pub signer: String,
    /// Bundled files, then external artifacts.
    pub files: Vec<FileEntry>,
}

/// One manifest entry: a bundled file (`path`) or an external artifact (`name`, `external`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Bundle-relative, `/`-separated path; set for bundled files only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// File name of an external artifact; set for external entries only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// File size in bytes.
    pub size: u64,
    /// True for an artifact recorded by digest only, not inside the bundle.
    #[serde(default, skip_serializing_if = "is_false")]
    pub external: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl FileEntry {
    /// An entry for a file inside the bundle at `path`.
    pub fn file(path: &str, sha256: String, size: u64) -> Self {
        FileEntry {
            path: Some(path.to_string()),
            name: None,
            sha256,
            size,
            external: false,
        }
    }
    /// An entry for an external artifact, recorded by digest only.
    pub fn external(name: &str, sha256: String, size: u64) -> Self {
        FileEntry {
            path: None,
            name: Some(name.to_string()),
            sha256,
            size,
            external: true,
        }
    }
}

impl Manifest {
    /// Pretty JSON with a final newline: the exact bytes that are signed.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        out.push(b'\n');
        out
    }
}

/// Whether `p` is a safe bundle-relative path: `/`-separated, non-empty
/// components, none of them `.` or `..`, no backslash, not absolute.
pub fn is_safe_relative_path(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\\')
        && !p.contains('\0')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_serialize_without_empty_fields() {
        let m = Manifest {
            version: MANIFEST_VERSION.into(),
            created: "2026-01-01T00:00:00Z".into(),
            signer: "ab".into(),
            files: vec![
                FileEntry::file("bin/bizra", "00".into(), 3),
                FileEntry::external("image.tar", "11".into(), 4),
            ],
        };
        let v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
        assert_eq!(
            v["files"][0],
            serde_json::json!({"path": "bin/bizra", "sha256": "00", "size": 3})
        );
        assert_eq!(
            v["files"][1],
            serde_json::json!({"name": "image.tar", "sha256": "11", "size": 4, "external": true})
        );
        let back: Manifest = serde_json::from_slice(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn path_safety() {
        for ok in ["bin/bizra", "bench/a.json", "x"] {
            assert!(is_safe_relative_path(ok), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a\\b", "a/"] {
            assert!(!is_safe_relative_path(bad), "{bad}");
        }
    }
}
