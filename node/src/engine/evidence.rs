//! The engine's evidence path (issue 15, ADR 0014): the driver's
//! equivocation reports and gossiped evidence enter the pool, the pool feeds
//! proposals, finalized blocks prune it and index what they committed.
//!
//! Gossip checks run cheapest first and spend the two signature checks last:
//! size and canonical encoding (Reject), the chain's rules without
//! signatures ([`ChainState::evidence_includable`]: malformed is Reject,
//! too old, from the future or committed is Ignore, since honest peers race
//! with blocks), the pool's dedup and quotas (Ignore), then the signatures
//! (Reject).

use super::Engine;
use crate::evidence_pool::EvidencePool;
use bizra_consensus::chain::ChainState;
use bizra_consensus::evidence::{self, EvidenceError, MAX_EVIDENCE_BYTES};
use bizra_p2p::{Topic, Validation};
use bizra_proto::{Block, Equivocation, Evidence};
use prost::Message;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How often pending evidence is gossiped again (until committed or expired).
pub const REGOSSIP_EVERY: Duration = Duration::from_secs(30);

/// The gossip verdict for evidence bytes, before signatures; `Ok` carries
/// the decoded evidence and its key.
pub fn precheck(
    g: &bizra_consensus::genesis::Genesis,
    state: &ChainState,
    data: &[u8],
) -> Result<(Evidence, evidence::EvidenceKey), (Validation, &'static str)> {
    if data.len() > MAX_EVIDENCE_BYTES {
        return Err((Validation::Reject, "oversized"));
    }
    let Ok(ev) = Evidence::decode(data) else {
        return Err((Validation::Reject, "malformed"));
    };
    if ev.encode_to_vec() != data {
        return Err((Validation::Reject, "non_canonical"));
    }
    match state.evidence_includable(g, &ev) {
        Ok(key) => Ok((ev, key)),
        Err(EvidenceError::TooOld { .. } | EvidenceError::Future { .. } | EvidenceError::AlreadyCommitted) => {
            Err((Validation::Ignore, "stale"))
        }
        Err(_) => Err((Validation::Reject, "invalid")),
    }
}

/// The whole gossip check of evidence bytes, as the engine runs it: the
/// verdict and, on `Accept`, the evidence to pool. Pure (the pool is only
/// read), so fuzzing calls exactly this.
pub fn check_gossip(
    g: &bizra_consensus::genesis::Genesis,
    state: &ChainState,
    pool: &EvidencePool,
    data: &[u8],
) -> Result<(Evidence, evidence::EvidenceKey), (Validation, &'static str)> {
    let (ev, key) = precheck(g, state, data)?;
    if state.acc.offenders.contains(&(key.validator as usize)) {
        return Err((Validation::Ignore, "convicted"));
    }
    if pool.room_for(&key).is_err() {
        return Err((Validation::Ignore, "pool"));
    }
    let shaped = evidence::check_shape(g.chain_id(), &g.members, &ev).map_err(|_| (Validation::Reject, "invalid"))?;
    evidence::verify_signatures(&g.members, &shaped).map_err(|_| (Validation::Reject, "signature"))?;
    Ok((ev, key))
}

impl Engine {
    /// `Effect::Evidence`: the vote keeper saw two votes (both verified) from
    /// one validator at one (height, round, kind).
    pub(super) async fn on_equivocation(&mut self, eq: Equivocation) {
        self.metrics().equivocations.inc();
        let who = eq
            .first
            .as_ref()
            .and_then(|v| v.vote.as_ref())
            .map(|v| v.validator.clone());
        if let Some(suppressed) = self.logs.allow("equivocation", Instant::now()) {
            warn!(validator = ?who, suppressed, "equivocation evidence");
        }
        let Some(ev) = evidence::from_equivocation(&eq) else {
            return;
        };
        let g = self.shared.genesis.clone();
        let state = self.driver.chain();
        let Ok(key) = state.evidence_includable(&g, &ev) else {
            return;
        };
        if state.acc.offenders.contains(&(key.validator as usize)) || self.evidence.room_for(&key).is_err() {
            return;
        }
        // The votes were verified when they arrived; check the pair once
        // more anyway (two signatures, rare): the pool holds only valid evidence.
        if evidence::check(g.chain_id(), &g.members, &ev).is_err() {
            return;
        }
        if self.evidence.insert(key, ev.clone()).is_ok() {
            self.metrics().evidence("detected");
            self.metrics().evidence_pending.set(self.evidence.len() as i64);
            info!(validator = ?who, height = key.height, round = key.round, "evidence pooled");
            self.publish_evidence(&ev).await;
        }
    }

