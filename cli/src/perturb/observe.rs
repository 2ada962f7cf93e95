//! Watching the validators during a run: every node's finalized height
//! over gRPC, each node's largest lag, where to reach each node (gRPC URL
//! and metrics address, from DIR/testnet.json or the port rule) and its
//! metrics.

use super::PerturbArgs;
use crate::{usage, Failure};
use bizra_client::{scrape_at, Scrape, Timeouts};
use bizra_proto::GetStatusRequest;
use bizra_testnet::Ports;
use std::time::Duration;

/// Every validator's finalized height, queried concurrently (None: no
/// answer). On a CPU-starved host (100 containers on 2 cores) a node can take
/// seconds to answer, so each query gets generous timeouts and three tries.
pub(super) async fn heights(urls: &[String]) -> Vec<Option<u64>> {
    let mut set = tokio::task::JoinSet::new();
    for (k, u) in urls.iter().enumerate() {
        let u = u.clone();
        set.spawn(async move { (k, height(&u).await) });
    }
    let mut out = vec![None; urls.len()];
    while let Some(r) = set.join_next().await {
        if let Ok((k, h)) = r {
            out[k] = h;
        }
    }
    out
}

pub(super) async fn height(url: &str) -> Option<u64> {
    for attempt in 0..3u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
        }
        let mut c =
            match bizra_client::connect_once(url, Timeouts::new(Duration::from_secs(3), Duration::from_secs(10))).await
            {
                Ok(c) => c,
                Err(bizra_client::ConnectError::BadUrl { .. }) => return None,
                Err(bizra_client::ConnectError::Unreachable { .. }) => continue,
            };
        if let Ok(s) = c.get_status(GetStatusRequest {}).await {
            return Some(s.into_inner().finalized_height);
        }
    }
    None
}

/// Raises each answering validator's max lag behind the highest answer (a
/// node that does not answer - killed, paused, cut off - is not sampled).
pub(super) fn note_lag(lag: &mut [u64], hs: &[Option<u64>]) {
    let max = hs.iter().flatten().copied().max().unwrap_or(0);
    for (l, h) in lag.iter_mut().zip(hs) {
        if let Some(h) = h {
            *l = (*l).max(max - h);
        }
    }
}

/// The gRPC URL of each validator: from DIR/testnet.json when it lists them
/// (published host ports, or the container's fixed address, which the docker
/// host reaches over the bridge), else 127.0.0.1:BASE+100+K.
pub(super) fn grpc_urls(a: &PerturbArgs, n: usize) -> Result<Vec<String>, Failure> {
    let fallback = || -> Result<Vec<String>, Failure> {
        (0..n)
            .map(|k| {
                Ok(Ports::of(a.base_port, k)
                    .map_err(|e| usage(format!("{e:#}")))?
                    .grpc_url("127.0.0.1"))
            })
            .collect()
    };
    let Some(doc) = manifest(a)? else {
        return fallback();
    };
    let urls: Option<Vec<String>> = doc["nodes"].as_array().map(|nodes| {
        nodes
            .iter()
            .filter_map(|node| node["grpc"].as_str().map(str::to_string))
            .collect()
    });
    match urls {
        Some(u) if u.len() == n => Ok(u),
        _ => fallback(),
    }
}

/// Each validator's metrics endpoint `(host, port)`: its host and metrics
/// port from DIR/testnet.json (the container's address, which the docker
/// host reaches over the bridge), else 127.0.0.1:BASE+200+K.
pub(super) fn metrics_addrs(a: &PerturbArgs, n: usize) -> Result<Vec<(String, u16)>, Failure> {
    let fallback = || -> Result<Vec<(String, u16)>, Failure> {
        (0..n)
            .map(|k| {
                let port = Ports::of(a.base_port, k).map_err(|e| usage(format!("{e:#}")))?.metrics;
                Ok(("127.0.0.1".to_string(), port))
            })
            .collect()
    };
    let Some(doc) = manifest(a)? else {
        return fallback();
    };
    let addrs: Option<Vec<(String, u16)>> = doc["nodes"].as_array().map(|nodes| {
        nodes
            .iter()
            .filter_map(|node| {
                let host = node["host"].as_str()?;
                let port = u16::try_from(node["metrics_port"].as_u64()?).ok()?;
                Some((host.to_string(), port))
            })
            .collect()
    });
    match addrs {
        Some(v) if v.len() == n => Ok(v),
        _ => fallback(),
    }
}

/// DIR/testnet.json, parsed; None when there is no such file.
pub(super) fn manifest(a: &PerturbArgs) -> Result<Option<serde_json::Value>, Failure> {
    let path = a.dir.join("testnet.json");
    let Ok(raw) = std::fs::read(&path) else {
        return Ok(None);
    };
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// Every node's metrics, scraped concurrently (None: no answer).
pub(super) async fn scrape_all(addrs: &[(String, u16)]) -> Vec<Option<Scrape>> {
    let mut set = tokio::task::JoinSet::new();
    for (k, (host, port)) in addrs.iter().enumerate() {
        let (host, port) = (host.clone(), *port);
        set.spawn(async move { (k, scrape_at(&host, port).await.map(|t| Scrape::parse(&t))) });
    }
    let mut out = vec![None; addrs.len()];
    while let Some(r) = set.join_next().await {
        if let Ok((k, s)) = r {
            out[k] = s;
        }
    }
    out
}
