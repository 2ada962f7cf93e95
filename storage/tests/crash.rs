//! Crash safety under `kill -9`.
//!
//! The parent test re-runs this test binary as a child (filtered to
//! `crash_child`, with an env var naming the data directory). The child
//! writes in a loop and prints one `ACK` line per call that returned `Ok`
//! (synced WAL appends, guard advances, finalized blocks). The parent sends
//! SIGKILL after a random delay, reopens the store and checks that every
//! acknowledged write is there. Several rounds run on the same directory, so
//! recovery from one crash is the starting point of the next.

mod common;

use bizra_storage::{SignPosition, SignStep, SledStore, Store, WalKind, STEP_PRECOMMIT};
use common::*;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "BIZRA_STORAGE_CRASH_CHILD_DIR";
const ROUNDS: usize = 6;

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

fn ack(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ACK {line}").unwrap();
    out.flush().unwrap();
}

/// The child: does nothing unless spawned by `crash_safety_under_sigkill`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let s = SledStore::open(Path::new(&dir), &identity()).expect("child: open");
    // Continue from wherever the previous incarnation stopped.
    let mut counter = s.guard_position().unwrap().map_or(0, |p| p.height);
    let started = Instant::now();
    // Bounded, in case the parent is gone.
    while started.elapsed() < Duration::from_secs(60) {
        counter += 1;
        // An unsynced received message: never acknowledged.
        s.wal_append(&wal_vote(counter, 1, WalKind::Received, 2), false)
            .unwrap();
        // Odd steps take the engine's path (guard and WAL, one flush), even
        // ones the two separate synced calls.
        let first_step = if counter & 1 == 1 {
            let at = SignPosition {
                height: counter,
                round: 0,
                step: SignStep::Proposal,
            };
            s.persist_own(at, &wal_vote(counter, 0, WalKind::Own, 1)).unwrap();
            ack(format_args!("wal {counter}"));
            ack(format_args!("guard {counter} 0"));
            1
        } else {
            s.wal_append(&wal_vote(counter, 0, WalKind::Own, 1), true).unwrap();
            ack(format_args!("wal {counter}"));
            0
        };
        for step in first_step..=STEP_PRECOMMIT {
            s.guard_advance(SignPosition {
                height: counter,
                round: 0,
                step: step.try_into().unwrap(),
            })
            .unwrap();
            ack(format_args!("guard {counter} {step}"));
        }
        if counter & 1 == 0 {
            let head = s.head().unwrap();
            let height = head.map_or(1, |(h, _)| h + 1);
            let parent = head.map(|(_, hash)| hash);
            let b = block_on(height, parent.as_ref(), None, 2, &counter.to_string());
            let c = commit_for(height, &hash(&b), 3);
            s.put_finalized(&b, &c, &state_for(height)).unwrap();
            let hb = hash(&b);
            ack(format_args!("block {height} {}", hex::encode(hb)));
        }
        if counter.trailing_zeros() >= 5 {
            // Every 32nd step.
            let floor = counter - 10;
            // Announced before the call: once started, a prune may take
            // effect even if it is never acknowledged.
            ack(format_args!("prune-start {floor}"));
            s.wal_prune_below(floor).unwrap();
        }
    }
}

#[derive(Default, Debug)]
struct Acks {
    wal: Vec<u64>,
    guard: Option<SignPosition>,
    blocks: BTreeMap<u64, [u8; 32]>,
    prune_floor: u64,
    count: usize,
}

impl Acks {
    fn record(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("ACK ") else {
            return;
        };
        let parts: Vec<&str> = rest.split_whitespace().collect();
        self.count += 1;
        match parts.as_slice() {
            ["wal", c] => self.wal.push(c.parse().unwrap()),
            ["guard", h, step] => {
                let p = SignPosition {
                    height: h.parse().unwrap(),
                    round: 0,
                    step: step.parse::<u8>().unwrap().try_into().unwrap(),
                };
                assert!(self.guard.is_none_or(|g| p > g), "acks out of order");
                self.guard = Some(p);
            }
            ["block", h, hash] => {
                let hash: [u8; 32] = hex::decode(hash).unwrap().try_into().unwrap();
                self.blocks.insert(h.parse().unwrap(), hash);
            }
            ["prune-start", f] => self.prune_floor = self.prune_floor.max(f.parse().unwrap()),
            other => panic!("unexpected ack {other:?}"),
        }
    }
}

