//! What the measured processes and the machine cost: peak RSS and CPU
//! time of node processes (from /proc, through `bizra-testnet`'s
//! supervisor), the machine's busy share over a window, and the PID behind a
//! listening port.

use super::round3;
use bizra_testnet::supervisor::cpu_secs as proc_cpu_secs;
pub use bizra_testnet::supervisor::vm_hwm_kib;
use serde_json::{json, Value};
use std::time::Duration;

/// Peak resident set (VmHWM, KiB) of this process.
pub fn self_hwm_kib() -> Option<u64> {
    vm_hwm_kib(std::process::id())
}

/// (busy, total) jiffies of the whole machine, from /proc/stat.
fn machine_jiffies() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = s
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// CPU accounting over a window: the machine's busy share and the CPU
/// seconds used by given processes, so a reader can tell a run on a busy
/// machine from a slow node.
pub struct CpuWindow {
    machine: Option<(u64, u64)>,
    procs: Vec<Option<f64>>,
    pids: Vec<Option<u32>>,
}

pub struct CpuUsage {
    /// Busy share of all cores, 0..1.
    pub machine_busy: Option<f64>,
    /// CPU seconds used by each process in the window.
    pub proc_secs: Vec<Option<f64>>,
    pub cores: usize,
}

impl CpuWindow {
    pub fn start(pids: Vec<Option<u32>>) -> CpuWindow {
        let procs = pids.iter().map(|p| p.and_then(proc_cpu_secs)).collect();
        CpuWindow {
            machine: machine_jiffies(),
            procs,
            pids,
        }
    }

    pub fn stop(&self) -> CpuUsage {
        let machine_busy = match (self.machine, machine_jiffies()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1 - b0) as f64 / (t1 - t0) as f64),
            _ => None,
        };
        let proc_secs = self
            .pids
            .iter()
            .zip(&self.procs)
            .map(|(p, before)| Some(p.and_then(proc_cpu_secs)? - (*before)?))
            .collect();
        CpuUsage {
            machine_busy,
            proc_secs,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

impl CpuUsage {
    pub fn total_proc_secs(&self) -> f64 {
        self.proc_secs.iter().flatten().sum()
    }

    /// "machine busy 97% of 2 cores; our processes 1.52 cores, others 0.42".
    pub fn describe(&self, window: Duration) -> String {
        let ours = self.total_proc_secs() / window.as_secs_f64();
        match self.machine_busy {
            Some(b) => format!(
                "machine busy {:.0}% of {} cores: measured processes {:.2} cores, everything else {:.2} cores",
                b * 100.0,
                self.cores,
                ours,
                (b * self.cores as f64 - ours).max(0.0)
            ),
            None => format!("measured processes {ours:.2} cores"),
        }
    }

    pub fn json(&self, window: Duration) -> Value {
        json!({
            "cores": self.cores,
            "machine_busy": self.machine_busy.map(round3),
            "measured_processes_cores": round3(self.total_proc_secs() / window.as_secs_f64()),
            "proc_cpu_s": self.proc_secs.iter().map(|x| x.map(round3)).collect::<Vec<_>>(),
            "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_string()),
        })
    }
}

/// The PID of the process listening on 127.0.0.1:`port` (TCP), found through
/// /proc/net/tcp and the socket inodes in /proc/*/fd. Needs permission to
/// read the other process's fds (same user or root).
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue; // not LISTEN
            }
            let Some((_, p)) = f[1].rsplit_once(':') else { continue };
            if u16::from_str_radix(p, 16).ok() == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}
