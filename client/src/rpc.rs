//! A call a node answered with an error status, and the calls
//! [`attest`](crate::attest) and [`evidence`](crate::evidence) share: the
//! commit of a height and the weights of an epoch.

use bizra_proto::node_client::NodeClient;
use bizra_proto::{GetCommitRequest, GetCommitResponse, GetValidatorsRequest, GetValidatorsResponse};
use tonic::transport::Channel;

/// A call the node answered with an error status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    /// The endpoint called.
    pub url: String,
    /// The method called, as named in messages (e.g. `GetCommit` or `GetBlock(3)`).
    pub method: String,
    /// The status code of the answer.
    pub code: tonic::Code,
    /// The status message of the answer.
    pub message: String,
}

impl RpcError {
    /// The error of `method` on `url` answered with `s`.
    pub fn new(url: &str, method: impl Into<String>, s: &tonic::Status) -> RpcError {
        RpcError {
            url: url.to_string(),
            method: method.into(),
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

impl std::fmt::Display for RpcError {
    /// `METHOD on URL failed (CODE): MESSAGE`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} failed ({:?}): {}",
            self.method, self.url, self.code, self.message
        )
    }
}

impl std::error::Error for RpcError {}

/// `GetCommit(height)`: the commit and its tally, as served.
pub(crate) async fn commit(c: &mut NodeClient<Channel>, url: &str, height: u64) -> Result<GetCommitResponse, RpcError> {
    Ok(c.get_commit(GetCommitRequest { height })
        .await
        .map_err(|s| RpcError::new(url, "GetCommit", &s))?
        .into_inner())
}

/// `GetValidators(epoch)`. `None` when the node does not answer for epoch 0:
/// its weights follow from genesis alone; those of a later epoch must be
/// recorded, so failing to get them is an error.
pub(crate) async fn epoch_validators(
    c: &mut NodeClient<Channel>,
    url: &str,
    epoch: u64,
) -> Result<Option<GetValidatorsResponse>, RpcError> {
    match c.get_validators(GetValidatorsRequest { epoch: Some(epoch) }).await {
        Ok(r) => Ok(Some(r.into_inner())),
        Err(_) if epoch == 0 => Ok(None),
        Err(s) => Err(RpcError::new(url, "GetValidators", &s)),
    }
}
