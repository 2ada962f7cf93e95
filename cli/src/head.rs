//! `bizra head --grpc URL`

use super::{check, usage, CliResult};
use bizra_client::{Channel, ConnectError};
use bizra_proto::node_client::NodeClient;
use bizra_proto::GetHeadRequest;
use clap::Args;
use std::time::Duration;

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
    let url = endpoint(&a.grpc)?;
    super::runtime().block_on(async {
        let line = fetch_head_line(url, &a.grpc).await?;
        println!("{line}");
        Ok(())
    })
}

/// Parses a gRPC URL (`http://host:port`, or `host:port`) by the one rule
/// ([`super::grpc_url`]). Malformed: exit 2.
pub fn endpoint(url: &str) -> Result<String, super::Failure> {
    super::grpc_url(url)
}

/// One connection to `url` (from [`endpoint`]), bounded by [`TIMEOUT`] for
/// the connect and for each call. Failing to connect is a check failure
/// (exit 1) naming `shown`.
pub async fn channel(url: &str, shown: &str) -> Result<Channel, super::Failure> {
    let t = bizra_client::Timeouts::new(TIMEOUT, TIMEOUT);
    tokio::time::timeout(TIMEOUT, bizra_client::channel_once(url, t))
        .await
        .map_err(|_| check(format!("{shown}: no connection within {} s", TIMEOUT.as_secs())))?
        .map_err(|e| match e {
            ConnectError::Unreachable { cause, .. } => check(format!("{shown}: cannot connect: {cause}")),
            ConnectError::BadUrl { reason, .. } => usage(format!("--grpc {shown:?}: not a URL ({reason})")),
        })
}

/// Connects (bounded by [`TIMEOUT`]) and returns the head line. Any failure
/// is a check failure (exit 1).
pub async fn fetch_head_line(url: String, shown: &str) -> Result<String, super::Failure> {
    let mut client = NodeClient::new(channel(&url, shown).await?);
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
