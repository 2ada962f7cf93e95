//! The simulated network and event loop: one seeded RNG, one event queue.
//!
//! Here: the world, its event queue and loop, and how each node's inputs
//! and effects are executed. `gossip` delivers messages between nodes;
//! `pools` holds the attestations and evidence proposals carry.

use crate::node::{Behavior, SimNode};
use crate::SimConfig;
use bizra_consensus::driver::{Effect, Input, Timeout, TimeoutKind};
use bizra_consensus::evidence::{self, EvidenceKey};
use bizra_consensus::genesis::Genesis;
use bizra_consensus::messages::{VerifiedProposal, VerifiedVote};
use bizra_proto::{Block, CommitCertificate, VoteKind};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

mod gossip;
mod pools;

/// The faults of one run. All of them stop at `heal_at`.
#[derive(Clone, Debug)]
pub struct NetFaults {
    /// Simulated time (ms) from which the network is reliable and no node crashes.
    pub heal_at: u64,
    /// Chance that a message is dropped before `heal_at`, in bps.
    pub drop_bps: u32,
    /// Chance that a message is delivered twice before `heal_at`, in bps.
    pub dup_bps: u32,
    /// Per-hop delivery delay is 1 to this many ms (reordering).
    pub max_delay_ms: u64,
    /// (start, end, side): nodes with `side[i]` cannot talk to the others.
    pub partitions: Vec<(u64, u64, Vec<bool>)>,
    /// (node, crash_at, restart_at)
    pub crashes: Vec<(usize, u64, u64)>,
}

impl NetFaults {
    /// Draws faults for `n` nodes from `rng`: up to 2 partitions, crashes, drop/dup rates, all healed by `heal_at`.
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
}
