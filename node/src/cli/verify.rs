//! `bizra verify FILE --genesis GENESIS`: offline checks of `wq_proof.json`,
//! `attestation.json` (CONTRACT sections 6 and 7) and `evidence.json` (issue 15).
//! The file's `"version"` key picks the checker: `"wq-proof/1"`,
//! `"poi-attestation/1"` or `"evidence/1"`.
//!
//! Exit 0 valid; 1 invalid, with a reason that names the failing field;
//! 2 unreadable or malformed input (a file that cannot be read, is not JSON of
//! the schema, or a genesis that does not load).
//!
//! ## What a `wq_proof.json` must satisfy
//! * `chain_id` and `genesis_hash` are genesis's (BLAKE3 of the file's exact bytes);
//!   `height >= 1`; `deterministic_head` is `B{height}`.
//! * Every `validators[i]`: distinct genesis validator ids, `head == B{height}`,
//!   `block_hash == block_hash` of the proof; its `envelope` has payloadType
//!   `application/vnd.bizra.head-report+protobuf` and exactly one signature whose
//!   `keyid` is `validators[i].id`, valid under the one signature rule; the payload is a
//!   canonically encoded `HeadReport` for (chain_id, genesis_hash, height, block_hash,
//!   validator) of the JSON. `agreement` and `wq_head_agreement` are what those give.
//! * `commit.signatures`: each a `application/vnd.bizra.vote+protobuf` envelope with one
//!   valid signature by a genesis validator over a canonically encoded `Vote` that is a
//!   PRECOMMIT for (chain_id, height, block_hash) by that validator, all in one round,
//!   from distinct validators; `commit.signers` is exactly that set.
//! * Weights: the epoch of `height` is `(height - 1) / epoch_length`. In epoch 0 the
//!   weights are recomputed from genesis and `telemetry` must equal them. After epoch 0
//!   they depend on the chain's history (PoI carry, participation), which a verifier
//!   holding only genesis cannot replay: then `telemetry` is used, but it must give a
//!   weight and components for every genesis validator and no one else, each stake must
//!   be the genesis stake, `rep <= 10000`, `poi <= poi_cap`, and each weight must equal the
//!   `wq_weight` formula of genesis's parameters. **Limitation:** after epoch 0 a forged
//!   `poi`/`rep` within those bounds is not detected offline; the precommit signatures
//!   and the quorum still are checked.
//! * `signed_weight`, `total_weight` and `share_bps` equal the recomputed tally, which
//!   satisfies `signed * 10000 >= total * fast_threshold_bps` of genesis; `fast_final` is
//!   true; `economic_final`, when true, is backed by the precommits present.
//!
//! ## What an `attestation.json` must satisfy
//! See [`verify_attestation`].
//!
//! ## What an `evidence.json` must satisfy
//! See [`verify_evidence`].

use super::proof::{
    agreement, percent, unb64, unhex_hash, AttestationDoc, EnvelopeJson, EvidenceDoc, InclusionJson, ProofCommit,
    Telemetry, WqProof, ATTESTATION_VERSION, DUPLICATE_VOTE_KIND, EVIDENCE_VERSION, WQ_PROOF_VERSION,
};
use super::{check, usage, CliResult, Failure};
use bizra_consensus::chain::ChainState;
use bizra_consensus::evidence;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::merkle;
use bizra_consensus::quorum::{self, MIN_SAFE_THRESHOLD_BPS};
use bizra_consensus::signing::{self, parse_validator_id};
use bizra_consensus::types::{block_label, epoch_of, hash_bytes, short_hex, Hash};
use bizra_consensus::weights::{self, Components};
use bizra_proto::{payload_type, BlockHeader, HeadReport, PoiAttestation, SignedVote, Vote, VoteKind};
use clap::Args;
use ed25519_dalek::VerifyingKey;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    override_usage = "bizra verify FILE --genesis GENESIS\n       bizra verify bundle DIR --key PUBKEY",
    after_help = "Two forms:\n  \
bizra verify FILE --genesis GENESIS\n      Check a wq_proof.json, attestation.json or evidence.json offline against the chain's genesis \
file (the file's \"version\" key says which it is).\n  \
bizra verify bundle DIR --key PUBKEY\n      Check a release evidence bundle (from `bizra release bundle`) offline: the DSSE \
signatures of manifest.json, provenance.intoto.json and sbom.cdx.json by PUBKEY, every file's sha256 and size \
against manifest.json, no unlisted files, and the provenance subject digest of bin/bizra.\n\n\
Exit codes: 0 valid; 1 a check failed (the message names the first bad file or field); 2 bad usage or unreadable input."
)]
pub struct VerifyArgs {
    /// A wq_proof.json, attestation.json or evidence.json; or the word `bundle`, followed by DIR.
    #[arg(value_name = "FILE|bundle")]
    pub file: PathBuf,
    /// With `bundle`: the release bundle directory.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The chain's genesis.json (the FILE form).
    #[arg(long, value_name = "GENESIS")]
    pub genesis: Option<PathBuf>,
    /// With `bundle`: the release public key, as 64 hex digits, a file holding them, or a bizra key file.
    #[arg(long, value_name = "PUBKEY")]
    pub key: Option<String>,
}

