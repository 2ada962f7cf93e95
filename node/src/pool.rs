//! The attestation pool: checked PoI attestations waiting for a block.
//!
//! A plain, bounded data structure (no async, no I/O); the engine owns it.
//!
//! * At most `capacity` pending attestations. When full, a new one from an
//!   attester holding fewer than the attester with the most pending ones
//!   evicts that attester's newest; otherwise it is refused
//!   ([`PoolError::Full`], `RESOURCE_EXHAUSTED`). So one attester flooding
//!   the pool (issue 14, D7) only ever displaces itself: every attester can
//!   get up to an equal share.
//! * Deduplicated by id (BLAKE3 of the payload) and by (attester, nonce): an
//!   attester that reuses a nonce is refused even if the payload differs.
//! * [`AttestationPool::take_for_block`] hands out attestations round-robin
//!   across attesters, each attester's oldest first, without removing; [`AttestationPool::remove_finalized`] removes what a
//!   finalized block carried and remembers its ids and (attester, nonce)
//!   pairs in a bounded "seen" memory (oldest forgotten first), so a
//!   resubmission after finalization is refused as a duplicate.
//!
//! The seen memory is bounded, so it is a fast path only: the node also checks
//! its store's attestation index, which is the durable record of what was
//! finalized.

use bizra_consensus::poi::CheckedAttestation;
use bizra_consensus::types::Hash;
use bizra_consensus::validators::Membership;
use bizra_proto::{Envelope, PoiAttestation};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// Default number of pending attestations.
pub const DEFAULT_CAPACITY: usize = 50_000;
/// Default number of finalized attestations remembered (about 130 bytes each).
pub const DEFAULT_SEEN_CAPACITY: usize = 200_000;

/// Why the pool refused an attestation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    /// Same payload already pending or finalized.
    #[error("duplicate attestation: id {} is already pending or finalized", hex::encode(.0))]
    DuplicateId(Hash),
    /// The attester already used this nonce (pending or finalized).
    #[error("duplicate nonce: attester {attester} already used nonce {nonce}")]
    DuplicateNonce {
        /// The attester's validator id.
        attester: String,
        /// The nonce, in hex.
        nonce: String,
    },
    /// The pool is full and the attester may evict nobody (see the module
    /// docs); carries the number pending.
    #[error("attestation pool is full ({0} pending)")]
    Full(usize),
}

/// A compact key for (attester, nonce): BLAKE3(attester index as u64 LE || nonce).
/// Fixed size keeps the memory bounded whatever the nonce length.
fn nonce_key(attester: usize, nonce: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&(attester as u64).to_le_bytes());
    h.update(nonce);
    *h.finalize().as_bytes()
}

/// What a finalized attestation is remembered by: its id and, when known, its
/// (attester, nonce). Build it from an id alone (`Hash: Into<FinalizedKey>`),
/// from a [`CheckedAttestation`], or from a finalized block's envelope with
/// [`FinalizedKey::from_envelope`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalizedKey {
    /// The attestation id (BLAKE3 of the payload).
    pub id: Hash,
    nonce: Option<Hash>,
}

impl FinalizedKey {
    /// The key of attestation `id` by the attester at index `attester` of
    /// the genesis validator set, with `nonce`.
    pub fn new(id: Hash, attester: usize, nonce: &[u8]) -> Self {
        FinalizedKey {
            id,
            nonce: Some(nonce_key(attester, nonce)),
        }
    }

    /// From an envelope of a finalized (so already checked) block: decodes the
    /// payload to learn the attester and nonce. Falls back to the id alone if
    /// the payload does not decode or the attester is unknown.
    pub fn from_envelope(env: &Envelope, members: &Membership) -> Self {
        let id = bizra_consensus::poi::attestation_id(&env.payload);
        match PoiAttestation::decode(env.payload.as_slice()) {
            Ok(att) => match members.index_of(&att.attester) {
                Some(i) => FinalizedKey::new(id, i, &att.nonce),
                None => id.into(),
            },
            Err(_) => id.into(),
        }
    }
}

