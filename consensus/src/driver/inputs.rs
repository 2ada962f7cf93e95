//! What the driver does with each input before the rules run: proposals and
//! votes (admitted, then kept for the current height, buffered for a later
//! one, or added to the last decision's precommits), the value to propose,
//! and blocks fetched by sync.

use super::admit::{self, Admission};
use super::{
    Delivery, Driver, DriverError, Effect, Input, ProposalEntry, Step, MAX_CLOCK_DRIFT_MS, PROPOSALS_PER_ROUND,
};
use crate::certificate::{self, CheckedCertificate};
use crate::evidence;
use crate::messages::{VerifiedProposal, VerifiedVote};
use crate::types::{Height, Round, SignStep};
use crate::vote_keeper::AddOutcome;
use bizra_proto::{Block, Envelope, Evidence, SignedVote, VoteKind};

impl Driver {
    /// A verified proposal or vote, from the network or re-fed from the
    /// future buffer: admitted ([`Driver::admit`]) and then used. Returns
    /// whether it was kept.
    pub(super) fn deliver(&mut self, input: Input, fx: &mut Vec<Effect>) -> Delivery {
        let claim = match &input {
            Input::Proposal(p) => admit::proposal_claim(p),
            Input::Vote(v) => admit::vote_claim(v),
            _ => return Delivery::Dropped,
        };
        let admission = self.admit(&claim);
        if claim.height > self.height {
            if claim.height > self.max_seen_height {
                self.max_seen_height = claim.height;
                fx.push(Effect::SyncNeeded {
                    from: self.height,
                    seen: claim.height,
                });
            }
            let kept = admission == Admission::Use && self.buffer_future_input(&claim, input);
            return if kept { Delivery::Kept } else { Delivery::Dropped };
        }
        if admission != Admission::Use {
            return Delivery::Dropped;
        }
        match input {
            Input::Proposal(p) => self.on_proposal(p),
            Input::Vote(v) if claim.height < self.height => self.late_precommit(v, fx),
            Input::Vote(v) => self.on_vote(v, fx),
            _ => Delivery::Dropped,
        }
    }

    /// A proposal at our height from its round's proposer, within the
    /// round window ([`Driver::deliver`] checked).
    pub(super) fn on_proposal(&mut self, p: VerifiedProposal) -> Delivery {
        let r = p.proposal().round;
        let entries = self.proposals.entry(r).or_default();
        if entries.iter().any(|e| e.hash == p.block_hash) {
            return Delivery::Known;
        }
        if entries.len() >= PROPOSALS_PER_ROUND {
            return Delivery::Dropped;
        }
        // Precommits of the embedded last commit that we verified when they
        // arrived are not verified again (byte-equal signed votes only).
        let last = self.last.as_ref();
        let known = |i: usize, sv: &SignedVote| {
            last.is_some_and(|l| {
                l.precommits.contains_signed(i, sv)
                    || sv.vote.as_ref().is_some_and(|v| {
                        l.keeper
                            .set(v.round, VoteKind::Precommit)
                            .is_some_and(|set| set.contains_signed(i, sv))
                    })
            })
        };
        // Block time may not run ahead of our clock by more than
        // MAX_CLOCK_DRIFT_MS (like CometBFT's PBTS upper bound), or a
        // Byzantine proposer could push chain time (and the attestation
        // windows that follow it) an hour ahead per block.
        let timely = p
            .block()
            .header
            .as_ref()
            .is_some_and(|h| h.time_ms <= self.now_ms.saturating_add(MAX_CLOCK_DRIFT_MS));
        let valid = timely
            && self
                .chain
                .validate_block_with(&self.genesis, p.block(), None, known)
                .is_ok();
        entries.push(ProposalEntry {
            hash: p.block_hash,
            pol_round: p.pol_round(),
            valid,
        });
        if valid {
            self.blocks.insert(p.block_hash, p.block().clone());
        }
        Delivery::Kept
    }

    /// A vote at our height, within the round window.
    pub(super) fn on_vote(&mut self, v: VerifiedVote, fx: &mut Vec<Effect>) -> Delivery {
        match self.keeper.add(v) {
            AddOutcome::Added => Delivery::Kept,
            AddOutcome::Duplicate => Delivery::Known,
            AddOutcome::Equivocation(e) => {
                fx.push(Effect::Evidence(*e));
                Delivery::Kept
            }
        }
    }

