//! Re-sends of our own messages and of the polkas behind our valid value:
//! the paper assumes reliable gossip, real networks drop (ADR 0005 and its
//! amendment, ADR 0012). Kept O(n) per round.

use super::{Driver, Effect, Timeout, TimeoutKind, REBROADCAST_MAX_DOUBLINGS};
use crate::types::{Hash, Round, SignStep};
use bizra_proto::{consensus_message::Msg, ConsensusMessage, VoteKind};

impl Driver {
    pub(super) fn schedule_rebroadcast(&self, fx: &mut Vec<Effect>) {
        fx.push(Effect::ScheduleTimeout {
            timeout: Timeout {
                height: self.height,
                round: self.round,
                kind: TimeoutKind::Rebroadcast,
            },
            after_ms: self
                .round_timeout(self.timeouts.propose_ms, self.round)
                .max(self.height_ms_avg.saturating_mul(2))
                .saturating_mul(1 << self.rebroadcasts_in_round.min(REBROADCAST_MAX_DOUBLINGS)),
        });
    }

    /// Whether this validator re-sends polkas in the current round. Every
    /// validator holding a polka re-sending all its votes each round is
    /// O(n^2) messages per round: at 100 validators it stalled the chain
    /// under its own traffic. Instead a rotating quarter-share does it:
    /// validator i when (round + i) % ceil(n/4) == 0, about four per round,
    /// and every validator within ceil(n/4) consecutive rounds. With up to 4
    /// validators that is everyone, every round.
    pub(super) fn resends_polkas(&self) -> bool {
        let Some(me) = self.me else { return false };
        let k = self.genesis.members.len().div_ceil(4).max(1) as u64;
        (self.round as u64 + me as u64).is_multiple_of(k)
    }

    /// Re-sends what a peer that lost messages needs from us (ADR 0005). At
    /// 100 validators every re-sent message costs the whole network a gossip
    /// round, so this is kept small: see the comments below.
    pub(super) fn rebroadcast_own(&mut self, with_polka: bool, fx: &mut Vec<Effect>) {
        // Our votes of this round (a round's timeouts start only on quorums
        // of them), and our precommits *for a value* from earlier rounds: a
        // peer still there may need them to decide (lines 49-54).
        //
        // On the Rebroadcast timer also our votes (nil included) of the last
        // round we voted in before this one. A peer behind us moves up on
        // f+1 of this round's votes (line 55) only if the validators already
        // here hold more than a third of the weight; if they do not (a
        // partition that lost our precommits of that round, then healed),
        // the peer needs exactly those votes to reach the 2f+1 that starts
        // its precommit (or prevote) timeout there. Without them both sides
        // wait forever (bizra-sim seed 201735, 7 validators, 2 Byzantine).
        let previous = if with_polka {
            self.own
                .keys()
                .filter(|(r, step)| *r < self.round && *step != SignStep::Proposal)
                .map(|(r, _)| *r)
                .max()
        } else {
            None
        };
        for ((r, step), msg) in &self.own {
            let vote = *step != SignStep::Proposal;
            let current = *r == self.round && vote;
            let last_round = Some(*r) == previous && vote;
            if current || last_round || (*step == SignStep::Precommit && !is_nil_vote(msg)) {
                fx.push(Effect::Broadcast(msg.clone()));
            }
        }
        if !with_polka || !self.resends_polkas() {
            return;
        }
        // On the Rebroadcast timer only (once per round), by a rotating
        // subset of validators (resends_polkas): the polkas behind
        // our valid value and behind this round's proposal. Peers that missed
        // them (or lost them in a crash) cannot accept a re-proposal carrying
        // that round (lines 28-33), and a proposer that never saw the polka
        // its peers are locked on cannot adopt it as its valid value (line
        // 36): without this, a hidden lock stalls the chain (bizra-sim).
        let mut polkas: Vec<(Hash, Round)> = self.valid.into_iter().collect();
        if let Some(p) = self.proposals.get(&self.round).and_then(|e| e.first()) {
            if let Some(vr) = p.pol_round {
                if !polkas.contains(&(p.hash, vr)) {
                    polkas.push((p.hash, vr));
                }
            }
        }
        for (v, vr) in polkas {
            if !self.keeper.quorum_for(vr, VoteKind::Prevote, &Some(v)) {
                continue;
            }
            if let Some(set) = self.keeper.set(vr, VoteKind::Prevote) {
                for sv in set.signed_for(&Some(v)) {
                    fx.push(Effect::Broadcast(ConsensusMessage {
                        msg: Some(Msg::Vote(sv)),
                        attempt: 0,
                    }));
                }
            }
        }
    }
}

/// True for a vote message whose block hash is empty (a nil vote).
pub(super) fn is_nil_vote(msg: &ConsensusMessage) -> bool {
    match &msg.msg {
        Some(Msg::Vote(sv)) => sv.vote.as_ref().is_none_or(|v| v.block_hash.is_empty()),
        _ => false,
    }
}