impl From<Hash> for FinalizedKey {
    fn from(id: Hash) -> Self {
        FinalizedKey { id, nonce: None }
    }
}

impl From<&CheckedAttestation> for FinalizedKey {
    fn from(c: &CheckedAttestation) -> Self {
        FinalizedKey::new(c.id, c.attester, &c.att.nonce)
    }
}

struct Entry {
    envelope: Envelope,
    seq: u64,
    nonce: Hash,
    attester: usize,
}

/// Bounded FIFO memory of finalized ids and (attester, nonce) keys.
struct Seen {
    capacity: usize,
    ids: HashSet<Hash>,
    nonces: HashSet<Hash>,
    order: VecDeque<(Option<Hash>, Option<Hash>)>,
}

impl Seen {
    fn remember(&mut self, id: Hash, nonce: Option<Hash>) {
        let id = self.ids.insert(id).then_some(id);
        let nonce = nonce.filter(|n| self.nonces.insert(*n));
        if id.is_none() && nonce.is_none() {
            return;
        }
        self.order.push_back((id, nonce));
        while self.order.len() > self.capacity {
            let Some((id, nonce)) = self.order.pop_front() else {
                break;
            };
            if let Some(id) = id {
                self.ids.remove(&id);
            }
            if let Some(n) = nonce {
                self.nonces.remove(&n);
            }
        }
    }
}

/// Pending attestations, bounded and deduplicated.
pub struct AttestationPool {
    capacity: usize,
    next_seq: u64,
    /// Insertion order: seq -> id.
    order: BTreeMap<u64, Hash>,
    entries: HashMap<Hash, Entry>,
    /// (attester, nonce) key -> id of the pending attestation using it.
    nonces: HashMap<Hash, Hash>,
    /// Pending attestations per attester, by seq.
    by_attester: HashMap<usize, BTreeSet<u64>>,
    seen: Seen,
}

impl AttestationPool {
    /// A pool of `capacity` pending attestations that remembers
    /// [`DEFAULT_SEEN_CAPACITY`] finalized ones (at least `capacity`).
    pub fn new(capacity: usize) -> Self {
        Self::with_seen_capacity(capacity, DEFAULT_SEEN_CAPACITY.max(capacity))
    }

    /// A pool of `capacity` pending attestations that remembers
    /// `seen_capacity` finalized ids and (attester, nonce) pairs.
    pub fn with_seen_capacity(capacity: usize, seen_capacity: usize) -> Self {
        AttestationPool {
            capacity,
            next_seq: 0,
            order: BTreeMap::new(),
            entries: HashMap::new(),
            nonces: HashMap::new(),
            by_attester: HashMap::new(),
            seen: Seen {
                capacity: seen_capacity,
                ids: HashSet::new(),
                nonces: HashSet::new(),
                order: VecDeque::new(),
            },
        }
    }

    /// Adds a checked attestation and its envelope (the one `checked` came from).
    pub fn insert(&mut self, checked: CheckedAttestation, envelope: Envelope) -> Result<(), PoolError> {
        debug_assert_eq!(checked.id, bizra_consensus::poi::attestation_id(&envelope.payload));
        let id = checked.id;
        if self.entries.contains_key(&id) || self.seen.ids.contains(&id) {
            return Err(PoolError::DuplicateId(id));
        }
        let nonce = nonce_key(checked.attester, &checked.att.nonce);
        if self.nonces.contains_key(&nonce) || self.seen.nonces.contains(&nonce) {
            return Err(PoolError::DuplicateNonce {
                attester: checked.att.attester.clone(),
                nonce: hex::encode(&checked.att.nonce),
            });
        }
        if self.entries.len() >= self.capacity && !self.evict_for(checked.attester) {
            return Err(PoolError::Full(self.entries.len()));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, id);
        self.nonces.insert(nonce, id);
        self.by_attester.entry(checked.attester).or_default().insert(seq);
        self.entries.insert(
            id,
            Entry {
                envelope,
                seq,
                nonce,
                attester: checked.attester,
            },
        );
        Ok(())
    }

