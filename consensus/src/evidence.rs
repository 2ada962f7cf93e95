//! Misbehaviour evidence (issue 15, ADR 0014): what counts as proof that a
//! validator equivocated, how it is named, when it is too old, and how a
//! block commits to it.
//!
//! A DuplicateVote evidence is two votes signed by one validator for the same
//! (chain, height, round, kind) with different block hashes. It carries no
//! signature of its own: the two vote signatures are the proof, checked under
//! the one signature rule ([`crate::signing::verify`]) against the validator's
//! genesis key. Membership never changes, so "the validator set of that
//! height's epoch" is the genesis set; weights do change, and a validator with
//! no weight (jailed) can still be proven to equivocate.
//!
//! Rules, each with one rejection test below:
//! * shape ([`check_shape`], no signature): both votes present, this chain,
//!   one member, same height (at least 1), round and kind, hashes of 0 or 32
//!   bytes that differ, canonical order (`first.block_hash < second`),
//!   signatures of 64 bytes, at most [`MAX_EVIDENCE_BYTES`] encoded;
//! * age ([`check_age`]): included at height `H`, the votes' height `h` must
//!   satisfy `h <= H`, `H - h <= max_age_blocks` and
//!   `epoch(H) - epoch(h) <= max_age_epochs`;
//! * signatures ([`verify_signatures`]): both verify;
//! * once: a key ([`EvidenceKey`], validator, height, round, kind) is
//!   committed at most once (the chain state remembers keys while they are
//!   young enough to be included), and a block carries each key once.
//!
//! Its id is `BLAKE3(encode(Evidence))`. A block's header commits to its
//! evidence with `evidence_root`: the Merkle root ([`crate::merkle`]) over
//! leaves `leaf_hash(id, "")`, or empty when the block carries none.

use crate::merkle;
use crate::signing;
use crate::types::{epoch_of, hash_bytes, Hash, Height, Round};
use crate::validators::Membership;
use bizra_proto::{evidence, payload_type, DuplicateVoteEvidence, Equivocation, Evidence, SignedVote, Vote, VoteKind};
use prost::Message;
use serde::{Deserialize, Serialize};

/// Largest encoded evidence accepted (two votes are about 420 bytes).
pub const MAX_EVIDENCE_BYTES: usize = 2048;
/// Largest `max_per_block` a genesis may set.
pub const MAX_EVIDENCE_PER_BLOCK: u32 = 256;

/// Evidence and jailing parameters, `params.evidence` in genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceParams {
    /// Evidence older than this many blocks (at the including height) is refused.
    #[serde(default = "d_age_blocks")]
    pub max_age_blocks: u64,
    /// Evidence from more than this many epochs back is refused.
    #[serde(default = "d_age_epochs")]
    pub max_age_epochs: u64,
    /// Epochs a validator is jailed for, from the boundary after its evidence
    /// is committed. 0 disables jailing (evidence is still committed).
    #[serde(default = "d_jail")]
    pub jail_epochs: u64,
    /// Most evidence one block may carry.
    #[serde(default = "d_per_block")]
    pub max_per_block: u32,
}

fn d_age_blocks() -> u64 {
    1_000
}
fn d_age_epochs() -> u64 {
    2
}
fn d_jail() -> u64 {
    2
}
fn d_per_block() -> u32 {
    8
}

impl Default for EvidenceParams {
    fn default() -> Self {
        EvidenceParams {
            max_age_blocks: d_age_blocks(),
            max_age_epochs: d_age_epochs(),
            jail_epochs: d_jail(),
            max_per_block: d_per_block(),
        }
    }
}

impl EvidenceParams {
    /// The genesis bounds (ADR 0014): `max_per_block` in
    /// `1..=`[`MAX_EVIDENCE_PER_BLOCK`], `max_age_blocks` at least 1,
    /// `jail_epochs` at most 10^6. The error names the parameter.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_per_block == 0 || self.max_per_block > MAX_EVIDENCE_PER_BLOCK {
            return Err(format!(
                "evidence.max_per_block = {} must be between 1 and {MAX_EVIDENCE_PER_BLOCK}",
                self.max_per_block
            ));
        }
        if self.max_age_blocks == 0 {
            return Err("evidence.max_age_blocks must be at least 1".into());
        }
        if self.jail_epochs > 1_000_000 {
            return Err(format!("evidence.jail_epochs = {} is above 1000000", self.jail_epochs));
        }
        Ok(())
    }
}

