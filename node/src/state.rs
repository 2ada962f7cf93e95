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

/// Epochs whose weights a node keeps in memory: epoch 0 and the newest
/// ones (the current epoch votes; the one before certifies the last blocks).
/// Older epochs are read from the store when asked for (`GetValidators`,
/// `GetCommit` of an old height). At 100 validators an epoch's weights are
/// ~5 KB; kept for every epoch they grew by ~50 B a height for ever.
pub const EPOCHS_IN_MEMORY: usize = 16;

/// Drops the oldest epochs but epoch 0 from `epochs` until at most
/// [`EPOCHS_IN_MEMORY`] remain.
pub fn keep_newest_epochs(epochs: &mut BTreeMap<u64, EpochWeights>) {
    while epochs.len() > EPOCHS_IN_MEMORY {
        let Some(oldest) = epochs.keys().copied().find(|&e| e != 0) else {
            return;
        };
        epochs.remove(&oldest);
    }
}

/// The bytes a node stores for an epoch's weights (JSON, as in the chain
/// state snapshot).
pub fn encode_epoch(w: &EpochWeights) -> Vec<u8> {
    serde_json::to_vec(w).expect("epoch weights serialize")
}

/// A snapshot of the node's position, updated by the engine.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// Last finalized height (0: genesis only).
    pub finalized_height: u64,
    /// Hash of the block at `finalized_height`; the genesis hash at height 0
    /// (all zeros in `Status::default()`, which `GetStatus` also reports as
    /// the genesis hash).
    pub finalized_hash: Hash,
    /// The height the driver is deciding (normally `finalized_height + 1`).
    pub consensus_height: u64,
    /// The driver's round at that height.
    pub consensus_round: u32,
    /// True while a peer reports a height above ours. A lagging node never
    /// reports that it is caught up.
    pub catching_up: bool,
    /// The highest finalized height any peer reported and has not lost by
    /// failing to serve it (a disconnect does not lower it).
    pub best_peer_height: u64,
    /// Connected peers.
    pub peers: u32,
    /// The epoch whose weights vote on the next block (that of
    /// `finalized_height + 1`).
    pub epoch: u64,
    /// Set once the WAL is replayed and consensus runs (gRPC health SERVING).
    pub serving: bool,
}

/// A newly finalized head, as streamed by `SubscribeHeads`.
#[derive(Clone, Debug)]
pub struct HeadEvent {
    /// Finalized height.
    pub height: u64,
    /// The block's hash.
    pub hash: Hash,
    /// The block's header.
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
        /// The DSSE envelope as submitted.
        envelope: Envelope,
        /// What [`crate::admission::check`] made of it.
        checked: Box<bizra_consensus::poi::CheckedAttestation>,
        /// Where the engine sends the id (hex) or the refusal.
        reply: oneshot::Sender<Result<String, SubmitError>>,
    },
}

/// What the engine shares with the gRPC service and the sync server: set up
/// by [`crate::engine::run_engine`] and written only by the engine.
pub struct Shared {
    /// The chain's genesis.
    pub genesis: Arc<Genesis>,
    /// This validator's key; signs `GetHeadReport` envelopes.
    pub signer: Signer,
    /// The node's store: finalized blocks, commits and their indexes.
    pub store: Arc<dyn Store>,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// The engine's status snapshot ([`Shared::status`] copies it).
    pub status: RwLock<Status>,
    /// Weights of epoch 0 and of the newest epochs this node knows, at most
    /// [`EPOCHS_IN_MEMORY`] in all ([`Shared::remember_epoch`]); every
    /// epoch's are also in the store, where [`Shared::weights_for_epoch`]
    /// finds the older ones.
    pub epochs: RwLock<BTreeMap<u64, EpochWeights>>,
    /// Each stored head, for `SubscribeHeads` ([`Shared::publish_head`]
    /// sends); a lagging subscriber skips to the newest.
    pub heads: broadcast::Sender<HeadEvent>,
    /// The finalized head with its header, set by the engine after each
    /// block is stored: GetHead answers from here without reading sled.
    pub head: RwLock<Option<Arc<HeadEvent>>>,
    /// Requests to the engine (queue of 1024 in a running node).
    pub requests: mpsc::Sender<EngineRequest>,
    /// The node's version (the crate version), reported by `GetStatus`.
    pub version: &'static str,
    /// Committed evidence by offending validator (GetEvidence).
    pub evidence: RwLock<EvidenceIndex>,
}

impl Shared {
    /// A copy of the current status.
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
    /// The weights of the newest epoch this node knows, those that vote on
    /// the next block (`GetValidators` without an epoch).
    pub fn current_weights(&self) -> Option<EpochWeights> {
        self.epochs.read().expect("epochs lock").values().next_back().cloned()
    }
    /// The weights of `epoch`, if this node knows them: at start epoch 0
    /// and the snapshot's two, every past epoch once the history is
    /// re-checked (from the store), and each new one as it begins. An entry
    /// the store cannot read counts as unknown, with a warning.
    pub fn weights_for_epoch(&self, epoch: u64) -> Option<EpochWeights> {
        if let Some(w) = self.epochs.read().expect("epochs lock").get(&epoch) {
            return Some(w.clone());
        }
        match self.store.epoch_weights(epoch) {
            Ok(Some(bytes)) => match serde_json::from_slice::<EpochWeights>(&bytes) {
                Ok(w) if w.epoch == epoch => Some(w),
                Ok(w) => {
                    tracing::warn!(
                        epoch,
                        found = w.epoch,
                        "stored epoch weights name another epoch; ignored"
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!(epoch, error = %e, "stored epoch weights do not parse; ignored");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(epoch, error = %e, "reading stored epoch weights");
                None
            }
        }
    }
    /// Records the weights of `w.epoch`: in the store (unless `stored`
    /// says it has them), and in memory while the epoch is among the
    /// newest ([`keep_newest_epochs`]). True when memory did not hold the
    /// epoch before. A failed write is logged: the weights are derived from
    /// the chain, and the next start's history check writes them again.
    pub fn remember_epoch(&self, w: &EpochWeights, stored: bool) -> bool {
        let fresh = {
            let mut epochs = self.epochs.write().expect("epochs lock");
            let fresh = !epochs.contains_key(&w.epoch);
            if fresh {
                epochs.insert(w.epoch, w.clone());
                keep_newest_epochs(&mut epochs);
            }
            fresh
        };
        if fresh && !stored {
            if let Err(e) = self.store.put_epoch_weights(w.epoch, &encode_epoch(w)) {
                tracing::warn!(epoch = w.epoch, error = %e, "storing epoch weights");
            }
        }
        fresh
    }
    /// Weights that certify blocks at `height`.
    pub fn weights_for_height(&self, height: u64) -> Option<EpochWeights> {
        self.weights_for_epoch(bizra_consensus::types::epoch_of(
            height,
            self.genesis.params().epoch_length,
        ))
    }
}
