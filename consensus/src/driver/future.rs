//! Inputs of later heights: the future buffer's quotas (per validator and in
//! all), the next height's proposer when it is already known, and the
//! replay of the buffer when a height is decided.

use super::admit::{
    Claim, ClaimKind, DropReason, FUTURE_BUFFER, FUTURE_HEIGHTS, FUTURE_MSGS_PER_VALIDATOR, FUTURE_PROPOSAL_BYTES,
    FUTURE_PROPOSAL_ROUNDS,
};
use super::{Driver, Effect, Input};
use crate::types::Round;

/// What one validator holds in the future buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct FutureUse {
    pub msgs: u32,
    pub proposals: u32,
}

impl Driver {
    /// The future-buffer rules for a claim above our height.
    pub(super) fn future_verdict(&self, c: &Claim) -> Result<(), DropReason> {
        if c.height > self.height + FUTURE_HEIGHTS || self.future.len() >= FUTURE_BUFFER {
            return Err(DropReason::FutureQuota);
        }
        let used = self.future_use.get(&c.validator).copied().unwrap_or_default();
        if used.msgs >= FUTURE_MSGS_PER_VALIDATOR {
            return Err(DropReason::FutureQuota);
        }
        if c.kind == ClaimKind::Proposal {
            if c.height != self.height + 1
                || c.round >= FUTURE_PROPOSAL_ROUNDS
                || used.proposals >= 1
                || self.future_proposal_bytes.saturating_add(c.bytes) > FUTURE_PROPOSAL_BYTES
            {
                return Err(DropReason::FutureQuota);
            }
            if self.next_height_proposer(c.round).is_some_and(|p| p != c.validator) {
                return Err(DropReason::NotProposer);
            }
        }
        Ok(())
    }

    /// The proposer of `round` at `height + 1`, when it does not depend on
    /// the block still being decided: both heights in one epoch (the
    /// priorities then advance by one step with the same weights).
    pub(super) fn next_height_proposer(&self, round: Round) -> Option<usize> {
        let len = self.genesis.params().epoch_length;
        if self.height.is_multiple_of(len) {
            return None; // `height + 1` starts a new epoch: weights unknown yet
        }
        let w = &self.chain.weights.weights;
        let mut p = self.chain.priorities.clone();
        p.step(w);
        Some(p.proposer_for_round(w, round))
    }

    /// Buffers a verified future-height input if its quotas allow (the
    /// caller checked [`Driver::admit`]); returns whether it was kept.
    pub(super) fn buffer_future_input(&mut self, c: &Claim, input: Input) -> bool {
        if self.future_verdict(c).is_err() {
            return false;
        }
        let used = self.future_use.entry(c.validator).or_default();
        used.msgs += 1;
        if c.kind == ClaimKind::Proposal {
            used.proposals += 1;
            self.future_proposal_bytes += c.bytes;
        }
        self.future.push(input);
        true
    }

    /// Replays the buffered messages for the new height (the rest is
    /// buffered again, within fresh quotas).
    pub(super) fn replay_future(&mut self, fx: &mut Vec<Effect>) {
        let future = std::mem::take(&mut self.future);
        self.future_use.clear();
        self.future_proposal_bytes = 0;
        for input in future {
            self.deliver(input, fx);
        }
    }
}
