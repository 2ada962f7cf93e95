//! Commits (precommit envelopes, weight tally, quorum) and block inclusions
//! (header, Merkle proof, commit), shared by all three artifacts.

use super::weights::epoch_weights;
use super::{check_envelope, decode_canonical, fail, TrustRoot};
use crate::attestation::InclusionJson;
use crate::encoding::{unb64, unhex_hash};
use crate::error::VerifyError;
use crate::wq_proof::{percent, ProofCommit};
use bizra_consensus::genesis::Genesis;
use bizra_consensus::merkle;
use bizra_consensus::quorum::{self, MIN_SAFE_THRESHOLD_BPS};
use bizra_consensus::types::{epoch_of, hash_bytes, Hash};
use bizra_proto::{payload_type, BlockHeader, Vote, VoteKind};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};

/// The tally of a checked commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitSummary {
    /// The round all the precommits share.
    pub round: u32,
    /// Number of distinct validators whose precommits verified.
    pub signers: usize,
    /// Sum of the signers' weights, recomputed.
    pub signed_weight: u128,
    /// Sum of all weights of the epoch, recomputed.
    pub total_weight: u128,
    /// `signed_weight` as a share of `total_weight`, in bps (rounded down).
    pub share_bps: u32,
    /// The fast-quorum threshold checked against, in bps (genesis's, or the lowest safe one when unknown).
    pub threshold_bps: u32,
}

/// Checks a commit (wq_proof `commit`, attestation `inclusion.commit`) for
/// (height, block_hash) under `weights`, which must cover exactly `root.keys`.
pub fn check_commit(
    c: &ProofCommit,
    field: &str,
    root: &TrustRoot,
    height: u64,
    block_hash: &Hash,
    weights: &BTreeMap<String, u128>,
) -> Result<CommitSummary, VerifyError> {
    if c.signatures.is_empty() {
        return Err(fail(&format!("{field}.signatures"), "no precommits"));
    }
    let mut seen = BTreeSet::new();
    let mut round = None;
    let mut signed: u128 = 0;
    for (i, env) in c.signatures.iter().enumerate() {
        let f = format!("{field}.signatures[{i}]");
        let (keyid, payload) = check_envelope(env, &f, payload_type::VOTE, &root.keys, None)?;
        let v: Vote = decode_canonical(&payload, &format!("{f}.payload"))?;
        let pf = format!("{f}.payload");
        if VoteKind::try_from(v.kind) != Ok(VoteKind::Precommit) {
            return Err(fail(&pf, format!("vote kind {} is not PRECOMMIT", v.kind)));
        }
        if v.chain_id != root.chain_id {
            return Err(fail(
                &pf,
                format!("chain_id {:?}, expected {:?}", v.chain_id, root.chain_id),
            ));
        }
        if v.height != height {
            return Err(fail(&pf, format!("height {}, expected {height}", v.height)));
        }
        if v.block_hash != block_hash.as_slice() {
            return Err(fail(
                &pf,
                format!(
                    "precommit is for block {:?}, not {}",
                    hex::encode(&v.block_hash),
                    hex::encode(block_hash)
                ),
            ));
        }
        if v.validator != keyid {
            return Err(fail(
                &pf,
                format!("validator {} is not the signer {keyid}", v.validator),
            ));
        }
        match round {
            None => round = Some(v.round),
            Some(r) if r != v.round => {
                return Err(fail(
                    &pf,
                    format!("round {} differs from the certificate's round {r}", v.round),
                ))
            }
            _ => {}
        }
        if !seen.insert(keyid.clone()) {
            return Err(fail(&f, format!("validator {keyid} signed twice")));
        }
        let w = weights
            .get(&keyid)
            .ok_or_else(|| fail(&f, format!("signer {keyid} has no weight")))?;
        signed += w;
    }
    let listed: BTreeSet<String> = c.signers.iter().cloned().collect();
    if listed.len() != c.signers.len() {
        return Err(fail(&format!("{field}.signers"), "lists a validator twice"));
    }
    if listed != seen {
        let missing: Vec<_> = seen.difference(&listed).collect();
        let extra: Vec<_> = listed.difference(&seen).collect();
        return Err(fail(
            &format!("{field}.signers"),
            format!("does not match the signatures (not listed: {missing:?}; listed without a signature: {extra:?})"),
        ));
    }
    let total: u128 = weights.values().sum();
    let share = quorum::share_bps(signed, total);
    if c.signed_weight.0 != signed {
        return Err(fail(
            &format!("{field}.signed_weight"),
            format!(
                "{} in the proof, {signed} recomputed from the precommits",
                c.signed_weight.0
            ),
        ));
    }
    if c.total_weight.0 != total {
        return Err(fail(
            &format!("{field}.total_weight"),
            format!("{} in the proof, {total} recomputed", c.total_weight.0),
        ));
    }
    if c.share_bps != share {
        return Err(fail(
            &format!("{field}.share_bps"),
            format!("{} in the proof, {share} recomputed", c.share_bps),
        ));
    }
    let threshold = root.thresholds.map(|t| t.0).unwrap_or(MIN_SAFE_THRESHOLD_BPS);
    if !quorum::reaches(signed, total, threshold) {
        return Err(fail(
            field,
            format!(
                "signed weight {signed} of {total} ({}) is below the fast quorum of {threshold} bps",
                percent(share)
            ),
        ));
    }
    if let Some((_, economic)) = root.thresholds {
        if !c.fast_final {
            return Err(fail(
                &format!("{field}.fast_final"),
                "false, though the precommits reach the fast quorum",
            ));
        }
        if c.economic_final && !quorum::reaches(signed, total, economic) {
            return Err(fail(
                &format!("{field}.economic_final"),
                format!("true, but the precommits hold {} < {economic} bps", share),
            ));
        }
    }
    Ok(CommitSummary {
        round: round.unwrap_or_default(),
        signers: seen.len(),
        signed_weight: signed,
        total_weight: total,
        share_bps: share,
        threshold_bps: threshold,
    })
}

