//! Basic chain types shared by every module.

/// A BLAKE3-256 digest.
pub type Hash = [u8; 32];
pub type Height = u64;
pub type Round = u32;

/// `B{height}`: the label of a block (genesis is `B0`).
pub fn block_label(height: Height) -> String {
    format!("B{height}")
}

/// BLAKE3 of `data`.
pub fn hash_bytes(data: &[u8]) -> Hash {
    *blake3::hash(data).as_bytes()
}

/// Converts a protobuf `bytes` field into a hash. An empty field is `None`.
pub fn hash_from_slice(b: &[u8]) -> Result<Option<Hash>, String> {
    match b.len() {
        0 => Ok(None),
        32 => {
            let mut h = [0u8; 32];
            h.copy_from_slice(b);
            Ok(Some(h))
        }
        n => Err(format!("hash must be 32 bytes, got {n}")),
    }
}

/// First 8 hex digits of a hash, for logs and agreement lines.
pub fn short_hex(h: &[u8]) -> String {
    hex::encode(&h[..h.len().min(4)])
}

/// The epoch a height belongs to: heights `1..=L` are epoch 0, `L+1..=2L` epoch 1, ...
/// Genesis (height 0) is epoch 0 too.
pub fn epoch_of(height: Height, epoch_length: u64) -> u64 {
    height.saturating_sub(1) / epoch_length.max(1)
}

/// The step a signed message belongs to, in the order a validator signs them
/// within one round. Used by the double-sign guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignStep {
    Proposal = 0,
    Prevote = 1,
    Precommit = 2,
}

/// Position of a signature: the guard only ever moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignPosition {
    pub height: Height,
    pub round: Round,
    pub step: SignStep,
}
