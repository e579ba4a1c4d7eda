//! The error type of the noise crate: every bad argument is named together with its allowed range.

use thiserror::Error;

/// What can go wrong when building, running or restoring a noise generator.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NoiseError {
    /// An argument is outside its allowed range (`name` is the argument, `message` the range).
    #[error("invalid {name}: {message}")]
    Invalid {
        /// The argument's name (e.g. `dim`, `std`, `c`, `out`).
        name: &'static str,
        /// What is allowed, and what was given.
        message: String,
    },
    /// The generator has already produced all `n` steps of the strategy.
    #[error("noise for step {step} requested, but the strategy C has only n = {n} steps (0..{n})")]
    PastEnd {
        /// The step that was requested (0-based).
        step: usize,
        /// The number of steps of `C`.
        n: usize,
    },
    /// A saved state does not belong to this generator (different strategy, dimension, seed, …).
    #[error("cannot restore noise state: {field} differs (saved {saved}, generator {current})")]
    StateMismatch {
        /// Which field differs.
        field: &'static str,
        /// The saved value.
        saved: String,
        /// The generator's value.
        current: String,
    },
    /// The saved state is internally inconsistent (corrupted or hand-edited).
    #[error("corrupt noise state: {0}")]
    CorruptState(String),
    /// The operating system could not provide a random key.
    #[error("the operating system random source failed: {0}")]
    Entropy(String),
    /// The strategy matrix could not be inverted or expanded.
    #[error("linear algebra on the strategy C failed: {0}")]
    Linalg(#[from] lrmf_linalg::LinalgError),
    /// Writing output failed.
    #[error("i/o error: {0}")]
    Io(String),
}

impl NoiseError {
    pub(crate) fn invalid(name: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            message: message.into(),
        }
    }
}
