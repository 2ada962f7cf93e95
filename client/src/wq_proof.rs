//! Gathering a wq-proof over gRPC (docs/PROTOCOL.md §9): what `bizra wq-proof`
//! asks its endpoints before it checks and writes the proof.
//!
//! [`collect`] connects to every endpoint (retrying with backoff until the
//! deadline, as [`connect`](crate::connect) does), polls `GetStatus` until
//! every endpoint has finalized the minimum height (the proof height is the
//! lowest finalized height), then takes from each endpoint the block at that
//! height (its hash recomputed from the header) and its signed `HeadReport`,
//! and from the first one the commit (`GetCommit`) and the weights of the
//! block's epoch (`GetValidators`). Nothing is verified here beyond what the
//! answers must be to be used at all: the signatures, the tally and the
//! quorum are `bizra_proof::verify`'s.

use crate::connect::{connect, ConnectError};
use crate::rpc::RpcError;
use bizra_consensus::messages::block_hash;
use bizra_consensus::types::{block_label, hash_from_slice, Hash};
use bizra_consensus::weights::Components;
use bizra_proof::{parse_u128, signed_vote_envelope, CommitPart, HeadPart, ProofParts, TelemetryPart};
use bizra_proto::node_client::NodeClient;
use bizra_proto::{
    get_block_request, GetBlockRequest, GetCommitRequest, GetHeadReportRequest, GetStatusRequest, GetStatusResponse,
    GetValidatorsRequest,
};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Interval between status polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The chain and genesis every endpoint must be on (from a genesis file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The chain id.
    pub chain_id: String,
    /// The genesis hash.
    pub genesis_hash: Hash,
}

/// Why no proof parts were gathered. The messages name the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatherError {
    /// An endpoint could not be reached by the deadline, or its URL is bad.
    Connect(ConnectError),
    /// An endpoint answered a call with an error status.
    Rpc(RpcError),
    /// An endpoint answered something that cannot be used (`problem` says what).
    Answer {
        /// The endpoint.
        url: String,
        /// What is wrong with the answer, starting with the method.
        problem: String,
    },
    /// An endpoint is on another chain than the first endpoint.
    OtherChain {
        /// The endpoint.
        url: String,
        /// Its chain id.
        chain_id: String,
        /// The first endpoint.
        first_url: String,
        /// The first endpoint's chain id.
        first_chain_id: String,
    },
    /// An endpoint is on another genesis than the first endpoint.
    OtherGenesis {
        /// The endpoint.
        url: String,
        /// Its genesis hash, as served.
        genesis_hash: Vec<u8>,
        /// The first endpoint.
        first_url: String,
        /// The first endpoint's genesis hash, as served.
        first_genesis_hash: Vec<u8>,
    },
    /// Two endpoints are the same validator.
    SameValidator {
        /// The earlier endpoint.
        first_url: String,
        /// The later endpoint.
        url: String,
        /// The validator both report.
        validator: String,
    },
    /// The first endpoint is not on the expected [`Chain`] given to [`collect`].
    Unexpected {
        /// The first endpoint.
        url: String,
        /// Its chain id.
        chain_id: String,
        /// Its genesis hash, as served.
        genesis_hash: Vec<u8>,
    },
    /// The deadline passed before every endpoint finalized the minimum height.
    Timeout {
        /// The minimum height waited for.
        min_height: u64,
        /// The endpoint with the lowest finalized height.
        url: String,
        /// Its finalized height at the last poll.
        height: u64,
    },
}

impl std::fmt::Display for GatherError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatherError::Connect(e) => std::fmt::Display::fmt(e, f),
            GatherError::Rpc(e) => write!(
                f,
                "endpoint {}: {} failed: {:?}: {}",
                e.url, e.method, e.code, e.message
            ),
            GatherError::Answer { url, problem } => write!(f, "endpoint {url}: {problem}"),
            GatherError::OtherChain {
                url,
                chain_id,
                first_url,
                first_chain_id,
            } => write!(
                f,
                "endpoint {url} is on chain {chain_id:?}, but {first_url} is on {first_chain_id:?}"
            ),
            GatherError::OtherGenesis {
                url,
                genesis_hash,
                first_url,
                first_genesis_hash,
            } => write!(
                f,
                "endpoint {url} is on a different genesis (hash {}, but {first_url} has {})",
                hex::encode(genesis_hash),
                hex::encode(first_genesis_hash)
            ),
            GatherError::SameValidator {
                first_url,
                url,
                validator,
            } => write!(
                f,
                "endpoints {first_url} and {url} are the same validator {validator}: agreement needs distinct validators"
            ),
            GatherError::Unexpected {
                url,
                chain_id,
                genesis_hash,
            } => write!(
                f,
                "endpoint {url} is on a different genesis (chain {chain_id:?}, hash {}) than expected",
                hex::encode(genesis_hash)
            ),
            GatherError::Timeout {
                min_height,
                url,
                height,
            } => write!(
                f,
                "timeout waiting for height {min_height}: endpoint {url} at height {height}"
            ),
        }
    }
}

impl std::error::Error for GatherError {}

