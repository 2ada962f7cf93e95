//! Submitting a signed PoI attestation and awaiting its inclusion
//! (docs/PROTOCOL.md §10): the gRPC side of `bizra attest`. Building and
//! signing the attestation, and writing `attestation.json` from what
//! [`await_inclusion`] returns, are the caller's.

use crate::rpc::{self, RpcError};
use bizra_consensus::poi;
use bizra_proof::served::check_inclusion;
use bizra_proto::node_client::NodeClient;
use bizra_proto::{
    Envelope, GetAttestationRequest, GetAttestationResponse, GetCommitResponse, GetStatusRequest,
    GetValidatorsResponse, SubmitAttestationRequest,
};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::Code;

/// Interval between `GetAttestation` polls of [`await_inclusion`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Why an attestation was not submitted, or its inclusion not obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttestError {
    /// A call other than `SubmitAttestation` answered with an error status.
    Rpc(RpcError),
    /// `SubmitAttestation` answered with an error status: the node refused it.
    Refused {
        /// The endpoint.
        url: String,
        /// The status code.
        code: Code,
        /// The node's message.
        message: String,
    },
    /// The node accepted the attestation under another id than its own.
    WrongId {
        /// The endpoint.
        url: String,
        /// The id the node answered.
        answered: String,
        /// The attestation's id (hex BLAKE3 of its payload).
        id: String,
    },
    /// The attestation was not finalized within the timeout.
    Timeout {
        /// The attestation's id.
        id: String,
        /// How long was waited.
        timeout: Duration,
        /// The last answer: pending, or the last retried error.
        last: String,
    },
    /// The node's answer about the finalized attestation does not check
    /// (`bizra_proof::served::check_inclusion`).
    NotIncluded {
        /// The endpoint.
        url: String,
        /// The attestation's id.
        id: String,
        /// What does not check.
        problem: String,
    },
}

impl std::fmt::Display for AttestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttestError::Rpc(e) => std::fmt::Display::fmt(e, f),
            AttestError::Refused { url, code, message } => {
                write!(f, "attestation refused by {url} ({code:?}): {message}")
            }
            AttestError::WrongId { url, answered, id } => {
                write!(f, "{url} answered id {answered:?}, but the attestation's id is {id}")
            }
            AttestError::Timeout { id, timeout, last } => write!(
                f,
                "timed out after {}s waiting for attestation {id} to be finalized ({last})",
                timeout.as_secs()
            ),
            AttestError::NotIncluded { url, id, problem } => write!(f, "{url}: inclusion of {id}: {problem}"),
        }
    }
}

impl std::error::Error for AttestError {}

impl From<RpcError> for AttestError {
    fn from(e: RpcError) -> AttestError {
        AttestError::Rpc(e)
    }
}

/// A finalized attestation as the node served it, checked, with what
/// `attestation.json` records besides: the commit of its block and the
/// weights of the block's epoch.
#[derive(Clone, Debug)]
pub struct Inclusion {
    /// `GetAttestation`'s answer: the envelope, height, block hash, header,
    /// Merkle path and (if served) the commit certificate.
    pub attestation: GetAttestationResponse,
    /// `GetCommit` of the attestation's height.
    pub commit: GetCommitResponse,
    /// `GetValidators` of the block's epoch; `None` for epoch 0 when the node
    /// does not serve it (genesis gives those weights).
    pub validators: Option<GetValidatorsResponse>,
}

/// The chain id the node at `url` serves (`GetStatus`): the attestation must
/// be signed for it.
pub async fn chain_id(c: &mut NodeClient<Channel>, url: &str) -> Result<String, RpcError> {
    Ok(c.get_status(GetStatusRequest {})
        .await
        .map_err(|s| RpcError::new(url, "GetStatus", &s))?
        .into_inner()
        .chain_id)
}

/// Submits `envelope` (`SubmitAttestation`) and returns its id, the hex
/// BLAKE3 of the payload; an answer naming another id is an error.
pub async fn submit(c: &mut NodeClient<Channel>, url: &str, envelope: &Envelope) -> Result<String, AttestError> {
    let id = hex::encode(poi::attestation_id(&envelope.payload));
    let reply = c
        .submit_attestation(SubmitAttestationRequest {
            envelope: Some(envelope.clone()),
        })
        .await
        .map_err(|s| AttestError::Refused {
            url: url.to_string(),
            code: s.code(),
            message: s.message().to_string(),
        })?
        .into_inner();
    if reply.id != id {
        return Err(AttestError::WrongId {
            url: url.to_string(),
            answered: reply.id,
            id,
        });
    }
    Ok(id)
}

/// Waits until the attestation `envelope` is finalized or `timeout` passes,
/// checks what the node answers (the same envelope, a header hashing to the
/// block hash, the Merkle path to the payload root, the commit for that
/// block), then asks for the block's commit and its epoch's weights.
pub async fn await_inclusion(
    c: &mut NodeClient<Channel>,
    url: &str,
    envelope: &Envelope,
    timeout: Duration,
) -> Result<Inclusion, AttestError> {
    let id = hex::encode(poi::attestation_id(&envelope.payload));
    let attestation = wait_finalized(c, url, &id, timeout).await?;
    check_inclusion(envelope, &attestation).map_err(|problem| AttestError::NotIncluded {
        url: url.to_string(),
        id: id.clone(),
        problem,
    })?;
    let commit = rpc::commit(c, url, attestation.height).await?;
    let epoch = attestation.header.as_ref().map(|h| h.epoch).unwrap_or_default();
    let validators = rpc::epoch_validators(c, url, epoch).await?;
    Ok(Inclusion {
        attestation,
        commit,
        validators,
    })
}

/// Polls `GetAttestation(id)` until it is finalized or `timeout` passes.
/// NOT_FOUND (still pending) and transient errors (UNAVAILABLE,
/// DEADLINE_EXCEEDED) are retried; any other error fails at once.
async fn wait_finalized(
    client: &mut NodeClient<Channel>,
    url: &str,
    id_hex: &str,
    timeout: Duration,
) -> Result<GetAttestationResponse, AttestError> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("not yet finalized");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let call = client.get_attestation(GetAttestationRequest { id: id_hex.to_string() });
        match tokio::time::timeout(left.max(Duration::from_millis(1)), call).await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                if r.finalized {
                    return Ok(r);
                }
                last = "pending in the pool".into();
            }
            Ok(Err(s)) if matches!(s.code(), Code::NotFound | Code::Unavailable | Code::DeadlineExceeded) => {
                last = format!("{:?}: {}", s.code(), s.message());
            }
            Ok(Err(s)) => return Err(RpcError::new(url, "GetAttestation", &s).into()),
            Err(_) => {}
        }
        if Instant::now() + POLL_INTERVAL > deadline {
            return Err(AttestError::Timeout {
                id: id_hex.to_string(),
                timeout,
                last,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
