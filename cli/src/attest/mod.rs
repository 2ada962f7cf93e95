//! `bizra attest`: sign and submit a PoI attestation (docs/PROTOCOL.md §10).
//!
//! 1. Local input, all exit 2 with nothing sent: the key file, the evidence
//!    file (its BLAKE3 digest and length are attested), every `--dim
//!    NAME=VALUE:WEIGHT` (names `[a-z0-9_.-]`, 1 to 64 bytes; value and weight
//!    in basis points, 0 to 10000; weights summing to 10000), the subject and
//!    the window (default: the hour ending now; `--window-start` alone ends
//!    now, `--window-end` alone starts an hour earlier).
//! 2. `GetStatus` gives the chain id; the attestation is built with a random
//!    16-byte nonce, signed, checked locally with the node's own rules
//!    ([`poi::check`]) and sent with `SubmitAttestation`. Its id (hex BLAKE3 of
//!    the payload) is printed on stdout. A refusal or an unreachable node is
//!    exit 1, with the server's message.
//! 3. With `--wait`, `GetAttestation(id)` is polled (NOT_FOUND while pending)
//!    until it is finalized or `--timeout` passes (exit 1). The answer is
//!    checked (same envelope, header hash, Merkle path to the payload root,
//!    commit for that block) and written to `--out` as `attestation.json`
//!    (docs/PROTOCOL.md §9), with the commit tally of `GetCommit(height)` and
//!    the epoch's weights from `GetValidators`.
//!
//! The gRPC calls of steps 2 and 3 are [`bizra_client::attest`]'s; this
//! command maps their errors to exit 1 with the same messages.

use super::{check, usage, CliResult, Failure};
use bizra_client::{attest, ConnectError, Timeouts};
use bizra_consensus::poi::{self, Draft};
use bizra_consensus::signing::Signer;
use bizra_consensus::types::Hash;
use bizra_consensus::validators::{Member, Membership};
use bizra_proto::node_client::NodeClient;
use bizra_proto::Envelope;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;

