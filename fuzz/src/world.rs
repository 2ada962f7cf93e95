//! The fixed world every fuzz target runs against (`bizra_testkit::world`:
//! a 4-validator genesis with deterministic keys, a 3-block finalized chain
//! crossing an epoch boundary, pending attestations, proposals for the next
//! height), and what a node adds to it: a driver that synced the chain
//! through the engine's own sync steps, and the attestation pool.

use bizra_consensus::driver::Driver;
use bizra_node::engine::sync::{self, CheckedBlock};
use bizra_node::pool::{AttestationPool, FinalizedKey};
use std::sync::OnceLock;

pub use bizra_testkit::world::{
    header_height, world, world_attestation, world_commit, world_signer, World, BLOCK_SPACING_MS, CHAIN_ID, CHAIN_LEN,
    EPOCH_LENGTH, GENESIS_TIME_MS, NOW_MS, VALIDATORS,
};

/// Most records [`fuzz_driver_byzantine`](crate::fuzz_driver_byzantine) processes from one input.
pub const MAX_BYZANTINE_RECORDS: usize = 64;
/// The sync frame cap of the default configuration (`p2p.max_message_bytes`).
pub const MAX_MESSAGE_BYTES: usize = bizra_p2p::DEFAULT_MAX_MESSAGE_BYTES;

/// What the node adds to the [`World`].
pub trait NodeWorld {
    /// A started driver without a key that decided the world chain in this
    /// process (it synced it through `engine::sync::check_range` and
    /// `apply_range`), as a running node has it: unlike [`World::driver`]
    /// (a restarted node) it knows the round the head was decided in, so it
    /// takes late precommits of the head.
    fn synced_driver(&self) -> Driver;

    /// A fresh attestation pool that remembers the world chain's finalized attestations.
    fn pool(&self) -> AttestationPool;
}

impl NodeWorld for World {
    fn synced_driver(&self) -> Driver {
        static CHECKED: OnceLock<Vec<CheckedBlock>> = OnceLock::new();
        let checked = CHECKED.get_or_init(|| {
            let range = self
                .blocks
                .iter()
                .map(|(b, _, c)| bizra_proto::FinalizedBlock {
                    block: Some(b.clone()),
                    commit: Some(c.clone()),
                })
                .collect();
            let (checked, bad) = sync::check_range(&self.genesis, range, 1, 1);
            assert_eq!(bad, None, "the world chain's certificates verify");
            checked
        });
        let mut d = self.genesis_driver();
        let _ = d.start(NOW_MS);
        let (_, applied, refused) = sync::apply_range(&mut d, NOW_MS, checked.clone());
        assert_eq!((applied, refused), (CHAIN_LEN, None), "the world chain syncs");
        d
    }

    fn pool(&self) -> AttestationPool {
        let mut pool = AttestationPool::new(bizra_node::pool::DEFAULT_CAPACITY);
        for (b, _, _) in &self.blocks {
            pool.remove_finalized(
                b.attestations
                    .iter()
                    .map(|e| FinalizedKey::from_envelope(e, &self.genesis.members)),
            );
        }
        pool
    }
}
