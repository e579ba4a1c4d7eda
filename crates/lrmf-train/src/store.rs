//! The run folder's file IO in one place, at one durability and one permission level.
//!
//! A run folder holds secrets while a run is in progress (the checkpoint carries the noise key
//! and the sampler seed) and numbers computed from the private data without noise
//! (`metrics.jsonl`), so everything here is private to the user who runs the training:
//! folders are created `0700`, files `0600` (on Unix; elsewhere the platform's defaults apply).
//! Every whole-file write is atomic and durable ([`lrmf_io`]: a private temporary file in the
//! same folder, `fsync`, rename over the target, `fsync` of the folder).

pub use lrmf_io::{DIR_MODE, FILE_MODE, create_private_dir, open_private, remove};

use std::path::Path;

/// Writes `bytes` to `path` atomically, durably and privately
/// ([`lrmf_io::atomic_write_private`]).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    Ok(lrmf_io::atomic_write_private(path, bytes)?)
}
