//! Which consensus messages the driver may use, decided from what a message
//! *claims* (height, round, kind, signer) before anyone pays for its
//! signature. The quotas of the future-height buffer are in `future.rs`.
//!
//! The host calls [`Driver::admit`] on a decoded but unverified message and
//! verifies the signature only when the answer is not [`Admission::Drop`].
//! [`Driver::handle`] applies the same rule again to the verified input, so
//! a host that skips the pre-check is still bounded. Every bound is a
//! function of the driver's state only, so it runs in `bizra-sim`.
//!
//! | claim | kept when |
//! | --- | --- |
//! | height below `height - 1` | never |
//! | height `height - 1` | a precommit, round at most the decided round (late precommits, evidence) |
//! | current height, before `start` (WAL replay) | any round |
//! | current height | round within [`ROUND_WINDOW`] of ours (a proposal: [`PROPOSAL_ROUNDS_AHEAD`]), a proposal only from that round's proposer, a prevote only while its round has no polka or from a validator already counted there (ADR 0020) |
//! | `height + 1 ..= height + FUTURE_HEIGHTS` | votes: [`FUTURE_MSGS_PER_VALIDATOR`] per validator, [`FUTURE_BUFFER`] in all |
//! | `height + 1`, proposal | rounds below [`FUTURE_PROPOSAL_ROUNDS`], that round's proposer when it is known (same epoch), one per validator, [`FUTURE_PROPOSAL_BYTES`] in all |
//! | further ahead | not kept; shown once per new highest height ([`Admission::Hint`]) so the host syncs |

use super::{Driver, ROUND_WINDOW};
use crate::messages::{vote_kind, VerifiedProposal};
use crate::types::{Height, Round};
use bizra_proto::{consensus_message::Msg, ConsensusMessage, VoteKind};
use prost::Message;

/// How far ahead (in heights) messages are buffered.
pub const FUTURE_HEIGHTS: Height = 4;
/// Most buffered future-height messages, from all validators.
pub const FUTURE_BUFFER: usize = 8192;
/// Most buffered future-height messages from one validator: two votes a
/// round for 8 rounds of each buffered height.
pub const FUTURE_MSGS_PER_VALIDATOR: u32 = 2 * 8 * FUTURE_HEIGHTS as u32;
/// Proposals at our height are kept up to this many rounds ahead of ours
/// (votes: [`ROUND_WINDOW`]).
pub const PROPOSAL_ROUNDS_AHEAD: Round = 2;
/// Proposals for the next height are buffered only for its first rounds.
pub const FUTURE_PROPOSAL_ROUNDS: Round = 4;
/// Bytes of buffered next-height proposals, from all validators.
pub const FUTURE_PROPOSAL_BYTES: usize = 16 << 20;

/// What a consensus message says about itself, read before its signature is
/// checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The claimed height.
    pub height: Height,
    /// The claimed round.
    pub round: Round,
    /// Proposal, prevote or precommit.
    pub kind: ClaimKind,
    /// Index of the claimed signer in the membership.
    pub validator: usize,
    /// Encoded size (counted for proposals only).
    pub bytes: usize,
}

/// The kind of message a [`Claim`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimKind {
    /// A signed proposal with its block.
    Proposal,
    /// A prevote.
    Prevote,
    /// A precommit.
    Precommit,
}

/// The driver's answer to a [`Claim`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The driver may keep it: verify it and hand it over.
    Use,
    /// Not kept, but it shows a height above any seen: verify it and hand it
    /// over, so the driver asks for sync ([`super::Effect::SyncNeeded`]).
    Hint,
    /// Useless to the driver, whatever its signature: do not verify it.
    Drop(DropReason),
}

/// Why [`Driver::admit`] drops a claim; [`DropReason::as_str`] is its metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Below the height whose late precommits are still collected.
    OldHeight,
    /// At the last decided height, but not a precommit of a round up to the
    /// decided one.
    LateRound,
    /// More than [`ROUND_WINDOW`] rounds ahead of ours.
    RoundWindow,
    /// A proposal from a validator that is not that round's proposer.
    NotProposer,
    /// A future height beyond what is buffered, or a quota is full.
    FutureQuota,
    /// A current-height prevote of a round that already holds a polka, from
    /// a validator with no prevote there yet: it can change nothing (ADR
    /// 0020). At 100 validators about a third of each height's prevotes.
    AfterPolka,
}

