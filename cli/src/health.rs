//! `bizra health --grpc URL`: the standard gRPC health check
//! (`grpc.health.v1.Health/Check`), for container healthchecks and
//! orchestrators. A scratch image has no shell and no grpc client, so the
//! binary checks itself.

use super::{check, CliResult};
use clap::Args;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Exit 0 when the node's health service answers SERVING for `--service`
/// (default "", the whole server); 1 when it answers anything else or cannot
/// be reached within 5 s; 2 for a malformed URL.
#[derive(Args, Debug)]
pub struct HealthArgs {
    /// gRPC endpoint, e.g. http://127.0.0.1:7500 (a bare host:port means http://host:port)
    #[arg(long)]
    pub grpc: String,
    /// Service to ask about: "" (the server) or bizra.node.v1.Node.
    #[arg(long, default_value = "")]
    pub service: String,
}

/// Runs `bizra health`: asks the node's gRPC health service and fails unless it answers SERVING.
pub fn run(a: HealthArgs) -> CliResult {
    let url = super::head::endpoint(&a.grpc)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| check(format!("cannot start a runtime: {e}")))?;
    rt.block_on(async {
        let channel = super::head::channel(&url, &a.grpc).await?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: a.service.clone(),
            })
            .await
            .map_err(|s| {
                check(format!(
                    "{}: health check failed: {:?}: {}",
                    a.grpc,
                    s.code(),
                    s.message()
                ))
            })?
            .into_inner()
            .status();
        if status == ServingStatus::Serving {
            println!("SERVING");
            Ok(())
        } else {
            Err(check(format!("{}: {}", a.grpc, status.as_str_name())))
        }
    })
}
