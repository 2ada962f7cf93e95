//! Replays the fuzz corpora that live in git: for every target in
//! `bizra_fuzz::TARGETS`, every file of `fuzz/seeds/<target>/` (valid
//! inputs, which must be accepted) and of `fuzz/regressions/<target>/`
//! (inputs that once crashed a fuzz target, which must not panic) is run
//! through the same function the fuzz target calls.
//!
//! A regression input whose bug is not fixed yet is listed in [`KNOWN_BUGS`]:
//! the main test skips it and an `#[ignore]`d test named after the bug replays
//! it. Remove the entry once the bug is fixed.
//!
//! `cargo test -p bizra-fuzz --test regressions -- --ignored write_seeds`
//! regenerates the seeds.

use bizra_fuzz::{Outcome, Target, TARGETS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Regression inputs of bugs that are not fixed yet: (target, file, bug).
const KNOWN_BUGS: &[(&str, &str, &str)] = &[];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn target(name: &str) -> Target {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
}

/// Files of `fuzz/<kind>/<target>/`, sorted; none if the directory is absent.
fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            (name, bytes)
        })
        .collect();
    out.sort();
    out
}

fn known_bug(target: &str, file: &str) -> Option<&'static str> {
    KNOWN_BUGS
        .iter()
        .find(|(t, f, _)| *t == target && *f == file)
        .map(|(_, _, bug)| *bug)
}

fn run(target_name: &str, file: &str, bytes: &[u8]) -> Result<Outcome, String> {
    let f = target(target_name);
    catch_unwind(AssertUnwindSafe(|| f(bytes))).map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{target_name}/{file}: panicked: {msg}")
    })
}

#[test]
fn every_target_has_seeds_and_they_are_accepted() {
    let mut failures = Vec::new();
    for (name, _) in TARGETS {
        let seeds = inputs("seeds", name);
        if seeds.is_empty() {
            failures.push(format!("{name}: no seeds in fuzz/seeds/{name}/"));
        }
        for (file, bytes) in seeds {
            match run(name, &file, &bytes) {
                Ok(Outcome::Accepted) => {}
                Ok(other) => failures.push(format!("{name}/{file}: seed not accepted: {other:?}")),
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn regressions_do_not_panic() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for (name, _) in TARGETS {
        for (file, bytes) in inputs("regressions", name) {
            if known_bug(name, &file).is_some() {
                continue;
            }
            ran += 1;
            if let Err(e) = run(name, &file, &bytes) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{ran} regression inputs replayed");
}

/// Replays the regression inputs of [`KNOWN_BUGS`]; passes once they are fixed.
#[test]
#[ignore = "known bugs, see KNOWN_BUGS"]
fn known_bugs_are_fixed() {
    let mut failures = Vec::new();
    for (name, file, bug) in KNOWN_BUGS {
        let bytes = std::fs::read(fuzz_dir().join("regressions").join(name).join(file)).expect("regression input");
        if let Err(e) = run(name, file, &bytes) {
            failures.push(format!("{bug}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The seed generator is deterministic: the committed seeds are what it writes.
#[test]
fn seeds_on_disk_match_the_generator() {
    let mut stale = Vec::new();
    for (name, file, bytes) in bizra_fuzz::seed_corpus() {
        let path = fuzz_dir().join("seeds").join(name).join(&file);
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale seeds (run `cargo test -p bizra-fuzz --test regressions -- --ignored write_seeds`):\n{}",
        stale.join("\n")
    );
}

#[test]
#[ignore = "writes fuzz/seeds/; run by hand"]
fn write_seeds() {
    let mut total = 0;
    for (name, file, bytes) in bizra_fuzz::seed_corpus() {
        let dir = fuzz_dir().join("seeds").join(name);
        std::fs::create_dir_all(&dir).expect("seed dir");
        total += bytes.len();
        std::fs::write(dir.join(&file), &bytes).expect("write seed");
    }
    assert!(total < 1 << 20, "seeds are {total} bytes; keep them under 1 MiB");
    eprintln!("wrote {total} bytes of seeds");
}

/// Found by review while writing the `sync_response` target's invariant (not
/// by the fuzzer). A block's attestation leaves commit to BLAKE3(payload) and
/// the signature only (consensus/src/chain.rs `attestation_leaves`), and a
/// synced block's attestations are not re-checked (the engine runs
/// `poi::check` on proposals only, node/src/admission.rs `check_payload`).
/// So a sync peer can serve a finalized block whose envelopes carry another
/// `keyid` or `payloadType`: it has the same hash, the driver accepts it, and
/// the node stores it and serves it again (sync, `GetAttestation`).
#[test]
fn synced_block_with_rewritten_envelope_metadata_is_refused() {
    use bizra_consensus::driver::Input;
    use bizra_consensus::messages::block_hash;
    let w = bizra_fuzz::world();
    let mut d = w.genesis_driver();
    let (b1, _, c1) = &w.blocks[0];
    d.handle(
        bizra_fuzz::NOW_MS,
        Input::SyncedBlock {
            block: b1.clone(),
            commit: d.check_commit(c1.clone()).expect("signed by the world"),
        },
    )
    .expect("block 1");
    let (b2, h2, c2) = &w.blocks[1];
    let mut forged = b2.clone();
    forged.attestations[0].signatures[0].keyid = "not-the-attester".into();
    forged.attestations[0].payload_type = "text/plain".into();
    assert_eq!(
        block_hash(&forged),
        Some(*h2),
        "the rewritten block has the certified hash"
    );
    let r = d.handle(
        bizra_fuzz::NOW_MS,
        Input::SyncedBlock {
            block: forged,
            commit: d.check_commit(c2.clone()).expect("signed by the world"),
        },
    );
    assert!(
        r.is_err(),
        "a synced block whose envelopes differ from the certified ones was accepted"
    );
}

/// Found by review while extending the `driver_byzantine` target (not by the
/// fuzzer): a Byzantine proposer's block stamped `u64::MAX` used to be valid,
/// and afterwards no block could follow, halting the chain. Block time is now
/// bounded by the parent's time plus `MAX_BLOCK_TIME_GAP_MS`, deterministically.
#[test]
fn chain_continues_after_a_byzantine_block_time() {
    use bizra_consensus::chain::MAX_BLOCK_TIME_GAP_MS;
    let w = bizra_fuzz::world();
    let g = &w.genesis;
    let st = w.head().clone();
    let proposer = w.signers[st.proposer(0)].id();
    let honest = st.build_block(
        g,
        proposer,
        bizra_fuzz::NOW_MS,
        Some(w.head_commit().clone()),
        Vec::new(),
    );
    assert!(st.validate_block(g, &honest).is_ok(), "an honest block is valid");
    for t in [u64::MAX, st.last_time_ms.saturating_add(MAX_BLOCK_TIME_GAP_MS + 1)] {
        let mut block = honest.clone();
        block.header.as_mut().expect("header").time_ms = t;
        assert!(
            st.validate_block(g, &block).is_err(),
            "a block stamped {t} must be refused"
        );
    }
    // A proposer whose clock is far ahead still builds a valid block.
    let far = st.build_block(g, proposer, u64::MAX, Some(w.head_commit().clone()), Vec::new());
    assert!(st.validate_block(g, &far).is_ok(), "build_block caps the time gap");
}