impl DropReason {
    /// A short label, for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::OldHeight => "old_height",
            DropReason::LateRound => "late_round",
            DropReason::RoundWindow => "round_window",
            DropReason::NotProposer => "not_proposer",
            DropReason::FutureQuota => "future_quota",
            DropReason::AfterPolka => "after_polka",
        }
    }
}

impl Driver {
    /// The claim of a decoded, unverified message: `None` if it names no
    /// member or no known kind (the signature check rejects those).
    pub fn claim(&self, msg: &ConsensusMessage) -> Option<Claim> {
        match msg.msg.as_ref()? {
            Msg::Vote(sv) => {
                let v = sv.vote.as_ref()?;
                let kind = match vote_kind(v)? {
                    VoteKind::Precommit => ClaimKind::Precommit,
                    _ => ClaimKind::Prevote,
                };
                Some(Claim {
                    height: v.height,
                    round: v.round,
                    kind,
                    validator: self.genesis.members.index_of(&v.validator)?,
                    bytes: 0,
                })
            }
            Msg::Proposal(sp) => {
                let p = sp.proposal.as_ref()?;
                Some(Claim {
                    height: p.height,
                    round: p.round,
                    kind: ClaimKind::Proposal,
                    validator: self.genesis.members.index_of(&p.proposer)?,
                    bytes: sp.encoded_len(),
                })
            }
        }
    }

    /// The claim of an encoded, undecoded `ConsensusMessage`, read without
    /// decoding a proposal's block or checking anything: the same answer as
    /// [`Driver::claim`] on the decoded message, for a fraction of the cost
    /// (a 4 MiB block is skipped, not parsed). `None` when the bytes do not
    /// decode as far as the claim, or name no member or no known kind; the
    /// host then decodes the whole message as before. A proposal's `bytes`
    /// is the length of its encoded `SignedProposal`, which is
    /// `encoded_len()` of the decoded one.
    pub fn claim_encoded(&self, data: &[u8]) -> Option<Claim> {
        let head = MessageHead::decode(data).ok()?;
        match head.msg? {
            HeadMsg::Vote(sv) => self.claim(&ConsensusMessage {
                msg: Some(Msg::Vote(sv)),
                attempt: 0,
            }),
            HeadMsg::Proposal(ph) => {
                let p = ph.proposal?;
                Some(Claim {
                    height: p.height,
                    round: p.round,
                    kind: ClaimKind::Proposal,
                    validator: self.genesis.members.index_of(&p.proposer)?,
                    bytes: proposal_len(data)?,
                })
            }
        }
    }

    /// Whether the driver can use a message with this claim (module docs).
    pub fn admit(&self, c: &Claim) -> Admission {
        if c.height.saturating_add(1) < self.height {
            return Admission::Drop(DropReason::OldHeight);
        }
        if c.height < self.height {
            return match &self.last {
                Some(l) if c.kind == ClaimKind::Precommit && c.height == l.height && c.round <= l.round => {
                    Admission::Use
                }
                _ => Admission::Drop(DropReason::LateRound),
            };
        }
        if c.height == self.height {
            if !self.replaying && c.round > self.round.saturating_add(ROUND_WINDOW) {
                return Admission::Drop(DropReason::RoundWindow);
            }
            // A proposal is a block (up to the message cap): only the next
            // rounds' are kept, or one proposer scheduled for many rounds
            // ahead could make us hold (and log) 2 blocks per round.
            if c.kind == ClaimKind::Proposal
                && !self.replaying
                && c.round > self.round.saturating_add(PROPOSAL_ROUNDS_AHEAD)
            {
                return Admission::Drop(DropReason::RoundWindow);
            }
            if c.kind == ClaimKind::Proposal && c.validator != self.chain.proposer(c.round) {
                return Admission::Drop(DropReason::NotProposer);
            }
            if c.kind == ClaimKind::Prevote && !self.replaying && !self.keeper.prevote_matters(c.round, c.validator) {
                return Admission::Drop(DropReason::AfterPolka);
            }
            return Admission::Use;
        }
        match self.future_verdict(c) {
            Ok(()) => Admission::Use,
            Err(_) if c.height > self.max_seen_height => Admission::Hint,
            Err(reason) => Admission::Drop(reason),
        }
    }
}

