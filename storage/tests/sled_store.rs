//! SledStore-specific behaviour: reopen, identity, corruption, damaged dirs.

mod common;

use bizra_storage::{layout, SignPosition, SledStore, Store, StoreError, WalKind, ANCHOR_FILE, IDENTITY_FILE};
use common::*;
use std::path::{Path, PathBuf};

fn pos(height: u64, round: u32, step: u8) -> SignPosition {
    let step = step.try_into().expect("step 0, 1 or 2");
    SignPosition { height, round, step }
}

fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("data");
    (dir, p)
}

fn expect_corrupt<T>(r: Result<T, StoreError>, needle: &str) -> String {
    match r {
        Err(StoreError::Corrupt(m)) => {
            assert!(m.contains(needle), "message {m:?} lacks {needle:?}");
            m
        }
        Err(e) => panic!("expected Corrupt containing {needle:?}, got {e:?}"),
        Ok(_) => panic!("expected Corrupt containing {needle:?}, got Ok"),
    }
}

/// Fills a store: 4 blocks, a larger commit at 2, WAL entries, a guard.
fn populate(s: &SledStore) -> Vec<bizra_storage::WalEntry> {
    for (b, c) in chain(4, 2) {
        let h = b.header.as_ref().unwrap().height;
        s.put_finalized(&b, &c, &state_for(h)).unwrap();
    }
    let h2 = s.block_hash(2).unwrap().unwrap();
    s.update_commit(&commit_for(2, &h2, 7)).unwrap();
    let wal = vec![
        wal_proposal(5, 0),
        wal_vote(5, 0, WalKind::Own, 1),
        wal_vote(5, 0, WalKind::Received, 2),
        wal_vote(4, 3, WalKind::Received, 3),
        wal_vote(6, 0, WalKind::Own, 4),
    ];
    for (i, e) in wal.iter().enumerate() {
        s.wal_append(e, i % 2 == 1).unwrap();
    }
    s.guard_advance(pos(5, 0, 2)).unwrap();
    wal
}

/// Opens the sled database underneath a (closed) data directory. A store
/// just dropped releases sled's directory lock only when sled's background
/// threads finish, so this waits for the lock as `SledStore::open` does
/// (without it, `bit_flip_in_a_stored_value_is_corrupt_not_garbage` failed
/// now and then on a busy machine).
fn raw(p: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(p) {
            Ok(db) => return db,
            Err(sled::Error::Io(e)) if std::time::Instant::now() < deadline => {
                assert!(e.to_string().contains("lock"), "opening {}: {e}", p.display());
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("opening {}: {e}", p.display()),
        }
    }
}

fn flip_last_byte(db: &sled::Db, tree: &str, key: &[u8]) {
    let t = db.open_tree(tree).unwrap();
    let mut v = t.get(key).unwrap().expect("record exists").to_vec();
    let n = v.len();
    v[n - 1] ^= 0x01;
    t.insert(key, v).unwrap();
    db.flush().unwrap();
}

