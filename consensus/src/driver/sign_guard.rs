//! Signing our own proposals and votes under the double-sign guard (never
//! sign below the highest signed position; at a restored position re-send
//! exactly what was signed), and restoring them from the WAL after a
//! restart. Every signature leaves as [`Effect::PersistOwn`] first.

use super::{Driver, DriverError, Effect};
use crate::messages::{self, new_vote, sign_proposal, sign_vote};
use crate::types::{Hash, Round, SignPosition, SignStep};
use bizra_proto::{consensus_message::Msg, Block, ConsensusMessage, Proposal, VoteKind};

impl Driver {
    pub(super) fn restore_own(&mut self, msg: ConsensusMessage) -> Result<(), DriverError> {
        let me = self.me.ok_or_else(|| DriverError::Restore("not a validator".into()))?;
        let (h, r, step) = match &msg.msg {
            Some(Msg::Vote(sv)) => {
                let v = self.check_vote(sv).map_err(|e| DriverError::Restore(e.to_string()))?;
                if v.validator != me {
                    return Err(DriverError::Restore("vote is not ours".into()));
                }
                (v.height(), v.round(), v.step())
            }
            Some(Msg::Proposal(sp)) => {
                let p = self
                    .check_proposal(sp)
                    .map_err(|e| DriverError::Restore(e.to_string()))?;
                if p.proposer != me {
                    return Err(DriverError::Restore("proposal is not ours".into()));
                }
                (p.proposal().height, p.proposal().round, SignStep::Proposal)
            }
            None => return Err(DriverError::Restore("empty message".into())),
        };
        if h != self.height {
            return Ok(()); // an old height: nothing to restore
        }
        let pos = SignPosition {
            height: h,
            round: r,
            step,
        };
        if self.guard.is_none_or(|g| g < pos) {
            self.guard = Some(pos);
        }
        // Re-deliver it to ourselves so the tally and locks are as before.
        match &msg.msg {
            Some(Msg::Vote(sv)) => {
                let v = self.check_vote(sv).expect("checked above");
                if v.kind == VoteKind::Precommit {
                    if let Some(val) = v.value {
                        // We precommit a value exactly when we lock on it (line 38).
                        if self.locked.is_none_or(|(_, lr)| lr <= r) {
                            self.locked = Some((val, r));
                            self.valid = Some((val, r));
                        }
                    }
                }
                let _ = self.keeper.add(v);
            }
            Some(Msg::Proposal(sp)) => {
                let p = self.check_proposal(sp).expect("checked above");
                let _ = self.on_proposal(p);
            }
            None => {}
        }
        self.own.insert((r, step), msg);
        Ok(())
    }

    pub(super) fn propose(&mut self, block: Block, pol_round: Option<Round>, fx: &mut Vec<Effect>) {
        let Some(signer) = self.signer.clone() else { return };
        let (h, r) = (self.height, self.round);
        let pos = SignPosition {
            height: h,
            round: r,
            step: SignStep::Proposal,
        };
        if !self.may_sign(pos) {
            return;
        }
        let hash = messages::block_hash(&block).expect("header");
        let proposal = Proposal {
            chain_id: self.genesis.chain_id().to_string(),
            height: h,
            round: r,
            pol_round: pol_round.map(|r| r as i64).unwrap_or(-1),
            block_hash: hash.to_vec(),
            proposer: signer.id().to_string(),
        };
        let sp = sign_proposal(&signer, proposal, block);
        let msg = ConsensusMessage {
            msg: Some(Msg::Proposal(sp.clone())),
            attempt: 0,
        };
        self.record_signed(pos, msg, fx);
        let p = self.check_proposal(&sp).expect("own proposal verifies");
        let _ = self.on_proposal(p);
    }

    /// The double-sign guard: never sign below the highest signed position,
    /// and at it only what we already signed (which `vote` re-sends instead).
    pub(super) fn may_sign(&self, pos: SignPosition) -> bool {
        self.guard.is_none_or(|g| pos > g) && !self.own.contains_key(&(pos.round, pos.step))
    }

    pub(super) fn record_signed(&mut self, pos: SignPosition, msg: ConsensusMessage, fx: &mut Vec<Effect>) {
        self.guard = Some(pos);
        self.own.insert((pos.round, pos.step), msg.clone());
        fx.push(Effect::PersistOwn {
            position: pos,
            msg: msg.clone(),
        });
        fx.push(Effect::Broadcast(msg));
    }

    pub(super) fn vote(&mut self, kind: VoteKind, value: Option<Hash>, fx: &mut Vec<Effect>) {
        let Some(signer) = self.signer.clone() else { return };
        if self.me.is_none() {
            return;
        }
        let step = if kind == VoteKind::Precommit {
            SignStep::Precommit
        } else {
            SignStep::Prevote
        };
        let pos = SignPosition {
            height: self.height,
            round: self.round,
            step,
        };
        if let Some(prev) = self.own.get(&(self.round, step)) {
            // Restored from the WAL: re-send exactly what we signed.
            fx.push(Effect::Broadcast(prev.clone()));
            return;
        }
        if !self.may_sign(pos) {
            return;
        }
        let sv = sign_vote(
            &signer,
            new_vote(
                self.genesis.chain_id(),
                self.height,
                self.round,
                kind,
                value,
                signer.id(),
            ),
        );
        let msg = ConsensusMessage {
            msg: Some(Msg::Vote(sv.clone())),
            attempt: 0,
        };
        self.record_signed(pos, msg, fx);
        let v = self.check_vote(&sv).expect("own vote verifies");
        let _ = self.keeper.add(v);
    }
}
