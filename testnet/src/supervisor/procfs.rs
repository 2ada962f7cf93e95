//! What /proc says about a process: resident memory (current and peak) and
//! CPU time used. Linux only; `None` where /proc has no answer.

/// A `/proc/PID/status` field in KiB, e.g. `status_kib(pid, "VmHWM")`.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// VmHWM (peak resident set, KiB) of a process.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at state (field 3).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / super::sys::clock_ticks_per_sec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        // RSS first: the peak read after it can only be as high or higher.
        let rss = status_kib(me, "VmRSS").expect("VmRSS");
        let hwm = vm_hwm_kib(me).expect("VmHWM");
        assert!(hwm >= rss && rss > 0, "hwm {hwm} rss {rss}");
        assert!(cpu_secs(me).expect("cpu") >= 0.0);
        assert_eq!(status_kib(me, "NoSuchField"), None);
    }
}
