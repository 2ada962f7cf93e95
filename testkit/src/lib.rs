//! Test fixtures shared by the workspace's tests, in one place: deterministic
//! keys ([`keys`]), a genesis of `n` validators ([`genesis`]), votes and
//! commit certificates signed by a chosen set ([`votes`]), a finalized chain
//! of `k` signed blocks with their certificates, chain states and an
//! in-memory store ([`chain`]), the fixed world of the fuzz targets
//! ([`world`]), and the runner of the independent Python spec verifier
//! ([`spec_verifier`]).
//!
//! A dev-dependency: it depends on `bizra-consensus`, `bizra-proto` and
//! `bizra-storage` and is pure (no tokio, no libp2p, no clock). A crate's own
//! `#[cfg(test)]` unit tests cannot use it when it depends on that crate (the
//! types would be two copies), so `consensus`'s and `storage`'s unit tests
//! keep their own fixtures; their integration tests (`tests/`) can use it.
//!
//! Everything is deterministic: the same calls give the same bytes, so
//! generated fuzz seeds and signed artifacts are reproducible.

#![warn(missing_docs)]

pub mod chain;
pub mod genesis;
pub mod keys;
pub mod spec_verifier;
pub mod votes;
pub mod world;

/// The in-memory [`bizra_storage::Store`] (a re-export, not a copy).
pub use bizra_storage::MemStore;
pub use chain::{ChainBuilder, SignedChain};
pub use genesis::{GenesisBuilder, TestGenesis};
pub use keys::{signer, signers};
pub use votes::{commit, vote};

#[cfg(test)]
mod tests {
    use super::*;
    use bizra_consensus::genesis::Genesis;
    use bizra_storage::Store;

    #[test]
    fn signers_are_the_seeded_keys() {
        let s = signers(1, 4);
        assert_eq!(s.len(), 4);
        assert_eq!(s[2].secret_bytes(), [3; 32]);
        assert_eq!(s[0].id(), signer(1).id());
    }

    #[test]
    fn genesis_bytes_parse_to_the_genesis() {
        let s = signers(1, 3);
        let t = GenesisBuilder::new("bizra-test", &s).stakes(|i| 10 + i as u64).build();
        let parsed = Genesis::from_bytes(&t.bytes).unwrap();
        assert_eq!(parsed.hash, t.genesis.hash);
        assert_eq!(t.genesis.members.len(), 3);
        assert_eq!(t.genesis.doc.validators[2].stake, 12);
        assert_eq!(t.genesis.doc.validators[1].id, s[1].id());
    }

    #[test]
    fn a_chain_signed_by_a_quorum_is_stored_with_its_certificates() {
        let s = signers(1, 4);
        let g = GenesisBuilder::new("bizra-test", &s).build().genesis;
        let chain = ChainBuilder::new(g.clone(), &s).signed_by(&[0, 1, 2]).build(3);
        assert_eq!(chain.blocks.len(), 3);
        assert_eq!(chain.states.len(), 4);
        assert_eq!(chain.head().height, 3);
        assert_eq!(chain.head_commit().precommits.len(), 3);
        assert_eq!(chain.store.head().unwrap().map(|(h, _)| h), Some(3));
        assert_eq!(chain.store.chain_state().unwrap(), Some(chain.head().to_bytes()));
        for (i, fb) in chain.finalized_blocks().iter().enumerate() {
            assert_eq!(fb.block.as_ref(), Some(&chain.blocks[i].0));
        }
    }

    #[test]
    fn the_world_is_built_once_and_valid() {
        let w = world::world();
        assert!(std::ptr::eq(w, world::world()));
        assert_eq!(w.blocks.len() as u64, world::CHAIN_LEN);
        assert_eq!(w.head().height, world::CHAIN_LEN);
        assert_eq!(w.genesis.chain_id(), world::CHAIN_ID);
        assert_eq!(w.blocks[2].0.attestations.len(), 2);
        let pre = w.precommitted();
        assert!(w
            .blocks
            .iter()
            .all(|(b, h, _)| pre.contains(&(world::header_height(b), *h))));
        let (b, h, _) = &w.blocks[1];
        assert_eq!(w.signed_block(2, h), Some(b));
    }
}