/// What evidence is deduplicated by: one offence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EvidenceKey {
    /// Height of the two votes. First field, so keys sort by height (the
    /// chain state prunes old keys by it).
    pub height: Height,
    /// Genesis index of the equivocating validator.
    pub validator: u32,
    /// Round of the two votes.
    pub round: Round,
    /// `VoteKind` as i32 (1 prevote, 2 precommit).
    pub kind: i32,
}

/// Why evidence is refused, one variant per rule of the module docs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvidenceError {
    /// The `Evidence` has no kind set.
    #[error("evidence has no kind")]
    NoKind,
    /// A signed vote, or the vote inside one, is missing.
    #[error("duplicate-vote evidence must carry two signed votes")]
    MissingVote,
    /// A vote names another chain (its chain id given).
    #[error("vote chain id {0:?} is not this chain's")]
    ChainId(String),
    /// The votes' signer (id given) is not a genesis member.
    #[error("vote signer {0} is not a validator")]
    NotAValidator(String),
    /// The votes differ in the named field (`validator`, `height`, `round`
    /// or `kind`), so they are not one offence.
    #[error("the two votes differ in {0}: not one (validator, height, round, kind)")]
    Mismatch(&'static str),
    /// The votes' kind (given) is neither prevote (1) nor precommit (2).
    #[error("vote kind {0} is not prevote or precommit")]
    VoteKind(i32),
    /// The votes are for height 0, where nobody votes.
    #[error("vote height 0: no votes are cast at genesis")]
    HeightZero,
    /// A vote's block hash has this length, neither 0 (nil) nor 32.
    #[error("block hash of {0} bytes (0 or 32 expected)")]
    HashLength(usize),
    /// Both votes are for the same value.
    #[error("the two votes are for the same block: no conflict")]
    NoConflict,
    /// `first.block_hash` sorts after `second.block_hash` (bytewise): not the
    /// canonical encoding, so not the canonical id.
    #[error("votes out of canonical order (first.block_hash must sort before second's)")]
    Order,
    /// A vote signature has this length instead of 64 bytes.
    #[error("vote signature of {0} bytes (64 expected)")]
    SignatureLength(usize),
    /// The encoded evidence has this many bytes, above [`MAX_EVIDENCE_BYTES`].
    #[error("evidence is {0} bytes, above {MAX_EVIDENCE_BYTES}")]
    TooLarge(usize),
    /// A vote signature fails the one signature rule under the validator's key.
    #[error("{which} vote: bad signature: {err}")]
    Signature {
        /// `"first"` or `"second"`.
        which: &'static str,
        /// Why the signature failed.
        err: signing::SigError,
    },
    /// The votes' height is above the including height.
    #[error("evidence from height {evidence} cannot be included at height {at}")]
    Future {
        /// Height of the votes.
        evidence: Height,
        /// Height of the block that would include it.
        at: Height,
    },
    /// The votes are more than `max_age_blocks` blocks or `max_age_epochs`
    /// epochs older than the including height.
    #[error(
        "evidence from height {evidence} is too old at height {at} (max age {max_blocks} blocks, {max_epochs} epochs)"
    )]
    TooOld {
        /// Height of the votes.
        evidence: Height,
        /// Height of the block that would include it.
        at: Height,
        /// `params.evidence.max_age_blocks`.
        max_blocks: u64,
        /// `params.evidence.max_age_epochs`.
        max_epochs: u64,
    },
    /// An earlier block already committed evidence for this offence
    /// ([`EvidenceKey`]), however the evidence differs.
    #[error("evidence for this (validator, height, round, kind) is already committed")]
    AlreadyCommitted,
    /// The block carries two pieces of evidence for one offence.
    #[error("the block carries evidence for one (validator, height, round, kind) twice")]
    DuplicateInBlock,
    /// The block carries more evidence than `params.evidence.max_per_block`.
    #[error("block carries {found} pieces of evidence, above the limit of {max}")]
    TooMany {
        /// Pieces of evidence in the block.
        found: usize,
        /// `params.evidence.max_per_block`.
        max: u32,
    },
}

/// Evidence that passed [`check_shape`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shaped<'a> {
    /// The offence the evidence proves.
    pub key: EvidenceKey,
    /// The vote with the smaller block hash (the nil vote, if one is nil);
    /// signature not yet checked.
    pub first: &'a SignedVote,
    /// The vote with the larger block hash; signature not yet checked.
    pub second: &'a SignedVote,
}

