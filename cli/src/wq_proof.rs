//! `bizra wq-proof`: the 3-validator agreement gate (docs/PROTOCOL.md §9).
//!
//! 1. Connects to every endpoint, retrying with backoff (100 ms doubling to
//!    2 s, each attempt at most 10 s) until `--timeout`, so the gate can be run
//!    right after the nodes were started. An endpoint still unreachable at the
//!    deadline, or one that answers an RPC with an error (`UNAVAILABLE`,
//!    `UNKNOWN` and `DEADLINE_EXCEEDED` from `GetStatus` are retried like a
//!    refused connection), fails the gate (exit 1) naming it; a
//!    malformed URL is bad usage (exit 2).
//! 2. Polls `GetStatus` until every endpoint has finalized `--min-height`, up to
//!    `--timeout` seconds. The proof height is the lowest finalized height of
//!    the endpoints. Endpoints on another chain or genesis fail the gate.
//! 3. Collects from each endpoint the block at that height (its hash is
//!    recomputed from the header) and its signed `HeadReport`; from the first
//!    endpoint the commit (`GetCommit`) and the weights of the height's epoch
//!    (`GetValidators`, epoch taken from the block header).
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
use bizra_client::ConnectError;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::messages::block_hash;
use bizra_consensus::types::{block_label, hash_from_slice, short_hex, Hash};
use bizra_consensus::weights::Components;
use bizra_proof::verify::{check_proof, epoch_weights, keys_from_ids, telemetry_weights, TrustRoot};
use bizra_proof::VerifyError;
use bizra_proof::{
    agreement_line, build_proof, percent, signed_vote_envelope, CommitPart, HeadPart, ProofParts, TelemetryPart,
    WqProof,
};
use bizra_proto::node_client::NodeClient;
use bizra_proto::{
    get_block_request, GetBlockRequest, GetCommitRequest, GetHeadReportRequest, GetStatusRequest, GetStatusResponse,
    GetValidatorsRequest,
};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

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

/// Interval between status polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

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
    let mut outcome = collect(a, &urls, genesis.as_ref()).await?;
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

fn rpc_fail(url: &str, method: &str, s: tonic::Status) -> Failure {
    check(format!(
        "endpoint {url}: {method} failed: {:?}: {}",
        s.code(),
        s.message()
    ))
}

/// Connects to `url` with [`bizra_client::connect`] (retries with backoff
/// until `deadline`): a bad URL is a usage error, an endpoint that never
/// answers a check failure naming it, the attempts and the time spent.
pub async fn connect_until(url: &str, deadline: Instant) -> Result<NodeClient<Channel>, Failure> {
    bizra_client::connect(url, deadline).await.map_err(|e| match e {
        ConnectError::BadUrl { url, reason } => usage(format!("--grpc {url}: {reason}")),
        e @ ConnectError::Unreachable { .. } => check(e.to_string()),
    })
}

/// A `GetStatus` failure; the variant says whether it is worth polling again.
enum StatusError {
    /// `UNAVAILABLE` (or `UNKNOWN`/`DEADLINE_EXCEEDED` from the transport):
    /// the node is (re)starting or the connection is being re-made.
    Unavailable(Failure),
    Other(Failure),
}
use StatusError::{Other, Unavailable};

impl From<StatusError> for Failure {
    fn from(e: StatusError) -> Failure {
        match e {
            Unavailable(f) | Other(f) => f,
        }
    }
}

async fn status(url: &str, mut c: NodeClient<Channel>) -> Result<GetStatusResponse, StatusError> {
    let s = c
        .get_status(GetStatusRequest {})
        .await
        .map_err(|e| {
            // Transport trouble while a node (re)starts: UNAVAILABLE, or
            // UNKNOWN "transport error" when a published port accepted the
            // connection before the node behind it listened.
            let unavailable = matches!(
                e.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::DeadlineExceeded
            );
            let f = rpc_fail(url, "GetStatus", e);
            if unavailable {
                Unavailable(f)
            } else {
                Other(f)
            }
        })?
        .into_inner();
    if hash_from_slice(&s.genesis_hash).ok().flatten().is_none() {
        return Err(Other(check(format!(
            "endpoint {url}: GetStatus genesis_hash is not 32 bytes"
        ))));
    }
    Ok(s)
}