#[test]
fn reopen_after_drop_keeps_everything() {
    let (_d, p) = data_dir();
    let s = SledStore::open(&p, &identity()).unwrap();
    let wal = populate(&s);
    let before = (
        s.head().unwrap(),
        s.blocks_range(1, 100, usize::MAX).unwrap(),
        s.chain_state().unwrap(),
        s.guard_position().unwrap(),
    );
    drop(s);

    let s = SledStore::open(&p, &identity()).unwrap();
    assert_eq!(s.identity(), &identity());
    assert_eq!(s.path(), p.as_path());
    let after = (
        s.head().unwrap(),
        s.blocks_range(1, 100, usize::MAX).unwrap(),
        s.chain_state().unwrap(),
        s.guard_position().unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(after.0.unwrap().0, 4);
    assert_eq!(after.2, Some(state_for(4)));
    assert_eq!(after.3, Some(pos(5, 0, 2)));
    assert_eq!(s.commit(2).unwrap().unwrap().precommits.len(), 7);
    for (b, _) in chain(4, 2) {
        let h = b.header.as_ref().unwrap().height;
        assert_eq!(s.height_of(&hash(&b)).unwrap(), Some(h));
        for (i, env) in b.attestations.iter().enumerate() {
            assert_eq!(
                s.attestation_location(&bizra_storage::attestation_id(env)).unwrap(),
                Some((h, i as u32))
            );
        }
    }
    assert_eq!(s.wal_entries_from(0).unwrap(), wal);
    assert_eq!(s.verify_full().unwrap(), 4);

    // The chain continues where it stopped; the WAL keeps appending in order.
    let blocks = chain(5, 2);
    s.put_finalized(&blocks[4].0, &blocks[4].1, &state_for(5)).unwrap();
    let extra = wal_vote(7, 0, WalKind::Own, 9);
    s.wal_append(&extra, true).unwrap();
    s.wal_prune_below(5).unwrap();
    drop(s);

    let s = SledStore::open(&p, &identity()).unwrap();
    assert_eq!(s.head().unwrap(), Some((5, hash(&blocks[4].0))));
    let mut expect: Vec<_> = wal.into_iter().filter(|e| e.height >= 5).collect();
    expect.push(extra);
    assert_eq!(s.wal_entries_from(0).unwrap(), expect);
    s.wal_prune_below(100).unwrap();
    drop(s);
    let s = SledStore::open(&p, &identity()).unwrap();
    assert!(s.wal_entries_from(0).unwrap().is_empty());
    // After pruning everything, new entries still come back in order.
    let a = wal_vote(8, 0, WalKind::Own, 1);
    let b = wal_vote(8, 1, WalKind::Own, 2);
    s.wal_append(&a, true).unwrap();
    s.wal_append(&b, true).unwrap();
    drop(s);
    let s = SledStore::open(&p, &identity()).unwrap();
    assert_eq!(s.wal_entries_from(0).unwrap(), vec![a, b]);
    s.verify_full().unwrap();
}

/// Received messages appended as one record come back as one entry each,
/// in order between the entries around them, across a reopen (which checks
/// every record), and are pruned by their height like single entries.
#[test]
fn received_messages_appended_together_replay_in_order() {
    let (_d, p) = data_dir();
    let s = SledStore::open(&p, &identity()).unwrap();
    let own = wal_vote(9, 0, WalKind::Own, 1);
    let received: Vec<_> = (2..6).map(|v| wal_vote(9, 0, WalKind::Received, v)).collect();
    let later = wal_vote(10, 0, WalKind::Own, 1);
    s.wal_append(&own, true).unwrap();
    let msgs: Vec<_> = received.iter().map(|e| e.msg.clone()).collect();
    s.wal_append_received(9, &msgs).unwrap();
    s.wal_append_received(9, &[]).unwrap(); // nothing: no record
    s.wal_append(&later, true).unwrap();
    drop(s);

    let s = SledStore::open(&p, &identity()).unwrap();
    let mut expect = vec![own];
    expect.extend(received);
    expect.push(later.clone());
    assert_eq!(s.wal_entries_from(0).unwrap(), expect);
    assert_eq!(s.wal_entries_from(10).unwrap(), vec![later.clone()]);
    drop(s);
    assert_eq!(raw(&p).open_tree(layout::WAL).unwrap().len(), 3, "own, one batch, own");
    let s = SledStore::open(&p, &identity()).unwrap();
    s.wal_prune_below(10).unwrap();
    assert_eq!(s.wal_entries_from(0).unwrap(), vec![later]);
    s.verify_full().unwrap();
    drop(s);
    assert_eq!(
        raw(&p).open_tree(layout::WAL).unwrap().len(),
        1,
        "the batch went as one record"
    );
}

#[test]
fn guard_survives_reopen_and_never_goes_back() {
    let (_d, p) = data_dir();
    let s = SledStore::open(&p, &identity()).unwrap();
    s.guard_advance(pos(3, 1, 1)).unwrap();
    drop(s);
    let s = SledStore::open(&p, &identity()).unwrap();
    assert_eq!(s.guard_position().unwrap(), Some(pos(3, 1, 1)));
    assert!(matches!(s.guard_advance(pos(3, 1, 0)), Err(StoreError::Conflict(_))));
    assert!(matches!(s.guard_advance(pos(2, 9, 2)), Err(StoreError::Conflict(_))));
    s.guard_advance(pos(3, 1, 1)).unwrap();
    s.guard_advance(pos(3, 1, 2)).unwrap();
    drop(s);
    let s = SledStore::open(&p, &identity()).unwrap();
    assert_eq!(s.guard_position().unwrap(), Some(pos(3, 1, 2)));
}

#[test]
fn foreign_chain_is_refused_and_the_dir_is_untouched() {
    let (_d, p) = data_dir();
    let s = SledStore::open(&p, &identity()).unwrap();
    populate(&s);
    drop(s);

    let mut other_chain = identity();
    other_chain.chain_id = "bizra-other".into();
    match SledStore::open(&p, &other_chain) {
        Err(StoreError::ForeignChain { expected, found }) => {
            assert_eq!(expected, "chain_id \"bizra-other\"");
            assert_eq!(found, format!("chain_id \"{CHAIN}\""));
        }
        other => panic!("{other:?}"),
    }

    let mut other_genesis = identity();
    other_genesis.genesis_hash = [0x22; 32];
    match SledStore::open(&p, &other_genesis) {
        Err(e @ StoreError::ForeignChain { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&format!("genesis_hash {}", "22".repeat(32))), "{msg}");
            assert!(msg.contains(&format!("genesis_hash {}", "11".repeat(32))), "{msg}");
            assert!(!msg.contains("chain_id"), "{msg}");
        }
        other => panic!("{other:?}"),
    }

    let mut other_validator = identity();
    other_validator.validator = "bb".repeat(32);
    let mut everything = other_genesis.clone();
    everything.chain_id = "x".into();
    everything.validator = "y".into();
    for id in [&other_validator, &everything] {
        match SledStore::open(&p, id) {
            Err(StoreError::ForeignChain { expected, found }) => {
                assert!(expected.contains("validator"), "{expected}");
                assert!(found.contains(&"aa".repeat(32)), "{found}");
            }
            other => panic!("{other:?}"),
        }
    }

    // Refusing did not damage or reset anything.
    let s = SledStore::open(&p, &identity()).unwrap();
    assert_eq!(s.head().unwrap().unwrap().0, 4);
    assert_eq!(s.verify_full().unwrap(), 4);
}

