//! Commit certificates: verifiable on their own, given the epoch's weights.

use crate::messages::{check_vote_with, MessageError, VerifiedVote};
use crate::quorum;
use crate::types::{hash_from_slice, Hash, Height};
use crate::validators::{EpochWeights, Membership};
use bizra_proto::{CommitCertificate, SignedVote, VoteKind};
use std::collections::HashSet;

/// Why a commit certificate is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    /// The certificate is for another height than the block it should certify.
    #[error("certificate is for height {found}, expected {expected}")]
    Height {
        /// The height of the block being certified.
        expected: Height,
        /// The certificate's `height`.
        found: Height,
    },
    /// `block_hash` is not 32 bytes, or is not the hash of the expected block.
    #[error("certificate block hash is malformed or does not match the block")]
    BlockHash,
    /// A precommit failed [`crate::messages::check_vote`].
    #[error("precommit #{index}: {source}")]
    Vote {
        /// Position of the precommit in `precommits`, from 0.
        index: usize,
        /// Why it failed.
        source: MessageError,
    },
    /// The precommit at this position (from 0) is signed but is not a
    /// precommit for the certificate's height, round and block hash.
    #[error("precommit #{0} is not a precommit for the certified (height, round, block)")]
    Mismatch(usize),
    /// This validator (id) has more than one precommit in the certificate.
    #[error("validator {0} signed twice")]
    Duplicate(String),
    /// The signers' weight does not reach the quorum (docs/PROTOCOL.md §4).
    #[error("signed weight {signed} of {total} is below the quorum of {threshold_bps} bps")]
    BelowQuorum {
        /// Summed weight of the distinct signers.
        signed: u128,
        /// Total weight of the epoch.
        total: u128,
        /// The threshold that was required.
        threshold_bps: u32,
    },
}

/// The weight tally of a verified certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertTally {
    /// Genesis indices of the distinct signers, in the certificate's order.
    pub signers: Vec<usize>,
    /// Sum of the signers' weights in the epoch's weights.
    pub signed_weight: u128,
    /// Total weight of the epoch.
    pub total_weight: u128,
}

impl CertTally {
    /// The signed share of the total weight, in bps, rounded down (compare
    /// with `fast_threshold_bps` and `economic_threshold_bps`).
    pub fn share_bps(&self) -> u32 {
        quorum::share_bps(self.signed_weight, self.total_weight)
    }
}

/// A certificate whose precommits each passed [`crate::messages::check_vote`] (canonical
/// form, chain id, membership, the one signature rule). That part needs no
/// chain state, so a node can run it ahead of the driver and on any thread
/// (sync checks a whole range across all cores); [`verify_checked`] then
/// adds the contextual rules. The fields are private: the only way to get
/// one is [`check_signatures`].
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedCertificate {
    cert: CommitCertificate,
    votes: Vec<VerifiedVote>,
}

impl CheckedCertificate {
    /// The certificate as received.
    pub fn cert(&self) -> &CommitCertificate {
        &self.cert
    }
    /// The certificate as received, dropping the checked votes.
    pub fn into_cert(self) -> CommitCertificate {
        self.cert
    }
}

/// The context-free half of [`verify`]: every precommit's signature, chain
/// and signer.
pub fn check_signatures(
    chain_id: &str,
    members: &Membership,
    cert: CommitCertificate,
) -> Result<CheckedCertificate, CertError> {
    check_signatures_with(chain_id, members, cert, |_, _| false)
}

