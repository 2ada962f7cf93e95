//! `wq_proof.json`: identity, signed head reports, agreement and the commit
//! (the rules are listed in the [module docs](super)).

use super::weights::epoch_weights;
use super::{check_commit, check_envelope, decode_canonical, fail, load_genesis, TrustRoot};
use crate::encoding::unhex_hash;
use crate::error::VerifyError;
use crate::wq_proof::{agreement, percent, WqProof, WQ_PROOF_VERSION};
use bizra_consensus::types::{block_label, epoch_of, short_hex, Hash};
use bizra_proto::{payload_type, HeadReport};
use std::collections::{BTreeMap, BTreeSet};

/// The outcome of [`check_proof`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofSummary {
    /// The proven height.
    pub height: u64,
    /// The block hash the commit certifies.
    pub block_hash: Hash,
    /// The agreement string, as checked against the head reports.
    pub agreement: String,
    /// Whether every head report is for `block_hash`.
    pub heads_agree: bool,
    /// The commit's round.
    pub round: u32,
    /// Number of validators whose precommits verified.
    pub signers: usize,
    /// Sum of the signers' weights, recomputed.
    pub signed_weight: u128,
    /// Sum of all weights of the epoch, recomputed.
    pub total_weight: u128,
    /// `signed_weight` as a share of `total_weight`, in bps.
    pub share_bps: u32,
    /// The fast-quorum threshold checked against, in bps.
    pub threshold_bps: u32,
}

/// Version, chain id and genesis hash of a proof.
fn check_identity(p: &WqProof, root: &TrustRoot) -> Result<(), VerifyError> {
    if p.version != WQ_PROOF_VERSION {
        return Err(fail(
            "version",
            format!("{:?}, expected {WQ_PROOF_VERSION:?}", p.version),
        ));
    }
    if p.chain_id != root.chain_id {
        return Err(fail(
            "chain_id",
            format!("proof is for chain {:?}, genesis is {:?}", p.chain_id, root.chain_id),
        ));
    }
    let gh = unhex_hash(&p.genesis_hash).map_err(|e| fail("genesis_hash", e))?;
    if gh != root.genesis_hash {
        return Err(fail(
            "genesis_hash",
            format!(
                "{} in the proof, but the genesis file hashes to {} (a different genesis)",
                p.genesis_hash,
                hex::encode(root.genesis_hash)
            ),
        ));
    }
    Ok(())
}

