//! Signed consensus messages: building, signing and checking them.
//!
//! A message from the network becomes a [`VerifiedVote`] or
//! [`VerifiedProposal`] only through [`check_vote`] / [`check_proposal`]:
//! canonical encoding, chain id, membership and the one signature rule. The
//! driver accepts nothing else, so it never processes an unchecked signature,
//! and the node can check once at the edge (before forwarding gossip).

use crate::signing::{self, Signer};
use crate::types::{hash_from_slice, Hash, Height, Round, SignStep};
use crate::validators::Membership;
use bizra_proto::{payload_type, Block, Proposal, SignedProposal, SignedVote, Vote, VoteKind};
use prost::Message;

/// Why a signed vote or proposal is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    /// The message names another chain.
    #[error("wrong chain id {found:?}, expected {expected:?}")]
    WrongChain {
        /// This chain's id.
        expected: String,
        /// The `chain_id` in the message.
        found: String,
    },
    /// The claimed signer (validator id) is not a genesis member.
    #[error("signer {0} is not in the validator set")]
    NotAValidator(String),
    /// The signature fails the one signature rule (ADR 0004).
    #[error("bad signature: {0}")]
    BadSignature(#[from] signing::SigError),
    /// A required field is missing or has a bad length or value; the text says which.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Canonical protobuf encoding: what is signed.
pub fn encode_vote(v: &Vote) -> Vec<u8> {
    v.encode_to_vec()
}

/// The vote's kind if it is `PREVOTE` or `PRECOMMIT`; `None` for any other value.
pub fn vote_kind(v: &Vote) -> Option<VoteKind> {
    match VoteKind::try_from(v.kind) {
        Ok(VoteKind::Prevote) => Some(VoteKind::Prevote),
        Ok(VoteKind::Precommit) => Some(VoteKind::Precommit),
        _ => None,
    }
}

/// A vote whose signature, chain and signer were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedVote {
    /// The signed vote as received; `vote` is present.
    pub signed: SignedVote,
    /// Genesis index of the signer.
    pub validator: usize,
    /// `Prevote` or `Precommit` (never another value).
    pub kind: VoteKind,
    /// The block hash voted for; `None` is a nil vote (empty `block_hash`).
    pub value: Option<Hash>,
}

impl VerifiedVote {
    /// The vote inside `signed`.
    pub fn vote(&self) -> &Vote {
        self.signed.vote.as_ref().expect("checked")
    }
    /// The height voted at.
    pub fn height(&self) -> Height {
        self.vote().height
    }
    /// The round voted at.
    pub fn round(&self) -> Round {
        self.vote().round
    }
    /// The sign-guard step of this vote: `Precommit` or `Prevote`.
    pub fn step(&self) -> SignStep {
        match self.kind {
            VoteKind::Precommit => SignStep::Precommit,
            _ => SignStep::Prevote,
        }
    }
}

/// A proposal whose signature, chain and signer were checked, and whose block
/// hashes to the proposed hash. Header validity is the driver's business.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedProposal {
    /// The signed proposal as received; `proposal` and `block` are present.
    pub signed: SignedProposal,
    /// Genesis index of the signer. Whether it is the round's proposer is
    /// checked by the driver ([`crate::driver::Driver::admit`]), not here.
    pub proposer: usize,
    /// The proposed block hash, equal to the hash of the carried block's header.
    pub block_hash: Hash,
}

impl VerifiedProposal {
    /// The proposal inside `signed`.
    pub fn proposal(&self) -> &Proposal {
        self.signed.proposal.as_ref().expect("checked")
    }
    /// The proposed block.
    pub fn block(&self) -> &Block {
        self.signed.block.as_ref().expect("checked")
    }
    /// The proof-of-lock round (Tendermint's `validRound`): the round of the
    /// polka behind a re-proposed value; `None` for a fresh value (`-1` on
    /// the wire). [`check_proposal`] admits only -1 or a round below the
    /// proposal's, so the value fits a [`Round`].
    pub fn pol_round(&self) -> Option<Round> {
        u32::try_from(self.proposal().pol_round).ok()
    }
}