pub fn run(a: VerifyArgs) -> CliResult {
    if a.file.as_os_str() == "bundle" {
        let dir = a
            .dir
            .ok_or_else(|| usage("verify bundle needs the bundle directory: bizra verify bundle DIR --key PUBKEY"))?;
        if a.genesis.is_some() {
            return Err(usage("verify bundle takes --key, not --genesis"));
        }
        let key = a
            .key
            .ok_or_else(|| usage("verify bundle needs --key PUBKEY (the release public key)"))?;
        return super::release::verify_bundle(&dir, &key);
    }
    if let Some(d) = &a.dir {
        return Err(usage(format!(
            "unexpected argument {}: use bizra verify FILE --genesis GENESIS, or bizra verify bundle DIR --key PUBKEY",
            d.display()
        )));
    }
    if a.key.is_some() {
        return Err(usage("--key is for bizra verify bundle DIR --key PUBKEY"));
    }
    let genesis_path = a
        .genesis
        .ok_or_else(|| usage("missing --genesis GENESIS: bizra verify FILE --genesis GENESIS"))?;
    let json = std::fs::read(&a.file).map_err(|e| usage(format!("cannot read {}: {e}", a.file.display())))?;
    let genesis = std::fs::read(&genesis_path)
        .map_err(|e| usage(format!("cannot read genesis {}: {e}", genesis_path.display())))?;
    let summary = verify_document(&json, &genesis)?;
    println!("{summary}");
    Ok(())
}

/// Checks either artifact, dispatching on its `"version"` key.
pub fn verify_document(json: &[u8], genesis: &[u8]) -> Result<String, Failure> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| usage(format!("not JSON: {e}")))?;
    match v.get("version").and_then(|v| v.as_str()) {
        Some(WQ_PROOF_VERSION) => check_wq_proof(json, genesis),
        Some(ATTESTATION_VERSION) => verify_attestation(json, genesis),
        Some(EVIDENCE_VERSION) => verify_evidence(json, genesis),
        Some(other) => Err(usage(format!(
            "version {other:?} is none of {WQ_PROOF_VERSION:?}, {ATTESTATION_VERSION:?}, {EVIDENCE_VERSION:?}"
        ))),
        None => Err(usage("the file has no string \"version\" key")),
    }
}

// ---------------------------------------------------------------------------
// The trust root and shared checks
// ---------------------------------------------------------------------------

/// What a proof is checked against.
#[derive(Clone, Debug)]
pub struct TrustRoot {
    pub chain_id: String,
    pub genesis_hash: Hash,
    /// The validator set: id -> public key.
    pub keys: BTreeMap<String, VerifyingKey>,
    /// `(fast_threshold_bps, economic_threshold_bps)` from genesis. `None` when
    /// unknown (`bizra wq-proof` without `--genesis`): the quorum is then checked at
    /// the lowest threshold any genesis may set, and finality flags are not judged.
    pub thresholds: Option<(u32, u32)>,
}