impl Shaped<'_> {
    /// Genesis index of the equivocating validator.
    pub fn validator(&self) -> usize {
        self.key.validator as usize
    }
}

/// `BLAKE3(encode(evidence))`.
pub fn evidence_id(e: &Evidence) -> Hash {
    hash_bytes(&e.encode_to_vec())
}

/// The canonical evidence of the vote keeper's [`Equivocation`] report, or
/// `None` if it does not describe two conflicting votes.
pub fn from_equivocation(eq: &Equivocation) -> Option<Evidence> {
    duplicate_vote(eq.first.clone()?, eq.second.clone()?)
}

/// Two signed votes in canonical order as evidence (`None` if the hashes are equal).
pub fn duplicate_vote(a: SignedVote, b: SignedVote) -> Option<Evidence> {
    let ha = a.vote.as_ref()?.block_hash.clone();
    let hb = b.vote.as_ref()?.block_hash.clone();
    let (first, second) = match ha.cmp(&hb) {
        std::cmp::Ordering::Less => (a, b),
        std::cmp::Ordering::Greater => (b, a),
        std::cmp::Ordering::Equal => return None,
    };
    Some(Evidence {
        kind: Some(evidence::Kind::DuplicateVote(DuplicateVoteEvidence {
            first: Some(first),
            second: Some(second),
        })),
    })
}

/// The two votes of duplicate-vote evidence, if present.
pub fn votes(e: &Evidence) -> Option<(&Vote, &Vote)> {
    match &e.kind {
        Some(evidence::Kind::DuplicateVote(d)) => {
            Some((d.first.as_ref()?.vote.as_ref()?, d.second.as_ref()?.vote.as_ref()?))
        }
        None => None,
    }
}

/// The cheap checks (no signature): see the module docs.
pub fn check_shape<'a>(chain_id: &str, members: &Membership, e: &'a Evidence) -> Result<Shaped<'a>, EvidenceError> {
    let len = e.encoded_len();
    if len > MAX_EVIDENCE_BYTES {
        return Err(EvidenceError::TooLarge(len));
    }
    let d = match &e.kind {
        Some(evidence::Kind::DuplicateVote(d)) => d,
        None => return Err(EvidenceError::NoKind),
    };
    let (first, second) = match (&d.first, &d.second) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(EvidenceError::MissingVote),
    };
    let (a, b) = match (&first.vote, &second.vote) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(EvidenceError::MissingVote),
    };
    for v in [a, b] {
        if v.chain_id != chain_id {
            return Err(EvidenceError::ChainId(v.chain_id.clone()));
        }
    }
    if a.validator != b.validator {
        return Err(EvidenceError::Mismatch("validator"));
    }
    let validator = members
        .index_of(&a.validator)
        .ok_or_else(|| EvidenceError::NotAValidator(a.validator.clone()))?;
    if a.height != b.height {
        return Err(EvidenceError::Mismatch("height"));
    }
    if a.round != b.round {
        return Err(EvidenceError::Mismatch("round"));
    }
    if a.kind != b.kind {
        return Err(EvidenceError::Mismatch("kind"));
    }
    if a.kind != VoteKind::Prevote as i32 && a.kind != VoteKind::Precommit as i32 {
        return Err(EvidenceError::VoteKind(a.kind));
    }
    if a.height == 0 {
        return Err(EvidenceError::HeightZero);
    }
    for v in [a, b] {
        if !(v.block_hash.is_empty() || v.block_hash.len() == 32) {
            return Err(EvidenceError::HashLength(v.block_hash.len()));
        }
    }
    match a.block_hash.cmp(&b.block_hash) {
        std::cmp::Ordering::Equal => return Err(EvidenceError::NoConflict),
        std::cmp::Ordering::Greater => return Err(EvidenceError::Order),
        std::cmp::Ordering::Less => {}
    }
    for s in [first, second] {
        if s.signature.len() != 64 {
            return Err(EvidenceError::SignatureLength(s.signature.len()));
        }
    }
    Ok(Shaped {
        key: EvidenceKey {
            height: a.height,
            validator: validator as u32,
            round: a.round,
            kind: a.kind,
        },
        first,
        second,
    })
}