/// Arguments of `bizra attest`.
#[derive(Args, Debug)]
pub struct AttestArgs {
    /// gRPC endpoint of a validator.
    #[arg(long)]
    pub grpc: String,
    /// The attester's validator key file.
    #[arg(long)]
    pub key: PathBuf,
    /// Subject of the attestation (e.g. a validator id).
    #[arg(long)]
    pub subject: String,
    /// Evidence file; its BLAKE3 digest and length are attested.
    #[arg(long)]
    pub evidence: PathBuf,
    /// A dimension: NAME=VALUE:WEIGHT, value and weight in basis points. Repeat; weights sum to 10000.
    #[arg(long = "dim", required = true)]
    pub dims: Vec<String>,
    /// Start of the observation window, ms since the epoch (default: one hour before the window end).
    #[arg(long)]
    pub window_start: Option<u64>,
    /// End of the observation window, ms since the epoch (default: now).
    #[arg(long)]
    pub window_end: Option<u64>,
    /// Wait until the attestation is finalized and write attestation.json.
    #[arg(long)]
    pub wait: bool,
    /// Where --wait writes attestation.json.
    #[arg(long, default_value = "attestation.json")]
    pub out: PathBuf,
    /// Seconds --wait waits for finalization.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Default window length: one hour.
pub const DEFAULT_WINDOW_MS: u64 = 3_600_000;
/// Nonce length in bytes (the rule's minimum; 128 random bits).
pub const NONCE_BYTES: usize = 16;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RPC_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `bizra attest`: checks the local input, signs and submits the attestation, prints its id and, with `--wait`, writes `attestation.json`.
pub fn run(a: AttestArgs) -> CliResult {
    let signer = bizra_node::keys::read(&a.key).map_err(usage)?;
    let (evidence_digest, evidence_len) = hash_evidence(&a.evidence)?;
    let (dimensions, weights) = parse_dims(&a.dims)?;
    if a.subject.is_empty() || a.subject.len() > poi::MAX_SUBJECT_BYTES {
        return Err(usage(format!(
            "--subject must be 1 to {} bytes, got {}",
            poi::MAX_SUBJECT_BYTES,
            a.subject.len()
        )));
    }
    let now = now_ms();
    let (window_start_ms, window_end_ms) = window(a.window_start, a.window_end, now)?;
    let endpoint = endpoint_url(&a.grpc)?;
    let mut nonce = vec![0u8; NONCE_BYTES];
    rand::Rng::fill(&mut rand::rng(), nonce.as_mut_slice());
    let draft = Draft {
        chain_id: String::new(),
        subject: a.subject.clone(),
        evidence_digest,
        evidence_len,
        dimensions,
        weights,
        window_start_ms,
        window_end_ms,
        nonce,
    };
    super::runtime().block_on(submit_and_wait(&a, &endpoint, &signer, draft))
}

async fn submit_and_wait(a: &AttestArgs, endpoint: &str, signer: &Signer, mut draft: Draft) -> CliResult {
    let mut client = connect(endpoint).await?;
    let chain_id = attest::chain_id(&mut client, endpoint).await.map_err(check)?;
    draft.chain_id = chain_id.clone();
    let envelope = poi::build(signer, draft).map_err(usage)?;
    precheck(&envelope, signer, &chain_id)?;
    let id_hex = attest::submit(&mut client, endpoint, &envelope).await.map_err(check)?;
    println!("{id_hex}");
    if !a.wait {
        return Ok(());
    }

    let inc = attest::await_inclusion(&mut client, endpoint, &envelope, Duration::from_secs(a.timeout))
        .await
        .map_err(check)?;
    let doc = attestation_json(&envelope, &inc.attestation, &inc.commit, inc.validators.as_ref())
        .map_err(|e| check(format!("{endpoint}: {e}")))?;
    write_atomically(&a.out, doc.to_json_pretty().as_bytes())?;
    eprintln!(
        "attestation {id_hex} finalized at height {} (block {}); wrote {}",
        inc.attestation.height,
        hex::encode(&inc.attestation.block_hash),
        a.out.display()
    );
    Ok(())
}

/// Runs the node's rules locally (membership aside, which only the node
/// knows), so a bad attestation is reported as bad input before it is sent.
fn precheck(envelope: &Envelope, signer: &Signer, chain_id: &str) -> CliResult {
    let me = Membership::new(vec![Member {
        id: signer.id().to_string(),
        name: String::new(),
        stake: 0,
        key: signer.public_key(),
    }]);
    poi::check(envelope, chain_id, &me, now_ms())
        .map(|_| ())
        .map_err(|e| usage(format!("attestation would be refused: {e}")))
}

/// One connection attempt ([`bizra_client::connect_once`]) with this
/// command's timeouts.
pub(crate) async fn connect(endpoint: &str) -> Result<NodeClient<Channel>, Failure> {
    bizra_client::connect_once(endpoint, Timeouts::new(CONNECT_TIMEOUT, RPC_TIMEOUT))
        .await
        .map_err(|e| match e {
            ConnectError::BadUrl { reason, .. } => usage(format!("--grpc {endpoint:?} is not a valid URL: {reason}")),
            ConnectError::Unreachable { cause, .. } => check(format!("cannot reach {endpoint}: {cause}")),
        })
}

// The client-side checks of what the node served, and the assembly of
// attestation.json from its answers, are pure: they live in `bizra-proof`.
pub use bizra_proof::served::{attestation_json, check_inclusion, commit_part, telemetry_of};

/// Parses one `--dim NAME=VALUE:WEIGHT`.
pub fn parse_dim(s: &str) -> Result<(String, u32, u32), String> {
    let bad = |why: &str| format!("--dim {s:?}: {why} (expected NAME=VALUE:WEIGHT, e.g. uptime=9500:4000)");
    let (name, rest) = s.split_once('=').ok_or_else(|| bad("missing '='"))?;
    let (value, weight) = rest.split_once(':').ok_or_else(|| bad("missing ':'"))?;
    if !poi::valid_name(name) {
        return Err(bad(&format!(
            "name must be 1 to {} bytes of [a-z0-9_.-]",
            poi::MAX_NAME_BYTES
        )));
    }
    let bps = |what: &str, t: &str| -> Result<u32, String> {
        match t.parse::<u32>() {
            Ok(n) if n <= poi::BPS && t.bytes().all(|c| c.is_ascii_digit()) => Ok(n),
            _ => Err(bad(&format!("{what} {t:?} is not an integer from 0 to 10000"))),
        }
    };
    Ok((name.to_string(), bps("value", value)?, bps("weight", weight)?))
}

/// Parses every `--dim` into the dimension and weight maps. Exit 2 on a
/// malformed flag, a repeated name, too many dimensions, or weights that do
/// not sum to 10000.
#[allow(clippy::type_complexity)]
pub fn parse_dims(flags: &[String]) -> Result<(BTreeMap<String, u32>, BTreeMap<String, u32>), Failure> {
    if flags.is_empty() {
        return Err(usage("at least one --dim NAME=VALUE:WEIGHT is required"));
    }
    if flags.len() > poi::MAX_DIMENSIONS {
        return Err(usage(format!(
            "{} --dim flags, above the limit of {}",
            flags.len(),
            poi::MAX_DIMENSIONS
        )));
    }
    let (mut dims, mut weights) = (BTreeMap::new(), BTreeMap::new());
    for f in flags {
        let (name, value, weight) = parse_dim(f).map_err(usage)?;
        if dims.insert(name.clone(), value).is_some() {
            return Err(usage(format!(
                "--dim {f:?}: dimension {name:?} is given more than once"
            )));
        }
        weights.insert(name, weight);
    }
    let sum: u64 = weights.values().map(|&w| w as u64).sum();
    if sum != poi::BPS as u64 {
        return Err(usage(format!("--dim weights sum to {sum}, they must sum to 10000")));
    }
    poi::impact_bps(&dims, &weights).map_err(usage)?;
    Ok((dims, weights))
}

/// BLAKE3 digest and length of the evidence file (exit 2 if it cannot be read).
pub fn hash_evidence(path: &Path) -> Result<(Hash, u64), Failure> {
    let unreadable = |e: std::io::Error| usage(format!("cannot read evidence file {}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(unreadable)?;
    let mut h = blake3::Hasher::new();
    let len = std::io::copy(&mut f, &mut h).map_err(unreadable)?;
    Ok((*h.finalize().as_bytes(), len))
}

/// The observation window: the hour ending now unless given; a lone
/// `--window-end` starts an hour before it. Reversed or future windows are
/// refused here with the node's rule (end at most now + the allowed skew).
pub fn window(start: Option<u64>, end: Option<u64>, now: u64) -> Result<(u64, u64), Failure> {
    let end = end.unwrap_or(now);
    let start = start.unwrap_or(end.saturating_sub(DEFAULT_WINDOW_MS));
    if start > end {
        return Err(usage(format!("--window-start {start} is after the window end {end}")));
    }
    if end > now.saturating_add(poi::MAX_CLOCK_SKEW_MS) {
        return Err(usage(format!(
            "--window-end {end} is in the future (now is {now} ms; at most {} ms ahead is allowed)",
            poi::MAX_CLOCK_SKEW_MS
        )));
    }
    Ok((start, end))
}

/// `http://` is assumed when the endpoint has no scheme (the one rule,
/// [`super::grpc_url`]).
pub fn endpoint_url(grpc: &str) -> Result<String, Failure> {
    super::grpc_url(grpc)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes via a temporary file and a rename, so a reader never sees half a file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> CliResult {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            check(format!("cannot write {}: {e}", path.display()))
        })
}

#[cfg(test)]
mod tests;
