//! Atomic, self-checking checkpoints: everything needed to continue a run bit-for-bit
//! (parameters, momentum, step, seeds, noise generator state, metrics offset, config hash).
//!
//! Privacy note: a checkpoint holds the run's secret seeds (bin assignment, noise) and the
//! non-released intermediate state; treat it like the training data, never publish it.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Result, TrainError};

/// File name of the checkpoint inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.bin";
/// The first bytes of every checkpoint (format version 1).
const MAGIC: &[u8; 8] = b"LRMFCKP1";

pub(crate) use lrmf_io::{from_hex, to_hex};

/// The seeds of a run besides the noise key (which lives in the noise generator's state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSeeds {
    /// Seed of the example → bin assignment.
    pub sampler: [u8; 32],
    /// Seed of the parameter initialisation.
    pub init: [u8; 32],
}

/// The small, human-readable part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointHeader {
    /// SHA-256 (hex) of the run's resolved config; a resume with another config is refused.
    pub config_hash: String,
    /// Number of completed steps (the next step to run).
    pub step: usize,
    /// Byte length of `metrics.jsonl` covering exactly the completed steps.
    pub metrics_offset: u64,
    /// Sampler seed (hex).
    pub sampler_seed: String,
    /// Initialisation seed (hex).
    pub init_seed: String,
    /// Byte length of the noise generator state stored after the momentum (absent in
    /// non-private mode).
    pub noise_state_len: Option<u64>,
    /// Number of parameters d.
    pub num_params: usize,
    /// Wall-clock seconds spent in training before this checkpoint.
    pub elapsed_s: f64,
}

impl CheckpointHeader {
    /// The seeds, decoded. Errors when a seed is not 64 hex digits.
    pub fn seeds(&self) -> Result<RunSeeds> {
        let dec = |name: &str, s: &str| -> Result<[u8; 32]> {
            from_hex(s)
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(|| {
                    TrainError::Other(format!("checkpoint: {name} is not 64 hex digits"))
                })
        };
        Ok(RunSeeds {
            sampler: dec("sampler_seed", &self.sampler_seed)?,
            init: dec("init_seed", &self.init_seed)?,
        })
    }
}

/// A full checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Header (step, seeds, offsets, hashes).
    pub header: CheckpointHeader,
    /// Model parameters θ (d values).
    pub params: Vec<f32>,
    /// Momentum m (d values, f64).
    pub momentum: Vec<f64>,
    /// The noise generator's state (opaque bytes; holds the noise key: secret).
    pub noise_state: Option<Vec<u8>>,
}

impl Checkpoint {
    /// Serialises: magic, u64 LE header length, header JSON, params (f32 LE), momentum (f64 LE),
    /// noise state bytes, then the SHA-256 of everything before it. O(d + state).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let d = self.header.num_params;
        if self.params.len() != d || self.momentum.len() != d {
            return Err(TrainError::Shape(format!(
                "checkpoint of d = {d} with {} parameters and {} momentum entries",
                self.params.len(),
                self.momentum.len()
            )));
        }
        if self.header.noise_state_len != self.noise_state.as_ref().map(|v| v.len() as u64) {
            return Err(TrainError::Shape(
                "checkpoint header's noise_state_len does not match the noise state".into(),
            ));
        }
        let header = serde_json::to_vec(&self.header)
            .map_err(|e| TrainError::Other(format!("checkpoint header: {e}")))?;
        let mut out = Vec::with_capacity(8 + 8 + header.len() + 12 * d + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for p in &self.params {
            out.extend_from_slice(&p.to_le_bytes());
        }
        for m in &self.momentum {
            out.extend_from_slice(&m.to_le_bytes());
        }
        if let Some(ns) = &self.noise_state {
            out.extend_from_slice(ns);
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        Ok(out)
    }

    /// Parses and verifies [`Checkpoint::to_bytes`] output; `origin` names the file in errors.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Self> {
        let bad = |why: &str| {
            TrainError::Other(format!(
                "checkpoint {} is unusable: {why}",
                origin.display()
            ))
        };
        if bytes.len() < 8 + 8 + 32 || &bytes[..8] != MAGIC {
            return Err(bad("not an lrmf checkpoint (bad magic or too short)"));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err(bad("checksum mismatch (truncated or corrupted)"));
        }
        let hlen = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes")) as usize;
        let rest = &body[16..];
        if hlen > rest.len() {
            return Err(bad("header length past the end"));
        }
        let header: CheckpointHeader =
            serde_json::from_slice(&rest[..hlen]).map_err(|e| bad(&format!("header: {e}")))?;
        let d = header.num_params;
        let data = &rest[hlen..];
        let ns_len = header.noise_state_len.unwrap_or(0) as usize;
        if Some(data.len()) != (12 * d).checked_add(ns_len) {
            return Err(bad(&format!(
                "{} payload bytes for d = {d} and a noise state of {ns_len} bytes",
                data.len(),
            )));
        }
        let (pb, rest) = data.split_at(4 * d);
        let (mb, nb) = rest.split_at(8 * d);
        let noise_state = header.noise_state_len.map(|_| nb.to_vec());
        let params = pb
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let momentum = mb
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Ok(Self {
            header,
            params,
            momentum,
            noise_state,
        })
    }

