//! Per-call limits and metrics around each gRPC service: a token bucket per
//! client, a global in-flight limit, the oversized-request status code, and
//! the `bizra_grpc_request_duration_seconds{method}` histogram and
//! `bizra_grpc_requests_total{method,code}` counter.
//!
//! A client is one connection (its peer address, IP and port): gRPC clients
//! multiplex their calls over one HTTP/2 connection, and on one host (the
//! gate, a bench, an operator's tools; containers behind one bridge address)
//! an IP alone cannot tell them apart. How many connections one IP may hold is
//! bounded where connections are accepted (`rpc::incoming`), so one address
//! gets at most that many buckets; all share the global in-flight cap.

use crate::metrics::{Metrics, GRPC_CODES, GRPC_METHODS};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderValue};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;
use tonic::Status;

/// Longest a call waits for an in-flight slot before `RESOURCE_EXHAUSTED`.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Most clients with a bucket at once. When the table is full, buckets idle
/// long enough to have refilled are dropped (a full bucket is a new one); if
/// none is, the call is refused.
pub const MAX_CLIENTS: usize = 4096;

/// How many of [`GRPC_METHODS`] are rpcs of `bizra.node.v1.Node` (the first ones).
const NODE_RPCS: usize = 10;

/// The index into [`GRPC_METHODS`] of a request path's bounded `method` label.
pub fn method_index(path: &str) -> usize {
    let unknown = GRPC_METHODS.len() - 1;
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return unknown;
    };
    let label = match (service, method) {
        (super::NODE_SERVICE, m) => m,
        ("grpc.health.v1.Health", "Check") => "Health/Check",
        ("grpc.health.v1.Health", "Watch") => "Health/Watch",
        (
            "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection",
            "ServerReflectionInfo",
        ) => "ServerReflectionInfo",
        _ => return unknown,
    };
    // A Node path matches only the Node rpcs (the first entries).
    let candidates = if service == super::NODE_SERVICE {
        &GRPC_METHODS[..NODE_RPCS]
    } else {
        &GRPC_METHODS[NODE_RPCS..unknown]
    };
    let offset = if service == super::NODE_SERVICE { 0 } else { NODE_RPCS };
    candidates
        .iter()
        .position(|n| *n == label)
        .map_or(unknown, |i| i + offset)
}

/// The bounded `method` label of a request path.
#[cfg(test)]
pub fn method_label(path: &str) -> &'static str {
    GRPC_METHODS[method_index(path)]
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Why a call was refused before it ran.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This client spent its tokens.
    Rate,
    /// [`MAX_CLIENTS`] clients hold a bucket that has not refilled.
    TooManyClients,
}

/// The metrics of one method label, resolved once (no label allocation per call).
struct MethodMetrics {
    duration: Histogram,
    ok: Counter,
}

/// State shared by the guards of all services of one server.
pub struct Limits {
    rate_per_client: u64,
    clients: Mutex<HashMap<SocketAddr, Bucket>>,
    inflight: Arc<Semaphore>,
    limit: usize,
    metrics: Arc<Metrics>,
    by_method: Vec<MethodMetrics>,
}

impl Limits {
    /// `concurrency` calls in flight at once for the whole server;
    /// `rate_per_client` calls per second per client (0: unlimited), with a
    /// burst of one second's worth.
    pub fn new(concurrency: usize, rate_per_client: u64, metrics: Arc<Metrics>) -> Self {
        let limit = concurrency.clamp(1, Semaphore::MAX_PERMITS);
        let by_method = GRPC_METHODS
            .iter()
            .map(|m| MethodMetrics {
                duration: metrics
                    .grpc_duration
                    .get_or_create(&crate::metrics::MethodLabel { method: m.to_string() })
                    .clone(),
                ok: metrics
                    .grpc_requests
                    .get_or_create(&crate::metrics::MethodCodeLabels {
                        method: m.to_string(),
                        code: "OK".into(),
                    })
                    .clone(),
            })
            .collect();
        Limits {
            rate_per_client,
            clients: Mutex::new(HashMap::new()),
            inflight: Arc::new(Semaphore::new(limit)),
            limit,
            metrics,
            by_method,
        }
    }