fn answer(url: &str, problem: String) -> GatherError {
    GatherError::Answer {
        url: url.to_string(),
        problem,
    }
}

fn rpc(url: &str, method: impl Into<String>, s: tonic::Status) -> GatherError {
    GatherError::Rpc(RpcError::new(url, method, &s))
}

/// A `GetStatus` failure; the variant says whether it is worth polling again.
enum StatusError {
    /// `UNAVAILABLE` (or `UNKNOWN`/`DEADLINE_EXCEEDED` from the transport):
    /// the node is (re)starting or the connection is being re-made.
    Unavailable(GatherError),
    Other(GatherError),
}
use StatusError::{Other, Unavailable};

impl From<StatusError> for GatherError {
    fn from(e: StatusError) -> GatherError {
        match e {
            Unavailable(f) | Other(f) => f,
        }
    }
}

/// Whether a `GetStatus` failure with this code is transport trouble while a
/// node (re)starts, worth polling again: UNAVAILABLE; UNKNOWN "transport
/// error" when a published port accepted the connection before the node
/// behind it listened; CANCELLED when a proxy in front of the node (Docker
/// Swarm's ingress routing mesh before the task runs) accepts the connection
/// and then drops it; DEADLINE_EXCEEDED.
fn transient(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
    )
}

async fn status(url: &str, mut c: NodeClient<Channel>) -> Result<GetStatusResponse, StatusError> {
    let s = c
        .get_status(GetStatusRequest {})
        .await
        .map_err(|e| {
            let unavailable = transient(e.code());
            let f = rpc(url, "GetStatus", e);
            if unavailable {
                Unavailable(f)
            } else {
                Other(f)
            }
        })?
        .into_inner();
    if hash_from_slice(&s.genesis_hash).ok().flatten().is_none() {
        return Err(Other(answer(url, "GetStatus genesis_hash is not 32 bytes".into())));
    }
    Ok(s)
}

