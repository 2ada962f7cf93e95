//! The weighted vote keeper: the votes of one height, tallied by weight per
//! (round, kind, value), with equivocation detection.
//!
//! Thresholds are evaluated with the quorum rule of [`crate::quorum`].
//!
//! Counting rule: for each value, a validator counts at most once; for "any
//! value" (the total) it counts once. A validator that signs two different
//! votes at one (round, kind) is reported as [`Equivocation`] evidence, and
//! its second vote still counts toward *that* value's tally. This is safe: two
//! quorums for different values at one round would need more than a third of
//! the weight to sign both, and only Byzantine validators (under a third) do.
//! It is also needed for liveness: if the first-arriving vote hid the other,
//! an honest node could never observe a polka that really exists (the reason
//! CometBFT tracks conflicting votes per claimed majority). At most
//! [`MAX_VALUES_PER_VALIDATOR`] values per validator are kept, first come,
//! plus any value that already holds more than a third of the weight from
//! the other validators (so at least one honest validator voted for it): a
//! Byzantine validator that signs three values and sends its nil and a
//! random value first must not hide the polka it joined from those peers,
//! or a validator locked on that polka can never convince them (bizra-sim
//! seed 101888, 4 validators, 1 Byzantine). Values above a third from
//! first-come votes number at most three, so a validator still counts
//! toward at most `MAX_VALUES_PER_VALIDATOR + 3` values.

use crate::messages::VerifiedVote;
use crate::quorum;
use crate::types::{Hash, Round};
use bizra_proto::{Equivocation, SignedVote, VoteKind};
use std::collections::{BTreeMap, BTreeSet};

/// What adding a vote did.
#[derive(Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The validator's first vote at this (round, kind): counted for its
    /// value and in the total.
    Added,
    /// The validator already voted for this value at this (round, kind):
    /// nothing changed.
    Duplicate,
    /// The validator already voted for another value at this (round, kind).
    /// The report holds its first vote and this one. This vote counts for
    /// its value while the validator has fewer than
    /// [`MAX_VALUES_PER_VALIDATOR`] values here, or when others already give
    /// that value more than a third of the weight (module docs); it never
    /// counts in the total again.
    Equivocation(Box<Equivocation>),
}

/// Distinct values one validator may contribute to per (round, kind).
pub const MAX_VALUES_PER_VALIDATOR: usize = 2;

/// The votes of one (round, kind), tallied by weight per value under the
/// counting rule of the module docs.
#[derive(Clone, Debug, Default)]
pub struct VoteSet {
    votes: BTreeMap<usize, Vec<VerifiedVote>>,
    tally: BTreeMap<Option<Hash>, u128>,
    total: u128,
}

impl VoteSet {
    pub(crate) fn add(&mut self, v: VerifiedVote, weight: u128) -> AddOutcome {
        self.add_weighted(v, weight, None)
    }

    /// As [`VoteSet::add`]; with `total` (the weight of all validators) a
    /// value past [`MAX_VALUES_PER_VALIDATOR`] still counts if the other
    /// validators already give it more than a third of `total`.
    pub(crate) fn add_weighted(&mut self, v: VerifiedVote, weight: u128, total: Option<u128>) -> AddOutcome {
        if let Some(prev) = self.votes.get_mut(&v.validator) {
            if prev.iter().any(|p| p.value == v.value) {
                return AddOutcome::Duplicate;
            }
            let evidence = Equivocation {
                first: Some(prev[0].signed.clone()),
                second: Some(v.signed.clone()),
            };
            let backed =
                total.is_some_and(|t| quorum::exceeds_one_third(self.tally.get(&v.value).copied().unwrap_or(0), t));
            if prev.len() < MAX_VALUES_PER_VALIDATOR || backed {
                *self.tally.entry(v.value).or_default() += weight;
                prev.push(v);
            }
            return AddOutcome::Equivocation(Box::new(evidence));
        }
        *self.tally.entry(v.value).or_default() += weight;
        self.total += weight;
        self.votes.insert(v.validator, vec![v]);
        AddOutcome::Added
    }
    /// Weight of the validators counted for `value` (`None` = nil).
    pub fn weight_for(&self, value: &Option<Hash>) -> u128 {
        self.tally.get(value).copied().unwrap_or(0)
    }
    /// Weight of the distinct validators that voted for anything, each counted once.
    pub fn total(&self) -> u128 {
        self.total
    }
    /// The first vote seen from `validator`.
    pub fn get(&self, validator: usize) -> Option<&VerifiedVote> {
        self.votes.get(&validator).and_then(|v| v.first())
    }
    /// Whether this exact signed vote of `validator` is in the set.
    pub fn contains_signed(&self, validator: usize, sv: &SignedVote) -> bool {
        self.votes
            .get(&validator)
            .is_some_and(|vs| vs.iter().any(|v| &v.signed == sv))
    }

