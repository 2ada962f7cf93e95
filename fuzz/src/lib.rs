//! Fuzzing entry points: one function per decoder of outside bytes.
//!
//! The cargo-fuzz targets in `fuzz/targets/fuzz_targets/` and the regression
//! test `fuzz/tests/regressions.rs` both call these functions, so an input
//! that once crashed a fuzz target keeps being replayed by `cargo test` (on
//! stable).
//!
//! Every function takes the raw bytes as they arrive (a gossip message, a sync
//! frame's payload, a file) and runs them through the node's own checks,
//! against a fixed [`World`]: a 4-validator genesis and a 3-block finalized
//! chain signed with deterministic keys (`bizra_testkit::world`). The
//! engine's checks of outside bytes are public pure functions of
//! `bizra-node` that the engine calls too: gossip of votes and proposals
//! (`engine::gossip::check_consensus_gossip`), attestation batches
//! (`engine::gossip::check_attestation_batch`), evidence
//! (`engine::evidence::check_gossip`), sync requests
//! (`engine::sync_server::serve`) and synced ranges (`engine::sync::
//! check_shape` / `check_range` / `apply_range`). Nothing here mirrors
//! engine code; the library code (decoding, `check_vote`,
//! `check_proposal`, `validate_block`, `poi::check`, the driver, the store,
//! the verifiers) is the real thing.
//!
//! A function returns an [`Outcome`] (what the node would do with the
//! input) and panics only when the code under test panics or when one of the
//! invariants asserted here breaks. The invariants rely on the fuzzer not
//! being able to forge Ed25519 signatures: anything accepted must be
//! something the world's validators signed. The exception is
//! [`fuzz_driver_byzantine`], which re-signs the fuzzer's messages with the
//! keys of validators 1..=3 (a Byzantine super-majority) and checks that the
//! honest validator 0 never equivocates and never decides an invalid or
//! uncertified block.
//!
//! Seeds (valid messages for every target) come from [`seed_corpus`]; the
//! ignored test `write_seeds` in `fuzz/tests/regressions.rs` writes them
//! to `fuzz/seeds/<target>/`.
//!
//! Files: `world.rs` (the world, and what a node adds to it), `gossip.rs`
//! (gossip targets), `sync.rs` (sync targets), `files.rs` (genesis, config,
//! wq_proof.json, attestation.json), `driver_byzantine.rs` (the driver under
//! Byzantine validators, and the effect audit the sync target shares),
//! `seeds.rs`.

#![warn(missing_docs)]

mod driver_byzantine;
mod files;
mod gossip;
mod seeds;
mod sync;
mod world;

pub use driver_byzantine::fuzz_driver_byzantine;
pub use files::{fuzz_config, fuzz_genesis, fuzz_verify_attestation, fuzz_verify_wq_proof};
pub use gossip::{
    fuzz_gossip_attestation, fuzz_gossip_evidence, fuzz_gossip_proposal, fuzz_gossip_vote, fuzz_poi_payload,
};
pub use seeds::seed_corpus;
pub use sync::{fuzz_sync_request, fuzz_sync_response};
pub use world::{
    world, world_attestation, world_commit, world_signer, NodeWorld, World, BLOCK_SPACING_MS, CHAIN_ID, CHAIN_LEN,
    EPOCH_LENGTH, GENESIS_TIME_MS, MAX_BYZANTINE_RECORDS, MAX_MESSAGE_BYTES, NOW_MS, VALIDATORS,
};

/// What the node does with an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: forwarded, applied, served or loaded.
    Accepted,
    /// Dropped without penalty (stale, duplicate, out of window), with the reason.
    Ignored(String),
    /// Refused with an error (and, on the network, a strike against the sender).
    Rejected(String),
}

impl Outcome {
    /// True for [`Outcome::Accepted`].
    pub fn is_accepted(&self) -> bool {
        matches!(self, Outcome::Accepted)
    }
}

fn rejected(e: impl std::fmt::Display) -> Outcome {
    Outcome::Rejected(e.to_string())
}

/// A fuzz entry point.
pub type Target = fn(&[u8]) -> Outcome;

/// Every target, by the name of its fuzz binary and seed directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("gossip_vote", fuzz_gossip_vote),
    ("gossip_proposal", fuzz_gossip_proposal),
    ("gossip_attestation", fuzz_gossip_attestation),
    ("gossip_evidence", fuzz_gossip_evidence),
    ("poi_payload", fuzz_poi_payload),
    ("sync_request", fuzz_sync_request),
    ("sync_response", fuzz_sync_response),
    ("genesis", fuzz_genesis),
    ("config", fuzz_config),
    ("verify_wq_proof", fuzz_verify_wq_proof),
    ("verify_attestation", fuzz_verify_attestation),
    ("driver_byzantine", fuzz_driver_byzantine),
];
