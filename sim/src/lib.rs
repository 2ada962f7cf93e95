//! Deterministic simulation of the bizra consensus core.
//!
//! Many validators run the real [`bizra_consensus::driver::Driver`] in one
//! process over a simulated network driven by one `ChaCha8Rng` seed: message
//! delays (hence reordering), drops, duplication, partitions that heal,
//! crashes and restarts from persisted state, and Byzantine validators
//! (equivocating proposers, double voters, amnesia, silent) that hold their
//! honest share of the stake, attest each other at full impact, and whose
//! total weight the genesis coalition bound keeps below one third.
//!
//! Checked properties:
//! * **agreement**: no two honest validators finalize different blocks at one height;
//! * **validity**: every finalized block is valid on its parent and its commit
//!   certificate verifies independently;
//! * **liveness**: after the network heals every honest validator finalizes
//!   the target height within a bounded time (hence a bounded number of rounds);
//! * **determinism**: one seed run twice yields the same trace digest;
//! * **weight bound**: in every epoch the Byzantine validators hold less than
//!   a third of the weight (the genesis coalition bound, ADR 0003 amendment),
//!   whenever their stake-derived share is below `coalition_bound_bps`;
//! * **accountability** (issue 15, ADR 0014): honest nodes keep the evidence
//!   their drivers report and propose it; after every height two honest nodes
//!   both finalized their weights (jail terms included) are equal; no honest
//!   validator is ever named by evidence or jailed; committed evidence jails
//!   its validator from the next boundary on every honest node that reached
//!   it; and every Byzantine equivocator whose evidence an honest node held
//!   early enough to be judged (see [`judged_by`]) is counted as jailed or
//!   missed (a miss is reported, not a violation: a Byzantine or lagging
//!   proposer may legitimately decide the blocks of the whole window).

#![warn(missing_docs)]

mod net;
mod node;

pub use net::NetFaults;
use node::{Behavior, SimNode};

use bizra_consensus::certificate;
use bizra_consensus::chain::ChainState;
use bizra_consensus::driver::Timeouts;
use bizra_consensus::evidence::{self, EvidenceKey};
use bizra_consensus::genesis::{Genesis, GenesisDoc, GenesisParams, GenesisValidator};
use bizra_consensus::signing::Signer;
use bizra_consensus::types::Hash;
use bizra_consensus::validators::EpochWeights;
use bizra_consensus::weights::{self, WeightParams, MAX_COALITION_BOUND_BPS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Parameters of one simulated run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the `ChaCha8Rng` driving every random choice of the run.
    pub seed: u64,
    /// Number of validators.
    pub validators: usize,
    /// How many of the validators are Byzantine.
    pub byzantine: usize,
    /// Quorum threshold; below 6667 only to show the checker can fail.
    pub threshold_bps: u32,
    /// Target height every honest validator must finalize.
    pub heights: u64,
    /// Epoch length: short, so weights change during a run.
    pub epoch_length: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            validators: 4,
            byzantine: 1,
            threshold_bps: 6667,
            heights: 10,
            epoch_length: 3,
        }
    }
}

