//! A simulated validator: the real driver, its durable state, and (for
//! Byzantine validators) how it misbehaves.

use bizra_consensus::chain::ChainState;
use bizra_consensus::driver::{Driver, Effect, Input, Timeouts};
use bizra_consensus::evidence::EvidenceKey;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::signing::Signer;
use bizra_consensus::types::{Hash, SignPosition};
use bizra_proto::{consensus_message::Msg, Block, CommitCertificate, ConsensusMessage, Evidence};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    Honest,
    /// Sends nothing at all.
    Silent,
    /// Signs a conflicting vote for every vote and sends each to half the peers.
    DoubleVoter,
    /// As a proposer, sends different blocks to different halves; also double votes.
    Equivocator,
    /// Forgets its locks and sign guard (restarts without its WAL) every few rounds.
    Amnesia,
}

impl Behavior {
    pub fn random(rng: &mut ChaCha8Rng) -> Self {
        match rng.random_range(0..4) {
            0 => Behavior::Silent,
            1 => Behavior::DoubleVoter,
            2 => Behavior::Equivocator,
            _ => Behavior::Amnesia,
        }
    }
    pub fn is_honest(&self) -> bool {
        *self == Behavior::Honest
    }
}

#[derive(Clone, Debug)]
pub struct DecidedBlock {
    pub height: u64,
    pub hash: Hash,
    pub block: Block,
    pub commit: CommitCertificate,
}

/// What survives a crash: the WAL of own messages, the sign guard, the
/// finalized chain with its state, and the evidence pool.
#[derive(Clone, Debug)]
pub struct Durable {
    pub wal_own: Vec<ConsensusMessage>,
    /// Received proposals and votes (the node's WAL keeps them too, unsynced).
    pub wal_received: Vec<(u64, Input)>,
    pub guard: Option<SignPosition>,
    pub decided: Vec<DecidedBlock>,
    pub state: ChainState,
    pub last_commit: Option<CommitCertificate>,
    /// Pending misbehaviour evidence (honest nodes only), one per offence,
    /// in key order; offered to the driver with every own proposal and
    /// pruned of what the chain has committed or can no longer include.
    pub pool: BTreeMap<EvidenceKey, Evidence>,
}

pub struct SimNode {
    pub genesis: Arc<Genesis>,
    pub signer: Signer,
    pub behavior: Behavior,
    pub timeouts: Timeouts,
    pub driver: Option<Driver>,
    pub durable: Durable,
    /// Bumped at each crash so timers of a previous life are ignored.
    pub incarnation: u64,
    pub last_sync_request: u64,
}

impl SimNode {
    pub fn new(genesis: Arc<Genesis>, signer: Signer, behavior: Behavior, timeouts: Timeouts) -> Self {
        let state = ChainState::genesis(&genesis);
        SimNode {
            genesis,
            signer,
            behavior,
            timeouts,
            driver: None,
            durable: Durable {
                wal_own: Vec::new(),
                wal_received: Vec::new(),
                guard: None,
                decided: Vec::new(),
                state,
                last_commit: None,
                pool: BTreeMap::new(),
            },
            incarnation: 0,
            last_sync_request: 0,
        }
    }

    pub fn height(&self) -> u64 {
        self.durable.state.height
    }

    /// The signature half of a synced certificate's check, done by the host
    /// before the driver sees the block (as the node does).
    pub fn check_commit(
        &self,
        commit: bizra_proto::CommitCertificate,
    ) -> Result<bizra_consensus::certificate::CheckedCertificate, bizra_consensus::certificate::CertError> {
        bizra_consensus::certificate::check_signatures(self.genesis.chain_id(), &self.genesis.members, commit)
    }

    /// (Re)starts from durable state: replay the WAL, then start consensus.
    /// With `amnesia` the WAL and guard are ignored (Byzantine behaviour).
    pub fn boot(&mut self, now: u64, amnesia: bool) -> Vec<Effect> {
        self.incarnation += 1;
        let guard = if amnesia { None } else { self.durable.guard };
        let mut d = Driver::new(
            self.genesis.clone(),
            self.durable.state.clone(),
            self.durable.last_commit.clone(),
            Some(self.signer.clone()),
            guard,
            self.timeouts,
        );
        let mut fx = Vec::new();
        if !amnesia {
            for m in self.durable.wal_own.clone() {
                match d.handle(now, Input::RestoreOwn(m)) {
                    Ok(mut f) => fx.append(&mut f),
                    Err(e) => panic!("own WAL entry rejected on replay: {e}"),
                }
            }
            for (_, m) in self.durable.wal_received.clone() {
                if let Ok(mut f) = d.handle(now, m) {
                    fx.append(&mut f);
                }
            }
        }
        fx.extend(d.start(now));
        self.driver = Some(d);
        fx
    }

    pub fn crash(&mut self) {
        self.driver = None;
        self.incarnation += 1;
    }

    /// Applies the durable part of effects, as the node's storage would.
    pub fn persist(&mut self, fx: &[Effect]) {
        for e in fx {
            match e {
                Effect::PersistOwn { position, msg } => {
                    self.durable.wal_own.push(msg.clone());
                    if self.durable.guard.is_none_or(|g| g < *position) {
                        self.durable.guard = Some(*position);
                    }
                }
                Effect::Decided {
                    block,
                    hash,
                    commit,
                    state,
                    ..
                } => {
                    let height = state.height;
                    self.durable.decided.push(DecidedBlock {
                        height,
                        hash: *hash,
                        block: block.clone(),
                        commit: commit.clone(),
                    });
                    self.durable.state = (**state).clone();
                    self.durable.last_commit = Some(commit.clone());
                    self.durable.wal_own.retain(|m| msg_height(m) > height);
                    self.durable.wal_received.retain(|(h, _)| *h > height);
                }
                Effect::CommitUpdated(c) => self.durable.last_commit = Some(c.clone()),
                _ => {}
            }
        }
    }
}

/// Records a received message in the WAL model.
pub fn input_height(i: &Input) -> Option<u64> {
    match i {
        Input::Vote(v) => Some(v.height()),
        Input::Proposal(p) => Some(p.proposal().height),
        _ => None,
    }
}

pub fn msg_height(m: &ConsensusMessage) -> u64 {
    match &m.msg {
        Some(Msg::Vote(v)) => v.vote.as_ref().map(|v| v.height).unwrap_or(0),
        Some(Msg::Proposal(p)) => p.proposal.as_ref().map(|p| p.height).unwrap_or(0),
        None => 0,
    }
}
