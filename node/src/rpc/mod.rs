//! The gRPC API (docs/PROTOCOL.md §8).
//!
//! One listener serves:
//! * `bizra.node.v1.Node` ([`service::NodeService`]), every rpc of `node.proto`;
//! * `grpc.health.v1.Health`: `""` and `bizra.node.v1.Node` are NOT_SERVING
//!   until `Status::serving` is set (polled every 200 ms), then SERVING, and
//!   NOT_SERVING again once shutdown starts;
//! * server reflection, `grpc.reflection.v1` and `v1alpha`, describing the
//!   bizra and health protos.
//!
//! Limits, applied by `guard::Guard` to every call of all three services:
//! * a token bucket per client (one connection, by its peer address) of
//!   `grpc.rate_limit_per_client` calls per second (burst: one second's worth;
//!   0 disables it). Over it: `RESOURCE_EXHAUSTED "rate limit ..."`. One busy
//!   client cannot spend another's tokens; at most `grpc.max_connections_per_ip`
//!   connections per IP are accepted ([`incoming`]), so one address gets at
//!   most that many buckets.
//! * at most `grpc.concurrency_limit` calls in flight for the whole server; a
//!   call waits up to `guard::QUEUE_WAIT` for a slot, then gets
//!   `RESOURCE_EXHAUSTED "server busy ..."`. The same number also bounds calls
//!   and HTTP/2 streams per connection.
//! * requests above `grpc.max_request_bytes`: `RESOURCE_EXHAUSTED` (tonic says
//!   `OUT_OF_RANGE`; the guard rewrites the code, keeping tonic's message).
//! * at most `grpc.concurrency_limit` open `SubscribeHeads` streams; they end
//!   when the server shuts down, so shutdown never waits on a subscriber.
//!
//! Each call's duration, until its response headers, is observed in
//! `bizra_grpc_request_duration_seconds{method}`. `method` is the rpc name
//! for `Node` (`GetHead`), `Health/Check`, `Health/Watch` and
//! `ServerReflectionInfo` for the others, `unknown` for anything else, so a
//! client cannot grow the label set.

mod guard;
pub mod incoming;
mod service;
/// The rpc tests and their fixture (a served 3-block chain); with the
/// `rpc-fixture` feature the fixture is public for other crates' tests.
#[cfg(any(test, feature = "rpc-fixture"))]
#[cfg_attr(not(test), allow(dead_code, unused_imports))]
pub mod tests;

pub use service::{NodeService, MAX_SUBMIT_BYTES};

use crate::config::GrpcSection;
use crate::state::Shared;
use anyhow::Context as _;
use bizra_proto::node_server::NodeServer;
use futures::StreamExt as _;
use guard::{Guard, Limits};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

/// Fully qualified name of the Node service (health and reflection).
pub const NODE_SERVICE: &str = "bizra.node.v1.Node";
/// How often the health task reads `Status::serving`.
pub const HEALTH_POLL: Duration = Duration::from_millis(200);
/// Longest time a unary call may take before the server cancels it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds the gRPC listen address. A failure names the address and the cause,
/// e.g. `gRPC listen 127.0.0.1:7500: address in use`.
pub async fn bind(cfg: &GrpcSection) -> anyhow::Result<TcpListener> {
    bind_addr("gRPC", &cfg.listen).await
}

/// Binds `listen` for the server called `what` ("gRPC", "metrics").
pub(crate) async fn bind_addr(what: &str, listen: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("{what} listen {listen}: {}", describe_io(&e)))
}

/// A short, stable description of a bind error.
pub(crate) fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        AddrInUse => "address in use".into(),
        AddrNotAvailable => "address not available on this host".into(),
        PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Binds `cfg.listen` and serves until `shutdown` completes. Returns an error
/// if the address cannot be bound or the server fails; `Ok(())` after a clean
/// shutdown (open `SubscribeHeads` streams are ended, in-flight calls drain).
pub async fn serve(
    shared: Arc<Shared>,
    cfg: GrpcSection,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = bind(&cfg).await?;
    serve_listener(shared, cfg, listener, shutdown).await
}

/// As [`serve`], on a listener bound beforehand (see [`bind`]); `cfg.listen`
/// is then only used in messages.
pub async fn serve_listener(
    shared: Arc<Shared>,
    cfg: GrpcSection,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| cfg.listen.clone());
    let limit = cfg.concurrency_limit.max(1);
    let (stop_tx, stop_rx) = watch::channel(false);

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status("", ServingStatus::NotServing).await;
    reporter
        .set_service_status(NODE_SERVICE, ServingStatus::NotServing)
        .await;
    tokio::spawn(health_task(shared.clone(), reporter, stop_rx.clone()));

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bizra_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("gRPC reflection (v1)")?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bizra_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("gRPC reflection (v1alpha)")?;

    let node = NodeServer::new(NodeService::new(shared.clone(), limit, stop_rx))
        .max_decoding_message_size(cfg.max_request_bytes);
    let limits = Arc::new(Limits::new(limit, cfg.rate_limit_per_client, shared.metrics.clone()));

    let per_ip = incoming::PerIp::new(cfg.max_connections_per_ip);
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .filter_map(move |conn| {
            let admitted = match conn {
                Ok(stream) => incoming::admit(&per_ip, stream).map(Ok),
                Err(e) => Some(Err(e)),
            };
            std::future::ready(admitted)
        });
    let signal = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    tracing::info!(listen = %local, "gRPC server listening");
    tonic::transport::Server::builder()
        .concurrency_limit_per_connection(limit)
        .max_concurrent_streams(u32::try_from(limit).unwrap_or(u32::MAX))
        .timeout(REQUEST_TIMEOUT)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(Guard::new(node, limits.clone()))
        .add_service(Guard::new(health, limits.clone()))
        .add_service(Guard::new(reflection_v1, limits.clone()))
        .add_service(Guard::new(reflection_v1alpha, limits))
        .serve_with_incoming_shutdown(incoming, signal)
        .await
        .map_err(|e| anyhow::anyhow!("gRPC server on {local}: {e}"))?;
    tracing::info!(listen = %local, "gRPC server stopped");
    Ok(())
}

/// Mirrors `Status::serving` into the health service until shutdown.
async fn health_task(
    shared: Arc<Shared>,
    reporter: tonic_health::server::HealthReporter,
    mut stop: watch::Receiver<bool>,
) {
    let mut current = ServingStatus::NotServing;
    let mut tick = tokio::time::interval(HEALTH_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let want = if shared.status().serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if want != current {
            reporter.set_service_status("", want).await;
            reporter.set_service_status(NODE_SERVICE, want).await;
            current = want;
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    reporter.set_service_status("", ServingStatus::NotServing).await;
    reporter
        .set_service_status(NODE_SERVICE, ServingStatus::NotServing)
        .await;
}
