//! Proof-of-Impact attestation rules (CONTRACT section 7). Filled in by the
//! PoI work; the chain already folds finalized attestations into `poi`.