/// Both vote signatures, under the one signature rule.
pub fn verify_signatures(members: &Membership, s: &Shaped<'_>) -> Result<(), EvidenceError> {
    let key = &members.get(s.validator()).key;
    for (which, sv) in [("first", s.first), ("second", s.second)] {
        let vote = sv.vote.as_ref().ok_or(EvidenceError::MissingVote)?;
        signing::verify(key, payload_type::VOTE, &vote.encode_to_vec(), &sv.signature)
            .map_err(|err| EvidenceError::Signature { which, err })?;
    }
    Ok(())
}

/// Whether evidence from height `evidence` may be included at height `at`.
pub fn check_age(p: &EvidenceParams, epoch_length: u64, evidence: Height, at: Height) -> Result<(), EvidenceError> {
    if evidence > at {
        return Err(EvidenceError::Future { evidence, at });
    }
    if at - evidence > p.max_age_blocks
        || epoch_of(at, epoch_length) - epoch_of(evidence, epoch_length) > p.max_age_epochs
    {
        return Err(EvidenceError::TooOld {
            evidence,
            at,
            max_blocks: p.max_age_blocks,
            max_epochs: p.max_age_epochs,
        });
    }
    Ok(())
}

/// Lowest evidence height still includable at height `at` (keys below it can
/// be forgotten: [`check_age`] refuses them anyway).
pub fn oldest_includable(p: &EvidenceParams, epoch_length: u64, at: Height) -> Height {
    let by_blocks = at.saturating_sub(p.max_age_blocks);
    let epoch = epoch_of(at, epoch_length).saturating_sub(p.max_age_epochs);
    // First height of that epoch: heights 1..=L are epoch 0.
    let by_epochs = epoch.saturating_mul(epoch_length.max(1)).saturating_add(1);
    by_blocks.max(by_epochs).max(1)
}

/// Shape, then signatures: everything but age and once, which need the chain.
pub fn check(chain_id: &str, members: &Membership, e: &Evidence) -> Result<EvidenceKey, EvidenceError> {
    let s = check_shape(chain_id, members, e)?;
    verify_signatures(members, &s)?;
    Ok(s.key)
}

/// Merkle leaf of one piece of evidence: `leaf_hash(id, "")`.
pub fn leaf(e: &Evidence) -> Hash {
    merkle::leaf_hash(&evidence_id(e), &[])
}

