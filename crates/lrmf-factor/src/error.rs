//! The error type of the factorizers.

use thiserror::Error;

/// Why a factorization or its evaluation failed; every variant names the flag to fix.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FactorError {
    /// A parameter is outside its allowed range.
    #[error("invalid --{flag}: {message}")]
    Invalid {
        /// The CLI flag.
        flag: &'static str,
        /// What is allowed.
        message: String,
    },
    /// A structured-algebra step failed.
    #[error(transparent)]
    Linalg(#[from] lrmf_linalg::LinalgError),
    /// The participation is invalid.
    #[error(transparent)]
    Sensitivity(#[from] lrmf_privacy::SensitivityError),
}

pub(crate) fn invalid(flag: &'static str, message: impl Into<String>) -> FactorError {
    FactorError::Invalid {
        flag,
        message: message.into(),
    }
}
