//! Per-call limits and metrics around each gRPC service: a global token
//! bucket, a global in-flight limit, the oversized-request status code, and
//! the `bizra_grpc_request_duration_seconds{method}` histogram.

use crate::metrics::{MethodLabel, Metrics};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderValue};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::Status;

/// Longest a call waits for an in-flight slot before `RESOURCE_EXHAUSTED`.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// The rpc names of `bizra.node.v1.Node`, used as metric labels.
const NODE_METHODS: [&str; 9] = [
    "GetStatus",
    "GetHead",
    "GetBlock",
    "GetCommit",
    "GetValidators",
    "GetHeadReport",
    "SubscribeHeads",
    "SubmitAttestation",
    "GetAttestation",
];

/// The bounded `method` label of a request path.
pub fn method_label(path: &str) -> &'static str {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return "unknown";
    };
    match (service, method) {
        (super::NODE_SERVICE, m) => NODE_METHODS.iter().find(|n| **n == m).copied().unwrap_or("unknown"),
        ("grpc.health.v1.Health", "Check") => "Health/Check",
        ("grpc.health.v1.Health", "Watch") => "Health/Watch",
        (
            "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection",
            "ServerReflectionInfo",
        ) => "ServerReflectionInfo",
        _ => "unknown",
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// State shared by the guards of all services of one server.
pub struct Limits {
    rate_per_sec: u64,
    bucket: Option<Mutex<Bucket>>,
    inflight: Arc<Semaphore>,
    limit: usize,
    metrics: Arc<Metrics>,
}

impl Limits {
    /// `concurrency` calls in flight at once; `rate_per_sec` calls per second
    /// (0: unlimited), with a burst of one second's worth.
    pub fn new(concurrency: usize, rate_per_sec: u64, metrics: Arc<Metrics>) -> Self {
        let limit = concurrency.clamp(1, Semaphore::MAX_PERMITS);
        let bucket = (rate_per_sec > 0).then(|| {
            Mutex::new(Bucket {
                tokens: rate_per_sec as f64,
                last: Instant::now(),
            })
        });
        Limits {
            rate_per_sec,
            bucket,
            inflight: Arc::new(Semaphore::new(limit)),
            limit,
            metrics,
        }
    }

    /// Takes one token from the bucket, if there is one.
    pub fn take_token(&self) -> bool {
        let Some(bucket) = &self.bucket else { return true };
        let rate = self.rate_per_sec as f64;
        let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.saturating_duration_since(b.last).as_secs_f64() * rate;
        b.tokens = (b.tokens + refill).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
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
            let method = method_label(req.uri().path());
            if !limits.take_token() {
                return Ok(refuse(Status::resource_exhausted(format!(
                    "rate limit: this node serves at most {} requests per second",
                    limits.rate_per_sec
                ))));
            }
            let permit = match tokio::time::timeout(QUEUE_WAIT, limits.inflight.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => {
                    return Ok(refuse(Status::resource_exhausted(format!(
                        "server busy: {} requests in flight",
                        limits.limit
                    ))))
                }
            };
            let start = Instant::now();
            let mut resp = inner.call(req).await?;
            drop(permit);
            rewrite_oversize(&mut resp);
            limits
                .metrics
                .grpc_duration
                .get_or_create(&MethodLabel {
                    method: method.to_string(),
                })
                .observe(start.elapsed().as_secs_f64());
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
    fn bucket_refuses_over_rate_and_refills() {
        let l = Limits::new(4, 3, Arc::new(Metrics::new()));
        assert!((0..3).all(|_| l.take_token()));
        assert!(!l.take_token());
        std::thread::sleep(Duration::from_millis(400));
        assert!(l.take_token());
        let unlimited = Limits::new(4, 0, Arc::new(Metrics::new()));
        assert!((0..10_000).all(|_| unlimited.take_token()));
    }
}