/// Every endpoint on the first one's chain and genesis.
fn same_chain(urls: &[String], st: &[GetStatusResponse]) -> Result<(), GatherError> {
    let first = &st[0];
    for (u, s) in urls.iter().zip(st).skip(1) {
        if s.chain_id != first.chain_id {
            return Err(GatherError::OtherChain {
                url: u.clone(),
                chain_id: s.chain_id.clone(),
                first_url: urls[0].clone(),
                first_chain_id: first.chain_id.clone(),
            });
        }
        if s.genesis_hash != first.genesis_hash {
            return Err(GatherError::OtherGenesis {
                url: u.clone(),
                genesis_hash: s.genesis_hash.clone(),
                first_url: urls[0].clone(),
                first_genesis_hash: first.genesis_hash.clone(),
            });
        }
    }
    for (i, s) in st.iter().enumerate() {
        if let Some(j) = st[..i].iter().position(|t| t.validator == s.validator) {
            return Err(GatherError::SameValidator {
                first_url: urls[j].clone(),
                url: urls[i].clone(),
                validator: s.validator.clone(),
            });
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
) -> Result<Collected, GatherError> {
    let b = c
        .get_block(GetBlockRequest {
            selector: Some(get_block_request::Selector::Height(h)),
        })
        .await
        .map_err(|e| rpc(url, format!("GetBlock({h})"), e))?
        .into_inner();
    let block = b
        .block
        .ok_or_else(|| answer(url, format!("GetBlock({h}) returned no block")))?;
    let header = block
        .header
        .clone()
        .ok_or_else(|| answer(url, format!("GetBlock({h}) returned a block without header")))?;
    let hash = block_hash(&block).expect("header present");
    if b.block_hash != hash.as_slice() {
        return Err(answer(
            url,
            format!(
                "GetBlock({h}) block hash {} is not the BLAKE3 of its header ({})",
                hex::encode(&b.block_hash),
                hex::encode(hash)
            ),
        ));
    }
    if header.height != h || header.chain_id != st.chain_id {
        return Err(answer(
            url,
            format!(
                "GetBlock({h}) returned block {} of chain {:?}",
                block_label(header.height),
                header.chain_id
            ),
        ));
    }
    let r = c
        .get_head_report(GetHeadReportRequest { height: h })
        .await
        .map_err(|e| rpc(url, format!("GetHeadReport({h})"), e))?
        .into_inner();
    let envelope = r
        .envelope
        .ok_or_else(|| answer(url, format!("GetHeadReport({h}) returned no envelope")))?;
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

fn parse_weight(url: &str, what: &str, s: &str) -> Result<u128, GatherError> {
    parse_u128(s).ok_or_else(|| answer(url, format!("{what} {s:?} is not a decimal u128")))
}

async fn commit_part(url: &str, mut c: NodeClient<Channel>, h: u64, hash: &Hash) -> Result<CommitPart, GatherError> {
    let r = c
        .get_commit(GetCommitRequest { height: h })
        .await
        .map_err(|e| rpc(url, format!("GetCommit({h})"), e))?
        .into_inner();
    if let Some(cert) = &r.commit {
        if cert.height != h || cert.block_hash != hash.as_slice() {
            return Err(answer(
                url,
                format!(
                    "GetCommit({h}) returned a certificate for height {} block {}",
                    cert.height,
                    hex::encode(&cert.block_hash)
                ),
            ));
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
) -> Result<(Vec<TelemetryPart>, u64, Option<String>), GatherError> {
    let (resp, note) = match c.get_validators(GetValidatorsRequest { epoch: Some(epoch) }).await {
        Ok(r) => (r.into_inner(), None),
        Err(e) if e.code() == tonic::Code::NotFound || e.code() == tonic::Code::FailedPrecondition => {
            let r = c
                .get_validators(GetValidatorsRequest { epoch: None })
                .await
                .map_err(|e| rpc(url, "GetValidators", e))?
                .into_inner();
            let note = format!(
                "{url} does not serve the weights of epoch {epoch} ({}); telemetry is of the current epoch {}",
                e.message(),
                r.epoch
            );
            (r, Some(note))
        }
        Err(e) => return Err(rpc(url, format!("GetValidators(epoch {epoch})"), e)),
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
        .collect::<Result<Vec<_>, GatherError>>()?;
    Ok((parts, resp.epoch, note))
}

/// Gathers the parts of a wq-proof from `urls` (normalized endpoint URLs,
/// at least one): connects to all of them, retrying until `deadline`; polls
/// `GetStatus` every [`POLL_INTERVAL`] (endpoints answering `UNAVAILABLE`,
/// `UNKNOWN` or `DEADLINE_EXCEEDED` are polled again) until every endpoint
/// has finalized `min_height` or `deadline` passes; requires every endpoint
/// on the first one's chain and genesis (and that on `expected`, if given)
/// and distinct validators; then collects the lowest finalized height. The
/// heads are in the order of `urls`; the commit and the telemetry are the
/// first endpoint's, with a `telemetry_note` when the node did not serve the
/// weights of the block's epoch.
pub async fn collect(
    urls: &[String],
    min_height: u64,
    deadline: Instant,
    expected: Option<&Chain>,
) -> Result<ProofParts, GatherError> {
    let clients: Vec<NodeClient<Channel>> = futures::future::join_all(urls.iter().map(|u| connect(u, deadline)))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(GatherError::Connect)?;

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
            .map(|r| r.map_err(GatherError::from))
            .collect::<Result<_, _>>()?;
        same_chain(urls, &st)?;
        if let Some(g) = expected {
            if st[0].chain_id != g.chain_id || st[0].genesis_hash != g.genesis_hash.as_slice() {
                return Err(GatherError::Unexpected {
                    url: urls[0].clone(),
                    chain_id: st[0].chain_id.clone(),
                    genesis_hash: st[0].genesis_hash.clone(),
                });
            }
        }
        let lowest = (0..st.len())
            .min_by_key(|&i| st[i].finalized_height)
            .expect("endpoints");
        if st[lowest].finalized_height >= min_height {
            break st;
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(GatherError::Timeout {
                min_height,
                url: urls[lowest].clone(),
                height: st[lowest].finalized_height,
            });
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
    Ok(ProofParts {
        chain_id: statuses[0].chain_id.clone(),
        genesis_hash,
        height: h,
        block_hash: first.hash,
        heads: collected.into_iter().map(|c| c.head).collect(),
        commit,
        telemetry,
        telemetry_epoch: Some(telemetry_epoch),
        telemetry_note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_endpoint_is_a_connect_error_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_millis(500);
        match rt.block_on(collect(std::slice::from_ref(&url), 3, deadline, None)) {
            Err(e @ GatherError::Connect(ConnectError::Unreachable { .. })) => {
                assert!(
                    e.to_string().starts_with(&format!("endpoint {url}: cannot connect")),
                    "{e}"
                )
            }
            other => panic!("expected an unreachable endpoint, got {other:?}"),
        }
    }

    #[test]
    fn restart_trouble_is_polled_again_and_answers_are_not() {
        use tonic::Code;
        for c in [
            Code::Unavailable,
            Code::Unknown,
            Code::Cancelled,
            Code::DeadlineExceeded,
        ] {
            assert!(transient(c), "{c:?}");
        }
        for c in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::PermissionDenied,
            Code::Internal,
            Code::Ok,
        ] {
            assert!(!transient(c), "{c:?}");
        }
    }

    /// A published port whose node is not up yet (Swarm's ingress, docker's
    /// proxy) accepts connections and drops them: the gate keeps polling
    /// until its deadline instead of failing on the first dropped call.
    #[test]
    fn a_port_that_accepts_and_drops_is_polled_until_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(conn);
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(1500);
        let res = rt.block_on(collect(std::slice::from_ref(&url), 3, deadline, None));
        assert!(res.is_err(), "nothing answered, yet the gate succeeded");
        let e = res.unwrap_err().to_string();
        assert!(e.contains(&url), "{e}");
        let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
        assert!(n >= 2, "polled {n} time(s) before giving up: {e}");
        assert!(
            start.elapsed() >= Duration::from_millis(1000),
            "gave up after {:?}: {e}",
            start.elapsed()
        );
    }
}
