//! Fetching committed equivocation evidence (issue 15): the gRPC side of
//! `bizra evidence`. Writing `evidence.json` from what [`fetch`] returns is
//! the caller's.

use crate::rpc::{self, RpcError};
use bizra_consensus::evidence;
use bizra_proof::served::{check_served_inclusion, Served};
use bizra_proto::node_client::NodeClient;
use bizra_proto::{
    get_evidence_request, CommittedEvidence, GetCommitResponse, GetEvidenceRequest, GetValidatorsResponse,
};
use tonic::transport::Channel;

/// What `GetEvidence` is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// A validator id: its committed evidence, oldest first.
    Validator(String),
    /// A block height: the evidence that block carries, in block order.
    Height(u64),
}

impl std::fmt::Display for Selector {
    /// `validator ID` or `the block at height H`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Validator(v) => write!(f, "validator {v}"),
            Selector::Height(h) => write!(f, "the block at height {h}"),
        }
    }
}

/// Why no evidence was fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// A call answered with an error status.
    Rpc(RpcError),
    /// The node has no committed evidence for the selector.
    NoEvidence {
        /// The endpoint.
        url: String,
        /// What was asked for.
        selector: Selector,
    },
    /// The node returned fewer than `index + 1` items.
    NoIndex {
        /// The endpoint.
        url: String,
        /// What was asked for.
        selector: Selector,
        /// The index asked for, counting from 0.
        index: usize,
        /// How many items the node returned (at least 1).
        count: usize,
    },
    /// The chosen item does not check (see [`fetch`]).
    Invalid {
        /// The endpoint.
        url: String,
        /// The index of the item.
        index: usize,
        /// What does not check.
        problem: String,
    },
    /// `GetCommit` answered a certificate for another block than the evidence's.
    OtherCommit {
        /// The endpoint.
        url: String,
        /// The evidence's height.
        height: u64,
    },
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Rpc(e) => std::fmt::Display::fmt(e, f),
            FetchError::NoEvidence { url, selector } => write!(f, "no committed evidence for {selector} on {url}"),
            FetchError::NoIndex {
                url,
                selector,
                index,
                count,
            } => write!(
                f,
                "index {index}: {url} returned {count} piece(s) of committed evidence for {selector} (indices 0 to {})",
                count.saturating_sub(1)
            ),
            FetchError::Invalid { url, index, problem } => write!(f, "{url}: evidence {index}: {problem}"),
            FetchError::OtherCommit { url, height } => {
                write!(f, "{url}: GetCommit({height}) answered a commit for another block")
            }
        }
    }
}

impl std::error::Error for FetchError {}

impl From<RpcError> for FetchError {
    fn from(e: RpcError) -> FetchError {
        FetchError::Rpc(e)
    }
}

/// One piece of committed evidence as the node served it, checked, with what
/// `evidence.json` records besides: the commit of its block and the weights of
/// the block's epoch.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The chosen item of `GetEvidence`'s answer.
    pub evidence: CommittedEvidence,
    /// `GetCommit` of the evidence's height.
    pub commit: GetCommitResponse,
    /// `GetValidators` of the block's epoch; `None` for epoch 0 when the node
    /// does not serve it (genesis gives those weights).
    pub validators: Option<GetValidatorsResponse>,
}

/// Asks `GetEvidence` for `selector` and takes item `index` of the answer,
/// checks it before anything is written (the evidence and its id, the
/// offender, a header that hashes to the block hash at the height, a Merkle
/// path from the evidence's leaf to the header's `evidence_root`, a commit
/// certificate for that block if one is served), then asks for the commit of
/// its height (which must be for its block) and the weights of its epoch.
/// Signatures and quorum need genesis: `bizra_proof::verify` checks them.
pub async fn fetch(
    c: &mut NodeClient<Channel>,
    url: &str,
    selector: &Selector,
    index: usize,
) -> Result<Fetched, FetchError> {
    let request = GetEvidenceRequest {
        selector: Some(match selector {
            Selector::Validator(v) => get_evidence_request::Selector::Validator(v.clone()),
            Selector::Height(h) => get_evidence_request::Selector::Height(*h),
        }),
    };
    let mut items = c
        .get_evidence(request)
        .await
        .map_err(|s| RpcError::new(url, "GetEvidence", &s))?
        .into_inner()
        .evidence;
    if items.is_empty() {
        return Err(FetchError::NoEvidence {
            url: url.to_string(),
            selector: selector.clone(),
        });
    }
    if index >= items.len() {
        return Err(FetchError::NoIndex {
            url: url.to_string(),
            selector: selector.clone(),
            index,
            count: items.len(),
        });
    }
    let ce = items.swap_remove(index);
    check_committed(&ce, selector).map_err(|problem| FetchError::Invalid {
        url: url.to_string(),
        index,
        problem,
    })?;
    let commit = rpc::commit(c, url, ce.height).await?;
    if let Some(cert) = &commit.commit {
        if cert.height != ce.height || cert.block_hash != ce.block_hash {
            return Err(FetchError::OtherCommit {
                url: url.to_string(),
                height: ce.height,
            });
        }
    }
    let epoch = ce.header.as_ref().map(|h| h.epoch).unwrap_or_default();
    let validators = rpc::epoch_validators(c, url, epoch).await?;
    Ok(Fetched {
        evidence: ce,
        commit,
        validators,
    })
}

