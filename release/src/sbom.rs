//! The binary's CycloneDX 1.5 SBOM, built with the `cyclonedx-bom` models.
//!
//! Components are the packages reachable from the root package (`bizra-cli`)
//! over NORMAL dependency edges of `cargo metadata`'s resolve graph (dev and
//! build edges are not followed), for the platform the metadata was filtered
//! to. Proc-macro crates are normal dependencies by kind and are included.
//! An optional dependency that no enabled feature activates (cargo's resolve
//! graph keeps those named by weak `dep?/feat` features) is not followed.
//! Each component: type library, name, version, purl `pkg:cargo/<name>@<version>`
//! (also its bom-ref), the SPDX license expression of the package (a legacy
//! `A/B` form is read as `A OR B`; an unparsable one is kept as a license
//! name), and the SHA-256 `checksum` of Cargo.lock for registry packages.
//! Workspace-local and git packages have no checksum and get no hash.
//! `metadata.component` is the binary (type application) with the SHA-256 of
//! the actual file. `dependencies` lists, for the binary and every component,
//! its normal dependencies.

use cyclonedx_bom::external_models::date_time::DateTime;
use cyclonedx_bom::external_models::normalized_string::NormalizedString;
use cyclonedx_bom::external_models::spdx::SpdxExpression;
use cyclonedx_bom::external_models::uri::Purl;
use cyclonedx_bom::models::bom::{Bom, SpecVersion, UrnUuid};
use cyclonedx_bom::models::component::{Classification, Component, Components};
use cyclonedx_bom::models::dependency::{Dependencies, Dependency};
use cyclonedx_bom::models::hash::{Hash, HashAlgorithm, HashValue, Hashes};
use cyclonedx_bom::models::license::{License, LicenseChoice, Licenses};
use cyclonedx_bom::models::metadata::Metadata;
use cyclonedx_bom::models::tool::Tools;
use cyclonedx_bom::validation::Validate;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// What the SBOM is built from.
pub struct SbomInput<'a> {
    /// `cargo metadata --format-version 1 --filter-platform <triple>` output.
    pub metadata_json: &'a [u8],
    /// The workspace's Cargo.lock.
    pub cargo_lock: &'a [u8],
    /// The package whose binary this is (`bizra-cli`).
    pub root_package: &'a str,
    /// The binary's name (`bizra`).
    pub binary_name: &'a str,
    /// Lower-case hex SHA-256 of the binary file.
    pub binary_sha256: &'a str,
    /// RFC 3339 timestamp.
    pub created: &'a str,
}

/// The serialized, validated SBOM.
#[derive(Debug)]
pub struct SbomOutput {
    /// The SBOM's JSON bytes (the bytes that are signed).
    pub json: Vec<u8>,
    /// The root package's version (the workspace version).
    pub version: String,
    /// `(name, version)` of every component, in SBOM order.
    pub components: Vec<(String, String)>,
}

/// Why no SBOM could be made.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// The metadata or Cargo.lock cannot be used (bad input).
    #[error("{0}")]
    Input(String),
    /// The BOM fails cyclonedx-bom's validation (a check failed).
    #[error("the SBOM fails CycloneDX 1.5 validation: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct CargoMetadata {
    packages: Vec<MetaPackage>,
    workspace_members: Vec<String>,
    resolve: Option<Resolve>,
}

