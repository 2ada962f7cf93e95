//! # bizra-bench
//!
//! `bizra bench`: measurements that print a table and write JSON. The
//! `bizra` binary (bizra-cli) parses the command line into a
//! [`BenchCommand`] and calls [`run`]; the nodes a bench starts are that same
//! binary (`bizra run --home nodeK`), found as the current executable.
//!
//! | command | what it measures | goal |
//! | --- | --- | --- |
//! | `bench consensus` | real nodes on loopback, no block pacing: blocks/s, finality latency p50/p99, against the physical floor (3 one-way loopback hops + 1 fsync) | p50 <= 10 ms and CPU per block <= 3.6 ms at 4 validators |
//! | `bench grpc` | closed-loop load on one node's `GetHead`/`GetStatus`, and on a bare in-process tonic server serving the same payload | >= 0.8x the bare server, p99 <= 1.1 ms |
//! | `bench attest` | signed PoI attestations submitted concurrently over gRPC, finalized per second, against the Ed25519 ceiling | >= 20,000/s, >= 0.5x ceiling |
//! | `bench scale` | `bench consensus` at N = 4, 16, 32, 64, 100 in one go: the curve of blocks/min, finality, rounds, CPU per height against the signature floor (N x 2N verifies), messages and bytes per height | all nodes' CPU per height <= 2.5x the floor from 32 up; >= 30 blocks/min and <= 25 ms node CPU per height at 100 |
//! | `bench sync` | a late node catching up on an N-block chain: blocks/s verified and applied | >= 10,000 blocks/s |
//!
//! Every command reports the peak RSS (VmHWM) of each node process it
//! measured (or of itself for in-process work), reports each goal as met or
//! missed with the measured value and ratio, and exits 0 when the measurement
//! ran (a missed goal is a finding, not a failure); it exits 1 when the
//! measurement itself failed (a node died, no progress) and 2 on bad usage.
//! Node processes it starts are stopped by PID, also on error.
//! docs/BENCHMARKS.md has the numbers of this machine and what limits them.

#![warn(missing_docs)]

mod attest;
pub(crate) mod common;
mod consensus;
mod grpc;
mod scale;
mod sync;

use clap::Subcommand;

/// Why a bench did not run to the end. A missed goal is not an error: it is
/// reported, and the bench exits 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BenchError {
    /// Bad usage or bad input (`bizra bench` exits 2), e.g. a busy or
    /// out-of-range port, a non-empty `--home`, an unwritable `--json`.
    Usage(String),
    /// The measurement itself failed (exit 1): a node died, no progress, a
    /// probe failed.
    Failed(String),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Usage(s) | BenchError::Failed(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for BenchError {}

/// What a bench returns: `Ok` when the measurement ran (goals met or not).
pub type BenchResult = Result<(), BenchError>;

/// A [`BenchError::Usage`] with `msg`.
pub(crate) fn usage(msg: impl std::fmt::Display) -> BenchError {
    BenchError::Usage(msg.to_string())
}

/// A [`BenchError::Failed`] with `msg`.
pub(crate) fn failed(msg: impl std::fmt::Display) -> BenchError {
    BenchError::Failed(msg.to_string())
}

/// The multi-thread tokio runtime a bench drives its clients on.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The `bizra bench` subcommands.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Real validators on loopback with no block pacing: blocks/s and finality latency p50/p99 vs the physical floor.
    Consensus(consensus::ConsensusArgs),
    /// `bench consensus` at several validator counts (default 4,16,32,64,100): the scaling curve against the signature floor.
    Scale(scale::ScaleArgs),
    /// Closed-loop gRPC load on a node, compared with a bare tonic server serving the same payload.
    Grpc(grpc::GrpcArgs),
    /// Signed PoI attestations submitted over gRPC: finalized per second vs the Ed25519 verification ceiling.
    Attest(attest::AttestArgs),
    /// A late node catching up on an N-block chain: blocks/s verified and applied.
    Sync(sync::SyncArgs),
}

/// Runs the chosen `bizra bench` measurement.
pub fn run(c: BenchCommand) -> BenchResult {
    match c {
        BenchCommand::Consensus(a) => consensus::run(a),
        BenchCommand::Scale(a) => scale::run(a),
        BenchCommand::Grpc(a) => grpc::run(a),
        BenchCommand::Attest(a) => attest::run(a),
        BenchCommand::Sync(a) => sync::run(a),
    }
}
