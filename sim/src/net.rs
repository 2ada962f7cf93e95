//! The simulated network and event loop: one seeded RNG, one event queue.

use crate::node::{Behavior, SimNode};
use crate::SimConfig;
use bizra_consensus::chain::MAX_BLOCK_ATTESTATIONS;
use bizra_consensus::driver::{Effect, Input, Timeout, TimeoutKind};
use bizra_consensus::evidence::{self, EvidenceError, EvidenceKey};
use bizra_consensus::genesis::Genesis;
use bizra_consensus::messages::{self, new_vote, sign_proposal, sign_vote, VerifiedProposal, VerifiedVote};
use bizra_proto::{consensus_message::Msg, Block, CommitCertificate, ConsensusMessage, Equivocation, VoteKind};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

/// The faults of one run. All of them stop at `heal_at`.
#[derive(Clone, Debug)]
pub struct NetFaults {
    pub heal_at: u64,
    pub drop_bps: u32,
    pub dup_bps: u32,
    pub max_delay_ms: u64,
    /// (start, end, side): nodes with `side[i]` cannot talk to the others.
    pub partitions: Vec<(u64, u64, Vec<bool>)>,
    /// (node, crash_at, restart_at)
    pub crashes: Vec<(usize, u64, u64)>,
}

impl NetFaults {
    pub fn random(rng: &mut ChaCha8Rng, n: usize) -> Self {
        let heal_at = rng.random_range(1_000..6_000);
        let mut partitions = Vec::new();
        for _ in 0..rng.random_range(0..3) {
            let start = rng.random_range(0..heal_at);
            let end = rng.random_range(start..=heal_at);
            let side: Vec<bool> = (0..n).map(|_| rng.random_bool(0.5)).collect();
            partitions.push((start, end, side));
        }
        let mut crashes = Vec::new();
        for i in 0..n {
            if rng.random_bool(0.25) {
                let at = rng.random_range(0..heal_at);
                let back = rng.random_range(at + 1..=heal_at + 1);
                crashes.push((i, at, back));
            }
        }
        NetFaults {
            heal_at,
            drop_bps: rng.random_range(0..2_000),
            dup_bps: rng.random_range(0..1_000),
            max_delay_ms: rng.random_range(5..80),
            partitions,
            crashes,
        }
    }

    fn blocked(&self, now: u64, a: usize, b: usize) -> bool {
        self.partitions
            .iter()
            .any(|(s, e, side)| now >= *s && now < *e && side[a] != side[b])
    }
}

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        to: usize,
        msg: Delivery,
    },
    Timer {
        node: usize,
        incarnation: u64,
        timeout: Timeout,
    },
    Value {
        node: usize,
        incarnation: u64,
        height: u64,
        round: u32,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Tick {
        node: usize,
    },
}

#[derive(Clone, Debug)]
enum Delivery {
    Vote(VerifiedVote),
    Proposal(Box<VerifiedProposal>),
    SyncRequest {
        from: usize,
        height: u64,
    },
    SyncResponse(Vec<(Block, CommitCertificate)>),
    /// Evidence gossiped by the node that detected it (the node's
    /// `/evidence/1` topic: one hop to every validator, as in direct mode).
    Evidence(Box<bizra_proto::Evidence>),
}

struct Queued {
    at: u64,
    seq: u64,
    event: Event,
}
impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

pub struct World {
    pub nodes: Vec<SimNode>,
    pub now: u64,
    pub max_round: u32,
    pub decisions: u64,
    pub messages: u64,
    pub evidence: u64,
    pub crashes: u64,
    /// Per offender, the lowest vote height of evidence against it that an
    /// honest node held (from its driver's `Effect::Evidence`).
    pub evidence_held: BTreeMap<usize, u64>,
    /// Evidence rule breaches seen during the run (an honest validator's
    /// equivocation, an honest proposal leaving out includable evidence).
    pub evidence_violations: u64,
    pub notes: Vec<String>,
    /// The evidence an honest proposer's next block must carry: (node,
    /// height, round, keys), set just before its `ProposeValue`.
    expect_evidence: Option<(usize, u64, u32, Vec<EvidenceKey>)>,
    genesis: Arc<Genesis>,
    faults: NetFaults,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    target: u64,
    deadline: u64,
    trace: blake3::Hasher,
    /// An equivocating proposer's two blocks per (node, height, round).
    twins: BTreeMap<TwinKey, ([u8; 32], [u8; 32])>,
    /// `BIZRA_SIM_DEBUG` is set: trace inputs, timers, faults and weights to stderr.
    debug: bool,
}