    /// The signed votes for `value`, in validator order (deterministic).
    pub fn signed_for(&self, value: &Option<Hash>) -> Vec<SignedVote> {
        self.votes
            .values()
            .flatten()
            .filter(|v| &v.value == value)
            .map(|v| v.signed.clone())
            .collect()
    }
    /// Values with any weight, in order.
    pub fn values(&self) -> impl Iterator<Item = (&Option<Hash>, &u128)> {
        self.tally.iter()
    }
}

#[derive(Clone, Debug, Default)]
struct RoundVotes {
    prevotes: VoteSet,
    precommits: VoteSet,
    participants: BTreeSet<usize>,
    participant_weight: u128,
}

/// The votes of one height, by round, weighted with the height's epoch
/// weights; answers the quorum questions of the driver's rules.
#[derive(Clone, Debug)]
pub struct VoteKeeper {
    weights: Vec<u128>,
    total: u128,
    threshold_bps: u32,
    rounds: BTreeMap<Round, RoundVotes>,
}

impl VoteKeeper {
    /// An empty keeper for validators of these weights (genesis order); a
    /// quorum is `threshold_bps` of their sum.
    pub fn new(weights: Vec<u128>, threshold_bps: u32) -> Self {
        let total = weights.iter().sum();
        VoteKeeper {
            weights,
            total,
            threshold_bps,
            rounds: BTreeMap::new(),
        }
    }

    /// Sum of all validators' weights: the quorum denominator.
    pub fn total_weight(&self) -> u128 {
        self.total
    }

    /// Adds a verified vote of this height (the caller checks the height)
    /// to its round's prevotes or precommits. A first vote of a validator
    /// in a round also counts it as a participant of that round for
    /// [`VoteKeeper::skip_round`].
    pub fn add(&mut self, v: VerifiedVote) -> AddOutcome {
        let w = self.weights[v.validator];
        let who = v.validator;
        let rv = self.rounds.entry(v.round()).or_default();
        let out = match v.kind {
            VoteKind::Precommit => rv.precommits.add_weighted(v, w, Some(self.total)),
            _ => rv.prevotes.add_weighted(v, w, Some(self.total)),
        };
        if out == AddOutcome::Added && rv.participants.insert(who) {
            rv.participant_weight += w;
        }
        out
    }

    /// Rounds holding at least one vote.
    pub fn rounds_len(&self) -> usize {
        self.rounds.len()
    }

    /// The `kind` votes of `round`; `None` if the round has no vote at all.
    pub fn set(&self, round: Round, kind: VoteKind) -> Option<&VoteSet> {
        self.rounds.get(&round).map(|r| match kind {
            VoteKind::Precommit => &r.precommits,
            _ => &r.prevotes,
        })
    }

    fn q(&self, w: u128) -> bool {
        quorum::reaches(w, self.total, self.threshold_bps)
    }

    /// A quorum of `kind` votes at `round` for exactly `value` (None = nil).
    pub fn quorum_for(&self, round: Round, kind: VoteKind, value: &Option<Hash>) -> bool {
        self.set(round, kind).is_some_and(|s| self.q(s.weight_for(value)))
    }

