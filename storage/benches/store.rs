//! Criterion benches of the durable writes on a validator's hot path
//! (docs/BENCHMARKS.md has the numbers).
//!
//! * `sled/wal_append_sync`: one own consensus message appended with
//!   `sync = true` (what happens before every signed vote leaves the node:
//!   sled flush + anchor `fdatasync`).
//! * `sled/wal_append_nosync`: the same without the flush (received messages).
//! * `sled/guard_advance`: the double-sign guard, always flushed.
//! * `sled/put_finalized_{empty,100att}`: one finalized block with a
//!   4-precommit certificate (and 100 attestation envelopes), one sled
//!   transaction, flushed.
//! * `fs/sync_data_64B`: the physical floor: a 64-byte `pwrite` + `fdatasync`
//!   on a plain file in the same filesystem.
//!
//! The data dir is a temporary directory (`$TMPDIR`). Run:
//! `cargo bench -p bizra-storage --bench store`.

use bizra_proto::{
    consensus_message, Block, BlockHeader, CommitCertificate, ConsensusMessage, Envelope, EnvelopeSignature,
    SignedVote, Vote,
};
use bizra_storage::{block_hash_of, DataDirIdentity, SignPosition, SledStore, Store, WalEntry, WalKind};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

const CHAIN: &str = "bizra-bench";

fn identity() -> DataDirIdentity {
    DataDirIdentity {
        chain_id: CHAIN.into(),
        genesis_hash: [1u8; 32],
        validator: "ab".repeat(32),
    }
}

fn vote(height: u64, validator: usize) -> SignedVote {
    SignedVote {
        vote: Some(Vote {
            chain_id: CHAIN.into(),
            height,
            round: 0,
            kind: 2,
            block_hash: vec![7u8; 32],
            validator: format!("{validator:064x}"),
        }),
        signature: vec![0x55; 64],
    }
}

fn wal_entry(height: u64) -> WalEntry {
    WalEntry {
        height,
        kind: WalKind::Own,
        msg: ConsensusMessage {
            msg: Some(consensus_message::Msg::Vote(vote(height, 0))),
            attempt: 0,
        },
    }
}

fn envelope(height: u64, i: usize) -> Envelope {
    let mut payload = vec![0u8; 200];
    payload[..8].copy_from_slice(&height.to_le_bytes());
    payload[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    Envelope {
        payload_type: "application/vnd.bizra.poi+protobuf".into(),
        payload,
        signatures: vec![EnvelopeSignature {
            keyid: "cd".repeat(32),
            sig: vec![0x66; 64],
        }],
    }
}

/// The next finalized block on top of `parent` with its certificate.
fn next_block(height: u64, parent: [u8; 32], attestations: usize) -> (Block, CommitCertificate) {
    let header = BlockHeader {
        chain_id: CHAIN.into(),
        height,
        parent_hash: parent.to_vec(),
        proposer: "ab".repeat(32),
        time_ms: 1_700_000_000_000 + height,
        payload_root: vec![2u8; 32],
        last_commit_hash: vec![3u8; 32],
        epoch: 0,
        evidence_root: vec![],
    };
    let hash = block_hash_of(&header);
    let block = Block {
        header: Some(header),
        last_commit: None,
        attestations: (0..attestations).map(|i| envelope(height, i)).collect(),
        evidence: vec![],
    };
    let commit = CommitCertificate {
        height,
        round: 0,
        block_hash: hash.to_vec(),
        precommits: (0..4).map(|v| vote(height, v)).collect(),
    };
    (block, commit)
}

/// An opaque chain-state blob of realistic size (the node stores JSON).
fn state_blob() -> Vec<u8> {
    vec![b'x'; 1500]
}

fn bench_sled(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open(&tmp.path().join("data"), &identity()).expect("open");
    let mut g = c.benchmark_group("sled");
    g.sample_size(30).measurement_time(Duration::from_secs(6));
    let mut h = 0u64;
    g.bench_function("wal_append_sync", |b| {
        b.iter(|| {
            h += 1;
            store.wal_append(black_box(&wal_entry(h)), true).expect("wal")
        })
    });
    g.bench_function("wal_append_nosync", |b| {
        b.iter(|| {
            h += 1;
            store.wal_append(black_box(&wal_entry(h)), false).expect("wal")
        })
    });
    let mut pos = 0u64;
    g.bench_function("guard_advance", |b| {
        b.iter(|| {
            pos += 1;
            store
                .guard_advance(SignPosition {
                    height: pos,
                    round: 0,
                    step: bizra_consensus::types::SignStep::Precommit,
                })
                .expect("guard")
        })
    });
    let state = state_blob();
    let mut head: (u64, [u8; 32]) = (0, [0u8; 32]);
    for (name, atts) in [("put_finalized_empty", 0usize), ("put_finalized_100att", 100)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let (block, commit) = next_block(head.0 + 1, head.1, atts);
                    let t = Instant::now();
                    store.put_finalized(&block, &commit, &state).expect("put");
                    spent += t.elapsed();
                    head = (head.0 + 1, commit.block_hash.as_slice().try_into().expect("32"));
                }
                spent
            })
        });
    }
    g.finish();
}

fn bench_fs(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut f = std::fs::File::create(tmp.path().join("probe")).expect("file");
    let mut g = c.benchmark_group("fs");
    g.sample_size(30).measurement_time(Duration::from_secs(4));
    g.bench_function("sync_data_64B", |b| {
        b.iter(|| {
            f.seek(SeekFrom::Start(0)).expect("seek");
            f.write_all(&[0xa5; 64]).expect("write");
            f.sync_data().expect("fdatasync")
        })
    });
    g.finish();
}

criterion_group!(benches, bench_sled, bench_fs);
criterion_main!(benches);
