//! The error type of the linear-algebra crate.

use thiserror::Error;

/// What can go wrong in structured linear algebra: all are bad inputs, reported with the
/// argument name and the allowed range.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LinalgError {
    /// An argument is outside its allowed range.
    #[error("invalid {name}: {message}")]
    Invalid {
        /// The argument's name.
        name: &'static str,
        /// What is allowed.
        message: String,
    },
    /// Two inputs disagree in size.
    #[error("dimension mismatch: {what} has {got}, expected {expected}")]
    Dimension {
        /// Which input.
        what: &'static str,
        /// Its size.
        got: usize,
        /// The size required.
        expected: usize,
    },
}

impl LinalgError {
    pub(crate) fn invalid(name: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            message: message.into(),
        }
    }
}