/// Signs `vote` as is (payload type `application/vnd.bizra.vote+protobuf`,
/// over its protobuf encoding). No sign-guard check: the driver's guard
/// decides whether a vote may be signed.
pub fn sign_vote(signer: &Signer, vote: Vote) -> SignedVote {
    let sig = signer.sign(payload_type::VOTE, &encode_vote(&vote));
    SignedVote {
        vote: Some(vote),
        signature: sig.to_vec(),
    }
}

/// An unsigned vote; `value` `None` is nil (empty `block_hash`), `validator`
/// the signer's id.
pub fn new_vote(
    chain_id: &str,
    height: Height,
    round: Round,
    kind: VoteKind,
    value: Option<Hash>,
    validator: &str,
) -> Vote {
    Vote {
        chain_id: chain_id.to_string(),
        height,
        round,
        kind: kind as i32,
        block_hash: value.map(|h| h.to_vec()).unwrap_or_default(),
        validator: validator.to_string(),
    }
}

/// Checks a signed vote: canonical encoding, chain id, kind, hash length,
/// membership and the signature.
pub fn check_vote(chain_id: &str, members: &Membership, sv: &SignedVote) -> Result<VerifiedVote, MessageError> {
    check_vote_with(chain_id, members, sv, |_, _| false)
}

/// [`check_vote`], except that the signature is not checked again when
/// `known(validator index, sv)` says this exact signed vote (same fields,
/// same signature bytes) already passed the check: same bytes, same verdict.
pub fn check_vote_with(
    chain_id: &str,
    members: &Membership,
    sv: &SignedVote,
    known: impl Fn(usize, &SignedVote) -> bool,
) -> Result<VerifiedVote, MessageError> {
    let v = sv
        .vote
        .as_ref()
        .ok_or_else(|| MessageError::Malformed("vote missing".into()))?;
    if v.chain_id != chain_id {
        return Err(MessageError::WrongChain {
            expected: chain_id.into(),
            found: v.chain_id.clone(),
        });
    }
    let kind = vote_kind(v).ok_or_else(|| MessageError::Malformed(format!("unknown vote kind {}", v.kind)))?;
    let value = hash_from_slice(&v.block_hash).map_err(MessageError::Malformed)?;
    let validator = members
        .index_of(&v.validator)
        .ok_or_else(|| MessageError::NotAValidator(v.validator.clone()))?;
    if !known(validator, sv) {
        signing::verify(
            &members.get(validator).key,
            payload_type::VOTE,
            &encode_vote(v),
            &sv.signature,
        )?;
    }
    Ok(VerifiedVote {
        signed: sv.clone(),
        validator,
        kind,
        value,
    })
}

/// The block's hash ([`header_hash`] of its header); `None` if it has no header.
pub fn block_hash(block: &Block) -> Option<Hash> {
    block.header.as_ref().map(header_hash)
}

/// The block hash: BLAKE3 of the protobuf encoding of the block's header.
pub fn header_hash(header: &bizra_proto::BlockHeader) -> Hash {
    crate::types::hash_bytes(&header.encode_to_vec())
}

/// Signs `proposal` as is (payload type
/// `application/vnd.bizra.proposal+protobuf`, over its protobuf encoding) and
/// attaches `block`. The block is not signed itself: the proposal carries its
/// hash. No sign-guard check.
pub fn sign_proposal(signer: &Signer, proposal: Proposal, block: Block) -> SignedProposal {
    let sig = signer.sign(payload_type::PROPOSAL, &proposal.encode_to_vec());
    SignedProposal {
        proposal: Some(proposal),
        signature: sig.to_vec(),
        block: Some(block),
        compact_last_commit: None,
    }
}

