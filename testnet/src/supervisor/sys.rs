//! The only `unsafe` code of the workspace's tooling: the three libc calls
//! the supervisor needs (send a signal to a PID, ask the kernel to SIGTERM a
//! child when its parent dies, the clock tick rate of /proc CPU times), and
//! glibc's `mallopt` for the arena limit and the mmap and trim thresholds
//! every `bizra` process sets at start (`bizra_cli::memory`). Each call is a
//! plain library call on values we own.

#![allow(unsafe_code)]

use std::process::Command;

/// A signal the supervisor sends to a node process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: a clean stop.
    Term,
    /// SIGKILL: no chance to flush anything.
    Kill,
    /// SIGSTOP: the process is paused (a partition of one node).
    Stop,
    /// SIGCONT: a paused process runs again.
    Cont,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        }
    }
}

/// `kill(2)`: sends `sig` to `pid`. The caller only names a child it spawned
/// and has not reaped, so the PID cannot belong to another process.
pub(super) fn send(pid: u32, sig: Signal) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig.raw());
    }
}

/// Makes the spawned process get SIGTERM when the spawning thread dies
/// (Linux `PR_SET_PDEATHSIG`): a killed devnet or bench leaves no node behind.
pub(super) fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the child between fork and exec, where
        // only async-signal-safe calls are allowed; prctl(2) is one.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Clock ticks per second, the unit of CPU times in /proc/PID/stat.
pub(super) fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf(3) has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// Caps glibc's malloc arenas at `max` (`M_ARENA_MAX`); see
/// `bizra_cli::memory::tune_malloc` for why. Call it before any
/// thread starts. Does nothing off glibc.
pub fn set_malloc_arena_max(max: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter from a plain integer.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, max);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = max;
}

/// Fixes glibc's mmap and trim thresholds at `bytes` (`M_MMAP_THRESHOLD`,
/// `M_TRIM_THRESHOLD`); see `bizra_cli::memory::tune_malloc` for
/// why. Setting either turns off glibc's dynamic raising of both. Call it
/// before any thread starts. Does nothing off glibc.
pub fn set_malloc_thresholds(bytes: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter from a plain integer.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
        libc::mallopt(libc::M_TRIM_THRESHOLD, bytes);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
}
