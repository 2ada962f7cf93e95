//! [`VerifyError`]: why an artifact did not verify, split the way `bizra verify`
//! reports it (exit 1 for a failed check, exit 2 for input it cannot read).

/// Why an artifact did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The input is readable but does not verify: `field` names the first bad
    /// field (e.g. `commit.signatures[2].sig`), `reason` says what is wrong.
    /// `bizra verify` exits 1.
    #[error("{field}: {reason}")]
    Failed {
        /// The failing field, as a path into the document.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The input cannot be checked at all: not JSON of the schema, an unknown
    /// `version`, or a genesis file that does not load. `bizra verify` exits 2.
    #[error("{0}")]
    Malformed(String),
}

impl VerifyError {
    /// A failed check of `field`.
    pub fn failed(field: &str, reason: impl std::fmt::Display) -> Self {
        VerifyError::Failed {
            field: field.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Input that cannot be checked.
    pub fn malformed(msg: impl std::fmt::Display) -> Self {
        VerifyError::Malformed(msg.to_string())
    }

    /// The exit code `bizra verify` gives this error: 1 failed, 2 malformed.
    pub fn exit_code(&self) -> u8 {
        match self {
            VerifyError::Failed { .. } => 1,
            VerifyError::Malformed(_) => 2,
        }
    }
}
