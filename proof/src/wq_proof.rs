//! `wq_proof.json`: the head-agreement proof written by `bizra wq-proof`, its
//! parts as collected from the nodes, and [`build_proof`], which assembles it.

use crate::encoding::{EnvelopeJson, Weight};
use bizra_consensus::types::{block_label, short_hex, Hash};
use bizra_consensus::weights::Components;
use bizra_proto::Envelope;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `version` of `wq_proof.json`.
pub const WQ_PROOF_VERSION: &str = "wq-proof/1";

/// One queried validator in `wq_proof.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofValidator {
    /// Validator id (hex public key) of the node behind `endpoint`.
    pub id: String,
    /// The gRPC endpoint queried.
    pub endpoint: String,
    /// `B{height}` of the proof height.
    pub head: String,
    /// Hex block hash this validator finalized at the proof height.
    pub block_hash: String,
    /// DSSE envelope over `HeadReport` for exactly the proof height, signed by `id`.
    pub envelope: EnvelopeJson,
}

/// The commit certificate of the proof height, with its weight tally.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofCommit {
    /// Ids of the validators whose precommits are in `signatures`, each once.
    pub signers: Vec<String>,
    /// DSSE envelopes of the precommit votes.
    pub signatures: Vec<EnvelopeJson>,
    /// Sum of the signers' `wq_weight`s.
    pub signed_weight: Weight,
    /// Sum of every validator's `wq_weight` in the epoch.
    pub total_weight: Weight,
    /// `signed_weight` as a share of `total_weight`, in bps (0..=10000, rounded down).
    pub share_bps: u32,
    /// Whether the precommits reach the fast-finality threshold (`fast_threshold_bps`).
    pub fast_final: bool,
    /// Whether the precommits reach the economic-finality threshold (`economic_threshold_bps`).
    pub economic_final: bool,
}

/// `wq_weight` components of one validator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentsJson {
    /// Bonded stake from genesis.
    pub stake: u64,
    /// Proof-of-Impact carry, in impact bps.
    pub poi: u64,
    /// Reputation: share of the epoch's commit certificates carrying the validator's precommit, in bps.
    pub rep: u64,
}

impl From<Components> for ComponentsJson {
    fn from(c: Components) -> Self {
        ComponentsJson {
            stake: c.stake,
            poi: c.poi,
            rep: c.rep,
        }
    }
}

impl From<ComponentsJson> for Components {
    fn from(c: ComponentsJson) -> Self {
        Components {
            stake: c.stake,
            poi: c.poi,
            rep: c.rep,
        }
    }
}

/// Weights of the epoch that certifies the proof height, per validator id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telemetry {
    /// `wq_weight` per validator id.
    pub wq_weight: BTreeMap<String, Weight>,
    /// The components of `wq_weight` per validator id.
    pub components: BTreeMap<String, ComponentsJson>,
    /// Validators jailed in this epoch for committed evidence (wq_weight 0),
    /// each with the first epoch it is free again (ADR 0014). Absent in
    /// artifacts written before jailing existed: read as none.
    #[serde(default)]
    pub jailed: BTreeMap<String, u64>,
}

/// `wq_proof.json` (docs/PROTOCOL.md §9). Unknown keys are ignored when reading.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WqProof {
    /// Always [`WQ_PROOF_VERSION`] when written.
    pub version: String,
    /// The chain's id from genesis.
    pub chain_id: String,
    /// Hex hash of the genesis file.
    pub genesis_hash: String,
    /// The proven height (at least 1).
    pub height: u64,
    /// Hex hash of the block the commit certifies at `height`.
    pub block_hash: String,
    /// `B{height}`, the label every agreeing validator should report.
    pub deterministic_head: String,
    /// Each queried validator's label joined by `/` (see [`agreement`]).
    pub agreement: String,
    /// True when every queried validator reports `block_hash` at `height`.
    pub wq_head_agreement: bool,
    /// The queried validators, in the order queried.
    pub validators: Vec<ProofValidator>,
    /// The commit certificate of `height`.
    pub commit: ProofCommit,
    /// Per-validator weights and components as served by `GetValidators` (their epoch is `telemetry_epoch`).
    pub telemetry: Telemetry,
    /// The epoch whose weights `telemetry` holds (extra key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_epoch: Option<u64>,
    /// Why telemetry is not from the proof height's epoch, if it is not (extra key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_note: Option<String>,
}

impl WqProof {
    /// Pretty-printed JSON with a trailing newline, as written to `wq_proof.json`.
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("proof serializes");
        s.push('\n');
        s
    }
}

/// What one endpoint said about the proof height.
#[derive(Clone, Debug)]
pub struct HeadPart {
    /// Validator id (hex public key) that signed the head report.
    pub id: String,
    /// The gRPC endpoint queried.
    pub endpoint: String,
    /// The block hash the endpoint finalized at the proof height.
    pub block_hash: Hash,
    /// The signed `HeadReport` envelope.
    pub envelope: Envelope,
}

