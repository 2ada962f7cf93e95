//! Process-wide allocator settings, applied before any thread starts.

/// Makes every thread allocate from glibc's main arena.
///
/// glibc gives each thread that allocates its own arena (up to 8 per core),
/// and freed memory stays in the arena it came from. A node has ~9 threads
/// (the engine's, sled's I/O pool, the log flusher, blocking tasks), so the
/// same working set was spread over ~9 heaps with their own fragmentation.
/// One arena measured 1-1.5 MiB less peak RSS per node among 100 at the same
/// CPU per height (session 15, docs/BENCHMARKS.md): the engine runs on one
/// thread (ADR 0012), so the arena's lock is rarely contended.
///
/// An operator's own `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` wins. Elsewhere
/// than on glibc this does nothing.
pub fn limit_malloc_arenas() {
    let set_by_operator =
        std::env::var_os("MALLOC_ARENA_MAX").is_some() || std::env::var_os("GLIBC_TUNABLES").is_some();
    if !set_by_operator {
        bizra_testnet::supervisor::set_malloc_arena_max(1);
    }
}