    /// A precommit at the last decided height, of a round up to the decided
    /// one ([`Driver::admit`]: later rounds cannot change the decision, and
    /// would let one signer fill 2^32 rounds).
    pub(super) fn late_precommit(&mut self, v: VerifiedVote, fx: &mut Vec<Effect>) -> Delivery {
        let Some(last) = self.last.as_mut() else {
            return Delivery::Dropped;
        };
        if v.kind != VoteKind::Precommit || v.height() != last.height || v.round() > last.round {
            return Delivery::Dropped;
        }
        match last.keeper.add(v.clone()) {
            AddOutcome::Duplicate => return Delivery::Known,
            AddOutcome::Equivocation(e) => {
                fx.push(Effect::Evidence(*e));
                return Delivery::Kept;
            }
            AddOutcome::Added => {}
        }
        if v.round() != last.round || v.value != Some(last.hash) {
            return Delivery::Kept;
        }
        let w = self.chain.last_weights.weight(v.validator);
        if last.precommits.add(v, w) == AddOutcome::Added {
            // The grown certificate is built when someone needs it (the
            // next proposal, the host's write, the next decision), not per
            // late precommit: that rebuilt and cloned all N signatures for
            // each of the dozens of late ones at 100 validators.
            self.last_commit_stale = true;
            self.commit_update_pending = true;
        }
        Delivery::Kept
    }

    pub(super) fn on_value(
        &mut self,
        now_ms: u64,
        h: Height,
        r: Round,
        atts: Vec<Envelope>,
        evidence: Vec<Evidence>,
        fx: &mut Vec<Effect>,
    ) {
        if h != self.height
            || r != self.round
            || self.step != Step::Propose
            || self.own.contains_key(&(r, SignStep::Proposal))
        {
            return;
        }
        let Some(signer) = self.signer.clone() else { return };
        let evidence = self.includable_evidence(evidence);
        self.refresh_last_commit();
        let block = self.chain.build_block_with(
            &self.genesis,
            signer.id(),
            now_ms,
            self.last_commit.clone(),
            atts,
            evidence,
        );
        self.propose(block, None, fx);
    }

    /// What of `offered` the next block may carry: each piece valid in full
    /// (a bad one would make our own proposal invalid), one per offence, at
    /// most `max_per_block`.
    pub(super) fn includable_evidence(&self, offered: Vec<Evidence>) -> Vec<Evidence> {
        let g = &self.genesis;
        let max = g.params().evidence.max_per_block as usize;
        let mut keys = std::collections::HashSet::new();
        offered
            .into_iter()
            .filter(|e| {
                self.chain.evidence_includable(g, e).is_ok_and(|k| !keys.contains(&k))
                    && evidence::check(g.chain_id(), &g.members, e).is_ok_and(|k| keys.insert(k))
            })
            .take(max)
            .collect()
    }

    pub(super) fn on_synced(
        &mut self,
        block: Block,
        commit: CheckedCertificate,
        fx: &mut Vec<Effect>,
    ) -> Result<(), DriverError> {
        let h = block.header.as_ref().map(|h| h.height).unwrap_or(0);
        if h < self.height {
            return Ok(()); // already final here
        }
        if h > self.height {
            return Err(DriverError::SyncedBlock(format!(
                "height {h} is ahead of {}",
                self.height
            )));
        }
        // A block's last commit that is byte for byte the certificate we
        // already verified for its parent (the usual case in a synced range)
        // is not verified a second time.
        self.refresh_last_commit();
        let hash = self
            .chain
            .validate_block_trusting(&self.genesis, &block, self.last_commit.as_ref())
            .map_err(|e| DriverError::SyncedBlock(e.to_string()))?;
        certificate::verify_checked(
            &self.genesis.members,
            &self.chain.weights,
            self.threshold_bps,
            &commit,
            Some((h, hash)),
        )
        .map_err(|e| DriverError::SyncedBlock(format!("commit: {e}")))?;
        let commit = commit.into_cert();
        let round = commit.round;
        self.decide(block, hash, commit, round, fx);
        Ok(())
    }
}
