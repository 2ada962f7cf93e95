//! Prometheus metrics of a node: `GET /metrics` over plain HTTP/1.1
//! ([`scrape`], [`scrape_at`]), the text format parsed to `name{labels}` ->
//! value ([`Scrape`]), and a histogram over a window ([`HistDelta`]: the
//! difference of two scrapes, with mean and interpolated quantiles).

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /metrics` over plain HTTP/1.1 on 127.0.0.1:`port`; the body.
pub async fn scrape(port: u16) -> Option<String> {
    scrape_at("127.0.0.1", port).await
}

/// `GET /metrics` over plain HTTP/1.1 on `host`:`port` (an IPv4 literal or
/// loopback); the body, or None after 5 s.
pub async fn scrape_at(host: &str, port: u16) -> Option<String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            return None;
        }
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            Some(dechunk(body))
        } else {
            Some(body.to_string())
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fut).await.ok().flatten()
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Prometheus text, parsed to `name{labels}` -> value.
#[derive(Clone, Debug, Default)]
pub struct Scrape(pub BTreeMap<String, f64>);

impl Scrape {
    /// Parses Prometheus text: comment and blank lines are skipped, as are
    /// lines whose value is not a number; a repeated key keeps the last value.
    pub fn parse(text: &str) -> Scrape {
        let mut m = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            // The value follows the last space outside the label braces.
            let split = match line.rfind('}') {
                Some(close) => line[close..].find(' ').map(|i| close + i),
                None => line.find(' '),
            };
            let Some(at) = split else { continue };
            let (key, rest) = line.split_at(at);
            let Some(v) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            m.insert(key.to_string(), v);
        }
        Scrape(m)
    }

    /// The value of `key` (`name` or `name{labels}` exactly as scraped), 0.0 if absent.
    pub fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// Cumulative buckets `(le, count)` of histogram `name` (labels other than
    /// `le` must match `extra`, e.g. `method="GetHead"`, or be absent).
    pub fn buckets(&self, name: &str, extra: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{");
        let mut out: Vec<(f64, f64)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let labels = k.strip_prefix(&prefix)?.strip_suffix('}')?;
                let mut le = None;
                let mut others = Vec::new();
                for part in labels.split(',') {
                    match part.strip_prefix("le=") {
                        Some(x) => le = Some(x.trim_matches('"')),
                        None => others.push(part),
                    }
                }
                if others.join(",") != extra {
                    return None;
                }
                let le = match le? {
                    "+Inf" => f64::INFINITY,
                    x => x.parse().ok()?,
                };
                Some((le, *v))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// A histogram over a window: the difference of two scrapes' buckets.
#[derive(Clone, Debug, Default)]
pub struct HistDelta {
    /// Cumulative buckets `(le, count)` in ascending `le`, counts of the window.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of the observed values in the window (the histogram's unit).
    pub sum: f64,
    /// Number of observations in the window.
    pub count: f64,
}

impl HistDelta {
    /// Histogram `name` (its unlabelled series only) of `after` minus that of
    /// `before`; a bucket missing from `before` counts as 0.
    pub fn between(before: &Scrape, after: &Scrape, name: &str) -> HistDelta {
        let b0 = before.buckets(name, "");
        let b1 = after.buckets(name, "");
        let buckets = b1
            .iter()
            .map(|(le, c)| (*le, c - b0.iter().find(|(l, _)| l == le).map(|x| x.1).unwrap_or(0.0)))
            .collect();
        HistDelta {
            buckets,
            sum: after.get(&format!("{name}_sum")) - before.get(&format!("{name}_sum")),
            count: after.get(&format!("{name}_count")) - before.get(&format!("{name}_count")),
        }
    }

    /// Adds `o` into `self` (e.g. the same histogram of several nodes); buckets
    /// are added pairwise by position, so both must have the same bounds.
    pub fn add(&mut self, o: &HistDelta) {
        if self.buckets.is_empty() {
            self.buckets = o.buckets.clone();
        } else {
            for (b, ob) in self.buckets.iter_mut().zip(&o.buckets) {
                b.1 += ob.1;
            }
        }
        self.sum += o.sum;
        self.count += o.count;
    }

    /// Mean observed value (`sum / count`), None for an empty window.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// Quantile by linear interpolation inside the bucket (as Prometheus'
    /// `histogram_quantile`): only as precise as the bucket bounds.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut prev = (0.0, 0.0);
        for &(le, c) in &self.buckets {
            if c >= rank {
                if le.is_infinite() {
                    return Some(prev.0);
                }
                let width = c - prev.1;
                let frac = if width > 0.0 { (rank - prev.1) / width } else { 1.0 };
                return Some(prev.0 + (le - prev.0) * frac);
            }
            prev = (le, c);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
bizra_consensus_height 42\n\
bizra_attestations_total{result=\"finalized\"} 1200\n\
bizra_lat_seconds_bucket{le=\"0.001\"} 1\n\
bizra_lat_seconds_bucket{le=\"0.01\"} 9\n\
bizra_lat_seconds_bucket{le=\"+Inf\"} 10\n\
bizra_lat_seconds_sum 0.05\n\
bizra_lat_seconds_count 10\n\
bizra_grpc_seconds_bucket{le=\"0.001\",method=\"GetHead\"} 5\n\
# EOF\n";

    #[test]
    fn parses_prometheus_text() {
        let s = Scrape::parse(TEXT);
        assert_eq!(s.get("bizra_consensus_height"), 42.0);
        assert_eq!(s.get("bizra_attestations_total{result=\"finalized\"}"), 1200.0);
        assert_eq!(s.buckets("bizra_lat_seconds", "").len(), 3);
        assert_eq!(
            s.buckets("bizra_grpc_seconds", "method=\"GetHead\""),
            vec![(0.001, 5.0)]
        );
        assert!(s.buckets("bizra_grpc_seconds", "").is_empty());
    }

    #[test]
    fn histogram_window_and_quantiles() {
        let before = Scrape::default();
        let after = Scrape::parse(TEXT);
        let h = HistDelta::between(&before, &after, "bizra_lat_seconds");
        assert_eq!(h.count, 10.0);
        assert!((h.mean().unwrap() - 0.005).abs() < 1e-12);
        // Rank 5 of 10 falls in (0.001, 0.01]: 4 of its 8 observations in.
        let p50 = h.quantile(0.5).unwrap();
        assert!((p50 - (0.001 + 0.009 * 0.5)).abs() < 1e-12, "{p50}");
        // Rank 10 is in +Inf: reported as the last finite bound.
        assert_eq!(h.quantile(1.0), Some(0.01));
    }

    #[test]
    fn dechunks_http_bodies() {
        assert_eq!(dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
    }
}