/// Checks a parsed proof against `root`, with `weights` the validated weights of
/// the height's epoch. With `require_agreement` every head must be the proof's
/// `block_hash` (what `bizra verify` demands); without it, disagreeing heads are
/// allowed as long as each is correctly signed (what `bizra wq-proof` checks
/// before writing a diagnostic proof).
pub fn check_proof(
    p: &WqProof,
    root: &TrustRoot,
    weights: &BTreeMap<String, u128>,
    require_agreement: bool,
) -> Result<ProofSummary, VerifyError> {
    check_identity(p, root)?;
    if p.height == 0 {
        return Err(fail("height", "0 is genesis; a proof is for a finalized block"));
    }
    let label = block_label(p.height);
    if p.deterministic_head != label {
        return Err(fail(
            "deterministic_head",
            format!("{:?}, expected {label:?}", p.deterministic_head),
        ));
    }
    let block_hash = unhex_hash(&p.block_hash).map_err(|e| fail("block_hash", e))?;
    if p.validators.is_empty() {
        return Err(fail("validators", "empty"));
    }
    let mut ids = BTreeSet::new();
    let mut hashes = Vec::with_capacity(p.validators.len());
    for (i, v) in p.validators.iter().enumerate() {
        let f = format!("validators[{i}]");
        if !root.keys.contains_key(&v.id) {
            return Err(fail(
                &format!("{f}.id"),
                format!("{} is not a validator of this genesis", v.id),
            ));
        }
        if !ids.insert(v.id.clone()) {
            return Err(fail(&format!("{f}.id"), format!("{} appears twice", v.id)));
        }
        if v.head != label {
            return Err(fail(&format!("{f}.head"), format!("{:?}, expected {label:?}", v.head)));
        }
        let h = unhex_hash(&v.block_hash).map_err(|e| fail(&format!("{f}.block_hash"), e))?;
        let ef = format!("{f}.envelope");
        let (_, payload) = check_envelope(&v.envelope, &ef, payload_type::HEAD_REPORT, &root.keys, Some(&v.id))?;
        let pf = format!("{ef}.payload");
        let r: HeadReport = decode_canonical(&payload, &pf)?;
        if r.chain_id != root.chain_id {
            return Err(fail(
                &pf,
                format!("chain_id {:?}, expected {:?}", r.chain_id, root.chain_id),
            ));
        }
        if r.genesis_hash != root.genesis_hash.as_slice() {
            return Err(fail(
                &pf,
                format!(
                    "genesis_hash {}, expected {}",
                    hex::encode(&r.genesis_hash),
                    p.genesis_hash
                ),
            ));
        }
        if r.height != p.height {
            return Err(fail(&pf, format!("height {}, expected {}", r.height, p.height)));
        }
        if r.block_hash != h.as_slice() {
            return Err(fail(
                &pf,
                format!(
                    "block_hash {}, but {f}.block_hash is {}",
                    hex::encode(&r.block_hash),
                    v.block_hash
                ),
            ));
        }
        if r.validator != v.id {
            return Err(fail(&pf, format!("validator {}, expected {}", r.validator, v.id)));
        }
        if require_agreement && h != block_hash {
            return Err(fail(
                &format!("{f}.block_hash"),
                format!(
                    "{} differs from the proof's block_hash {} (heads disagree)",
                    v.block_hash, p.block_hash
                ),
            ));
        }
        hashes.push(h);
    }
    let (agreement, agree) = agreement(p.height, &hashes);
    let heads_agree = agree && hashes[0] == block_hash;
    if p.agreement != agreement {
        return Err(fail(
            "agreement",
            format!("{:?}, but the head reports give {agreement:?}", p.agreement),
        ));
    }
    if p.wq_head_agreement != heads_agree {
        return Err(fail(
            "wq_head_agreement",
            format!("{}, but the head reports give {heads_agree}", p.wq_head_agreement),
        ));
    }
    if require_agreement && !p.wq_head_agreement {
        return Err(fail("wq_head_agreement", "false"));
    }
    let c = check_commit(&p.commit, "commit", root, p.height, &block_hash, weights)?;
    Ok(ProofSummary {
        height: p.height,
        block_hash,
        agreement,
        heads_agree,
        round: c.round,
        signers: c.signers,
        signed_weight: c.signed_weight,
        total_weight: c.total_weight,
        share_bps: c.share_bps,
        threshold_bps: c.threshold_bps,
    })
}

/// Checks a `wq_proof.json` against a genesis file's bytes, as `bizra verify`
/// does. `Ok` carries the summary printed on success; `Err(VerifyError::Failed)` is
/// exit 1 (invalid) and `Err(VerifyError::Malformed)` exit 2 (unreadable input).
pub fn check_wq_proof(json: &[u8], genesis_bytes: &[u8]) -> Result<String, VerifyError> {
    let g = load_genesis(genesis_bytes)?;
    let p: WqProof =
        serde_json::from_slice(json).map_err(|e| VerifyError::malformed(format!("wq_proof.json is malformed: {e}")))?;
    if p.version != WQ_PROOF_VERSION {
        return Err(VerifyError::malformed(format!(
            "version {:?} is not {WQ_PROOF_VERSION:?}",
            p.version
        )));
    }
    let root = TrustRoot::from_genesis(&g);
    // Chain and genesis first: weights of another chain mean nothing.
    check_identity(&p, &root)?;
    let epoch = epoch_of(p.height, g.params().epoch_length);
    if let Some(te) = p.telemetry_epoch {
        if te != epoch {
            return Err(fail(
                "telemetry_epoch",
                format!("{te}, but height {} is in epoch {epoch}", p.height),
            ));
        }
    }
    let (weights, recomputed) = epoch_weights(&g, p.height, Some(&p.telemetry), "telemetry")?;
    let s = check_proof(&p, &root, &weights, true)?;
    let mut out = format!(
        "valid: {} agreement at height {} on chain {} (head {}…, {} signed head reports, {} precommits in round {}, {} weight >= {} fast threshold)",
        s.agreement,
        s.height,
        root.chain_id,
        short_hex(&s.block_hash),
        p.validators.len(),
        s.signers,
        s.round,
        percent(s.share_bps),
        percent(s.threshold_bps),
    );
    if !recomputed {
        out.push_str(&format!(
            "\nnote: height {} is in epoch {epoch}; its weights come from the proof's telemetry, checked against \
genesis stakes and the wq_weight formula, but poi and rep cannot be recomputed from genesis alone",
            p.height
        ));
    }
    Ok(out)
}
