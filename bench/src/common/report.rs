//! The output of a bench: goals met or missed, the printed table, peak RSS
//! rows, the machine and the JSON record.

use crate::{failed, usage, BenchError};
use serde_json::{json, Value};
use std::path::Path;

/// One goal of the issue: met or missed, with the measured value and ratio.
pub struct Goal {
    pub name: String,
    /// e.g. "<= 10 ms".
    pub target: String,
    pub measured: String,
    /// measured / target for "at least" goals, target / measured for "at most"
    /// goals: >= 1 means met in both cases.
    pub ratio: f64,
    pub met: bool,
}

impl Goal {
    pub fn at_least(name: &str, measured: f64, target: f64, unit: &str) -> Goal {
        let ratio = if target > 0.0 { measured / target } else { f64::INFINITY };
        Goal {
            name: name.into(),
            target: format!(">= {} {unit}", fmt_num(target)),
            measured: format!("{} {unit}", fmt_num(measured)),
            ratio,
            met: measured >= target,
        }
    }

    pub fn at_most(name: &str, measured: f64, target: f64, unit: &str) -> Goal {
        let ratio = if measured > 0.0 {
            target / measured
        } else {
            f64::INFINITY
        };
        Goal {
            name: name.into(),
            target: format!("<= {} {unit}", fmt_num(target)),
            measured: format!("{} {unit}", fmt_num(measured)),
            ratio,
            met: measured <= target,
        }
    }

    pub fn json(&self) -> Value {
        json!({"name": self.name, "target": self.target, "measured": self.measured,
               "ratio": round3(self.ratio), "met": self.met})
    }
}

pub fn fmt_num(x: f64) -> String {
    if x.is_infinite() {
        "inf".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

pub fn round3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        -1.0
    }
}

/// Prints `title`, then aligned `key  value` rows, then the goals.
pub fn print_report(title: &str, rows: &[(String, String)], goals: &[Goal]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0).max(20);
    println!();
    println!("{title}");
    println!("{}", "-".repeat(title.len()));
    for (k, v) in rows {
        println!("  {k:<width$}  {v}");
    }
    if !goals.is_empty() {
        println!();
        println!(
            "  {:<40} {:<20} {:<22} {:>7}  verdict",
            "goal", "target", "measured", "ratio"
        );
        for g in goals {
            println!(
                "  {:<40} {:<20} {:<22} {:>6.2}x  {}",
                g.name,
                g.target,
                g.measured,
                g.ratio,
                if g.met { "met" } else { "MISSED" }
            );
        }
    }
}

pub fn rss_rows(rows: &mut Vec<(String, String)>, label: &str, rss: &[Option<u64>]) {
    for (k, r) in rss.iter().enumerate() {
        rows.push((
            format!("{label}{k} peak RSS (VmHWM)"),
            r.map(|kib| format!("{:.1} MiB", kib as f64 / 1024.0))
                .unwrap_or_else(|| "n/a".into()),
        ));
    }
}

pub fn rss_json(rss: &[Option<u64>]) -> Value {
    Value::Array(rss.iter().map(|r| r.map(|v| json!(v)).unwrap_or(Value::Null)).collect())
}

/// The machine, for the JSON record.
pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .map(|v| v.trim().trim_end_matches("kB").trim().to_string())
            })
        })
        .and_then(|v| v.parse::<u64>().ok());
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu": cpu,
        "mem_total_kib": mem_kib,
        "bizra_version": env!("CARGO_PKG_VERSION"),
    })
}

/// Writes `value` (pretty JSON) to `path` if given.
pub fn write_json(path: Option<&Path>, value: &Value) -> Result<(), BenchError> {
    let Some(p) = path else { return Ok(()) };
    let text = serde_json::to_string_pretty(value).map_err(|e| failed(format!("JSON: {e}")))?;
    std::fs::write(p, text + "\n").map_err(|e| usage(format!("--json {}: {e}", p.display())))?;
    println!("\nwrote {}", p.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_report_ratio_and_verdict() {
        let g = Goal::at_most("p50", 20.0, 10.0, "ms");
        assert!(!g.met && (g.ratio - 0.5).abs() < 1e-12);
        let g = Goal::at_least("rps", 0.9, 0.8, "x");
        assert!(g.met && g.ratio > 1.0);
    }
}
