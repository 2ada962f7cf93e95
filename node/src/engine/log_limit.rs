//! Rate limits for warnings that outside input can trigger (issue 14, D8).
//!
//! An equivocating validator or a rogue peer must not be able to fill the
//! operator's disk through our logs: each kind of warning is written at most
//! [`PER_WINDOW`] times per [`WINDOW`]; the rest are counted, and the count is
//! reported with the next warning of that kind that is written. The metrics
//! (which count every event) stay exact.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Warnings of one kind written per window ...
pub const PER_WINDOW: u32 = 10;
/// ... and the window.
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct LogLimiter {
    kinds: HashMap<&'static str, Budget>,
}

struct Budget {
    window_start: Instant,
    written: u32,
    suppressed: u64,
}

impl LogLimiter {
    /// Whether a warning of `kind` may be written now: `Some(n)` with the
    /// number of warnings of this kind suppressed since the last one written,
    /// or `None` (suppressed, counted).
    pub fn allow(&mut self, kind: &'static str, now: Instant) -> Option<u64> {
        let b = self.kinds.entry(kind).or_insert(Budget {
            window_start: now,
            written: 0,
            suppressed: 0,
        });
        if now.duration_since(b.window_start) >= WINDOW {
            b.window_start = now;
            b.written = 0;
        }
        if b.written >= PER_WINDOW {
            b.suppressed += 1;
            return None;
        }
        b.written += 1;
        Some(std::mem::take(&mut b.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_of_one_warning_is_written_ten_times_a_minute_and_the_rest_counted() {
        let mut l = LogLimiter::default();
        let t0 = Instant::now();
        let written = (0..10_000).filter(|_| l.allow("equivocation", t0).is_some()).count();
        assert_eq!(written, PER_WINDOW as usize);
        // Another kind has its own budget.
        assert_eq!(l.allow("bad_range", t0), Some(0));
        // The next window reports what was suppressed.
        assert_eq!(l.allow("equivocation", t0 + WINDOW), Some(10_000 - PER_WINDOW as u64));
        assert_eq!(l.allow("equivocation", t0 + WINDOW), Some(0));
    }
}
