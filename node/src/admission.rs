//! Admission of PoI attestations into the pool: every rule of
//! docs/PROTOCOL.md §10 (`poi::check`, the one signature rule included), then
//! duplicates against the finalized chain and the pool. One code path for
//! gRPC submissions, gossip batches and the fuzz targets.

use crate::pool::{AttestationPool, PoolError};
use crate::state::SubmitError;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::poi::{self, CheckedAttestation, ErrorKind};
use bizra_proto::{AttestationBatch, Envelope};
use bizra_storage::Store;
use prost::Message;
use std::collections::HashSet;

/// Largest number of envelopes in one gossip batch; a larger batch is
/// malformed.
pub const MAX_BATCH: usize = 1024;

/// The rules of docs/PROTOCOL.md §10, mapped to the submit error (and so the
/// gRPC code) of each.
pub fn check(genesis: &Genesis, envelope: &Envelope, now_ms: u64) -> Result<CheckedAttestation, SubmitError> {
    poi::check(envelope, genesis.chain_id(), &genesis.members, now_ms).map_err(|e| match e.kind() {
        ErrorKind::FailedPrecondition => SubmitError::Precondition(e.to_string()),
        ErrorKind::TooLarge => SubmitError::Exhausted(e.to_string()),
        ErrorKind::InvalidArgument => SubmitError::Invalid(e.to_string()),
    })
}

/// Checks an attestation and pools it; returns its id (hex). An id already
/// pending or finalized is a duplicate *before* its signature is checked:
/// anyone can re-package valid attestations into new gossip batches (new
/// bytes, so gossip does not drop them), and that must cost a hash, not an
/// Ed25519 check per envelope.
pub fn admit(
    genesis: &Genesis,
    store: &dyn Store,
    pool: &mut AttestationPool,
    envelope: &Envelope,
    now_ms: u64,
) -> Result<String, SubmitError> {
    let id = poi::attestation_id(&envelope.payload);
    let finalized = store
        .attestation_location(&id)
        .map_err(|e| SubmitError::Exhausted(e.to_string()))?;
    if pool.knows_id(&id) || finalized.is_some() {
        return Err(SubmitError::Duplicate(format!(
            "attestation {} is already pending or finalized",
            hex::encode(id)
        )));
    }
    let checked = check(genesis, envelope, now_ms)?;
    admit_checked(store, pool, checked, envelope)
}

/// The duplicate checks and the pool insert, for an attestation that passed
/// [`check`].
pub fn admit_checked(
    store: &dyn Store,
    pool: &mut AttestationPool,
    checked: CheckedAttestation,
    envelope: &Envelope,
) -> Result<String, SubmitError> {
    let id = hex::encode(checked.id);
    let finalized = store
        .attestation_location(&checked.id)
        .map_err(|e| SubmitError::Exhausted(e.to_string()))?;
    let nonce_used = store
        .nonce_location(&checked.att.attester, &checked.att.nonce)
        .map_err(|e| SubmitError::Exhausted(e.to_string()))?;
    if finalized.is_some() || nonce_used.is_some() || pool.is_known(&checked.id, checked.attester, &checked.att.nonce) {
        return Err(SubmitError::Duplicate(format!(
            "attestation {id} (or its nonce) is already finalized"
        )));
    }
    pool.insert(checked, envelope.clone()).map_err(|e| match e {
        PoolError::Full(_) => SubmitError::Exhausted(e.to_string()),
        _ => SubmitError::Duplicate(e.to_string()),
    })?;
    Ok(id)
}

/// Attestations of gossiped proposals that passed [`poi::check`], by (hash
/// of the whole envelope, signatures included, and block time): a proposal
/// re-sent, or re-proposed in a later round, carries the same block, and its
/// attestations are not verified again. Bounded; cleared when full.
#[derive(Debug, Default)]
pub struct VerifiedPayloads {
    ids: HashSet<([u8; 32], u64)>,
}

