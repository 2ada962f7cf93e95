//! The JSON artifacts (`wq_proof.json`, `attestation.json`, `evidence.json`),
//! their DSSE envelope form and the offline fixtures now live in the
//! `bizra-proof` crate (`proof/`); they are re-exported here so that
//! `crate::proof::…` paths keep working.

pub use bizra_proof::attestation::*;
pub use bizra_proof::encoding::*;
pub use bizra_proof::evidence::*;
pub use bizra_proof::fixture;
pub use bizra_proof::wq_proof::*;
