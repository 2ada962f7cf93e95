//! Starts the gRPC API and the metrics endpoint next to the engine. Both
//! addresses are bound before the engine starts, so a port in use is a clear
//! start-up error rather than a half-running node.

use crate::config::NodeConfig;
use crate::state::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::error;

pub struct Servers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Servers {
    /// Waits (bounded) for the servers to finish after the stop signal.
    pub async fn join(self, limit: Duration) {
        for t in self.tasks {
            let _ = tokio::time::timeout(limit, t).await;
        }
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

pub async fn start(shared: Arc<Shared>, cfg: &NodeConfig, stop: watch::Receiver<bool>) -> anyhow::Result<Servers> {
    let mut tasks = Vec::new();
    let listener = crate::rpc::bind(&cfg.grpc).await?;
    let (s, c, down) = (shared.clone(), cfg.grpc.clone(), stopped(stop.clone()));
    tasks.push(tokio::spawn(async move {
        if let Err(e) = crate::rpc::serve_listener(s, c, listener, down).await {
            error!("gRPC server failed: {e:#}");
        }
    }));
    if cfg.metrics.enabled {
        let listener = crate::metrics_http::bind(&cfg.metrics.listen).await?;
        let (m, down) = (shared.metrics.clone(), stopped(stop));
        tasks.push(tokio::spawn(async move {
            if let Err(e) = crate::metrics_http::serve_listener(m, listener, down).await {
                error!("metrics server failed: {e:#}");
            }
        }));
    }
    Ok(Servers { tasks })
}
