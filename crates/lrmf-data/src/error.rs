//! The one error type of the crate, so callers can match on what went wrong with which file.

use std::path::PathBuf;

/// Everything that can go wrong while preparing or loading data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An operating-system I/O error on a named path.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The archive's sha256 is not the expected one (corrupt, truncated or a different file).
    #[error(
        "checksum mismatch for {path}: expected sha256 {expected}, found {actual}; \
         the archive is corrupt, truncated or not the expected file"
    )]
    ChecksumMismatch {
        /// The archive that was hashed.
        path: PathBuf,
        /// The sha256 the caller expected (lower-case hex).
        expected: String,
        /// The sha256 actually computed (lower-case hex).
        actual: String,
    },
    /// A data file exists but its content or layout is not what the format requires.
    #[error("malformed data in {path}: {reason}")]
    Malformed {
        /// The offending file, folder or archive member.
        path: PathBuf,
        /// What is wrong, and what was expected.
        reason: String,
    },
    /// A JPEG in the archive could not be decoded.
    #[error("cannot decode JPEG {path}: {source}")]
    Decode {
        /// The archive member being decoded.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// An argument is outside its allowed range.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// The allowed range and the value received.
        reason: String,
    },
    /// Prepared data is not where it was looked for; the message says how to create it.
    #[error("{message}")]
    Missing {
        /// The full user-facing message (see [`crate::setup::missing_data_message`]).
        message: String,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed-data error on `path` with a reason.
    pub(crate) fn malformed(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Malformed {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
