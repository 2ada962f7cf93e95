//! Basic chain types shared by every module.

/// A BLAKE3-256 digest.
pub type Hash = [u8; 32];
/// A block height: genesis is 0, the first block 1 (label `B{height}`, docs/PROTOCOL.md §3).
pub type Height = u64;
/// A consensus round within one height, from 0.
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
    /// Our block proposal (signed only by the round's proposer). The
    /// discriminants are the step numbers the sign guard stores on disk.
    Proposal = 0,
    /// Our prevote.
    Prevote = 1,
    /// Our precommit.
    Precommit = 2,
}

/// Position of a signature: the guard only ever moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignPosition {
    /// Height of the signed message.
    pub height: Height,
    /// Round of the signed message.
    pub round: Round,
    /// Which of the round's messages it is.
    pub step: SignStep,
}

impl SignStep {
    /// `proposal`, `prevote` or `precommit`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignStep::Proposal => "proposal",
            SignStep::Prevote => "prevote",
            SignStep::Precommit => "precommit",
        }
    }
}

/// The step numbered `n` on disk (0 proposal, 1 prevote, 2 precommit);
/// any other number is returned as the error.
impl TryFrom<u8> for SignStep {
    type Error = u8;
    fn try_from(n: u8) -> Result<SignStep, u8> {
        match n {
            0 => Ok(SignStep::Proposal),
            1 => Ok(SignStep::Prevote),
            2 => Ok(SignStep::Precommit),
            n => Err(n),
        }
    }
}

/// `height H round R STEP (step N)`, as the sign guard's errors print it.
impl std::fmt::Display for SignPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "height {} round {} {} (step {})",
            self.height,
            self.round,
            self.step.as_str(),
            self.step as u8
        )
    }
}