    /// Takes one token from `client`'s bucket.
    pub fn take_token(&self, client: SocketAddr) -> Result<(), Refusal> {
        self.take_token_at(client, Instant::now())
    }

    fn take_token_at(&self, client: SocketAddr, now: Instant) -> Result<(), Refusal> {
        if self.rate_per_client == 0 {
            return Ok(());
        }
        let rate = self.rate_per_client as f64;
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
            // A bucket idle for a second is full again: forgetting it changes nothing.
            clients.retain(|_, b| now.saturating_duration_since(b.last) < Duration::from_secs(1));
            if clients.len() >= MAX_CLIENTS {
                return Err(Refusal::TooManyClients);
            }
        }
        let b = clients.entry(client).or_insert(Bucket {
            tokens: rate,
            last: now,
        });
        let refill = now.saturating_duration_since(b.last).as_secs_f64() * rate;
        b.tokens = (b.tokens + refill).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Refusal::Rate)
        }
    }

    /// Counts a finished call and observes its duration.
    fn record(&self, method: usize, code: Option<usize>, seconds: f64) {
        let m = &self.by_method[method];
        m.duration.observe(seconds);
        match code {
            None | Some(0) => {
                m.ok.inc();
            }
            Some(c) => {
                self.metrics
                    .grpc_requests
                    .get_or_create(&crate::metrics::MethodCodeLabels {
                        method: GRPC_METHODS[method].to_string(),
                        code: GRPC_CODES.get(c).copied().unwrap_or("UNKNOWN").to_string(),
                    })
                    .inc();
            }
        }
    }
}

/// The gRPC status code of a response's headers, if it carries one (a
/// trailers-only response: every error tonic returns from a handler).
fn header_code(resp: &http::Response<Body>) -> Option<usize> {
    let v = resp.headers().get("grpc-status")?;
    std::str::from_utf8(v.as_bytes()).ok()?.parse().ok()
}

/// Wraps one tonic service with the [`Limits`].
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    limits: Arc<Limits>,
}

impl<S> Guard<S> {
    pub fn new(inner: S, limits: Arc<Limits>) -> Self {
        Guard { inner, limits }
    }
}

impl<S: NamedService> NamedService for Guard<S> {
    const NAME: &'static str = S::NAME;
}

fn refuse(status: Status) -> http::Response<Body> {
    status.into_http()
}

