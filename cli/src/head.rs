//! `bizra head --grpc URL`

use super::{check, usage, CliResult};
use bizra_proto::node_client::NodeClient;
use bizra_proto::GetHeadRequest;
use clap::Args;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Connect and call timeout.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Prints `B{height} <block hash> height=H time_ms=T proposer=ID`. Exit 1 if
/// the node cannot be reached, fails or has no finalized block; 2 for a
/// malformed URL.
#[derive(Args, Debug)]
pub struct HeadArgs {
    /// gRPC endpoint, e.g. http://127.0.0.1:7500 (a bare host:port means http://host:port)
    #[arg(long)]
    pub grpc: String,
}

/// Runs `bizra head`: prints the node's finalized head.
pub fn run(a: HeadArgs) -> CliResult {
    let endpoint = endpoint(&a.grpc)?;
    super::runtime().block_on(async {
        let line = fetch_head_line(endpoint, &a.grpc).await?;
        println!("{line}");
        Ok(())
    })
}

/// Parses a gRPC URL (`http://host:port`, or `host:port`). Malformed: exit 2.
pub fn endpoint(url: &str) -> Result<Endpoint, super::Failure> {
    let url = url.trim();
    if url.is_empty() {
        return Err(usage("--grpc: empty URL; expected e.g. http://127.0.0.1:7500"));
    }
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    if !full.starts_with("http://") {
        return Err(usage(format!(
            "--grpc {url:?}: only http:// endpoints are supported (no TLS)"
        )));
    }
    let ep = Endpoint::from_shared(full).map_err(|e| {
        usage(format!(
            "--grpc {url:?} is not a valid URL: {e}; expected e.g. http://127.0.0.1:7500"
        ))
    })?;
    if ep.uri().host().is_none_or(str::is_empty) {
        return Err(usage(format!(
            "--grpc {url:?} has no host; expected e.g. http://127.0.0.1:7500"
        )));
    }
    Ok(ep.connect_timeout(TIMEOUT).timeout(TIMEOUT))
}

/// Connects (bounded by [`TIMEOUT`]) and returns the head line. Any failure
/// is a check failure (exit 1).
pub async fn fetch_head_line(endpoint: Endpoint, shown: &str) -> Result<String, super::Failure> {
    let channel: Channel = tokio::time::timeout(TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| check(format!("{shown}: no connection within {} s", TIMEOUT.as_secs())))?
        .map_err(|e| check(format!("{shown}: cannot connect: {}", error_chain(&e))))?;
    let mut client = NodeClient::new(channel);
    let head = tokio::time::timeout(TIMEOUT, client.get_head(GetHeadRequest {}))
        .await
        .map_err(|_| {
            check(format!(
                "{shown}: GetHead did not answer within {} s",
                TIMEOUT.as_secs()
            ))
        })?
        .map_err(|s| check(format!("{shown}: GetHead failed: {:?}: {}", s.code(), s.message())))?
        .into_inner();
    let header = head.header.unwrap_or_default();
    Ok(format!(
        "{} {} height={} time_ms={} proposer={}",
        head.label,
        hex::encode(&head.block_hash),
        head.height,
        header.time_ms,
        header.proposer
    ))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Failure;

    #[test]
    fn malformed_urls_are_usage_errors() {
        for bad in [
            "",
            "http://",
            "https://127.0.0.1:7500",
            "ftp://x:1",
            "http://a b:1",
            "http://[::1",
        ] {
            assert!(
                matches!(endpoint(bad), Err(Failure::Usage(_))),
                "{bad:?} should be a usage error"
            );
            assert!(
                matches!(run(HeadArgs { grpc: bad.into() }), Err(Failure::Usage(_))),
                "{bad:?}"
            );
        }
        assert!(endpoint("127.0.0.1:7500").is_ok());
        assert!(endpoint("http://node3:7503").is_ok());
    }

    #[test]
    fn dead_endpoint_is_a_check_failure() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = std::time::Instant::now();
        match run(HeadArgs {
            grpc: format!("http://127.0.0.1:{port}"),
        }) {
            Err(Failure::Check(m)) => assert!(m.contains("cannot connect") || m.contains("no connection"), "{m}"),
            other => panic!("expected a check failure, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(15));
    }

    #[test]
    fn prints_the_head_of_a_live_node() {
        let rt = crate::runtime();
        let fx = bizra_node::rpc::tests::Fixture::new(3);
        let (addr, stop, server) = rt.block_on(bizra_node::rpc::tests::start(fx.shared.clone(), Default::default()));
        let line = rt
            .block_on(async { fetch_head_line(endpoint(&format!("http://{addr}")).unwrap(), "test").await })
            .unwrap();
        let header = fx.blocks[2].header.clone().unwrap();
        let want = format!(
            "B3 {} height=3 time_ms={} proposer={}",
            hex::encode(fx.hashes[2]),
            header.time_ms,
            header.proposer
        );
        assert_eq!(line, want);
        // Through `run`, on its own runtime.
        assert!(run(HeadArgs { grpc: addr.to_string() }).is_ok());
        let _ = stop.send(());
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), server).await })
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
