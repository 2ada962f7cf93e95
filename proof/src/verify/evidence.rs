//! `evidence.json`: two conflicting signed votes by one validator, and their
//! inclusion in a committed block.

use super::commit::{check_inclusion, MerkleRoot};
use super::{check_envelope, decode_canonical, fail, load_genesis, TrustRoot};
use crate::encoding::unb64;
use crate::error::VerifyError;
use crate::evidence::{EvidenceDoc, DUPLICATE_VOTE_KIND, EVIDENCE_VERSION};
use crate::wq_proof::percent;
use bizra_consensus::evidence;
use bizra_consensus::types::short_hex;
use bizra_proto::{payload_type, SignedVote, Vote, VoteKind};

/// Checks an `evidence.json` against a genesis file's bytes:
/// * `version` is `evidence/1` (else exit 2) and `kind` is `duplicate-vote`;
///   `validator` is a genesis validator; `id`, when present, is the evidence id;
/// * `votes` holds exactly two DSSE envelopes, each of payloadType
///   `application/vnd.bizra.vote+protobuf` with exactly one signature, whose keyid is
///   `validator`, valid under the one signature rule; each payload is a canonically
///   encoded `Vote` of genesis's chain id by `validator`;
/// * the votes conflict: same height, round and kind, different block hashes. The
///   `Evidence` is rebuilt in canonical order ([`evidence::duplicate_vote`]) and
///   checked by [`evidence::check`], the function blocks are validated with (shape
///   and both signatures), and its height must be includable at `inclusion.height`
///   ([`evidence::check_age`] with genesis's `params.evidence`);
/// * `inclusion` ([`check_inclusion`]): the header hashes to `block_hash` and is for
///   `height`, this chain and the right epoch; the Merkle proof leads the leaf
///   [`evidence::leaf`] (`leaf_hash(id, "")`) to the header's `evidence_root`; the
///   commit reaches the fast quorum for (height, block_hash), as attestation.json's.
///
/// Not checked offline: that this offence was committed only once (a chain-state rule).
pub fn verify_evidence(json: &[u8], genesis: &[u8]) -> Result<String, VerifyError> {
    let g = load_genesis(genesis)?;
    let d: EvidenceDoc =
        serde_json::from_slice(json).map_err(|e| VerifyError::malformed(format!("evidence.json is malformed: {e}")))?;
    if d.version != EVIDENCE_VERSION {
        return Err(VerifyError::malformed(format!(
            "version {:?} is not {EVIDENCE_VERSION:?}",
            d.version
        )));
    }
    if d.kind != DUPLICATE_VOTE_KIND {
        return Err(fail("kind", format!("{:?}, expected {DUPLICATE_VOTE_KIND:?}", d.kind)));
    }
    let root = TrustRoot::from_genesis(&g);
    if !root.keys.contains_key(&d.validator) {
        return Err(fail(
            "validator",
            format!("{} is not a validator of this genesis", d.validator),
        ));
    }
    if d.votes.len() != 2 {
        return Err(fail("votes", format!("{} votes, expected 2", d.votes.len())));
    }
    let mut signed = Vec::with_capacity(2);
    for (i, env) in d.votes.iter().enumerate() {
        let f = format!("votes[{i}]");
        let (_, payload) = check_envelope(env, &f, payload_type::VOTE, &root.keys, Some(&d.validator))?;
        let pf = format!("{f}.payload");
        let v: Vote = decode_canonical(&payload, &pf)?;
        if v.chain_id != root.chain_id {
            return Err(fail(
                &pf,
                format!("chain_id {:?}, expected {:?}", v.chain_id, root.chain_id),
            ));
        }
        if v.validator != d.validator {
            return Err(fail(
                &pf,
                format!(
                    "validator {} is not the evidence's validator {}",
                    v.validator, d.validator
                ),
            ));
        }
        let sig = unb64(&env.signatures[0].sig).map_err(|e| fail(&format!("{f}.signatures[0].sig"), e))?;
        signed.push(SignedVote {
            vote: Some(v),
            signature: sig,
        });
    }
    let (a, b) = (
        signed[0].vote.as_ref().expect("set"),
        signed[1].vote.as_ref().expect("set"),
    );
    for (name, same) in [
        ("height", a.height == b.height),
        ("round", a.round == b.round),
        ("kind", a.kind == b.kind),
    ] {
        if !same {
            return Err(fail(
                "votes[1].payload",
                format!("{name} differs from votes[0]'s: the votes are not for one (height, round, kind)"),
            ));
        }
    }
    if a.block_hash == b.block_hash {
        return Err(fail(
            "votes",
            format!("both votes are for block {:?}: no conflict", hex::encode(&a.block_hash)),
        ));
    }
    let (vh, vr, vk) = (a.height, a.round, a.kind);
    let ev = evidence::duplicate_vote(signed[0].clone(), signed[1].clone()).expect("the block hashes differ");
    evidence::check(&root.chain_id, &g.members, &ev).map_err(|e| fail("votes", e))?;
    let id = evidence::evidence_id(&ev);
    if let Some(given) = &d.id {
        if *given != hex::encode(id) {
            return Err(fail(
                "id",
                format!("{given}, but the evidence hashes to {}", hex::encode(id)),
            ));
        }
    }
    let p = g.params();
    evidence::check_age(&p.evidence, p.epoch_length, vh, d.inclusion.height)
        .map_err(|e| fail("inclusion.height", e))?;
    let inc = check_inclusion(&g, &root, &d.inclusion, &evidence::leaf(&ev), MerkleRoot::Evidence)?;
    let kind = match VoteKind::try_from(vk) {
        Ok(VoteKind::Prevote) => "prevotes",
        _ => "precommits",
    };
    Ok(format!(
        "valid: duplicate-vote evidence {} against {}: two {kind} at height {vh} round {vr}, \
committed at height {} (block {}…, {} weight >= {} fast threshold)",
        hex::encode(id),
        d.validator,
        inc.header.height,
        short_hex(&inc.block_hash),
        percent(inc.commit.share_bps),
        percent(inc.commit.threshold_bps),
    ))
}