fn check(dir: &Path, acks: &Acks, round: usize) {
    let s =
        SledStore::open(dir, &identity()).unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
    s.verify_full()
        .unwrap_or_else(|e| panic!("round {round}: verify_full: {e}"));
    if let Some(g) = acks.guard {
        let stored = s.guard_position().unwrap();
        assert!(
            stored.is_some_and(|p| p >= g),
            "round {round}: guard {stored:?} is behind the acknowledged {g:?}"
        );
    }
    let wal: Vec<_> = s.wal_entries_from(0).unwrap();
    let own: Vec<u64> = wal
        .iter()
        .filter(|e| e.kind == WalKind::Own)
        .map(|e| e.height)
        .collect();
    // Append order is preserved: own entries have increasing heights.
    // (An entry may repeat: written, then killed before the guard moved.)
    assert!(own.windows(2).all(|w| w[0] <= w[1]), "round {round}: WAL out of order");
    for c in acks.wal.iter().filter(|&&c| c >= acks.prune_floor) {
        assert!(
            own.binary_search(c).is_ok(),
            "round {round}: acknowledged WAL entry {c} is missing (floor {})",
            acks.prune_floor
        );
    }
    let head = s.head().unwrap();
    if let Some((&h, _)) = acks.blocks.last_key_value() {
        assert!(
            head.is_some_and(|(hh, _)| hh >= h),
            "round {round}: head {head:?} is behind acknowledged block {h}"
        );
    }
    for (&h, hash) in &acks.blocks {
        assert_eq!(
            s.block_hash(h).unwrap().as_ref(),
            Some(hash),
            "round {round}: acknowledged block {h}"
        );
    }
    if let Some((h, _)) = head {
        assert_eq!(s.chain_state().unwrap(), Some(state_for(h)));
    }
}

/// When the parent kills the child.
#[derive(Clone, Copy)]
enum KillAt {
    /// A random delay after the first acknowledgement.
    AfterFirstAck,
    /// A random delay after spawning, acknowledged or not (may hit `open`,
    /// including the very first initialisation of the directory).
    AnyTime,
}

/// Runs one child against `dir`, SIGKILLs it, records its acks. Returns the
/// number of acks of this round.
fn run_round(dir: &Path, tmp: &Path, round: usize, kill_at: KillAt, acks: &mut Acks) -> usize {
    let exe = std::env::current_exe().unwrap();
    let stderr_path = tmp.join(format!("child-{round}.stderr"));
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let child_stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let mut round_acks = 0;
    let mut take = |line: String, acks: &mut Acks| {
        round_acks += usize::from(line.starts_with("ACK "));
        acks.record(&line);
    };

    let delay = match kill_at {
        KillAt::AfterFirstAck => {
            // Wait (bounded) for the child to get going.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) => {
                        let is_ack = line.starts_with("ACK ");
                        take(line, acks);
                        if is_ack {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "round {round}: child produced no ack ({e:?}); stderr:\n{}",
                            child_stderr()
                        );
                    }
                }
            }
            Duration::from_millis(5 + random_u64() % 400)
        }
        KillAt::AnyTime => Duration::from_millis(random_u64() % 250),
    };
    let kill_at = Instant::now() + delay;
    while let Some(left) = kill_at.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => take(line, acks),
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                "round {round}: child exited before being killed; stderr:\n{}",
                child_stderr()
            ),
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "round {round}: child was not killed");
    // Everything the child printed before dying was acknowledged.
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = drain_deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => take(line, acks),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("round {round}: child stdout not closed after SIGKILL")
            }
        }
    }
    reader.join().unwrap();
    eprintln!(
        "round {round}: killed after {delay:?}, {round_acks} acks, guard {:?}, {} blocks",
        acks.guard,
        acks.blocks.len()
    );
    round_acks
}

#[test]
fn crash_safety_under_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return; // never recurse
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut acks = Acks::default();
    let mut total_acks = 0;
    for round in 0..ROUNDS {
        total_acks += run_round(&dir, tmp.path(), round, KillAt::AfterFirstAck, &mut acks);
        check(&dir, &acks, round);
    }
    assert!(total_acks > ROUNDS, "the child barely ran: {total_acks} acks");
    assert!(
        !acks.blocks.is_empty(),
        "no block was ever finalized: the test did not exercise put_finalized"
    );
}

#[test]
fn crash_at_any_time_including_open_and_first_initialisation() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for attempt in 0..3 {
        // A fresh directory each time, so the very first open can be hit.
        let dir = tmp.path().join(format!("data-{attempt}"));
        let mut acks = Acks::default();
        for round in 0..4 {
            run_round(&dir, tmp.path(), attempt * 10 + round, KillAt::AnyTime, &mut acks);
            if dir.exists() {
                check(&dir, &acks, round);
            }
        }
    }
}
