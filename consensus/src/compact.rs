//! The compact gossip form of a proposal's last commit (docs/adr/0018).
//!
//! A commit certificate's precommits all share the chain id, height, round,
//! kind and block hash, so a proposal on the wire carries only a bitmap of
//! who signed (genesis validator order) and their 64-byte signatures:
//! ~66 bytes a signer instead of ~190. At 100 validators that keeps a
//! proposal under 8 KiB (19-20 KB before), the size past which every
//! connection's codec and encryption buffers grow, and never shrink again.
//!
//! Nothing is trusted by the compaction: [`expand_proposal`] rebuilds the
//! exact [`CommitCertificate`] the proposer holds (same precommits, same
//! order, so the same encoding and `last_commit_hash`), and the rebuilt
//! block then goes through every check a full one does. A certificate the
//! compact form cannot express (a precommit not in validator order, or with
//! other fields) stays in full: [`compact_proposal`] leaves it as it is.

use crate::messages::MessageError;
use crate::validators::Membership;
use bizra_proto::{CommitCertificate, CompactCommit, SignedProposal, SignedVote, Vote, VoteKind};

/// Bytes of one Ed25519 signature.
const SIGNATURE_BYTES: usize = 64;
/// Bytes of a block hash (BLAKE3-256).
const HASH_BYTES: usize = 32;

/// The compact form of `cert`, or `None` when its block hash is not 32
/// bytes or it has a precommit the form cannot express: one not for (`chain_id`, cert height, round, block
/// hash) as a PRECOMMIT, from a non-member, with a signature that is not 64
/// bytes, not canonically encoded, or out of strict validator order.
pub fn compact_commit(chain_id: &str, members: &Membership, cert: &CommitCertificate) -> Option<CompactCommit> {
    if cert.block_hash.len() != HASH_BYTES {
        return None;
    }
    let n = members.len();
    let mut signers = vec![0u8; n.div_ceil(8)];
    let mut signatures = Vec::with_capacity(cert.precommits.len() * SIGNATURE_BYTES);
    let mut next = 0usize;
    for sv in &cert.precommits {
        let v = sv.vote.as_ref()?;
        let i = members.index_of(&v.validator)?;
        let expected = precommit(chain_id, members, cert.height, cert.round, &cert.block_hash, i);
        if i < next || *v != expected || sv.signature.len() != SIGNATURE_BYTES {
            return None;
        }
        signers[i / 8] |= 1 << (i % 8);
        signatures.extend_from_slice(&sv.signature);
        next = i + 1;
    }
    Some(CompactCommit {
        height: cert.height,
        round: cert.round,
        block_hash: cert.block_hash.clone(),
        signers,
        signatures,
    })
}

/// The certificate `c` stands for: each signer's PRECOMMIT for (`chain_id`,
/// height, round, block hash) with its signature, in validator order. The
/// block hash must be 32 bytes, the bitmap exactly `ceil(n / 8)` bytes with
/// no bit at or past `n`, and there must be exactly 64 signature bytes per
/// signer; so the result is at most `n` precommits of bounded size.
/// Signatures are not checked here.
pub fn expand_commit(
    chain_id: &str,
    members: &Membership,
    c: &CompactCommit,
) -> Result<CommitCertificate, MessageError> {
    let n = members.len();
    // Checked first: the hash is copied into every rebuilt precommit, so a
    // long one would multiply the message's size by the signer count.
    if c.block_hash.len() != HASH_BYTES {
        return Err(MessageError::Malformed(format!(
            "compact commit: block hash of {} bytes, not {HASH_BYTES}",
            c.block_hash.len()
        )));
    }
    if c.signers.len() != n.div_ceil(8) {
        return Err(MessageError::Malformed(format!(
            "compact commit: signer bitmap of {} bytes for {n} validators",
            c.signers.len()
        )));
    }
    let set: Vec<usize> = (0..c.signers.len() * 8)
        .filter(|&i| c.signers[i / 8] & (1 << (i % 8)) != 0)
        .collect();
    if set.last().is_some_and(|&i| i >= n) {
        return Err(MessageError::Malformed(
            "compact commit: signer bit past the validator set".into(),
        ));
    }
    if c.signatures.len() != set.len() * SIGNATURE_BYTES {
        return Err(MessageError::Malformed(format!(
            "compact commit: {} signature bytes for {} signers",
            c.signatures.len(),
            set.len()
        )));
    }
    let precommits = set
        .iter()
        .zip(c.signatures.chunks_exact(SIGNATURE_BYTES))
        .map(|(&i, sig)| SignedVote {
            vote: Some(precommit(chain_id, members, c.height, c.round, &c.block_hash, i)),
            signature: sig.to_vec(),
        })
        .collect();
    Ok(CommitCertificate {
        height: c.height,
        round: c.round,
        block_hash: c.block_hash.clone(),
        precommits,
    })
}

