//! Process-wide allocator settings, applied before any thread starts.

/// glibc's mmap and trim thresholds, fixed (see [`tune_malloc`]).
pub const MALLOC_THRESHOLD_BYTES: i32 = 256 << 10;

/// Makes every thread allocate from glibc's main arena, and fixes the
/// mmap and trim thresholds at [`MALLOC_THRESHOLD_BYTES`].
///
/// **One arena.** glibc gives each thread that allocates its own arena (up
/// to 8 per core), and freed memory stays in the arena it came from. A node
/// has ~9 threads (the engine's, sled's I/O pool, the log flusher, blocking
/// tasks), so the same working set was spread over ~9 heaps with their own
/// fragmentation. One arena measured 1-1.5 MiB less peak RSS per node among
/// 100 at the same CPU per height (session 15, docs/BENCHMARKS.md): the
/// engine runs on one thread (ADR 0012), so the arena's lock is rarely
/// contended.
///
/// **Fixed thresholds.** By default glibc raises its mmap threshold to the
/// size of the largest mmapped block freed so far, and the trim threshold to
/// twice that. sled frees a 512 KiB log buffer whenever a segment fills, so
/// after the first one every allocation below ~512 KiB came from the heap,
/// and the top of the heap was given back only past ~1 MiB free. A node
/// that fell a few heights behind and caught up (future-height votes, a
/// decoded sync range) then kept those pages: +4.2 and +4.8 MiB of RssAnon
/// above the median's growth within a minute (two runs), against +2.3 and
/// +0.7 with the thresholds fixed at 256 KiB through `GLIBC_TUNABLES`, and
/// -0.4 with this function setting them (session 17, docs/BENCHMARKS.md).
///
/// An operator's own `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` wins (either
/// one leaves all of this to glibc and the operator). Elsewhere than on
/// glibc this does nothing.
pub fn tune_malloc() {
    let set_by_operator =
        std::env::var_os("MALLOC_ARENA_MAX").is_some() || std::env::var_os("GLIBC_TUNABLES").is_some();
    if !set_by_operator {
        bizra_testnet::supervisor::set_malloc_arena_max(1);
        bizra_testnet::supervisor::set_malloc_thresholds(MALLOC_THRESHOLD_BYTES);
    }
}
