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
//!
//! The driver's code, by concern:
//! - `admit`: which messages the driver can use, from their claims;
//! - `inputs`: proposals, votes, values to propose and synced blocks;
//! - `rules`: the rules of Algorithm 1, round starts and decisions;
//! - `sign_guard`: signing our own messages, never two conflicting ones;
//! - `resend`: re-sends of our votes and of polkas;
//! - `timeouts`: what a timeout does, and how long it is;
//! - `future`: buffered inputs of later heights.

use crate::certificate::{self, CheckedCertificate};
use crate::chain::ChainState;
use crate::genesis::Genesis;
use crate::messages::{self, check_proposal, check_vote, VerifiedProposal, VerifiedVote};
use crate::signing::Signer;
use crate::types::{Hash, Height, Round, SignPosition, SignStep};
use crate::vote_keeper::{VoteKeeper, VoteSet};
use bizra_proto::{Block, CommitCertificate, ConsensusMessage, Envelope, Equivocation, Evidence, SignedVote};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// How far ahead (in rounds) votes and proposals are kept.
pub const ROUND_WINDOW: Round = 64;
mod admit;
mod future;
mod inputs;
mod resend;
mod rules;
mod sign_guard;
mod timeouts;
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
/// Upper bound of the adaptive timeout scale: 4x the configured timeouts
/// (ADR 0012).
pub const TIMEOUT_SCALE_MAX_PCT: u32 = 400;
/// The rebroadcast interval doubles each time it fires in a round, up to
/// this many doublings.
pub const REBROADCAST_MAX_DOUBLINGS: u32 = 4;

/// Round timeouts, in ms. Each grows linearly with the round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Round 0's wait for the proposal before prevoting nil (lines 57-60);
    /// also the floor of the Rebroadcast interval. Scaled by the adaptive scale.
    pub propose_ms: u64,
    /// Round 0's wait, once prevotes for anything reach a quorum, for a
    /// polka before precommitting nil (lines 61-64). Scaled by the adaptive
    /// scale.
    pub prevote_ms: u64,
    /// Round 0's wait, once precommits for anything reach a quorum, for a
    /// decision before the next round (lines 65-67). Not scaled, so honest
    /// validators leave a round together (ADR 0013).
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

/// What a timeout is for. `Propose`, `Prevote` and `Precommit` also re-send
/// our votes when they find the round stuck at their step (ADR 0012).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeoutKind {
    /// Scheduled when a round starts: if still in the propose step, prevote
    /// nil (lines 57-60).
    Propose,
    /// Scheduled when prevotes for anything reach a quorum: if still in the
    /// prevote step, precommit nil (lines 61-64).
    Prevote,
    /// Scheduled when precommits for anything reach a quorum: start the next
    /// round (lines 65-67).
    Precommit,
    /// Start the height after the commit pause.
    NewHeight,
    /// Re-send our votes of the current round, so that lost messages cannot
    /// stall a round (the paper assumes reliable gossip; networks drop).
    Rebroadcast,
}

/// A timeout the driver asked for ([`Effect::ScheduleTimeout`]); the host
/// hands it back as [`Input::Timeout`]. One of another height, or (except
/// [`TimeoutKind::NewHeight`]) of another round, is ignored, so the host
/// never needs to cancel timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timeout {
    /// The height it was scheduled at.
    pub height: Height,
    /// The round it was scheduled in (0 for [`TimeoutKind::NewHeight`]).
    pub round: Round,
    /// What it is for.
    pub kind: TimeoutKind,
}

/// Where this validator is within the current round (Algorithm 1's `step`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Waiting for the round's proposal (or, as its proposer, for the value).
    Propose,
    /// Prevoted; waiting for a polka or the prevote timeout.
    Prevote,
    /// Precommitted; waiting for a decision or the precommit timeout.
    Precommit,
}