/// The claim of a verified proposal.
pub(super) fn proposal_claim(p: &VerifiedProposal) -> Claim {
    Claim {
        height: p.proposal().height,
        round: p.proposal().round,
        kind: ClaimKind::Proposal,
        validator: p.proposer,
        bytes: p.signed.encoded_len(),
    }
}

/// The claim of a verified vote.
pub(super) fn vote_claim(v: &crate::messages::VerifiedVote) -> Claim {
    Claim {
        height: v.height(),
        round: v.round(),
        kind: if v.kind == VoteKind::Precommit {
            ClaimKind::Precommit
        } else {
            ClaimKind::Prevote
        },
        validator: v.validator,
        bytes: 0,
    }
}

/// A `ConsensusMessage` as far as its claim: the same field numbers, so
/// prost skips a proposal's signature and block (fields 2 and 3 of
/// `SignedProposal`) and `attempt` as unknown fields without parsing them.
#[derive(Clone, PartialEq, prost::Message)]
struct MessageHead {
    #[prost(oneof = "HeadMsg", tags = "1, 2")]
    msg: Option<HeadMsg>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum HeadMsg {
    #[prost(message, tag = "1")]
    Proposal(ProposalHead),
    #[prost(message, tag = "2")]
    Vote(bizra_proto::SignedVote),
}

/// A `SignedProposal` without its signature and block.
#[derive(Clone, PartialEq, prost::Message)]
struct ProposalHead {
    #[prost(message, optional, tag = "1")]
    proposal: Option<bizra_proto::Proposal>,
}

/// The length of the `SignedProposal` (field 1) that a canonically encoded
/// `ConsensusMessage` starts with.
fn proposal_len(data: &[u8]) -> Option<usize> {
    let (&tag, mut rest) = data.split_first()?;
    if tag != 1 << 3 | 2 {
        return None;
    }
    usize::try_from(prost::encoding::decode_varint(&mut rest).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::super::{Effect, Input, Timeouts};
    use super::*;
    use crate::chain::ChainState;
    use crate::genesis::{Genesis, GenesisDoc, GenesisParams, GenesisValidator};
    use crate::messages::{check_vote, new_vote, sign_vote, VerifiedVote};
    use crate::signing::Signer;
    use crate::types::Hash;
    use bizra_proto::{ConsensusMessage, SignedVote};
    use std::sync::Arc;

    fn signer(i: usize) -> Signer {
        Signer::from_secret([i as u8 + 1; 32])
    }

    fn genesis(n: usize, epoch_length: u64) -> Arc<Genesis> {
        let doc = GenesisDoc {
            chain_id: "bizra-test".into(),
            genesis_time_ms: 1,
            params: GenesisParams {
                epoch_length,
                ..GenesisParams::default()
            },
            validators: (0..n)
                .map(|i| GenesisValidator {
                    id: signer(i).id().to_string(),
                    stake: 1000,
                    name: format!("v{i}"),
                })
                .collect(),
        };
        Arc::new(Genesis::from_doc(&doc).expect("genesis").0)
    }

    fn driver(g: &Arc<Genesis>, i: usize) -> Driver {
        Driver::new(
            g.clone(),
            ChainState::genesis(g),
            None,
            Some(signer(i)),
            None,
            Timeouts::default(),
        )
    }

    fn signed(g: &Genesis, i: usize, h: u64, r: u32, kind: VoteKind, value: Option<Hash>) -> SignedVote {
        let s = signer(i);
        sign_vote(&s, new_vote(g.chain_id(), h, r, kind, value, s.id()))
    }

    fn vote(g: &Genesis, i: usize, h: u64, r: u32, kind: VoteKind, value: Option<Hash>) -> VerifiedVote {
        check_vote(g.chain_id(), &g.members, &signed(g, i, h, r, kind, value)).expect("valid vote")
    }

    fn vote_msg(sv: SignedVote) -> ConsensusMessage {
        ConsensusMessage {
            msg: Some(Msg::Vote(sv)),
            attempt: 0,
        }
    }

    /// Runs 4 drivers until every one decided height 1; returns them.
    fn past_height_one(g: &Arc<Genesis>) -> Vec<Driver> {
        let mut ds: Vec<Driver> = (0..4).map(|i| driver(g, i)).collect();
        let mut queue: Vec<(usize, Effect)> = Vec::new();
        for (i, d) in ds.iter_mut().enumerate() {
            queue.extend(d.start(0).into_iter().map(|e| (i, e)));
        }
        let mut steps = 0;
        while let Some((from, e)) = queue.pop() {
            steps += 1;
            assert!(steps < 10_000, "height 1 never decided");
            match e {
                Effect::Broadcast(msg) => {
                    for (j, d) in ds.iter_mut().enumerate() {
                        if j == from {
                            continue;
                        }
                        let input = match msg.msg.as_ref() {
                            Some(Msg::Vote(sv)) => Input::Vote(d.check_vote(sv).expect("vote")),
                            Some(Msg::Proposal(sp)) => Input::Proposal(d.check_proposal(sp).expect("proposal")),
                            None => continue,
                        };
                        queue.extend(d.handle(1, input).expect("handle").into_iter().map(|e| (j, e)));
                    }
                }
                Effect::RequestValue { height, round } => {
                    let fx = ds[from]
                        .handle(
                            1,
                            Input::ProposeValue {
                                height,
                                round,
                                attestations: vec![],
                                evidence: vec![],
                            },
                        )
                        .expect("value");
                    queue.extend(fx.into_iter().map(|e| (from, e)));
                }
                _ => {}
            }
            if ds.iter().all(|d| d.height() >= 2) {
                return ds;
            }
        }
        panic!(
            "height 1 never decided: {:?}",
            ds.iter().map(|d| d.height()).collect::<Vec<_>>()
        );
    }

    /// L1: a WAL holding our precommit and the polka behind it at round 70
    /// (a long stall) is replayed before `start`, while the driver's round is
    /// still 0: the polka must be counted, not dropped by the round window.
    #[test]
    fn wal_replay_above_round_64_keeps_the_polka_behind_our_lock() {
        let g = genesis(4, 1000);
        let mut d = driver(&g, 0);
        let value = Some([7u8; 32]);
        let round = ROUND_WINDOW + 6;
        for i in 1..4 {
            let fx = d
                .handle(0, Input::Vote(vote(&g, i, 1, round, VoteKind::Prevote, value)))
                .unwrap();
            assert!(fx.contains(&Effect::Kept), "replayed prevote {i} kept");
        }
        let own = vote_msg(signed(&g, 0, 1, round, VoteKind::Precommit, value));
        d.handle(0, Input::RestoreOwn(own)).unwrap();
        let _ = d.start(0);
        assert_eq!(d.round(), round);
        assert!(
            d.votes().quorum_for(round, VoteKind::Prevote, &value),
            "the polka at round {round} is counted after the replay"
        );
        assert_eq!(d.locked(), Some(([7u8; 32], round)));
        // After start, the window applies again.
        let far = vote(&g, 1, 1, round + ROUND_WINDOW + 1, VoteKind::Prevote, None);
        let fx = d.handle(0, Input::Vote(far)).unwrap();
        assert!(!fx.contains(&Effect::Kept));
    }

    /// D4: precommits at the last decided height are kept only up to the
    /// decided round, so one signer cannot fill 2^32 rounds.
    #[test]
    fn late_precommits_above_the_decided_round_are_dropped_before_their_signature() {
        let g = genesis(4, 1000);
        let mut ds = past_height_one(&g);
        let d = &mut ds[0];
        let decided_round = d.last.as_ref().unwrap().round;
        let rounds_before = d.last.as_ref().unwrap().keeper.rounds_len();
        for r in decided_round + 1..decided_round + 2_000 {
            let claim = Claim {
                height: 1,
                round: r,
                kind: ClaimKind::Precommit,
                validator: 3,
                bytes: 0,
            };
            assert_eq!(d.admit(&claim), Admission::Drop(DropReason::LateRound));
            let fx = d
                .handle(1, Input::Vote(vote(&g, 3, 1, r, VoteKind::Precommit, None)))
                .unwrap();
            assert!(!fx.contains(&Effect::Kept), "round {r}");
        }
        assert_eq!(d.last.as_ref().unwrap().keeper.rounds_len(), rounds_before);
        // A prevote at the last height is no use either.
        let claim = Claim {
            height: 1,
            round: decided_round,
            kind: ClaimKind::Prevote,
            validator: 3,
            bytes: 0,
        };
        assert_eq!(d.admit(&claim), Admission::Drop(DropReason::LateRound));
        // Older heights are dropped outright.
        let old = Claim { height: 0, ..claim };
        assert_eq!(d.admit(&old), Admission::Drop(DropReason::OldHeight));
    }

    /// D2: one validator's future votes are capped, whatever their rounds,
    /// and a capped message is neither kept nor marked for the WAL.
    #[test]
    fn one_validator_cannot_fill_the_future_buffer() {
        let g = genesis(4, 1000);
        let mut d = driver(&g, 0);
        let _ = d.start(0);
        let mut kept = 0;
        for r in 0..500u32 {
            for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                let fx = d.handle(0, Input::Vote(vote(&g, 3, 2, r, kind, None))).unwrap();
                if fx.contains(&Effect::Kept) {
                    kept += 1;
                }
            }
        }
        assert_eq!(kept, FUTURE_MSGS_PER_VALIDATOR);
        assert_eq!(d.future.len(), FUTURE_MSGS_PER_VALIDATOR as usize);
        // Another validator still has its own share.
        let fx = d
            .handle(0, Input::Vote(vote(&g, 2, 2, 0, VoteKind::Prevote, None)))
            .unwrap();
        assert!(fx.contains(&Effect::Kept));
        // Heights beyond the buffer are not kept; a new highest one is a hint.
        let far = Claim {
            height: 1 + FUTURE_HEIGHTS + 1,
            round: 0,
            kind: ClaimKind::Prevote,
            validator: 2,
            bytes: 0,
        };
        assert_eq!(d.admit(&far), Admission::Hint);
        let fx = d
            .handle(0, Input::Vote(vote(&g, 2, far.height, 0, VoteKind::Prevote, None)))
            .unwrap();
        assert!(!fx.contains(&Effect::Kept));
        assert!(fx.iter().any(|e| matches!(e, Effect::SyncNeeded { .. })));
        assert_eq!(d.admit(&far), Admission::Drop(DropReason::FutureQuota));
    }

    /// D2: next-height proposals come only from that round's proposer (when
    /// the epoch does not change), for the first rounds, one per validator.
    #[test]
    fn future_proposals_need_the_proposer_the_first_rounds_and_a_quota() {
        let g = genesis(4, 1000);
        let mut d = driver(&g, 0);
        let _ = d.start(0);
        let claim = |round, validator, bytes| Claim {
            height: 2,
            round,
            kind: ClaimKind::Proposal,
            validator,
            bytes,
        };
        let p0 = d.next_height_proposer(0).expect("same epoch");
        let other = (p0 + 1) % 4;
        assert_ne!(d.next_height_proposer(0), Some(other));
        assert_eq!(d.admit(&claim(0, p0, 1000)), Admission::Use);
        // Hint: height 2 is above any seen so far.
        assert_eq!(d.admit(&claim(0, other, 1000)), Admission::Hint);
        d.max_seen_height = 2;
        assert_eq!(
            d.admit(&claim(0, other, 1000)),
            Admission::Drop(DropReason::NotProposer)
        );
        assert_eq!(
            d.admit(&claim(FUTURE_PROPOSAL_ROUNDS, p0, 1000)),
            Admission::Drop(DropReason::FutureQuota)
        );
        assert_eq!(
            d.admit(&claim(0, p0, FUTURE_PROPOSAL_BYTES + 1)),
            Admission::Drop(DropReason::FutureQuota)
        );
        assert!(d.buffer_future_input(&claim(0, p0, 1000), Input::Timeout(dummy_timeout())));
        assert_eq!(
            d.admit(&claim(0, p0, 1000)),
            Admission::Drop(DropReason::FutureQuota),
            "one future proposal per validator"
        );
        // The proposer of the next height at an epoch boundary is unknown.
        let g1 = genesis(4, 1);
        let d1 = driver(&g1, 0);
        assert_eq!(d1.next_height_proposer(0), None);
    }

    /// The claim read from the bytes (the block skipped) is the claim of the
    /// decoded message, whatever `attempt`; a proposal's claim is read even
    /// when its block would not decode.
    #[test]
    fn the_claim_read_from_bytes_is_the_claim_of_the_decoded_message() {
        let g = genesis(4, 1000);
        let mut msgs: Vec<ConsensusMessage> = Vec::new();
        for i in 0..4 {
            let mut d = driver(&g, i);
            for e in d.start(0) {
                let Effect::RequestValue { height, round } = e else {
                    continue;
                };
                let value = Input::ProposeValue {
                    height,
                    round,
                    attestations: vec![],
                    evidence: vec![],
                };
                for e in d.handle(1, value).expect("value") {
                    if let Effect::Broadcast(m) = e {
                        msgs.push(m);
                    }
                }
            }
        }
        let proposal = msgs
            .iter()
            .find_map(|m| match &m.msg {
                Some(Msg::Proposal(sp)) => Some(sp.clone()),
                _ => None,
            })
            .expect("the round-0 proposer proposes");
        msgs.push(vote_msg(signed(&g, 2, 1, 0, VoteKind::Prevote, None)));
        msgs.push(vote_msg(signed(&g, 3, 1, 5, VoteKind::Precommit, Some([7; 32]))));
        let d = driver(&g, 0);
        for mut m in msgs {
            for attempt in [0, 3, 300] {
                m.attempt = attempt;
                let want = d.claim(&m);
                assert!(want.is_some(), "{m:?}");
                assert_eq!(d.claim_encoded(&m.encode_to_vec()), want);
            }
        }
        // A proposal whose block is 64 KiB of garbage.
        let mut inner = Vec::new();
        prost::encoding::message::encode(1, proposal.proposal.as_ref().unwrap(), &mut inner);
        prost::encoding::bytes::encode(3, &vec![0xffu8; 64 << 10], &mut inner);
        let mut data = Vec::new();
        prost::encoding::bytes::encode(1, &inner, &mut data);
        assert!(ConsensusMessage::decode(data.as_slice()).is_err());
        let p = proposal.proposal.as_ref().unwrap();
        assert_eq!(
            d.claim_encoded(&data),
            Some(Claim {
                height: p.height,
                round: p.round,
                kind: ClaimKind::Proposal,
                validator: g.members.index_of(&p.proposer).unwrap(),
                bytes: inner.len(),
            })
        );
        // Not a consensus message, or no member: no claim.
        assert_eq!(d.claim_encoded(&[0xff, 0xff, 0xff]), None);
        assert_eq!(d.claim_encoded(&[]), None);
    }

    /// Current-height proposals from anyone but the round's proposer are
    /// dropped before their signature.
    #[test]
    fn current_height_proposals_from_others_are_dropped() {
        let g = genesis(4, 1000);
        let mut d = driver(&g, 0);
        let _ = d.start(0);
        let p = d.proposer(2);
        for v in 0..4 {
            let c = Claim {
                height: 1,
                round: 2,
                kind: ClaimKind::Proposal,
                validator: v,
                bytes: 10,
            };
            let want = if v == p {
                Admission::Use
            } else {
                Admission::Drop(DropReason::NotProposer)
            };
            assert_eq!(d.admit(&c), want, "validator {v}");
        }
        let c = Claim {
            height: 1,
            round: ROUND_WINDOW + 1,
            kind: ClaimKind::Prevote,
            validator: 1,
            bytes: 0,
        };
        assert_eq!(d.admit(&c), Admission::Drop(DropReason::RoundWindow));
        // Proposals (blocks) only a few rounds ahead, even from the proposer.
        for r in 0..20 {
            let c = Claim {
                height: 1,
                round: r,
                kind: ClaimKind::Proposal,
                validator: d.proposer(r),
                bytes: 4 << 20,
            };
            let want = if r <= PROPOSAL_ROUNDS_AHEAD {
                Admission::Use
            } else {
                Admission::Drop(DropReason::RoundWindow)
            };
            assert_eq!(d.admit(&c), want, "round {r}");
        }
    }

    /// ADR 0020: once a round holds a polka, a prevote from a validator not
    /// yet counted there is dropped before its signature; an equivocating
    /// second prevote, precommits and other rounds are still used.
    #[test]
    fn prevotes_after_a_polka_are_dropped_unless_they_are_evidence() {
        let g = genesis(7, 1000);
        let mut d = driver(&g, 0);
        let _ = d.start(0);
        let x = Some([7u8; 32]);
        let claim = |validator: usize, round: u32, kind: ClaimKind| Claim {
            height: 1,
            round,
            kind,
            validator,
            bytes: 0,
        };
        // 5 of 7 equal weights is the first quorum (> 2/3).
        for i in 1..=5 {
            assert_eq!(
                d.admit(&claim(6, 0, ClaimKind::Prevote)),
                Admission::Use,
                "before prevote {i}"
            );
            let fx = d
                .handle(0, Input::Vote(vote(&g, i, 1, 0, VoteKind::Prevote, x)))
                .unwrap();
            assert!(fx.contains(&Effect::Kept), "prevote {i} kept");
        }
        assert!(d.votes().quorum_for(0, VoteKind::Prevote, &x));
        assert_eq!(
            d.admit(&claim(6, 0, ClaimKind::Prevote)),
            Admission::Drop(DropReason::AfterPolka)
        );
        // The host skipping the pre-check changes nothing: not kept, no weight.
        let before = d.votes().set(0, VoteKind::Prevote).unwrap().weight_for(&x);
        let fx = d
            .handle(0, Input::Vote(vote(&g, 6, 1, 0, VoteKind::Prevote, x)))
            .unwrap();
        assert!(!fx.contains(&Effect::Kept));
        let set = d.votes().set(0, VoteKind::Prevote).unwrap();
        assert_eq!((set.weight_for(&x), set.get(6).is_none()), (before, true));
        // A counted validator's second prevote is evidence: verified and reported.
        assert_eq!(d.admit(&claim(1, 0, ClaimKind::Prevote)), Admission::Use);
        let fx = d
            .handle(0, Input::Vote(vote(&g, 1, 1, 0, VoteKind::Prevote, None)))
            .unwrap();
        assert!(fx.iter().any(|e| matches!(e, Effect::Evidence(_))), "{fx:?}");
        // Precommits of that round and prevotes of another round are used.
        assert_eq!(d.admit(&claim(6, 0, ClaimKind::Precommit)), Admission::Use);
        assert_eq!(d.admit(&claim(6, 1, ClaimKind::Prevote)), Admission::Use);
    }

    /// L3: a proposal whose block time is ahead of our clock by more than
    /// MAX_CLOCK_DRIFT_MS is not valid here (we prevote nil), although its
    /// parent allows up to an hour.
    #[test]
    fn a_block_time_ahead_of_the_local_clock_is_refused() {
        use crate::messages::{block_hash, check_proposal, sign_proposal};
        use bizra_proto::Proposal;
        let g = genesis(4, 1000);
        let now = 1_000_000;
        for (ahead, valid) in [(0, true), (super::super::MAX_CLOCK_DRIFT_MS, true), (60_000, false)] {
            let mut d = driver(&g, 0);
            let _ = d.start(now);
            let proposer = d.proposer(0);
            let s = signer(proposer);
            let block = d.chain.build_block(&g, s.id(), now + ahead, None, vec![]);
            let proposal = Proposal {
                chain_id: g.chain_id().to_string(),
                height: 1,
                round: 0,
                pol_round: -1,
                block_hash: block_hash(&block).unwrap().to_vec(),
                proposer: s.id().to_string(),
            };
            let sp = sign_proposal(&s, proposal, block);
            let p = check_proposal(g.chain_id(), &g.members, &sp).expect("signed");
            let fx = d.handle(now, Input::Proposal(p)).unwrap();
            assert!(fx.contains(&Effect::Kept));
            assert_eq!(d.proposals[&0][0].valid, valid, "{ahead} ms ahead");
        }
    }

    /// A vote the driver already holds is reported `Known` (a host skips
    /// verifying its copies), not `Kept` (nothing to record again).
    #[test]
    fn a_vote_already_held_is_known_not_kept() {
        let g = genesis(4, 1000);
        let mut d = driver(&g, 0);
        let _ = d.start(0);
        let v = vote(&g, 1, 1, 0, VoteKind::Prevote, None);
        let fx = d.handle(0, Input::Vote(v.clone())).unwrap();
        assert!(fx.contains(&Effect::Kept) && !fx.contains(&Effect::Known));
        let fx = d.handle(0, Input::Vote(v)).unwrap();
        assert!(fx.contains(&Effect::Known) && !fx.contains(&Effect::Kept));
    }

    fn dummy_timeout() -> super::super::Timeout {
        super::super::Timeout {
            height: 2,
            round: 0,
            kind: super::super::TimeoutKind::Propose,
        }
    }
}
