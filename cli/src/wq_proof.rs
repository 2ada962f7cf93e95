//! `bizra wq-proof`: the 3-validator agreement gate (docs/PROTOCOL.md §9).
//!
//! 1. Connects to every endpoint, retrying with backoff (100 ms doubling to
//!    2 s, each attempt at most 10 s) until `--timeout`, so the gate can be run
//!    right after the nodes were started. An endpoint still unreachable at the
//!    deadline, or one that answers an RPC with an error (`UNAVAILABLE`,
//!    `UNKNOWN`, `CANCELLED` and `DEADLINE_EXCEEDED` from `GetStatus` are retried like a
//!    refused connection), fails the gate (exit 1) naming it; a
//!    malformed URL is bad usage (exit 2).
//! 2. Polls `GetStatus` until every endpoint has finalized `--min-height`, up to
//!    `--timeout` seconds. The proof height is the lowest finalized height of
//!    the endpoints. Endpoints on another chain or genesis fail the gate.
//! 3. Collects from each endpoint the block at that height (its hash is
//!    recomputed from the header) and its signed `HeadReport`; from the first
//!    endpoint the commit (`GetCommit`) and the weights of the height's epoch
//!    (`GetValidators`, epoch taken from the block header).
//!
//!    Steps 1 to 3 are [`bizra_client::wq_proof::collect`]; this command maps
//!    its errors to exit codes.
//! 4. Checks everything locally with [`crate::verify::check_proof`]: every
//!    head report and precommit signature, fields, distinct signers, the weight
//!    tally and the quorum. The fast threshold is not served over gRPC: without
//!    `--genesis` the quorum is checked at the lowest threshold any genesis may
//!    set (6667 bps) and the node's `fast_final` is required; `bizra verify`
//!    (or `--genesis` here) recomputes it from genesis.
//! 5. Writes the proof and prints the agreement line last. Exit 0 only when all
//!    heads agree, every envelope verifies and the commit is fast-final. When
//!    the heads disagree (all correctly signed) the proof is still written, for
//!    diagnosis, and the exit code is 1. In every other failure nothing is written.

use super::verify::load_genesis;
use super::{check, usage, CliResult, Failure};
use bizra_client::wq_proof::{Chain, GatherError};
use bizra_client::ConnectError;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::types::short_hex;
use bizra_proof::verify::{check_proof, epoch_weights, keys_from_ids, telemetry_weights, TrustRoot};
use bizra_proof::VerifyError;
use bizra_proof::{agreement_line, build_proof, percent, WqProof};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `bizra wq-proof`.
#[derive(Args, Debug, Clone)]
pub struct WqProofArgs {
    /// Comma-separated gRPC endpoints, e.g. http://127.0.0.1:7500,http://127.0.0.1:7501
    #[arg(long, value_delimiter = ',', required = true)]
    pub grpc: Vec<String>,
    /// Lowest height to prove.
    #[arg(long, default_value_t = 3)]
    pub min_height: u64,
    /// Seconds to wait for a common finalized height.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Where to write the proof.
    #[arg(long, default_value = "wq_proof.json")]
    pub out: PathBuf,
    /// Optional genesis.json: also check the proof exactly as `bizra verify` does
    /// (fast threshold and epoch-0 weights from genesis) before passing.
    #[arg(long)]
    pub genesis: Option<PathBuf>,
}

/// Interval between status polls (of [`bizra_client::wq_proof::collect`]).
pub use bizra_client::wq_proof::POLL_INTERVAL;

/// What a run produced.
#[derive(Clone, Debug)]
pub struct ProofOutcome {
    /// The assembled proof.
    pub proof: WqProof,
    /// The JSON written (pretty, with a trailing newline).
    pub json: String,
    /// The agreement line, printed last.
    pub line: String,
    /// One line per endpoint, printed before the agreement line.
    pub endpoint_lines: Vec<String>,
    /// Caveats (printed on stderr).
    pub notes: Vec<String>,
    /// True when the gate passes (exit 0).
    pub ok: bool,
    /// Why the gate failed when it did (the proof was written for diagnosis).
    pub problem: Option<String>,
    /// Where the proof was written.
    pub written: Option<PathBuf>,
}

/// Runs `bizra wq-proof`: builds, checks and writes the proof, prints the notes (stderr), the endpoint lines and the agreement line; exit 1 when the gate fails.
pub fn run(a: WqProofArgs) -> CliResult {
    let outcome = run_wq_proof(&a)?;
    for n in &outcome.notes {
        eprintln!("note: {n}");
    }
    for l in &outcome.endpoint_lines {
        println!("{l}");
    }
    println!("{}", outcome.line);
    match outcome.problem {
        None if outcome.ok => Ok(()),
        p => Err(check(p.unwrap_or_else(|| "the gate failed".into()))),
    }
}

