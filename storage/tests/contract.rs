//! The `Store` contract, run against both `MemStore` and `SledStore`.

mod common;

use bizra_storage::{attestation_id, SignPosition, SignStep, Store, StoreError, WalKind};
use common::*;
use prost::Message;

fn pos(height: u64, round: u32, step: u8) -> SignPosition {
    let step = step.try_into().expect("step 0, 1 or 2");
    SignPosition { height, round, step }
}

fn put_chain<S: Store>(s: &S, blocks: &[(bizra_proto::Block, bizra_proto::CommitCertificate)]) {
    for (b, c) in blocks {
        let h = b.header.as_ref().unwrap().height;
        s.put_finalized(b, c, &state_for(h)).unwrap();
    }
}

fn empty_store<S: Store>(s: &S) {
    assert_eq!(s.head().unwrap(), None);
    assert_eq!(s.block(1).unwrap(), None);
    assert_eq!(s.block(0).unwrap(), None);
    assert_eq!(s.block_hash(1).unwrap(), None);
    assert_eq!(s.height_of(&[1; 32]).unwrap(), None);
    assert_eq!(s.commit(1).unwrap(), None);
    assert!(s.blocks_range(0, 10, 1 << 20).unwrap().is_empty());
    assert_eq!(s.chain_state().unwrap(), None);
    assert_eq!(s.attestation_location(&[2; 32]).unwrap(), None);
    assert!(s.wal_entries_from(0).unwrap().is_empty());
    assert_eq!(s.guard_position().unwrap(), None);
    s.flush().unwrap();
}

fn finalize_roundtrip<S: Store>(s: &S) {
    let blocks = chain(5, 3);
    for (b, c) in &blocks {
        let h = b.header.as_ref().unwrap().height;
        let hb = hash(b);
        s.put_finalized(b, c, &state_for(h)).unwrap();
        assert_eq!(s.head().unwrap(), Some((h, hb)));
        assert_eq!(s.chain_state().unwrap(), Some(state_for(h)));
        assert_eq!(s.block(h).unwrap().as_ref(), Some(b));
        assert_eq!(s.block_hash(h).unwrap(), Some(hb));
        assert_eq!(s.height_of(&hb).unwrap(), Some(h));
        assert_eq!(s.commit(h).unwrap().as_ref(), Some(c));
        assert_eq!(s.block(h + 1).unwrap(), None);
        for (i, env) in b.attestations.iter().enumerate() {
            let id = attestation_id(env);
            assert_eq!(id, *blake3::hash(&env.payload).as_bytes());
            assert_eq!(s.attestation_location(&id).unwrap(), Some((h, i as u32)));
        }
    }
    // Earlier blocks are untouched by later ones.
    for (b, c) in &blocks {
        let h = b.header.as_ref().unwrap().height;
        assert_eq!(s.block(h).unwrap().as_ref(), Some(b));
        assert_eq!(s.commit(h).unwrap().as_ref(), Some(c));
    }
    assert_eq!(s.height_of(&[0xee; 32]).unwrap(), None);
    assert_eq!(s.attestation_location(&[0xee; 32]).unwrap(), None);
}

