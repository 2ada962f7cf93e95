//! The artifacts of a bizra chain and their offline verification.
//!
//! * [`wq_proof`]: `wq_proof.json`, the head-agreement proof of `bizra wq-proof`;
//! * [`attestation`]: `attestation.json`, a PoI attestation with its inclusion
//!   (`bizra attest --wait`);
//! * [`evidence`]: `evidence.json`, committed equivocation evidence (`bizra evidence`);
//! * [`encoding`]: how weights, hashes and DSSE envelopes are written in them;
//! * [`verify`]: the checks `bizra verify FILE --genesis GENESIS` runs, against
//!   nothing but the chain's genesis file, with [`VerifyError`] saying whether a
//!   check failed or the input is malformed;
//! * [`served`]: the client-side checks of what a node served before an
//!   artifact is written from it;
//! * [`fixture`]: signed artifacts from deterministic keys, for tests.
//!
//! The crate is pure: no tokio, no networking. An outside program can depend on
//! it to read and check the artifacts.

#![warn(missing_docs)]

pub mod attestation;
pub mod encoding;
pub mod error;
pub mod evidence;
pub mod fixture;
pub mod served;
pub mod verify;
pub mod wq_proof;

pub use attestation::*;
pub use encoding::*;
pub use error::VerifyError;
pub use evidence::*;
pub use wq_proof::*;

#[cfg(test)]
mod tests;
