//! Criterion benches of the consensus hot path (docs/BENCHMARKS.md has the
//! numbers and how to read them).
//!
//! * `ed25519/verify_single`: the one signature rule, `signing::verify`
//!   (`verify_strict` over DSSE PAE) of one vote.
//! * `ed25519/verify_batched_64_NOT_USED_BY_CONSENSUS`: ed25519-dalek's
//!   `verify_batch` over 64 signatures, only to show what ADR 0004 gives up;
//!   consensus never calls it (a batch may accept what `verify_strict`
//!   rejects). Compare per-signature time with `verify_single`.
//! * `vote_tally/{4,100,1000}`: `VoteKeeper::new(weights, 6667)`, `add` of one
//!   precommit per validator, then `quorum_for`. Votes are signed and checked
//!   in setup, outside the measurement.
//! * `block/*`: prost encoding of a block (header, 100-precommit certificate,
//!   100 attestations), its BLAKE3 hash (`messages::block_hash`), decoding.
//! * `merkle/*`: the attestation Merkle root over 1000 leaves, and
//!   `chain::payload_root` over 1000 envelopes (leaf hashing included).
//!
//! Run: `cargo bench -p bizra-consensus --bench hot_path`.

use bizra_consensus::chain::{attestation_leaves, payload_root};
use bizra_consensus::messages::{block_hash, check_vote, encode_vote, new_vote, sign_vote, VerifiedVote};
use bizra_consensus::signing::{self, Signer};
use bizra_consensus::validators::{Member, Membership};
use bizra_consensus::vote_keeper::VoteKeeper;
use bizra_consensus::{merkle, poi};
use bizra_proto::{payload_type, Block, BlockHeader, CommitCertificate, Envelope, VoteKind};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prost::Message;
use std::collections::BTreeMap;
use std::hint::black_box;

const CHAIN: &str = "bizra-bench";

fn signer(i: usize) -> Signer {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    secret[31] = 0x5a;
    Signer::from_secret(secret)
}

fn validators(n: usize) -> (Vec<Signer>, Membership) {
    let s: Vec<Signer> = (0..n).map(signer).collect();
    let m = Membership::new(
        s.iter()
            .enumerate()
            .map(|(i, s)| Member {
                id: s.id().to_string(),
                name: format!("node{i}"),
                stake: 1_000_000,
                key: s.public_key(),
            })
            .collect(),
    );
    (s, m)
}

fn precommits(signers: &[Signer], members: &Membership, height: u64, value: [u8; 32]) -> Vec<VerifiedVote> {
    signers
        .iter()
        .map(|s| {
            let v = new_vote(CHAIN, height, 0, VoteKind::Precommit, Some(value), s.id());
            check_vote(CHAIN, members, &sign_vote(s, v)).expect("valid vote")
        })
        .collect()
}

fn attestation(s: &Signer, i: u64) -> Envelope {
    let mut dims = BTreeMap::new();
    dims.insert("quality".to_string(), 8000);
    dims.insert("reach".to_string(), 6000);
    let mut weights = BTreeMap::new();
    weights.insert("quality".to_string(), 5000);
    weights.insert("reach".to_string(), 5000);
    let mut nonce = vec![0u8; 16];
    nonce[..8].copy_from_slice(&i.to_le_bytes());
    poi::build(
        s,
        poi::Draft {
            chain_id: CHAIN.into(),
            subject: format!("subject-{i}"),
            evidence_digest: *blake3::hash(&i.to_le_bytes()).as_bytes(),
            evidence_len: 1024,
            dimensions: dims,
            weights,
            window_start_ms: 1_700_000_000_000,
            window_end_ms: 1_700_000_060_000,
            nonce,
        },
    )
    .expect("valid draft")
}