/// Runs the gate on its own current-thread runtime and writes the proof.
/// `Ok` means a proof was assembled and written: check `ok` for the verdict
/// (false only when heads disagree). `Err(Failure::Check)` is exit 1 with nothing
/// written, `Err(Failure::Usage)` exit 2. Do not call it from inside a tokio
/// runtime; use [`wq_proof`] there.
pub fn run_wq_proof(a: &WqProofArgs) -> Result<ProofOutcome, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| check(format!("cannot start a runtime: {e}")))?;
    rt.block_on(wq_proof(a))
}

/// The gate, async. See [`run_wq_proof`].
pub async fn wq_proof(a: &WqProofArgs) -> Result<ProofOutcome, Failure> {
    let urls = validate_args(a)?;
    let genesis = match &a.genesis {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| usage(format!("cannot read genesis {}: {e}", p.display())))?;
            Some(load_genesis(&bytes)?)
        }
        None => None,
    };
    let mut outcome = gather_and_check(a, &urls, genesis.as_ref()).await?;
    write_atomically(&a.out, &outcome.json)?;
    outcome.written = Some(a.out.clone());
    if let Some(p) = &mut outcome.problem {
        p.push_str(&format!("; proof written to {} for diagnosis", a.out.display()));
    }
    Ok(outcome)
}

/// Checks the flags; returns the normalized endpoint URLs.
pub fn validate_args(a: &WqProofArgs) -> Result<Vec<String>, Failure> {
    if a.grpc.is_empty() {
        return Err(usage("--grpc: give at least one endpoint"));
    }
    let mut urls: Vec<String> = Vec::with_capacity(a.grpc.len());
    for raw in &a.grpc {
        let u = normalize_url(raw)?;
        if urls.contains(&u) {
            return Err(usage(format!("--grpc: endpoint {u} is given twice")));
        }
        urls.push(u);
    }
    if a.min_height == 0 {
        return Err(usage("--min-height must be at least 1 (height 0 is genesis)"));
    }
    if a.out.as_os_str().is_empty() || a.out.is_dir() {
        return Err(usage(format!("--out {}: not a file path", a.out.display())));
    }
    let parent = a
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(usage(format!(
            "--out {}: directory {} does not exist",
            a.out.display(),
            parent.display()
        )));
    }
    Ok(urls)
}

/// `host:port` becomes `http://host:port`; anything but a plain http URL with a
/// host is bad usage (the one rule, [`super::grpc_url`]).
pub fn normalize_url(raw: &str) -> Result<String, Failure> {
    super::grpc_url(raw)
}

/// The gathering's error as this command reports it: a bad URL is a usage
/// error naming `--grpc`, an endpoint off `--genesis` names that flag and the
/// chain it gives, and every other failure is a check failure with the
/// client's message.
fn gather_failure(e: GatherError, genesis: Option<&Chain>) -> Failure {
    match (e, genesis) {
        (GatherError::Connect(ConnectError::BadUrl { url, reason }), _) => usage(format!("--grpc {url}: {reason}")),
        (
            GatherError::Unexpected {
                url,
                chain_id,
                genesis_hash,
            },
            Some(g),
        ) => check(format!(
            "endpoint {} is on a different genesis (chain {:?}, hash {}) than --genesis (chain {:?}, hash {})",
            url,
            chain_id,
            hex::encode(&genesis_hash),
            g.chain_id,
            hex::encode(g.genesis_hash)
        )),
        (e, _) => check(e),
    }
}

