//! `provenance.intoto.json`: an in-toto Statement v1 with a SLSA provenance v1
//! predicate (<https://slsa.dev/spec/v1.0/provenance>).
//!
//! Subjects: `{"name": "bizra", "digest": {"sha256"}}` of the binary and, when
//! given, the image tarball by its file name. The build definition records
//! what is known about how the binary was built: the workspace's git commit
//! (and whether its tree had uncommitted changes), the target triple and the
//! profile (from the binary's path, `target/<profile>/bizra`; `unknown`
//! otherwise); resolved dependencies are the source commit and Cargo.lock.
//! The bundler does not build: it attests an existing binary, and
//! `startedOn`/`finishedOn` are the bundling run's.

use serde_json::{json, Map, Value};

/// The in-toto Statement `_type`.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance v1 `predicateType`.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The `buildDefinition.buildType` this bundler writes.
pub const BUILD_TYPE: &str = "https://bizra.dev/release/cargo-build/v1";
/// The `runDetails.builder.id` of this bundler.
pub const BUILDER_ID: &str = "https://bizra.dev/release/bundler/v1";

/// What `git` says about the workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitInfo {
    /// `git rev-parse HEAD`.
    pub commit: String,
    /// Tracked files differ from the commit (`git status --porcelain --untracked-files=no`).
    pub dirty: bool,
    /// `git remote get-url origin`, only when it is a URL (a local path is not recorded).
    pub remote: Option<String>,
}

/// Everything the provenance statement records.
pub struct ProvenanceInput<'a> {
    /// Subject name of the binary (`bizra`).
    pub binary_name: &'a str,
    /// Lower-case hex SHA-256 of the binary.
    pub binary_sha256: &'a str,
    /// `(file name, sha256)` of the image tarball.
    pub image: Option<(&'a str, &'a str)>,
    /// Version of the bundled release (the workspace version).
    pub version: &'a str,
    /// Target triple the binary is for.
    pub target: &'a str,
    /// Cargo profile taken from the binary's path, or `unknown`.
    pub profile: &'a str,
    /// The workspace's git state, if known.
    pub git: Option<&'a GitInfo>,
    /// Lower-case hex SHA-256 of Cargo.lock (a resolved dependency).
    pub cargo_lock_sha256: &'a str,
    /// First line of `rustc -vV`, if known.
    pub rustc_version: Option<&'a str>,
    /// First line of `cargo -V`, if known.
    pub cargo_version: Option<&'a str>,
    /// `urn:uuid:` of this bundling run (`runDetails.metadata.invocationId`).
    pub invocation_id: &'a str,
    /// When the bundling run started, RFC 3339 UTC.
    pub started_on: &'a str,
    /// When the bundling run finished, RFC 3339 UTC.
    pub finished_on: &'a str,
}

/// The statement as pretty JSON with a final newline (the bytes that are signed).
pub fn statement(p: &ProvenanceInput) -> Vec<u8> {
    let mut subjects = vec![json!({"name": p.binary_name, "digest": {"sha256": p.binary_sha256}})];
    if let Some((name, sha)) = p.image {
        subjects.push(json!({"name": name, "digest": {"sha256": sha}}));
    }

    let mut external = Map::new();
    external.insert("package".into(), json!("bizra-cli"));
    external.insert("binary".into(), json!(p.binary_name));
    external.insert("version".into(), json!(p.version));
    external.insert("target".into(), json!(p.target));
    external.insert("profile".into(), json!(p.profile));
    if let Some(g) = p.git {
        let mut source = Map::new();
        if let Some(r) = &g.remote {
            source.insert("uri".into(), json!(format!("git+{r}")));
        }
        source.insert("gitCommit".into(), json!(g.commit));
        source.insert("dirty".into(), json!(g.dirty));
        external.insert("source".into(), Value::Object(source));
    }

    let mut internal = Map::new();
    internal.insert(
        "bundler".into(),
        json!(format!("bizra-release {}", env!("CARGO_PKG_VERSION"))),
    );
    if let Some(v) = p.rustc_version {
        internal.insert("rustc".into(), json!(v));
    }
    if let Some(v) = p.cargo_version {
        internal.insert("cargo".into(), json!(v));
    }

    let mut resolved = Vec::new();
    if let Some(g) = p.git {
        let mut rd = Map::new();
        rd.insert("name".into(), json!("source"));
        if let Some(r) = &g.remote {
            rd.insert("uri".into(), json!(format!("git+{r}@{}", g.commit)));
        }
        rd.insert("digest".into(), json!({"gitCommit": g.commit}));
        resolved.push(Value::Object(rd));
    }
    resolved.push(json!({"name": "Cargo.lock", "digest": {"sha256": p.cargo_lock_sha256}}));

    let st = json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": internal,
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID},
                "metadata": {
                    "invocationId": p.invocation_id,
                    "startedOn": p.started_on,
                    "finishedOn": p.finished_on,
                },
            },
        },
    });
    let mut out = serde_json::to_vec_pretty(&st).expect("a statement serializes");
    out.push(b'\n');
    out
}