impl TrustRoot {
    pub fn from_genesis(g: &Genesis) -> Self {
        TrustRoot {
            chain_id: g.chain_id().to_string(),
            genesis_hash: g.hash,
            keys: g.members.iter().map(|m| (m.id.clone(), m.key)).collect(),
            thresholds: Some((g.params().fast_threshold_bps, g.params().economic_threshold_bps)),
        }
    }
}

/// The outcome of [`check_proof`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofSummary {
    pub height: u64,
    pub block_hash: Hash,
    pub agreement: String,
    pub heads_agree: bool,
    pub round: u32,
    pub signers: usize,
    pub signed_weight: u128,
    pub total_weight: u128,
    pub share_bps: u32,
    pub threshold_bps: u32,
}

fn fail(field: &str, msg: impl std::fmt::Display) -> Failure {
    check(format!("{field}: {msg}"))
}

/// Loads genesis bytes; failure is bad input (exit 2).
pub fn load_genesis(bytes: &[u8]) -> Result<Genesis, Failure> {
    Genesis::from_bytes(bytes).map_err(|e| usage(format!("genesis: {e}")))
}

/// Checks a DSSE envelope of `ptype` with exactly one signature by a member of
/// `keys` (and by `expected` when given); returns the keyid and the payload.
pub fn check_envelope(
    env: &EnvelopeJson,
    field: &str,
    ptype: &str,
    keys: &BTreeMap<String, VerifyingKey>,
    expected: Option<&str>,
) -> Result<(String, Vec<u8>), Failure> {
    if env.payload_type != ptype {
        return Err(fail(
            &format!("{field}.payloadType"),
            format!("{:?}, expected {ptype:?}", env.payload_type),
        ));
    }
    let sig = match env.signatures.as_slice() {
        [s] => s,
        s => {
            return Err(fail(
                &format!("{field}.signatures"),
                format!("{} signatures, expected exactly one", s.len()),
            ))
        }
    };
    let kf = format!("{field}.signatures[0].keyid");
    let key = keys
        .get(&sig.keyid)
        .ok_or_else(|| fail(&kf, format!("{} is not a validator of this genesis", sig.keyid)))?;
    if let Some(want) = expected {
        if sig.keyid != want {
            return Err(fail(&kf, format!("{} is not the expected signer {want}", sig.keyid)));
        }
    }
    let payload = unb64(&env.payload).map_err(|e| fail(&format!("{field}.payload"), e))?;
    let sf = format!("{field}.signatures[0].sig");
    let sig_bytes = unb64(&sig.sig).map_err(|e| fail(&sf, e))?;
    signing::verify(key, ptype, &payload, &sig_bytes).map_err(|e| fail(&sf, e))?;
    Ok((sig.keyid.clone(), payload))
}

/// Decodes a payload and requires the canonical encoding (re-encoding yields
/// the same bytes), so the JSON view and the signed bytes cannot diverge.
fn decode_canonical<M: Message + Default>(payload: &[u8], field: &str) -> Result<M, Failure> {
    let m = M::decode(payload).map_err(|e| fail(field, format!("payload does not decode: {e}")))?;
    if m.encode_to_vec() != payload {
        return Err(fail(field, "payload is not canonically encoded"));
    }
    Ok(m)
}

