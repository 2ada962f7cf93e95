//! The bizra validator node: a thin tokio shell around the pure consensus
//! core (`bizra-consensus`), with libp2p networking (`bizra-p2p`), sled
//! storage (`bizra-storage`), a tonic gRPC API and Prometheus metrics.

#![warn(missing_docs)]

pub mod admission;
pub mod config;
pub mod engine;
pub mod evidence_pool;
#[allow(missing_docs)]
pub mod fuzzing;
pub mod keys;
pub mod metrics;
pub mod metrics_http;
pub mod pool;
pub mod rpc;
pub mod state;
