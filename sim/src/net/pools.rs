//! What the simulated hosts' pools hold: the PoI attestations a proposer
//! includes (a Byzantine coalition's own among them), and equivocation
//! evidence kept, pruned and checked in proposals as the node does.

use super::{Delivery, World, POOL_CAP};
use bizra_consensus::chain::MAX_BLOCK_ATTESTATIONS;
use bizra_consensus::driver::Effect;
use bizra_consensus::evidence::{self, EvidenceError, EvidenceKey};
use bizra_proto::{consensus_message::Msg, ConsensusMessage, Equivocation};
use rand::Rng;

impl World {
    /// A proposer includes 0-2 signed PoI attestations about random
    /// validators, so `poi` (and hence the weights) changes across epochs.
    pub(super) fn attestations_for(&mut self, node: usize) -> Vec<bizra_proto::Envelope> {
        if !self.nodes[node].behavior.is_honest() {
            return self.coalition_attestations();
        }
        let count = self.rng.random_range(0..3);
        let now = self.genesis.doc.genesis_time_ms + self.now;
        (0..count)
            .filter_map(|_| {
                let subject = self.rng.random_range(0..self.nodes.len());
                let value = self.rng.random_range(0..=10_000u32);
                let mut nonce = vec![0u8; 16];
                self.rng.fill(&mut nonce[..]);
                let draft = bizra_consensus::poi::Draft {
                    chain_id: self.genesis.chain_id().to_string(),
                    subject: self.genesis.members.get(subject).id.clone(),
                    evidence_digest: [7u8; 32],
                    evidence_len: 1,
                    dimensions: [("impact".to_string(), value)].into(),
                    weights: [("impact".to_string(), 10_000)].into(),
                    window_start_ms: now.saturating_sub(1_000),
                    window_end_ms: now,
                    nonce,
                };
                bizra_consensus::poi::build(&self.nodes[node].signer, draft).ok()
            })
            .collect()
    }