/// Outcome of one run: violations found, counters, and the trace digest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// The seed that was run.
    pub seed: u64,
    /// Agreement, evidence and weight-bound violations found (must be 0).
    pub safety_violations: u64,
    /// Finalized blocks or commits that failed independent re-validation (must be 0).
    pub validity_violations: u64,
    /// Some honest validator did not reach `heights` (only counted at threshold >= 6667 bps).
    pub liveness_failure: bool,
    /// Lowest finalized height among honest validators at the end.
    pub min_honest_height: u64,
    /// Highest round any validator timed out in.
    pub max_round: u32,
    /// Decisions (finalized blocks) reported by all drivers together.
    pub decisions: u64,
    /// Messages sent on the simulated network, including relayed copies.
    pub messages: u64,
    /// Equivocation evidence emitted by all drivers together.
    pub evidence: u64,
    /// Node crashes that happened during the run.
    pub crashes: u64,
    /// Byzantine validators named by evidence some honest node held.
    pub equivocators_seen: u64,
    /// Of those, the ones whose evidence was held early enough to be judged
    /// by the end of the run ([`judged_by`]).
    pub equivocators: u64,
    /// Of `equivocators`, those jailed (weight 0) on every honest node.
    pub equivocators_jailed: u64,
    /// Of `equivocators`, those not jailed everywhere yet whose evidence (of a
    /// later offence) is committed, its epoch boundary not reached by the end.
    pub equivocators_committed: u64,
    /// Of `equivocators`, those with no evidence committed at all: the
    /// early evidence expired uncommitted (reported, not a violation).
    pub equivocators_missed: u64,
    /// Distinct offences committed in the finalized chain.
    pub evidence_committed: u64,
    /// Validators jailed at some height on the finalized chain.
    pub jailed: u64,
    /// The Byzantine validators of the run.
    pub byzantine: Vec<usize>,
    /// Per validator, the height of the first block committing evidence against it.
    pub first_committed: BTreeMap<usize, u64>,
    /// Per honest node, per validator jailed on its chain, the first epoch
    /// it was jailed in (its weight is 0 there: checked in `run`).
    pub jailed_from: BTreeMap<usize, BTreeMap<usize, u64>>,
    /// Epoch boundaries at which the weight vector changed.
    pub weight_changes: u64,
    /// Largest Byzantine share of the weight in any epoch seen, in bps.
    pub max_byzantine_share_bps: u32,
    /// Simulated time at the end of the run, in ms.
    pub sim_time_ms: u64,
    /// BLAKE3 digest of the run's trace; equal for equal seeds (determinism).
    pub digest: [u8; 32],
    /// Human-readable description of every violation and failure found.
    pub notes: Vec<String>,
}

/// Equal stake of every simulated validator, so the Byzantine validators'
/// stake-derived share of the weight is exactly `f / n`.
const SIM_STAKE: u64 = 1_000_000;

/// Weight parameters for a run with `f` of `n` validators Byzantine (equal
/// stakes): the genesis coalition bound just above `f / n`
/// (`floor(f * 10000 / n) + 1` bps) and the largest PoI and participation
/// gains (`poi_gain = rep_gain`) that bound allows with `base = 10^7` and
/// `poi_cap = 10000`. `None` when no bound below a third covers `f / n`.
pub fn sim_weight_params(n: usize, f: usize) -> Option<WeightParams> {
    let cb = (f as u128 * 10_000 / n.max(1) as u128 + 1) as u32;
    if cb > MAX_COALITION_BOUND_BPS {
        return None;
    }
    let base = 10_000_000u64;
    let poi_cap = 10_000u64;
    // cb * (3 * base + 2 * M) <= 10000 * base, with M = g * (poi_cap + 10000).
    let allowed = base as u128 * (10_000 - 3 * cb as u128) / (2 * cb as u128);
    let gain = (allowed / (poi_cap as u128 + 10_000)) as u64;
    let p = WeightParams {
        base,
        poi_gain: gain,
        rep_gain: gain,
        stake_gain: 100,
        poi_decay_bps: 5_000,
        poi_cap,
        coalition_bound_bps: cb,
    };
    debug_assert!(p.validate().is_ok());
    debug_assert!(
        WeightParams {
            poi_gain: gain + 1,
            rep_gain: gain + 1,
            ..p.clone()
        }
        .validate()
        .is_err(),
        "the largest gains"
    );
    Some(p)
}

