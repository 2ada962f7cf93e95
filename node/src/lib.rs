//! The bizra validator node: a thin tokio shell around the pure consensus
//! core (`bizra-consensus`), with libp2p networking (`bizra-p2p`), sled
//! storage (`bizra-storage`), a tonic gRPC API and Prometheus metrics.

#![warn(missing_docs)]

pub mod admission;
pub mod config;
pub mod engine;
pub mod evidence_pool;
pub mod keys;
pub mod metrics;
pub mod metrics_http;
pub mod pool;
pub mod rpc;
pub mod state;

/// The fuzz targets' fixed world (`bizra_testkit::world`) for this crate's
/// unit tests, with the node's attestation pool. The fuzz entry points
/// themselves are in the `bizra-fuzz` crate (`fuzz/`).
#[cfg(test)]
mod test_world {
    pub(crate) use bizra_testkit::world::{world_attestation, NOW_MS};

    /// The world, plus what the node adds to it.
    pub(crate) struct World(&'static bizra_testkit::world::World);

    impl std::ops::Deref for World {
        type Target = bizra_testkit::world::World;
        fn deref(&self) -> &Self::Target {
            self.0
        }
    }

    impl World {
        /// A fresh attestation pool that remembers the world chain's finalized attestations.
        pub(crate) fn pool(&self) -> crate::pool::AttestationPool {
            let mut pool = crate::pool::AttestationPool::new(crate::pool::DEFAULT_CAPACITY);
            for (b, _, _) in &self.blocks {
                pool.remove_finalized(
                    b.attestations
                        .iter()
                        .map(|e| crate::pool::FinalizedKey::from_envelope(e, &self.genesis.members)),
                );
            }
            pool
        }
    }

    /// The world (built once per process).
    pub(crate) fn world() -> World {
        World(bizra_testkit::world::world())
    }
}
