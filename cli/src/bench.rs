//! `bizra bench`: measurements that print a table and write JSON.
//!
//! | command | what it measures | goal |
//! | --- | --- | --- |
//! | `bench consensus` | real nodes on loopback, no block pacing: blocks/s, finality latency p50/p99, against the physical floor (3 one-way loopback hops + 1 fsync) | p50 <= 10 ms at 4 validators |
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

mod attest;
pub(crate) mod common;
mod consensus;
mod grpc;
mod scale;
mod sync;

use super::CliResult;
use clap::Subcommand;

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
pub fn run(c: BenchCommand) -> CliResult {
    match c {
        BenchCommand::Consensus(a) => consensus::run(a),
        BenchCommand::Scale(a) => scale::run(a),
        BenchCommand::Grpc(a) => grpc::run(a),
        BenchCommand::Attest(a) => attest::run(a),
        BenchCommand::Sync(a) => sync::run(a),
    }
}
