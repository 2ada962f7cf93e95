//! The quorum rule (docs/PROTOCOL.md §4), in one place.
//!
//! A set of distinct validators holding `signed` of `total` weight is a quorum
//! when `signed * 10000 >= total * threshold_bps`, summed in u128. Genesis sets
//! `fast_threshold_bps` (default 6667); anything at or below 6666 is refused
//! at genesis load because below two thirds two quorums need not intersect in
//! an honest validator. `bizra-sim --threshold-bps` may go lower on purpose, to
//! show that the safety checker catches the resulting forks.
//!
//! Invariant: genesis refuses weights whose worst-case total times 10000 does
//! not fit in u128 (`weights::check_worst_case_total`), and `signed` is a sum of
//! distinct validators' weights, so `signed <= total` and `total * 10000` fit.
//! These functions do not rely on it: [`reaches`] and [`exceeds_one_third`]
//! are exact for every u128 input (no saturation, which could turn a huge
//! `signed < total` into a quorum), and [`share_bps`] is exact under it.

/// Smallest threshold a genesis may set.
pub const MIN_SAFE_THRESHOLD_BPS: u32 = 6667;
/// Default `fast_threshold_bps` of a genesis: the quorum for a commit certificate.
pub const DEFAULT_FAST_THRESHOLD_BPS: u32 = 6667;
/// Default `economic_threshold_bps` of a genesis: the share of precommits
/// (late ones included) at which a block is economically final
/// (docs/PROTOCOL.md §4).
pub const DEFAULT_ECONOMIC_THRESHOLD_BPS: u32 = 8000;

/// `x * m` exactly, as (high, low) 128-bit words.
fn wide_mul(x: u128, m: u32) -> (u128, u128) {
    let lo = (x as u64 as u128) * m as u128; // < 2^96
    let hi = (x >> 64) * m as u128; // < 2^96; x * m = hi * 2^64 + lo
    let (low, carry) = (hi << 64).overflowing_add(lo);
    ((hi >> 64) + carry as u128, low)
}

/// `signed * 10000 >= total * threshold_bps`, exact (in 256 bits).
pub fn reaches(signed: u128, total: u128, threshold_bps: u32) -> bool {
    wide_mul(signed, 10_000) >= wide_mul(total, threshold_bps)
}

/// More than one third of the weight: at least one honest validator is among
/// the signers when Byzantine weight is below one third. Used for round skips.
/// `signed * 3 > total`, exact: it is `signed > floor(total / 3)`.
pub fn exceeds_one_third(signed: u128, total: u128) -> bool {
    signed > total / 3
}

/// Share of `signed` in `total`, in basis points, rounded down. Exact under
/// the module invariant; beyond it (never for a valid genesis) approximate.
pub fn share_bps(signed: u128, total: u128) -> u32 {
    if total == 0 {
        return 0;
    }
    if signed >= total {
        return 10_000;
    }
    match signed.checked_mul(10_000) {
        Some(s) => (s / total) as u32,
        None => (signed / (total / 10_000)).min(10_000) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_at_two_thirds() {
        // 3 equal validators of weight 1: 2 of 3 is 6666.67 bps.
        assert!(reaches(2, 3, 6666));
        assert!(!reaches(2, 3, 6667));
        assert!(reaches(3, 3, 6667));
        // 4 validators: 3 of 4 = 7500 bps.
        assert!(reaches(3, 4, 6667));
        assert!(!reaches(2, 4, 6667));
        assert!(reaches(6667, 10_000, 6667));
        assert!(!reaches(6666, 10_000, 6667));
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let total = u128::MAX / 20_000;
        assert!(reaches(total, total, 10_000));
        assert!(!reaches(total / 2, total, 6667));
        // Beyond the genesis invariant the rule stays exact: saturating
        // arithmetic called this a quorum.
        assert!(!reaches(u128::MAX - 1, u128::MAX, 10_000));
        assert!(reaches(u128::MAX, u128::MAX, 10_000));
        let t = u128::MAX;
        let two_thirds = t / 3 * 2 + 1; // just above 2/3 (t = 3k exactly: 2k + 1)
        assert!(reaches(two_thirds, t, 6666));
        assert!(!reaches(t / 10_000 * 6666, t, 6667));
        assert!(exceeds_one_third(t / 3 + 1, t) && !exceeds_one_third(t / 3, t));
        // Outside the invariant share_bps (display only) is approximate.
        assert!((4999..=5000).contains(&share_bps(u128::MAX / 2, u128::MAX)));
        assert_eq!(share_bps(u128::MAX, u128::MAX), 10_000);
    }

    #[test]
    fn wide_mul_is_exact() {
        assert_eq!(wide_mul(u128::MAX, 1), (0, u128::MAX));
        assert_eq!(wide_mul(u128::MAX, 2), (1, u128::MAX - 1));
        assert_eq!(wide_mul(1 << 127, 10_000), (5_000, 0));
        assert_eq!(wide_mul(123_456_789, 10_000), (0, 1_234_567_890_000));
        // reaches agrees with plain arithmetic where that does not overflow.
        for (s, t, b) in [
            (2u128, 3u128, 6667u32),
            (3, 4, 6667),
            (6667, 10_000, 6667),
            (6666, 10_000, 6667),
        ] {
            assert_eq!(reaches(s, t, b), s * 10_000 >= t * b as u128);
        }
    }

    #[test]
    fn one_third() {
        assert!(!exceeds_one_third(1, 3));
        assert!(exceeds_one_third(2, 4));
        assert!(exceeds_one_third(34, 100));
        assert!(!exceeds_one_third(33, 100));
        assert_eq!(share_bps(3, 4), 7500);
        assert_eq!(share_bps(1, 0), 0);
    }
}