impl VerifiedPayloads {
    /// Most remembered (id, time) pairs: a few blocks' worth at the cap.
    pub const CAPACITY: usize = 65_536;

    fn contains(&self, id: &[u8; 32], time: u64) -> bool {
        self.ids.contains(&(*id, time))
    }

    fn insert(&mut self, id: [u8; 32], time: u64) {
        if self.ids.len() >= Self::CAPACITY {
            self.ids.clear();
        }
        self.ids.insert((id, time));
    }

    /// Number of remembered (envelope hash, block time) pairs.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Payload rules a proposal's attestations must meet (checked at the edge,
/// before the proposal reaches the driver): each valid as of the block's
/// time, none finalized before, no duplicate id or nonce in the block. An
/// attestation this node already pooled (same envelope), or verified in a
/// block with the same time (`verified`), passed [`check`] and is not
/// verified again.
pub fn check_payload(
    genesis: &Genesis,
    store: &dyn Store,
    pool: &AttestationPool,
    verified: &mut VerifiedPayloads,
    block: &bizra_proto::Block,
) -> Result<(), String> {
    let time = block.header.as_ref().map(|h| h.time_ms).unwrap_or(0);
    let mut ids = HashSet::new();
    let mut nonces = HashSet::new();
    for (i, env) in block.attestations.iter().enumerate() {
        let id = poi::attestation_id(&env.payload);
        let exact = *blake3::hash(&env.encode_to_vec()).as_bytes();
        let known = pool.get(&id).is_some_and(|p| p == env) || verified.contains(&exact, time);
        let (attester, attester_id, nonce) = if known {
            let att = bizra_proto::PoiAttestation::decode(env.payload.as_slice()).map_err(|e| e.to_string())?;
            let index = genesis.members.index_of(&att.attester).unwrap_or(usize::MAX);
            (index, att.attester, att.nonce)
        } else {
            let c = poi::check(env, genesis.chain_id(), &genesis.members, time)
                .map_err(|e| format!("attestation #{i}: {e}"))?;
            verified.insert(exact, time);
            (c.attester, c.att.attester, c.att.nonce)
        };
        if !ids.insert(id) || !nonces.insert((attester, nonce.clone())) {
            return Err(format!("attestation #{i}: duplicate id or nonce in the block"));
        }
        if pool.is_known(&id, attester, &nonce)
            || store.attestation_location(&id).ok().flatten().is_some()
            || store.nonce_location(&attester_id, &nonce).ok().flatten().is_some()
        {
            return Err(format!("attestation #{i}: already finalized"));
        }
    }
    Ok(())
}

/// What a node does with a gossiped [`AttestationBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchVerdict {
    /// At least one envelope was new and none broke a rule: forward it.
    Accept {
        /// Envelopes newly admitted into the pool.
        admitted: usize,
    },
    /// Nothing new (duplicates, or a full pool): do not forward, no blame.
    Ignore {
        /// The refusal of the last envelope skipped: a duplicate, or a
        /// `RESOURCE_EXHAUSTED` refusal (full pool, store error). An
        /// envelope above `poi::MAX_ATTESTATION_BYTES` rejects the batch.
        reason: String,
    },
    /// Malformed, or an envelope broke a rule: drop it and penalize the
    /// sender, which had to check every envelope before forwarding. The
    /// envelopes admitted before the bad one stay admitted (each is valid on
    /// its own).
    Reject {
        /// Envelopes admitted before the bad one (they stay pooled).
        admitted: usize,
        /// What is wrong: the decode error, the envelope count, or
        /// `envelope #i:` and the rule it broke.
        reason: String,
    },
}