/// The header's `evidence_root`: empty for no evidence, else the Merkle root.
pub fn evidence_root(evs: &[Evidence]) -> Vec<u8> {
    if evs.is_empty() {
        return Vec::new();
    }
    merkle::root(&evs.iter().map(leaf).collect::<Vec<_>>()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{new_vote, sign_vote};
    use crate::signing::Signer;
    use crate::validators::Member;

    const CHAIN: &str = "bizra-test";

    fn members(n: u8) -> (Membership, Vec<Signer>) {
        let signers: Vec<Signer> = (0..n).map(|i| Signer::from_secret([i + 1; 32])).collect();
        let m = Membership::new(
            signers
                .iter()
                .map(|s| Member {
                    id: s.id().to_string(),
                    name: String::new(),
                    stake: 1,
                    key: s.public_key(),
                })
                .collect(),
        );
        (m, signers)
    }

    fn vote(s: &Signer, h: u64, r: u32, kind: VoteKind, value: Option<[u8; 32]>) -> SignedVote {
        sign_vote(s, new_vote(CHAIN, h, r, kind, value, s.id()))
    }

    fn good(s: &Signer) -> Evidence {
        duplicate_vote(
            vote(s, 5, 1, VoteKind::Prevote, Some([1; 32])),
            vote(s, 5, 1, VoteKind::Prevote, Some([2; 32])),
        )
        .unwrap()
    }

    /// Rewrites the duplicate-vote parts of `e` with `f` (no re-signing).
    fn edit(e: &Evidence, f: impl FnOnce(&mut DuplicateVoteEvidence)) -> Evidence {
        let mut e = e.clone();
        if let Some(evidence::Kind::DuplicateVote(d)) = &mut e.kind {
            f(d);
        }
        e
    }

    fn first_vote(d: &mut DuplicateVoteEvidence) -> &mut Vote {
        d.first.as_mut().unwrap().vote.as_mut().unwrap()
    }

    #[test]
    fn good_evidence_passes_and_order_is_canonical() {
        let (m, s) = members(4);
        let e = good(&s[2]);
        let key = check(CHAIN, &m, &e).unwrap();
        assert_eq!(
            key,
            EvidenceKey {
                height: 5,
                validator: 2,
                round: 1,
                kind: VoteKind::Prevote as i32
            }
        );
        // Either argument order yields the same evidence and id.
        let swapped = duplicate_vote(
            vote(&s[2], 5, 1, VoteKind::Prevote, Some([2; 32])),
            vote(&s[2], 5, 1, VoteKind::Prevote, Some([1; 32])),
        )
        .unwrap();
        assert_eq!(evidence_id(&e), evidence_id(&swapped));
        // Nil against a block is a conflict too.
        let nil = duplicate_vote(
            vote(&s[0], 3, 0, VoteKind::Precommit, None),
            vote(&s[0], 3, 0, VoteKind::Precommit, Some([9; 32])),
        )
        .unwrap();
        assert!(check(CHAIN, &m, &nil).is_ok());
        assert!(duplicate_vote(
            vote(&s[0], 3, 0, VoteKind::Precommit, None),
            vote(&s[0], 3, 0, VoteKind::Precommit, None)
        )
        .is_none());
    }

    // One rejection test per rule.

    #[test]
    fn rejects_no_kind_and_missing_votes() {
        let (m, s) = members(4);
        assert_eq!(check(CHAIN, &m, &Evidence { kind: None }), Err(EvidenceError::NoKind));
        let e = edit(&good(&s[0]), |d| d.second = None);
        assert_eq!(check(CHAIN, &m, &e), Err(EvidenceError::MissingVote));
    }

    #[test]
    fn rejects_another_chain() {
        let (m, s) = members(4);
        assert_eq!(
            check("other", &m, &good(&s[0])),
            Err(EvidenceError::ChainId(CHAIN.into()))
        );
    }

    #[test]
    fn rejects_a_non_member() {
        let (m, _) = members(3);
        let outsider = Signer::from_secret([9; 32]);
        assert!(matches!(
            check(CHAIN, &m, &good(&outsider)),
            Err(EvidenceError::NotAValidator(_))
        ));
    }

    #[test]
    fn rejects_votes_of_two_validators() {
        let (m, s) = members(4);
        let e = duplicate_vote(
            vote(&s[0], 5, 1, VoteKind::Prevote, Some([1; 32])),
            vote(&s[1], 5, 1, VoteKind::Prevote, Some([2; 32])),
        )
        .unwrap();
        assert_eq!(check(CHAIN, &m, &e), Err(EvidenceError::Mismatch("validator")));
    }

    #[test]
    fn rejects_different_height_round_or_kind() {
        let (m, s) = members(4);
        let a = vote(&s[0], 5, 1, VoteKind::Prevote, Some([1; 32]));
        for (b, what) in [
            (vote(&s[0], 6, 1, VoteKind::Prevote, Some([2; 32])), "height"),
            (vote(&s[0], 5, 2, VoteKind::Prevote, Some([2; 32])), "round"),
            (vote(&s[0], 5, 1, VoteKind::Precommit, Some([2; 32])), "kind"),
        ] {
            let e = duplicate_vote(a.clone(), b).unwrap();
            assert_eq!(check(CHAIN, &m, &e), Err(EvidenceError::Mismatch(what)));
        }
    }

    #[test]
    fn rejects_an_unknown_vote_kind() {
        let (m, s) = members(4);
        let mut a = new_vote(CHAIN, 5, 1, VoteKind::Prevote, Some([1; 32]), s[0].id());
        let mut b = new_vote(CHAIN, 5, 1, VoteKind::Prevote, Some([2; 32]), s[0].id());
        a.kind = 7;
        b.kind = 7;
        let e = duplicate_vote(sign_vote(&s[0], a), sign_vote(&s[0], b)).unwrap();
        assert_eq!(check(CHAIN, &m, &e), Err(EvidenceError::VoteKind(7)));
    }

    #[test]
    fn rejects_height_zero() {
        let (m, s) = members(4);
        let e = duplicate_vote(
            vote(&s[0], 0, 0, VoteKind::Prevote, Some([1; 32])),
            vote(&s[0], 0, 0, VoteKind::Prevote, Some([2; 32])),
        )
        .unwrap();
        assert_eq!(check(CHAIN, &m, &e), Err(EvidenceError::HeightZero));
    }

    #[test]
    fn rejects_a_bad_hash_length() {
        let (m, s) = members(4);
        let mut b = new_vote(CHAIN, 5, 1, VoteKind::Prevote, None, s[0].id());
        b.block_hash = vec![3; 31];
        let e = duplicate_vote(vote(&s[0], 5, 1, VoteKind::Prevote, Some([1; 32])), sign_vote(&s[0], b)).unwrap();
        assert_eq!(check(CHAIN, &m, &e), Err(EvidenceError::HashLength(31)));
    }

    #[test]
    fn rejects_two_votes_that_do_not_conflict() {
        let (m, s) = members(4);
        let v = vote(&s[0], 5, 1, VoteKind::Prevote, Some([1; 32]));
        let e = Evidence {
            kind: Some(evidence::Kind::DuplicateVote(DuplicateVoteEvidence {
                first: Some(v.clone()),
                second: Some(v),
            })),
        };
        assert_eq!(check(CHAIN, &m, &e), Err(EvidenceError::NoConflict));
    }

    #[test]
    fn rejects_a_non_canonical_order() {
        let (m, s) = members(4);
        let e = edit(&good(&s[0]), |d| std::mem::swap(&mut d.first, &mut d.second));
        assert_eq!(check(CHAIN, &m, &e), Err(EvidenceError::Order));
    }

    #[test]
    fn rejects_a_short_signature() {
        let (m, s) = members(4);
        let e = edit(&good(&s[0]), |d| d.first.as_mut().unwrap().signature.truncate(10));
        assert_eq!(check(CHAIN, &m, &e), Err(EvidenceError::SignatureLength(10)));
    }

    #[test]
    fn rejects_oversized_evidence() {
        let (m, s) = members(4);
        let e = edit(&good(&s[0]), |d| d.first.as_mut().unwrap().signature = vec![0; 4096]);
        assert!(matches!(check(CHAIN, &m, &e), Err(EvidenceError::TooLarge(_))));
    }

    #[test]
    fn rejects_an_altered_vote() {
        let (m, s) = members(4);
        // Change the first vote's hash (still before the second's): its
        // signature no longer covers it.
        let e = edit(&good(&s[0]), |d| first_vote(d).block_hash = vec![0; 32]);
        assert!(matches!(
            check(CHAIN, &m, &e),
            Err(EvidenceError::Signature { which: "first", .. })
        ));
        let e = edit(&good(&s[0]), |d| d.second.as_mut().unwrap().signature[0] ^= 1);
        assert!(matches!(
            check(CHAIN, &m, &e),
            Err(EvidenceError::Signature { which: "second", .. })
        ));
    }

    #[test]
    fn age_rules() {
        let p = EvidenceParams {
            max_age_blocks: 10,
            max_age_epochs: 1,
            ..EvidenceParams::default()
        };
        // epoch_length 5: heights 1-5 epoch 0, 6-10 epoch 1, 11-15 epoch 2.
        assert_eq!(check_age(&p, 5, 7, 7), Ok(()));
        assert_eq!(
            check_age(&p, 5, 8, 7),
            Err(EvidenceError::Future { evidence: 8, at: 7 })
        );
        assert_eq!(check_age(&p, 5, 6, 15), Ok(()), "one epoch back, 9 blocks");
        assert!(
            matches!(check_age(&p, 5, 5, 15), Err(EvidenceError::TooOld { .. })),
            "10 blocks but 2 epochs"
        );
        let wide = EvidenceParams {
            max_age_epochs: 100,
            ..p.clone()
        };
        assert_eq!(check_age(&wide, 5, 5, 15), Ok(()));
        assert!(
            matches!(check_age(&wide, 5, 4, 15), Err(EvidenceError::TooOld { .. })),
            "11 blocks"
        );
        for at in 1..40 {
            let lo = oldest_includable(&p, 5, at);
            for h in 1..=at {
                assert_eq!(check_age(&p, 5, h, at).is_ok(), h >= lo, "h {h} at {at}");
            }
        }
    }

    #[test]
    fn root_is_empty_without_evidence() {
        let (_, s) = members(2);
        assert!(evidence_root(&[]).is_empty());
        let one = evidence_root(&[good(&s[0])]);
        assert_eq!(one.len(), 32);
        assert_ne!(one, evidence_root(&[good(&s[1])]));
    }

    #[test]
    fn params_are_validated() {
        assert!(EvidenceParams::default().validate().is_ok());
        for bad in [
            EvidenceParams {
                max_per_block: 0,
                ..EvidenceParams::default()
            },
            EvidenceParams {
                max_per_block: 257,
                ..EvidenceParams::default()
            },
            EvidenceParams {
                max_age_blocks: 0,
                ..EvidenceParams::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