/// What the host hands to [`Driver::handle`].
#[derive(Clone, Debug)]
pub enum Input {
    /// A proposal that passed [`Driver::check_proposal`] (the one signature
    /// rule). The driver applies [`Driver::admit`] to it again.
    Proposal(VerifiedProposal),
    /// A vote that passed [`Driver::check_vote`]. The driver applies
    /// [`Driver::admit`] to it again.
    Vote(VerifiedVote),
    /// A timeout of [`Effect::ScheduleTimeout`] whose delay has passed.
    Timeout(Timeout),
    /// Answer to [`Effect::RequestValue`]: the payload for our proposal.
    ProposeValue {
        /// The height of the request answered; ignored unless it is still
        /// the current height.
        height: Height,
        /// The round of the request answered; ignored unless it is still the
        /// current round, in the propose step, with no proposal signed yet.
        round: Round,
        /// PoI envelopes for the block, already checked by the host
        /// ([`crate::poi::check`]); the driver does not check them. Each
        /// needs one 64-byte signature, and at most
        /// [`crate::chain::MAX_BLOCK_ATTESTATIONS`] fit, or our own block is
        /// invalid.
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
        /// The finalized block at the driver's current height (a lower
        /// height is ignored, a higher one is an error).
        block: Block,
        /// Its commit certificate, signatures checked; the driver checks
        /// that it certifies `block` with a quorum of the epoch's weight.
        commit: CheckedCertificate,
    },
    /// A message this validator signed before a restart, read from the WAL.
    /// Replay these before any network input.
    RestoreOwn(ConsensusMessage),
}

/// What the driver asks the host to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Durably record a message this validator signed (WAL entry and sign
    /// guard, synced). Later effects must wait until it is done.
    PersistOwn {
        /// The sign guard's new highest position: after a restart, pass the
        /// stored one to [`Driver::new`] so nothing is signed below it.
        position: SignPosition,
        /// The signed proposal or vote, for the WAL; after a restart feed it
        /// back as [`Input::RestoreOwn`].
        msg: ConsensusMessage,
    },
    /// Publish to the peers (proposals or votes topic, docs/PROTOCOL.md §6):
    /// our new messages, re-sends of them, and re-sent polka votes of other
    /// validators (ADR 0005). `attempt` is 0; a host gives a re-send a fresh
    /// `attempt` so gossip does not drop it as a duplicate.
    Broadcast(ConsensusMessage),
    /// Hand `timeout` back as [`Input::Timeout`] after `after_ms`.
    ScheduleTimeout {
        /// What to hand back.
        timeout: Timeout,
        /// Delay in ms, already scaled and grown with the round.
        after_ms: u64,
    },
    /// We propose at (height, round): answer with [`Input::ProposeValue`].
    RequestValue {
        /// The height to propose at.
        height: Height,
        /// The round to propose in.
        round: Round,
    },
    /// A block is final. `state` is the chain state after it, to persist
    /// atomically with the block.
    Decided {
        /// The finalized block.
        block: Block,
        /// Its hash.
        hash: Hash,
        /// The certificate: a quorum of precommits for it (more may follow
        /// as [`Effect::CommitUpdated`]).
        commit: CommitCertificate,
        /// The round it was decided in.
        round: Round,
        /// The chain state after the block.
        state: Box<ChainState>,
    },
    /// More precommits arrived for the last decided block: emitted once,
    /// before the next decision (a host that wants them sooner asks
    /// [`Driver::take_commit_update`]).
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
    /// Two verified, conflicting votes by one validator at one (height,
    /// round, kind), of the current or the last decided height: the host
    /// makes them canonical evidence ([`crate::evidence::from_equivocation`])
    /// for its pool and gossip (ADR 0014).
    Evidence(Equivocation),
    /// Messages from a height above ours arrived, or a decision whose block we
    /// lack: fetch finalized blocks starting at `from`.
    SyncNeeded {
        /// The first height we lack: the driver's current height.
        from: Height,
        /// The highest height seen in a message (our own height when we hold
        /// a precommit quorum for a block we do not have).
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
    /// A synced block is above our height, is not a valid next block, or its
    /// certificate does not certify it; the text says which.
    #[error("synced block: {0}")]
    SyncedBlock(String),
    /// A restored message is empty, does not verify, is not this validator's,
    /// or the driver has no validator key.
    #[error("restored message: {0}")]
    Restore(String),
}

