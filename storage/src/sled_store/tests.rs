//! Records that pass their checksum but contradict each other: only the
//! cross-checks of `open` / `verify_full` can catch these.
use super::*;
use crate::layout::{FORMAT_KEY, IDENTITY_KEY};
use bizra_proto::{Block, BlockHeader, CommitCertificate, Envelope};
use prost::Message;

fn id() -> DataDirIdentity {
    DataDirIdentity {
        chain_id: "c".into(),
        genesis_hash: [1; 32],
        validator: "v".into(),
    }
}

fn block(height: u64, parent: Option<[u8; 32]>) -> (Block, CommitCertificate) {
    let b = Block {
        header: Some(BlockHeader {
            chain_id: "c".into(),
            height,
            parent_hash: parent.map(|p| p.to_vec()).unwrap_or_default(),
            ..Default::default()
        }),
        last_commit: None,
        attestations: vec![Envelope {
            payload: format!("att {height}").into_bytes(),
            ..Default::default()
        }],
        evidence: vec![],
    };
    let hash = crate::block_hash_of(b.header.as_ref().unwrap());
    let c = CommitCertificate {
        height,
        round: 0,
        block_hash: hash.to_vec(),
        precommits: vec![],
    };
    (b, c)
}

/// A data dir with blocks 1..=3, then `damage` applied with raw access.
fn damaged(damage: impl FnOnce(&SledStore)) -> Result<SledStore, StoreError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d");
    let s = SledStore::open(&p, &id()).unwrap();
    let mut parent = None;
    for h in 1..=3 {
        let (b, c) = block(h, parent);
        s.put_finalized(&b, &c, b"state").unwrap();
        parent = s.block_hash(h).unwrap();
    }
    damage(&s);
    s.db.flush().unwrap();
    drop(s);
    let r = SledStore::open(&p, &id()).and_then(|s| {
        s.verify_full()?;
        Ok(s)
    });
    drop(dir);
    r
}

fn put(tree: &sled::Tree, name: &str, key: &[u8], payload: &[u8]) {
    tree.insert(key, seal(name, key, payload)).unwrap();
}

fn assert_corrupt(r: Result<SledStore, StoreError>, needle: &str) {
    match r {
        Err(StoreError::Corrupt(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        Err(e) => panic!("expected Corrupt({needle}), got {e:?}"),
        Ok(_) => panic!("expected Corrupt({needle}), got Ok"),
    }
}

#[test]
fn undamaged_reopens() {
    let s = damaged(|_| ()).unwrap();
    assert_eq!(s.verify_full().unwrap(), 3);
}

#[test]
fn hash_index_pointing_elsewhere() {
    assert_corrupt(
        damaged(|s| {
            let hash = s.block_hash(3).unwrap().unwrap();
            put(&s.hash_index, HASH_INDEX, &hash, &1u64.to_be_bytes());
        }),
        "hash_index/",
    );
    // A stray index entry for an unknown hash.
    assert_corrupt(
        damaged(|s| put(&s.hash_index, HASH_INDEX, &[9; 32], &2u64.to_be_bytes())),
        "hash_index/0909",
    );
}

#[test]
fn block_above_head() {
    assert_corrupt(
        damaged(|s| {
            let parent = s.block_hash(3).unwrap();
            let (b, _) = block(4, parent);
            let hash = crate::block_hash_of(b.header.as_ref().unwrap());
            put(&s.blocks, BLOCKS, &u64_key(4), &codec::encode_block(&hash, &b));
        }),
        "blocks/00000004",
    );
}

#[test]
fn head_without_block_or_with_other_hash() {
    assert_corrupt(
        damaged(|s| put(&s.meta, META, HEAD_KEY, &codec::encode_head(5, &[2; 32]))),
        "blocks/00000005 is missing",
    );
    assert_corrupt(
        damaged(|s| put(&s.meta, META, HEAD_KEY, &codec::encode_head(3, &[2; 32]))),
        "meta/head",
    );
    assert_corrupt(
        damaged(|s| {
            s.meta.remove(HEAD_KEY).unwrap();
        }),
        "meta/head: missing",
    );
}

#[test]
fn state_of_another_height() {
    assert_corrupt(
        damaged(|s| put(&s.meta, META, STATE_KEY, &codec::encode_state(2, b"old"))),
        "meta/state: belongs to height 2",
    );
}

#[test]
fn commit_for_another_block() {
    assert_corrupt(
        damaged(|s| {
            let c = CommitCertificate {
                height: 3,
                block_hash: vec![7; 32],
                ..Default::default()
            };
            put(&s.commits, COMMITS, &u64_key(3), &c.encode_to_vec());
        }),
        "commits/00000003",
    );
    assert_corrupt(
        damaged(|s| {
            let c = CommitCertificate {
                height: 1,
                block_hash: vec![7; 32],
                ..Default::default()
            };
            put(&s.commits, COMMITS, &u64_key(1), &c.encode_to_vec());
        }),
        "commits/00000001",
    );
}

#[test]
fn broken_parent_link() {
    // Replace block 2 by a well-formed block whose hash differs: the head's
    // parent link no longer matches.
    assert_corrupt(
        damaged(|s| {
            let (mut b, _) = block(2, Some([8; 32]));
            b.header.as_mut().unwrap().time_ms = 1;
            let hash = crate::block_hash_of(b.header.as_ref().unwrap());
            put(&s.blocks, BLOCKS, &u64_key(2), &codec::encode_block(&hash, &b));
        }),
        "blocks/00000002",
    );
}

#[test]
fn unsupported_format_version() {
    assert_corrupt(
        damaged(|s| put(&s.meta, META, FORMAT_KEY, &7u32.to_be_bytes())),
        "version 7",
    );
}

#[test]
fn sled_identity_disagrees_with_identity_file() {
    assert_corrupt(
        damaged(|s| {
            let mut other = id();
            other.validator = "w".into();
            put(&s.meta, META, IDENTITY_KEY, &codec::encode_identity(&other));
        }),
        "meta/identity",
    );
}

#[test]
fn attestation_index_pointing_at_nothing() {
    assert_corrupt(
        damaged(|s| put(&s.att_index, ATT_INDEX, &[3; 32], &codec::encode_att(2, 5))),
        "att_index/0303",
    );
}

/// Epoch weights: kept per epoch, replaced by a later write, still there
/// after a flush and a reopen; a damaged entry reads as a `Corrupt` error
/// naming it, while the directory still opens (they are derived data).
#[test]
fn epoch_weights_survive_a_reopen_and_damage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d");
    let s = SledStore::open(&p, &id()).unwrap();
    assert_eq!(s.epoch_weights(3).unwrap(), None);
    s.put_epoch_weights(3, b"three").unwrap();
    s.put_epoch_weights(4, b"four?").unwrap();
    s.put_epoch_weights(4, b"four").unwrap();
    s.flush().unwrap();
    drop(s);
    let s = SledStore::open(&p, &id()).unwrap();
    assert_eq!(s.epoch_weights(3).unwrap().as_deref(), Some(&b"three"[..]));
    assert_eq!(s.epoch_weights(4).unwrap().as_deref(), Some(&b"four"[..]));
    assert_eq!(s.epoch_weights(5).unwrap(), None);
    // Epoch 3's bytes stored under epoch 5's key: the checksum binds the key.
    let raw = s.epochs.get(u64_key(3)).unwrap().unwrap();
    s.epochs.insert(u64_key(5), raw).unwrap();
    match s.epoch_weights(5) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("epochs/"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    s.db.flush().unwrap();
    drop(s);
    assert!(SledStore::open(&p, &id()).is_ok(), "derived data does not stop a start");
}
