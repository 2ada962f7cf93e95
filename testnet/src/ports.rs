//! The port rule, defined once: with base port `P`, node `K` listens for
//! peers on `P+K`, serves gRPC on `P+100+K` and metrics on `P+200+K`
//! (docs and `bizra testnet init --help` say the same). [`check_ports`]
//! refuses a layout that does not fit; [`check_ports_free`] one whose ports
//! are taken on this host.

use anyhow::{bail, Context};
use serde::Serialize;

/// Offset of the gRPC ports from the base port.
pub const GRPC_OFFSET: usize = 100;
/// Offset of the metrics ports from the base port.
pub const METRICS_OFFSET: usize = 200;

/// The three ports of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Ports {
    /// Peer-to-peer port: `P+K`.
    pub p2p: u16,
    /// gRPC port: `P+100+K`.
    pub grpc: u16,
    /// Metrics port: `P+200+K`.
    pub metrics: u16,
}

impl Ports {
    /// Node `k`'s ports for base port `base`, or an error if one overflows.
    pub fn of(base: u16, k: usize) -> anyhow::Result<Ports> {
        let at = |off: usize| -> anyhow::Result<u16> {
            let p = base as usize + off + k;
            u16::try_from(p).ok().filter(|p| *p > 0).with_context(|| {
                format!("port {p} of node{k} does not fit in 1..=65535 (base port {base}; node K uses P+K, P+100+K, P+200+K)")
            })
        };
        Ok(Ports {
            p2p: at(0)?,
            grpc: at(GRPC_OFFSET)?,
            metrics: at(METRICS_OFFSET)?,
        })
    }

    /// Node `k`'s ports in a layout already accepted by [`check_ports`] (or
    /// by [`crate::plan`], or written by `bizra testnet init`).
    ///
    /// # Panics
    /// If a port does not fit in a `u16`: the layout was never checked.
    pub fn at(base: u16, k: usize) -> Ports {
        Ports::of(base, k).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// `http://HOST:GRPC`, the node's gRPC URL at `host`.
    pub fn grpc_url(&self, host: &str) -> String {
        format!("http://{host}:{}", self.grpc)
    }
}

/// Checks that all ports of `n` validators fit. When the nodes share one
/// host (`shared_host`), the three port ranges must not overlap either: with
/// more than 100 validators node 100's peer port would be node 0's gRPC port.
pub fn check_ports(base: u16, n: usize, shared_host: bool) -> anyhow::Result<()> {
    if n == 0 {
        bail!("--validators must be at least 1");
    }
    if base == 0 {
        bail!("--base-port must be at least 1 (port 0 means \"any port\")");
    }
    if shared_host && n > 100 {
        bail!("{n} validators on one host do not fit the port layout (P+K, P+100+K, P+200+K): at most 100, or use a host template with {{k}}");
    }
    Ports::of(base, n - 1).map(|_| ())
}

/// [`check_ports`] for `n` nodes sharing 127.0.0.1, and then each of their
/// ports must be free there: each is bound once and released, node by node,
/// peer port first.
pub fn check_ports_free(base: u16, n: usize) -> anyhow::Result<()> {
    check_ports(base, n, true)?;
    for k in 0..n {
        let p = Ports::of(base, k)?;
        for port in [p.p2p, p.grpc, p.metrics] {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                bail!("--base-port {base}: 127.0.0.1:{port} is in use; pick another --base-port");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_free_ports_follow_the_rule() {
        let p = Ports::at(7400, 3);
        assert_eq!(p.grpc_url("127.0.0.1"), "http://127.0.0.1:7503");
        assert_eq!(p.metrics, 7603);
        // A port held here is reported by number.
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        if let Some(base) = port.checked_sub(GRPC_OFFSET as u16) {
            let e = check_ports_free(base, 1).unwrap_err().to_string();
            assert!(e.contains("is in use; pick another --base-port"), "{e}");
        }
    }
}