/// The weights of the epoch of `height`, checked as far as genesis allows (see
/// the module docs): recomputed at epoch 0, bounded and formula-checked after.
pub fn epoch_weights(
    g: &Genesis,
    height: u64,
    telemetry: Option<&Telemetry>,
    field: &str,
) -> Result<(BTreeMap<String, u128>, bool), Failure> {
    let p = g.params();
    let epoch = epoch_of(height, p.epoch_length);
    if epoch == 0 {
        let w = ChainState::genesis(g).weights;
        let expected: BTreeMap<String, (u128, Components)> = g
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), (w.weights[i], w.components[i])))
            .collect();
        if let Some(t) = telemetry {
            check_telemetry_keys(g, t, field)?;
            if let Some(id) = t.jailed.keys().next() {
                return Err(fail(
                    &format!("{field}.jailed[{id}]"),
                    "nobody is jailed in epoch 0 (evidence jails from the next boundary)",
                ));
            }
            for (id, (weight, comps)) in &expected {
                let got = t.wq_weight[id].0;
                if got != *weight {
                    return Err(fail(
                        &format!("{field}.wq_weight[{id}]"),
                        format!("{got} in the proof, {weight} recomputed from genesis (epoch 0)"),
                    ));
                }
                let gc: Components = t.components[id].into();
                if gc != *comps {
                    return Err(fail(
                        &format!("{field}.components[{id}]"),
                        format!("{gc:?} in the proof, {comps:?} from genesis (epoch 0)"),
                    ));
                }
            }
        }
        return Ok((expected.into_iter().map(|(k, v)| (k, v.0)).collect(), true));
    }
    let t = telemetry.ok_or_else(|| {
        fail(
            field,
            format!("missing: height {height} is in epoch {epoch}, whose weights genesis alone does not give"),
        )
    })?;
    check_telemetry_keys(g, t, field)?;
    for m in g.members.iter() {
        let c = t.components[&m.id];
        let cf = format!("{field}.components[{}]", m.id);
        if c.stake != m.stake {
            return Err(fail(
                &cf,
                format!("stake {} differs from genesis stake {}", c.stake, m.stake),
            ));
        }
        if c.rep > 10_000 {
            return Err(fail(&cf, format!("rep {} is above 10000 bps", c.rep)));
        }
        if c.poi > p.weights.poi_cap {
            return Err(fail(
                &cf,
                format!("poi {} is above poi_cap {}", c.poi, p.weights.poi_cap),
            ));
        }
        let got = t.wq_weight[&m.id].0;
        if let Some(&until) = t.jailed.get(&m.id) {
            // Jailed (ADR 0014): weight 0 until `until`, which must lie ahead.
            if until <= epoch {
                return Err(fail(
                    &format!("{field}.jailed[{}]", m.id),
                    format!("free again from epoch {until}, so not jailed in epoch {epoch}"),
                ));
            }
            if got != 0 {
                return Err(fail(
                    &format!("{field}.wq_weight[{}]", m.id),
                    format!("{got}, but a jailed validator weighs 0"),
                ));
            }
            continue;
        }
        let want = weights::wq_weight(&p.weights, &c.into());
        if got != want {
            return Err(fail(
                &format!("{field}.wq_weight[{}]", m.id),
                format!("{got} does not match the wq_weight formula of its components ({want})"),
            ));
        }
    }
    if let Some(id) = t.jailed.keys().find(|id| g.members.index_of(id).is_none()) {
        return Err(fail(&format!("{field}.jailed[{id}]"), "is not a genesis validator"));
    }
    Ok((t.wq_weight.iter().map(|(k, v)| (k.clone(), v.0)).collect(), false))
}

fn check_telemetry_keys(g: &Genesis, t: &Telemetry, field: &str) -> Result<(), Failure> {
    for (name, keys) in [
        ("wq_weight", t.wq_weight.keys().collect::<BTreeSet<_>>()),
        ("components", t.components.keys().collect::<BTreeSet<_>>()),
    ] {
        let f = format!("{field}.{name}");
        for m in g.members.iter() {
            if !keys.contains(&m.id) {
                return Err(fail(&f, format!("genesis validator {} is missing", m.id)));
            }
        }
        if let Some(extra) = keys.iter().find(|k| g.members.index_of(k).is_none()) {
            return Err(fail(&f, format!("{extra} is not a genesis validator")));
        }
    }
    Ok(())
}