/// Admits each envelope of a gossiped batch, in order, until the first one
/// that breaks a rule.
pub fn admit_batch(
    genesis: &Genesis,
    store: &dyn Store,
    pool: &mut AttestationPool,
    data: &[u8],
    now_ms: u64,
) -> BatchVerdict {
    let batch = match AttestationBatch::decode(data) {
        Ok(b) => b,
        Err(e) => {
            return BatchVerdict::Reject {
                admitted: 0,
                reason: format!("malformed attestation batch: {e}"),
            }
        }
    };
    if batch.envelopes.is_empty() || batch.envelopes.len() > MAX_BATCH {
        return BatchVerdict::Reject {
            admitted: 0,
            reason: format!(
                "attestation batch of {} envelopes (1..={MAX_BATCH})",
                batch.envelopes.len()
            ),
        };
    }
    let mut admitted = 0;
    let mut last_skip = String::new();
    for (i, env) in batch.envelopes.iter().enumerate() {
        // Rule 1 (size) breaks the batch whatever the envelope's id: a sender
        // had to check it before forwarding (ADR 0008). Over gRPC the same
        // rule is RESOURCE_EXHAUSTED, which the loop below would skip.
        let size = env.encoded_len();
        if size > poi::MAX_ATTESTATION_BYTES {
            let rule = poi::PoiError::TooLarge {
                size,
                max: poi::MAX_ATTESTATION_BYTES,
            };
            return BatchVerdict::Reject {
                admitted,
                reason: format!("envelope #{i}: {rule}"),
            };
        }
        match admit(genesis, store, pool, env, now_ms) {
            Ok(_) => admitted += 1,
            Err(SubmitError::Duplicate(m)) | Err(SubmitError::Exhausted(m)) => last_skip = m,
            Err(e) => {
                return BatchVerdict::Reject {
                    admitted,
                    reason: format!("envelope #{i}: {e}"),
                }
            }
        }
    }
    if admitted > 0 {
        BatchVerdict::Accept { admitted }
    } else {
        BatchVerdict::Ignore { reason: last_skip }
    }
}

/// Envelopes the node admitted and has yet to gossip, published as one
/// [`AttestationBatch`] when it is full (count or bytes) or `delay` after
/// its first envelope.
pub struct Outbox {
    envelopes: Vec<Envelope>,
    bytes: usize,
    since: Option<std::time::Instant>,
    max_envelopes: usize,
    max_bytes: usize,
    delay: std::time::Duration,
}

impl Outbox {
    /// An empty outbox that publishes once `max_envelopes` wait (clamped to
    /// 1..=[`MAX_BATCH`]), once one more would exceed `max_bytes` (each
    /// envelope counted at its encoded size plus 4 bytes), or `delay` after
    /// the first one. The engine uses 256, a quarter of
    /// `p2p.max_message_bytes` and 5 ms (ADR 0008).
    pub fn new(max_envelopes: usize, max_bytes: usize, delay: std::time::Duration) -> Self {
        Outbox {
            envelopes: Vec::new(),
            bytes: 0,
            since: None,
            max_envelopes: max_envelopes.clamp(1, MAX_BATCH),
            max_bytes,
            delay,
        }
    }

    /// Adds an envelope; returns a batch to publish now if that one would
    /// not fit (by count or bytes) with the ones waiting.
    pub fn push(&mut self, envelope: Envelope, now: std::time::Instant) -> Option<Vec<u8>> {
        let len = envelope.encoded_len() + 4;
        let full = !self.envelopes.is_empty()
            && (self.envelopes.len() >= self.max_envelopes || self.bytes + len > self.max_bytes);
        let out = if full { self.take() } else { None };
        self.since.get_or_insert(now);
        self.bytes += len;
        self.envelopes.push(envelope);
        out
    }

