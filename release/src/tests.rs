//! Bundle round trip and tampering: a bundle built from a small fake binary,
//! a canned `cargo metadata` output and Cargo.lock (no cargo is run).

use crate::bundle::{write_bundle, BuildInfo, BundleError, BundleRequest};
use crate::dsse::{Envelope, MANIFEST_TYPE, PROVENANCE_TYPE, SBOM_TYPE};
use crate::manifest::Manifest;
use crate::names;
use crate::provenance::GitInfo;
use crate::verify::{verify_bundle, VerifyError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bizra_consensus::signing::Signer;
use std::path::{Path, PathBuf};

const METADATA: &[u8] = include_bytes!("../tests/fixtures/metadata.json");
const LOCK: &[u8] = include_bytes!("../tests/fixtures/Cargo.lock");

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    out: PathBuf,
    signer: Signer,
}

fn info() -> BuildInfo {
    BuildInfo {
        metadata_json: METADATA.to_vec(),
        cargo_lock: LOCK.to_vec(),
        target: "x86_64-unknown-linux-gnu".into(),
        git: Some(GitInfo {
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            dirty: false,
            remote: None,
        }),
        rustc_version: Some("rustc 1.95.0".into()),
        cargo_version: None,
    }
}

fn inputs() -> (tempfile::TempDir, BundleRequest) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let src = root.join("src");
    std::fs::create_dir_all(src.join("target/release")).unwrap();
    let binary = src.join("target/release/bizra");
    std::fs::write(&binary, b"\x7fELF fake bizra binary \x00\x01\x02 for the bundle test").unwrap();
    std::fs::write(
        src.join("wq_proof.json"),
        br#"{"version": "wq-proof/1", "height": 3, "agreement": "B3/B3/B3"}"#,
    )
    .unwrap();
    std::fs::write(src.join("attestation.json"), br#"{"version": "poi-attestation/1"}"#).unwrap();
    std::fs::write(src.join("consensus.json"), br#"{"bench": "consensus", "ops": 1000}"#).unwrap();
    std::fs::write(src.join("sync.json"), br#"{"bench": "sync"}"#).unwrap();
    std::fs::write(src.join("bizra-image.tar"), vec![7u8; 4096]).unwrap();
    let req = BundleRequest {
        out: root.join("bundle"),
        binary,
        image_tar: Some(src.join("bizra-image.tar")),
        wq_proof: Some(src.join("wq_proof.json")),
        attestation: Some(src.join("attestation.json")),
        bench: vec![src.join("consensus.json"), src.join("sync.json")],
    };
    (tmp, req)
}

fn fixture() -> Fixture {
    let (tmp, req) = inputs();
    let signer = Signer::from_secret([42u8; 32]);
    let summary = write_bundle(&req, &info(), &signer).unwrap();
    assert_eq!(summary.files, 7);
    assert_eq!(summary.components, 6);
    Fixture {
        root: tmp.path().to_path_buf(),
        _tmp: tmp,
        out: req.out,
        signer,
    }
}

fn flip_byte(p: &Path, at: usize) {
    let mut b = std::fs::read(p).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x01;
    std::fs::write(p, b).unwrap();
}

fn expect_bad(f: &Fixture, file: &str, reason: &str) {
    let err = verify_bundle(&f.out, &f.signer.public_key()).unwrap_err();
    assert_eq!(err.file(), Some(file), "{err}");
    assert!(err.to_string().contains(reason), "{err}");
}

#[test]
fn a_fresh_bundle_verifies_and_holds_everything() {
    let f = fixture();
    let s = verify_bundle(&f.out, &f.signer.public_key()).unwrap();
    assert_eq!(s.files, 7);
    assert_eq!(s.external, 1);
    assert_eq!(s.signer, f.signer.id());

    let bin = std::fs::read(f.out.join(names::BINARY)).unwrap();
    assert_eq!(bin, std::fs::read(f.root.join("src/target/release/bizra")).unwrap());
    assert_eq!(s.binary_sha256, crate::sha256_hex(&bin));

    let m: Manifest = serde_json::from_slice(&std::fs::read(f.out.join(names::MANIFEST)).unwrap()).unwrap();
    let paths: Vec<&str> = m.files.iter().filter_map(|e| e.path.as_deref()).collect();
    assert_eq!(
        paths,
        [
            "attestation.json",
            "bench/consensus.json",
            "bench/sync.json",
            "bin/bizra",
            "provenance.intoto.json",
            "sbom.cdx.json",
            "wq_proof.json"
        ]
    );
    let ext = m.files.iter().find(|e| e.external).unwrap();
    assert_eq!(ext.name.as_deref(), Some("bizra-image.tar"));
    assert_eq!(ext.size, 4096);
    assert!(!f.out.join("bizra-image.tar").exists(), "the image is not copied");
    assert_eq!(m.signer, f.signer.id());

    // The provenance envelope is the standard in-toto DSSE type; subjects are the binary and the image.
    let env = Envelope::from_json(&std::fs::read(f.out.join(names::PROVENANCE_DSSE)).unwrap()).unwrap();
    assert_eq!(env.payload_type, "application/vnd.in-toto+json");
    let st: serde_json::Value =
        serde_json::from_slice(&env.open(PROVENANCE_TYPE, &f.signer.public_key()).unwrap()).unwrap();
    assert_eq!(st["subject"][0]["digest"]["sha256"], s.binary_sha256);
    assert_eq!(st["subject"][1]["name"], "bizra-image.tar");
    assert_eq!(st["subject"][1]["digest"]["sha256"], crate::sha256_hex(&[7u8; 4096]));
    let bd = &st["predicate"]["buildDefinition"];
    assert_eq!(bd["externalParameters"]["profile"], "release");
    assert_eq!(
        bd["resolvedDependencies"][0]["digest"]["gitCommit"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(
        bd["resolvedDependencies"][1]["digest"]["sha256"],
        crate::sha256_hex(LOCK)
    );

    // The tarball holds the same files, in sorted order, under bundle/.
    let tar = std::fs::File::open(f.root.join("bundle.tar")).unwrap();
    let mut a = tar::Archive::new(tar);
    let names_in_tar: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut sorted = names_in_tar.clone();
    sorted.sort();
    assert_eq!(names_in_tar, sorted);
    for p in paths.iter().chain(names::UNLISTED.iter()) {
        assert!(names_in_tar.contains(&format!("bundle/{p}")), "{p} not in the tarball");
    }
    let mut a = tar::Archive::new(std::fs::File::open(f.root.join("bundle.tar")).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("bundle/bin/bizra") {
            assert_eq!(e.header().mode().unwrap(), 0o755);
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut got).unwrap();
            assert_eq!(got, bin);
        }
    }
}

#[test]
fn one_changed_byte_in_the_binary_is_named() {
    let f = fixture();
    flip_byte(&f.out.join(names::BINARY), 10);
    expect_bad(&f, "bin/bizra", "sha256 mismatch (manifest says");
}

#[test]
fn one_changed_byte_in_a_copied_json_is_named() {
    let f = fixture();
    flip_byte(&f.out.join(names::WQ_PROOF), 5);
    expect_bad(&f, "wq_proof.json", "sha256 mismatch");
}

#[test]
fn one_changed_byte_in_a_bench_file_is_named() {
    let f = fixture();
    flip_byte(&f.out.join("bench/sync.json"), 3);
    expect_bad(&f, "bench/sync.json", "sha256 mismatch");
}

#[test]
fn one_changed_byte_in_a_signed_file_is_named() {
    for (file, env) in [
        (names::SBOM, names::SBOM_DSSE),
        (names::PROVENANCE, names::PROVENANCE_DSSE),
        (names::MANIFEST, names::MANIFEST_DSSE),
    ] {
        let f = fixture();
        flip_byte(&f.out.join(file), 40);
        expect_bad(&f, file, &format!("differs from the payload signed in {env}"));
    }
}

#[test]
fn one_flipped_signature_bit_names_the_envelope() {
    for env_name in [names::MANIFEST_DSSE, names::PROVENANCE_DSSE, names::SBOM_DSSE] {
        let f = fixture();
        let p = f.out.join(env_name);
        let mut env = Envelope::from_json(&std::fs::read(&p).unwrap()).unwrap();
        let mut sig = STANDARD.decode(&env.signatures[0].sig).unwrap();
        sig[17] ^= 0x04;
        env.signatures[0].sig = STANDARD.encode(&sig);
        std::fs::write(&p, env.to_json()).unwrap();
        expect_bad(&f, env_name, "signature does not verify");
    }
}

#[test]
fn another_key_fails() {
    let f = fixture();
    let other = Signer::from_secret([43u8; 32]);
    let err = verify_bundle(&f.out, &other.public_key()).unwrap_err();
    assert_eq!(err.file(), Some(names::MANIFEST_DSSE), "{err}");
    assert!(err.to_string().contains("not by the given key"), "{err}");

    // Re-signed by another key with the keyid changed: still not the given key.
    let p = f.out.join(names::MANIFEST_DSSE);
    let manifest = std::fs::read(f.out.join(names::MANIFEST)).unwrap();
    std::fs::write(&p, Envelope::sign(&other, MANIFEST_TYPE, &manifest).to_json()).unwrap();
    expect_bad(&f, names::MANIFEST_DSSE, "not by the given key");
}

#[test]
fn a_signature_by_another_key_under_the_right_keyid_fails() {
    let f = fixture();
    let other = Signer::from_secret([43u8; 32]);
    let p = f.out.join(names::SBOM_DSSE);
    let sbom = std::fs::read(f.out.join(names::SBOM)).unwrap();
    let mut env = Envelope::sign(&other, SBOM_TYPE, &sbom);
    env.signatures[0].keyid = f.signer.id().to_string();
    std::fs::write(&p, env.to_json()).unwrap();
    expect_bad(&f, names::SBOM_DSSE, "signature does not verify");
}

#[test]
fn an_unlisted_file_is_named() {
    let f = fixture();
    std::fs::write(f.out.join("bench/extra.json"), b"{}").unwrap();
    expect_bad(&f, "bench/extra.json", "not listed in manifest.json");
    let f = fixture();
    std::fs::write(f.out.join("notes.txt"), b"hi").unwrap();
    expect_bad(&f, "notes.txt", "not listed in manifest.json");
}

#[test]
fn a_missing_listed_file_is_named() {
    let f = fixture();
    std::fs::remove_file(f.out.join(names::ATTESTATION)).unwrap();
    expect_bad(&f, "attestation.json", "missing");
    let f = fixture();
    std::fs::remove_file(f.out.join(names::SBOM_DSSE)).unwrap();
    expect_bad(&f, names::SBOM_DSSE, "missing");
}

/// Rewrites a signed file consistently: the file, its envelope, its manifest
/// entry and the manifest's envelope, all signed by the release key.
fn resign(f: &Fixture, file: &str, ptype: &str, env_name: &str, bytes: &[u8]) {
    std::fs::write(f.out.join(file), bytes).unwrap();
    std::fs::write(f.out.join(env_name), Envelope::sign(&f.signer, ptype, bytes).to_json()).unwrap();
    let mut m: Manifest = serde_json::from_slice(&std::fs::read(f.out.join(names::MANIFEST)).unwrap()).unwrap();
    let e = m.files.iter_mut().find(|e| e.path.as_deref() == Some(file)).unwrap();
    e.sha256 = crate::sha256_hex(bytes);
    e.size = bytes.len() as u64;
    let mj = m.to_json();
    std::fs::write(f.out.join(names::MANIFEST), &mj).unwrap();
    std::fs::write(
        f.out.join(names::MANIFEST_DSSE),
        Envelope::sign(&f.signer, MANIFEST_TYPE, &mj).to_json(),
    )
    .unwrap();
}

#[test]
fn the_provenance_subject_must_be_the_binary() {
    let f = fixture();
    // Sanity: re-signing the unchanged statement keeps the bundle valid.
    let st = std::fs::read(f.out.join(names::PROVENANCE)).unwrap();
    resign(&f, names::PROVENANCE, PROVENANCE_TYPE, names::PROVENANCE_DSSE, &st);
    verify_bundle(&f.out, &f.signer.public_key()).unwrap();

    let mut v: serde_json::Value = serde_json::from_slice(&st).unwrap();
    v["subject"][0]["digest"]["sha256"] = "0".repeat(64).into();
    let changed = serde_json::to_vec_pretty(&v).unwrap();
    resign(&f, names::PROVENANCE, PROVENANCE_TYPE, names::PROVENANCE_DSSE, &changed);
    expect_bad(&f, names::PROVENANCE, "subject bizra has sha256 0000");
}

#[test]
fn the_sbom_must_describe_the_binary() {
    let f = fixture();
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(f.out.join(names::SBOM)).unwrap()).unwrap();
    v["metadata"]["component"]["hashes"][0]["content"] = "0".repeat(64).into();
    resign(
        &f,
        names::SBOM,
        SBOM_TYPE,
        names::SBOM_DSSE,
        &serde_json::to_vec_pretty(&v).unwrap(),
    );
    expect_bad(&f, names::SBOM, "metadata.component SHA-256");
}

#[test]
fn a_manifest_path_escaping_the_bundle_is_refused() {
    let f = fixture();
    let mut m: Manifest = serde_json::from_slice(&std::fs::read(f.out.join(names::MANIFEST)).unwrap()).unwrap();
    m.files[0].path = Some("../src/wq_proof.json".into());
    let mj = m.to_json();
    std::fs::write(f.out.join(names::MANIFEST), &mj).unwrap();
    std::fs::write(
        f.out.join(names::MANIFEST_DSSE),
        Envelope::sign(&f.signer, MANIFEST_TYPE, &mj).to_json(),
    )
    .unwrap();
    expect_bad(&f, names::MANIFEST, "is not allowed");
}

#[test]
fn bad_inputs_write_nothing() {
    let signer = Signer::from_secret([1u8; 32]);

    let (_t, mut req) = inputs();
    req.binary = req.binary.with_file_name("nope");
    assert!(matches!(write_bundle(&req, &info(), &signer), Err(BundleError::Input(m)) if m.contains("binary")));
    assert!(!req.out.exists());

    let (_t, req) = inputs();
    std::fs::write(req.wq_proof.as_ref().unwrap(), b"not json").unwrap();
    assert!(matches!(write_bundle(&req, &info(), &signer), Err(BundleError::Input(m)) if m.contains("not JSON")));
    assert!(!req.out.exists());

    let (_t, mut req) = inputs();
    req.bench.push(req.bench[0].clone());
    assert!(
        matches!(write_bundle(&req, &info(), &signer), Err(BundleError::Input(m)) if m.contains("two bench files"))
    );

    let (_t, req) = inputs();
    std::fs::create_dir_all(&req.out).unwrap();
    std::fs::write(req.out.join("old"), b"x").unwrap();
    assert!(matches!(write_bundle(&req, &info(), &signer), Err(BundleError::Input(m)) if m.contains("not empty")));
    assert_eq!(std::fs::read_dir(&req.out).unwrap().count(), 1);

    let (_t, req) = inputs();
    std::fs::write(crate::bundle::tar_path(&req.out), b"x").unwrap();
    assert!(
        matches!(write_bundle(&req, &info(), &signer), Err(BundleError::Input(m)) if m.contains("bundle.tar exists"))
    );
    assert!(!req.out.exists());

    // An empty --out directory is fine.
    let (_t, req) = inputs();
    std::fs::create_dir_all(&req.out).unwrap();
    write_bundle(&req, &info(), &signer).unwrap();
    verify_bundle(&req.out, &signer.public_key()).unwrap();

    // A Cargo.lock without the registry checksums is bad input.
    let (_t, req) = inputs();
    let mut i = info();
    i.cargo_lock = b"version = 4\n".to_vec();
    assert!(matches!(write_bundle(&req, &i, &signer), Err(BundleError::Input(m)) if m.contains("checksum")));
    assert!(!req.out.exists());
}

#[test]
fn a_missing_bundle_dir_is_bad_input() {
    let signer = Signer::from_secret([1u8; 32]);
    let err = verify_bundle(Path::new("/nonexistent/bizra-bundle"), &signer.public_key()).unwrap_err();
    assert!(matches!(err, VerifyError::Input(_)));
}