fn append_order_enforced<S: Store>(s: &S) {
    let blocks = chain(3, 1);
    let err = s.put_finalized(&blocks[1].0, &blocks[1].1, b"x").unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("next height is 1"), "{err}");
    assert_eq!(s.head().unwrap(), None);
    assert_eq!(s.block(2).unwrap(), None);
    assert_eq!(s.chain_state().unwrap(), None);
    assert_eq!(
        s.attestation_location(&attestation_id(&blocks[1].0.attestations[0]))
            .unwrap(),
        None
    );

    s.put_finalized(&blocks[0].0, &blocks[0].1, &state_for(1)).unwrap();
    let err = s.put_finalized(&blocks[2].0, &blocks[2].1, b"x").unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(s.head().unwrap(), Some((1, hash(&blocks[0].0))));
    assert_eq!(s.chain_state().unwrap(), Some(state_for(1)));
    assert_eq!(s.block(3).unwrap(), None);

    // Height 0 is never valid.
    let b0 = block_on(0, None, None, 0, "zero");
    let c0 = commit_for(0, &hash(&b0), 1);
    assert!(matches!(s.put_finalized(&b0, &c0, b"x"), Err(StoreError::Invalid(_))));

    // A block at head+1 must extend the head.
    let stray = block_on(2, Some(&[0x55; 32]), None, 0, "stray");
    let stray_c = commit_for(2, &hash(&stray), 3);
    let err = s.put_finalized(&stray, &stray_c, b"x").unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("parent"), "{err}");
    assert_eq!(s.block(2).unwrap(), None);

    s.put_finalized(&blocks[1].0, &blocks[1].1, &state_for(2)).unwrap();
    s.put_finalized(&blocks[2].0, &blocks[2].1, &state_for(3)).unwrap();
    assert_eq!(s.head().unwrap(), Some((3, hash(&blocks[2].0))));
}

fn idempotent_reput<S: Store>(s: &S) {
    let blocks = chain(3, 2);
    put_chain(s, &blocks);
    // Re-put every height, even with a different commit and state: Ok, no change.
    for (b, _) in &blocks {
        let h = b.header.as_ref().unwrap().height;
        let bigger = commit_for(h, &hash(b), 9);
        s.put_finalized(b, &bigger, b"other state").unwrap();
    }
    assert_eq!(s.head().unwrap(), Some((3, hash(&blocks[2].0))));
    assert_eq!(s.chain_state().unwrap(), Some(state_for(3)));
    for (b, c) in &blocks {
        let h = b.header.as_ref().unwrap().height;
        assert_eq!(s.commit(h).unwrap().as_ref(), Some(c));
        assert_eq!(s.block(h).unwrap().as_ref(), Some(b));
    }
}

fn refs(
    blocks: &[(bizra_proto::Block, bizra_proto::CommitCertificate)],
) -> Vec<(&bizra_proto::Block, &bizra_proto::CommitCertificate)> {
    blocks.iter().map(|(b, c)| (b, c)).collect()
}