/// `sp` as gossip sends it: its block's last commit moved into
/// `compact_last_commit` when [`compact_commit`] can express it; otherwise
/// (or without a last commit) unchanged.
pub fn compact_proposal(chain_id: &str, members: &Membership, sp: &SignedProposal) -> Option<SignedProposal> {
    let block = sp.block.as_ref()?;
    let compact = compact_commit(chain_id, members, block.last_commit.as_ref()?)?;
    let mut out = sp.clone();
    if let Some(b) = out.block.as_mut() {
        b.last_commit = None;
    }
    out.compact_last_commit = Some(compact);
    Some(out)
}

/// The full proposal of a received one: a `compact_last_commit` is
/// expanded into the block's last commit ([`expand_commit`]). A proposal
/// with both forms, or a compact commit without a block, is malformed.
pub fn expand_proposal(
    chain_id: &str,
    members: &Membership,
    mut sp: SignedProposal,
) -> Result<SignedProposal, MessageError> {
    let Some(compact) = sp.compact_last_commit.take() else {
        return Ok(sp);
    };
    let block = sp
        .block
        .as_mut()
        .ok_or_else(|| MessageError::Malformed("compact commit without a block".into()))?;
    if block.last_commit.is_some() {
        return Err(MessageError::Malformed("both a last commit and a compact one".into()));
    }
    block.last_commit = Some(expand_commit(chain_id, members, &compact)?);
    Ok(sp)
}