/// tonic refuses a request above `max_decoding_message_size` with
/// `OUT_OF_RANGE`; the contract (and gRPC's own convention for message size
/// limits) says `RESOURCE_EXHAUSTED`.
fn rewrite_oversize(resp: &mut http::Response<Body>) {
    let h = resp.headers();
    let is_out_of_range = h.get("grpc-status").is_some_and(|v| v.as_bytes() == b"11");
    let too_large = h.get("grpc-message").is_some_and(|m| {
        let m = m.as_bytes();
        contains(m, b"too large") || contains(m, b"too%20large")
    });
    if is_out_of_range && too_large {
        let code = (tonic::Code::ResourceExhausted as i32).to_string();
        if let Ok(v) = HeaderValue::from_str(&code) {
            resp.headers_mut().insert("grpc-status", v);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl<S> Service<http::Request<Body>> for Guard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The clone is ready only if polled; keep the polled one for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limits = self.limits.clone();
        Box::pin(async move {
            let start = Instant::now();
            let method = method_index(req.uri().path());
            let client = req
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(|c| c.remote_addr())
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            if let Err(why) = limits.take_token(client) {
                let status = match why {
                    Refusal::Rate => Status::resource_exhausted(format!(
                        "rate limit: this node serves at most {} requests per second per client",
                        limits.rate_per_client
                    )),
                    Refusal::TooManyClients => {
                        Status::resource_exhausted(format!("too many clients: {MAX_CLIENTS} are being served"))
                    }
                };
                limits.record(method, Some(tonic::Code::ResourceExhausted as usize), 0.0);
                return Ok(refuse(status));
            }
            // A free slot is taken at once; only a busy server arms the wait timer.
            let permit = match limits.inflight.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => match tokio::time::timeout(QUEUE_WAIT, limits.inflight.clone().acquire_owned()).await {
                    Ok(Ok(p)) => p,
                    _ => {
                        limits.record(method, Some(tonic::Code::ResourceExhausted as usize), 0.0);
                        return Ok(refuse(Status::resource_exhausted(format!(
                            "server busy: {} requests in flight",
                            limits.limit
                        ))));
                    }
                },
            };
            let mut resp = inner.call(req).await?;
            drop(permit);
            rewrite_oversize(&mut resp);
            limits.record(method, header_code(&resp), start.elapsed().as_secs_f64());
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label("/bizra.node.v1.Node/GetHead"), "GetHead");
        assert_eq!(method_label("/bizra.node.v1.Node/Evil"), "unknown");
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "Health/Check");
        assert_eq!(
            method_label("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            "ServerReflectionInfo"
        );
        assert_eq!(method_label("garbage"), "unknown");
        assert_eq!(method_label("/"), "unknown");
    }

    #[test]
    fn method_indices_cover_every_label() {
        for (i, m) in GRPC_METHODS.iter().enumerate().take(9) {
            assert_eq!(method_index(&format!("/bizra.node.v1.Node/{m}")), i);
        }
        assert_eq!(method_label("/grpc.health.v1.Health/Watch"), "Health/Watch");
        assert_eq!(
            method_label("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            "ServerReflectionInfo"
        );
        // A Node path naming a non-Node label is not that label.
        assert_eq!(method_label("/bizra.node.v1.Node/Health/Check"), "unknown");
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn bucket_refuses_over_rate_and_refills() {
        let l = Limits::new(4, 3, Arc::new(Metrics::new()));
        let c = addr(1);
        assert!((0..3).all(|_| l.take_token(c).is_ok()));
        assert_eq!(l.take_token(c), Err(Refusal::Rate));
        std::thread::sleep(Duration::from_millis(400));
        assert!(l.take_token(c).is_ok());
        let unlimited = Limits::new(4, 0, Arc::new(Metrics::new()));
        assert!((0..10_000).all(|_| unlimited.take_token(c).is_ok()));
    }

    #[test]
    fn one_busy_client_does_not_spend_another_clients_tokens() {
        let l = Limits::new(4, 3, Arc::new(Metrics::new()));
        let now = Instant::now();
        let (busy, quiet) = (addr(1), addr(2));
        assert!((0..3).all(|_| l.take_token_at(busy, now).is_ok()));
        assert_eq!(l.take_token_at(busy, now), Err(Refusal::Rate));
        assert!(
            (0..3).all(|_| l.take_token_at(quiet, now).is_ok()),
            "the quiet client has its own bucket"
        );
    }

    #[test]
    fn the_client_table_is_bounded_and_forgets_refilled_buckets() {
        let l = Limits::new(4, 10, Arc::new(Metrics::new()));
        let t0 = Instant::now();
        for i in 0..MAX_CLIENTS {
            let c = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1));
            assert!(l.take_token_at(c, t0).is_ok());
        }
        let newcomer = addr(9);
        assert_eq!(l.take_token_at(newcomer, t0), Err(Refusal::TooManyClients));
        // A second later every old bucket is full again: the newcomer gets one.
        assert!(l.take_token_at(newcomer, t0 + Duration::from_secs(1)).is_ok());
        assert!(l.clients.lock().unwrap().len() <= 1);
    }
}