/// (node, height, round) of an equivocating proposal.
type TwinKey = (usize, u64, u32);

const SYNC_BATCH: usize = 16;
/// Most evidence an honest node keeps pending (a block carries at most
/// `max_per_block`, 8 by default).
pub const POOL_CAP: usize = 64;
const TICK_MS: u64 = 250;

impl World {
    pub fn new(
        cfg: &SimConfig,
        genesis: Arc<Genesis>,
        nodes: Vec<SimNode>,
        faults: NetFaults,
        rng: ChaCha8Rng,
    ) -> Self {
        let deadline = faults.heal_at + 30_000 + cfg.heights * 2_000;
        World {
            nodes,
            now: 0,
            max_round: 0,
            decisions: 0,
            messages: 0,
            evidence: 0,
            crashes: 0,
            evidence_held: BTreeMap::new(),
            evidence_violations: 0,
            notes: Vec::new(),
            expect_evidence: None,
            genesis,
            faults,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            target: cfg.heights,
            deadline,
            trace: blake3::Hasher::new(),
            twins: Default::default(),
            debug: std::env::var_os("BIZRA_SIM_DEBUG").is_some(),
        }
    }

    pub fn digest(&self) -> [u8; 32] {
        *self.trace.finalize().as_bytes()
    }

    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            event,
        }));
    }

    fn done(&self) -> bool {
        self.now >= self.faults.heal_at
            && self
                .nodes
                .iter()
                .filter(|n| n.behavior.is_honest())
                .all(|n| n.height() >= self.target)
    }

    pub fn run(&mut self) {
        if self.debug {
            let b: Vec<_> = self.nodes.iter().map(|n| n.behavior).collect();
            eprintln!("# behaviors {b:?}");
            eprintln!("# faults {:?}", self.faults);
            self.debug_weights(0);
        }
        for i in 0..self.nodes.len() {
            let fx = self.nodes[i].boot(self.genesis.doc.genesis_time_ms, false);
            self.execute(i, fx);
            self.push(TICK_MS, Event::Tick { node: i });
        }
        for (node, at, back) in self.faults.crashes.clone() {
            self.push(at, Event::Crash { node });
            self.push(back, Event::Restart { node });
        }
        while let Some(Reverse(q)) = self.queue.pop() {
            self.now = q.at;
            if self.now > self.deadline || self.done() {
                break;
            }
            self.step(q.event);
        }
        if self.debug {
            self.debug_dump();
        }
    }

    /// The weights node 0's durable state holds, with the Byzantine share.
    fn debug_weights(&self, node: usize) {
        let st = &self.nodes[node].durable.state;
        let w = &st.weights.weights;
        let total: u128 = w.iter().sum();
        let byz: u128 = (0..w.len())
            .filter(|&i| !self.nodes[i].behavior.is_honest())
            .map(|i| w[i])
            .sum();
        eprintln!(
            "# n{node} after h{} epoch {} weights {w:?} total {total} byzantine {byz} ({} bps)",
            st.height,
            st.weights.epoch,
            byz * 10_000 / total.max(1)
        );
    }

    /// Each node's round state and vote tallies at the end of a run.
    fn debug_dump(&self) {
        eprintln!("# end t={}", self.now);
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(d) = &n.driver else {
                eprintln!("#  n{i} {:?} down", n.behavior);
                continue;
            };
            eprintln!(
                "#  n{i} {:?} h{} r{} {:?} lock={:?}",
                n.behavior,
                d.height(),
                d.round(),
                d.step(),
                d.locked().map(|(h, r)| (hex::encode(&h[..2]), r))
            );
            for r in 0..=d.round() + 3 {
                for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                    if let Some(s) = d.votes().set(r, kind) {
                        let voters: Vec<_> = (0..self.nodes.len())
                            .filter_map(|v| s.get(v).map(|vv| (v, vv.value.map(|h| hex::encode(&h[..2])))))
                            .collect();
                        eprintln!(
                            "#    r{r} {kind:?} total {} of {}: {voters:?}",
                            s.total(),
                            d.votes().total_weight()
                        );
                    }
                }
            }
        }
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { to, msg } => {
                if self.nodes[to].driver.is_none() {
                    return;
                }
                self.trace.update(&[1]);
                self.trace.update(&self.now.to_le_bytes());
                self.trace.update(&(to as u64).to_le_bytes());
                match msg {
                    Delivery::Vote(v) => {
                        self.trace.update(&v.signed.signature);
                        self.input(to, Input::Vote(v));
                    }
                    Delivery::Proposal(p) => {
                        self.trace.update(&p.signed.signature);
                        self.input(to, Input::Proposal(*p));
                    }
                    Delivery::Evidence(e) => {
                        self.trace.update(&[5]);
                        self.trace.update(&evidence::evidence_id(&e));
                        self.pool_evidence(to, *e);
                    }
                    Delivery::SyncRequest { from, height } => {
                        let blocks: Vec<_> = self.nodes[to]
                            .durable
                            .decided
                            .iter()
                            .filter(|d| d.height >= height)
                            .take(SYNC_BATCH)
                            .map(|d| (d.block.clone(), d.commit.clone()))
                            .collect();
                        if !blocks.is_empty() {
                            self.send(to, from, Delivery::SyncResponse(blocks));
                        }
                    }
                    Delivery::SyncResponse(blocks) => {
                        let before = self.nodes[to].height();
                        for (block, commit) in blocks {
                            // The node checks signatures before the driver sees them.
                            if let Ok(commit) = self.nodes[to].check_commit(commit) {
                                self.input(to, Input::SyncedBlock { block, commit });
                            }
                        }
                        if self.nodes[to].height() > before {
                            self.request_sync(to, true);
                        }
                    }
                }
            }
            Event::Timer {
                node,
                incarnation,
                timeout,
            } => {
                if self.nodes[node].incarnation != incarnation || self.nodes[node].driver.is_none() {
                    return;
                }
                self.trace.update(&[2]);
                self.trace.update(&self.now.to_le_bytes());
                if self.nodes[node].behavior == Behavior::Amnesia
                    && timeout.kind == TimeoutKind::Precommit
                    && self.rng.random_bool(0.5)
                {
                    // Forget locks and the sign guard.
                    let fx = self.nodes[node].boot(self.genesis.doc.genesis_time_ms + self.now, true);
                    self.execute(node, fx);
                    return;
                }
                self.input(node, Input::Timeout(timeout));
            }
            Event::Value {
                node,
                incarnation,
                height,
                round,
            } => {
                if self.nodes[node].incarnation != incarnation || self.nodes[node].driver.is_none() {
                    return;
                }
                let attestations = self.attestations_for(node);
                // Honest proposers offer their whole pool; Byzantine ones offer none.
                let evidence = if self.nodes[node].behavior.is_honest() {
                    self.expect_evidence = Some((node, height, round, self.includable_pool(node)));
                    self.nodes[node].durable.pool.values().cloned().collect()
                } else {
                    Vec::new()
                };
                self.input(
                    node,
                    Input::ProposeValue {
                        height,
                        round,
                        attestations,
                        evidence,
                    },
                );
                self.expect_evidence = None;
            }
            Event::Crash { node } => {
                if self.nodes[node].driver.is_some() {
                    if self.debug {
                        eprintln!("t={} n{node} CRASH", self.now);
                    }
                    self.trace.update(&[3, node as u8]);
                    self.crashes += 1;
                    self.nodes[node].crash();
                }
            }
            Event::Restart { node } => {
                if self.nodes[node].driver.is_none() {
                    if self.debug {
                        eprintln!("t={} n{node} RESTART at h{}", self.now, self.nodes[node].height() + 1);
                    }
                    self.trace.update(&[4, node as u8]);
                    let fx = self.nodes[node].boot(self.genesis.doc.genesis_time_ms + self.now, false);
                    self.execute(node, fx);
                }
            }
            Event::Tick { node } => {
                // Status heartbeat: a node that has seen a higher height asks
                // for blocks (a lagging node never claims to be caught up).
                if let Some(d) = &self.nodes[node].driver {
                    if d.max_seen_height() > d.height() {
                        self.request_sync(node, false);
                    }
                }
                self.push(self.now + TICK_MS, Event::Tick { node });
            }
        }
    }

    fn input(&mut self, node: usize, input: Input) {
        if self.debug {
            let d = self.nodes[node].driver.as_ref().unwrap();
            let what = match &input {
                Input::Vote(v) => format!(
                    "vote v{} h{} r{} {:?} {:?}",
                    v.validator,
                    v.height(),
                    v.round(),
                    v.kind,
                    v.value.map(|h| hex::encode(&h[..2]))
                ),
                Input::Proposal(p) => format!(
                    "proposal v{} h{} r{} pol{:?} {} pol-tally={:?}",
                    p.proposer,
                    p.proposal().height,
                    p.proposal().round,
                    p.pol_round(),
                    hex::encode(&p.block_hash[..2]),
                    p.pol_round()
                        .and_then(|r| d.votes().set(r, VoteKind::Prevote))
                        .map(|s| s
                            .values()
                            .map(|(v, w)| (v.map(|h| hex::encode(&h[..2])), *w))
                            .collect::<Vec<_>>())
                ),
                Input::Timeout(t) => format!("timeout {:?}", t),
                other => format!("{:?}", std::mem::discriminant(other)),
            };
            eprintln!(
                "t={} n{} [h{} r{} {:?} lock={:?}] <- {}",
                self.now,
                node,
                d.height(),
                d.round(),
                d.step(),
                d.locked().map(|(h, r)| (hex::encode(&h[..2]), r)),
                what
            );
        }
        let now = self.genesis.doc.genesis_time_ms + self.now;
        if let Some(h) = crate::node::input_height(&input) {
            let n = &mut self.nodes[node];
            if h > n.height() && n.durable.wal_received.len() < 20_000 {
                n.durable.wal_received.push((h, input.clone()));
            }
        }
        let Some(d) = self.nodes[node].driver.as_mut() else {
            return;
        };
        let expect = match &input {
            Input::ProposeValue { .. } => self.expect_evidence.take(),
            _ => None,
        };
        // An error (e.g. an out-of-order synced block) is ignored, as the node would.
        if let Ok(fx) = d.handle(now, input) {
            if let Some(expect) = expect {
                self.check_proposed_evidence(expect, &fx);
            }
            if self.debug {
                for e in &fx {
                    match e {
                        Effect::ScheduleTimeout { .. } | Effect::Broadcast(_) => {}
                        Effect::Decided { hash, round, state, .. } => eprintln!(
                            "    n{node} -> Decided h{} r{round} {}",
                            state.height,
                            hex::encode(&hash[..2])
                        ),
                        Effect::Evidence(_) => eprintln!("    n{node} -> Evidence"),
                        e => eprintln!("    n{node} -> {e:?}"),
                    }
                }
            }
            self.execute(node, fx)
        }
    }

    /// A proposer includes 0-2 signed PoI attestations about random
    /// validators, so `poi` (and hence the weights) changes across epochs.
    fn attestations_for(&mut self, node: usize) -> Vec<bizra_proto::Envelope> {
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
    fn coalition_attestations(&mut self) -> Vec<bizra_proto::Envelope> {
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
    fn keep_evidence(&mut self, node: usize, eq: &Equivocation) {
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
    fn pool_evidence(&mut self, node: usize, e: bizra_proto::Evidence) {
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
    fn pool_evidence_checked(
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
    fn prune_pool(&mut self, node: usize) {
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
    fn includable_pool(&self, node: usize) -> Vec<EvidenceKey> {
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
    fn check_proposed_evidence(&mut self, expect: (usize, u64, u32, Vec<EvidenceKey>), fx: &[Effect]) {
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

    fn request_sync(&mut self, node: usize, force: bool) {
        if !force && self.now < self.nodes[node].last_sync_request + TICK_MS {
            return;
        }
        self.nodes[node].last_sync_request = self.now;
        let n = self.nodes.len();
        if n < 2 {
            return;
        }
        let mut peer = self.rng.random_range(0..n - 1);
        if peer >= node {
            peer += 1;
        }
        let height = self.nodes[node].height() + 1;
        self.send(node, peer, Delivery::SyncRequest { from: node, height });
    }

    fn execute(&mut self, node: usize, fx: Vec<Effect>) {
        self.nodes[node].persist(&fx);
        let inc = self.nodes[node].incarnation;
        for e in fx {
            match e {
                Effect::PersistOwn { .. } => {}
                Effect::Broadcast(msg) => self.broadcast(node, msg),
                Effect::ScheduleTimeout { timeout, after_ms } => {
                    if self.debug {
                        eprintln!("    n{node} schedule {timeout:?} +{after_ms}");
                    }
                    self.max_round = self.max_round.max(timeout.round);
                    self.push(
                        self.now + after_ms,
                        Event::Timer {
                            node,
                            incarnation: inc,
                            timeout,
                        },
                    );
                }
                Effect::RequestValue { height, round } => {
                    let at = self.now + self.rng.random_range(0..5);
                    self.push(
                        at,
                        Event::Value {
                            node,
                            incarnation: inc,
                            height,
                            round,
                        },
                    );
                }
                Effect::Decided { hash, state, .. } => {
                    if self.debug && state.height % self.genesis.params().epoch_length == 0 {
                        self.debug_weights(node);
                    }
                    self.prune_pool(node);
                    self.decisions += 1;
                    self.trace.update(&[5]);
                    self.trace.update(&(node as u64).to_le_bytes());
                    self.trace.update(&state.height.to_le_bytes());
                    self.trace.update(&hash);
                }
                Effect::CommitUpdated(_) | Effect::Kept | Effect::Known => {}
                Effect::Evidence(eq) => {
                    self.evidence += 1;
                    self.keep_evidence(node, &eq);
                }
                Effect::SyncNeeded { .. } => self.request_sync(node, false),
            }
        }
    }

    fn broadcast(&mut self, from: usize, msg: ConsensusMessage) {
        let n = self.nodes.len();
        let behavior = self.nodes[from].behavior;
        if behavior == Behavior::Silent {
            return;
        }
        let twin = match behavior {
            Behavior::DoubleVoter | Behavior::Equivocator => self.conflicting(from, &msg),
            _ => None,
        };
        let first = self.verify(&msg);
        let second = twin.as_ref().and_then(|t| self.verify(t));
        // Gossip relay of conflicting votes: every peer forwards what it
        // receives, so each node also gets the version sent to the other half,
        // one hop later (subject to the same faults). Only the relayed copies
        // that carry something new are modelled; for honest messages they
        // would be duplicates. Twin proposals are not relayed (no proposal
        // evidence in issue 15).
        let relay = matches!(msg.msg, Some(Msg::Vote(_)));
        for to in 0..n {
            if to == from {
                continue;
            }
            let (m, other) = match (&second, to % 2 == 1) {
                (Some(s), true) => (Some(s.clone()), first.clone()),
                (Some(s), false) => (first.clone(), Some(s.clone())),
                (None, _) => (first.clone(), None),
            };
            if let Some(m) = m {
                self.send(from, to, m);
            }
            if let Some(other) = other.filter(|_| relay) {
                let hop = 1 + self.rng.random_range(0..self.faults.max_delay_ms);
                self.send_after(from, to, other, hop);
            }
        }
    }

    /// A Byzantine twin of an own message: a conflicting vote, or for a
    /// proposal a different block at the same (height, round).
    fn conflicting(&mut self, from: usize, msg: &ConsensusMessage) -> Option<ConsensusMessage> {
        let signer = self.nodes[from].signer.clone();
        match &msg.msg {
            Some(Msg::Vote(sv)) => {
                let v = sv.vote.as_ref()?;
                // An equivocating proposer votes for its other block.
                let twin_of = self.twins.iter().find_map(|((n, h, _), (a, b))| {
                    (*n == from && *h == v.height).then(|| {
                        if v.block_hash == a.as_slice() {
                            Some(*b)
                        } else if v.block_hash == b.as_slice() {
                            Some(*a)
                        } else {
                            None
                        }
                    })?
                });
                let value = if let Some(t) = twin_of {
                    Some(t)
                } else if v.block_hash.is_empty() {
                    let mut h = [0u8; 32];
                    self.rng.fill(&mut h);
                    Some(h)
                } else {
                    None
                };
                let kind = VoteKind::try_from(v.kind).ok()?;
                let twin = sign_vote(
                    &signer,
                    new_vote(&v.chain_id, v.height, v.round, kind, value, &v.validator),
                );
                Some(ConsensusMessage {
                    msg: Some(Msg::Vote(twin)),
                    attempt: 0,
                })
            }
            Some(Msg::Proposal(sp)) if self.nodes[from].behavior == Behavior::Equivocator => {
                let mut block = sp.block.clone()?;
                let header = block.header.as_mut()?;
                header.time_ms += 1 + self.rng.random_range(0..1000);
                let hash = messages::block_hash(&block)?;
                let mut p = sp.proposal.clone()?;
                let first: [u8; 32] = p.block_hash.clone().try_into().ok()?;
                self.twins.insert((from, p.height, p.round), (first, hash));
                p.block_hash = hash.to_vec();
                Some(ConsensusMessage {
                    msg: Some(Msg::Proposal(sign_proposal(&signer, p, block))),
                    attempt: 0,
                })
            }
            _ => None,
        }
    }

    /// Signature and membership check, once per message, as the node's
    /// gossip validation does before forwarding.
    fn verify(&self, msg: &ConsensusMessage) -> Option<Delivery> {
        let (chain, members) = (self.genesis.chain_id(), &self.genesis.members);
        match &msg.msg {
            Some(Msg::Vote(sv)) => messages::check_vote(chain, members, sv).ok().map(Delivery::Vote),
            Some(Msg::Proposal(sp)) => messages::check_proposal(chain, members, sp)
                .ok()
                .map(|p| Delivery::Proposal(Box::new(p))),
            None => None,
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: Delivery) {
        self.send_after(from, to, msg, 0)
    }

    /// [`World::send`], `extra_ms` later (a relayed copy).
    fn send_after(&mut self, from: usize, to: usize, msg: Delivery, extra_ms: u64) {
        self.messages += 1;
        let faulty = self.now < self.faults.heal_at;
        if faulty && self.faults.blocked(self.now, from, to) {
            return;
        }
        if faulty && self.rng.random_range(0..10_000) < self.faults.drop_bps {
            return;
        }
        let delay = extra_ms + 1 + self.rng.random_range(0..self.faults.max_delay_ms);
        if faulty && self.rng.random_range(0..10_000) < self.faults.dup_bps {
            let d2 = extra_ms + 1 + self.rng.random_range(0..self.faults.max_delay_ms * 2);
            self.push(self.now + d2, Event::Deliver { to, msg: msg.clone() });
        }
        self.push(self.now + delay, Event::Deliver { to, msg });
    }
}