/// Every endpoint on the first one's chain and genesis.
fn same_chain(urls: &[String], st: &[GetStatusResponse]) -> Result<(), Failure> {
    let first = &st[0];
    for (u, s) in urls.iter().zip(st).skip(1) {
        if s.chain_id != first.chain_id {
            return Err(check(format!(
                "endpoint {u} is on chain {:?}, but {} is on {:?}",
                s.chain_id, urls[0], first.chain_id
            )));
        }
        if s.genesis_hash != first.genesis_hash {
            return Err(check(format!(
                "endpoint {u} is on a different genesis (hash {}, but {} has {})",
                hex::encode(&s.genesis_hash),
                urls[0],
                hex::encode(&first.genesis_hash)
            )));
        }
    }
    for (i, s) in st.iter().enumerate() {
        if let Some(j) = st[..i].iter().position(|t| t.validator == s.validator) {
            return Err(check(format!(
                "endpoints {} and {} are the same validator {}: agreement needs distinct validators",
                urls[j], urls[i], s.validator
            )));
        }
    }
    Ok(())
}

struct Collected {
    hash: Hash,
    epoch: u64,
    head: HeadPart,
}

async fn collect_one(
    url: &str,
    mut c: NodeClient<Channel>,
    st: &GetStatusResponse,
    h: u64,
) -> Result<Collected, Failure> {
    let b = c
        .get_block(GetBlockRequest {
            selector: Some(get_block_request::Selector::Height(h)),
        })
        .await
        .map_err(|e| rpc_fail(url, &format!("GetBlock({h})"), e))?
        .into_inner();
    let block = b
        .block
        .ok_or_else(|| check(format!("endpoint {url}: GetBlock({h}) returned no block")))?;
    let header = block
        .header
        .clone()
        .ok_or_else(|| check(format!("endpoint {url}: GetBlock({h}) returned a block without header")))?;
    let hash = block_hash(&block).expect("header present");
    if b.block_hash != hash.as_slice() {
        return Err(check(format!(
            "endpoint {url}: GetBlock({h}) block hash {} is not the BLAKE3 of its header ({})",
            hex::encode(&b.block_hash),
            hex::encode(hash)
        )));
    }
    if header.height != h || header.chain_id != st.chain_id {
        return Err(check(format!(
            "endpoint {url}: GetBlock({h}) returned block {} of chain {:?}",
            block_label(header.height),
            header.chain_id
        )));
    }
    let r = c
        .get_head_report(GetHeadReportRequest { height: h })
        .await
        .map_err(|e| rpc_fail(url, &format!("GetHeadReport({h})"), e))?
        .into_inner();
    let envelope = r
        .envelope
        .ok_or_else(|| check(format!("endpoint {url}: GetHeadReport({h}) returned no envelope")))?;
    Ok(Collected {
        hash,
        epoch: header.epoch,
        head: HeadPart {
            id: st.validator.clone(),
            endpoint: url.to_string(),
            block_hash: hash,
            envelope,
        },
    })
}

fn parse_weight(url: &str, what: &str, s: &str) -> Result<u128, Failure> {
    bizra_proof::parse_u128(s).ok_or_else(|| check(format!("endpoint {url}: {what} {s:?} is not a decimal u128")))
}

async fn commit_part(url: &str, mut c: NodeClient<Channel>, h: u64, hash: &Hash) -> Result<CommitPart, Failure> {
    let r = c
        .get_commit(GetCommitRequest { height: h })
        .await
        .map_err(|e| rpc_fail(url, &format!("GetCommit({h})"), e))?
        .into_inner();
    if let Some(cert) = &r.commit {
        if cert.height != h || cert.block_hash != hash.as_slice() {
            return Err(check(format!(
                "endpoint {url}: GetCommit({h}) returned a certificate for height {} block {}",
                cert.height,
                hex::encode(&cert.block_hash)
            )));
        }
    }
    let signatures = if r.signatures.is_empty() {
        r.commit
            .as_ref()
            .map(|cert| cert.precommits.iter().map(signed_vote_envelope).collect())
            .unwrap_or_default()
    } else {
        r.signatures
    };
    Ok(CommitPart {
        signers: r.signers,
        signatures,
        signed_weight: parse_weight(url, "GetCommit signed_weight", &r.signed_weight)?,
        total_weight: parse_weight(url, "GetCommit total_weight", &r.total_weight)?,
        share_bps: r.share_bps,
        fast_final: r.fast_final,
        economic_final: r.economic_final,
    })
}

