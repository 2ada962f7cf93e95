//! The driver: Tendermint (Buchman, Kwon, Milosevic 2018, Algorithm 1) over
//! weighted votes, for one validator, across rounds and heights.
//!
//! It is a pure state machine. [`Driver::handle`] takes an [`Input`] and the
//! current time as a value and returns [`Effect`]s for the host to execute in
//! order. The host must finish a [`Effect::PersistOwn`] (WAL + guard, synced)
//! before it executes any later effect, which is how a signed message never
//! leaves the node before it is durable.
//!
//! The line numbers in comments refer to Algorithm 1 of the paper.

use crate::certificate::{self, CheckedCertificate};
use crate::chain::ChainState;
use crate::evidence;
use crate::genesis::Genesis;
use crate::messages::{
    self, check_proposal, check_vote, new_vote, sign_proposal, sign_vote, VerifiedProposal, VerifiedVote,
};
use crate::signing::Signer;
use crate::types::{Hash, Height, Round, SignPosition, SignStep};
use crate::vote_keeper::{AddOutcome, VoteKeeper, VoteSet};
use bizra_proto::{
    consensus_message::Msg, Block, CommitCertificate, ConsensusMessage, Envelope, Equivocation, Evidence, Proposal,
    SignedVote, VoteKind,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// How far ahead (in rounds) votes and proposals are kept.
pub const ROUND_WINDOW: Round = 64;
mod admit;
pub use admit::{
    Admission, Claim, ClaimKind, DropReason, FUTURE_BUFFER, FUTURE_HEIGHTS, FUTURE_MSGS_PER_VALIDATOR,
    FUTURE_PROPOSAL_BYTES, FUTURE_PROPOSAL_ROUNDS, PROPOSAL_ROUNDS_AHEAD,
};
/// How far a proposed block's time may be ahead of the local clock (the
/// `now_ms` the host passes in). Honest validators' clocks must agree within
/// this, or they prevote nil on honest proposals.
pub const MAX_CLOCK_DRIFT_MS: u64 = 5_000;
/// Most distinct proposals kept per round (an equivocating proposer's extras
/// are dropped).
pub const PROPOSALS_PER_ROUND: usize = 2;

/// Bounds of the adaptive timeout scale, in percent of the configured
/// timeouts (see [`Driver::timeout_scale_pct`]).
pub const TIMEOUT_SCALE_MIN_PCT: u32 = 100;
pub const TIMEOUT_SCALE_MAX_PCT: u32 = 400;
/// The rebroadcast interval doubles each time it fires in a round, up to
/// this many doublings.
pub const REBROADCAST_MAX_DOUBLINGS: u32 = 4;

/// Round timeouts, in ms. Each grows linearly with the round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub propose_ms: u64,
    pub prevote_ms: u64,
    pub precommit_ms: u64,
    /// Added per round to each of the above.
    pub delta_ms: u64,
    /// Pause after a decision before starting the next height (block pacing).
    pub commit_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            propose_ms: 1000,
            prevote_ms: 500,
            precommit_ms: 500,
            delta_ms: 250,
            commit_ms: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeoutKind {
    Propose,
    Prevote,
    Precommit,
    /// Start the height after the commit pause.
    NewHeight,
    /// Re-send our votes of the current round, so that lost messages cannot
    /// stall a round (the paper assumes reliable gossip; networks drop).
    Rebroadcast,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timeout {
    pub height: Height,
    pub round: Round,
    pub kind: TimeoutKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Propose,
    Prevote,
    Precommit,
}

#[derive(Clone, Debug)]
pub enum Input {
    Proposal(VerifiedProposal),
    Vote(VerifiedVote),
    Timeout(Timeout),
    /// Answer to [`Effect::RequestValue`]: the payload for our proposal.
    ProposeValue {
        height: Height,
        round: Round,
        attestations: Vec<Envelope>,
        /// Pending misbehaviour evidence; the driver keeps what the next
        /// block may carry (all rules, signatures included) up to the cap.
        evidence: Vec<Evidence>,
    },
    /// A finalized block and its certificate, fetched by sync. The
    /// certificate's signatures are checked before it gets here
    /// ([`certificate::check_signatures`], or [`Driver::check_commit`]); the
    /// driver checks the rest against its chain state.
    SyncedBlock {
        block: Block,
        commit: CheckedCertificate,
    },
    /// A message this validator signed before a restart, read from the WAL.
    /// Replay these before any network input.
    RestoreOwn(ConsensusMessage),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Durably record a message this validator signed (WAL entry and sign
    /// guard, synced). Later effects must wait until it is done.
    PersistOwn {
        position: SignPosition,
        msg: ConsensusMessage,
    },
    Broadcast(ConsensusMessage),
    ScheduleTimeout {
        timeout: Timeout,
        after_ms: u64,
    },
    /// We propose at (height, round): answer with [`Input::ProposeValue`].
    RequestValue {
        height: Height,
        round: Round,
    },
    /// A block is final. `state` is the chain state after it, to persist
    /// atomically with the block.
    Decided {
        block: Block,
        hash: Hash,
        commit: CommitCertificate,
        round: Round,
        state: Box<ChainState>,
    },
    /// More precommits arrived for the last decided block.
    CommitUpdated(CommitCertificate),
    /// The proposal or vote being handled was kept (not a duplicate, not
    /// dropped by [`Driver::admit`]): a host with a WAL may record it
    /// (unsynced) so that a restart replays it. Emitted only for messages
    /// handed to [`Driver::handle`], never for buffered ones re-fed later.
    Kept,
    /// The proposal or vote being handled is one the driver already holds
    /// (byte for byte the same signed content): a host may skip verifying
    /// further copies of it, but need not record it again.
    Known,
    Evidence(Equivocation),
    /// Messages from a height above ours arrived, or a decision whose block we
    /// lack: fetch finalized blocks starting at `from`.
    SyncNeeded {
        from: Height,
        seen: Height,
    },
}

/// What became of a proposal or vote handed to the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// New to the driver, and kept.
    Kept,
    /// Already held, byte for byte.
    Known,
    /// Not used (a window, a quota, a cap).
    Dropped,
}

#[derive(Clone, Debug)]
struct ProposalEntry {
    hash: Hash,
    pol_round: Option<Round>,
    valid: bool,
}

struct LastDecision {
    height: Height,
    round: Round,
    hash: Hash,
    precommits: VoteSet,
    keeper: VoteKeeper,
}

/// Errors from [`Driver::handle`] are about the input, never fatal.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DriverError {
    #[error("synced block: {0}")]
    SyncedBlock(String),
    #[error("restored message: {0}")]
    Restore(String),
}

pub struct Driver {
    genesis: Arc<Genesis>,
    timeouts: Timeouts,
    threshold_bps: u32,
    signer: Option<Signer>,
    me: Option<usize>,
    chain: ChainState,
    last_commit: Option<CommitCertificate>,
    // Current height.
    height: Height,
    round: Round,
    step: Step,
    started: bool,
    locked: Option<(Hash, Round)>,
    valid: Option<(Hash, Round)>,
    keeper: VoteKeeper,
    proposals: BTreeMap<Round, Vec<ProposalEntry>>,
    blocks: HashMap<Hash, Block>,
    /// What we signed at this height, by (round, step).
    own: BTreeMap<(Round, SignStep), ConsensusMessage>,
    /// Highest position ever signed (from storage across restarts).
    guard: Option<SignPosition>,
    prevote_timeout_set: BTreeSet<Round>,
    precommit_timeout_set: BTreeSet<Round>,
    polka_done: BTreeSet<Round>,
    value_requested: BTreeSet<Round>,
    future: Vec<Input>,
    /// Per-validator use of `future`, and the bytes of its proposals.
    future_use: HashMap<usize, admit::FutureUse>,
    future_proposal_bytes: usize,
    /// `start` not called yet: inputs are the WAL being replayed, kept
    /// whatever their round (the round restored from it is not known yet).
    replaying: bool,
    max_seen_height: Height,
    missing_block_reported: bool,
    last: Option<LastDecision>,
    proposer_cache: HashMap<Round, usize>,
    /// Adaptive timeout scale in percent (ADR 0012): raised by half after a height
    /// that needed more than one round although its proposer was heard (the
    /// votes were slow, not the proposer absent), decayed by 1/16 after each
    /// height decided in round 0. Pure: a function of the decisions seen.
    timeout_scale_pct: u32,
    /// A proposal arrived in a round that then failed: the round was slow.
    slow_round_seen: bool,
    /// Rebroadcast timers fired in the current round (for the backoff).
    rebroadcasts_in_round: u32,
    /// The time of the input being handled, and when this height started
    /// (both from the host's `now_ms`).
    now_ms: u64,
    height_started_ms: Option<u64>,
    /// Moving average (1/8 weight per height) of recent heights' duration,
    /// in ms: the first re-send waits at least twice this, so a network that
    /// is merely slow (100 validators on 2 cores) is not flooded with copies
    /// of votes that are still on their way.
    height_ms_avg: u64,
}

impl Driver {
    /// A driver at the height after `chain`. `last_commit` certifies
    /// `chain.height` (None at genesis). `guard` is the highest position this
    /// validator ever signed, from durable storage.
    pub fn new(
        genesis: Arc<Genesis>,
        chain: ChainState,
        last_commit: Option<CommitCertificate>,
        signer: Option<Signer>,
        guard: Option<SignPosition>,
        timeouts: Timeouts,
    ) -> Self {
        let me = signer.as_ref().and_then(|s| genesis.members.index_of(s.id()));
        let threshold_bps = genesis.params().fast_threshold_bps;
        let keeper = VoteKeeper::new(chain.weights.weights.clone(), threshold_bps);
        Driver {
            height: chain.next_height(),
            genesis,
            timeouts,
            threshold_bps,
            signer,
            me,
            chain,
            last_commit,
            round: 0,
            step: Step::Propose,
            started: false,
            locked: None,
            valid: None,
            keeper,
            proposals: BTreeMap::new(),
            blocks: HashMap::new(),
            own: BTreeMap::new(),
            guard,
            prevote_timeout_set: BTreeSet::new(),
            precommit_timeout_set: BTreeSet::new(),
            polka_done: BTreeSet::new(),
            value_requested: BTreeSet::new(),
            future: Vec::new(),
            future_use: HashMap::new(),
            future_proposal_bytes: 0,
            replaying: true,
            max_seen_height: 0,
            missing_block_reported: false,
            last: None,
            proposer_cache: HashMap::new(),
            timeout_scale_pct: TIMEOUT_SCALE_MIN_PCT,
            slow_round_seen: false,
            rebroadcasts_in_round: 0,
            now_ms: 0,
            height_started_ms: None,
            height_ms_avg: 0,
        }
    }

    pub fn height(&self) -> Height {
        self.height
    }
    pub fn round(&self) -> Round {
        self.round
    }
    pub fn step(&self) -> Step {
        self.step
    }
    pub fn chain(&self) -> &ChainState {
        &self.chain
    }
    pub fn genesis(&self) -> &Arc<Genesis> {
        &self.genesis
    }
    pub fn last_commit(&self) -> Option<&CommitCertificate> {
        self.last_commit.as_ref()
    }
    /// Highest height seen in any checked message (0 if none above ours).
    pub fn max_seen_height(&self) -> Height {
        self.max_seen_height
    }
    /// The votes of the current height.
    pub fn votes(&self) -> &VoteKeeper {
        &self.keeper
    }
    pub fn locked(&self) -> Option<(Hash, Round)> {
        self.locked
    }
    /// Validator index of the proposer of `round` at the current height.
    pub fn proposer(&mut self, round: Round) -> usize {
        if let Some(p) = self.proposer_cache.get(&round) {
            return *p;
        }
        let p = self.chain.proposer(round);
        self.proposer_cache.insert(round, p);
        p
    }

    /// Checks a vote from the network against this chain's membership.
    pub fn check_vote(&self, sv: &SignedVote) -> Result<VerifiedVote, messages::MessageError> {
        check_vote(self.genesis.chain_id(), &self.genesis.members, sv)
    }

    pub fn check_proposal(&self, sp: &bizra_proto::SignedProposal) -> Result<VerifiedProposal, messages::MessageError> {
        check_proposal(self.genesis.chain_id(), &self.genesis.members, sp)
    }

    /// The signature half of a synced block's certificate check; see
    /// [`Input::SyncedBlock`].
    pub fn check_commit(&self, commit: CommitCertificate) -> Result<CheckedCertificate, certificate::CertError> {
        certificate::check_signatures(self.genesis.chain_id(), &self.genesis.members, commit)
    }

    /// Starts consensus at the current height (round 0, or the highest round
    /// restored from the WAL). Call once, after any [`Input::RestoreOwn`].
    pub fn start(&mut self, _now_ms: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let round = self.own.keys().map(|(r, _)| *r).max().unwrap_or(0);
        self.started = true;
        self.replaying = false;
        self.start_round(round, &mut fx);
        self.process(&mut fx);
        fx
    }

    pub fn handle(&mut self, now_ms: u64, input: Input) -> Result<Vec<Effect>, DriverError> {
        let mut fx = Vec::new();
        self.now_ms = now_ms;
        if self.height_started_ms.is_none() {
            self.height_started_ms = Some(now_ms);
        }
        match input {
            Input::Proposal(_) | Input::Vote(_) => match self.deliver(input, &mut fx) {
                Delivery::Kept => fx.push(Effect::Kept),
                Delivery::Known => fx.push(Effect::Known),
                Delivery::Dropped => {}
            },
            Input::Timeout(t) => self.on_timeout(t, &mut fx),
            Input::ProposeValue {
                height,
                round,
                attestations,
                evidence,
            } => self.on_value(now_ms, height, round, attestations, evidence, &mut fx),
            Input::SyncedBlock { block, commit } => self.on_synced(block, commit, &mut fx)?,
            Input::RestoreOwn(msg) => self.restore_own(msg)?,
        }
        if self.started {
            self.process(&mut fx);
        }
        Ok(fx)
    }

    // ---- inputs ----

    /// A verified proposal or vote, from the network or re-fed from the
    /// future buffer: admitted ([`Driver::admit`]) and then used. Returns
    /// whether it was kept.
    fn deliver(&mut self, input: Input, fx: &mut Vec<Effect>) -> Delivery {
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
    fn on_proposal(&mut self, p: VerifiedProposal) -> Delivery {
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
    fn on_vote(&mut self, v: VerifiedVote, fx: &mut Vec<Effect>) -> Delivery {
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
    fn late_precommit(&mut self, v: VerifiedVote, fx: &mut Vec<Effect>) -> Delivery {
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
            let signed = last.precommits.signed_for(&Some(last.hash));
            let cert = CommitCertificate {
                height: last.height,
                round: last.round,
                block_hash: last.hash.to_vec(),
                precommits: signed,
            };
            self.last_commit = Some(cert.clone());
            fx.push(Effect::CommitUpdated(cert));
        }
        Delivery::Kept
    }

    fn on_timeout(&mut self, t: Timeout, fx: &mut Vec<Effect>) {
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
                // Lines 65-67.
                self.start_round(self.round + 1, fx);
            }
            _ => {}
        }
    }

    fn schedule_rebroadcast(&self, fx: &mut Vec<Effect>) {
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

    /// A timeout of round `r`: `base + delta * r`, times the adaptive scale.
    fn round_timeout(&self, base: u64, r: Round) -> u64 {
        base.saturating_add(self.timeouts.delta_ms.saturating_mul(r as u64))
            .saturating_mul(self.timeout_scale_pct as u64)
            / 100
    }

    /// The adaptive timeout scale, in percent of the configured timeouts.
    pub fn timeout_scale_pct(&self) -> u32 {
        self.timeout_scale_pct
    }

    /// Whether this validator re-sends polkas in the current round. Every
    /// validator holding a polka re-sending all its votes each round is
    /// O(n^2) messages per round: at 100 validators it stalled the chain
    /// under its own traffic. Instead a rotating quarter-share does it:
    /// validator i when (round + i) % ceil(n/4) == 0, about four per round,
    /// and every validator within ceil(n/4) consecutive rounds. With up to 4
    /// validators that is everyone, every round.
    fn resends_polkas(&self) -> bool {
        let Some(me) = self.me else { return false };
        let k = self.genesis.members.len().div_ceil(4).max(1) as u64;
        (self.round as u64 + me as u64).is_multiple_of(k)
    }

    /// Re-sends what a peer that lost messages needs from us (ADR 0005). At
    /// 100 validators every re-sent message costs the whole network a gossip
    /// round, so this is kept small: see the comments below.
    fn rebroadcast_own(&mut self, with_polka: bool, fx: &mut Vec<Effect>) {
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

    fn on_value(
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
    fn includable_evidence(&self, offered: Vec<Evidence>) -> Vec<Evidence> {
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

    fn on_synced(&mut self, block: Block, commit: CheckedCertificate, fx: &mut Vec<Effect>) -> Result<(), DriverError> {
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

    fn restore_own(&mut self, msg: ConsensusMessage) -> Result<(), DriverError> {
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

    // ---- the algorithm ----

    fn start_round(&mut self, r: Round, fx: &mut Vec<Effect>) {
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

    fn request_value(&mut self, r: Round, fx: &mut Vec<Effect>) {
        if self.value_requested.insert(r) {
            fx.push(Effect::RequestValue {
                height: self.height,
                round: r,
            });
        }
    }

    fn propose(&mut self, block: Block, pol_round: Option<Round>, fx: &mut Vec<Effect>) {
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
    fn may_sign(&self, pos: SignPosition) -> bool {
        self.guard.is_none_or(|g| pos > g) && !self.own.contains_key(&(pos.round, pos.step))
    }

    fn record_signed(&mut self, pos: SignPosition, msg: ConsensusMessage, fx: &mut Vec<Effect>) {
        self.guard = Some(pos);
        self.own.insert((pos.round, pos.step), msg.clone());
        fx.push(Effect::PersistOwn {
            position: pos,
            msg: msg.clone(),
        });
        fx.push(Effect::Broadcast(msg));
    }

    fn vote(&mut self, kind: VoteKind, value: Option<Hash>, fx: &mut Vec<Effect>) {
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

    /// Applies the rules of Algorithm 1 until none fires.
    fn process(&mut self, fx: &mut Vec<Effect>) {
        loop {
            let height = self.height;
            let changed = self.rule_decide(fx) || (height == self.height && (self.rule_skip(fx) || self.rule_step(fx)));
            if !changed {
                break;
            }
        }
    }

    /// Lines 49-54: a precommit quorum for a value we hold decides it.
    fn rule_decide(&mut self, fx: &mut Vec<Effect>) -> bool {
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
    fn rule_skip(&mut self, fx: &mut Vec<Effect>) -> bool {
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

    fn rule_step(&mut self, fx: &mut Vec<Effect>) -> bool {
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

    fn decide(&mut self, block: Block, hash: Hash, cert: CommitCertificate, round: Round, fx: &mut Vec<Effect>) {
        let decided_height = self.height;
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
        // Replay buffered messages for the new height (the rest is
        // buffered again, within fresh quotas).
        let future = std::mem::take(&mut self.future);
        self.future_use.clear();
        self.future_proposal_bytes = 0;
        for input in future {
            self.deliver(input, fx);
        }
    }

    /// Builds a VerifiedVote from a vote already inside a verified certificate.
    fn check_vote_trusted(&self, sv: &SignedVote, validator: usize) -> Result<VerifiedVote, ()> {
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

/// The adaptive timeout scale after a decided height: x1.5 (up to
/// [`TIMEOUT_SCALE_MAX_PCT`]) after a slow one, else 1/16 back towards
/// [`TIMEOUT_SCALE_MIN_PCT`].
fn next_timeout_scale(pct: u32, slow: bool) -> u32 {
    if slow {
        (pct.saturating_mul(3) / 2).min(TIMEOUT_SCALE_MAX_PCT)
    } else {
        (pct - pct / 16).max(TIMEOUT_SCALE_MIN_PCT)
    }
}

/// True for a vote message whose block hash is empty (a nil vote).
fn is_nil_vote(msg: &ConsensusMessage) -> bool {
    match &msg.msg {
        Some(Msg::Vote(sv)) => sv.vote.as_ref().is_none_or(|v| v.block_hash.is_empty()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{GenesisDoc, GenesisParams, GenesisValidator};

    fn drivers(n: usize) -> Vec<Driver> {
        let signers: Vec<Signer> = (0..n).map(|i| Signer::from_secret([i as u8 + 1; 32])).collect();
        let doc = GenesisDoc {
            chain_id: "bizra-test".into(),
            genesis_time_ms: 1,
            params: GenesisParams::default(),
            validators: signers
                .iter()
                .enumerate()
                .map(|(i, s)| GenesisValidator {
                    id: s.id().to_string(),
                    stake: 1000,
                    name: format!("v{i}"),
                })
                .collect(),
        };
        let (g, _) = Genesis::from_doc(&doc).expect("genesis");
        let g = Arc::new(g);
        signers
            .into_iter()
            .map(|s| {
                Driver::new(
                    g.clone(),
                    ChainState::genesis(&g),
                    None,
                    Some(s),
                    None,
                    Timeouts::default(),
                )
            })
            .collect()
    }

    /// The rotating polka re-sender (ADR 0005 amendment): at 100 validators
    /// exactly 4 per round, each validator at least once in 25 rounds; at 4
    /// or fewer, everyone in every round.
    #[test]
    fn polka_resenders_rotate_a_quarter_share() {
        let mut ds = drivers(100);
        let mut covered = [false; 100];
        for round in 0..25u32 {
            let mut count = 0;
            for (i, d) in ds.iter_mut().enumerate() {
                d.round = round;
                if d.resends_polkas() {
                    count += 1;
                    covered[i] = true;
                }
            }
            assert_eq!(count, 4, "round {round}");
        }
        assert!(
            covered.iter().all(|c| *c),
            "every validator re-sends within ceil(n/4) rounds"
        );
        for n in 1..=4 {
            for mut d in drivers(n) {
                for round in 0..5 {
                    d.round = round;
                    assert!(d.resends_polkas(), "n={n} round={round}");
                }
            }
        }
        // A non-validator (no key in the genesis) never re-sends.
        let mut observer = drivers(4).remove(0);
        observer.me = None;
        assert!(!observer.resends_polkas());
    }

    #[test]
    fn timeout_scale_rises_by_half_after_slow_heights_and_decays_back() {
        assert_eq!(next_timeout_scale(100, true), 150);
        assert_eq!(next_timeout_scale(150, true), 225);
        assert_eq!(next_timeout_scale(300, true), TIMEOUT_SCALE_MAX_PCT);
        assert_eq!(next_timeout_scale(TIMEOUT_SCALE_MAX_PCT, true), TIMEOUT_SCALE_MAX_PCT);
        let mut pct = TIMEOUT_SCALE_MAX_PCT;
        let mut heights = 0;
        while pct > TIMEOUT_SCALE_MIN_PCT {
            pct = next_timeout_scale(pct, false);
            heights += 1;
        }
        assert!((15..=30).contains(&heights), "{heights} fast heights to decay from 4x");
        assert_eq!(next_timeout_scale(100, false), 100);
        // The scale applies to every round timeout.
        let mut d = drivers(4).remove(0);
        assert_eq!(d.round_timeout(1000, 2), 1500);
        d.timeout_scale_pct = 200;
        assert_eq!(d.round_timeout(1000, 2), 3000);
    }

    fn rebroadcast_after(d: &Driver) -> u64 {
        let mut fx = Vec::new();
        d.schedule_rebroadcast(&mut fx);
        match fx.as_slice() {
            [Effect::ScheduleTimeout { after_ms, .. }] => *after_ms,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rebroadcasts_back_off_within_a_round_and_wait_for_twice_the_average_height() {
        let mut d = drivers(4).remove(0);
        assert_eq!(rebroadcast_after(&d), 1000);
        d.rebroadcasts_in_round = 1;
        assert_eq!(rebroadcast_after(&d), 2000);
        d.rebroadcasts_in_round = 50;
        assert_eq!(rebroadcast_after(&d), 1000 << REBROADCAST_MAX_DOUBLINGS);
        d.rebroadcasts_in_round = 0;
        d.height_ms_avg = 3000;
        assert_eq!(rebroadcast_after(&d), 6000);
    }

    #[test]
    fn a_timeout_the_round_already_passed_resends_nothing() {
        let mut d = drivers(4).remove(1);
        let _ = d.start(0);
        let t = |kind| Timeout {
            height: 1,
            round: 0,
            kind,
        };
        // Stuck at Propose: the timeout prevotes nil (and re-sends).
        let fx = d.handle(10, Input::Timeout(t(TimeoutKind::Propose))).unwrap();
        assert!(fx.iter().any(|e| matches!(e, Effect::Broadcast(_))));
        // Stuck at Prevote: re-sends our prevote and precommits nil.
        let fx = d.handle(20, Input::Timeout(t(TimeoutKind::Prevote))).unwrap();
        let sent = fx.iter().filter(|e| matches!(e, Effect::Broadcast(_))).count();
        assert!(sent >= 2, "{fx:?}");
        // Now at Precommit: a late Propose or Prevote timeout of this round
        // finds nothing stuck and re-sends nothing.
        for kind in [TimeoutKind::Propose, TimeoutKind::Prevote] {
            let fx = d.handle(30, Input::Timeout(t(kind))).unwrap();
            assert!(
                !fx.iter().any(|e| matches!(e, Effect::Broadcast(_))),
                "{kind:?}: {fx:?}"
            );
        }
    }

    /// The votes in `fx` that `d` broadcast, checked as a peer would.
    fn broadcast_votes(d: &Driver, fx: &[Effect]) -> Vec<VerifiedVote> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Broadcast(ConsensusMessage {
                    msg: Some(Msg::Vote(sv)),
                    ..
                }) => Some(d.check_vote(sv).expect("own vote verifies")),
                _ => None,
            })
            .collect()
    }

    /// bizra-sim seed 201735 (7 validators, 2 Byzantine), in isolation: a
    /// validator that moved to round 1 holding at most a third of the
    /// weight, after its round-0 nil precommit was lost, must re-send that
    /// precommit, or the peers left in round 0 never see the 2f+1 precommits
    /// that start their precommit timeout, nor f+1 of round 1 to skip on.
    #[test]
    fn a_validator_ahead_resends_its_last_rounds_nil_votes_to_peers_left_behind() {
        // Equal weights; v3 is down (silent), v0 alone gets ahead.
        let mut ds = drivers(4);
        let t = |round, kind| Timeout { height: 1, round, kind };
        for d in ds.iter_mut().take(3) {
            let _ = d.start(0);
        }
        // No proposal arrives: v0, v1, v2 prevote nil, and each sees the nil polka.
        let mut prevotes = Vec::new();
        for d in ds.iter_mut().take(3) {
            let fx = d.handle(1000, Input::Timeout(t(0, TimeoutKind::Propose))).unwrap();
            prevotes.extend(broadcast_votes(d, &fx));
        }
        let mut precommits = Vec::new();
        for d in ds.iter_mut().take(3) {
            for v in &prevotes {
                let fx = d.handle(1001, Input::Vote(v.clone())).unwrap();
                precommits.extend(
                    broadcast_votes(d, &fx)
                        .into_iter()
                        .filter(|v| v.kind == VoteKind::Precommit),
                );
            }
            assert_eq!(d.step(), Step::Precommit);
        }
        assert_eq!(precommits.len(), 3);
        // v0 gets all three nil precommits and moves to round 1; its own
        // precommit is lost on the way to v1 and v2 (a partition).
        for v in &precommits {
            let _ = ds[0].handle(1002, Input::Vote(v.clone())).unwrap();
        }
        for d in ds.iter_mut().take(3).skip(1) {
            for v in precommits.iter().filter(|v| v.validator != 0) {
                let fx = d.handle(1002, Input::Vote(v.clone())).unwrap();
                assert!(!fx.iter().any(
                    |e| matches!(e, Effect::ScheduleTimeout { timeout, .. } if timeout.kind == TimeoutKind::Precommit)
                ));
            }
        }
        let _ = ds[0]
            .handle(1500, Input::Timeout(t(0, TimeoutKind::Precommit)))
            .unwrap();
        assert_eq!(ds[0].round(), 1);
        let mut sent = ds[0].handle(2500, Input::Timeout(t(1, TimeoutKind::Propose))).unwrap();
        // The partition heals; v0's round-1 Rebroadcast timer fires.
        sent.extend(
            ds[0]
                .handle(3000, Input::Timeout(t(1, TimeoutKind::Rebroadcast)))
                .unwrap(),
        );
        let resent = broadcast_votes(&ds[0], &sent);
        assert!(
            resent
                .iter()
                .any(|v| v.round() == 0 && v.kind == VoteKind::Precommit && v.value.is_none()),
            "round-0 nil precommit not re-sent: {resent:?}"
        );
        // v1 gets them, reaches 2f+1 precommits in round 0 and follows v0.
        let mut fx = Vec::new();
        for v in resent {
            fx.extend(ds[1].handle(3001, Input::Vote(v)).unwrap());
        }
        let precommit_timeout = fx.iter().find_map(|e| match e {
            Effect::ScheduleTimeout { timeout, .. } if timeout.kind == TimeoutKind::Precommit => Some(*timeout),
            _ => None,
        });
        assert_eq!(precommit_timeout, Some(t(0, TimeoutKind::Precommit)));
        let _ = ds[1]
            .handle(3500, Input::Timeout(t(0, TimeoutKind::Precommit)))
            .unwrap();
        assert_eq!(ds[1].round(), 1);
    }
}