    /// A quorum of `kind` votes at `round` for anything.
    pub fn quorum_any(&self, round: Round, kind: VoteKind) -> bool {
        self.set(round, kind).is_some_and(|s| self.q(s.total()))
    }

    /// Whether `validator` may still add weight to `round`'s prevotes: false
    /// once the round holds a polka (a quorum for one value, nil included) and
    /// `validator` has no prevote in it. Such a prevote can change no rule's
    /// outcome: a second polka in the round would need more than a third of
    /// the weight to equivocate, and "a quorum for anything" already holds.
    /// A second prevote of a validator already counted stays useful (it is
    /// equivocation evidence). ADR 0020.
    pub fn prevote_matters(&self, round: Round, validator: usize) -> bool {
        let Some(set) = self.set(round, VoteKind::Prevote) else {
            return true;
        };
        set.get(validator).is_some() || !set.values().any(|(_, w)| self.q(*w))
    }

    /// The highest round above `round` in which validators holding more than
    /// a third of the weight sent a message (Tendermint's f+1 skip rule).
    pub fn skip_round(&self, round: Round) -> Option<Round> {
        // No round above `Round::MAX` (unreachable in practice: rounds move
        // at most 64 at a time, but `round + 1` must not wrap in release).
        self.rounds
            .range(round.checked_add(1)?..)
            .rev()
            .find(|(_, rv)| quorum::exceeds_one_third(rv.participant_weight, self.total))
            .map(|(r, _)| *r)
    }

