//! The quorum rule (CONTRACT section 3), in one place.
//!
//! A set of distinct validators holding `signed` of `total` weight is a quorum
//! when `signed * 10000 >= total * threshold_bps`, summed in u128. Genesis sets
//! `fast_threshold_bps` (default 6667); anything at or below 6666 is refused
//! at genesis load because below two thirds two quorums need not intersect in
//! an honest validator. `bizra-sim --threshold-bps` may go lower on purpose, to
//! show that the safety checker catches the resulting forks.

/// Smallest threshold a genesis may set.
pub const MIN_SAFE_THRESHOLD_BPS: u32 = 6667;
pub const DEFAULT_FAST_THRESHOLD_BPS: u32 = 6667;
pub const DEFAULT_ECONOMIC_THRESHOLD_BPS: u32 = 8000;

/// `signed * 10000 >= total * threshold_bps`.
pub fn reaches(signed: u128, total: u128, threshold_bps: u32) -> bool {
    signed.saturating_mul(10_000) >= total.saturating_mul(threshold_bps as u128)
}

/// More than one third of the weight: at least one honest validator is among
/// the signers when Byzantine weight is below one third. Used for round skips.
pub fn exceeds_one_third(signed: u128, total: u128) -> bool {
    signed.saturating_mul(3) > total
}

/// Share of `signed` in `total`, in basis points, rounded down.
pub fn share_bps(signed: u128, total: u128) -> u32 {
    if total == 0 {
        return 0;
    }
    (signed.saturating_mul(10_000) / total).min(10_000) as u32
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