/// Validators of `epoch`; falls back to the current epoch (with a note) if the
/// node does not serve that epoch.
async fn telemetry_part(
    url: &str,
    mut c: NodeClient<Channel>,
    epoch: u64,
) -> Result<(Vec<TelemetryPart>, u64, Option<String>), Failure> {
    let (resp, note) = match c.get_validators(GetValidatorsRequest { epoch: Some(epoch) }).await {
        Ok(r) => (r.into_inner(), None),
        Err(e) if e.code() == tonic::Code::NotFound || e.code() == tonic::Code::FailedPrecondition => {
            let r = c
                .get_validators(GetValidatorsRequest { epoch: None })
                .await
                .map_err(|e| rpc_fail(url, "GetValidators", e))?
                .into_inner();
            let note = format!(
                "{url} does not serve the weights of epoch {epoch} ({}); telemetry is of the current epoch {}",
                e.message(),
                r.epoch
            );
            (r, Some(note))
        }
        Err(e) => return Err(rpc_fail(url, &format!("GetValidators(epoch {epoch})"), e)),
    };
    let note = match note {
        None if resp.epoch != epoch => Some(format!(
            "{url} answered GetValidators(epoch {epoch}) with epoch {}",
            resp.epoch
        )),
        n => n,
    };
    let parts = resp
        .validators
        .iter()
        .map(|v| {
            Ok(TelemetryPart {
                id: v.id.clone(),
                wq_weight: parse_weight(url, &format!("GetValidators wq_weight of {}", v.id), &v.wq_weight)?,
                components: Components {
                    stake: v.stake,
                    poi: v.poi,
                    rep: v.rep,
                },
                jailed_until: v.jailed.then_some(v.jailed_until_epoch),
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    Ok((parts, resp.epoch, note))
}

async fn collect(a: &WqProofArgs, urls: &[String], genesis: Option<&Genesis>) -> Result<ProofOutcome, Failure> {
    // One deadline for connecting and for the height: nodes may still be starting.
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let clients: Vec<NodeClient<Channel>> = futures::future::join_all(urls.iter().map(|u| connect_until(u, deadline)))
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    // Wait for a common finalized height >= min_height.
    let statuses = loop {
        let polled = futures::future::join_all(urls.iter().zip(&clients).map(|(u, c)| status(u, c.clone()))).await;
        // A node that is restarting answers UNAVAILABLE: poll again until the deadline.
        if polled.iter().any(|r| matches!(r, Err(Unavailable(_)))) && Instant::now() + POLL_INTERVAL < deadline {
            tokio::time::sleep(POLL_INTERVAL).await;
            continue;
        }
        let st: Vec<GetStatusResponse> = polled
            .into_iter()
            .map(|r| r.map_err(Failure::from))
            .collect::<Result<_, _>>()?;
        same_chain(urls, &st)?;
        if let Some(g) = genesis {
            if st[0].chain_id != g.chain_id() || st[0].genesis_hash != g.hash.as_slice() {
                return Err(check(format!(
                    "endpoint {} is on a different genesis (chain {:?}, hash {}) than --genesis (chain {:?}, hash {})",
                    urls[0],
                    st[0].chain_id,
                    hex::encode(&st[0].genesis_hash),
                    g.chain_id(),
                    hex::encode(g.hash)
                )));
            }
        }
        let lowest = (0..st.len())
            .min_by_key(|&i| st[i].finalized_height)
            .expect("endpoints");
        if st[lowest].finalized_height >= a.min_height {
            break st;
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(check(format!(
                "timeout waiting for height {}: endpoint {} at height {}",
                a.min_height, urls[lowest], st[lowest].finalized_height
            )));
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    };
    let h = statuses.iter().map(|s| s.finalized_height).min().expect("endpoints");

    // Collect the height from everyone.
    let collected: Vec<Collected> = futures::future::join_all(
        urls.iter()
            .zip(&clients)
            .zip(&statuses)
            .map(|((u, c), s)| collect_one(u, c.clone(), s, h)),
    )
    .await
    .into_iter()
    .collect::<Result<_, _>>()?;
    let first = &collected[0];
    let commit = commit_part(&urls[0], clients[0].clone(), h, &first.hash).await?;
    let (telemetry, telemetry_epoch, telemetry_note) =
        telemetry_part(&urls[0], clients[0].clone(), first.epoch).await?;

    let genesis_hash: Hash = hash_from_slice(&statuses[0].genesis_hash)
        .ok()
        .flatten()
        .expect("checked in status()");
    let parts = ProofParts {
        chain_id: statuses[0].chain_id.clone(),
        genesis_hash,
        height: h,
        block_hash: first.hash,
        heads: collected.iter().map(|c| c.head.clone()).collect(),
        commit,
        telemetry,
        telemetry_epoch: Some(telemetry_epoch),
        telemetry_note: telemetry_note.clone(),
    };
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