    /// A Byzantine proposer's payload: every Byzantine validator attests
    /// every Byzantine validator, itself included, at 10000 bps (up to the
    /// block limit): the most PoI the coalition can give itself. Self-
    /// attestations earn nothing; the others reach `poi_cap` in every epoch
    /// with a Byzantine proposer.
    pub(super) fn coalition_attestations(&mut self) -> Vec<bizra_proto::Envelope> {
        let byz: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].behavior.is_honest())
            .collect();
        let now = self.genesis.doc.genesis_time_ms + self.now;
        let mut out = Vec::new();
        for &attester in &byz {
            for &subject in &byz {
                if out.len() >= MAX_BLOCK_ATTESTATIONS {
                    return out;
                }
                let mut nonce = vec![0u8; 16];
                self.rng.fill(&mut nonce[..]);
                let draft = bizra_consensus::poi::Draft {
                    chain_id: self.genesis.chain_id().to_string(),
                    subject: self.genesis.members.get(subject).id.clone(),
                    evidence_digest: [9u8; 32],
                    evidence_len: 1,
                    dimensions: [("impact".to_string(), 10_000)].into(),
                    weights: [("impact".to_string(), 10_000)].into(),
                    window_start_ms: now.saturating_sub(1_000),
                    window_end_ms: now,
                    nonce,
                };
                out.extend(bizra_consensus::poi::build(&self.nodes[attester].signer, draft).ok());
            }
        }
        out
    }

    /// An honest node's driver saw two votes of one validator at one
    /// (height, round, kind): record who was caught, and keep the canonical
    /// evidence in the node's pool unless its chain has committed it or can
    /// no longer include it. Byzantine nodes keep no pool.
    pub(super) fn keep_evidence(&mut self, node: usize, eq: &Equivocation) {
        if !self.nodes[node].behavior.is_honest() {
            return;
        }
        let g = self.genesis.clone();
        let Some(e) = evidence::from_equivocation(eq) else {
            return;
        };
        // The vote keeper only holds verified votes: the evidence must pass in
        // full. The signatures are verified once, when it enters the pool.
        let key = match evidence::check_shape(g.chain_id(), &g.members, &e) {
            Ok(s) => s.key,
            Err(err) => {
                self.evidence_violations += 1;
                self.notes.push(format!(
                    "node {node}: the driver reported evidence that fails its check: {err}"
                ));
                return;
            }
        };
        let offender = key.validator as usize;
        if self.nodes[offender].behavior.is_honest() {
            self.evidence_violations += 1;
            self.notes.push(format!(
                "node {node} holds evidence that honest validator {offender} equivocated at height {} round {}",
                key.height, key.round
            ));
        }
        let lowest = self.evidence_held.entry(offender).or_insert(key.height);
        *lowest = (*lowest).min(key.height);
        if let Some(e) = self.pool_evidence_checked(node, key, e) {
            // Gossip it: every other validator hears it from the detector.
            for to in 0..self.nodes.len() {
                if to != node {
                    self.send(node, to, Delivery::Evidence(Box::new(e.clone())));
                }
            }
        }
    }

    /// Evidence gossiped to `node`: an honest node checks it in full and
    /// keeps it like its own (it does not forward it again).
    pub(super) fn pool_evidence(&mut self, node: usize, e: bizra_proto::Evidence) {
        if !self.nodes[node].behavior.is_honest() {
            return;
        }
        let g = self.genesis.clone();
        let Ok(s) = evidence::check_shape(g.chain_id(), &g.members, &e) else {
            return;
        };
        let key = s.key;
        self.pool_evidence_checked(node, key, e);
    }

    /// Puts evidence into `node`'s pool unless it is there, the pool is
    /// full, or the node's chain has committed it or can no longer include
    /// it; the signatures are verified once, here. Returns it when kept.
    pub(super) fn pool_evidence_checked(
        &mut self,
        node: usize,
        key: EvidenceKey,
        e: bizra_proto::Evidence,
    ) -> Option<bizra_proto::Evidence> {
        let g = self.genesis.clone();
        let n = &self.nodes[node];
        if n.durable.pool.contains_key(&key) || n.durable.pool.len() >= POOL_CAP {
            return None;
        }
        let keep = match n.durable.state.evidence_includable(&g, &e) {
            Ok(_) | Err(EvidenceError::Future { .. }) => true,
            Err(_) => false, // committed, or too old
        };
        if !keep {
            return None;
        }
        if let Err(err) = evidence::check(g.chain_id(), &g.members, &e) {
            self.evidence_violations += 1;
            self.notes.push(format!(
                "node {node}: evidence with a bad signature reached the pool: {err}"
            ));
            return None;
        }
        if self.debug {
            eprintln!(
                "    n{node} pool <- v{} h{} r{} kind {}",
                key.validator, key.height, key.round, key.kind
            );
        }
        self.nodes[node].durable.pool.insert(key, e.clone());
        Some(e)
    }

    /// Drops from a node's pool what its chain committed or can no longer include.
    pub(super) fn prune_pool(&mut self, node: usize) {
        let g = self.genesis.clone();
        let n = &mut self.nodes[node];
        let state = &n.durable.state;
        n.durable.pool.retain(|_, e| {
            matches!(
                state.evidence_includable(&g, e),
                Ok(_) | Err(EvidenceError::Future { .. })
            )
        });
    }

    /// The keys of the pool that the node's next block may carry, in the
    /// order the driver takes them, up to `max_per_block` (every entry passed
    /// [`evidence::check`] when it was kept).
    pub(super) fn includable_pool(&self, node: usize) -> Vec<EvidenceKey> {
        let g = &self.genesis;
        let max = g.params().evidence.max_per_block as usize;
        let n = &self.nodes[node];
        n.durable
            .pool
            .values()
            .filter_map(|e| n.durable.state.evidence_includable(g, e).ok())
            .take(max)
            .collect()
    }

    /// An honest proposer offered its pool: the block it proposes at that
    /// (height, round) must carry exactly the includable part (up to the cap).
    pub(super) fn check_proposed_evidence(&mut self, expect: (usize, u64, u32, Vec<EvidenceKey>), fx: &[Effect]) {
        let (node, height, round, keys) = expect;
        let g = self.genesis.clone();
        for e in fx {
            let Effect::Broadcast(ConsensusMessage {
                msg: Some(Msg::Proposal(sp)),
                ..
            }) = e
            else {
                continue;
            };
            let (Some(p), Some(block)) = (&sp.proposal, &sp.block) else {
                continue;
            };
            if (p.height, p.round) != (height, round) {
                continue;
            }
            let carried: Vec<EvidenceKey> = block
                .evidence
                .iter()
                .filter_map(|e| evidence::check_shape(g.chain_id(), &g.members, e).ok().map(|s| s.key))
                .collect();
            if carried != keys {
                self.evidence_violations += 1;
                self.notes.push(format!(
                    "node {node} proposed at height {height} round {round} with evidence {carried:?}, expected {keys:?}"
                ));
            }
        }
    }
}
