//! The generator's checkpoint: [`NoiseState`] and the fingerprint a restore must match.

use super::Rounding;
use super::{CorrelatedNoise, Mode};
use crate::NoiseError;
use crate::gaussian::Key;
use serde::{Deserialize, Serialize};

/// Format version of [`NoiseState`].
pub const STATE_VERSION: u32 = 1;

/// The checkpoint of a [`CorrelatedNoise`] (serde-serialisable).
///
/// It holds the **noise key**: whoever reads it can remove the noise of the whole run. Store it
/// with the same care as the private data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// Streaming form: `identity`, `fir`, `recursion`, `blt` or `dense`.
    pub form: String,
    /// n, the number of steps of `C`.
    pub n: usize,
    /// The band of the form (taps of the FIR filter, coefficients of the recursion, n for dense).
    pub band: usize,
    /// FNV-1a hash of the form's coefficients (f64 bits): tells strategies with equal shapes apart.
    pub coeffs_hash: u64,
    /// d.
    pub dim: usize,
    /// σ.
    pub std: f64,
    /// The resolved mode ([`Mode::Streaming`] or [`Mode::Regenerate`]).
    pub mode: Mode,
    /// The rounding of the released noise.
    pub rounding: Rounding,
    /// The ChaCha20 key.
    pub key: Key,
    /// Whether the key came from the operating system ([`Seed::FromOs`](crate::Seed::FromOs)), i.e. whether the run
    /// may be a real private release.
    pub private_release_safe: bool,
    /// The next step to generate.
    pub step: usize,
    /// The ring buffer (streaming mode; empty otherwise), chunk-major: for each chunk of
    /// [`CHUNK`](super::CHUNK) coordinates, its `slots` rows one after the other.
    pub history: Vec<f32>,
}

impl CorrelatedNoise {
    pub(super) fn fingerprint_check(&self, state: &NoiseState) -> Result<(), NoiseError> {
        fn mismatch(
            field: &'static str,
            saved: impl ToString,
            current: impl ToString,
        ) -> NoiseError {
            NoiseError::StateMismatch {
                field,
                saved: saved.to_string(),
                current: current.to_string(),
            }
        }
        if state.version != STATE_VERSION {
            return Err(mismatch("version", state.version, STATE_VERSION));
        }
        if state.form != self.form.name() {
            return Err(mismatch("strategy form", &state.form, self.form.name()));
        }
        if state.n != self.n {
            return Err(mismatch("n (steps of C)", state.n, self.n));
        }
        if state.band != self.form.band(self.n) {
            return Err(mismatch("band", state.band, self.form.band(self.n)));
        }
        if state.coeffs_hash != self.form.coeffs_hash() {
            return Err(mismatch(
                "strategy coefficients",
                format!("hash {:016x}", state.coeffs_hash),
                format!("hash {:016x}", self.form.coeffs_hash()),
            ));
        }
        if state.dim != self.dim {
            return Err(mismatch("dim", state.dim, self.dim));
        }
        if state.std.to_bits() != self.std.to_bits() {
            return Err(mismatch("std", state.std, self.std));
        }
        if state.mode != self.mode {
            return Err(mismatch(
                "mode",
                format!("{:?}", state.mode),
                format!("{:?}", self.mode),
            ));
        }
        if state.rounding != self.rounding {
            return Err(mismatch(
                "rounding",
                format!("{:?}", state.rounding),
                format!("{:?}", self.rounding),
            ));
        }
        if state.key != self.key {
            return Err(mismatch(
                "seed (noise key)",
                "<a different key>",
                "<this generator's key>",
            ));
        }
        if state.step > self.n {
            return Err(NoiseError::CorruptState(format!(
                "step {} is past n = {}",
                state.step, self.n
            )));
        }
        if state.history.len() != self.history.len() {
            return Err(NoiseError::CorruptState(format!(
                "history has {} values, expected {}",
                state.history.len(),
                self.history.len()
            )));
        }
        Ok(())
    }
}