    /// Makes room for one attestation by `attester` in a full pool: evicts
    /// the newest attestation of the attester holding the most, if that is
    /// more than `attester` would hold after the insert.
    fn evict_for(&mut self, attester: usize) -> bool {
        let mine = self.by_attester.get(&attester).map_or(0, |s| s.len());
        let Some((_, seqs)) = self
            .by_attester
            .iter()
            .max_by_key(|(a, s)| (s.len(), std::cmp::Reverse(**a)))
        else {
            return false;
        };
        if seqs.len() <= mine + 1 {
            return false;
        }
        let newest = *seqs.last().expect("non-empty");
        let id = self.order[&newest];
        self.take(&id);
        true
    }

    /// Up to `max` pending envelopes, round-robin across attesters (each
    /// attester's oldest first, attesters in the order of their oldest
    /// pending one), so a flooding attester cannot crowd others out of
    /// blocks. Does not remove them.
    pub fn take_for_block(&self, max: usize) -> Vec<Envelope> {
        let mut queues: Vec<std::collections::btree_set::Iter<'_, u64>> = {
            let mut firsts: Vec<(u64, &BTreeSet<u64>)> = self
                .by_attester
                .values()
                .filter_map(|s| s.first().map(|f| (*f, s)))
                .collect();
            firsts.sort_unstable_by_key(|(f, _)| *f);
            firsts.into_iter().map(|(_, s)| s.iter()).collect()
        };
        let mut out = Vec::with_capacity(max.min(self.entries.len()));
        while out.len() < max && !queues.is_empty() {
            queues.retain_mut(|q| match q.next() {
                Some(seq) if out.len() < max => {
                    out.push(self.entries[&self.order[seq]].envelope.clone());
                    true
                }
                Some(_) => true,
                None => false,
            });
        }
        out
    }

    /// Removes what a finalized block carried and remembers it as seen. Takes
    /// ids (`Hash`) or [`FinalizedKey`]s; with a key that knows the (attester,
    /// nonce), a pending attestation that reuses that nonce under another id
    /// is dropped too, and the nonce is remembered even if the attestation was
    /// never in this pool. With an id alone, the nonce is known only if the
    /// attestation was pending here.
    pub fn remove_finalized<K: Into<FinalizedKey>>(&mut self, finalized: impl IntoIterator<Item = K>) {
        for key in finalized {
            let FinalizedKey { id, nonce } = key.into();
            let pending_nonce = self.take(&id).map(|e| e.nonce);
            let nonce = nonce.or(pending_nonce);
            if let Some(n) = nonce {
                if let Some(other) = self.nonces.get(&n).copied() {
                    self.remove(&other);
                }
            }
            self.seen.remember(id, nonce);
        }
    }

    /// Drops a pending attestation (e.g. one that no longer passes the rules).
    pub fn remove(&mut self, id: &Hash) -> Option<Envelope> {
        self.take(id).map(|e| e.envelope)
    }

    fn take(&mut self, id: &Hash) -> Option<Entry> {
        let e = self.entries.remove(id)?;
        self.order.remove(&e.seq);
        self.nonces.remove(&e.nonce);
        if let Some(seqs) = self.by_attester.get_mut(&e.attester) {
            seqs.remove(&e.seq);
            if seqs.is_empty() {
                self.by_attester.remove(&e.attester);
            }
        }
        Some(e)
    }

    /// Whether `id` is pending.
    pub fn contains(&self, id: &Hash) -> bool {
        self.entries.contains_key(id)
    }

    /// Whether an attestation with this id is pending here or was finalized
    /// (as far as the seen memory reaches): cheap, before any signature check.
    pub fn knows_id(&self, id: &Hash) -> bool {
        self.entries.contains_key(id) || self.seen.ids.contains(id)
    }

    /// The pending envelope with this id.
    pub fn get(&self, id: &Hash) -> Option<&Envelope> {
        self.entries.get(id).map(|e| &e.envelope)
    }

    /// Whether this id, or this attester's nonce, was finalized (as far as the
    /// bounded seen memory reaches). For block validation: a proposal that
    /// carries a finalized attestation must be refused. Pending attestations
    /// are not "known" here (proposals are meant to carry them).
    pub fn is_known(&self, id: &Hash, attester: usize, nonce: &[u8]) -> bool {
        self.seen.ids.contains(id) || self.seen.nonces.contains(&nonce_key(attester, nonce))
    }

    /// Number of pending attestations.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Most pending attestations (the engine's pool holds
    /// [`DEFAULT_CAPACITY`]).
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl std::fmt::Debug for AttestationPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestationPool")
            .field("pending", &self.entries.len())
            .field("capacity", &self.capacity)
            .field("seen", &self.seen.order.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bizra_consensus::poi::{self, Draft};
    use bizra_consensus::signing::Signer;
    use bizra_consensus::validators::Member;

    const CHAIN: &str = "pool-test";
    const NOW: u64 = 1_700_000_000_000;

    fn signer(i: u8) -> Signer {
        Signer::from_secret([i + 1; 32])
    }

    fn members() -> Membership {
        Membership::new(
            (0..3)
                .map(|i| {
                    let s = signer(i);
                    Member {
                        id: s.id().to_string(),
                        name: format!("v{i}"),
                        stake: 1,
                        key: s.public_key(),
                    }
                })
                .collect(),
        )
    }

    /// A checked attestation by validator `who` with `nonce`; `subject` varies the payload.
    fn att(who: u8, nonce: u8, subject: &str) -> (CheckedAttestation, Envelope) {
        let env = poi::build(
            &signer(who),
            Draft {
                chain_id: CHAIN.into(),
                subject: subject.into(),
                evidence_digest: [3; 32],
                evidence_len: 1,
                dimensions: [("q".to_string(), 5000)].into(),
                weights: [("q".to_string(), 10_000)].into(),
                window_start_ms: NOW - 10,
                window_end_ms: NOW,
                nonce: vec![nonce; 16],
            },
        )
        .unwrap();
        (poi::check(&env, CHAIN, &members(), NOW).unwrap(), env)
    }

    fn ins(p: &mut AttestationPool, a: (CheckedAttestation, Envelope)) -> Result<(), PoolError> {
        p.insert(a.0, a.1)
    }

    #[test]
    fn insert_contains_len_get() {
        let mut p = AttestationPool::new(10);
        assert!(p.is_empty());
        let a = att(0, 1, "s");
        let id = a.0.id;
        let env = a.1.clone();
        ins(&mut p, a).unwrap();
        assert_eq!(p.len(), 1);
        assert!(p.contains(&id));
        assert_eq!(p.get(&id), Some(&env));
        assert!(!p.contains(&[0; 32]));
    }

    #[test]
    fn duplicate_id_is_refused() {
        let mut p = AttestationPool::new(10);
        ins(&mut p, att(0, 1, "s")).unwrap();
        let a = att(0, 1, "s");
        let id = a.0.id;
        let e = ins(&mut p, a).unwrap_err();
        assert_eq!(e, PoolError::DuplicateId(id));
        assert!(e.to_string().contains(&hex::encode(id)));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn duplicate_nonce_is_refused_even_with_another_payload() {
        let mut p = AttestationPool::new(10);
        ins(&mut p, att(0, 1, "s")).unwrap();
        let e = ins(&mut p, att(0, 1, "other subject")).unwrap_err();
        assert!(matches!(e, PoolError::DuplicateNonce { .. }), "{e}");
        // The same nonce from another attester is fine.
        ins(&mut p, att(1, 1, "other subject")).unwrap();
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn full_pool_refuses_and_keeps_pending() {
        let mut p = AttestationPool::new(2);
        ins(&mut p, att(0, 1, "s")).unwrap();
        ins(&mut p, att(0, 2, "s")).unwrap();
        assert_eq!(ins(&mut p, att(0, 3, "s")), Err(PoolError::Full(2)));
        assert_eq!(p.len(), 2);
        // Duplicates are reported as duplicates even when full.
        assert!(matches!(ins(&mut p, att(0, 1, "s")), Err(PoolError::DuplicateId(_))));
        // Room again after finalization.
        let first = p.take_for_block(1);
        p.remove_finalized([poi::attestation_id(&first[0].payload)]);
        ins(&mut p, att(0, 3, "s")).unwrap();
    }

    #[test]
    fn take_for_block_is_round_robin_by_attester_and_does_not_remove() {
        let mut p = AttestationPool::new(10);
        let all: Vec<_> = (1..=5).map(|n| att(n % 3, n, "s")).collect();
        let ids: Vec<Hash> = all.iter().map(|a| a.0.id).collect();
        for a in all {
            ins(&mut p, a).unwrap();
        }
        let got: Vec<Hash> = p
            .take_for_block(3)
            .iter()
            .map(|e| poi::attestation_id(&e.payload))
            .collect();
        assert_eq!(got, ids[..3]);
        assert_eq!(p.len(), 5);
        assert_eq!(p.take_for_block(100).len(), 5);
        assert!(p.take_for_block(0).is_empty());
        // Attesters 1, 2, 0 (by their oldest): one each per turn. Removing
        // attester 2's oldest moves it behind attester 0.
        p.remove_finalized([ids[1]]);
        let got: Vec<Hash> = p
            .take_for_block(10)
            .iter()
            .map(|e| poi::attestation_id(&e.payload))
            .collect();
        assert_eq!(got, vec![ids[0], ids[2], ids[4], ids[3]]);
    }

    /// D7: one attester filling the pool cannot keep others out of it, nor
    /// out of the next block.
    #[test]
    fn a_flooding_attester_only_displaces_itself() {
        let mut p = AttestationPool::new(10);
        for n in 0..10 {
            ins(&mut p, att(0, n, "s")).unwrap();
        }
        // Full of attester 0: attesters 1 and 2 still get in, each evicting
        // attester 0's newest.
        for n in 0..3 {
            ins(&mut p, att(1, n, "s")).unwrap();
            ins(&mut p, att(2, n, "s")).unwrap();
        }
        assert_eq!(p.len(), 10);
        let count = |p: &AttestationPool, who: usize| p.by_attester.get(&who).map_or(0, |s| s.len());
        assert_eq!((count(&p, 0), count(&p, 1), count(&p, 2)), (4, 3, 3));
        // At (nearly) equal shares nobody evicts anybody: the flooder is
        // refused, and so is an attester that would then hold the most.
        assert_eq!(ins(&mut p, att(0, 50, "s")), Err(PoolError::Full(10)));
        assert_eq!(ins(&mut p, att(1, 50, "s")), Err(PoolError::Full(10)));
        assert_eq!((count(&p, 0), count(&p, 1), count(&p, 2)), (4, 3, 3));
        // Blocks take from every attester in turn.
        let block = p.take_for_block(3);
        let mut who: Vec<String> = block
            .iter()
            .map(|e| PoiAttestation::decode(e.payload.as_slice()).unwrap().attester)
            .collect();
        who.sort();
        who.dedup();
        assert_eq!(who.len(), 3, "one from each attester");
    }

    #[test]
    fn finalized_resubmission_is_refused() {
        let mut p = AttestationPool::new(10);
        let a = att(0, 1, "s");
        let id = a.0.id;
        ins(&mut p, a).unwrap();
        p.remove_finalized([id]);
        assert!(!p.contains(&id));
        assert_eq!(p.len(), 0);
        assert_eq!(ins(&mut p, att(0, 1, "s")), Err(PoolError::DuplicateId(id)));
        // Same attester and nonce, different payload: refused by nonce.
        assert!(matches!(
            ins(&mut p, att(0, 1, "other")),
            Err(PoolError::DuplicateNonce { .. })
        ));
        assert!(p.is_known(&id, 0, &[9; 16]));
        assert!(p.is_known(&[0; 32], 0, &[1; 16]));
        assert!(!p.is_known(&[0; 32], 1, &[1; 16]));
    }

    #[test]
    fn finalized_elsewhere_by_envelope_is_remembered_and_drops_nonce_twin() {
        let mut p = AttestationPool::new(10);
        // Pending here: variant A. Finalized (proposed by another node): variant B, same nonce.
        let a = att(0, 1, "a");
        let a_id = a.0.id;
        ins(&mut p, a).unwrap();
        let (b, b_env) = att(0, 1, "b");
        assert!(!p.is_known(&b.id, 0, &b.att.nonce), "pending is not finalized");
        p.remove_finalized([FinalizedKey::from_envelope(&b_env, &members())]);
        assert!(!p.contains(&a_id), "the nonce twin is dropped");
        assert!(p.is_known(&b.id, 0, &b.att.nonce));
        assert!(p.is_known(&[1; 32], 0, &b.att.nonce));
        // From a CheckedAttestation never seen here.
        let (c, _) = att(2, 7, "c");
        p.remove_finalized([FinalizedKey::from(&c)]);
        assert!(p.is_known(&c.id, 2, &[7; 16]));
        // A garbage envelope still remembers its id.
        let junk = Envelope {
            payload: vec![0xff; 3],
            ..Default::default()
        };
        let k = FinalizedKey::from_envelope(&junk, &members());
        assert_eq!(k, FinalizedKey::from(poi::attestation_id(&junk.payload)));
    }

    #[test]
    fn is_known_ignores_pending() {
        let mut p = AttestationPool::new(10);
        let a = att(0, 1, "s");
        let (id, nonce) = (a.0.id, a.0.att.nonce.clone());
        ins(&mut p, a).unwrap();
        assert!(!p.is_known(&id, 0, &nonce));
    }

    #[test]
    fn seen_memory_is_bounded_fifo() {
        let mut p = AttestationPool::with_seen_capacity(10, 3);
        let all: Vec<_> = (1..=4).map(|n| att(0, n, "s")).collect();
        let keys: Vec<FinalizedKey> = all.iter().map(|a| FinalizedKey::from(&a.0)).collect();
        p.remove_finalized(keys.clone());
        // Finalizing the same thing twice does not take two slots.
        p.remove_finalized(keys[3..].to_vec());
        assert_eq!(p.seen.order.len(), 3);
        assert_eq!(p.seen.ids.len(), 3);
        assert_eq!(p.seen.nonces.len(), 3);
        assert!(!p.is_known(&all[0].0.id, 0, &[1; 16]), "oldest forgotten");
        for a in &all[1..] {
            assert!(p.is_known(&a.0.id, 0, &a.0.att.nonce));
        }
        // Forgotten ones may be pooled again (the store index is the durable check).
        let (c, e) = all.into_iter().next().unwrap();
        p.insert(c, e).unwrap();
    }

    #[test]
    fn remove_drops_pending() {
        let mut p = AttestationPool::new(10);
        let a = att(0, 1, "s");
        let (id, env) = (a.0.id, a.1.clone());
        ins(&mut p, a).unwrap();
        assert_eq!(p.remove(&id), Some(env));
        assert_eq!(p.remove(&id), None);
        assert!(p.is_empty());
        assert!(!p.is_known(&id, 0, &[1; 16]));
        // Not finalized, so it may come back.
        ins(&mut p, att(0, 1, "s")).unwrap();
    }
}