    /// Rounds with a precommit quorum for some non-nil value.
    pub fn precommit_quorums(&self) -> Vec<(Round, Hash)> {
        let mut out = Vec::new();
        for (r, rv) in &self.rounds {
            for (val, w) in rv.precommits.values() {
                if let Some(h) = val {
                    if self.q(*w) {
                        out.push((*r, *h));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{check_vote, new_vote, sign_vote};
    use crate::signing::Signer;
    use crate::validators::{Member, Membership};

    fn setup(n: usize) -> (Vec<Signer>, Membership) {
        let s: Vec<Signer> = (0..n).map(|i| Signer::from_secret([i as u8 + 1; 32])).collect();
        let m = Membership::new(
            s.iter()
                .map(|s| Member {
                    id: s.id().into(),
                    name: String::new(),
                    stake: 1,
                    key: s.public_key(),
                })
                .collect(),
        );
        (s, m)
    }

    fn vote(s: &Signer, m: &Membership, r: u32, kind: VoteKind, val: Option<Hash>) -> VerifiedVote {
        check_vote("c", m, &sign_vote(s, new_vote("c", 1, r, kind, val, s.id()))).unwrap()
    }

    #[test]
    fn weighted_quorum_and_equivocation() {
        let (s, m) = setup(4);
        // Weights 1,1,1,3: total 6, quorum needs 6*0.6667 = 4.0002 -> 5.
        let mut k = VoteKeeper::new(vec![1, 1, 1, 3], 6667);
        let a = Some([1u8; 32]);
        assert_eq!(k.add(vote(&s[3], &m, 0, VoteKind::Prevote, a)), AddOutcome::Added);
        assert!(!k.quorum_for(0, VoteKind::Prevote, &a));
        assert_eq!(k.add(vote(&s[0], &m, 0, VoteKind::Prevote, a)), AddOutcome::Added);
        assert!(!k.quorum_for(0, VoteKind::Prevote, &a), "4 of 6 is below 6667 bps");
        assert_eq!(k.add(vote(&s[0], &m, 0, VoteKind::Prevote, a)), AddOutcome::Duplicate);
        assert!(matches!(
            k.add(vote(&s[0], &m, 0, VoteKind::Prevote, None)),
            AddOutcome::Equivocation(_)
        ));
        assert!(
            !k.quorum_any(0, VoteKind::Prevote),
            "an equivocator counts once in the total"
        );
        // A third value from the same validator is evidence but not counted
        // (no one else backs it).
        let b = Some([2u8; 32]);
        assert!(matches!(
            k.add(vote(&s[0], &m, 0, VoteKind::Prevote, b)),
            AddOutcome::Equivocation(_)
        ));
        assert_eq!(k.set(0, VoteKind::Prevote).unwrap().weight_for(&b), 0);
        k.add(vote(&s[1], &m, 0, VoteKind::Prevote, None));
        assert!(!k.quorum_for(0, VoteKind::Prevote, &a));
        assert!(k.quorum_any(0, VoteKind::Prevote));
        // Nil has v0 (equivocating) + v1 = 2 of 6: no quorum.
        assert!(!k.quorum_for(0, VoteKind::Prevote, &None));
        k.add(vote(&s[2], &m, 0, VoteKind::Prevote, a));
        assert!(k.quorum_for(0, VoteKind::Prevote, &a));
        assert!(!k.quorum_any(0, VoteKind::Precommit));
    }

    /// bizra-sim seed 101888 in isolation: v2 (Byzantine) prevotes nil and
    /// a random value to v1 first, then the value v0 and v3 prevoted. Its
    /// third vote must count, or v1 never sees the polka v0 is locked on.
    #[test]
    fn a_third_value_backed_by_more_than_a_third_counts() {
        let (s, m) = setup(4);
        let mut k = VoteKeeper::new(vec![1; 4], 6667);
        let (x, junk, junk2) = (Some([9u8; 32]), Some([3u8; 32]), Some([4u8; 32]));
        k.add(vote(&s[2], &m, 0, VoteKind::Prevote, None));
        k.add(vote(&s[2], &m, 0, VoteKind::Prevote, junk));
        k.add(vote(&s[1], &m, 0, VoteKind::Prevote, None));
        k.add(vote(&s[0], &m, 0, VoteKind::Prevote, x));
        // A value no one else backs is still not counted.
        assert!(matches!(
            k.add(vote(&s[2], &m, 0, VoteKind::Prevote, junk2)),
            AddOutcome::Equivocation(_)
        ));
        assert_eq!(k.set(0, VoteKind::Prevote).unwrap().weight_for(&junk2), 0);
        k.add(vote(&s[3], &m, 0, VoteKind::Prevote, x));
        assert!(!k.quorum_for(0, VoteKind::Prevote, &x));
        assert!(matches!(
            k.add(vote(&s[2], &m, 0, VoteKind::Prevote, x)),
            AddOutcome::Equivocation(_)
        ));
        assert!(k.quorum_for(0, VoteKind::Prevote, &x), "the polka v0 is locked on");
        assert!(!k.quorum_any(1, VoteKind::Prevote));
        assert_eq!(
            k.set(0, VoteKind::Prevote).unwrap().total(),
            4,
            "v2 counts once in the total"
        );
    }

    #[test]
    fn skip_round_needs_more_than_a_third() {
        let (s, m) = setup(4);
        let mut k = VoteKeeper::new(vec![1; 4], 6667);
        k.add(vote(&s[0], &m, 5, VoteKind::Prevote, None));
        assert_eq!(k.skip_round(0), None);
        k.add(vote(&s[1], &m, 5, VoteKind::Precommit, None));
        assert_eq!(k.skip_round(0), Some(5));
        assert_eq!(k.skip_round(5), None);
    }

    #[test]
    fn no_round_is_above_the_last_one() {
        let (s, m) = setup(4);
        let mut k = VoteKeeper::new(vec![1; 4], 6667);
        for signer in &s[..2] {
            k.add(vote(signer, &m, Round::MAX, VoteKind::Prevote, None));
        }
        assert_eq!(k.skip_round(Round::MAX - 1), Some(Round::MAX));
        assert_eq!(k.skip_round(Round::MAX), None, "round + 1 must not wrap to 0");
    }
}