/// Builds the genesis for a run: equal stakes, the Byzantine validators
/// chosen at random, and weight parameters whose coalition bound covers them
/// ([`sim_weight_params`]), with the largest PoI and participation gains it
/// allows, and short epochs. If `f / n` is at least a third (no bound can
/// cover it), the Byzantine validators run honest, unless the threshold is
/// below 6667 on purpose.
fn make_genesis(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> (Arc<Genesis>, Vec<Signer>, Vec<bool>) {
    let signers: Vec<Signer> = (0..cfg.validators)
        .map(|_| {
            let mut s = [0u8; 32];
            rng.fill(&mut s);
            Signer::from_secret(s)
        })
        .collect();
    let stakes = vec![SIM_STAKE; cfg.validators];
    let mut byz = vec![false; cfg.validators];
    let mut idx: Vec<usize> = (0..cfg.validators).collect();
    for i in (1..idx.len()).rev() {
        let j = rng.random_range(0..=i);
        idx.swap(i, j);
    }
    for &i in idx.iter().take(cfg.byzantine) {
        byz[i] = true;
    }
    let weights = match sim_weight_params(cfg.validators, cfg.byzantine) {
        Some(p) => p,
        None if cfg.threshold_bps < 6667 => {
            // Demonstrating forks: keep them Byzantine; no bound holds.
            sim_weight_params(3, 0).expect("a bound")
        }
        None => {
            // Cannot keep Byzantine weight under a third: run them honest.
            byz.iter_mut().for_each(|b| *b = false);
            sim_weight_params(cfg.validators, 0).expect("a bound")
        }
    };
    let params = GenesisParams {
        fast_threshold_bps: cfg.threshold_bps,
        economic_threshold_bps: cfg.threshold_bps.max(8000),
        epoch_length: cfg.epoch_length,
        weights,
        evidence: Default::default(),
    };
    let doc = GenesisDoc {
        chain_id: "bizra-sim".into(),
        genesis_time_ms: 1_700_000_000_000,
        params,
        validators: signers
            .iter()
            .zip(&stakes)
            .enumerate()
            .map(|(i, (s, &stake))| GenesisValidator {
                id: s.id().to_string(),
                stake,
                name: format!("v{i}"),
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&doc).expect("genesis json");
    let g = Genesis::from_bytes_with_floor(&bytes, cfg.threshold_bps.min(6667)).expect("sim genesis is valid");
    (Arc::new(g), signers, byz)
}

/// The height by which the fate of evidence against votes at height
/// `vote_height` is final: the last height that may include it (ADR 0014 age
/// rule: `max_age_blocks` after it, and no more than `max_age_epochs` epochs
/// later), rounded up to its epoch boundary, where commitment turns into
/// jail. An equivocator whose evidence an honest node held at `vote_height`
/// is judged when every honest node finalized this height: by then the
/// evidence was committed and its validator jailed, or it can never be. With
/// the defaults (2 epochs, 1000 blocks) and epoch length `L` that is at most
/// `k = 3L` heights after the offence (`k = L * (max_age_epochs + 1)`).
pub fn judged_by(p: &bizra_consensus::evidence::EvidenceParams, epoch_length: u64, vote_height: u64) -> u64 {
    let l = epoch_length.max(1);
    let by_epochs = l * (bizra_consensus::types::epoch_of(vote_height, l) + p.max_age_epochs + 1);
    let last = by_epochs.min(vote_height.saturating_add(p.max_age_blocks));
    last.div_ceil(l) * l
}

/// Runs one seed.
pub fn run(cfg: &SimConfig) -> SimReport {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let (genesis, signers, byz) = make_genesis(cfg, &mut rng);
    let faults = NetFaults::random(&mut rng, cfg.validators);
    let timeouts = Timeouts {
        propose_ms: 300,
        prevote_ms: 200,
        precommit_ms: 200,
        delta_ms: 100,
        commit_ms: 0,
    };
    let behaviors: Vec<Behavior> = byz
        .iter()
        .map(|&b| {
            if b {
                Behavior::random(&mut rng)
            } else {
                Behavior::Honest
            }
        })
        .collect();
    let nodes: Vec<SimNode> = signers
        .into_iter()
        .zip(&behaviors)
        .map(|(s, b)| SimNode::new(genesis.clone(), s, *b, timeouts))
        .collect();
    let mut world = net::World::new(cfg, genesis.clone(), nodes, faults, rng);
    world.run();

    // ---- check the properties ----
    let mut report = SimReport {
        seed: cfg.seed,
        ..Default::default()
    };
    let mut canonical: BTreeMap<u64, (Hash, usize)> = BTreeMap::new();
    let mut weights_seen: BTreeMap<u64, Vec<u128>> = BTreeMap::new();
    // The full epoch weights (jail terms included) after each height. Agreement
    // and deterministic `apply` imply they are equal; checked anyway.
    let mut weights_at: BTreeMap<u64, (EpochWeights, usize)> = BTreeMap::new();
    // Committed offences, with the height of the block that carried each.
    let mut committed: BTreeMap<EvidenceKey, u64> = BTreeMap::new();
    // Per honest node, the validators jailed in some epoch of its chain.
    let mut jailed_on: Vec<BTreeSet<usize>> = Vec::new();
    let (ev_params, epoch_length) = (&genesis.params().evidence, genesis.params().epoch_length.max(1));
    for (i, n) in world.nodes.iter().enumerate() {
        if !n.behavior.is_honest() {
            continue;
        }
        let mut state = ChainState::genesis(&genesis);
        let mut jailed_here = BTreeSet::new();
        let mut first_jailed: BTreeMap<usize, u64> = BTreeMap::new();
        // (validator, boundary height) of evidence committed and not yet at its boundary.
        let mut to_jail: Vec<(usize, u64)> = Vec::new();
        for d in &n.durable.decided {
            // Agreement.
            match canonical.get(&d.height) {
                Some((h, j)) if *h != d.hash => {
                    report.safety_violations += 1;
                    report.notes.push(format!(
                        "height {}: node {i} finalized {} but node {j} finalized {}",
                        d.height,
                        hex::encode(&d.hash[..4]),
                        hex::encode(&h[..4])
                    ));
                }
                Some(_) => {}
                None => {
                    canonical.insert(d.height, (d.hash, i));
                }
            }
            // Validity, re-checked independently of the driver.
            let ok = state.validate_block(&genesis, &d.block).ok() == Some(d.hash)
                && certificate::verify(
                    genesis.chain_id(),
                    &genesis.members,
                    &state.weights,
                    genesis.params().fast_threshold_bps,
                    &d.commit,
                    Some((d.height, d.hash)),
                )
                .is_ok();
            if !ok {
                report.validity_violations += 1;
                report
                    .notes
                    .push(format!("node {i} height {}: invalid block or commit", d.height));
                break;
            }
            for e in &d.block.evidence {
                let Ok(sh) = evidence::check_shape(genesis.chain_id(), &genesis.members, e) else {
                    continue; // validate_block above refused it already
                };
                let v = sh.validator();
                committed.entry(sh.key).or_insert(d.height);
                let first = report.first_committed.entry(v).or_insert(d.height);
                *first = (*first).min(d.height);
                if !byz[v] {
                    report.safety_violations += 1;
                    report.notes.push(format!(
                        "height {}: committed evidence names honest validator {v}",
                        d.height
                    ));
                }
                to_jail.push((v, d.height.div_ceil(epoch_length) * epoch_length));
            }
            state.apply(&genesis, &d.block, d.hash);
            match weights_at.get(&d.height) {
                Some((w, j)) if *w != state.weights => {
                    report.safety_violations += 1;
                    report.notes.push(format!(
                        "height {}: node {i} and node {j} hold different weights or jail terms",
                        d.height
                    ));
                }
                Some(_) => {}
                None => {
                    weights_at.insert(d.height, (state.weights.clone(), i));
                }
            }
            for (v, &is_byz) in byz.iter().enumerate() {
                if state.weights.is_jailed(v) {
                    jailed_here.insert(v);
                    first_jailed.entry(v).or_insert(state.weights.epoch);
                    if state.weights.weight(v) != 0 {
                        report.safety_violations += 1;
                        report.notes.push(format!(
                            "height {}: node {i}: jailed validator {v} has weight",
                            d.height
                        ));
                    }
                }
                if !is_byz && state.weights.jailed_until(v) != 0 {
                    report.safety_violations += 1;
                    report.notes.push(format!(
                        "height {}: node {i} jails honest validator {v} (until epoch {})",
                        d.height,
                        state.weights.jailed_until(v)
                    ));
                }
            }
            // Evidence committed in an epoch jails its validator from the next one.
            if ev_params.jail_epochs > 0 {
                for &(v, _) in to_jail.iter().filter(|(_, b)| *b == d.height) {
                    if !state.weights.is_jailed(v) {
                        report.safety_violations += 1;
                        report.notes.push(format!(
                            "height {}: node {i} did not jail validator {v} at the boundary after its evidence",
                            d.height
                        ));
                    }
                }
            }
            to_jail.retain(|(_, b)| *b > d.height);
            // All honest nodes derive identical weights per epoch.
            let e = state.weights.epoch;
            match weights_seen.get(&e) {
                Some(w) if *w != state.weights.weights => {
                    report.safety_violations += 1;
                    report
                        .notes
                        .push(format!("epoch {e}: node {i} derived different weights"));
                }
                Some(_) => {}
                None => {
                    weights_seen.insert(e, state.weights.weights.clone());
                }
            }
        }
        jailed_on.push(jailed_here);
        report.jailed_from.insert(i, first_jailed);
    }
    let honest_heights: Vec<u64> = world
        .nodes
        .iter()
        .filter(|n| n.behavior.is_honest())
        .map(|n| n.durable.decided.len() as u64)
        .collect();
    report.min_honest_height = honest_heights.iter().copied().min().unwrap_or(0);
    report.liveness_failure = report.min_honest_height < cfg.heights && cfg.threshold_bps >= 6667;
    if report.liveness_failure {
        report.notes.push(format!(
            "liveness: honest heights {honest_heights:?} < target {}",
            cfg.heights
        ));
    }
    // The coalition bound: the genesis promises that validators holding less
    // than `coalition_bound_bps` of the stake-derived weight never hold a
    // third of the weight, whatever they attest.
    let wp = &genesis.params().weights;
    let stake_w: Vec<u128> = genesis
        .members
        .iter()
        .map(|m| weights::stake_weight(wp, m.stake))
        .collect();
    let s_total: u128 = stake_w.iter().sum();
    let s_byz: u128 = (0..stake_w.len()).filter(|&i| byz[i]).map(|i| stake_w[i]).sum();
    let premise = s_byz > 0 && s_byz * 10_000 < wp.coalition_bound_bps as u128 * s_total;
    for (e, w) in &weights_seen {
        let byz_w: u128 = (0..w.len()).filter(|&i| byz[i]).map(|i| w[i]).sum();
        let total: u128 = w.iter().sum();
        let share = bizra_consensus::quorum::share_bps(byz_w, total);
        report.max_byzantine_share_bps = report.max_byzantine_share_bps.max(share);
        if premise && byz_w * 3 >= total {
            report.safety_violations += 1;
            report.notes.push(format!(
                "epoch {e}: Byzantine weight {byz_w} of {total} is not below a third"
            ));
        }
    }
    // Accountability: every Byzantine equivocator whose evidence an honest node
    // held early enough to be judged by the end is jailed on every honest node,
    // or reported as missed.
    for (&v, &h) in &world.evidence_held {
        if !byz[v] {
            continue; // an honest offender is already a violation (net/pools.rs)
        }
        report.equivocators_seen += 1;
        if report.min_honest_height < judged_by(ev_params, epoch_length, h) {
            continue;
        }
        report.equivocators += 1;
        let committed_at: Vec<u64> = committed
            .iter()
            .filter(|(k, _)| k.validator as usize == v)
            .map(|(_, at)| *at)
            .collect();
        if !jailed_on.is_empty() && jailed_on.iter().all(|s| s.contains(&v)) {
            report.equivocators_jailed += 1;
        } else if !committed_at.is_empty() {
            // Committed, its boundary not yet reached by every honest node (a
            // commit whose boundary was reached and did not jail is a
            // violation above).
            report.equivocators_committed += 1;
        } else {
            report.equivocators_missed += 1;
            report.notes.push(format!(
                "equivocator {v}: evidence held from height {h}, never committed (reported, not a violation)"
            ));
        }
    }
    report.evidence_committed = committed.len() as u64;
    report.byzantine = (0..byz.len()).filter(|&i| byz[i]).collect();
    report.jailed = jailed_on.iter().flatten().collect::<BTreeSet<_>>().len() as u64;
    report.safety_violations += world.evidence_violations;
    report.notes.extend(world.notes.iter().cloned());
    let ws: Vec<&Vec<u128>> = weights_seen.values().collect();
    report.weight_changes = ws.windows(2).filter(|w| w[0] != w[1]).count() as u64;
    report.max_round = world.max_round;
    report.decisions = world.decisions;
    report.messages = world.messages;
    report.evidence = world.evidence;
    report.crashes = world.crashes;
    report.sim_time_ms = world.now;
    report.digest = world.digest();
    report
}
