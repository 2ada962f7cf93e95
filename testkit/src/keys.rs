//! Deterministic signing keys: a signer from one seed byte.

use bizra_consensus::signing::Signer;

/// The signer whose 32-byte Ed25519 secret is `seed` repeated.
pub fn signer(seed: u8) -> Signer {
    Signer::from_secret([seed; 32])
}

/// `n` signers with the seeds `first`, `first + 1`, ... (see [`signer`]).
///
/// Panics if a seed would pass 255.
pub fn signers(first: u8, n: usize) -> Vec<Signer> {
    (0..n)
        .map(|i| {
            let seed = u8::try_from(first as usize + i).expect("signer seeds stay below 256");
            signer(seed)
        })
        .collect()
}