/// Checks what `GetEvidence` answered before anything is written: evidence of a
/// known kind whose id and offender are as stated (and as asked for), a header
/// that hashes to `block_hash` at `height`, a Merkle path from the evidence's
/// leaf to the header's `evidence_root`, and (if present) a commit certificate
/// for that block. Signatures and quorum need genesis: `bizra_proof::verify`
/// checks them.
fn check_committed(ce: &CommittedEvidence, selector: &Selector) -> Result<(), String> {
    let ev = ce.evidence.as_ref().ok_or("the answer has no evidence")?;
    let (a, b) = evidence::votes(ev).ok_or("not duplicate-vote evidence with two votes")?;
    if a.validator != b.validator || a.validator != ce.validator {
        return Err(format!(
            "the votes are by {} and {}, the answer names {}",
            a.validator, b.validator, ce.validator
        ));
    }
    let id = hex::encode(evidence::evidence_id(ev));
    if ce.id != id {
        return Err(format!("id {:?}, but the evidence hashes to {id}", ce.id));
    }
    match selector {
        Selector::Validator(v) if *v != ce.validator => {
            return Err(format!(
                "asked for validator {v}, got evidence against {}",
                ce.validator
            ))
        }
        Selector::Height(h) if *h != ce.height => {
            return Err(format!("asked for height {h}, got evidence in block {}", ce.height))
        }
        _ => {}
    }
    check_served_inclusion(
        Served {
            header: ce.header.as_ref(),
            block_hash: &ce.block_hash,
            height: ce.height,
            proof: ce.proof.as_ref(),
            commit: ce.commit.as_ref(),
        },
        "evidence_root",
        |h| &h.evidence_root,
        &evidence::leaf(ev),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bizra_proof::fixture::Fixture;

    #[test]
    fn a_lying_answer_is_refused() {
        let mut f = Fixture::new(4, 2, 7);
        let chain = f.evidence_chain(3);
        let me = Selector::Validator(f.signers[3].id().to_string());
        check_committed(&chain.committed, &me).unwrap();
        check_committed(&chain.committed, &Selector::Height(2)).unwrap();
        let mut ce = chain.committed.clone();
        ce.id = "00".repeat(32);
        assert!(check_committed(&ce, &me).unwrap_err().contains("id"));
        assert!(check_committed(&chain.committed, &Selector::Height(3))
            .unwrap_err()
            .contains("asked for height 3"));
        assert!(
            check_committed(&chain.committed, &Selector::Validator(f.signers[1].id().to_string()))
                .unwrap_err()
                .contains("asked for validator")
        );
        let mut ce = chain.committed.clone();
        ce.proof.as_mut().unwrap().leaf_index = 0;
        assert!(check_committed(&ce, &me).unwrap_err().contains("Merkle proof"));
        let mut ce = chain.committed.clone();
        ce.header.as_mut().unwrap().time_ms += 1;
        assert!(check_committed(&ce, &me).unwrap_err().contains("block_hash"));
        let mut ce = chain.committed.clone();
        ce.validator = f.signers[0].id().to_string();
        assert!(check_committed(&ce, &Selector::Height(2))
            .unwrap_err()
            .contains("the answer names"));
    }

    #[test]
    fn selectors_and_errors_read_as_before() {
        let s = Selector::Height(4);
        assert_eq!(s.to_string(), "the block at height 4");
        assert_eq!(Selector::Validator("ab".into()).to_string(), "validator ab");
        let e = FetchError::NoIndex {
            url: "http://n:1".into(),
            selector: s,
            index: 2,
            count: 1,
        };
        assert_eq!(
            e.to_string(),
            "index 2: http://n:1 returned 1 piece(s) of committed evidence for the block at height 4 (indices 0 to 0)"
        );
    }
}
