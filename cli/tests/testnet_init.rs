//! `bizra testnet init|compose` and `bizra keygen` through the built binary
//! (test names start with `testnet` so `cargo test -p bizra-cli testnet` runs them all).

use bizra_consensus::genesis::Genesis;
use bizra_node::config::NodeConfig;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bizra(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bizra"))
        .args(args)
        .output()
        .expect("run bizra")
}

fn tmp(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("bizra-it-{tag}-{}-{nanos}", std::process::id()))
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn testnet_init_writes_a_self_contained_layout() {
    let out = tmp("init");
    let out_s = out.to_str().unwrap();
    let o = bizra(&[
        "testnet",
        "init",
        "--validators",
        "5",
        "--out",
        out_s,
        "--chain-id",
        "bizra-it",
        "--base-port",
        "17400",
        "--epoch-length",
        "7",
        "--block-interval-ms",
        "30",
    ]);
    assert!(o.status.success(), "init failed: {}", stderr(&o));

    let top = std::fs::read(out.join("genesis.json")).unwrap();
    let g = Genesis::from_bytes(&top).expect("genesis.json parses");
    assert_eq!(g.chain_id(), "bizra-it");
    assert_eq!(g.params().epoch_length, 7);
    assert_eq!(g.doc.validators.len(), 5);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(g.doc.genesis_time_ms <= now && g.doc.genesis_time_ms + 600_000 > now);

    for k in 0..5usize {
        let home = out.join(format!("node{k}"));
        for f in ["config.toml", "validator.key", "genesis.json"] {
            assert!(home.join(f).is_file(), "node{k}/{f} missing");
        }
        assert_eq!(
            std::fs::read(home.join("genesis.json")).unwrap(),
            top,
            "node{k}: genesis copy differs"
        );
        #[cfg(unix)]
        assert_eq!(mode(&home.join("validator.key")), 0o600, "node{k}: key mode");

        let text = std::fs::read_to_string(home.join("config.toml")).unwrap();
        let cfg = NodeConfig::from_toml_with_env(&text, &[]).expect("config.toml parses");
        assert_eq!(cfg.moniker, format!("node{k}"));
        assert_eq!(cfg.p2p.listen, format!("127.0.0.1:{}", 17400 + k));
        assert_eq!(cfg.grpc.listen, format!("127.0.0.1:{}", 17500 + k));
        assert_eq!(cfg.metrics.listen, format!("127.0.0.1:{}", 17600 + k));
        assert_eq!(cfg.consensus.block_interval_ms, 30);
        assert_eq!(cfg.p2p.peers.len(), 4, "5 validators: full mesh");

        let key: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(home.join("validator.key")).unwrap()).unwrap();
        let id = key["id"].as_str().unwrap();
        assert_eq!(g.doc.validators[k].id, id);
        assert_eq!(g.doc.validators[k].name, format!("node{k}"));
        for (j, v) in g.doc.validators.iter().enumerate().filter(|(j, _)| *j != k) {
            let want = format!("{}@127.0.0.1:{}", v.id, 17400 + j);
            assert!(cfg.p2p.peers.contains(&want), "node{k} lacks peer {want}");
        }
    }

    // A second init into the same directory: exit 2, nothing written.
    let before = tree(&out);
    let again = bizra(&["testnet", "init", "--validators", "2", "--out", out_s]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    assert_eq!(tree(&out), before);
    assert_eq!(std::fs::read(out.join("genesis.json")).unwrap(), top);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn testnet_init_refuses_bad_input_writing_nothing() {
    let out = tmp("refuse");
    let out_s = out.to_str().unwrap();
    let cases: &[&[&str]] = &[
        &["--validators", "0"],
        &["--validators", "3", "--chain-id", "bad chain id"],
        &["--validators", "3", "--base-port", "65400"],
        &["--validators", "3", "--host-template", "a b{k}"],
        &["--validators", "3", "--epoch-length", "0"],
    ];
    for extra in cases {
        let mut args = vec!["testnet", "init", "--out", out_s];
        args.extend_from_slice(extra);
        let o = bizra(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(!out.exists(), "{extra:?} wrote {}", out.display());
    }
    let o = bizra(&[
        "testnet",
        "init",
        "--validators",
        "3",
        "--chain-id",
        "bad chain id",
        "--out",
        out_s,
    ]);
    assert!(stderr(&o).contains("chain_id"), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "one-line reason: {}", stderr(&o));
}

#[test]
fn testnet_init_into_an_empty_directory_and_large_validator_sets() {
    let out = tmp("large");
    std::fs::create_dir_all(&out).unwrap();
    let o = bizra(&["testnet", "init", "--validators", "40", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for k in 0..40 {
        let text = std::fs::read_to_string(out.join(format!("node{k}/config.toml"))).unwrap();
        let cfg = NodeConfig::from_toml_with_env(&text, &[]).unwrap();
        assert_eq!(
            cfg.p2p.peers.len(),
            39,
            "node{k}: a full mesh up to 128 validators (direct mode)"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
    // Above 128 validators (one host per node): a bounded peer list.
    let out = tmp("larger");
    std::fs::create_dir_all(&out).unwrap();
    let o = bizra(&[
        "testnet",
        "init",
        "--validators",
        "130",
        "--host-template",
        "node{k}",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for k in [0, 64, 129] {
        let text = std::fs::read_to_string(out.join(format!("node{k}/config.toml"))).unwrap();
        let cfg = NodeConfig::from_toml_with_env(&text, &[]).unwrap();
        assert_eq!(
            cfg.p2p.peers.len(),
            8,
            "node{k}: bounded peer list above 128 validators"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn testnet_compose_writes_docker_assets() {
    let out = tmp("compose");
    let o = bizra(&[
        "testnet",
        "compose",
        "--validators",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "docker-compose.yml",
        "Dockerfile",
        ".dockerignore",
        "build-image.sh",
        "genesis.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    #[cfg(unix)]
    assert_eq!(mode(&out.join("build-image.sh")) & 0o111, 0o111);
    let y = std::fs::read_to_string(out.join("docker-compose.yml")).unwrap();
    assert_eq!(y.matches("    hostname: node").count(), 4);
    let text = std::fs::read_to_string(out.join("node1/config.toml")).unwrap();
    let cfg = NodeConfig::from_toml_with_env(&text, &[]).unwrap();
    assert_eq!(cfg.grpc.listen, "0.0.0.0:7501");
    assert!(cfg.p2p.peers.iter().all(|p| p.contains("@172.28.0.")));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn testnet_keygen_writes_a_0600_key_once() {
    let dir = tmp("keygen");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("v.key");
    let o = bizra(&["keygen", "--out", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = String::from_utf8(o.stdout).unwrap();
    let id = printed.trim();
    assert_eq!(id.len(), 64, "{printed:?}");
    assert!(
        id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
        "{id}"
    );
    #[cfg(unix)]
    assert_eq!(mode(&f), 0o600);
    let key: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(key["id"], id);

    let before = std::fs::read(&f).unwrap();
    let again = bizra(&["keygen", "--out", f.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert_eq!(std::fs::read(&f).unwrap(), before, "key overwritten");
    std::fs::remove_dir_all(&dir).unwrap();
}