    async fn publish_evidence(&mut self, ev: &Evidence) {
        if let Err(e) = self.p2p.publish(Topic::Evidence, ev.encode_to_vec()).await {
            debug!("publish evidence: {e}");
        }
    }

    /// Evidence gossiped by a peer: the verdict (Reject strikes the sender).
    pub(super) fn on_evidence_gossip(&mut self, data: &[u8]) -> Validation {
        let g = self.shared.genesis.clone();
        match check_gossip(&g, self.driver.chain(), &self.evidence, data) {
            Ok((ev, key)) => {
                let _ = self.evidence.insert(key, ev);
                self.metrics().evidence("gossip_accepted");
                self.metrics().evidence_pending.set(self.evidence.len() as i64);
                Validation::Accept
            }
            Err((v, why)) => {
                let result = if v == Validation::Reject {
                    "gossip_rejected"
                } else {
                    "gossip_ignored"
                };
                self.metrics().evidence(result);
                debug!(why, "evidence gossip: {result}");
                v
            }
        }
    }

    /// Pending evidence for our proposal (the driver re-checks it).
    pub(super) fn evidence_for_block(&self) -> Vec<Evidence> {
        let max = self.shared.genesis.params().evidence.max_per_block as usize;
        self.evidence.take_for_block(max)
    }

    /// After a block is stored: index and count what it committed, prune the pool.
    pub(super) fn evidence_after_block(&mut self, block: &Block, state: &ChainState) {
        let g = self.shared.genesis.clone();
        let height = state.height;
        if !block.evidence.is_empty() {
            let mut index = self.shared.evidence.write().expect("evidence index");
            for (i, e) in block.evidence.iter().enumerate() {
                if let Ok(s) = evidence::check_shape(g.chain_id(), &g.members, e) {
                    index.add(s.validator(), height, i as u32);
                    let id = g.members.get(s.validator()).id.clone();
                    self.metrics().evidence("committed");
                    self.metrics()
                        .evidence_committed
                        .get_or_create(&crate::metrics::ValidatorLabel { validator: id.clone() })
                        .inc();
                    info!(validator = %id, height, "evidence committed: jailed from the next epoch boundary");
                }
            }
        }
        if !self.evidence.is_empty() {
            self.evidence.prune(&g, state);
            self.metrics().evidence_pending.set(self.evidence.len() as i64);
        }
    }

    /// Gossips pending evidence again every [`REGOSSIP_EVERY`].
    pub(super) async fn regossip_evidence(&mut self) {
        if self.evidence.is_empty() || self.last_evidence_gossip.elapsed() < REGOSSIP_EVERY {
            return;
        }
        self.last_evidence_gossip = Instant::now();
        let pending: Vec<Evidence> = self.evidence.pending().cloned().collect();
        for ev in &pending {
            self.publish_evidence(ev).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_world::world;

    #[test]
    fn precheck_verdicts() {
        let w = world();
        let g = &w.genesis;
        let state = w.states.last().unwrap();
        let s = &w.signers[1];
        let vote = |b: u8, h: u64| {
            bizra_consensus::messages::sign_vote(
                s,
                bizra_consensus::messages::new_vote(
                    g.chain_id(),
                    h,
                    0,
                    bizra_proto::VoteKind::Prevote,
                    Some([b; 32]),
                    s.id(),
                ),
            )
        };
        let good = evidence::duplicate_vote(vote(1, state.height), vote(2, state.height)).unwrap();
        let bytes = good.encode_to_vec();
        assert!(precheck(g, state, &bytes).is_ok());
        assert_eq!(precheck(g, state, b"\xff\xff").unwrap_err().0, Validation::Reject);
        assert_eq!(
            precheck(g, state, &vec![0; MAX_EVIDENCE_BYTES + 1]).unwrap_err().0,
            Validation::Reject
        );
        // Non-canonical: the same evidence with an unknown field appended.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0x78, 0x01]);
        assert_eq!(
            precheck(g, state, &padded).unwrap_err(),
            (Validation::Reject, "non_canonical")
        );
        // From the future: ignored, not a strike.
        let future = evidence::duplicate_vote(vote(1, state.height + 5), vote(2, state.height + 5)).unwrap();
        assert_eq!(
            precheck(g, state, &future.encode_to_vec()).unwrap_err(),
            (Validation::Ignore, "stale")
        );
        // No conflict: a strike.
        let same = bizra_proto::Evidence {
            kind: Some(bizra_proto::evidence::Kind::DuplicateVote(
                bizra_proto::DuplicateVoteEvidence {
                    first: Some(vote(1, state.height)),
                    second: Some(vote(1, state.height)),
                },
            )),
        };
        assert_eq!(
            precheck(g, state, &same.encode_to_vec()).unwrap_err(),
            (Validation::Reject, "invalid")
        );
    }
}