/// Which header root an inclusion proof leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MerkleRoot {
    /// `payload_root`, over the block's attestations.
    Payload,
    /// `evidence_root`, over the block's evidence.
    Evidence,
}

impl MerkleRoot {
    fn name(self) -> &'static str {
        match self {
            MerkleRoot::Payload => "payload_root",
            MerkleRoot::Evidence => "evidence_root",
        }
    }
    fn of(self, h: &BlockHeader) -> &[u8] {
        match self {
            MerkleRoot::Payload => &h.payload_root,
            MerkleRoot::Evidence => &h.evidence_root,
        }
    }
}

/// A checked `inclusion`.
#[derive(Clone, Debug)]
pub struct Included {
    /// The decoded block header.
    pub header: BlockHeader,
    /// BLAKE3 of the encoded header.
    pub block_hash: Hash,
    /// The checked commit tally of the block.
    pub commit: CommitSummary,
}

/// Checks an `inclusion` object (`attestation.json`, `evidence.json`):
/// `header` (base64 of the encoded `BlockHeader`) hashes to `block_hash`, is
/// for `height` (at least 1) on this chain in the right epoch; the Merkle proof
/// leads `leaf` at `leaf_index` of `leaf_count` to the header's `root`; and
/// `commit` is a commit for (height, block_hash) reaching the fast quorum,
/// checked as a wq_proof commit (weights: genesis at epoch 0, else
/// `telemetry`, see [`epoch_weights`]).
pub fn check_inclusion(
    g: &Genesis,
    root: &TrustRoot,
    inc: &InclusionJson,
    leaf: &Hash,
    which: MerkleRoot,
) -> Result<Included, VerifyError> {
    let bh = unhex_hash(&inc.block_hash).map_err(|e| fail("inclusion.block_hash", e))?;
    let header_bytes = unb64(&inc.header).map_err(|e| fail("inclusion.header", e))?;
    if hash_bytes(&header_bytes) != bh {
        return Err(fail(
            "inclusion.header",
            format!(
                "hashes to {}, not inclusion.block_hash {}",
                hex::encode(hash_bytes(&header_bytes)),
                inc.block_hash
            ),
        ));
    }
    let header = BlockHeader::decode(header_bytes.as_slice())
        .map_err(|e| fail("inclusion.header", format!("does not decode as a BlockHeader: {e}")))?;
    if header.chain_id != root.chain_id {
        return Err(fail(
            "inclusion.header",
            format!("chain_id {:?} is not this chain's", header.chain_id),
        ));
    }
    if header.height != inc.height || inc.height == 0 {
        return Err(fail(
            "inclusion.height",
            format!("{}, but the header is for height {}", inc.height, header.height),
        ));
    }
    let epoch = epoch_of(inc.height, g.params().epoch_length);
    if header.epoch != epoch {
        return Err(fail(
            "inclusion.header",
            format!("epoch {}, expected {epoch}", header.epoch),
        ));
    }
    let root_hash: Hash = which
        .of(&header)
        .try_into()
        .map_err(|_| fail("inclusion.header", format!("{} is not 32 bytes", which.name())))?;
    let siblings = inc
        .proof
        .siblings
        .iter()
        .enumerate()
        .map(|(i, s)| unhex_hash(s).map_err(|e| fail(&format!("inclusion.proof.siblings[{i}]"), e)))
        .collect::<Result<Vec<Hash>, VerifyError>>()?;
    if !merkle::verify(&root_hash, leaf, inc.proof.leaf_index, inc.proof.leaf_count, &siblings) {
        return Err(fail(
            "inclusion.proof",
            format!(
                "leaf {} of {} does not lead to the header's {} {}",
                inc.proof.leaf_index,
                inc.proof.leaf_count,
                which.name(),
                hex::encode(root_hash)
            ),
        ));
    }
    let (weights, _) = epoch_weights(g, inc.height, inc.telemetry.as_ref(), "inclusion.telemetry")?;
    let commit = check_commit(&inc.commit, "inclusion.commit", root, inc.height, &bh, &weights)?;
    Ok(Included {
        header,
        block_hash: bh,
        commit,
    })
}
