//! Votes and commit certificates signed by a chosen set of validators.

use bizra_consensus::messages::{new_vote, sign_vote};
use bizra_consensus::signing::Signer;
use bizra_consensus::types::{Hash, Round};
use bizra_proto::{CommitCertificate, SignedVote, VoteKind};

/// A vote of `signer` for `value` (`None`: nil) at (`height`, `round`), signed.
pub fn vote(
    signer: &Signer,
    chain_id: &str,
    height: u64,
    round: Round,
    kind: VoteKind,
    value: Option<Hash>,
) -> SignedVote {
    sign_vote(signer, new_vote(chain_id, height, round, kind, value, signer.id()))
}

/// A commit certificate for `hash` at (`height`, `round`): the precommits of
/// `signers[i]` for every `i` in `who`, in that order. Whether they reach a
/// quorum is up to the caller.
pub fn commit(
    signers: &[Signer],
    chain_id: &str,
    height: u64,
    round: Round,
    hash: Hash,
    who: &[usize],
) -> CommitCertificate {
    CommitCertificate {
        height,
        round,
        block_hash: hash.to_vec(),
        precommits: who
            .iter()
            .map(|&i| vote(&signers[i], chain_id, height, round, VoteKind::Precommit, Some(hash)))
            .collect(),
    }
}
