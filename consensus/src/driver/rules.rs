//! The rules of Tendermint's Algorithm 1 (Buchman, Kwon, Milosevic 2018)
//! over weighted votes: starting a round, the rules re-evaluated after each
//! input until none fires, and a decision (which moves to the next height).
//! Comments cite the paper's line numbers.

use super::timeouts::next_timeout_scale;
use super::{Driver, Effect, LastDecision, Step, Timeout, TimeoutKind};
use crate::messages::{self, VerifiedVote};
use crate::types::{Hash, Round, SignStep};
use crate::vote_keeper::{VoteKeeper, VoteSet};
use bizra_proto::{Block, CommitCertificate, SignedVote, VoteKind};

impl Driver {
    pub(super) fn start_round(&mut self, r: Round, fx: &mut Vec<Effect>) {
        // Lines 11-21.
        if r > self.round && self.proposals.get(&self.round).is_some_and(|e| !e.is_empty()) {
            self.slow_round_seen = true;
        }
        self.round = r;
        self.rebroadcasts_in_round = 0;
        self.step = Step::Propose;
        if let Some(step) = self.own.keys().filter(|(rr, _)| *rr == r).map(|(_, s)| *s).max() {
            self.step = match step {
                SignStep::Proposal => Step::Propose,
                SignStep::Prevote => Step::Prevote,
                SignStep::Precommit => Step::Precommit,
            };
        }
        let h = self.height;
        fx.push(Effect::ScheduleTimeout {
            timeout: Timeout {
                height: h,
                round: r,
                kind: TimeoutKind::Propose,
            },
            after_ms: self.round_timeout(self.timeouts.propose_ms, r),
        });
        self.schedule_rebroadcast(fx);
        if self.me.is_some() && self.proposer(r) == self.me.unwrap() && self.step == Step::Propose {
            if let Some(own) = self.own.get(&(r, SignStep::Proposal)) {
                fx.push(Effect::Broadcast(own.clone()));
            } else if let Some((v, vr)) = self.valid {
                if let Some(block) = self.blocks.get(&v).cloned() {
                    self.propose(block, Some(vr), fx);
                    return;
                }
                self.request_value(r, fx);
            } else {
                self.request_value(r, fx);
            }
        }
    }

    pub(super) fn request_value(&mut self, r: Round, fx: &mut Vec<Effect>) {
        if self.value_requested.insert(r) {
            fx.push(Effect::RequestValue {
                height: self.height,
                round: r,
            });
        }
    }

    /// Applies the rules of Algorithm 1 until none fires.
    pub(super) fn process(&mut self, fx: &mut Vec<Effect>) {
        loop {
            let height = self.height;
            let changed = self.rule_decide(fx) || (height == self.height && (self.rule_skip(fx) || self.rule_step(fx)));
            if !changed {
                break;
            }
        }
    }

    /// Lines 49-54: a precommit quorum for a value we hold decides it.
    pub(super) fn rule_decide(&mut self, fx: &mut Vec<Effect>) -> bool {
        for (r, v) in self.keeper.precommit_quorums() {
            if let Some(block) = self.blocks.get(&v).cloned() {
                let signed = self
                    .keeper
                    .set(r, VoteKind::Precommit)
                    .expect("quorum")
                    .signed_for(&Some(v));
                let cert = CommitCertificate {
                    height: self.height,
                    round: r,
                    block_hash: v.to_vec(),
                    precommits: signed,
                };
                self.decide(block, v, cert, r, fx);
                return true;
            } else if !self.missing_block_reported {
                self.missing_block_reported = true;
                fx.push(Effect::SyncNeeded {
                    from: self.height,
                    seen: self.height,
                });
            }
        }
        false
    }

    /// Lines 55-56: more than a third of the weight is in a later round.
    pub(super) fn rule_skip(&mut self, fx: &mut Vec<Effect>) -> bool {
        if !self.started {
            return false;
        }
        match self.keeper.skip_round(self.round) {
            Some(r) => {
                self.start_round(r, fx);
                true
            }
            None => false,
        }
    }