/// Telemetry weights as they are, requiring one per member of `keys` and no
/// others. Used by `bizra wq-proof`, which has no genesis to check them against.
pub fn telemetry_weights(
    t: &Telemetry,
    keys: &BTreeMap<String, VerifyingKey>,
) -> Result<BTreeMap<String, u128>, Failure> {
    for id in keys.keys() {
        if !t.wq_weight.contains_key(id) {
            return Err(fail("telemetry.wq_weight", format!("validator {id} is missing")));
        }
    }
    if let Some(extra) = t.wq_weight.keys().find(|k| !keys.contains_key(*k)) {
        return Err(fail(
            "telemetry.wq_weight",
            format!("{extra} is not in the validator set"),
        ));
    }
    Ok(t.wq_weight.iter().map(|(k, v)| (k.clone(), v.0)).collect())
}

/// The tally of a checked commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitSummary {
    pub round: u32,
    pub signers: usize,
    pub signed_weight: u128,
    pub total_weight: u128,
    pub share_bps: u32,
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
) -> Result<CommitSummary, Failure> {
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
    pub header: BlockHeader,
    pub block_hash: Hash,
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
) -> Result<Included, Failure> {
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
        .collect::<Result<Vec<Hash>, Failure>>()?;
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

// ---------------------------------------------------------------------------
// wq_proof.json
// ---------------------------------------------------------------------------

/// Version, chain id and genesis hash of a proof.
fn check_identity(p: &WqProof, root: &TrustRoot) -> Result<(), Failure> {
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
) -> Result<ProofSummary, Failure> {
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
/// does. `Ok` carries the summary printed on success; `Err(Failure::Check)` is
/// exit 1 (invalid) and `Err(Failure::Usage)` exit 2 (unreadable input).
pub fn check_wq_proof(json: &[u8], genesis_bytes: &[u8]) -> Result<String, Failure> {
    let g = load_genesis(genesis_bytes)?;
    let p: WqProof = serde_json::from_slice(json).map_err(|e| usage(format!("wq_proof.json is malformed: {e}")))?;
    if p.version != WQ_PROOF_VERSION {
        return Err(usage(format!("version {:?} is not {WQ_PROOF_VERSION:?}", p.version)));
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

// ---------------------------------------------------------------------------
// attestation.json
// ---------------------------------------------------------------------------

/// Checks an `attestation.json` against a genesis file's bytes:
/// * `envelope`: payloadType `application/vnd.bizra.poi+protobuf`, exactly one signature
///   whose keyid is a genesis validator and the attester, valid under the one rule;
/// * the payload decodes to a `PoiAttestation` with version `poi/1`, genesis's chain id,
///   at least one dimension, every value in 0..=10000, weights over the same names summing
///   to 10000, `impact_bps == floor(sum(value * weight) / 10000)`,
///   `window_start_ms <= window_end_ms`, a 32-byte evidence digest and a nonce of at least
///   16 bytes; the JSON `attestation` fields equal the decoded ones (and `id`, if given,
///   is BLAKE3 of the payload);
/// * `inclusion` ([`check_inclusion`]): `inclusion.header` (base64 of the encoded
///   `BlockHeader`) hashes to `inclusion.block_hash`, is for `inclusion.height` on this
///   chain in the right epoch, and its `payload_root` admits the Merkle proof of the leaf
///   `BLAKE3(0x00 || id || signature)` at `leaf_index` of `leaf_count`;
///   `inclusion.commit` is a commit for (height, block_hash) reaching the fast quorum,
///   checked as a wq_proof commit (weights: genesis at epoch 0, else
///   `inclusion.telemetry`, with the same limitation).
pub fn verify_attestation(json: &[u8], genesis: &[u8]) -> Result<String, Failure> {
    let g = load_genesis(genesis)?;
    let d: AttestationDoc =
        serde_json::from_slice(json).map_err(|e| usage(format!("attestation.json is malformed: {e}")))?;
    if d.version != ATTESTATION_VERSION {
        return Err(usage(format!("version {:?} is not {ATTESTATION_VERSION:?}", d.version)));
    }
    let root = TrustRoot::from_genesis(&g);
    let (keyid, payload) = check_envelope(&d.envelope, "envelope", payload_type::POI, &root.keys, None)?;
    let pf = "envelope.payload";
    let a = PoiAttestation::decode(payload.as_slice())
        .map_err(|e| fail(pf, format!("does not decode as a PoiAttestation: {e}")))?;
    let id = hash_bytes(&payload);
    check_poi_fields(&a, &g, &keyid, pf)?;

    // The JSON view must be what was signed.
    let f = &d.attestation;
    let decoded = super::proof::AttestationFields::from_proto(&a, Some(&id));
    if let Some(given) = &f.id {
        if *given != hex::encode(id) {
            return Err(fail(
                "attestation.id",
                format!("{given}, but the payload hashes to {}", hex::encode(id)),
            ));
        }
    }
    let mut f_cmp = f.clone();
    f_cmp.id = decoded.id.clone();
    if f_cmp != decoded {
        let name = first_difference(&f_cmp, &decoded);
        return Err(fail(&format!("attestation.{name}"), "differs from the signed payload"));
    }

    // Inclusion.
    let sig = unb64(&d.envelope.signatures[0].sig).map_err(|e| fail("envelope.signatures[0].sig", e))?;
    let leaf = merkle::leaf_hash(&id, &sig);
    let inc = check_inclusion(&g, &root, &d.inclusion, &leaf, MerkleRoot::Payload)?;
    let c = &inc.commit;
    Ok(format!(
        "valid: attestation {} by {} about {:?} (impact {} bps) included at height {} (block {}…, {} weight >= {} fast threshold)",
        hex::encode(id),
        a.attester,
        a.subject,
        a.impact_bps,
        inc.header.height,
        short_hex(&inc.block_hash),
        percent(c.share_bps),
        percent(c.threshold_bps),
    ))
}

// ---------------------------------------------------------------------------
// evidence.json
// ---------------------------------------------------------------------------

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
pub fn verify_evidence(json: &[u8], genesis: &[u8]) -> Result<String, Failure> {
    let g = load_genesis(genesis)?;
    let d: EvidenceDoc = serde_json::from_slice(json).map_err(|e| usage(format!("evidence.json is malformed: {e}")))?;
    if d.version != EVIDENCE_VERSION {
        return Err(usage(format!("version {:?} is not {EVIDENCE_VERSION:?}", d.version)));
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

/// The field rules of CONTRACT section 7 that need no node state.
pub fn check_poi_fields(a: &PoiAttestation, g: &Genesis, signer: &str, field: &str) -> Result<(), Failure> {
    let f = |name: &str| format!("{field}.{name}");
    if a.version != "poi/1" {
        return Err(fail(&f("version"), format!("{:?}, expected \"poi/1\"", a.version)));
    }
    if a.chain_id != g.chain_id() {
        return Err(fail(
            &f("chain_id"),
            format!("{:?} is not this chain ({:?})", a.chain_id, g.chain_id()),
        ));
    }
    if g.members.index_of(&a.attester).is_none() {
        return Err(fail(&f("attester"), format!("{} is not a validator", a.attester)));
    }
    if a.attester != signer {
        return Err(fail(
            &f("attester"),
            format!("{} did not sign; {signer} did", a.attester),
        ));
    }
    if a.evidence_digest.len() != 32 {
        return Err(fail(
            &f("evidence_digest"),
            format!("{} bytes, expected 32", a.evidence_digest.len()),
        ));
    }
    if a.dimensions.is_empty() {
        return Err(fail(&f("dimensions"), "empty"));
    }
    if let Some((k, v)) = a.dimensions.iter().find(|(_, v)| **v > 10_000) {
        return Err(fail(&f("dimensions"), format!("{k} = {v} is above 10000 bps")));
    }
    let dims: BTreeSet<&String> = a.dimensions.keys().collect();
    let ws: BTreeSet<&String> = a.weights.keys().collect();
    if dims != ws {
        return Err(fail(&f("weights"), "names differ from the dimensions' names"));
    }
    let sum: u64 = a.weights.values().map(|&w| w as u64).sum();
    if sum != 10_000 {
        return Err(fail(&f("weights"), format!("sum to {sum}, expected 10000")));
    }
    let weighted: u64 = a
        .dimensions
        .iter()
        .map(|(k, &v)| v as u64 * a.weights[k] as u64)
        .sum::<u64>()
        / 10_000;
    if a.impact_bps as u64 != weighted {
        return Err(fail(
            &f("impact_bps"),
            format!("{}, but the weighted sum of the dimensions is {weighted}", a.impact_bps),
        ));
    }
    if a.window_start_ms > a.window_end_ms {
        return Err(fail(
            &f("window_start_ms"),
            format!("{} is after window_end_ms {}", a.window_start_ms, a.window_end_ms),
        ));
    }
    if a.nonce.len() < 16 {
        return Err(fail(
            &f("nonce"),
            format!("{} bytes, at least 16 required", a.nonce.len()),
        ));
    }
    Ok(())
}

fn first_difference(a: &super::proof::AttestationFields, b: &super::proof::AttestationFields) -> &'static str {
    if a.version != b.version {
        "version"
    } else if a.chain_id != b.chain_id {
        "chain_id"
    } else if a.attester != b.attester {
        "attester"
    } else if a.subject != b.subject {
        "subject"
    } else if a.evidence_digest != b.evidence_digest {
        "evidence_digest"
    } else if a.evidence_len != b.evidence_len {
        "evidence_len"
    } else if a.dimensions != b.dimensions {
        "dimensions"
    } else if a.weights != b.weights {
        "weights"
    } else if a.impact_bps != b.impact_bps {
        "impact_bps"
    } else if a.window_start_ms != b.window_start_ms {
        "window_start_ms"
    } else if a.window_end_ms != b.window_end_ms {
        "window_end_ms"
    } else {
        "nonce"
    }
}

/// Validator keys from ids (for `bizra wq-proof`, which learns the set over gRPC).
pub fn keys_from_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Result<BTreeMap<String, VerifyingKey>, Failure> {
    ids.into_iter()
        .map(|id| {
            parse_validator_id(id)
                .map(|k| (id.to_string(), k))
                .map_err(|e| check(format!("validator id {id:?}: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::proof::fixture::Fixture;
    use crate::cli::proof::{build_proof, Weight};

    fn poi(f: &Fixture) -> PoiAttestation {
        PoiAttestation {
            version: "poi/1".into(),
            chain_id: f.chain_id().into(),
            attester: f.signers[0].id().into(),
            subject: "s".into(),
            evidence_digest: vec![0; 32],
            evidence_len: 1,
            dimensions: [("a".to_string(), 3333u32), ("b".to_string(), 10_000)]
                .into_iter()
                .collect(),
            weights: [("a".to_string(), 5000u32), ("b".to_string(), 5000)]
                .into_iter()
                .collect(),
            // (3333 * 5000 + 10000 * 5000) / 10000 = 6666.5 -> 6666
            impact_bps: 6666,
            window_start_ms: 5,
            window_end_ms: 5,
            nonce: vec![0; 16],
        }
    }

    #[test]
    fn poi_field_rules_at_their_boundaries() {
        let f = Fixture::new(3, 3, 1);
        let me = f.signers[0].id();
        let ok = poi(&f);
        check_poi_fields(&ok, &f.genesis, me, "p").unwrap();
        let mut a = ok.clone();
        a.impact_bps = 6667;
        assert!(check_poi_fields(&a, &f.genesis, me, "p")
            .unwrap_err()
            .to_string()
            .contains("p.impact_bps"));
        let mut a = ok.clone();
        a.dimensions.insert("a".into(), 0);
        a.impact_bps = 5000;
        check_poi_fields(&a, &f.genesis, me, "p").unwrap();
        let mut a = ok.clone();
        a.nonce.pop();
        assert!(check_poi_fields(&a, &f.genesis, me, "p")
            .unwrap_err()
            .to_string()
            .contains("p.nonce"));
        let mut a = ok.clone();
        a.evidence_digest.pop();
        assert!(check_poi_fields(&a, &f.genesis, me, "p").is_err());
        // Signed by a validator that is not the attester.
        assert!(check_poi_fields(&ok, &f.genesis, f.signers[1].id(), "p")
            .unwrap_err()
            .to_string()
            .contains("p.attester"));
        let mut a = ok;
        a.dimensions.clear();
        a.weights.clear();
        assert!(check_poi_fields(&a, &f.genesis, me, "p").is_err());
    }

    #[test]
    fn without_genesis_thresholds_the_floor_applies_and_flags_are_not_judged() {
        let f = Fixture::new(4, 3, 1);
        let mut root = TrustRoot::from_genesis(&f.genesis);
        root.thresholds = None;
        let weights: BTreeMap<String, u128> = f.weights().into_iter().map(|(id, w, _)| (id, w)).collect();
        let mut p = build_proof(&f.parts(&[(0, None)], &[0, 1, 2]));
        p.commit.fast_final = false;
        let s = check_proof(&p, &root, &weights, true).unwrap();
        assert_eq!(s.threshold_bps, MIN_SAFE_THRESHOLD_BPS);
        assert_eq!(s.signers, 3);
        // With genesis thresholds the same flag is a lie.
        let full = TrustRoot::from_genesis(&f.genesis);
        assert!(check_proof(&p, &full, &weights, true).is_err());
        // Two of four is below even the floor.
        let p = build_proof(&f.parts(&[(0, None)], &[0, 1]));
        let e = check_proof(&p, &root, &weights, true).unwrap_err().to_string();
        assert!(e.contains("below the fast quorum of 6667 bps"), "{e}");
    }

    #[test]
    fn telemetry_must_cover_exactly_the_set() {
        let f = Fixture::new(3, 3, 1);
        let keys = TrustRoot::from_genesis(&f.genesis).keys;
        let mut t = f.valid_proof().telemetry;
        assert_eq!(telemetry_weights(&t, &keys).unwrap().len(), 3);
        t.wq_weight.insert("ab".repeat(32), Weight(1));
        assert!(telemetry_weights(&t, &keys)
            .unwrap_err()
            .to_string()
            .contains("not in the validator set"));
        t.wq_weight.remove(&"ab".repeat(32));
        t.wq_weight.remove(f.signers[2].id());
        assert!(telemetry_weights(&t, &keys)
            .unwrap_err()
            .to_string()
            .contains("missing"));
    }

    /// Telemetry of an epoch with a jailed validator (ADR 0014): it weighs 0
    /// and its term lies ahead; anything else is refused, naming the field.
    #[test]
    fn jailed_validators_weigh_zero_in_telemetry() {
        let f = Fixture::new(3, 3, 1);
        let g = &f.genesis;
        let state = ChainState::genesis(g);
        let mut t = Telemetry::default();
        for (i, m) in g.members.iter().enumerate() {
            t.wq_weight.insert(m.id.clone(), Weight(state.weights.weights[i]));
            t.components.insert(m.id.clone(), state.weights.components[i].into());
        }
        let jailed = g.members.get(1).id.clone();
        let epoch_3 = 3 * g.params().epoch_length + 1;
        assert!(epoch_weights(g, epoch_3, Some(&t), "telemetry").is_ok());
        t.jailed.insert(jailed.clone(), 5);
        let e = epoch_weights(g, epoch_3, Some(&t), "telemetry")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a jailed validator weighs 0"), "{e}");
        t.wq_weight.insert(jailed.clone(), Weight(0));
        let (w, _) = epoch_weights(g, epoch_3, Some(&t), "telemetry").unwrap();
        assert_eq!(w[&jailed], 0);
        t.jailed.insert(jailed.clone(), 3);
        let e = epoch_weights(g, epoch_3, Some(&t), "telemetry")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not jailed in epoch 3"), "{e}");
        t.jailed.insert(jailed.clone(), 5);
        t.jailed.insert("ab".repeat(32), 5);
        let e = epoch_weights(g, epoch_3, Some(&t), "telemetry")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a genesis validator"), "{e}");
        t.jailed.remove(&"ab".repeat(32));
        let e = epoch_weights(g, 5, Some(&t), "telemetry").unwrap_err().to_string();
        assert!(e.contains("nobody is jailed in epoch 0"), "{e}");
    }
}