#[test]
fn bit_flip_in_a_stored_value_is_corrupt_not_garbage() {
    // (tree, key, does open itself notice?)
    let head_hash = {
        let c = chain(4, 2);
        hash(&c[3].0)
    };
    let att_id = bizra_storage::attestation_id(&chain(1, 2)[0].0.attestations[1]);
    let cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
        (layout::BLOCKS, 1u64.to_be_bytes().to_vec(), false, "blocks/00000001"),
        (layout::BLOCKS, 4u64.to_be_bytes().to_vec(), true, "blocks/00000004"),
        (layout::COMMITS, 2u64.to_be_bytes().to_vec(), false, "commits/00000002"),
        (layout::COMMITS, 4u64.to_be_bytes().to_vec(), true, "commits/00000004"),
        (layout::META, layout::HEAD_KEY.to_vec(), true, "meta/head"),
        (layout::META, layout::STATE_KEY.to_vec(), true, "meta/state"),
        (layout::META, layout::IDENTITY_KEY.to_vec(), true, "meta/identity"),
        (layout::HASH_INDEX, head_hash.to_vec(), true, "hash_index/"),
        (layout::ATT_INDEX, att_id.to_vec(), false, "att_index/"),
        (layout::WAL, 2u64.to_be_bytes().to_vec(), true, "wal/00000002"),
        (layout::GUARD, layout::GUARD_KEY.to_vec(), true, "guard/"),
    ];
    for (tree, key, at_open, label) in cases {
        let (_d, p) = data_dir();
        let s = SledStore::open(&p, &identity()).unwrap();
        populate(&s);
        drop(s);
        let db = raw(&p);
        flip_last_byte(&db, tree, &key);
        drop(db);
        let opened = SledStore::open(&p, &identity());
        if at_open {
            expect_corrupt(opened, label);
            continue;
        }
        let s = opened.unwrap_or_else(|e| panic!("{label}: open failed: {e}"));
        match tree {
            layout::BLOCKS => {
                expect_corrupt(s.block(1), label);
                expect_corrupt(s.block_hash(1), label);
                expect_corrupt(s.blocks_range(1, 10, usize::MAX), label);
            }
            layout::COMMITS => {
                expect_corrupt(s.commit(2), label);
                expect_corrupt(s.blocks_range(2, 1, usize::MAX), label);
            }
            layout::ATT_INDEX => {
                expect_corrupt(s.attestation_location(&att_id), label);
            }
            _ => unreachable!(),
        }
        expect_corrupt(s.verify_full(), label);
        // Other records still read fine.
        assert!(s.block(3).unwrap().is_some());
    }
}

#[test]
fn value_moved_to_another_key_is_corrupt() {
    let (_d, p) = data_dir();
    let s = SledStore::open(&p, &identity()).unwrap();
    populate(&s);
    drop(s);
    let db = raw(&p);
    let blocks = db.open_tree(layout::BLOCKS).unwrap();
    let v1 = blocks.get(1u64.to_be_bytes()).unwrap().unwrap();
    blocks.insert(2u64.to_be_bytes(), v1).unwrap();
    db.flush().unwrap();
    drop((blocks, db));
    let s = SledStore::open(&p, &identity()).unwrap();
    expect_corrupt(s.block(2), "blocks/00000002: checksum mismatch");
    expect_corrupt(s.verify_full(), "blocks/00000002");
}

