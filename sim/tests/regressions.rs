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