    pub(super) fn rule_step(&mut self, fx: &mut Vec<Effect>) -> bool {
        if !self.started {
            return false;
        }
        let (h, r) = (self.height, self.round);
        let first = self.proposals.get(&r).and_then(|e| e.first()).cloned();
        // Lines 22-27 and 28-33: prevote on the round's proposal.
        if self.step == Step::Propose {
            if let Some(p) = &first {
                let vote = match p.pol_round {
                    None => Some(p.valid && self.locked.is_none_or(|(lv, _)| lv == p.hash)),
                    Some(vr) if vr < r && self.keeper.quorum_for(vr, VoteKind::Prevote, &Some(p.hash)) => {
                        Some(p.valid && self.locked.is_none_or(|(lv, lr)| lr <= vr || lv == p.hash))
                    }
                    _ => None,
                };
                if let Some(ok) = vote {
                    self.vote(VoteKind::Prevote, ok.then_some(p.hash), fx);
                    self.step = Step::Prevote;
                    return true;
                }
            }
        }
        // Lines 34-35: any prevote quorum starts the prevote timeout.
        if self.step == Step::Prevote
            && self.keeper.quorum_any(r, VoteKind::Prevote)
            && self.prevote_timeout_set.insert(r)
        {
            fx.push(Effect::ScheduleTimeout {
                timeout: Timeout {
                    height: h,
                    round: r,
                    kind: TimeoutKind::Prevote,
                },
                after_ms: self.round_timeout(self.timeouts.prevote_ms, r),
            });
        }
        // Lines 36-43: a polka for a valid proposal locks (if prevoting) and
        // sets the valid value, the first time per round.
        if self.step >= Step::Prevote && !self.polka_done.contains(&r) {
            let polka = self
                .proposals
                .get(&r)
                .into_iter()
                .flatten()
                .find(|e| e.valid && self.keeper.quorum_for(r, VoteKind::Prevote, &Some(e.hash)))
                .map(|e| e.hash);
            if let Some(v) = polka {
                self.polka_done.insert(r);
                if self.step == Step::Prevote {
                    self.locked = Some((v, r));
                    self.vote(VoteKind::Precommit, Some(v), fx);
                    self.step = Step::Precommit;
                }
                self.valid = Some((v, r));
                return true;
            }
        }
        // Lines 44-46: a nil polka precommits nil.
        if self.step == Step::Prevote && self.keeper.quorum_for(r, VoteKind::Prevote, &None) {
            self.vote(VoteKind::Precommit, None, fx);
            self.step = Step::Precommit;
            return true;
        }
        // Lines 47-48: any precommit quorum starts the precommit timeout.
        if self.keeper.quorum_any(r, VoteKind::Precommit) && self.precommit_timeout_set.insert(r) {
            fx.push(Effect::ScheduleTimeout {
                timeout: Timeout {
                    height: h,
                    round: r,
                    kind: TimeoutKind::Precommit,
                },
                // Not scaled (ADR 0012's scale is per node): every honest
                // validator leaves the round this long after the same 2f+1
                // precommits, so rounds start together. With scaled exits a
                // validator at 1x (restarted, or synced through the slow
                // heights) led every round by a whole propose timeout, and
                // those at 4x entered each round only by the f+1 skip on its
                // nil prevote, too late for their proposals to reach it
                // (bizra-sim seed 104, 4 validators, 1 Byzantine).
                after_ms: self
                    .timeouts
                    .precommit_ms
                    .saturating_add(self.timeouts.delta_ms.saturating_mul(r as u64)),
            });
        }
        false
    }

    pub(super) fn decide(
        &mut self,
        block: Block,
        hash: Hash,
        cert: CommitCertificate,
        round: Round,
        fx: &mut Vec<Effect>,
    ) {
        let decided_height = self.height;
        // Late precommits for the block before this one, not yet handed to
        // the host: now or never, before `last` is replaced.
        if let Some(grown) = self.take_commit_update() {
            fx.push(Effect::CommitUpdated(grown));
        }
        self.chain.apply(&self.genesis, &block, hash);
        // Keep collecting late precommits for economic finality.
        let mut precommits = VoteSet::default();
        let old_keeper = std::mem::replace(
            &mut self.keeper,
            VoteKeeper::new(self.chain.weights.weights.clone(), self.threshold_bps),
        );
        for sv in &cert.precommits {
            if let Some(v) = sv
                .vote
                .as_ref()
                .and_then(|v| self.genesis.members.index_of(&v.validator))
            {
                if let Ok(vv) = self.check_vote_trusted(sv, v) {
                    let w = self.chain.last_weights.weight(v);
                    let _ = precommits.add(vv, w);
                }
            }
        }
        self.last = Some(LastDecision {
            height: decided_height,
            round,
            hash,
            precommits,
            keeper: old_keeper,
        });
        self.last_commit = Some(cert.clone());
        self.last_commit_stale = false;
        self.commit_update_pending = false;
        fx.push(Effect::Decided {
            block,
            hash,
            commit: cert,
            round,
            state: Box::new(self.chain.clone()),
        });
        // Adapt the timeouts: a height that took several rounds although a
        // proposal was heard means votes arrive slower than the timeouts
        // allow (a busy host); a silent proposer is not a reason.
        self.timeout_scale_pct = next_timeout_scale(self.timeout_scale_pct, self.slow_round_seen);
        self.slow_round_seen = false;
        // Only heights decided in their first round count, each at most 4
        // propose timeouts: a height that waited out a partition says
        // nothing about how long votes take, and must not delay re-sends
        // after the network heals.
        let started = self.height_started_ms.replace(self.now_ms);
        if let Some(start) = started.filter(|_| round == 0) {
            let took = self
                .now_ms
                .saturating_sub(start)
                .min(self.timeouts.propose_ms.saturating_mul(4));
            self.height_ms_avg = if self.height_ms_avg == 0 {
                took
            } else {
                (self.height_ms_avg * 7 + took) / 8
            };
        }
        // Reset for the next height.
        self.height = self.chain.next_height();
        self.round = 0;
        self.step = Step::Propose;
        self.locked = None;
        self.valid = None;
        self.proposals.clear();
        self.blocks.clear();
        self.own.clear();
        self.prevote_timeout_set.clear();
        self.precommit_timeout_set.clear();
        self.polka_done.clear();
        self.value_requested.clear();
        self.missing_block_reported = false;
        self.proposer_cache.clear();
        if self.timeouts.commit_ms > 0 {
            self.started = false;
            fx.push(Effect::ScheduleTimeout {
                timeout: Timeout {
                    height: self.height,
                    round: 0,
                    kind: TimeoutKind::NewHeight,
                },
                after_ms: self.timeouts.commit_ms,
            });
        } else {
            self.started = true;
            self.start_round(0, fx);
        }
        self.replay_future(fx);
    }

    /// Builds a VerifiedVote from a vote already inside a verified certificate.
    pub(super) fn check_vote_trusted(&self, sv: &SignedVote, validator: usize) -> Result<VerifiedVote, ()> {
        let v = sv.vote.as_ref().ok_or(())?;
        let kind = messages::vote_kind(v).ok_or(())?;
        let value = crate::types::hash_from_slice(&v.block_hash).map_err(|_| ())?;
        Ok(VerifiedVote {
            signed: sv.clone(),
            validator,
            kind,
            value,
        })
    }
}