/// The commit of the proof height as served by `GetCommit`.
#[derive(Clone, Debug, Default)]
pub struct CommitPart {
    /// Ids of the validators whose precommits are in `signatures`.
    pub signers: Vec<String>,
    /// Precommit votes as DSSE envelopes.
    pub signatures: Vec<Envelope>,
    /// Sum of the signers' weights, as the node tallied it.
    pub signed_weight: u128,
    /// Sum of all validators' weights in the epoch, as the node tallied it.
    pub total_weight: u128,
    /// `signed_weight` as a share of `total_weight`, in bps.
    pub share_bps: u32,
    /// Whether the node judged the block fast final.
    pub fast_final: bool,
    /// Whether the node judged the block economically final.
    pub economic_final: bool,
}

/// One validator's weight and components, from `GetValidators`.
#[derive(Clone, Debug)]
pub struct TelemetryPart {
    /// Validator id (hex public key).
    pub id: String,
    /// The validator's `wq_weight` in the served epoch.
    pub wq_weight: u128,
    /// The components `wq_weight` was computed from.
    pub components: Components,
    /// While jailed: the first epoch the validator is free again.
    pub jailed_until: Option<u64>,
}

/// Everything `build_proof` needs.
#[derive(Clone, Debug)]
pub struct ProofParts {
    /// The chain's id.
    pub chain_id: String,
    /// Hash of the genesis file.
    pub genesis_hash: Hash,
    /// The proven height.
    pub height: u64,
    /// The hash the commit certifies (the first endpoint's block).
    pub block_hash: Hash,
    /// One per queried endpoint, in the order queried.
    pub heads: Vec<HeadPart>,
    /// The commit certificate of `height`.
    pub commit: CommitPart,
    /// One weight entry per validator, becoming `telemetry`.
    pub telemetry: Vec<TelemetryPart>,
    /// The epoch the telemetry weights are from, if known.
    pub telemetry_epoch: Option<u64>,
    /// Why the telemetry is not from the proof height's epoch, if it is not.
    pub telemetry_note: Option<String>,
}

/// The agreement string: each endpoint's label for `height` joined with `/`.
/// When the hashes are not all equal, every label carries `:` plus the first
/// 8 hex digits of its hash. Returns the string and whether all hashes agree.
pub fn agreement(height: u64, hashes: &[Hash]) -> (String, bool) {
    let all_equal = hashes.windows(2).all(|w| w[0] == w[1]);
    let label = block_label(height);
    let parts: Vec<String> = hashes
        .iter()
        .map(|h| {
            if all_equal {
                label.clone()
            } else {
                format!("{label}:{}", short_hex(h))
            }
        })
        .collect();
    (parts.join("/"), all_equal)
}

/// `12.34%` from basis points.
pub fn percent(bps: u32) -> String {
    format!("{}.{:02}%", bps / 100, bps % 100)
}

/// The line `bizra wq-proof` prints last, e.g.
/// `B3/B3/B3 agreement at height 3 (head 9f2c1a3b…, 100.00% weight)`.
pub fn agreement_line(p: &WqProof) -> String {
    let word = if p.wq_head_agreement {
        "agreement"
    } else {
        "disagreement"
    };
    format!(
        "{} {word} at height {} (head {}…, {} weight)",
        p.agreement,
        p.height,
        &p.block_hash[..p.block_hash.len().min(8)],
        percent(p.commit.share_bps)
    )
}

/// Assembles `wq_proof.json` from collected parts. It copies what the parts
/// say (including the node's weight tally) and derives `agreement`,
/// `wq_head_agreement` and the labels; it checks nothing: checking is
/// [`crate::verify`]'s job.
pub fn build_proof(p: &ProofParts) -> WqProof {
    let hashes: Vec<Hash> = p.heads.iter().map(|h| h.block_hash).collect();
    let (agreement, agree) = agreement(p.height, &hashes);
    WqProof {
        version: WQ_PROOF_VERSION.to_string(),
        chain_id: p.chain_id.clone(),
        genesis_hash: hex::encode(p.genesis_hash),
        height: p.height,
        block_hash: hex::encode(p.block_hash),
        deterministic_head: block_label(p.height),
        agreement,
        wq_head_agreement: agree && hashes.first() == Some(&p.block_hash),
        validators: p
            .heads
            .iter()
            .map(|h| ProofValidator {
                id: h.id.clone(),
                endpoint: h.endpoint.clone(),
                head: block_label(p.height),
                block_hash: hex::encode(h.block_hash),
                envelope: EnvelopeJson::from_proto(&h.envelope),
            })
            .collect(),
        commit: ProofCommit {
            signers: p.commit.signers.clone(),
            signatures: p.commit.signatures.iter().map(EnvelopeJson::from_proto).collect(),
            signed_weight: Weight(p.commit.signed_weight),
            total_weight: Weight(p.commit.total_weight),
            share_bps: p.commit.share_bps,
            fast_final: p.commit.fast_final,
            economic_final: p.commit.economic_final,
        },
        telemetry: Telemetry {
            wq_weight: p
                .telemetry
                .iter()
                .map(|t| (t.id.clone(), Weight(t.wq_weight)))
                .collect(),
            components: p
                .telemetry
                .iter()
                .map(|t| (t.id.clone(), t.components.into()))
                .collect(),
            jailed: p
                .telemetry
                .iter()
                .filter_map(|t| Some((t.id.clone(), t.jailed_until?)))
                .collect(),
        },
        telemetry_epoch: p.telemetry_epoch,
        telemetry_note: p.telemetry_note.clone(),
    }
}