/// One node's consensus state machine (module docs): the chain state, the
/// current height's round, votes and proposals, and this validator's signed
/// messages. Without a signer that is a genesis member it follows the chain
/// and signs nothing.
pub struct Driver {
    genesis: Arc<Genesis>,
    timeouts: Timeouts,
    threshold_bps: u32,
    signer: Option<Signer>,
    me: Option<usize>,
    chain: ChainState,
    last_commit: Option<CommitCertificate>,
    /// Late precommits were added to `last` since `last_commit` was built.
    last_commit_stale: bool,
    /// Late precommits were added since the host last got the certificate
    /// ([`Driver::take_commit_update`], [`Effect::CommitUpdated`]).
    commit_update_pending: bool,
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
    future_use: HashMap<usize, future::FutureUse>,
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
            last_commit_stale: false,
            commit_update_pending: false,
            proposer_cache: HashMap::new(),
            timeout_scale_pct: TIMEOUT_SCALE_MIN_PCT,
            slow_round_seen: false,
            rebroadcasts_in_round: 0,
            now_ms: 0,
            height_started_ms: None,
            height_ms_avg: 0,
        }
    }

    /// The height being decided: the finalized height + 1.
    pub fn height(&self) -> Height {
        self.height
    }
    /// The current round at [`Driver::height`].
    pub fn round(&self) -> Round {
        self.round
    }
    /// The step within the current round.
    pub fn step(&self) -> Step {
        self.step
    }
    /// The chain state after the last finalized block.
    pub fn chain(&self) -> &ChainState {
        &self.chain
    }
    /// The genesis the driver runs.
    pub fn genesis(&self) -> &Arc<Genesis> {
        &self.genesis
    }
    /// The certificate of the last finalized block, grown by late precommits
    /// since the decision; `None` at genesis.
    pub fn last_commit(&mut self) -> Option<&CommitCertificate> {
        self.refresh_last_commit();
        self.last_commit.as_ref()
    }

    /// The last block's certificate if late precommits grew it since the
    /// last call (or since the decision): a host writes it then, once, rather
    /// than once per late precommit. The driver also hands it out as an
    /// [`Effect::CommitUpdated`] before its next decision.
    pub fn take_commit_update(&mut self) -> Option<CommitCertificate> {
        if !std::mem::take(&mut self.commit_update_pending) {
            return None;
        }
        self.refresh_last_commit();
        self.last_commit.clone()
    }

    /// Rebuilds `last_commit` from the late precommits, if they grew.
    fn refresh_last_commit(&mut self) {
        if !std::mem::take(&mut self.last_commit_stale) {
            return;
        }
        if let Some(last) = &self.last {
            self.last_commit = Some(CommitCertificate {
                height: last.height,
                round: last.round,
                block_hash: last.hash.to_vec(),
                precommits: last.precommits.signed_for(&Some(last.hash)),
            });
        }
    }
    /// Highest height seen in any checked message (0 if none above ours).
    pub fn max_seen_height(&self) -> Height {
        self.max_seen_height
    }
    /// The votes of the current height.
    pub fn votes(&self) -> &VoteKeeper {
        &self.keeper
    }
    /// The value and round this validator is locked on at the current
    /// height (Algorithm 1's `lockedValue`, `lockedRound`); `None` if not locked.
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

    /// Checks a proposal from the network against this chain's id and
    /// membership ([`messages::check_proposal`]), signature included.
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

    /// Takes one input at the host's time `now_ms` (Unix ms) and returns the
    /// effects to execute in order. Before [`Driver::start`] (and during the
    /// commit pause) inputs are taken but no rule runs. An error rejects that
    /// synced block or restored message and leaves the consensus state as it
    /// was; it is never fatal.
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
}

#[cfg(test)]
mod tests;