fn bench_ed25519(c: &mut Criterion) {
    let (s, _) = validators(64);
    // 64 distinct votes by 64 distinct keys, like one certificate's precommits.
    let votes: Vec<(Vec<u8>, [u8; 64])> = s
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v = new_vote(CHAIN, 1000 + i as u64, 0, VoteKind::Precommit, Some([7u8; 32]), s.id());
            let payload = encode_vote(&v);
            let sig = s.sign(payload_type::VOTE, &payload);
            (payload, sig)
        })
        .collect();
    let keys: Vec<_> = s.iter().map(|s| s.public_key()).collect();
    let mut g = c.benchmark_group("ed25519");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_single", |b| {
        b.iter(|| {
            signing::verify(
                &keys[0],
                payload_type::VOTE,
                black_box(&votes[0].0),
                black_box(&votes[0].1),
            )
            .expect("valid")
        })
    });
    // Comparison only. Messages are the PAE bytes the one rule signs over.
    let paes: Vec<Vec<u8>> = votes.iter().map(|(p, _)| signing::pae(payload_type::VOTE, p)).collect();
    let msgs: Vec<&[u8]> = paes.iter().map(|p| p.as_slice()).collect();
    let sigs: Vec<ed25519_dalek::Signature> = votes
        .iter()
        .map(|(_, s)| ed25519_dalek::Signature::from_bytes(s))
        .collect();
    g.throughput(Throughput::Elements(64));
    g.bench_function("verify_single_x64", |b| {
        b.iter(|| {
            for (k, (p, sig)) in keys.iter().zip(&votes) {
                signing::verify(k, payload_type::VOTE, black_box(p), black_box(sig)).expect("valid");
            }
        })
    });
    g.bench_function("verify_batched_64_NOT_USED_BY_CONSENSUS", |b| {
        b.iter(|| ed25519_dalek::verify_batch(black_box(&msgs), black_box(&sigs), black_box(&keys)).expect("valid"))
    });
    g.finish();
}

fn bench_vote_tally(c: &mut Criterion) {
    let mut g = c.benchmark_group("vote_tally");
    for n in [4usize, 100, 1000] {
        let (s, m) = validators(n);
        let value = [9u8; 32];
        let votes = precommits(&s, &m, 5, value);
        // Unequal weights, base-dominant like wq_weight.
        let weights: Vec<u128> = (0..n).map(|i| 1_000_000 + 100 * (i as u128 % 1000)).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}_validators"), |b| {
            b.iter_batched(
                || votes.clone(),
                |votes| {
                    let mut k = VoteKeeper::new(weights.clone(), 6667);
                    for v in votes {
                        k.add(v);
                    }
                    assert!(k.quorum_for(0, VoteKind::Precommit, &Some(value)));
                    k
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// A block at height 101 with a 100-precommit last commit and 100 attestations.
fn big_block() -> Block {
    let (s, m) = validators(100);
    let parent = [3u8; 32];
    let commit = CommitCertificate {
        height: 100,
        round: 0,
        block_hash: parent.to_vec(),
        precommits: precommits(&s, &m, 100, parent).into_iter().map(|v| v.signed).collect(),
    };
    let atts: Vec<Envelope> = (0..100).map(|i| attestation(&s[i % s.len()], i as u64)).collect();
    let header = BlockHeader {
        chain_id: CHAIN.into(),
        height: 101,
        parent_hash: parent.to_vec(),
        proposer: s[0].id().to_string(),
        time_ms: 1_700_000_100_000,
        payload_root: payload_root(&atts).expect("shape").to_vec(),
        last_commit_hash: blake3::hash(&commit.encode_to_vec()).as_bytes().to_vec(),
        epoch: 1,
        evidence_root: Vec::new(),
    };
    Block {
        header: Some(header),
        last_commit: Some(commit),
        attestations: atts,
        evidence: Vec::new(),
    }
}

fn bench_block(c: &mut Criterion) {
    let block = big_block();
    let bytes = block.encode_to_vec();
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode_100pc_100att", |b| b.iter(|| black_box(&block).encode_to_vec()));
    g.bench_function("decode_100pc_100att", |b| {
        b.iter(|| Block::decode(black_box(bytes.as_slice())).expect("decodes"))
    });
    g.bench_function("encode_and_blake3_100pc_100att", |b| {
        b.iter(|| *blake3::hash(&black_box(&block).encode_to_vec()).as_bytes())
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("block_hash_header", |b| {
        b.iter(|| block_hash(black_box(&block)).expect("header"))
    });
    let commit = block.last_commit.clone().expect("commit");
    g.bench_function("last_commit_hash_100pc", |b| {
        b.iter(|| *blake3::hash(&black_box(&commit).encode_to_vec()).as_bytes())
    });
    g.finish();
}

fn bench_merkle(c: &mut Criterion) {
    let (s, _) = validators(16);
    let atts: Vec<Envelope> = (0..1000).map(|i| attestation(&s[i % s.len()], i as u64)).collect();
    let leaves = attestation_leaves(&atts).expect("shape");
    let mut g = c.benchmark_group("merkle");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("root_1000_leaves", |b| b.iter(|| merkle::root(black_box(&leaves))));
    g.bench_function("payload_root_1000_envelopes", |b| {
        b.iter(|| payload_root(black_box(&atts)).expect("shape"))
    });
    g.finish();
}

criterion_group!(benches, bench_ed25519, bench_vote_tally, bench_block, bench_merkle);
criterion_main!(benches);
