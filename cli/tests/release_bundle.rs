//! `bizra release bundle` and `bizra verify bundle` end to end, with the real
//! binary and the real `cargo metadata` of this workspace (offline).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bizra() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bizra"));
    c.env("CARGO", env!("CARGO"));
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = c.output().expect("run bizra");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn tmpdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("bizra-release-bundle-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn flip_byte_at(p: &Path, at: u64) {
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(p).unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x01;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b).unwrap();
}

#[test]
fn bundle_verify_and_tamper_with_the_real_binary() {
    let dir = tmpdir();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let key = dir.join("release.key");
    let (code, out, err) = run(bizra().args(["keygen", "--out"]).arg(&key));
    assert_eq!(code, 0, "keygen: {err}");
    let pubkey = out.trim().to_string();
    assert_eq!(pubkey.len(), 64);

    let wq = dir.join("wq_proof.json");
    std::fs::write(&wq, br#"{"version": "wq-proof/1", "height": 3}"#).unwrap();
    let bench = dir.join("consensus.json");
    std::fs::write(&bench, br#"{"bench": "consensus"}"#).unwrap();

    let bundle = dir.join("bundle");
    let (code, out, err) = run(bizra()
        .args(["release", "bundle", "--out"])
        .arg(&bundle)
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_bizra"))
        .arg("--key")
        .arg(&key)
        .arg("--workspace")
        .arg(workspace)
        .arg("--wq-proof")
        .arg(&wq)
        .arg("--bench")
        .arg(&bench));
    assert_eq!(code, 0, "release bundle: {out}{err}");
    assert!(out.starts_with("release bundle of bizra "), "{out}");
    assert!(dir.join("bundle.tar").is_file());

    // The SBOM is of the real graph: normal dependencies of bizra-cli (the root, not listed), not dev-only ones.
    let sbom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("sbom.cdx.json")).unwrap()).unwrap();
    let names: Vec<&str> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "bizra-consensus",
        "bizra-node",
        "bizra-release",
        "ed25519-dalek",
        "libp2p",
        "cyclonedx-bom",
    ] {
        assert!(names.contains(&n), "{n} missing from the SBOM");
    }
    for n in [
        "proptest",
        "criterion",
        "tempfile",
        "bizra-cli",
        "bizra-tests",
        "bizra-sim",
    ] {
        assert!(!names.contains(&n), "{n} is not a normal dependency of the binary");
    }

    // Verify with the hex key and with the key file.
    let (code, out, err) = run(bizra().args(["verify", "bundle"]).arg(&bundle).args(["--key", &pubkey]));
    assert_eq!(code, 0, "verify bundle: {out}{err}");
    assert!(out.starts_with("bundle OK"), "{out}");
    let (code, _, err) = run(bizra().args(["verify", "bundle"]).arg(&bundle).arg("--key").arg(&key));
    assert_eq!(code, 0, "verify bundle with the key file: {err}");

    // Usage errors: exit 2.
    let (code, _, err) = run(bizra().args(["verify", "bundle"]).arg(&bundle));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--key"), "{err}");
    let (code, _, err) = run(bizra().args(["verify"]).arg(&wq));
    assert_eq!(code, 2, "a missing --genesis stays a usage error: {err}");
    let (code, _, err) = run(bizra()
        .args(["release", "bundle", "--out"])
        .arg(&bundle)
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_bizra"))
        .arg("--key")
        .arg(&key)
        .arg("--workspace")
        .arg(workspace));
    assert_eq!(code, 2, "a non-empty --out is refused: {err}");

    // One changed byte in the copied binary: exit 1 naming bin/bizra.
    let len = std::fs::metadata(bundle.join("bin/bizra")).unwrap().len();
    flip_byte_at(&bundle.join("bin/bizra"), len / 2);
    let (code, out, err) = run(bizra().args(["verify", "bundle"]).arg(&bundle).args(["--key", &pubkey]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("error: bin/bizra: sha256 mismatch (manifest says"),
        "{err}"
    );

    std::fs::remove_dir_all(&dir).unwrap();
}
