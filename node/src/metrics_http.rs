//! The Prometheus endpoint (docs/PROTOCOL.md §12): `GET /metrics` returns the
//! node's registry as OpenMetrics text when the request's `Accept` names
//! `application/openmetrics-text` (as Prometheus servers do), else as the
//! Prometheus text format 0.0.4 (`curl`, `promtool check metrics`); any other
//! path is 404, any other method on `/metrics` 405.
//!
//! HTTP is hyper's, through tonic's server with HTTP/1.1 enabled and an axum
//! router (both already in the dependency tree), so scrapers get ordinary
//! HTTP/1.1 (keep-alive included) or h2c.

use crate::metrics::Metrics;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::codegen::http::{self, header, Method, StatusCode};
use tonic::codegen::Service;
use tonic::service::{AxumBody, AxumRouter, Routes};
use tonic::transport::server::TcpIncoming;

/// The content type of the OpenMetrics exposition (what `prometheus-client` encodes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text format, served to clients that do not ask for OpenMetrics.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The scrape path.
pub const PATH: &str = "/metrics";

/// Binds `listen`; a failure reads like `metrics listen 127.0.0.1:7600: address in use`.
pub async fn bind(listen: &str) -> anyhow::Result<TcpListener> {
    crate::rpc::bind_addr("metrics", listen).await
}

/// Binds `listen` and serves `/metrics` until `shutdown` completes.
pub async fn serve(
    metrics: Arc<Metrics>,
    listen: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = bind(&listen).await?;
    serve_listener(metrics, listener, shutdown).await
}

/// As [`serve`], on a listener bound beforehand.
pub async fn serve_listener(
    metrics: Arc<Metrics>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let router = AxumRouter::new().route_service(PATH, MetricsService { metrics });
    tracing::info!(listen = %local, "metrics endpoint listening");
    tonic::transport::Server::builder()
        .accept_http1(true)
        .concurrency_limit_per_connection(8)
        .timeout(Duration::from_secs(10))
        .add_routes(Routes::from(router))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("metrics server on {local}: {e}"))
}

#[derive(Clone)]
struct MetricsService {
    metrics: Arc<Metrics>,
}

impl Service<http::Request<AxumBody>> for MetricsService {
    type Response = http::Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<AxumBody>) -> Self::Future {
        let mut resp = http::Response::new(String::new());
        match *req.method() {
            Method::GET | Method::HEAD => {
                let openmetrics = req
                    .headers()
                    .get_all(header::ACCEPT)
                    .iter()
                    .any(|v| v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text")));
                let (text, content_type) = if openmetrics {
                    (self.metrics.encode(), CONTENT_TYPE)
                } else {
                    (self.metrics.encode_prometheus(), CONTENT_TYPE_TEXT)
                };
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
                if req.method() == Method::GET {
                    *resp.body_mut() = text;
                }
            }
            _ => {
                *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                resp.headers_mut()
                    .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
            }
        }
        std::future::ready(Ok(resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 request over a fresh connection; returns the raw response.
    async fn http_get(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
        http_get_accept(addr, method, path, None).await
    }

    async fn http_get_accept(addr: std::net::SocketAddr, method: &str, path: &str, accept: Option<&str>) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
        let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{accept}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn get_metrics_serves_every_contract_metric_and_404_elsewhere() {
        tokio::time::timeout(Duration::from_secs(30), async {
            let metrics = Arc::new(Metrics::new());
            metrics.vote("precommit", "accepted");
            metrics.attestation("accepted");
            metrics.consensus_height.set(42);
            let listener = bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve_listener(metrics.clone(), listener, async {
                let _ = stopped.await;
            }));

            // What a Prometheus server sends.
            let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
            let resp = http_get_accept(addr, "GET", "/metrics", Some(accept)).await;
            let (head, body) = resp.split_once("\r\n\r\n").expect("headers end");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains(&format!("content-type: {CONTENT_TYPE}")),
                "{head}"
            );
            for name in [
                "bizra_consensus_height 42",
                "bizra_consensus_round",
                "bizra_finality_latency_seconds",
                "bizra_block_interval_seconds",
                "bizra_votes_total{kind=\"precommit\",result=\"accepted\"} 1",
                "bizra_peers",
                "bizra_sync_blocks_total",
                "bizra_equivocations_total",
                "bizra_wq_weight",
                "bizra_wq_weight_component",
                "bizra_commit_weight_share_bps",
                "bizra_attestations_total{result=\"accepted\"} 1",
                "bizra_grpc_request_duration_seconds",
                "# EOF",
            ] {
                assert!(body.contains(name), "missing {name} in\n{body}");
            }

            // Without Accept (curl, promtool): the Prometheus text format,
            // counter families named with `_total`, no `# EOF`.
            let resp = http_get(addr, "GET", "/metrics").await;
            let (head, body) = resp.split_once("\r\n\r\n").expect("headers end");
            assert!(
                head.to_ascii_lowercase()
                    .contains(&format!("content-type: {CONTENT_TYPE_TEXT}")),
                "{head}"
            );
            assert!(body.contains("# TYPE bizra_votes_total counter"), "{body}");
            assert!(body.contains("bizra_consensus_height 42"), "{body}");
            assert!(!body.contains("# EOF"), "{body}");

            let resp = http_get(addr, "GET", "/nope").await;
            assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
            let resp = http_get(addr, "POST", "/metrics").await;
            assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
            let resp = http_get(addr, "HEAD", "/metrics").await;
            assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
            // Garbage is answered (400) or dropped, and the server lives on.
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"\x00\x01garbage\r\n\r\n").await.unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
            assert!(http_get(addr, "GET", "/metrics").await.starts_with("HTTP/1.1 200"));

            stop.send(()).unwrap();
            server.await.unwrap().unwrap();
            assert!(
                tokio::net::TcpStream::connect(addr).await.is_err(),
                "listener closed after shutdown"
            );
        })
        .await
        .expect("test timed out");
    }

    /// docs/grafana/bizra-dashboard.json charts every metric the registry
    /// exports (so a new metric without a panel fails here).
    #[test]
    fn grafana_dashboard_covers_every_metric() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/bizra-dashboard.json");
        let text = std::fs::read_to_string(&path).expect("dashboard file");
        let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
        let exprs: Vec<String> = dash["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["expr"].as_str().map(str::to_string))
            .collect();
        let vars = dash["templating"]["list"].as_array().expect("variables");
        assert!(vars
            .iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"));
        let families: Vec<String> = Metrics::new()
            .encode()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| {
                let mut it = l.split(' ');
                let (name, kind) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
                if kind == "counter" {
                    format!("{name}_total")
                } else {
                    name.to_string()
                }
            })
            .collect();
        assert!(families.len() >= 13, "{families:?}");
        for f in &families {
            assert!(exprs.iter().any(|e| e.contains(f.as_str())), "no panel queries {f}");
        }
    }

    #[tokio::test]
    async fn bind_failure_names_the_address() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let err = serve(Arc::new(Metrics::new()), addr.clone(), async {})
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("metrics listen {addr}: address in use"));
    }
}
