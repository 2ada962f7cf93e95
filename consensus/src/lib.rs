//! # bizra-consensus
//!
//! The pure core of a bizra validator: Tendermint generalized to weighted
//! votes, the chain rules, and `wq_weight`. No networking, no disk, no clock,
//! no async: a [`driver::Driver`] takes inputs (proposals, votes, timeouts,
//! the current time as a value) and returns effects (persist, broadcast,
//! schedule a timeout, request a value, decide, report evidence). The same
//! code runs under the node's tokio shell and the deterministic simulator.
//!
//! Where to look:
//! * the quorum rule: [`quorum`]
//! * the round state machine and the driver across rounds: [`driver`]
//! * the weighted vote keeper and equivocation detection: [`vote_keeper`]
//! * proposer selection: [`proposer`]
//! * `wq_weight` and epochs: [`weights`], [`chain`]
//! * signatures (DSSE PAE + strict Ed25519): [`signing`]
//! * commit certificates: [`certificate`]; their compact gossip form: [`compact`]
//! * PoI attestation rules: [`poi`]
//! * misbehaviour evidence and jailing: [`evidence`], [`chain`]

#![warn(missing_docs)]

pub mod certificate;
pub mod chain;
pub mod compact;
pub mod driver;
pub mod evidence;
pub mod genesis;
pub mod merkle;
pub mod messages;
pub mod poi;
pub mod proposer;
pub mod quorum;
pub mod signing;
pub mod types;
pub mod validators;
pub mod vote_keeper;
pub mod weights;

pub use bizra_proto as proto;