/// The build profile from a binary's path: the directory holding it when that
/// sits in a `target` directory (`target/release/bizra`,
/// `target/<triple>/release/bizra`), else `unknown`.
pub fn profile_from_path(binary: &std::path::Path) -> String {
    let dirs: Vec<String> = binary
        .ancestors()
        .skip(1)
        .take(3)
        .filter_map(|a| a.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    match dirs.as_slice() {
        [profile, t, ..] if t == "target" => profile.clone(),
        [profile, _triple, t] if t == "target" => profile.clone(),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn statement_shape() {
        let git = GitInfo {
            commit: "c".repeat(40),
            dirty: false,
            remote: Some("https://example.org/bizra.git".into()),
        };
        let bytes = statement(&ProvenanceInput {
            binary_name: "bizra",
            binary_sha256: &"a".repeat(64),
            image: Some(("bizra-image.tar", &"b".repeat(64))),
            version: "0.1.0",
            target: "x86_64-unknown-linux-gnu",
            profile: "release",
            git: Some(&git),
            cargo_lock_sha256: &"d".repeat(64),
            rustc_version: Some("rustc 1.95.0"),
            cargo_version: None,
            invocation_id: "urn:uuid:00000000-0000-4000-8000-000000000000",
            started_on: "2026-01-01T00:00:00Z",
            finished_on: "2026-01-01T00:00:01Z",
        });
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["_type"], STATEMENT_TYPE);
        assert_eq!(v["predicateType"], PREDICATE_TYPE);
        assert_eq!(
            v["subject"][0],
            json!({"name": "bizra", "digest": {"sha256": "a".repeat(64)}})
        );
        assert_eq!(v["subject"][1]["name"], "bizra-image.tar");
        let bd = &v["predicate"]["buildDefinition"];
        assert_eq!(bd["buildType"], BUILD_TYPE);
        assert_eq!(bd["externalParameters"]["source"]["gitCommit"], "c".repeat(40));
        assert_eq!(bd["resolvedDependencies"][0]["digest"]["gitCommit"], "c".repeat(40));
        assert_eq!(
            bd["resolvedDependencies"][1],
            json!({"name": "Cargo.lock", "digest": {"sha256": "d".repeat(64)}})
        );
        assert_eq!(v["predicate"]["runDetails"]["builder"]["id"], BUILDER_ID);
    }

    #[test]
    fn profile_from_paths() {
        assert_eq!(profile_from_path(Path::new("/w/target/release/bizra")), "release");
        assert_eq!(
            profile_from_path(Path::new("/w/target/x86_64-unknown-linux-gnu/release/bizra")),
            "release"
        );
        assert_eq!(profile_from_path(Path::new("target/debug/bizra")), "debug");
        assert_eq!(profile_from_path(Path::new("/usr/bin/bizra")), "unknown");
        assert_eq!(profile_from_path(Path::new("bizra")), "unknown");
    }
}