/// The PRECOMMIT vote of member `i` for (`chain_id`, height, round, hash).
fn precommit(chain_id: &str, members: &Membership, height: u64, round: u32, hash: &[u8], i: usize) -> Vote {
    Vote {
        chain_id: chain_id.to_owned(),
        height,
        round,
        kind: VoteKind::Precommit as i32,
        block_hash: hash.to_vec(),
        validator: members.get(i).id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{Genesis, GenesisDoc, GenesisParams, GenesisValidator};
    use crate::messages::{new_vote, sign_vote};
    use crate::signing::Signer;
    use bizra_proto::{Block, BlockHeader, Proposal};
    use proptest::prelude::*;
    use prost::Message;

    fn signer(i: usize) -> Signer {
        Signer::from_secret([i as u8 + 1; 32])
    }

    fn genesis(n: usize) -> Genesis {
        let doc = GenesisDoc {
            chain_id: "bizra-compact".into(),
            genesis_time_ms: 1,
            params: GenesisParams::default(),
            validators: (0..n)
                .map(|i| GenesisValidator {
                    id: signer(i).id().to_string(),
                    stake: 1000,
                    name: format!("v{i}"),
                })
                .collect(),
        };
        Genesis::from_doc(&doc).expect("genesis").0
    }

    /// A certificate for B7 round 2 signed by `who` (genesis indices, in
    /// the given order) with real signatures.
    fn cert(g: &Genesis, who: &[usize]) -> CommitCertificate {
        let hash = [7u8; 32];
        CommitCertificate {
            height: 7,
            round: 2,
            block_hash: hash.to_vec(),
            precommits: who
                .iter()
                .map(|&i| {
                    let s = signer(i);
                    sign_vote(
                        &s,
                        new_vote(g.chain_id(), 7, 2, VoteKind::Precommit, Some(hash), s.id()),
                    )
                })
                .collect(),
        }
    }

    fn proposal(g: &Genesis, last: Option<CommitCertificate>) -> SignedProposal {
        SignedProposal {
            proposal: Some(Proposal {
                chain_id: g.chain_id().into(),
                height: 8,
                round: 0,
                pol_round: -1,
                block_hash: vec![9; 32],
                proposer: signer(0).id().to_string(),
            }),
            signature: vec![1; 64],
            block: Some(Block {
                header: Some(BlockHeader {
                    chain_id: g.chain_id().into(),
                    height: 8,
                    parent_hash: vec![7; 32],
                    proposer: signer(0).id().to_string(),
                    time_ms: 1_700_000_000_000,
                    payload_root: vec![3; 32],
                    last_commit_hash: vec![4; 32],
                    epoch: 0,
                    evidence_root: Vec::new(),
                }),
                last_commit: last,
                attestations: Vec::new(),
                evidence: Vec::new(),
            }),
            compact_last_commit: None,
        }
    }

    #[test]
    fn a_certificate_in_validator_order_round_trips_byte_for_byte() {
        let g = genesis(9);
        for who in [vec![], vec![0], vec![8], vec![0, 1, 2, 3, 4, 5], vec![1, 3, 5, 7, 8]] {
            let c = cert(&g, &who);
            let compact = compact_commit(g.chain_id(), &g.members, &c).expect("expressible");
            assert_eq!(compact.signers.len(), 2);
            let back = expand_commit(g.chain_id(), &g.members, &compact).expect("expands");
            assert_eq!(back.encode_to_vec(), c.encode_to_vec(), "signers {who:?}");
        }
    }

    #[test]
    fn at_100_validators_a_proposal_fits_in_8_kib_compact_and_not_in_full() {
        let g = genesis(100);
        let who: Vec<usize> = (0..100).filter(|&i| i != 42).collect();
        let full = proposal(&g, Some(cert(&g, &who)));
        let compact = compact_proposal(g.chain_id(), &g.members, &full).expect("compacts");
        let (full_len, compact_len) = (full.encoded_len(), compact.encoded_len());
        assert!(compact_len < 8 * 1024, "compact {compact_len} B");
        assert!(full_len > 16 * 1024, "full {full_len} B");
        let back = expand_proposal(g.chain_id(), &g.members, compact).expect("expands");
        assert_eq!(back, full);
    }

    #[test]
    fn what_the_form_cannot_express_stays_in_full() {
        let g = genesis(5);
        let id = |c: &CommitCertificate| compact_commit(g.chain_id(), &g.members, c);
        assert!(id(&cert(&g, &[0, 2, 1])).is_none(), "out of order");
        assert!(id(&cert(&g, &[1, 1])).is_none(), "repeated signer");
        let mut c = cert(&g, &[0, 1]);
        c.round = 3;
        assert!(id(&c).is_none(), "precommit for another round");
        let mut c = cert(&g, &[0, 1]);
        c.precommits[1].vote.as_mut().unwrap().kind = VoteKind::Prevote as i32;
        assert!(id(&c).is_none(), "a prevote");
        let mut c = cert(&g, &[0, 1]);
        c.precommits[0].vote.as_mut().unwrap().chain_id = "other".into();
        assert!(id(&c).is_none(), "another chain");
        let mut c = cert(&g, &[0, 1]);
        c.precommits[0].vote.as_mut().unwrap().validator = signer(9).id().to_string();
        assert!(id(&c).is_none(), "not a member");
        let mut c = cert(&g, &[0, 1]);
        c.precommits[0].signature.push(0);
        assert!(id(&c).is_none(), "65-byte signature");
        let mut c = cert(&g, &[0, 1]);
        c.precommits[0].vote = None;
        assert!(id(&c).is_none(), "no vote");
        // A proposal whose commit cannot be compacted is sent as it is.
        let full = proposal(&g, Some(cert(&g, &[2, 0])));
        assert!(compact_proposal(g.chain_id(), &g.members, &full).is_none());
        assert!(compact_proposal(g.chain_id(), &g.members, &proposal(&g, None)).is_none());
    }

    #[test]
    fn a_malformed_compact_commit_is_refused_with_the_reason() {
        let g = genesis(10);
        let good = compact_commit(g.chain_id(), &g.members, &cert(&g, &[0, 9])).unwrap();
        let refuse = |c: CompactCommit, why: &str| {
            let e = expand_commit(g.chain_id(), &g.members, &c).expect_err(why).to_string();
            assert!(e.contains("compact commit"), "{why}: {e}");
        };
        let mut c = good.clone();
        c.signers.push(0);
        refuse(c, "bitmap one byte long");
        let mut c = good.clone();
        c.signers.pop();
        refuse(c, "bitmap one byte short");
        let mut c = good.clone();
        c.signers[1] |= 0b100; // validator 10 of 10
        refuse(c, "bit past the set");
        let mut c = good.clone();
        c.signatures.pop();
        refuse(c, "63 bytes of the last signature");
        let mut c = good.clone();
        c.signatures.extend_from_slice(&[0; 64]);
        refuse(c, "a signature too many");
        // A hash of any other length: each rebuilt precommit would copy it.
        for len in [0, 31, 33, 4 << 20] {
            let mut c = good.clone();
            c.block_hash = vec![7; len];
            refuse(c, "block hash not 32 bytes");
        }
        // Both forms in one proposal, or a compact commit without a block.
        let mut sp = proposal(&g, Some(cert(&g, &[0])));
        sp.compact_last_commit = Some(good.clone());
        assert!(expand_proposal(g.chain_id(), &g.members, sp).is_err());
        let mut sp = proposal(&g, None);
        sp.block = None;
        sp.compact_last_commit = Some(good);
        assert!(expand_proposal(g.chain_id(), &g.members, sp).is_err());
        // A full proposal passes unchanged.
        let full = proposal(&g, Some(cert(&g, &[3])));
        assert_eq!(expand_proposal(g.chain_id(), &g.members, full.clone()).unwrap(), full);
    }

    proptest! {
        /// Any signer set, any validator count: compacting then expanding
        /// gives back the certificate's exact encoding, so its hash.
        #[test]
        fn any_signer_set_round_trips(n in 1usize..40, bits in proptest::collection::vec(any::<bool>(), 40), sig in any::<u8>()) {
            let g = genesis(n);
            let who: Vec<usize> = (0..n).filter(|&i| bits[i]).collect();
            let mut c = cert(&g, &[]);
            c.precommits = who
                .iter()
                .map(|&i| SignedVote {
                    vote: Some(precommit(g.chain_id(), &g.members, 7, 2, &[7; 32], i)),
                    signature: vec![sig.wrapping_add(i as u8); 64],
                })
                .collect();
            let compact = compact_commit(g.chain_id(), &g.members, &c).expect("expressible");
            prop_assert_eq!(compact.signers.len(), n.div_ceil(8));
            let back = expand_commit(g.chain_id(), &g.members, &compact).expect("expands");
            prop_assert_eq!(back.encode_to_vec(), c.encode_to_vec());
        }
    }
}
