//! A call a node answered with an error status.

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
