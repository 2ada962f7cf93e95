//! Connecting to a node's gRPC endpoint: one attempt ([`connect_once`]) or
//! retries with backoff until a deadline ([`connect`]).

use bizra_proto::node_client::NodeClient;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

/// Longest single connection attempt of [`connect`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First pause between attempts of [`connect`]; doubled after each failure.
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest pause between attempts of [`connect`].
pub const RETRY_MAX: Duration = Duration::from_secs(2);
/// Per-call timeout of the clients [`connect`] returns.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Why there is no client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// `url` is not an endpoint URL (`reason`: tonic's). Retrying cannot help.
    BadUrl {
        /// The URL as given.
        url: String,
        /// tonic's parse error, as text.
        reason: String,
    },
    /// Nothing usable answered at `url`; `cause` says why (the error chain,
    /// a timeout, the attempts made).
    Unreachable {
        /// The endpoint URL that was tried.
        url: String,
        /// The error chain, a timeout, or the attempts made and time spent.
        cause: String,
    },
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::BadUrl { url, reason } => write!(f, "{url}: {reason}"),
            ConnectError::Unreachable { url, cause } => write!(f, "endpoint {url}: cannot connect: {cause}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Timeouts of one [`connect_once`] attempt; `None` leaves tonic's default
/// (no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Limit of the TCP connect.
    pub connect: Option<Duration>,
    /// Per-call limit of the returned client.
    pub rpc: Option<Duration>,
}

impl Timeouts {
    /// Both limits set: `connect` for the TCP connect, `rpc` per call.
    pub const fn new(connect: Duration, rpc: Duration) -> Timeouts {
        Timeouts {
            connect: Some(connect),
            rpc: Some(rpc),
        }
    }
}

fn endpoint(url: &str) -> Result<Endpoint, ConnectError> {
    Endpoint::from_shared(url.to_string()).map_err(|e| ConnectError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// The cause is the error chain, without the repetitions tonic and hyper add.
fn unreachable(url: &str, e: &tonic::transport::Error) -> ConnectError {
    let mut parts = vec![e.to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    ConnectError::Unreachable {
        url: url.to_string(),
        cause: parts.join(": "),
    }
}

/// One connection attempt with the given timeouts.
pub async fn connect_once(url: &str, t: Timeouts) -> Result<NodeClient<Channel>, ConnectError> {
    channel_once(url, t).await.map(NodeClient::new)
}

/// One connection attempt with the given timeouts: the bare channel, for
/// callers that spread load over several channels or serve other clients.
pub async fn channel_once(url: &str, t: Timeouts) -> Result<Channel, ConnectError> {
    let mut ep = endpoint(url)?;
    if let Some(c) = t.connect {
        ep = ep.connect_timeout(c);
    }
    if let Some(r) = t.rpc {
        ep = ep.timeout(r);
    }
    ep.connect().await.map_err(|e| unreachable(url, &e))
}

/// One attempt of [`connect`], of at most `limit` (HTTP/2 handshake included).
async fn attempt(url: &str, limit: Duration) -> Result<NodeClient<Channel>, ConnectError> {
    let ep = endpoint(url)?.connect_timeout(limit).timeout(RPC_TIMEOUT);
    let ch = tokio::time::timeout(limit + Duration::from_millis(500), ep.connect())
        .await
        .map_err(|_| ConnectError::Unreachable {
            url: url.to_string(),
            cause: format!("timed out after {:.1} s", limit.as_secs_f64()),
        })?
        .map_err(|e| unreachable(url, &e))?;
    Ok(NodeClient::new(ch))
}

/// Connects to `url`, retrying refused or timed-out attempts with backoff
/// ([`RETRY_FIRST`] doubling up to [`RETRY_MAX`]) until `deadline`; the last
/// attempt is made at the deadline. A bad URL fails at once. The error names
/// the endpoint, the attempts, the time spent and the last cause. The client
/// has a per-call timeout of [`RPC_TIMEOUT`].
pub async fn connect(url: &str, deadline: Instant) -> Result<NodeClient<Channel>, ConnectError> {
    let start = Instant::now();
    let mut pause = RETRY_FIRST;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let budget = deadline.saturating_duration_since(Instant::now()).max(RETRY_FIRST);
        match attempt(url, budget.min(CONNECT_TIMEOUT)).await {
            Ok(c) => return Ok(c),
            Err(e @ ConnectError::BadUrl { .. }) => return Err(e),
            Err(ConnectError::Unreachable { url: u, cause }) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(ConnectError::Unreachable {
                        url: u,
                        cause: format!(
                            "{cause} (gave up after {attempts} attempts in {:.1} s)",
                            now.duration_since(start).as_secs_f64()
                        ),
                    });
                }
                let m = format!("endpoint {u}: cannot connect: {cause}");
                tracing::debug!(endpoint = url, attempts, "cannot connect yet: {m}");
                tokio::time::sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn connect_retries_until_a_late_server_answers() {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        runtime().block_on(async {
            // The server comes up 800 ms after the first attempt was refused.
            let server = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(800)).await;
                let (_reporter, health) = tonic_health::server::health_reporter();
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
                tonic::transport::Server::builder()
                    .add_service(health)
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                    .await
            });
            let start = Instant::now();
            assert!(
                attempt(&url, Duration::from_secs(1)).await.is_err(),
                "nothing listens yet: one attempt must fail"
            );
            connect(&url, start + Duration::from_secs(20))
                .await
                .expect("connects once the server is up");
            assert!(
                start.elapsed() >= Duration::from_millis(700),
                "connected before the server started"
            );
            server.abort();
        });
    }

    #[test]
    fn connect_gives_up_at_the_deadline_naming_the_endpoint() {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        let err = runtime()
            .block_on(connect(&url, start + Duration::from_millis(1500)))
            .unwrap_err();
        let waited = start.elapsed();
        match err {
            e @ ConnectError::Unreachable { .. } => {
                let m = e.to_string();
                assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
                assert!(m.contains("attempts"), "{m}");
            }
            e @ ConnectError::BadUrl { .. } => panic!("bad url: {e}"),
        }
        assert!(waited >= Duration::from_millis(1000), "gave up early: {waited:?}");
    }

    #[test]
    fn a_bad_url_fails_at_once_and_one_attempt_names_the_endpoint() {
        let rt = runtime();
        let start = Instant::now();
        let e = rt
            .block_on(connect("not a url", start + Duration::from_secs(20)))
            .unwrap_err();
        assert!(matches!(e, ConnectError::BadUrl { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let e = rt
            .block_on(connect_once(
                &url,
                Timeouts::new(Duration::from_millis(500), Duration::from_secs(1)),
            ))
            .unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("endpoint {url}: cannot connect")),
            "{e}"
        );
    }
}
