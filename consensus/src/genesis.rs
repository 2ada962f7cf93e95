//! `genesis.json` (docs/PROTOCOL.md §3): parsing and validation.
//!
//! A node refuses a genesis that is malformed, has duplicate validators, or
//! sets unsafe thresholds, and the error says which. `genesis_hash` is the
//! BLAKE3 of the file's exact bytes.

use crate::evidence::EvidenceParams;
use crate::quorum::{DEFAULT_ECONOMIC_THRESHOLD_BPS, DEFAULT_FAST_THRESHOLD_BPS, MIN_SAFE_THRESHOLD_BPS};
use crate::signing::parse_validator_id;
use crate::types::{hash_bytes, Hash};
use crate::validators::{Member, Membership};
use crate::weights::WeightParams;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

/// Largest genesis file accepted, in bytes.
pub const MAX_GENESIS_BYTES: usize = 16 << 20;
/// Largest validator set accepted.
pub const MAX_VALIDATORS: usize = 10_000;

fn default_fast() -> u32 {
    DEFAULT_FAST_THRESHOLD_BPS
}
fn default_economic() -> u32 {
    DEFAULT_ECONOMIC_THRESHOLD_BPS
}
fn default_epoch_length() -> u64 {
    100
}

/// `params` of `genesis.json` (docs/PROTOCOL.md §3); every key may be left
/// out for its default.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GenesisParams {
    /// The quorum, in bps of the epoch's total weight (default 6667; 6666
    /// or less is refused): see [`crate::quorum`].
    #[serde(default = "default_fast")]
    pub fast_threshold_bps: u32,
    /// Share of precommits, in bps, at which a block is economically final
    /// (default 8000; between `fast_threshold_bps` and 10000).
    #[serde(default = "default_economic")]
    pub economic_threshold_bps: u32,
    /// Blocks per epoch (default 100, at least 1): weights are fixed within
    /// an epoch (§5).
    #[serde(default = "default_epoch_length")]
    pub epoch_length: u64,
    /// The `wq_weight` parameters (§5), as keys directly under `params`.
    #[serde(flatten)]
    pub weights: WeightParams,
    /// Evidence age limits, per-block cap and the jail term (ADR 0014).
    #[serde(default)]
    pub evidence: EvidenceParams,
}

impl Default for GenesisParams {
    fn default() -> Self {
        GenesisParams {
            fast_threshold_bps: DEFAULT_FAST_THRESHOLD_BPS,
            economic_threshold_bps: DEFAULT_ECONOMIC_THRESHOLD_BPS,
            epoch_length: default_epoch_length(),
            weights: WeightParams::default(),
            evidence: EvidenceParams::default(),
        }
    }
}

/// One entry of `validators` in `genesis.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GenesisValidator {
    /// Lower-case hex of the validator's Ed25519 public key (64 digits).
    pub id: String,
    /// Bonded stake: the `stake` component of `wq_weight` (§5).
    pub stake: u64,
    /// Display name (optional, default empty); no rule depends on it.
    #[serde(default)]
    pub name: String,
}

/// The JSON document. Unknown keys are allowed and ignored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GenesisDoc {
    /// 1 to 64 characters of `[A-Za-z0-9._-]`; every signed message names it.
    pub chain_id: String,
    /// Chain start, Unix ms: block 1's time must be after it.
    pub genesis_time_ms: u64,
    /// Protocol parameters (all defaults when the key is absent).
    #[serde(default)]
    pub params: GenesisParams,
    /// The validator set, in the order that fixes every validator's index;
    /// 1 to [`MAX_VALIDATORS`], no duplicates. It never changes.
    pub validators: Vec<GenesisValidator>,
}

/// Why a genesis is refused; the message names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenesisError {
    /// Not JSON, or a key has the wrong type or is missing; serde's message.
    #[error("genesis is not valid JSON for the schema: {0}")]
    Malformed(String),
    /// The file has this many bytes, above [`MAX_GENESIS_BYTES`].
    #[error("genesis is {0} bytes, above the {MAX_GENESIS_BYTES} byte limit")]
    TooLarge(usize),
    /// The `chain_id` (given) is empty, longer than 64 bytes or uses other characters.
    #[error("chain_id {0:?} is invalid: use 1-64 characters of [A-Za-z0-9._-]")]
    ChainId(String),
    /// `validators` is empty.
    #[error("genesis has no validators")]
    NoValidators,
    /// `validators` has this many entries, above [`MAX_VALIDATORS`].
    #[error("genesis has {0} validators, above the limit of {MAX_VALIDATORS}")]
    TooManyValidators(usize),
    /// A validator id is not a usable Ed25519 public key.
    #[error("validator #{index} id {id:?} is invalid: {reason}")]
    ValidatorId {
        /// Position in `validators`, from 0.
        index: usize,
        /// The id as written.
        id: String,
        /// Why it was refused (a [`crate::signing::SigError`] message).
        reason: String,
    },
    /// This id appears more than once in `validators`.
    #[error("validator {0} appears more than once")]
    DuplicateValidator(String),
    /// `fast_threshold_bps` (given) is below the floor ([`MIN_SAFE_THRESHOLD_BPS`]
    /// for nodes) or above 10000.
    #[error("unsafe threshold: fast_threshold_bps = {0}; it must be between {MIN_SAFE_THRESHOLD_BPS} and 10000, because at or below two thirds safety is lost")]
    UnsafeFastThreshold(u32),
    /// `economic_threshold_bps` is below `fast_threshold_bps` or above 10000.
    #[error("economic_threshold_bps = {economic} must be between fast_threshold_bps ({fast}) and 10000")]
    EconomicThreshold {
        /// `economic_threshold_bps` as given.
        economic: u32,
        /// `fast_threshold_bps` as given.
        fast: u32,
    },
    /// `epoch_length` is 0.
    #[error("epoch_length must be at least 1")]
    EpochLength,
    /// The weight parameters break [`WeightParams::validate`] or could
    /// overflow with these stakes (ADR 0003); the text says which.
    #[error("weight parameters: {0}")]
    Weights(String),
    /// `params.evidence` breaks [`EvidenceParams::validate`]; the text says which.
    #[error("evidence parameters: {0}")]
    Evidence(String),
}

