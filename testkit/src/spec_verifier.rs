//! The independent Python spec verifier (`tests/spec_verifier/verify_wq_proof.py`),
//! run on an artifact as the tests of `bizra verify` and `bizra wq-proof` do.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The spec verifier script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/spec_verifier/verify_wq_proof.py")
}

/// A fresh, empty temporary directory `bizra-wqproof-test-<tag>-<pid>`.
pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bizra-wqproof-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// True when python3 with `cryptography` is available; prints a notice otherwise.
pub fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("NOTICE: skipping the Python spec verifier: `python3 -c 'import cryptography'` fails");
    }
    ok
}

/// Exit code of the spec verifier on (proof, genesis): 0 valid, 1 invalid, 2 malformed.
pub fn python_verdict(tag: &str, proof: &[u8], genesis: &[u8]) -> i32 {
    let d = tmpdir(&format!("py-{tag}"));
    std::fs::write(d.join("wq_proof.json"), proof).unwrap();
    std::fs::write(d.join("genesis.json"), genesis).unwrap();
    let out = Command::new("python3")
        .arg(script())
        .arg(d.join("wq_proof.json"))
        .arg("--genesis")
        .arg(d.join("genesis.json"))
        .output()
        .expect("run python3");
    let _ = std::fs::remove_dir_all(&d);
    eprintln!(
        "spec verifier [{tag}]: exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out.status.code().unwrap_or(-1)
}