fn range_put_is_all_or_nothing<S: Store>(s: &S) {
    let blocks = chain(8, 2);
    put_chain(s, &blocks[..2]);
    // A range whose third block forks away from the second: nothing of it is written.
    let mut bad = blocks[2..6].to_vec();
    let fork = block_on(5, Some(&[0xab; 32]), None, 1, "fork");
    let fork_c = commit_for(5, &hash(&fork), 2);
    bad[2] = (fork, fork_c);
    let err = s.put_finalized_range(&refs(&bad), &state_for(6)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(s.head().unwrap(), Some((2, hash(&blocks[1].0))));
    assert_eq!(
        s.block(3).unwrap(),
        None,
        "the good blocks before the fork are not written either"
    );
    assert_eq!(s.chain_state().unwrap(), Some(state_for(2)));
    // The good range, overlapping what is already stored (skipped), in one write.
    s.put_finalized_range(&refs(&blocks[1..6]), &state_for(6)).unwrap();
    assert_eq!(s.head().unwrap(), Some((6, hash(&blocks[5].0))));
    assert_eq!(
        s.chain_state().unwrap(),
        Some(state_for(6)),
        "the state is the last block's"
    );
    for (b, c) in &blocks[..6] {
        let h = b.header.as_ref().unwrap().height;
        assert_eq!(s.block(h).unwrap().as_ref(), Some(b));
        assert_eq!(s.commit(h).unwrap().as_ref(), Some(c));
        assert_eq!(s.height_of(&hash(b)).unwrap(), Some(h));
        for (i, env) in b.attestations.iter().enumerate() {
            assert_eq!(
                s.attestation_location(&attestation_id(env)).unwrap(),
                Some((h, i as u32))
            );
        }
    }
    // Out of order: refused, nothing written; an empty range is a no-op.
    let err = s.put_finalized_range(&refs(&blocks[7..8]), &state_for(8)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    s.put_finalized_range(&[], b"ignored").unwrap();
    assert_eq!(s.chain_state().unwrap(), Some(state_for(6)));
    // A single put continues the chain after a range.
    s.put_finalized(&blocks[6].0, &blocks[6].1, &state_for(7)).unwrap();
    s.flush().unwrap();
    assert_eq!(s.head().unwrap(), Some((7, hash(&blocks[6].0))));
}

fn conflict_on_different_hash<S: Store>(s: &S) {
    let blocks = chain(3, 2);
    put_chain(s, &blocks);
    for h in 1..=3u64 {
        let parent = if h == 1 {
            None
        } else {
            Some(hash(&blocks[h as usize - 2].0))
        };
        let fork = block_on(h, parent.as_ref(), None, 1, "fork");
        assert_ne!(hash(&fork), hash(&blocks[h as usize - 1].0));
        let fork_c = commit_for(h, &hash(&fork), 3);
        let err = s.put_finalized(&fork, &fork_c, b"fork").unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert!(err.to_string().contains("already finalized"), "{err}");
        assert_eq!(s.height_of(&hash(&fork)).unwrap(), None);
        assert_eq!(
            s.attestation_location(&attestation_id(&fork.attestations[0])).unwrap(),
            None
        );
    }
    for (b, c) in &blocks {
        let h = b.header.as_ref().unwrap().height;
        assert_eq!(s.block(h).unwrap().as_ref(), Some(b));
        assert_eq!(s.commit(h).unwrap().as_ref(), Some(c));
    }
    assert_eq!(s.chain_state().unwrap(), Some(state_for(3)));
}

fn invalid_inputs<S: Store>(s: &S) {
    let blocks = chain(1, 1);
    let (b, c) = &blocks[0];
    let mut no_header = b.clone();
    no_header.header = None;
    assert!(matches!(
        s.put_finalized(&no_header, c, b""),
        Err(StoreError::Invalid(_))
    ));
    let mut wrong_height = c.clone();
    wrong_height.height = 2;
    assert!(matches!(
        s.put_finalized(b, &wrong_height, b""),
        Err(StoreError::Invalid(_))
    ));
    let mut wrong_hash = c.clone();
    wrong_hash.block_hash = vec![9; 32];
    assert!(matches!(
        s.put_finalized(b, &wrong_hash, b""),
        Err(StoreError::Invalid(_))
    ));
    let mut other_chain = b.clone();
    other_chain.header.as_mut().unwrap().chain_id = "other-chain".into();
    let oc = commit_for(1, &hash(&other_chain), 3);
    let err = s.put_finalized(&other_chain, &oc, b"").unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("other-chain"), "{err}");
    assert_eq!(s.head().unwrap(), None);
}

fn update_commit_rules<S: Store>(s: &S) {
    let blocks = chain(2, 0);
    put_chain(s, &blocks);
    let h1 = hash(&blocks[0].0);
    // Larger certificate replaces.
    let bigger = commit_for(1, &h1, 5);
    s.update_commit(&bigger).unwrap();
    assert_eq!(s.commit(1).unwrap(), Some(bigger.clone()));
    // Smaller (or equal) certificate never shrinks the stored one.
    s.update_commit(&commit_for(1, &h1, 4)).unwrap();
    assert_eq!(s.commit(1).unwrap(), Some(bigger.clone()));
    let mut same_size = commit_for(1, &h1, 5);
    same_size.round = 1;
    s.update_commit(&same_size).unwrap();
    assert_eq!(s.commit(1).unwrap(), Some(bigger.clone()));
    // Different block hash: Conflict, nothing changes.
    let err = s.update_commit(&commit_for(1, &[0x42; 32], 9)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(s.commit(1).unwrap(), Some(bigger));
    // Unknown height: Conflict.
    let err = s.update_commit(&commit_for(3, &[0x42; 32], 9)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(s.commit(3).unwrap(), None);
    // Other heights untouched, head untouched.
    assert_eq!(s.commit(2).unwrap().as_ref(), Some(&blocks[1].1));
    assert_eq!(s.head().unwrap(), Some((2, hash(&blocks[1].0))));
}

fn blocks_range_limits<S: Store>(s: &S) {
    let blocks = chain(6, 2);
    put_chain(s, &blocks);
    let size = |i: usize| blocks[i].0.encoded_len() + blocks[i].1.encoded_len();

    let all = s.blocks_range(1, 100, usize::MAX).unwrap();
    assert_eq!(all, blocks);
    assert_eq!(s.blocks_range(0, 100, usize::MAX).unwrap(), blocks);
    assert_eq!(s.blocks_range(3, 2, usize::MAX).unwrap(), blocks[2..4].to_vec());
    assert_eq!(s.blocks_range(5, 100, usize::MAX).unwrap(), blocks[4..].to_vec());
    assert!(s.blocks_range(7, 100, usize::MAX).unwrap().is_empty());
    assert!(s.blocks_range(1, 0, usize::MAX).unwrap().is_empty());
    assert!(s.blocks_range(u64::MAX, 10, usize::MAX).unwrap().is_empty());
    // Byte limit: exactly two blocks fit.
    let two = size(0) + size(1);
    assert_eq!(s.blocks_range(1, 100, two).unwrap(), blocks[..2].to_vec());
    assert_eq!(s.blocks_range(1, 100, two + size(2) - 1).unwrap(), blocks[..2].to_vec());
    // The first block is always served, even if larger than the limit.
    assert_eq!(s.blocks_range(2, 100, 0).unwrap(), blocks[1..2].to_vec());
}

fn duplicate_attestation_keeps_first<S: Store>(s: &S) {
    let blocks = chain(1, 2);
    put_chain(s, &blocks);
    let h1 = hash(&blocks[0].0);
    let mut b2 = block_on(2, Some(&h1), Some(blocks[0].1.clone()), 1, "dup");
    // Block 2 carries block 1's first attestation again, twice.
    b2.attestations.push(blocks[0].0.attestations[0].clone());
    b2.attestations.push(blocks[0].0.attestations[0].clone());
    let c2 = commit_for(2, &hash(&b2), 3);
    s.put_finalized(&b2, &c2, b"s2").unwrap();
    let dup = attestation_id(&blocks[0].0.attestations[0]);
    assert_eq!(s.attestation_location(&dup).unwrap(), Some((1, 0)));
    assert_eq!(
        s.attestation_location(&attestation_id(&b2.attestations[0])).unwrap(),
        Some((2, 0))
    );
}

fn wal_roundtrip<S: Store>(s: &S) {
    let entries = vec![
        wal_proposal(1, 0),
        wal_vote(1, 0, WalKind::Own, 1),
        wal_vote(1, 0, WalKind::Received, 2),
        wal_vote(2, 0, WalKind::Received, 3),
        wal_vote(1, 1, WalKind::Received, 4), // late message for an older height
        wal_vote(3, 0, WalKind::Own, 5),
        wal_proposal(2, 1),
    ];
    for (i, e) in entries.iter().enumerate() {
        s.wal_append(e, i % 2 == 0).unwrap();
    }
    assert_eq!(s.wal_entries_from(0).unwrap(), entries);
    assert_eq!(s.wal_entries_from(1).unwrap(), entries);
    let from2: Vec<_> = entries.iter().filter(|e| e.height >= 2).cloned().collect();
    assert_eq!(from2.len(), 3);
    assert_eq!(s.wal_entries_from(2).unwrap(), from2);
    assert!(s.wal_entries_from(4).unwrap().is_empty());

    s.wal_prune_below(2).unwrap();
    assert_eq!(s.wal_entries_from(0).unwrap(), from2);
    // Appends after a prune keep append order.
    let late = wal_vote(1, 2, WalKind::Received, 6);
    let next = wal_vote(4, 0, WalKind::Own, 7);
    s.wal_append(&late, true).unwrap();
    s.wal_append(&next, false).unwrap();
    let mut expect = from2.clone();
    expect.push(late);
    expect.push(next.clone());
    assert_eq!(s.wal_entries_from(0).unwrap(), expect);
    s.wal_prune_below(10).unwrap();
    assert!(s.wal_entries_from(0).unwrap().is_empty());
    s.wal_append(&next, true).unwrap();
    assert_eq!(s.wal_entries_from(0).unwrap(), vec![next]);
}

fn guard_rules<S: Store>(s: &S) {
    assert_eq!(s.guard_position().unwrap(), None);
    s.guard_advance(pos(1, 0, 0)).unwrap();
    s.guard_advance(pos(1, 0, 0)).unwrap(); // equal: re-sign identical
    s.guard_advance(pos(1, 0, 1)).unwrap();
    s.guard_advance(pos(1, 0, 2)).unwrap();
    s.guard_advance(pos(1, 3, 0)).unwrap();
    assert_eq!(s.guard_position().unwrap(), Some(pos(1, 3, 0)));
    for back in [pos(1, 2, 2), pos(1, 0, 2), pos(0, 9, 2), pos(1, 2, 0)] {
        let err = s.guard_advance(back).unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{back:?}: {err}");
        assert!(err.to_string().contains("double-sign"), "{err}");
    }
    assert_eq!(s.guard_position().unwrap(), Some(pos(1, 3, 0)));
    // There is no step 3: the type refuses it (it was StoreError::Invalid
    // while storage had its own position with a u8 step).
    assert_eq!(SignStep::try_from(3u8), Err(3));
    assert_eq!(s.guard_position().unwrap(), Some(pos(1, 3, 0)));
    s.guard_advance(pos(2, 0, 0)).unwrap();
    s.guard_advance(pos(u64::MAX, u32::MAX, 2)).unwrap();
    assert_eq!(s.guard_position().unwrap(), Some(pos(u64::MAX, u32::MAX, 2)));
}

fn persist_own_is_guarded<S: Store>(s: &S) {
    let own = |h: u64| wal_vote(h, 0, WalKind::Own, h as u8);
    s.persist_own(pos(3, 1, 1), &own(3)).unwrap();
    assert_eq!(s.guard_position().unwrap(), Some(pos(3, 1, 1)));
    assert_eq!(s.wal_entries_from(0).unwrap(), vec![own(3)]);
    // A step back is refused and writes nothing: neither guard nor WAL.
    let err = s.persist_own(pos(3, 0, 2), &own(4)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(SignStep::try_from(3u8), Err(3));
    assert_eq!(s.guard_position().unwrap(), Some(pos(3, 1, 1)));
    assert_eq!(s.wal_entries_from(0).unwrap(), vec![own(3)]);
    s.persist_own(pos(3, 1, 1), &own(3)).unwrap(); // equal: re-sign identical
    s.persist_own(pos(4, 0, 0), &own(4)).unwrap();
    assert_eq!(s.wal_entries_from(0).unwrap(), vec![own(3), own(3), own(4)]);
}

fn concurrent_writers<S: Store>(s: &S) {
    // Four threads race on the guard and the WAL. The guard must end at the
    // maximum, every acknowledged advance must be <= the final position,
    // and each thread's WAL entries must appear in its own order.
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            scope.spawn(move || {
                for i in 0..50u64 {
                    let p = pos(i, u32::from(t), 0);
                    match s.guard_advance(p) {
                        Ok(()) | Err(StoreError::Conflict(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                    s.wal_append(&wal_vote(i, 0, WalKind::Received, t), i % 10 == 0)
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(s.guard_position().unwrap(), Some(pos(49, 3, 0)));
    let wal = s.wal_entries_from(0).unwrap();
    assert_eq!(wal.len(), 200);
    for t in 0..4u8 {
        let heights: Vec<u64> = wal
            .iter()
            .filter(|e| match &e.msg.msg {
                Some(bizra_proto::consensus_message::Msg::Vote(v)) => v.signature[0] == t,
                _ => false,
            })
            .map(|e| e.height)
            .collect();
        assert_eq!(heights, (0..50).collect::<Vec<_>>(), "thread {t}");
    }
}

/// H2: every finalized (attester, nonce) is indexed at its first use, so
/// nonce uniqueness does not depend on a bounded memory.
fn nonce_index_holds_every_finalized_nonce<S: Store>(s: &S) {
    let att = |attester: &str, nonce: u8, subject: &str| bizra_proto::Envelope {
        payload_type: bizra_proto::payload_type::POI.into(),
        payload: bizra_proto::PoiAttestation {
            attester: attester.into(),
            subject: subject.into(),
            nonce: vec![nonce],
            ..Default::default()
        }
        .encode_to_vec(),
        signatures: vec![],
    };
    let mut blocks = chain(3, 0);
    blocks[0].0.attestations = vec![att("a", 1, "x")];
    blocks[1].0.attestations = vec![att("a", 1, "y"), att("b", 1, "x")];
    put_chain(s, &blocks);
    assert_eq!(s.nonce_location("a", &[1]).unwrap(), Some((1, 0)), "first use kept");
    assert_eq!(s.nonce_location("b", &[1]).unwrap(), Some((2, 1)));
    assert_eq!(s.nonce_location("a", &[2]).unwrap(), None);
    assert_eq!(s.nonce_location("c", &[1]).unwrap(), None);
    let reused = attestation_id(&blocks[1].0.attestations[0]);
    assert_eq!(s.attestation_location(&reused).unwrap(), Some((2, 0)));
    assert_ne!(bizra_storage::nonce_key("a", &[1]), reused);
}

macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod mem_store {
            use super::common::identity;
            $(
                #[test]
                fn $name() {
                    super::$name(&bizra_storage::MemStore::with_identity(&identity()));
                }
            )*
        }
        mod sled_store {
            use super::common::identity;
            $(
                #[test]
                fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let s = bizra_storage::SledStore::open(&dir.path().join("data"), &identity())
                        .unwrap();
                    super::$name(&s);
                    // Whatever the test did, the directory is still consistent.
                    s.verify_full().unwrap();
                    drop(s);
                    let s = bizra_storage::SledStore::open(&dir.path().join("data"), &identity())
                        .unwrap();
                    s.verify_full().unwrap();
                }
            )*
        }
    };
}

contract_tests!(
    empty_store,
    finalize_roundtrip,
    append_order_enforced,
    idempotent_reput,
    conflict_on_different_hash,
    range_put_is_all_or_nothing,
    invalid_inputs,
    update_commit_rules,
    blocks_range_limits,
    duplicate_attestation_keeps_first,
    wal_roundtrip,
    guard_rules,
    persist_own_is_guarded,
    concurrent_writers,
    nonce_index_holds_every_finalized_nonce,
);

#[test]
fn mem_store_without_identity_accepts_any_chain() {
    let s = bizra_storage::MemStore::new();
    let mut b = block_on(1, None, None, 0, "x");
    b.header.as_mut().unwrap().chain_id = "anything".into();
    let c = commit_for(1, &hash(&b), 1);
    s.put_finalized(&b, &c, b"s").unwrap();
    assert_eq!(s.head().unwrap(), Some((1, hash(&b))));
}
