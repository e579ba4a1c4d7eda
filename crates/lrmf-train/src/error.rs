//! The error type of the trainer.

use thiserror::Error;

/// Everything that can stop a training run, each with enough context to act on.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A configuration value is invalid (which key, what is allowed).
    #[error("invalid config: {key}: {message}")]
    Config {
        /// The config key (e.g. `optimizer.band`).
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a file failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A shape or length does not match.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Training diverged (non-finite loss or parameters).
    #[error("training diverged: {0}")]
    Diverged(String),
    /// Any other failure, with its message.
    #[error("{0}")]
    Other(String),
}

/// Result alias of the trainer.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
