//! Timeouts: what a fired timeout does (Algorithm 1, lines 57-67, and the
//! re-sends of a stuck round), how long a round's timeouts are, and the
//! adaptive scale (ADR 0012).

use super::{Driver, Effect, Step, Timeout, TimeoutKind, TIMEOUT_SCALE_MAX_PCT, TIMEOUT_SCALE_MIN_PCT};
use crate::types::Round;
use bizra_proto::VoteKind;

impl Driver {
    pub(super) fn on_timeout(&mut self, t: Timeout, fx: &mut Vec<Effect>) {
        if t.height != self.height {
            return;
        }
        match t.kind {
            TimeoutKind::NewHeight => {
                if !self.started {
                    self.started = true;
                    self.start_round(0, fx);
                }
                return;
            }
            _ if t.round != self.round => return,
            TimeoutKind::Rebroadcast => {
                self.rebroadcast_own(true, fx);
                self.rebroadcasts_in_round = self.rebroadcasts_in_round.saturating_add(1);
                self.schedule_rebroadcast(fx);
                return;
            }
            _ => {}
        }
        // Lost votes must not stall a round: re-send ours on a timeout that
        // finds the round stuck at its step (polkas only on the Rebroadcast
        // timer). A timeout the round has already passed (the prevote
        // timeout after the polka arrived) re-sends nothing: at 100
        // validators those re-sends were half of all consensus traffic.
        let stuck = match t.kind {
            TimeoutKind::Propose => self.step == Step::Propose,
            TimeoutKind::Prevote => self.step == Step::Prevote,
            _ => true,
        };
        if stuck {
            self.rebroadcast_own(false, fx);
        }
        match t.kind {
            TimeoutKind::Propose if self.step == Step::Propose => {
                // Lines 57-60.
                self.vote(VoteKind::Prevote, None, fx);
                self.step = Step::Prevote;
            }
            TimeoutKind::Prevote if self.step == Step::Prevote => {
                // Lines 61-64.
                self.vote(VoteKind::Precommit, None, fx);
                self.step = Step::Precommit;
            }
            TimeoutKind::Precommit => {
                // Lines 65-67 (saturating: round `u32::MAX` is unreachable,
                // but must not wrap to round 0 in a release build).
                self.start_round(self.round.saturating_add(1), fx);
            }
            _ => {}
        }
    }

    /// A timeout of round `r`: `base + delta * r`, times the adaptive scale.
    pub(super) fn round_timeout(&self, base: u64, r: Round) -> u64 {
        base.saturating_add(self.timeouts.delta_ms.saturating_mul(r as u64))
            .saturating_mul(self.timeout_scale_pct as u64)
            / 100
    }

    /// The adaptive timeout scale, in percent of the configured timeouts.
    pub fn timeout_scale_pct(&self) -> u32 {
        self.timeout_scale_pct
    }
}

/// The adaptive timeout scale after a decided height: x1.5 (up to
/// [`TIMEOUT_SCALE_MAX_PCT`]) after a slow one, else 1/16 back towards
/// [`TIMEOUT_SCALE_MIN_PCT`].
pub(super) fn next_timeout_scale(pct: u32, slow: bool) -> u32 {
    if slow {
        (pct.saturating_mul(3) / 2).min(TIMEOUT_SCALE_MAX_PCT)
    } else {
        (pct - pct / 16).max(TIMEOUT_SCALE_MIN_PCT)
    }
}