    /// Writes `dir/checkpoint.bin` atomically and privately (`0600`, see [`crate::store`]):
    /// a crash at any point leaves either the old or the new checkpoint, never a torn one.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(CHECKPOINT_FILE);
        crate::store::atomic_write(&path, &self.to_bytes()?)?;
        Ok(path)
    }

    /// Reads `dir/checkpoint.bin` (`Ok(None)` when there is none).
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(CHECKPOINT_FILE);
        match fs::read(&path) {
            Ok(bytes) => Self::from_bytes(&bytes, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> Checkpoint {
        Checkpoint {
            header: CheckpointHeader {
                config_hash: "ab".repeat(32),
                step: 17,
                metrics_offset: 1234,
                sampler_seed: to_hex(&[1; 32]),
                init_seed: to_hex(&[3; 32]),
                noise_state_len: Some(5),
                num_params: 3,
                elapsed_s: 1.5,
            },
            params: vec![1.0, -2.5, f32::MIN_POSITIVE],
            momentum: vec![0.1, 1e-300, -7.0],
            noise_state: Some(b"state".to_vec()),
        }
    }

    #[test]
    fn round_trip_and_atomic_save() {
        let ck = check();
        let back = Checkpoint::from_bytes(&ck.to_bytes().unwrap(), Path::new("x")).unwrap();
        assert_eq!(back, ck);
        assert_eq!(back.header.seeds().unwrap().init, [3; 32]);
        let mut plain = ck.clone();
        plain.header.noise_state_len = None;
        plain.noise_state = None;
        let back = Checkpoint::from_bytes(&plain.to_bytes().unwrap(), Path::new("x")).unwrap();
        assert_eq!(back, plain);
        let dir = tempfile::tempdir().unwrap();
        assert!(Checkpoint::load(dir.path()).unwrap().is_none());
        ck.save(dir.path()).unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap().unwrap(), ck);
        // Only the checkpoint itself: the atomic write leaves no temporary behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn corruption_and_truncation_are_errors() {
        let bytes = check().to_bytes().unwrap();
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert!(Checkpoint::from_bytes(&flipped, Path::new("x")).is_err());
        assert!(Checkpoint::from_bytes(&bytes[..bytes.len() - 1], Path::new("x")).is_err());
        assert!(Checkpoint::from_bytes(b"short", Path::new("x")).is_err());
        let mut wrong_d = check();
        wrong_d.header.num_params = 4;
        assert!(wrong_d.to_bytes().is_err());
    }

    #[test]
    fn hex_round_trip() {
        let v: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&v)).unwrap(), v);
        assert!(from_hex("abc").is_none());
        assert!(from_hex("zz").is_none());
    }
}
