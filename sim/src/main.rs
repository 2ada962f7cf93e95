//! `bizra-sim`: runs the consensus core under seeded faults and checks
//! agreement, validity, liveness and determinism.

use bizra_sim::{run, SimConfig};
use clap::Parser;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "bizra-sim",
    version,
    about = "Deterministic simulation of the bizra consensus core",
    long_about = "Runs N seeds of V validators (F of them Byzantine, with equal stake, attesting each other at full impact; the genesis coalition bound keeps their weight below one third) over a simulated network with delays, drops, duplication, reordering, healing partitions, crashes and restarts. Each seed runs twice to check determinism. Checks agreement, validity, liveness after healing and determinism; exits 1 on any violation."
)]
struct Args {
    /// Number of seeds to run (seeds FIRST..FIRST+N).
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Validators per run (1 to 10 in the deep runs; CI also runs 100 with 33
    /// Byzantine, about 20 s per seed at 3 heights).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Byzantine validators per run (equal stake; the genesis coalition bound
    /// keeps their weight below one third, checked in every epoch).
    #[arg(long, default_value_t = 1)]
    byzantine: usize,
    /// Quorum threshold in basis points. Below 6667 is allowed here only, to
    /// show that the safety checker finds forks.
    #[arg(long, default_value_t = 6667, value_parser = clap::value_parser!(u32).range(1..=10000))]
    threshold_bps: u32,
    /// Height every honest validator must finalize after the network heals.
    #[arg(long, default_value_t = 10)]
    heights: u64,
    /// Epoch length (weights are recomputed at each boundary).
    #[arg(long, default_value_t = 3)]
    epoch_length: u64,
    /// Print a line per failing seed (and per seed with -v).
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    if a.validators == 0 || a.byzantine >= a.validators.max(1) && a.byzantine > 0 {
        eprintln!("error: need at least one validator and fewer Byzantine validators than validators");
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let (mut safety, mut liveness, mut determinism_ok) = (0u64, 0u64, true);
    let (mut rounds, mut weight_changes, mut evidence, mut crashes) = (0u32, 0u64, 0u64, 0u64);
    let mut max_byz_bps = 0u32;
    // Accountability (issue 15): equivocators judged, jailed, missed; runs with any.
    let (mut seen, mut equivocators, mut jailed, mut pending, mut missed, mut committed, mut eq_runs) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for seed in a.first_seed..a.first_seed + a.seeds {
        let cfg = SimConfig {
            seed,
            validators: a.validators,
            byzantine: a.byzantine,
            threshold_bps: a.threshold_bps,
            heights: a.heights,
            epoch_length: a.epoch_length,
        };
        let r1 = run(&cfg);
        let r2 = run(&cfg);
        let det = r1.digest == r2.digest && r1 == r2;
        determinism_ok &= det;
        safety += r1.safety_violations + r1.validity_violations;
        liveness += r1.liveness_failure as u64;
        rounds = rounds.max(r1.max_round);
        weight_changes += r1.weight_changes;
        evidence += r1.evidence;
        crashes += r1.crashes;
        max_byz_bps = max_byz_bps.max(r1.max_byzantine_share_bps);
        equivocators += r1.equivocators;
        seen += r1.equivocators_seen;
        jailed += r1.equivocators_jailed;
        pending += r1.equivocators_committed;
        missed += r1.equivocators_missed;
        committed += r1.evidence_committed;
        eq_runs += (r1.equivocators > 0) as u64;
        let bad = r1.safety_violations + r1.validity_violations > 0 || r1.liveness_failure || !det;
        if a.verbose || bad {
            println!(
                "seed={seed} min_height={} max_round={} decisions={} msgs={} evidence={} committed={} equivocators={}/{} jailed={} crashes={} weight_changes={} sim_ms={} digest={} {}{}",
                r1.min_honest_height,
                r1.max_round,
                r1.decisions,
                r1.messages,
                r1.evidence,
                r1.evidence_committed,
                r1.equivocators,
                r1.equivocators_seen,
                r1.equivocators_jailed,
                r1.crashes,
                r1.weight_changes,
                r1.sim_time_ms,
                hex::encode(&r1.digest[..8]),
                if det { "" } else { "NONDETERMINISTIC " },
                r1.notes.join("; ")
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "# {:.1} seeds/s (each seed run twice), max round {rounds}, weight changes {weight_changes}, equivocation evidence {evidence}, crashes {crashes}, max Byzantine weight share {}.{:02}%",
        a.seeds as f64 / secs.max(1e-9),
        max_byz_bps / 100,
        max_byz_bps % 100
    );
    println!(
        "# accountability: {seen} equivocators caught, {equivocators} judged (in {eq_runs} runs): {jailed} jailed on every honest node, {pending} committed before the end but not yet at a boundary, {missed} missed{}; {committed} offences committed",
        if jailed == equivocators { " (every equivocator jailed)" } else { "" }
    );
    println!(
        "seeds={} heights={} safety_violations={safety} liveness_failures={liveness} determinism={}",
        a.seeds,
        a.heights,
        if determinism_ok { "ok" } else { "FAIL" }
    );
    if safety > 0 || liveness > 0 || !determinism_ok {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