#[test]
fn missing_head_block_is_corrupt() {
    let (_d, p) = data_dir();
    let s = SledStore::open(&p, &identity()).unwrap();
    populate(&s);
    drop(s);
    let db = raw(&p);
    db.open_tree(layout::BLOCKS)
        .unwrap()
        .remove(4u64.to_be_bytes())
        .unwrap();
    db.flush().unwrap();
    drop(db);
    let m = expect_corrupt(SledStore::open(&p, &identity()), "meta/head");
    assert!(m.contains("blocks/00000004 is missing"), "{m}");
}

#[test]
fn lost_sled_data_is_detected_by_the_anchor() {
    // Deleting records sled-side (as a damaged log would) must not reopen as
    // a silently shorter chain or an older guard.
    let (_d, p) = data_dir();
    let s = SledStore::open(&p, &identity()).unwrap();
    populate(&s);
    drop(s);
    let db = raw(&p);
    db.open_tree(layout::GUARD).unwrap().clear().unwrap();
    db.flush().unwrap();
    drop(db);
    let m = expect_corrupt(SledStore::open(&p, &identity()), "lost acknowledged writes");
    assert!(m.contains("double-sign guard"), "{m}");

    // The whole database replaced by an empty one.
    let (_d2, p2) = data_dir();
    let s = SledStore::open(&p2, &identity()).unwrap();
    populate(&s);
    drop(s);
    for f in ["db", "conf", "blobs"] {
        let q = p2.join(f);
        if q.is_dir() {
            std::fs::remove_dir_all(q).unwrap();
        } else {
            std::fs::remove_file(q).unwrap();
        }
    }
    expect_corrupt(SledStore::open(&p2, &identity()), "meta/identity: missing");
}

#[test]
fn bit_rot_in_the_sled_log_never_reopens_silently() {
    // sled treats the first unreadable log record as the end of its log. Flip
    // bytes at many places in the db file: every outcome must be either the
    // full data or Corrupt, never a silently truncated store.
    let (d, p) = data_dir();
    let s = SledStore::open(&p, &identity()).unwrap();
    let blocks = chain(30, 2);
    for (b, c) in &blocks {
        let h = b.header.as_ref().unwrap().height;
        s.put_finalized(b, c, &state_for(h)).unwrap();
        s.wal_append(&wal_vote(h, 0, WalKind::Own, 1), true).unwrap();
        s.guard_advance(pos(h, 0, 2)).unwrap();
    }
    drop(s);
    let files: Vec<PathBuf> = std::fs::read_dir(&p)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.is_file())
        .collect();
    let db = std::fs::read(p.join("db")).unwrap();
    let mut corrupt = 0;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for k in 0..40u64 {
        let q = d.path().join(format!("copy{k}"));
        std::fs::create_dir(&q).unwrap();
        for f in &files {
            std::fs::copy(f, q.join(f.file_name().unwrap())).unwrap();
        }
        let mut bytes = db.clone();
        for _ in 0..=(k % 3) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x % bytes.len() as u64) as usize;
            bytes[at] ^= 0xa5;
        }
        std::fs::write(q.join("db"), &bytes).unwrap();
        match SledStore::open(&q, &identity()).and_then(|s| {
            s.verify_full()?;
            Ok(s)
        }) {
            Ok(s) => {
                assert_eq!(s.head().unwrap(), Some((30, hash(&blocks[29].0))), "copy {k}");
                assert_eq!(s.guard_position().unwrap(), Some(pos(30, 0, 2)));
                assert_eq!(s.wal_entries_from(0).unwrap().len(), 30);
            }
            Err(StoreError::Corrupt(_)) => corrupt += 1,
            Err(e) => panic!("copy {k}: {e:?}"),
        }
    }
    assert!(corrupt > 0, "no flip was detected; the test is not testing anything");
}

