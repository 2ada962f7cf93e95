//! What a node served, checked and turned into artifacts on the client side:
//! the inclusion a node answers for an attestation or evidence (header hash,
//! height, Merkle path, commit) is checked before anything is written, and
//! `GetCommit` / `GetValidators` answers become the commit and telemetry of
//! `attestation.json` and `evidence.json`. Signatures and quorum need genesis:
//! [`crate::verify`] checks those.

use crate::attestation::{build_attestation_doc, AttestationDoc};
use crate::encoding::{parse_u128, Weight};
use crate::evidence::{build_evidence_doc, EvidenceDoc};
use crate::wq_proof::{CommitPart, ComponentsJson, Telemetry};
use bizra_consensus::merkle;
use bizra_consensus::poi;
use bizra_consensus::types::{hash_bytes, Hash};
use bizra_proto::{CommittedEvidence, Envelope, GetAttestationResponse, GetCommitResponse, GetValidatorsResponse};
use prost::Message;

/// Checks what `GetAttestation` answered before anything is written: our
/// envelope, a header that hashes to `block_hash` at `height`, a Merkle path
/// from our leaf to the header's payload root, and (if present) a commit
/// certificate for that block.
pub fn check_inclusion(ours: &Envelope, r: &GetAttestationResponse) -> Result<(), String> {
    if r.envelope.as_ref() != Some(ours) {
        return Err("the node returned a different envelope".into());
    }
    let sig = ours.signatures.first().map(|s| s.sig.as_slice()).unwrap_or_default();
    let leaf = merkle::leaf_hash(&poi::attestation_id(&ours.payload), sig);
    check_served_inclusion(
        Served {
            header: r.header.as_ref(),
            block_hash: &r.block_hash,
            height: r.height,
            proof: r.proof.as_ref(),
            commit: r.commit.as_ref(),
        },
        "payload_root",
        |h| &h.payload_root,
        &leaf,
    )
}

/// What a node served as a block inclusion (GetAttestation, GetEvidence).
pub struct Served<'a> {
    /// The block header served, if any.
    pub header: Option<&'a bizra_proto::BlockHeader>,
    /// The block hash served (should be BLAKE3 of the encoded header).
    pub block_hash: &'a [u8],
    /// The height served (should be the header's).
    pub height: u64,
    /// The Merkle proof of the item's leaf, if any.
    pub proof: Option<&'a bizra_proto::InclusionProof>,
    /// The block's commit certificate, if served.
    pub commit: Option<&'a bizra_proto::CommitCertificate>,
}

/// Checks a served inclusion before anything is written: the header hashes
/// to the block hash and is for the height, `leaf` is proven under the
/// header's root `root_name` (`root_of`), and the commit, if any, is for
/// this block.
pub fn check_served_inclusion(
    r: Served<'_>,
    root_name: &str,
    root_of: impl Fn(&bizra_proto::BlockHeader) -> &Vec<u8>,
    leaf: &Hash,
) -> Result<(), String> {
    let header = r.header.ok_or("the answer has no block header")?;
    let block_hash = hash_bytes(&header.encode_to_vec());
    if r.block_hash != block_hash {
        return Err(format!(
            "block_hash {} is not the hash of the header ({})",
            hex::encode(r.block_hash),
            hex::encode(block_hash)
        ));
    }
    if header.height != r.height {
        return Err(format!("header height {} is not {}", header.height, r.height));
    }
    let proof = r.proof.ok_or("the answer has no inclusion proof")?;
    let root: Hash = root_of(header)
        .as_slice()
        .try_into()
        .map_err(|_| format!("the header's {root_name} is not 32 bytes"))?;
    let siblings = proof
        .siblings
        .iter()
        .map(|s| {
            s.as_slice()
                .try_into()
                .map_err(|_| "a proof sibling is not 32 bytes".to_string())
        })
        .collect::<Result<Vec<Hash>, String>>()?;
    if !merkle::verify(&root, leaf, proof.leaf_index, proof.leaf_count, &siblings) {
        let name = root_name.replace('_', " ");
        return Err(format!(
            "the Merkle proof (leaf {} of {}) does not lead to the {name}",
            proof.leaf_index, proof.leaf_count
        ));
    }
    if let Some(c) = r.commit {
        if c.height != r.height || c.block_hash != block_hash {
            return Err("the commit certificate is not for this block".into());
        }
    }
    Ok(())
}

/// Assembles `attestation.json` from the node's answers: the inclusion from
/// `GetAttestation`, the commit tally and precommit envelopes from
/// `GetCommit(height)`, and the epoch's weights from `GetValidators` (optional
/// at epoch 0, where they follow from genesis).
pub fn attestation_json(
    envelope: &Envelope,
    included: &GetAttestationResponse,
    commit: &GetCommitResponse,
    validators: Option<&GetValidatorsResponse>,
) -> Result<AttestationDoc, String> {
    let header = included.header.as_ref().ok_or("GetAttestation: no block header")?;
    let proof = included.proof.as_ref().ok_or("GetAttestation: no inclusion proof")?;
    if let Some(c) = &commit.commit {
        if c.height != included.height {
            return Err(format!(
                "GetCommit answered height {}, expected {}",
                c.height, included.height
            ));
        }
    }
    let part = commit_part(commit)?;
    let telemetry = validators.map(telemetry_of).transpose()?;
    build_attestation_doc(envelope, included.height, header, proof, &part, telemetry)
}

/// A `GetCommit` answer as the commit part of an artifact (weights parsed).
pub fn commit_part(commit: &GetCommitResponse) -> Result<CommitPart, String> {
    let weight =
        |what: &str, s: &str| parse_u128(s).ok_or_else(|| format!("GetCommit: {what} {s:?} is not a decimal u128"));
    Ok(CommitPart {
        signers: commit.signers.clone(),
        signatures: commit.signatures.clone(),
        signed_weight: weight("signed_weight", &commit.signed_weight)?,
        total_weight: weight("total_weight", &commit.total_weight)?,
        share_bps: commit.share_bps,
        fast_final: commit.fast_final,
        economic_final: commit.economic_final,
    })
}

/// A `GetValidators` answer as artifact telemetry.
pub fn telemetry_of(v: &GetValidatorsResponse) -> Result<Telemetry, String> {
    let mut t = Telemetry::default();
    for i in &v.validators {
        let w = parse_u128(&i.wq_weight).ok_or_else(|| {
            format!(
                "GetValidators: wq_weight {:?} of {} is not a decimal u128",
                i.wq_weight, i.id
            )
        })?;
        t.wq_weight.insert(i.id.clone(), Weight(w));
        t.components.insert(
            i.id.clone(),
            ComponentsJson {
                stake: i.stake,
                poi: i.poi,
                rep: i.rep,
            },
        );
        if i.jailed {
            t.jailed.insert(i.id.clone(), i.jailed_until_epoch);
        }
    }
    Ok(t)
}

/// Assembles `evidence.json` from the node's answers: the `GetEvidence` item,
/// the commit tally of `GetCommit(height)` and (optional at epoch 0) the
/// epoch's weights from `GetValidators`.
pub fn evidence_json(
    ce: &CommittedEvidence,
    commit: &GetCommitResponse,
    validators: Option<&GetValidatorsResponse>,
) -> Result<EvidenceDoc, String> {
    let part = commit_part(commit)?;
    let telemetry = validators.map(telemetry_of).transpose()?;
    build_evidence_doc(ce, &part, telemetry)
}
