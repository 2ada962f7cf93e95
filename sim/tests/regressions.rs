//! Seeds that once stalled or forked, kept as cheap regression cases (each
//! runs in well under a second in release, a few seconds in debug).

use bizra_sim::{run, SimConfig};

fn check(seed: u64, validators: usize, byzantine: usize) {
    let cfg = SimConfig {
        seed,
        validators,
        byzantine,
        ..SimConfig::default()
    };
    let r = run(&cfg);
    let what = format!(
        "seed {seed} ({validators} validators, {byzantine} Byzantine): {:?}",
        r.notes
    );
    assert_eq!(r.safety_violations, 0, "{what}");
    assert_eq!(r.validity_violations, 0, "{what}");
    assert!(!r.liveness_failure, "{what}");
    assert!(r.min_honest_height >= cfg.heights, "{what}");
}

/// 4 validators, 1 Byzantine. 101888: an equivocator's third prevote hid the
/// polka a locked validator re-proposed (vote keeper's two-value cap). 104:
/// validators at different adaptive timeout scales left rounds at different
/// times, and the slow ones' proposals always came too late.
#[test]
fn four_validators_one_byzantine() {
    for seed in [104, 101888, 102947, 103295, 104473] {
        check(seed, 4, 1);
    }
}

/// 7 validators, 2 Byzantine. 201735: validators ahead by one round with at
/// most a third of the weight never re-sent their nil votes of the round the
/// others were stuck in (driver re-send gap).
#[test]
fn seven_validators_two_byzantine() {
    for seed in [200331, 200630, 201735, 202004] {
        check(seed, 7, 2);
    }
}

/// Issue 15: an equivocator's evidence is committed and it is jailed (weight
/// 0) on every honest node from the same epoch, the one after the epoch of
/// the block that first carried its evidence; nobody else is jailed, and the
/// run still reaches the target height. Seed 3: validator 1 equivocates as a
/// proposer and double votes; seed 0: validator 2 double votes.
#[test]
fn equivocator_evidence_is_committed_and_it_is_jailed_everywhere() {
    for (seed, offender) in [(3u64, 1usize), (0, 2)] {
        let cfg = SimConfig {
            seed,
            ..SimConfig::default()
        };
        let r = run(&cfg);
        let what = format!("seed {seed}: {:?}", r.notes);
        assert_eq!(r.safety_violations, 0, "{what}");
        assert_eq!(r.validity_violations, 0, "{what}");
        assert!(!r.liveness_failure && r.min_honest_height >= cfg.heights, "{what}");
        assert_eq!(r.byzantine, vec![offender], "{what}");
        assert!(r.evidence_committed > 0, "{what}");
        let committed_at = r.first_committed[&offender];
        assert_eq!(r.first_committed.keys().copied().collect::<Vec<_>>(), vec![offender]);
        let epoch = bizra_consensus::types::epoch_of(committed_at, cfg.epoch_length) + 1;
        assert_eq!(r.jailed_from.len(), cfg.validators - 1, "one entry per honest node");
        for (node, jailed) in &r.jailed_from {
            assert_eq!(
                jailed.iter().map(|(v, e)| (*v, *e)).collect::<Vec<_>>(),
                vec![(offender, epoch)],
                "seed {seed}: node {node}"
            );
        }
        assert_eq!((r.equivocators, r.equivocators_jailed), (1, 1), "{what}");
        assert_eq!(r.jailed, 1);
    }
}
