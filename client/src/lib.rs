//! # bizra-client
//!
//! Client-side helpers for talking to running bizra nodes, shared by the
//! CLI (`devnet`, `bench`, `testnet perturb`, `wq-proof`, `attest`,
//! `evidence`, the gate) and the end-to-end tests:
//!
//! * [`connect`]: a gRPC `NodeClient`, retrying refused or timed-out
//!   attempts with backoff until a deadline; [`connect_once`]: one attempt
//!   with the caller's timeouts ([`channel_once`]: the bare channel).
//! * [`endpoint_url`]: the one rule for an endpoint given by a user
//!   (`host:port` means `http://host:port`; plain http only).
//! * [`wq_proof::collect`]: the parts of a wq-proof gathered from several
//!   validators (`bizra_proof` builds and checks the proof from them).
//! * [`attest::submit`] / [`attest::await_inclusion`]: a signed PoI
//!   attestation sent, and its checked inclusion with the block's commit and
//!   weights once finalized.
//! * [`evidence::fetch`]: one piece of committed evidence, checked, with its
//!   block's commit and weights.
//! * [`scrape`] / [`scrape_at`]: `GET /metrics` over plain HTTP/1.1, and
//!   [`Scrape`] / [`HistDelta`]: the Prometheus text parsed, histograms
//!   differenced over a window.
//!
//! No clap, no exit codes, no printing: errors are values the caller turns
//! into its own.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attest;
mod connect;
pub mod evidence;
mod metrics;
mod rpc;
mod url;
pub mod wq_proof;

pub use bizra_proto::node_client::NodeClient;
pub use connect::{
    channel_once, connect, connect_once, ConnectError, Timeouts, CONNECT_TIMEOUT, RETRY_FIRST, RETRY_MAX, RPC_TIMEOUT,
};
pub use metrics::{scrape, scrape_at, HistDelta, Scrape};
pub use rpc::RpcError;
pub use tonic::transport::Channel;
pub use url::{endpoint_url, UrlError};