/// Checks a signed proposal: chain id, a 32-byte block hash, `pol_round` -1 or
/// below `round`,
/// a block whose header hashes to that hash, a member as signer, then the
/// signature. The block's validity against the chain and whether the signer
/// is the round's proposer are left to the driver.
pub fn check_proposal(
    chain_id: &str,
    members: &Membership,
    sp: &SignedProposal,
) -> Result<VerifiedProposal, MessageError> {
    let p = sp
        .proposal
        .as_ref()
        .ok_or_else(|| MessageError::Malformed("proposal missing".into()))?;
    if p.chain_id != chain_id {
        return Err(MessageError::WrongChain {
            expected: chain_id.into(),
            found: p.chain_id.clone(),
        });
    }
    let proposed = hash_from_slice(&p.block_hash)
        .map_err(MessageError::Malformed)?
        .ok_or_else(|| MessageError::Malformed("proposal without block hash".into()))?;
    // Tendermint's validRound is -1 or an earlier round of the height: an
    // honest proposer never signs anything else, and reading any other value
    // (a later round, or one past u32) as "fresh" would give a signed field
    // a meaning its signer did not state.
    if p.pol_round < -1 || p.pol_round >= i64::from(p.round) {
        return Err(MessageError::Malformed(format!(
            "pol_round {} is neither -1 nor below round {}",
            p.pol_round, p.round
        )));
    }
    let block = sp
        .block
        .as_ref()
        .ok_or_else(|| MessageError::Malformed("proposal without block".into()))?;
    let actual = block_hash(block).ok_or_else(|| MessageError::Malformed("block without header".into()))?;
    if actual != proposed {
        return Err(MessageError::Malformed(
            "block does not hash to the proposed hash".into(),
        ));
    }
    let proposer = members
        .index_of(&p.proposer)
        .ok_or_else(|| MessageError::NotAValidator(p.proposer.clone()))?;
    signing::verify(
        &members.get(proposer).key,
        payload_type::PROPOSAL,
        &p.encode_to_vec(),
        &sp.signature,
    )?;
    Ok(VerifiedProposal {
        signed: sp.clone(),
        proposer,
        block_hash: proposed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validators::Member;
    use bizra_proto::BlockHeader;

    /// A proposal at `round` with `pol_round`, signed by a one-member set's
    /// only validator.
    fn proposal(round: Round, pol_round: i64) -> (Membership, SignedProposal) {
        let s = Signer::from_secret([9; 32]);
        let members = Membership::new(vec![Member {
            id: s.id().to_string(),
            name: String::new(),
            stake: 1,
            key: s.public_key(),
        }]);
        let block = Block {
            header: Some(BlockHeader {
                chain_id: "c".into(),
                height: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = Proposal {
            chain_id: "c".into(),
            height: 1,
            round,
            pol_round,
            block_hash: block_hash(&block).expect("header").to_vec(),
            proposer: s.id().to_string(),
        };
        (members, sign_proposal(&s, p, block))
    }

    #[test]
    fn pol_round_is_minus_one_or_an_earlier_round() {
        for (round, pol, ok) in [
            (0, -1, true),
            (3, -1, true),
            (3, 0, true),
            (3, 2, true),
            (3, 3, false),
            (3, 4, false),
            (0, 0, false),
            (3, -2, false),
            (3, i64::MIN, false),
            (u32::MAX, i64::from(u32::MAX) - 1, true),
            (u32::MAX, i64::from(u32::MAX), false),
            (3, i64::from(u32::MAX) + 1, false),
            (3, i64::MAX, false),
        ] {
            let (members, sp) = proposal(round, pol);
            match check_proposal("c", &members, &sp) {
                Ok(vp) => {
                    assert!(ok, "round {round} pol_round {pol} was admitted");
                    assert_eq!(vp.pol_round(), u32::try_from(pol).ok());
                }
                Err(e) => {
                    assert!(!ok, "round {round} pol_round {pol}: {e}");
                    assert!(
                        matches!(e, MessageError::Malformed(ref m) if m.contains("pol_round")),
                        "{e}"
                    );
                }
            }
        }
    }
}