/// [`check_signatures`], skipping the Ed25519 check of precommits that
/// `known` says already passed it byte for byte (see
/// [`crate::messages::check_vote_with`]).
pub fn check_signatures_with(
    chain_id: &str,
    members: &Membership,
    cert: CommitCertificate,
    known: impl Fn(usize, &SignedVote) -> bool,
) -> Result<CheckedCertificate, CertError> {
    let votes = cert
        .precommits
        .iter()
        .enumerate()
        .map(|(index, sv)| {
            check_vote_with(chain_id, members, sv, &known).map_err(|source| CertError::Vote { index, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CheckedCertificate { cert, votes })
}

fn check_expected(cert: &CommitCertificate, expected: Option<(Height, Hash)>) -> Result<Hash, CertError> {
    let hash = hash_from_slice(&cert.block_hash)
        .ok()
        .flatten()
        .ok_or(CertError::BlockHash)?;
    if let Some((h, bh)) = expected {
        if cert.height != h {
            return Err(CertError::Height {
                expected: h,
                found: cert.height,
            });
        }
        if bh != hash {
            return Err(CertError::BlockHash);
        }
    }
    Ok(hash)
}

/// Verifies every precommit (one signature rule), distinctness, that each is for
/// exactly (height, round, block_hash), and the quorum under `threshold_bps`.
pub fn verify(
    chain_id: &str,
    members: &Membership,
    weights: &EpochWeights,
    threshold_bps: u32,
    cert: &CommitCertificate,
    expected: Option<(Height, Hash)>,
) -> Result<CertTally, CertError> {
    // The cheap header checks first, so a mismatched certificate costs no
    // signature checks.
    verify_with(chain_id, members, weights, threshold_bps, cert, expected, |_, _| false)
}

/// [`verify`], skipping the Ed25519 check of precommits `known` vouches for.
pub fn verify_with(
    chain_id: &str,
    members: &Membership,
    weights: &EpochWeights,
    threshold_bps: u32,
    cert: &CommitCertificate,
    expected: Option<(Height, Hash)>,
    known: impl Fn(usize, &SignedVote) -> bool,
) -> Result<CertTally, CertError> {
    check_expected(cert, expected)?;
    let checked = check_signatures_with(chain_id, members, cert.clone(), known)?;
    verify_checked(members, weights, threshold_bps, &checked, expected)
}

/// The contextual half of [`verify`], for a certificate whose signatures
/// were checked: each precommit is for exactly (height, round, block_hash),
/// signers are distinct, and their weight reaches `threshold_bps`.
pub fn verify_checked(
    members: &Membership,
    weights: &EpochWeights,
    threshold_bps: u32,
    checked: &CheckedCertificate,
    expected: Option<(Height, Hash)>,
) -> Result<CertTally, CertError> {
    let cert = &checked.cert;
    let hash = check_expected(cert, expected)?;
    let mut seen = HashSet::new();
    let mut signed: u128 = 0;
    let mut signers = Vec::with_capacity(cert.precommits.len());
    for (index, v) in checked.votes.iter().enumerate() {
        if v.kind != VoteKind::Precommit
            || v.height() != cert.height
            || v.round() != cert.round
            || v.value != Some(hash)
        {
            return Err(CertError::Mismatch(index));
        }
        if !seen.insert(v.validator) {
            return Err(CertError::Duplicate(members.get(v.validator).id.clone()));
        }
        signed += weights.weight(v.validator);
        signers.push(v.validator);
    }
    if !quorum::reaches(signed, weights.total, threshold_bps) {
        return Err(CertError::BelowQuorum {
            signed,
            total: weights.total,
            threshold_bps,
        });
    }
    Ok(CertTally {
        signers,
        signed_weight: signed,
        total_weight: weights.total,
    })
}

/// Tally of a certificate already known to be valid (no signature checks).
pub fn tally_trusted(members: &Membership, weights: &EpochWeights, cert: &CommitCertificate) -> CertTally {
    let mut seen = HashSet::new();
    let mut signed = 0;
    let mut signers = Vec::new();
    for sv in &cert.precommits {
        if let Some(i) = sv.vote.as_ref().and_then(|v| members.index_of(&v.validator)) {
            if seen.insert(i) {
                signed += weights.weight(i);
                signers.push(i);
            }
        }
    }
    CertTally {
        signers,
        signed_weight: signed,
        total_weight: weights.total,
    }
}