/// A validated genesis.
#[derive(Clone, Debug)]
pub struct Genesis {
    /// The parsed document.
    pub doc: GenesisDoc,
    /// `genesis_hash`: BLAKE3 of the file's exact bytes (docs/PROTOCOL.md §3),
    /// and the parent hash of block 1.
    pub hash: Hash,
    /// The validator set from `doc.validators`, keys parsed.
    pub members: Arc<Membership>,
}

impl Genesis {
    /// Parses and validates genesis bytes, with [`MIN_SAFE_THRESHOLD_BPS`] as
    /// the lowest accepted fast threshold (what nodes always use).
    pub fn from_bytes(bytes: &[u8]) -> Result<Genesis, GenesisError> {
        Self::from_bytes_with_floor(bytes, MIN_SAFE_THRESHOLD_BPS)
    }

    /// As [`Genesis::from_bytes`] with a lower floor: only for the simulator,
    /// to demonstrate that the safety checker finds forks below two thirds.
    pub fn from_bytes_with_floor(bytes: &[u8], floor: u32) -> Result<Genesis, GenesisError> {
        if bytes.len() > MAX_GENESIS_BYTES {
            return Err(GenesisError::TooLarge(bytes.len()));
        }
        let doc: GenesisDoc = serde_json::from_slice(bytes).map_err(|e| GenesisError::Malformed(e.to_string()))?;
        let members = validate(&doc, floor)?;
        Ok(Genesis {
            hash: hash_bytes(bytes),
            doc,
            members: Arc::new(members),
        })
    }

    /// Serializes a document and parses it back, for generated testnets.
    pub fn from_doc(doc: &GenesisDoc) -> Result<(Genesis, Vec<u8>), GenesisError> {
        let bytes = serde_json::to_vec_pretty(doc).map_err(|e| GenesisError::Malformed(e.to_string()))?;
        Ok((Genesis::from_bytes(&bytes)?, bytes))
    }

    /// The chain id that every block, vote, proposal and attestation of this chain names.
    pub fn chain_id(&self) -> &str {
        &self.doc.chain_id
    }
    /// The protocol parameters.
    pub fn params(&self) -> &GenesisParams {
        &self.doc.params
    }
}

fn valid_chain_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
}