/// Gathers the proof's parts with [`bizra_client::wq_proof::collect`], builds
/// the proof and checks it; nothing is written here.
async fn gather_and_check(
    a: &WqProofArgs,
    urls: &[String],
    genesis: Option<&Genesis>,
) -> Result<ProofOutcome, Failure> {
    // One deadline for connecting and for the height: nodes may still be starting.
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let expected = genesis.map(|g| Chain {
        chain_id: g.chain_id().to_string(),
        genesis_hash: g.hash,
    });
    let parts = bizra_client::wq_proof::collect(urls, a.min_height, deadline, expected.as_ref())
        .await
        .map_err(|e| gather_failure(e, expected.as_ref()))?;
    let h = parts.height;
    let genesis_hash = parts.genesis_hash;
    let telemetry_note = parts.telemetry_note.clone();
    let proof = build_proof(&parts);

    // Check everything before writing anything.
    let mut notes: Vec<String> = telemetry_note.into_iter().collect();
    let with_endpoint = |e: VerifyError| -> Failure {
        let f = Failure::from(e);
        let msg = f.to_string();
        let ctx = (0..urls.len()).find(|i| msg.starts_with(&format!("validators[{i}]")));
        match ctx {
            Some(i) => check(format!("{msg} (endpoint {})", urls[i])),
            None if msg.starts_with("commit") || msg.starts_with("telemetry") => {
                let note = parts
                    .telemetry_note
                    .as_ref()
                    .map(|n| format!("; note: {n}"))
                    .unwrap_or_default();
                check(format!("{msg} (endpoint {}){note}", urls[0]))
            }
            None => f,
        }
    };
    let (root, weights) = match genesis {
        Some(g) => {
            let (w, _) = epoch_weights(g, h, Some(&proof.telemetry), "telemetry").map_err(with_endpoint)?;
            (TrustRoot::from_genesis(g), w)
        }
        None => {
            let keys = keys_from_ids(parts.telemetry.iter().map(|t| t.id.as_str())).map_err(with_endpoint)?;
            let w = telemetry_weights(&proof.telemetry, &keys).map_err(with_endpoint)?;
            notes.push(
                "the fast threshold is not served over gRPC: the quorum was checked at the 6667 bps floor and the \
node's fast_final was required; `bizra verify` (or --genesis) recomputes both from genesis"
                    .into(),
            );
            let root = TrustRoot {
                chain_id: parts.chain_id.clone(),
                genesis_hash,
                keys,
                thresholds: None,
            };
            (root, w)
        }
    };
    let summary = check_proof(&proof, &root, &weights, false).map_err(with_endpoint)?;
    if !proof.commit.fast_final {
        return Err(check(format!(
            "the commit at height {h} is not fast-final according to {} ({} of the weight signed)",
            urls[0],
            percent(summary.share_bps)
        )));
    }

    let endpoint_lines = proof
        .validators
        .iter()
        .map(|v| {
            format!(
                "{}  validator {}…  {} {}…  head report signed",
                v.endpoint,
                &v.id[..v.id.len().min(8)],
                v.head,
                &v.block_hash[..8]
            )
        })
        .collect();
    let problem = (!summary.heads_agree).then(|| {
        format!(
            "heads disagree at height {h}: {} (the commit of {} certifies {}…)",
            proof.agreement,
            urls[0],
            short_hex(&summary.block_hash)
        )
    });
    Ok(ProofOutcome {
        json: proof.to_json_pretty(),
        line: agreement_line(&proof),
        proof,
        endpoint_lines,
        notes,
        ok: summary.heads_agree,
        problem,
        written: None,
    })
}

/// Writes `text` to `path` via a temporary file and a rename.
fn write_atomically(path: &Path, text: &str) -> Result<(), Failure> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            usage(format!("cannot write {}: {e}", path.display()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(grpc: &[&str]) -> WqProofArgs {
        WqProofArgs {
            grpc: grpc.iter().map(|s| s.to_string()).collect(),
            min_height: 3,
            timeout: 1,
            out: std::env::temp_dir().join("bizra-wq-proof-unit.json"),
            genesis: None,
        }
    }

    fn is_usage(r: Result<impl std::fmt::Debug, Failure>) -> bool {
        matches!(r, Err(Failure::Usage(_)))
    }

    #[test]
    fn urls_are_normalized_or_refused_as_usage() {
        assert_eq!(normalize_url("127.0.0.1:7500").unwrap(), "http://127.0.0.1:7500");
        assert_eq!(
            normalize_url("http://127.0.0.1:7500/").unwrap(),
            "http://127.0.0.1:7500"
        );
        for bad in [
            "",
            "https://127.0.0.1:7500",
            "ftp://x:1",
            "http://",
            "http://127.0.0.1:7500/path",
            "http://a b",
        ] {
            assert!(is_usage(normalize_url(bad)), "{bad:?} accepted");
        }
        assert!(is_usage(validate_args(&args(&["127.0.0.1:1", "http://127.0.0.1:1"]))));
        let mut a = args(&["127.0.0.1:1"]);
        a.min_height = 0;
        assert!(is_usage(validate_args(&a)));
        a.min_height = 1;
        a.out = PathBuf::from("/nonexistent-dir-bizra/x.json");
        assert!(is_usage(validate_args(&a)));
    }

    fn free_port() -> u16 {
        // Bind and drop a listener to get a free loopback port with nothing behind it.
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn dead_endpoint_fails_the_check_naming_it_and_writes_nothing() {
        let port = free_port();
        let mut a = args(&[&format!("127.0.0.1:{port}")]);
        a.out = std::env::temp_dir().join(format!("bizra-wq-proof-dead-{port}.json"));
        let err = run_wq_proof(&a).unwrap_err();
        match err {
            Failure::Check(m) => assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}"),
            Failure::Usage(m) => panic!("usage error: {m}"),
        }
        assert!(!a.out.exists());
    }
}