#[derive(Deserialize)]
struct MetaPackage {
    id: String,
    name: String,
    version: String,
    license: Option<String>,
    source: Option<String>,
    /// The package's declared dependencies (its Cargo.toml).
    #[serde(default)]
    dependencies: Vec<MetaDep>,
    /// The package's `[features]` table.
    #[serde(default)]
    features: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct MetaDep {
    name: String,
    rename: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    optional: bool,
}

#[derive(Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Deserialize)]
struct Node {
    id: String,
    #[serde(default)]
    deps: Vec<NodeDep>,
    /// The features enabled on this package.
    #[serde(default)]
    features: Vec<String>,
}

#[derive(Deserialize)]
struct NodeDep {
    pkg: String,
    #[serde(default)]
    dep_kinds: Vec<DepKind>,
}

#[derive(Deserialize)]
struct DepKind {
    /// `null` for a normal dependency, `"dev"` or `"build"` otherwise.
    kind: Option<String>,
}

impl NodeDep {
    fn is_normal(&self) -> bool {
        self.dep_kinds.iter().any(|k| k.kind.is_none())
    }
}

/// `(name, version, source)` -> checksum, from Cargo.lock's `[[package]]` tables.
fn lock_checksums(lock: &[u8]) -> Result<HashMap<(String, String, String), String>, SbomError> {
    let text = std::str::from_utf8(lock).map_err(|_| SbomError::Input("Cargo.lock is not UTF-8".into()))?;
    let v: toml::Value = toml::from_str(text).map_err(|e| SbomError::Input(format!("Cargo.lock: {e}")))?;
    let mut out = HashMap::new();
    let Some(pkgs) = v.get("package").and_then(|p| p.as_array()) else {
        return Ok(out);
    };
    for p in pkgs {
        let s = |k: &str| p.get(k).and_then(|x| x.as_str()).map(str::to_string);
        if let (Some(name), Some(version), Some(source), Some(sum)) =
            (s("name"), s("version"), s("source"), s("checksum"))
        {
            out.insert((name, version, source), sum);
        }
    }
    Ok(out)
}

/// Whether the normal edge `parent -> dep` is built. Cargo's dependency
/// resolver (whose graph `cargo metadata` reports, and Cargo.lock records)
/// keeps an optional dependency named only by a weak feature (`dep?/feat`)
/// even when no enabled feature activates it; such a crate is never compiled.
/// The edge is kept unless every normal declaration of `dep` in the parent is
/// optional and no enabled feature of the parent activates it (the implicit
/// feature `key`, or `dep:key` / `key/feat` in an enabled feature's list).
/// Anything not understood is kept: an SBOM may list too much, not too little.
fn edge_is_built(parent: &MetaPackage, parent_node: &Node, dep: &MetaPackage) -> bool {
    let decls: Vec<&MetaDep> = parent
        .dependencies
        .iter()
        .filter(|d| d.name == dep.name && d.kind.is_none())
        .collect();
    if decls.is_empty() || decls.iter().any(|d| !d.optional) {
        return true;
    }
    decls.iter().any(|d| {
        let key = d.rename.as_deref().unwrap_or(&d.name);
        let dep_feature = format!("dep:{key}");
        let strong = format!("{key}/");
        parent_node.features.iter().any(|f| {
            f == key
                || parent
                    .features
                    .get(f)
                    .is_some_and(|vals| vals.iter().any(|v| *v == dep_feature || v.starts_with(&strong)))
        })
    })
}

fn license_choice(expr: &str) -> LicenseChoice {
    if let Ok(e) = SpdxExpression::try_from(expr.to_string()) {
        return LicenseChoice::Expression(e);
    }
    if let Ok(e) = SpdxExpression::parse_lax(expr.to_string()) {
        return LicenseChoice::Expression(e);
    }
    LicenseChoice::License(License::named_license(expr))
}

fn is_registry(source: &str) -> bool {
    source.starts_with("registry+") || source.starts_with("sparse+")
}

/// Builds, validates and serializes the SBOM.
pub fn build(input: &SbomInput) -> Result<SbomOutput, SbomError> {
    let meta: CargoMetadata = serde_json::from_slice(input.metadata_json)
        .map_err(|e| SbomError::Input(format!("cargo metadata output: {e}")))?;
    let resolve = meta
        .resolve
        .as_ref()
        .ok_or_else(|| SbomError::Input("cargo metadata output has no resolve graph".into()))?;
    let packages: HashMap<&str, &MetaPackage> = meta.packages.iter().map(|p| (p.id.as_str(), p)).collect();
    let nodes: HashMap<&str, &Node> = resolve.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let root = meta
        .workspace_members
        .iter()
        .filter_map(|id| packages.get(id.as_str()))
        .find(|p| p.name == input.root_package)
        .ok_or_else(|| {
            SbomError::Input(format!(
                "package {} is not a member of the workspace",
                input.root_package
            ))
        })?;

    // Normal edges of a node that are built, restricted to packages the metadata describes.
    let normal_deps = |id: &str| -> Vec<&str> {
        let (Some(n), Some(parent)) = (nodes.get(id), packages.get(id)) else {
            return Vec::new();
        };
        let mut v: Vec<&str> = n
            .deps
            .iter()
            .filter(|d| d.is_normal())
            .filter(|d| {
                packages
                    .get(d.pkg.as_str())
                    .is_some_and(|dep| edge_is_built(parent, n, dep))
            })
            .map(|d| d.pkg.as_str())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };

    // Everything reachable from the root over normal edges.
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    let mut queue: VecDeque<&str> = VecDeque::from([root.id.as_str()]);
    if !nodes.contains_key(root.id.as_str()) {
        return Err(SbomError::Input(format!(
            "cargo metadata resolve graph has no node for {}",
            input.root_package
        )));
    }
    while let Some(id) = queue.pop_front() {
        for d in normal_deps(id) {
            if d != root.id && reached.insert(d) {
                queue.push_back(d);
            }
        }
    }

    let checksums = lock_checksums(input.cargo_lock)?;
    let mut ordered: Vec<&MetaPackage> = reached.iter().map(|id| packages[id]).collect();
    ordered.sort_by(|a, b| (&a.name, &a.version, &a.id).cmp(&(&b.name, &b.version, &b.id)));

    let root_ref = format!("{}@{}", input.binary_name, root.version);
    let mut refs: HashMap<&str, String> = HashMap::new();
    let mut used: BTreeSet<String> = BTreeSet::from([root_ref.clone()]);
    let mut components = Vec::with_capacity(ordered.len());
    let mut listed = Vec::with_capacity(ordered.len());
    for p in &ordered {
        let purl = Purl::new("cargo", &p.name, &p.version)
            .map_err(|e| SbomError::Invalid(format!("purl of {} {}: {e}", p.name, p.version)))?;
        // The purl is the bom-ref; two packages of one name and version from
        // different sources get a numeric suffix.
        let mut bom_ref = purl.to_string();
        let mut n = 1;
        while used.contains(&bom_ref) {
            n += 1;
            bom_ref = format!("{purl}#{n}");
        }
        used.insert(bom_ref.clone());
        refs.insert(p.id.as_str(), bom_ref.clone());

        let mut c = Component::new(Classification::Library, &p.name, &p.version, Some(bom_ref));
        c.purl = Some(purl);
        c.licenses = p.license.as_deref().map(|l| Licenses(vec![license_choice(l)]));
        if let Some(source) = p.source.as_deref().filter(|s| is_registry(s)) {
            let sum = checksums
                .get(&(p.name.clone(), p.version.clone(), source.to_string()))
                .ok_or_else(|| {
                    SbomError::Input(format!(
                        "Cargo.lock has no checksum for registry package {} {}",
                        p.name, p.version
                    ))
                })?;
            c.hashes = Some(Hashes(vec![Hash {
                alg: HashAlgorithm::SHA_256,
                content: HashValue(sum.clone()),
            }]));
        }
        components.push(c);
        listed.push((p.name.clone(), p.version.clone()));
    }

    // Each node's normal dependencies as bom-refs, sorted.
    let dep_refs = |id: &str| -> Vec<String> {
        let mut v: Vec<String> = normal_deps(id)
            .iter()
            .filter(|d| **d != root.id)
            .map(|d| refs[d].clone())
            .collect();
        v.sort();
        v
    };
    let mut dependencies = vec![Dependency {
        dependency_ref: root_ref.clone(),
        dependencies: dep_refs(&root.id),
    }];
    for p in &ordered {
        dependencies.push(Dependency {
            dependency_ref: refs[p.id.as_str()].clone(),
            dependencies: dep_refs(&p.id),
        });
    }

    let mut app = Component::new(
        Classification::Application,
        input.binary_name,
        &root.version,
        Some(root_ref),
    );
    app.description = Some(NormalizedString::new(&format!(
        "the {} binary of package {}",
        input.binary_name, root.name
    )));
    app.hashes = Some(Hashes(vec![Hash {
        alg: HashAlgorithm::SHA_256,
        content: HashValue(input.binary_sha256.to_string()),
    }]));
    app.licenses = root.license.as_deref().map(|l| Licenses(vec![license_choice(l)]));

    let mut tool = Component::new(
        Classification::Application,
        "bizra-release",
        env!("CARGO_PKG_VERSION"),
        None,
    );
    tool.description = Some(NormalizedString::new("bizra release bundle"));

    let timestamp = DateTime::try_from(input.created.to_string())
        .map_err(|e| SbomError::Input(format!("timestamp {}: {e}", input.created)))?;
    let bom = Bom {
        version: 1,
        serial_number: Some(UrnUuid::generate()),
        metadata: Some(Metadata {
            timestamp: Some(timestamp),
            tools: Some(Tools::Object {
                services: None,
                components: Some(Components(vec![tool])),
            }),
            component: Some(app),
            ..Metadata::default()
        }),
        components: Some(Components(components)),
        dependencies: Some(Dependencies(dependencies)),
        spec_version: SpecVersion::V1_5,
        ..Bom::default()
    };
    check(&bom)?;
    let mut json = Vec::new();
    bom.output_as_json_v1_5(&mut json)
        .map_err(|e| SbomError::Invalid(format!("JSON output: {e}")))?;
    // What is written must read back as a valid 1.5 BOM too.
    let back = Bom::parse_from_json_v1_5(json.as_slice())
        .map_err(|e| SbomError::Invalid(format!("the written JSON does not parse back: {e}")))?;
    check(&back)?;
    json.push(b'\n');
    Ok(SbomOutput {
        json,
        version: root.version.clone(),
        components: listed,
    })
}

/// cyclonedx-bom's own validation at spec version 1.5.
pub fn check(bom: &Bom) -> Result<(), SbomError> {
    let result = bom.validate_version(SpecVersion::V1_5);
    if result.passed() {
        return Ok(());
    }
    let errors: BTreeMap<String, String> = result.errors().map(|(k, v)| (k, format!("{v:?}"))).collect();
    Err(SbomError::Invalid(format!("{errors:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const METADATA: &[u8] = include_bytes!("../tests/fixtures/metadata.json");
    const LOCK: &[u8] = include_bytes!("../tests/fixtures/Cargo.lock");

    fn input<'a>(metadata: &'a [u8], lock: &'a [u8]) -> SbomInput<'a> {
        SbomInput {
            metadata_json: metadata,
            cargo_lock: lock,
            root_package: "bizra-cli",
            binary_name: "bizra",
            binary_sha256: "ab".repeat(32).leak(),
            created: "2026-01-02T03:04:05Z",
        }
    }

    #[test]
    fn components_are_the_normal_closure_with_hashes_and_licenses() {
        let out = build(&input(METADATA, LOCK)).unwrap();
        let names: Vec<&str> = out.components.iter().map(|(n, _)| n.as_str()).collect();
        // dev-only (proptest) and build-only (cc) dependencies are not in the binary;
        // serde_derive is reached through serde; the root is metadata.component;
        // noisy's optional extra is enabled by its feature "more" (dep:extra), its
        // optional phantom only named by a weak feature (phantom?/std) is not.
        assert_eq!(
            names,
            [
                "bizra-consensus",
                "ed25519-dalek",
                "extra",
                "noisy",
                "serde",
                "serde_derive"
            ]
        );
        assert_eq!(out.version, "0.1.0");

        let v: serde_json::Value = serde_json::from_slice(&out.json).unwrap();
        assert_eq!(v["bomFormat"], "CycloneDX");
        assert_eq!(v["specVersion"], "1.5");
        assert!(v["serialNumber"].as_str().unwrap().starts_with("urn:uuid:"));
        assert_eq!(v["metadata"]["timestamp"], "2026-01-02T03:04:05Z");
        let app = &v["metadata"]["component"];
        assert_eq!(app["type"], "application");
        assert_eq!(app["name"], "bizra");
        assert_eq!(app["version"], "0.1.0");
        assert_eq!(
            app["hashes"][0],
            serde_json::json!({"alg": "SHA-256", "content": "ab".repeat(32)})
        );

        let comps = v["components"].as_array().unwrap();
        let serde = comps.iter().find(|c| c["name"] == "serde").unwrap();
        assert_eq!(serde["type"], "library");
        assert_eq!(serde["purl"], "pkg:cargo/serde@1.0.200");
        assert_eq!(serde["bom-ref"], "pkg:cargo/serde@1.0.200");
        assert_eq!(serde["licenses"][0]["expression"], "MIT OR Apache-2.0");
        assert_eq!(serde["hashes"][0]["alg"], "SHA-256");
        assert_eq!(serde["hashes"][0]["content"], "1".repeat(64));
        // A legacy "A/B" license is read as "A OR B".
        let dalek = comps.iter().find(|c| c["name"] == "ed25519-dalek").unwrap();
        assert_eq!(dalek["licenses"][0]["expression"], "BSD-3-Clause OR MIT");
        // Unparsable license text is kept as a name; no license, no licenses key.
        let noisy = comps.iter().find(|c| c["name"] == "noisy").unwrap();
        assert_eq!(noisy["licenses"][0]["license"]["name"], "see LICENSE file");
        // A workspace-local crate has no checksum, so no hash; no license, no key.
        let local = comps.iter().find(|c| c["name"] == "bizra-consensus").unwrap();
        assert!(local.get("hashes").is_none());
        let derive = comps.iter().find(|c| c["name"] == "serde_derive").unwrap();
        assert!(derive.get("licenses").is_none());

        let deps = v["dependencies"].as_array().unwrap();
        let root = deps.iter().find(|d| d["ref"] == "bizra@0.1.0").unwrap();
        assert_eq!(
            root["dependsOn"],
            serde_json::json!([
                "pkg:cargo/bizra-consensus@0.1.0",
                "pkg:cargo/noisy@0.3.0",
                "pkg:cargo/serde@1.0.200"
            ])
        );
        let s = deps.iter().find(|d| d["ref"] == "pkg:cargo/serde@1.0.200").unwrap();
        assert_eq!(s["dependsOn"], serde_json::json!(["pkg:cargo/serde_derive@1.0.200"]));
        // bizra-consensus -> ed25519-dalek is normal; its dev edge to proptest is not followed.
        let c = deps
            .iter()
            .find(|d| d["ref"] == "pkg:cargo/bizra-consensus@0.1.0")
            .unwrap();
        assert_eq!(c["dependsOn"], serde_json::json!(["pkg:cargo/ed25519-dalek@2.1.1"]));
        let n = deps.iter().find(|d| d["ref"] == "pkg:cargo/noisy@0.3.0").unwrap();
        assert_eq!(n["dependsOn"], serde_json::json!(["pkg:cargo/extra@0.2.0"]));
        assert_eq!(deps.len(), 1 + comps.len());
    }

    #[test]
    fn a_registry_package_without_checksum_is_bad_input() {
        let lock = String::from_utf8(LOCK.to_vec()).unwrap();
        let lock = lock.replace(&format!("checksum = \"{}\"", "1".repeat(64)), "");
        let err = build(&input(METADATA, lock.as_bytes())).unwrap_err();
        assert!(
            matches!(err, SbomError::Input(ref m) if m.contains("serde 1.0.200")),
            "{err}"
        );
    }

    #[test]
    fn an_invalid_bom_fails_cyclonedx_validation() {
        // A hash that is not hex is caught by cyclonedx-bom's validation.
        let lock = String::from_utf8(LOCK.to_vec())
            .unwrap()
            .replace(&"1".repeat(64), "not-a-sha256");
        let err = build(&input(METADATA, lock.as_bytes())).unwrap_err();
        assert!(matches!(err, SbomError::Invalid(_)), "{err}");
    }

    #[test]
    fn an_unknown_root_is_bad_input() {
        let mut i = input(METADATA, LOCK);
        i.root_package = "nope";
        assert!(matches!(build(&i).unwrap_err(), SbomError::Input(_)));
    }
}