fn validate(doc: &GenesisDoc, floor: u32) -> Result<Membership, GenesisError> {
    if !valid_chain_id(&doc.chain_id) {
        return Err(GenesisError::ChainId(doc.chain_id.clone()));
    }
    let p = &doc.params;
    if p.fast_threshold_bps < floor || p.fast_threshold_bps > 10_000 {
        return Err(GenesisError::UnsafeFastThreshold(p.fast_threshold_bps));
    }
    if p.economic_threshold_bps < p.fast_threshold_bps || p.economic_threshold_bps > 10_000 {
        return Err(GenesisError::EconomicThreshold {
            economic: p.economic_threshold_bps,
            fast: p.fast_threshold_bps,
        });
    }
    if p.epoch_length == 0 {
        return Err(GenesisError::EpochLength);
    }
    p.weights.validate().map_err(GenesisError::Weights)?;
    p.evidence.validate().map_err(GenesisError::Evidence)?;
    if doc.validators.is_empty() {
        return Err(GenesisError::NoValidators);
    }
    if doc.validators.len() > MAX_VALIDATORS {
        return Err(GenesisError::TooManyValidators(doc.validators.len()));
    }
    let mut seen = HashSet::new();
    let mut members = Vec::with_capacity(doc.validators.len());
    for (index, v) in doc.validators.iter().enumerate() {
        let key = parse_validator_id(&v.id).map_err(|e| GenesisError::ValidatorId {
            index,
            id: v.id.clone(),
            reason: e.to_string(),
        })?;
        if !seen.insert(v.id.clone()) {
            return Err(GenesisError::DuplicateValidator(v.id.clone()));
        }
        members.push(Member {
            id: v.id.clone(),
            name: v.name.clone(),
            stake: v.stake,
            key,
        });
    }
    let stakes: Vec<u64> = doc.validators.iter().map(|v| v.stake).collect();
    crate::weights::check_worst_case_total(&p.weights, &stakes).map_err(GenesisError::Weights)?;
    Ok(Membership::new(members))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::Signer;

    fn doc(n: usize) -> GenesisDoc {
        GenesisDoc {
            chain_id: "bizra-test".into(),
            genesis_time_ms: 1,
            params: GenesisParams::default(),
            validators: (0..n)
                .map(|i| GenesisValidator {
                    id: Signer::from_secret([i as u8 + 1; 32]).id().to_string(),
                    stake: 1000,
                    name: format!("v{i}"),
                })
                .collect(),
        }
    }

    #[test]
    fn valid_genesis_parses_and_hash_is_of_exact_bytes() {
        let (g, bytes) = Genesis::from_doc(&doc(4)).unwrap();
        assert_eq!(g.members.len(), 4);
        assert_eq!(g.hash, hash_bytes(&bytes));
        let mut spaced = bytes.clone();
        spaced.push(b'\n');
        assert_ne!(Genesis::from_bytes(&spaced).unwrap().hash, g.hash);
    }

    #[test]
    fn refusals_name_the_problem() {
        let mut d = doc(3);
        d.validators[2].id = d.validators[0].id.clone();
        assert!(matches!(
            Genesis::from_doc(&d).unwrap_err(),
            GenesisError::DuplicateValidator(_)
        ));

        let mut d = doc(3);
        d.params.fast_threshold_bps = 6666;
        assert_eq!(
            Genesis::from_doc(&d).unwrap_err(),
            GenesisError::UnsafeFastThreshold(6666)
        );
        assert!(Genesis::from_doc(&d).unwrap_err().to_string().contains("two thirds"));

        let mut d = doc(3);
        d.params.economic_threshold_bps = 6000;
        assert!(matches!(
            Genesis::from_doc(&d).unwrap_err(),
            GenesisError::EconomicThreshold { .. }
        ));

        let mut d = doc(3);
        d.validators[1].id = "zz".into();
        assert!(matches!(
            Genesis::from_doc(&d).unwrap_err(),
            GenesisError::ValidatorId { index: 1, .. }
        ));

        let mut d = doc(0);
        d.chain_id = "x".into();
        assert_eq!(Genesis::from_doc(&d).unwrap_err(), GenesisError::NoValidators);

        let mut d = doc(1);
        d.chain_id = "bad chain".into();
        assert!(matches!(Genesis::from_doc(&d).unwrap_err(), GenesisError::ChainId(_)));

        assert!(matches!(
            Genesis::from_bytes(b"{not json").unwrap_err(),
            GenesisError::Malformed(_)
        ));
        assert!(matches!(
            Genesis::from_bytes(b"[]").unwrap_err(),
            GenesisError::Malformed(_)
        ));
    }

    /// Issue 14 S2: gains whose worst-case weight overflows u128 (times 10000)
    /// are refused, naming the parameters; so are gains that break the
    /// coalition bound, and a bound outside 1..=3333.
    #[test]
    fn weight_overflow_and_coalition_bound_are_refused() {
        let mut d = doc(4);
        d.params.weights.poi_gain = u64::MAX;
        d.params.weights.poi_cap = u64::MAX;
        let e = Genesis::from_doc(&d).unwrap_err().to_string();
        assert!(
            e.contains("overflow") && e.contains("u128") && e.contains("poi_gain"),
            "{e}"
        );

        let mut d = doc(4);
        d.params.weights.coalition_bound_bps = 3000;
        let e = Genesis::from_doc(&d).unwrap_err().to_string();
        assert!(
            e.contains("coalition_bound_bps = 3000") && e.contains("166666") && e.contains("got 200000"),
            "{e}"
        );

        for bad in [0, 3334] {
            let mut d = doc(4);
            d.params.weights.coalition_bound_bps = bad;
            let e = Genesis::from_doc(&d).unwrap_err().to_string();
            assert!(e.contains(&format!("coalition_bound_bps = {bad}")), "{e}");
        }

        // Large but safe: accepted.
        let mut d = doc(4);
        d.params.weights.base = u64::MAX;
        d.params.weights.stake_gain = u64::MAX;
        d.validators.iter_mut().for_each(|v| v.stake = u64::MAX);
        Genesis::from_doc(&d).unwrap();
    }

    #[test]
    fn unknown_keys_are_allowed_and_defaults_apply() {
        let v = Signer::from_secret([1; 32]).id().to_string();
        let json = format!(
            r#"{{"chain_id":"c","genesis_time_ms":0,"extra":1,"params":{{"epoch_length":5,"x":2}},"validators":[{{"id":"{v}","stake":1,"name":"a","more":true}}]}}"#
        );
        let g = Genesis::from_bytes(json.as_bytes()).unwrap();
        assert_eq!(g.params().fast_threshold_bps, 6667);
        assert_eq!(g.params().epoch_length, 5);
        assert_eq!(g.params().weights, WeightParams::default());
        assert_eq!(g.params().weights.coalition_bound_bps, 2500);
    }
}
