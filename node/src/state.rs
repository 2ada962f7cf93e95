//! What the engine shares with the gRPC server, the metrics endpoint and the
//! CLI: the store, the genesis, this validator's key, a status snapshot, the
//! epoch weights and a stream of finalized heads.

use crate::metrics::Metrics;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::signing::Signer;
use bizra_consensus::types::Hash;
use bizra_consensus::validators::EpochWeights;
use bizra_proto::{BlockHeader, Envelope};
use bizra_storage::Store;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use tokio::sync::{broadcast, mpsc, oneshot};

/// A snapshot of the node's position, updated by the engine.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub finalized_height: u64,
    pub finalized_hash: Hash,
    pub consensus_height: u64,
    pub consensus_round: u32,
    /// True while a peer reports a height above ours. A lagging node never
    /// reports that it is caught up.
    pub catching_up: bool,
    pub best_peer_height: u64,
    pub peers: u32,
    pub epoch: u64,
    /// Set once the WAL is replayed and consensus runs (gRPC health SERVING).
    pub serving: bool,
}

/// A newly finalized head, as streamed by `SubscribeHeads`.
#[derive(Clone, Debug)]
pub struct HeadEvent {
    pub height: u64,
    pub hash: Hash,
    pub header: BlockHeader,
}

/// Why an attestation was refused. Each maps to one gRPC status code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    /// INVALID_ARGUMENT: malformed, bad signature, rules violated.
    #[error("{0}")]
    Invalid(String),
    /// FAILED_PRECONDITION: wrong chain, attester not a validator.
    #[error("{0}")]
    Precondition(String),
    /// ALREADY_EXISTS: duplicate id or nonce.
    #[error("{0}")]
    Duplicate(String),
    /// RESOURCE_EXHAUSTED: pool full or message too large.
    #[error("{0}")]
    Exhausted(String),
}

/// Most committed-evidence locations kept per validator (the newest).
pub const EVIDENCE_INDEX_PER_VALIDATOR: usize = 1024;

/// Where committed evidence is, by offending validator (issue 15): built
/// from the chain at start (in the background, with the history check) and
/// extended with each finalized block. In memory: evidence is rare, and a
/// validator flooding blocks with its own offences keeps only its newest
/// [`EVIDENCE_INDEX_PER_VALIDATOR`] listed here (by height they are all
/// served from the blocks).
#[derive(Debug, Default)]
pub struct EvidenceIndex {
    by_validator: BTreeMap<usize, std::collections::BTreeSet<(u64, u32)>>,
    /// False until the history behind the start-up snapshot is indexed.
    pub complete: bool,
}

impl EvidenceIndex {
    /// Records evidence #`index` of block `height` against `validator`.
    pub fn add(&mut self, validator: usize, height: u64, index: u32) {
        let set = self.by_validator.entry(validator).or_default();
        set.insert((height, index));
        while set.len() > EVIDENCE_INDEX_PER_VALIDATOR {
            set.pop_first();
        }
    }
    /// (height, index in block) of `validator`'s committed evidence, oldest first.
    pub fn of(&self, validator: usize) -> Vec<(u64, u32)> {
        self.by_validator
            .get(&validator)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Requests from the API to the engine.
pub enum EngineRequest {
    /// An attestation that passed every rule of docs/PROTOCOL.md §10
    /// (`admission::check`), to deduplicate, pool and gossip; replies with
    /// its id (hex).
    SubmitAttestation {
        envelope: Envelope,
        checked: Box<bizra_consensus::poi::CheckedAttestation>,
        reply: oneshot::Sender<Result<String, SubmitError>>,
    },
}

pub struct Shared {
    pub genesis: Arc<Genesis>,
    pub signer: Signer,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub status: RwLock<Status>,
    /// Weights per epoch seen by this node (rebuilt from the chain at start).
    pub epochs: RwLock<BTreeMap<u64, EpochWeights>>,
    pub heads: broadcast::Sender<HeadEvent>,
    /// The finalized head with its header, set by the engine after each
    /// block is stored: GetHead answers from here without reading sled.
    pub head: RwLock<Option<Arc<HeadEvent>>>,
    pub requests: mpsc::Sender<EngineRequest>,
    pub version: &'static str,
    /// Committed evidence by offending validator (GetEvidence).
    pub evidence: RwLock<EvidenceIndex>,
}

impl Shared {
    pub fn status(&self) -> Status {
        self.status.read().expect("status lock").clone()
    }
    /// The cached finalized head (None before the engine sets it).
    pub fn cached_head(&self) -> Option<Arc<HeadEvent>> {
        self.head.read().expect("head lock").clone()
    }
    /// Records a newly stored head and announces it to subscribers.
    pub fn publish_head(&self, event: HeadEvent) {
        let event = Arc::new(event);
        *self.head.write().expect("head lock") = Some(event.clone());
        let _ = self.heads.send((*event).clone());
    }
    pub fn current_weights(&self) -> Option<EpochWeights> {
        self.epochs.read().expect("epochs lock").values().next_back().cloned()
    }
    pub fn weights_for_epoch(&self, epoch: u64) -> Option<EpochWeights> {
        self.epochs.read().expect("epochs lock").get(&epoch).cloned()
    }
    /// Weights that certify blocks at `height`.
    pub fn weights_for_height(&self, height: u64) -> Option<EpochWeights> {
        self.weights_for_epoch(bizra_consensus::types::epoch_of(
            height,
            self.genesis.params().epoch_length,
        ))
    }
}
