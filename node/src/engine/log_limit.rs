//! Rate limits for warnings that outside input can trigger (issue 14, D8).
//!
//! An equivocating validator or a rogue peer must not be able to fill the
//! operator's disk through our logs: each kind of warning is written at most
//! [`PER_WINDOW`] times per [`WINDOW`]; the rest are counted, and the count is
//! reported with the next warning of that kind that is written. The metrics
//! (which count every event) stay exact.
//!
//! Warnings raised inside other crates (libp2p above all) get the same
//! budget per call site from [`ForeignWarnings`], a `tracing` filter: a peer
//! can make gossipsub warn once per message (an invalid message when peer
//! scores are off, a GRAFT from an explicit peer). What it suppresses is
//! reported once per window by the node's status tick
//! ([`take_foreign_suppressed`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::{subscriber::Interest, Level, Metadata};
use tracing_subscriber::layer::{Context, Filter};

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

/// The `tracing` filter that gives each call site of a warning or error
/// outside bizra's own crates [`PER_WINDOW`] lines per [`WINDOW`] (see the
/// module docs). Clones share one budget.
#[derive(Clone, Default)]
pub struct ForeignWarnings {
    inner: Arc<Mutex<Foreign>>,
}

#[derive(Default)]
struct Foreign {
    limiter: LogLimiter,
    /// Suppressed lines per call site (`event file:line`) since the last
    /// report, with the call site's target.
    suppressed: BTreeMap<&'static str, (String, u64)>,
    last_report: Option<Instant>,
}

/// Lines of one call site of another crate that [`ForeignWarnings`] did not
/// write.
#[derive(Debug, PartialEq, Eq)]
pub struct Suppressed {
    /// The event's target (its module path), e.g. `libp2p_gossipsub::behaviour`.
    pub target: String,
    /// `event FILE:LINE`.
    pub callsite: &'static str,
    /// Lines not written since the previous report.
    pub count: u64,
}

/// Warnings and errors whose target is not one of bizra's crates.
fn is_foreign_warning(meta: &Metadata<'_>) -> bool {
    meta.is_event() && *meta.level() <= Level::WARN && !meta.target().starts_with("bizra")
}

impl ForeignWarnings {
    fn allow(&self, meta: &Metadata<'_>, now: Instant) -> bool {
        let mut f = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if f.limiter.allow(meta.name(), now).is_some() {
            return true;
        }
        f.suppressed
            .entry(meta.name())
            .or_insert_with(|| (meta.target().to_string(), 0))
            .1 += 1;
        false
    }

    /// What was suppressed since the last report, at most once per
    /// [`WINDOW`] (empty in between), so the report itself stays bounded.
    pub fn take_suppressed(&self, now: Instant) -> Vec<Suppressed> {
        let mut f = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if f.suppressed.is_empty() || f.last_report.is_some_and(|t| now.duration_since(t) < WINDOW) {
            return Vec::new();
        }
        f.last_report = Some(now);
        std::mem::take(&mut f.suppressed)
            .into_iter()
            .map(|(callsite, (target, count))| Suppressed {
                target,
                callsite,
                count,
            })
            .collect()
    }
}

impl<S> Filter<S> for ForeignWarnings {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        !is_foreign_warning(meta) || self.allow(meta, Instant::now())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Asked at every event of a limited call site; never again for the
        // others.
        if is_foreign_warning(meta) {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }
}

static FOREIGN: OnceLock<ForeignWarnings> = OnceLock::new();

/// The filter the process's logging uses (one per process, made on first
/// use).
pub fn foreign_warnings() -> ForeignWarnings {
    FOREIGN.get_or_init(ForeignWarnings::default).clone()
}

/// What the process's [`foreign_warnings`] filter suppressed, at most once
/// per [`WINDOW`].
pub fn take_foreign_suppressed() -> Vec<Suppressed> {
    FOREIGN
        .get()
        .map(|f| f.take_suppressed(Instant::now()))
        .unwrap_or_default()
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

    /// A writer that keeps what the fmt layer writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn another_crates_warning_storm_is_written_ten_times_and_ours_in_full() {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;
        let out = Captured::default();
        let filter = ForeignWarnings::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .with_filter(filter.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..500 {
                tracing::warn!(target: "libp2p_gossipsub::behaviour", i, "Invalid message from peer");
                tracing::error!(target: "yamux", i, "another call site");
                tracing::info!(target: "libp2p_swarm", i, "not a warning");
                tracing::warn!(target: "bizra_node::engine", i, "our own");
            }
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
        assert_eq!(count("Invalid message from peer"), PER_WINDOW as usize);
        assert_eq!(count("another call site"), PER_WINDOW as usize);
        assert_eq!(count("not a warning"), 500);
        assert_eq!(count("our own"), 500);

        let now = Instant::now();
        let report = filter.take_suppressed(now);
        assert_eq!(report.len(), 2, "{report:?}");
        assert!(
            report.iter().all(|s| s.count == 500 - u64::from(PER_WINDOW)),
            "{report:?}"
        );
        let targets: Vec<&str> = report.iter().map(|s| s.target.as_str()).collect();
        assert!(targets.contains(&"libp2p_gossipsub::behaviour") && targets.contains(&"yamux"));
        assert!(report.iter().all(|s| s.callsite.contains("log_limit.rs")), "{report:?}");
        // Taken once: a second take finds nothing, now or a window later.
        assert!(filter.take_suppressed(now).is_empty());
        assert!(filter.take_suppressed(now + WINDOW).is_empty());
    }
}