    /// When the waiting envelopes are due, if any wait.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.since.map(|t| t + self.delay)
    }

    /// The encoded batch of everything waiting (None if empty).
    pub fn take(&mut self) -> Option<Vec<u8>> {
        if self.envelopes.is_empty() {
            return None;
        }
        self.since = None;
        self.bytes = 0;
        let envelopes = std::mem::take(&mut self.envelopes);
        Some(AttestationBatch { envelopes }.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_world::{world, NOW_MS};
    use std::time::{Duration, Instant};

    fn batch(envelopes: Vec<Envelope>) -> Vec<u8> {
        AttestationBatch { envelopes }.encode_to_vec()
    }

    #[test]
    fn a_batch_is_accepted_ignored_or_rejected_by_its_envelopes() {
        let w = world();
        let (a, b) = (w.pending[0].clone(), w.pending[1].clone());
        let mut pool = w.pool();
        let verdict = admit_batch(&w.genesis, &w.store, &mut pool, &batch(vec![a.clone()]), NOW_MS);
        assert_eq!(verdict, BatchVerdict::Accept { admitted: 1 });
        assert_eq!(pool.len(), 1);
        // Only duplicates: not forwarded, nobody blamed.
        let verdict = admit_batch(&w.genesis, &w.store, &mut pool, &batch(vec![a.clone()]), NOW_MS);
        assert!(matches!(verdict, BatchVerdict::Ignore { .. }), "{verdict:?}");
        // A forged envelope after a new one: rejected, the good one kept.
        let mut forged = a.clone();
        forged.signatures[0].sig[0] ^= 1;
        let mut pool = w.pool();
        let verdict = admit_batch(&w.genesis, &w.store, &mut pool, &batch(vec![b.clone(), forged]), NOW_MS);
        assert!(
            matches!(&verdict, BatchVerdict::Reject { admitted: 1, reason } if reason.starts_with("envelope #1")),
            "{verdict:?}"
        );
        assert_eq!(pool.len(), 1);
        // Malformed and empty batches.
        for data in [vec![0xff, 0xff, 0xff], batch(vec![])] {
            let verdict = admit_batch(&w.genesis, &w.store, &mut w.pool(), &data, NOW_MS);
            assert!(
                matches!(verdict, BatchVerdict::Reject { admitted: 0, .. }),
                "{verdict:?}"
            );
        }
        // A duplicate is found before its signature is checked: a pooled id
        // with a forged signature is a duplicate, not a rule violation.
        let mut pool = w.pool();
        assert!(admit(&w.genesis, &w.store, &mut pool, &a, NOW_MS).is_ok());
        let mut forged = a.clone();
        forged.signatures[0].sig[0] ^= 1;
        let verdict = admit_batch(&w.genesis, &w.store, &mut pool, &batch(vec![forged]), NOW_MS);
        assert!(matches!(verdict, BatchVerdict::Ignore { .. }), "{verdict:?}");
        // An attestation already in a finalized block is a duplicate.
        let finalized = w
            .blocks
            .iter()
            .find_map(|(b, _, _)| b.attestations.first())
            .expect("the world chain carries attestations")
            .clone();
        let verdict = admit_batch(&w.genesis, &w.store, &mut w.pool(), &batch(vec![finalized]), NOW_MS);
        assert!(matches!(verdict, BatchVerdict::Ignore { .. }), "{verdict:?}");
        // An envelope above the size limit breaks rule 1: the batch is
        // rejected (a strike), the new one before it kept.
        let mut oversized = a.clone();
        oversized.signatures[0].sig = vec![0; poi::MAX_ATTESTATION_BYTES];
        let mut pool = w.pool();
        let verdict = admit_batch(
            &w.genesis,
            &w.store,
            &mut pool,
            &batch(vec![b.clone(), oversized]),
            NOW_MS,
        );
        assert!(
            matches!(&verdict, BatchVerdict::Reject { admitted: 1, reason } if reason.starts_with("envelope #1: attestation is")),
            "{verdict:?}"
        );
    }

    fn env(n: usize) -> Envelope {
        Envelope {
            payload_type: "t".into(),
            payload: vec![7; n],
            signatures: vec![],
        }
    }

    #[test]
    fn the_outbox_batches_by_count_bytes_and_time() {
        let t0 = Instant::now();
        let mut o = Outbox::new(3, 1000, Duration::from_millis(5));
        assert_eq!(o.deadline(), None);
        assert!(o.push(env(10), t0).is_none());
        assert_eq!(o.deadline(), Some(t0 + Duration::from_millis(5)));
        assert!(o.push(env(10), t0 + Duration::from_millis(1)).is_none());
        assert!(o.push(env(10), t0 + Duration::from_millis(2)).is_none());
        // The fourth does not fit: the first three go out as one batch.
        let b = o.push(env(10), t0 + Duration::from_millis(3)).expect("full by count");
        assert_eq!(AttestationBatch::decode(b.as_slice()).unwrap().envelopes.len(), 3);
        assert_eq!(o.deadline(), Some(t0 + Duration::from_millis(8)), "the clock restarts");
        // By bytes: 600 + 600 > 1000.
        let mut o = Outbox::new(100, 1000, Duration::from_millis(5));
        assert!(o.push(env(600), t0).is_none());
        assert!(o.push(env(600), t0).is_some());
        let rest = o.take().expect("one waiting");
        assert_eq!(AttestationBatch::decode(rest.as_slice()).unwrap().envelopes.len(), 1);
        assert_eq!(o.take(), None);
        assert_eq!(o.deadline(), None);
    }

    /// D3: a proposal's attestations are verified once per (envelope, block
    /// time); a re-sent block costs no signature check, and a copy with a
    /// forged signature (same payload, so same id) is still verified.
    #[test]
    fn a_proposals_attestations_are_verified_once_and_forgeries_still_fail() {
        let w = world();
        let pool = w.pool();
        let block = bizra_proto::Block {
            header: Some(bizra_proto::BlockHeader {
                time_ms: NOW_MS,
                ..Default::default()
            }),
            last_commit: None,
            attestations: vec![w.pending[0].clone()],
            evidence: vec![],
        };
        let mut verified = VerifiedPayloads::default();
        assert_eq!(
            check_payload(&w.genesis, &w.store, &pool, &mut verified, &block),
            Ok(())
        );
        assert_eq!(verified.len(), 1);
        assert_eq!(
            check_payload(&w.genesis, &w.store, &pool, &mut verified, &block),
            Ok(())
        );
        assert_eq!(verified.len(), 1, "not verified (nor remembered) twice");
        let mut forged = block.clone();
        forged.attestations[0].signatures[0].sig[0] ^= 1;
        assert!(check_payload(&w.genesis, &w.store, &pool, &mut verified, &forged).is_err());
    }

    /// H2: a nonce finalized long ago (out of every pool memory) is still
    /// refused, for a new payload too: the store indexes every finalized
    /// (attester, nonce).
    #[test]
    fn a_reused_nonce_is_refused_by_the_store_whatever_the_pool_remembers() {
        use crate::test_world::world_attestation;
        let w = world();
        // Block 2 finalized attester 0's nonce 2 (about validator 1).
        let reuse = world_attestation(&w.signers, 0, 2, 2);
        let fresh = world_attestation(&w.signers, 0, 2, 99);
        let mut forgetful = AttestationPool::with_seen_capacity(10, 0);
        let e = admit(&w.genesis, &w.store, &mut forgetful, &reuse, NOW_MS).unwrap_err();
        assert!(matches!(e, SubmitError::Duplicate(_)), "{e:?}");
        assert!(admit(&w.genesis, &w.store, &mut forgetful, &fresh, NOW_MS).is_ok());
        // In a proposal too.
        let block = bizra_proto::Block {
            header: Some(bizra_proto::BlockHeader {
                time_ms: NOW_MS,
                ..Default::default()
            }),
            last_commit: None,
            attestations: vec![reuse],
            evidence: vec![],
        };
        let e = check_payload(
            &w.genesis,
            &w.store,
            &AttestationPool::with_seen_capacity(10, 0),
            &mut VerifiedPayloads::default(),
            &block,
        )
        .unwrap_err();
        assert!(e.contains("already finalized"), "{e}");
    }
}