#[test]
fn garbage_directories_are_refused() {
    let d = tempfile::tempdir().unwrap();
    // A directory with a garbage file named like sled's db file.
    for (i, size) in [0usize, 17, 4096, 300_000].into_iter().enumerate() {
        let p = d.path().join(format!("garbage-db-{i}"));
        std::fs::create_dir(&p).unwrap();
        let junk: Vec<u8> = (0..size).map(|j| (j * 31 + i) as u8).collect();
        std::fs::write(p.join("db"), &junk).unwrap();
        expect_corrupt(SledStore::open(&p, &identity()), "not a bizra data directory");
        // Nothing was created or changed.
        assert_eq!(std::fs::read(p.join("db")).unwrap(), junk);
        assert!(!p.join(IDENTITY_FILE).exists());
    }
    // A directory with unrelated files.
    let p = d.path().join("other");
    std::fs::create_dir(&p).unwrap();
    std::fs::write(p.join("notes.txt"), b"hello").unwrap();
    expect_corrupt(SledStore::open(&p, &identity()), "notes.txt");
    // A file instead of a directory.
    let f = d.path().join("a-file");
    std::fs::write(&f, b"x").unwrap();
    expect_corrupt(SledStore::open(&f, &identity()), "not a directory");
    // A data directory whose db was replaced by garbage.
    let p = d.path().join("replaced");
    let s = SledStore::open(&p, &identity()).unwrap();
    populate(&s);
    drop(s);
    std::fs::write(p.join("db"), vec![0x5a; 100_000]).unwrap();
    assert!(matches!(SledStore::open(&p, &identity()), Err(StoreError::Corrupt(_))));
}

#[test]
fn damaged_identity_or_anchor_file_is_corrupt() {
    let (_d, p) = data_dir();
    let s = SledStore::open(&p, &identity()).unwrap();
    populate(&s);
    drop(s);
    let idf = p.join(IDENTITY_FILE);
    let good = std::fs::read(&idf).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 3] ^= 0x10;
    std::fs::write(&idf, &bad).unwrap();
    expect_corrupt(SledStore::open(&p, &identity()), IDENTITY_FILE);
    std::fs::write(&idf, &good).unwrap();

    let af = p.join(ANCHOR_FILE);
    let good = std::fs::read(&af).unwrap();
    std::fs::write(&af, vec![0u8; good.len()]).unwrap();
    expect_corrupt(SledStore::open(&p, &identity()), ANCHOR_FILE);
    std::fs::remove_file(&af).unwrap();
    expect_corrupt(SledStore::open(&p, &identity()), "must not be deleted");
    std::fs::write(&af, &good).unwrap();

    // Deleting the identity file does not make the directory "new".
    std::fs::remove_file(&idf).unwrap();
    expect_corrupt(SledStore::open(&p, &identity()), "not a bizra data directory");
}

#[test]
fn interrupted_initialisation_is_resumed() {
    // A crash after the anchor was created but before the identity file was
    // renamed into place leaves only our own leftovers: safe to initialise.
    let (_d, p) = data_dir();
    std::fs::create_dir(&p).unwrap();
    std::fs::write(p.join("bizra-identity.tmp"), b"half written").unwrap();
    let s = SledStore::open(&p, &identity()).unwrap();
    populate(&s);
    drop(s);
    assert!(SledStore::open(&p, &identity()).is_ok());
    // An empty directory is initialised too.
    let (_d, p) = data_dir();
    std::fs::create_dir(&p).unwrap();
    SledStore::open(&p, &identity()).unwrap();
}

#[test]
fn second_open_while_in_use_is_refused() {
    let (_d, p) = data_dir();
    let s = SledStore::open(&p, &identity()).unwrap();
    match SledStore::open(&p, &identity()) {
        Err(StoreError::Io(m)) => assert!(m.contains("lock"), "{m}"),
        other => panic!("{other:?}"),
    }
    s.guard_advance(pos(1, 0, 0)).unwrap();
}

#[test]
fn unsynced_blocks_are_visible_at_once_and_durable_after_flush() {
    let (_d, p) = data_dir();
    let s = SledStore::open(&p, &identity()).unwrap();
    let blocks = chain(6, 2);
    for (b, c) in &blocks[..2] {
        let h = b.header.as_ref().unwrap().height;
        s.put_finalized(b, c, &state_for(h)).unwrap();
    }
    for (b, c) in &blocks[2..] {
        let h = b.header.as_ref().unwrap().height;
        s.put_finalized_unsynced(b, c, &state_for(h)).unwrap();
        assert_eq!(s.head().unwrap(), Some((h, hash(b))));
        assert_eq!(s.block(h).unwrap().as_ref(), Some(b));
    }
    // The same rules as put_finalized: a gap is refused.
    let (b9, c9) = &chain(9, 2)[8];
    assert!(s.put_finalized_unsynced(b9, c9, &state_for(9)).is_err());
    // No flush yet: the anchor still records the synced head (2); flush
    // raises it to 6.
    let anchor = std::fs::read(p.join(ANCHOR_FILE)).unwrap();
    s.flush().unwrap();
    assert_ne!(std::fs::read(p.join(ANCHOR_FILE)).unwrap(), anchor);
    drop(s);
    let s = SledStore::open(&p, &identity()).unwrap();
    assert_eq!(s.head().unwrap(), Some((6, hash(&blocks[5].0))));
    assert_eq!(s.verify_full().unwrap(), 6);
}
