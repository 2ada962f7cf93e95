//! Compact block and commit records (docs/adr/0021): exact round trips,
//! what stays in full, mixed directories, and damage.
use super::*;
use crate::codec::{FORMAT_COMPACT, FORMAT_V1};
use crate::layout::{FORMAT_KEY, FORMAT_V1_FULL_RECORDS, FORMAT_VERSION};
use bizra_consensus::validators::{Member, Membership};
use bizra_proto::{Block, BlockHeader, CommitCertificate, Envelope, SignedVote, Vote, VoteKind};
use prost::Message;

const CHAIN: &str = "c";
const N: usize = 7;

fn id() -> DataDirIdentity {
    DataDirIdentity {
        chain_id: CHAIN.into(),
        genesis_hash: [1; 32],
        validator: "v".into(),
    }
}

fn members() -> Membership {
    Membership::new(
        (0..N)
            .map(|i| {
                let key = ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]).verifying_key();
                Member {
                    id: hex::encode(key.as_bytes()),
                    name: format!("v{i}"),
                    stake: 1,
                    key,
                }
            })
            .collect(),
    )
}

fn compaction() -> Compaction {
    Compaction::new(CHAIN, members())
}

/// Precommits for (height, round 0, hash) by `signers`, in the order given,
/// each with a distinct (unchecked) 64-byte signature.
fn cert(height: u64, hash: &[u8], signers: &[usize]) -> CommitCertificate {
    let m = members();
    CommitCertificate {
        height,
        round: 0,
        block_hash: hash.to_vec(),
        precommits: signers
            .iter()
            .map(|&i| SignedVote {
                vote: Some(Vote {
                    chain_id: CHAIN.into(),
                    height,
                    round: 0,
                    kind: VoteKind::Precommit as i32,
                    block_hash: hash.to_vec(),
                    validator: m.get(i).id.clone(),
                }),
                signature: vec![(height as u8).wrapping_mul(31) ^ i as u8; 64],
            })
            .collect(),
    }
}

/// Blocks 1..=n, each carrying the previous one's certificate (signers 0,
/// 1, 2, 4, 6) and an attestation, with their own certificates.
fn chain(n: u64) -> Vec<(Block, CommitCertificate)> {
    let mut out: Vec<(Block, CommitCertificate)> = Vec::new();
    for h in 1..=n {
        let (parent, last_commit) = match out.last() {
            None => (vec![], None),
            Some((b, c)) => (
                crate::block_hash_of(b.header.as_ref().unwrap()).to_vec(),
                Some(c.clone()),
            ),
        };
        let b = Block {
            header: Some(BlockHeader {
                chain_id: CHAIN.into(),
                height: h,
                parent_hash: parent,
                ..Default::default()
            }),
            last_commit,
            attestations: vec![Envelope {
                payload: format!("att {h}").into_bytes(),
                ..Default::default()
            }],
            evidence: vec![],
        };
        let hash = crate::block_hash_of(b.header.as_ref().unwrap());
        let c = cert(h, &hash, &[0, 1, 2, 4, 6]);
        out.push((b, c));
    }
    out
}

fn raw(tree: &sled::Tree, h: u64) -> Vec<u8> {
    tree.get(u64_key(h)).unwrap().unwrap().to_vec()
}

fn format_of(s: &SledStore) -> u32 {
    s.read(&s.meta, META, FORMAT_KEY, codec::decode_format)
        .unwrap()
        .unwrap()
}

#[test]
fn compact_records_read_back_exactly_and_are_smaller() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d");
    let blocks = chain(4);
    {
        let s = SledStore::open_compact(&p, &id(), CACHE_BYTES, compaction()).unwrap();
        assert_eq!(format_of(&s), FORMAT_VERSION);
        for (b, c) in &blocks {
            s.put_finalized(b, c, b"state").unwrap();
        }
        for (h, (b, c)) in (1u64..).zip(&blocks) {
            assert_eq!(s.block(h).unwrap().as_ref(), Some(b), "block {h}");
            assert_eq!(s.commit(h).unwrap().as_ref(), Some(c), "commit {h}");
        }
        // Block 1 has no last commit: stored in full. The others, and every
        // commit, compactly, and smaller than in full.
        assert_eq!(raw(&s.blocks, 1)[0], FORMAT_V1);
        for h in 2..=4 {
            let (b, c) = &blocks[h as usize - 1];
            let (rb, rc) = (raw(&s.blocks, h), raw(&s.commits, h));
            assert_eq!((rb[0], rc[0]), (FORMAT_COMPACT, FORMAT_COMPACT), "height {h}");
            assert!(rb.len() < 32 + b.encoded_len(), "block {h}: {} bytes", rb.len());
            assert!(
                rc.len() * 2 < c.encoded_len(),
                "commit {h}: {} of {}",
                rc.len(),
                c.encoded_len()
            );
        }
        assert_eq!(s.blocks_range(1, 10, usize::MAX).unwrap(), blocks);
        assert_eq!(s.verify_full().unwrap(), 4);
        // Late precommits grow the stored certificate; it stays compact.
        let grown = cert(4, &blocks[3].1.block_hash, &[0, 1, 2, 3, 4, 5, 6]);
        s.update_commit(&grown).unwrap();
        assert_eq!(raw(&s.commits, 4)[0], FORMAT_COMPACT);
        assert_eq!(s.commit(4).unwrap(), Some(grown));
    }
    let s = SledStore::open_compact(&p, &id(), CACHE_BYTES, compaction()).unwrap();
    assert_eq!(s.block(3).unwrap().as_ref(), Some(&blocks[2].0));
    assert_eq!(s.verify_full().unwrap(), 4);
    drop(s);
    // Without the validator set the records cannot be rebuilt: refused, with the reason.
    match SledStore::open(&p, &id()) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("without the validator set"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn certificates_the_compact_form_cannot_express_stay_full() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open_compact(&dir.path().join("d"), &id(), CACHE_BYTES, compaction()).unwrap();
    let mut blocks = chain(3);
    let hash2 = blocks[1].1.block_hash.clone();
    // Commit 2 out of validator order; block 3 carries it as its last commit.
    blocks[1].1 = cert(2, &hash2, &[2, 0, 1, 4, 6]);
    blocks[2].0.last_commit = Some(blocks[1].1.clone());
    // Commit 3 with a precommit of another round.
    let hash3 = blocks[2].1.block_hash.clone();
    let mut odd = cert(3, &hash3, &[0, 1, 2, 4, 6]);
    odd.precommits[1].vote.as_mut().unwrap().round = 1;
    blocks[2].1 = odd;
    for (b, c) in &blocks {
        s.put_finalized(b, c, b"state").unwrap();
    }
    assert_eq!(raw(&s.blocks, 2)[0], FORMAT_COMPACT);
    assert_eq!(raw(&s.commits, 2)[0], FORMAT_V1);
    assert_eq!(raw(&s.blocks, 3)[0], FORMAT_V1);
    assert_eq!(raw(&s.commits, 3)[0], FORMAT_V1);
    for (h, (b, c)) in (1u64..).zip(&blocks) {
        assert_eq!(s.block(h).unwrap().as_ref(), Some(b), "block {h}");
        assert_eq!(s.commit(h).unwrap().as_ref(), Some(c), "commit {h}");
    }
}

#[test]
fn a_full_version_1_directory_is_read_and_raised_to_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d");
    let blocks = chain(4);
    {
        // As a build before compact records left it: full records, version 1.
        let s = SledStore::open(&p, &id()).unwrap();
        for (b, c) in &blocks[..2] {
            s.put_finalized(b, c, b"state").unwrap();
        }
        put_raw(&s.meta, META, FORMAT_KEY, &FORMAT_V1_FULL_RECORDS.to_be_bytes());
        s.db.flush().unwrap();
    }
    {
        // A store that writes full records keeps it at version 1.
        let s = SledStore::open(&p, &id()).unwrap();
        assert_eq!(format_of(&s), FORMAT_V1_FULL_RECORDS);
    }
    let s = SledStore::open_compact(&p, &id(), CACHE_BYTES, compaction()).unwrap();
    assert_eq!(format_of(&s), FORMAT_VERSION);
    for (b, c) in &blocks[2..] {
        s.put_finalized(b, c, b"state").unwrap();
    }
    assert_eq!(raw(&s.blocks, 2)[0], FORMAT_V1);
    assert_eq!(raw(&s.blocks, 3)[0], FORMAT_COMPACT);
    assert_eq!(s.blocks_range(1, 10, usize::MAX).unwrap(), blocks);
    assert_eq!(s.verify_full().unwrap(), 4);
}

#[test]
fn damaged_compact_records_are_corrupt_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open_compact(&dir.path().join("d"), &id(), CACHE_BYTES, compaction()).unwrap();
    for (b, c) in &chain(3) {
        s.put_finalized(b, c, b"state").unwrap();
    }
    // The version byte is outside the payload but inside the tag's domain.
    let mut v = raw(&s.commits, 2);
    v[0] = FORMAT_V1;
    s.commits.insert(u64_key(2), v).unwrap();
    assert!(matches!(s.commit(2), Err(StoreError::Corrupt(m)) if m.contains("checksum")));
    // A well-sealed compact record whose bitmap does not fit the validator set.
    let bad = bizra_proto::CompactCommit {
        height: 3,
        round: 0,
        block_hash: vec![0; 32],
        signers: vec![0xff; 2],
        signatures: vec![0; 64 * 16],
    };
    s.commits
        .insert(
            u64_key(3),
            codec::seal_as(FORMAT_COMPACT, COMMITS, &u64_key(3), &bad.encode_to_vec()),
        )
        .unwrap();
    assert!(matches!(s.commit(3), Err(StoreError::Corrupt(m)) if m.contains("signer")));
    // A compact block record that also holds its last commit in full.
    let (b3, _) = &chain(3)[2];
    let hash3 = crate::block_hash_of(b3.header.as_ref().unwrap());
    let both = crate::records::CompactBlockRecord {
        block: Some(b3.clone()),
        last_commit: bizra_consensus::compact::compact_commit(CHAIN, &members(), b3.last_commit.as_ref().unwrap()),
    };
    assert!(both.last_commit.is_some());
    let mut payload = hash3.to_vec();
    payload.extend_from_slice(&both.encode_to_vec());
    s.blocks
        .insert(
            u64_key(3),
            codec::seal_as(FORMAT_COMPACT, BLOCKS, &u64_key(3), &payload),
        )
        .unwrap();
    assert!(matches!(s.block(3), Err(StoreError::Corrupt(m)) if m.contains("full last commit too")));
    // A compaction for another chain is refused at open.
    let other = tempfile::tempdir().unwrap();
    assert!(matches!(
        SledStore::open_compact(
            &other.path().join("d"),
            &id(),
            CACHE_BYTES,
            Compaction::new("other", members())
        ),
        Err(StoreError::Conflict(_))
    ));
}

fn put_raw(tree: &sled::Tree, name: &str, key: &[u8], payload: &[u8]) {
    tree.insert(key, seal(name, key, payload)).unwrap();
}
