//! [`CorrelatedNoise`]: step after step, the correlated noise `σ·(C⁻¹Z)_t` of a strategy `C`,
//! streamed into a caller's `&mut [f32]`, with checkpointable state.
//!
//! Row `t` of `C⁻¹Z` is `y_t = Σ_{j≤t} (C⁻¹)[t, j]·z_j` with `z_j` the base noise row `j`
//! ([`crate::base_noise`]). The generator picks the cheapest exact form for the shape of `C`:
//!
//! | `C` (method) | streaming form | memory of the state |
//! |---|---|---|
//! | `Identity` (identity) | `y_t = z_t` | O(1) |
//! | `InverseToeplitz`, band p (bisr, lr-bisr) | FIR filter `y_t = Σ_{k<p} h_k z_{t−k}`, `h` = band of `C⁻¹`, over a ring of the last p rows of `Z` | p·d f32 |
//! | `Toeplitz`, p < n coefficients (bsr, lr-bsr) | recursion `y_t = (z_t − Σ_{j=1}^{p−1} c_j y_{t−j}) / c_0` over a ring of the last p − 1 outputs | (p−1)·d f32 |
//! | `Banded`, p bands (bandmf, lr-bandmf) | recursion `y_t = (z_t − Σ_{j=1}^{p−1} C[t, t−j] y_{t−j}) / C[t, t]` over a ring of the last p − 1 outputs | (p−1)·d f32 |
//! | `Toeplitz`, n coefficients (sqrt, lr-sqrt) | FIR filter with `h = c⁻¹` (the inverse series, n taps): full history of `Z` | n·d f32 |
//! | `Blt`, d buffers (blt, lr-blt) | recursion `y_t = z_t − Σ_i ω_i s_{i,t}`, `s_{i,t+1} = θ_i s_{i,t} + y_t` over d buffers | d·d f32 |
//! | `Dense` (dense-sqrt, dense-opt) | `y_t = Σ_{j≤t} (C⁻¹)[t, j] z_j`: full history of `Z` | n·d f32 (+ n² f64 for `C⁻¹`) |
//!
//! **Regeneration** ([`Mode::Regenerate`]) keeps no history at all: `z_j` is re-derived on demand
//! from its fixed position in the ChaCha20 key stream, so every strategy runs in O(d) memory at the
//! cost of regenerating every row that step `t` needs (p rows for BISR, t + 1 rows for the others:
//! the inverse of a banded `C` is dense). It is also what makes data-parallel training possible:
//! [`CorrelatedNoise::regenerate`] gives the noise of any (step, coordinate slice) to any worker.
//!
//! # Arithmetic: f32 state, f64 accumulation
//!
//! `z` and the ring buffers are stored in f32 (they are read every step: f32 halves the memory
//! traffic, and the accuracy requirement is f32 rounding of the released noise). Every output is
//! accumulated in f64 over the taps (in groups of four taps per pass over the accumulator, one
//! fixed order shared by every path), then scaled by `σ` and rounded once to f32. The FIR forms are
//! therefore exact up to that final rounding (the `z_j` *are* f32 numbers), and streaming and
//! regenerated FIR noise are bit-identical. The BSR recursion feeds back its own f32-rounded
//! outputs, and the BLT recursion its f32 buffers; for the stable filters the factorizers produce
//! this stays within a few f32 ulps of the exact `C⁻¹Z` (tested against the dense reference).
//!
//! # Parallelism and determinism
//!
//! Coordinates are cut into fixed chunks of [`CHUNK`] entries (not by thread count); each chunk is
//! one rayon task with its own ChaCha20 instance seeked to the chunk's fixed key-stream position.
//! Each output coordinate's arithmetic does not depend on the chunking at all, so the noise is
//! bit-identical for any thread count.
//!
//! # Where things are
//!
//! This file holds the generator's type, its construction and the [`NoiseGenerator`] impl;
//! `form` chooses the exact form from the shape of `C`, `kernel` has the f64 accumulation every
//! path shares, `stream` the streaming step of each form, `regen` regeneration from the key,
//! `state` the checkpoint, `rounding` the discretisation of the released noise.

mod form;
mod kernel;
mod regen;
mod rounding;
mod state;
mod stream;
#[cfg(test)]
mod tests;

use crate::NoiseError;
use crate::gaussian::{Key, Seed};
use form::{Form, form_of};
use lrmf_linalg::LowerTriangular;
use serde::{Deserialize, Serialize};

pub use form::state_rows;
pub use rounding::Rounding;
pub use state::{NoiseState, STATE_VERSION};

/// Coordinates per parallel task. Fixed, so results never depend on the number of threads.
pub const CHUNK: usize = 4096;

/// [`Mode::Auto`] streams when the history fits in this many bytes (1 GiB), else regenerates.
pub const AUTO_MEMORY_BUDGET: usize = 1 << 30;

/// How a generator gets the rows `z_j` an output needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// [`Mode::Streaming`] when its history fits in [`AUTO_MEMORY_BUDGET`], else
    /// [`Mode::Regenerate`].
    Auto,
    /// Keep the history the streaming form needs (table in the module docs).
    Streaming,
    /// Keep no history; regenerate every needed row of `Z` from the key stream. O(d) memory.
    Regenerate,
}

/// A source of correlated noise, one step at a time.
pub trait NoiseGenerator {
    /// Number of coordinates d of each step's noise.
    fn dim(&self) -> usize;
    /// The next step to be generated (0-based); equals the number of steps generated so far.
    fn step(&self) -> usize;
    /// Writes step [`NoiseGenerator::step`]'s noise into `out` (length d) and advances.
    /// Errors (and changes nothing) if `out` has the wrong length or all n steps were generated.
    fn fill_next(&mut self, out: &mut [f32]) -> Result<(), NoiseError>;
    /// A snapshot from which [`NoiseGenerator::restore`] continues with exactly the noise this
    /// generator would draw next.
    fn save_state(&self) -> NoiseState;
    /// Continues from a snapshot. Errors if it belongs to a different strategy, dimension, σ,
    /// mode, rounding or key, or is corrupt; on error the generator is unchanged.
    fn restore(&mut self, state: &NoiseState) -> Result<(), NoiseError>;
}

/// The correlated-noise generator: `σ·(C⁻¹Z)_t` for t = 0, 1, …, n − 1 (module docs: forms,
/// memory, arithmetic, determinism).
///
/// # Privacy contract
/// - The noise is exactly `σ·C⁻¹Z` with `Z` i.i.d. N(0, 1) up to f32 rounding, a tail
///   truncation at |z| ≤ 9.49 (an additive δ of 2⁻⁶⁴ per pair of Gaussians) and ~10⁻¹⁰ relative transform error (see [`crate::gaussian`]); each
///   row `z_j` is drawn once and reused by every step that needs it (never re-keyed per step).
/// - The randomness is ChaCha20 keyed by [`Seed`]; only [`Seed::FromOs`] is suitable for a real
///   release ([`CorrelatedNoise::is_private_release_safe`]).
/// - A restored run continues with exactly the noise it would have drawn; no step is repeated or
///   skipped, and past step n − 1 the generator refuses to produce noise.
/// - Floating-point attacks (Mironov 2012) are not ruled out by default: see [`Rounding`].
#[derive(Debug, Clone)]
pub struct CorrelatedNoise {
    form: Form,
    n: usize,
    dim: usize,
    std: f64,
    mode: Mode,
    rounding: Rounding,
    key: Key,
    private: bool,
    step: usize,
    history: Vec<f32>,
}

fn check_args(dim: usize, std: f64) -> Result<(), NoiseError> {
    if dim == 0 {
        return Err(NoiseError::invalid(
            "dim",
            "the number of coordinates d must be ≥ 1, got 0",
        ));
    }
    if !std.is_finite() || std < 0.0 {
        return Err(NoiseError::invalid(
            "std",
            format!("the noise standard deviation σ must be finite and ≥ 0, got {std}"),
        ));
    }
    Ok(())
}

impl CorrelatedNoise {
    /// A generator of `σ·(C⁻¹Z)_t`, t = 0..n, for d = `dim` coordinates.
    ///
    /// `std` is σ, the per-coordinate standard deviation of `z` (the trainer passes
    /// `noise multiplier · sensitivity · clip norm`). Errors: `dim = 0`, `std` negative or not
    /// finite, a singular `C`, or a streaming history that does not fit in memory
    /// (`Mode::Streaming` with slots·d overflowing). Set-up cost: O(n·p) for a banded Toeplitz
    /// `C`, O(n³) for a dense one (its inverse).
    pub fn new(
        c: &LowerTriangular,
        dim: usize,
        std: f64,
        seed: Seed,
        mode: Mode,
    ) -> Result<Self, NoiseError> {
        check_args(dim, std)?;
        let key = seed.key()?;
        Self::build(c, dim, std, key, seed.is_private_release_safe(), mode)
    }

    /// A generator that continues a saved run: the key comes from `state` (so an OS-seeded run
    /// can be resumed in a new process). The strategy, `dim`, `std` and `mode` must match it.
    pub fn resume(
        c: &LowerTriangular,
        dim: usize,
        std: f64,
        mode: Mode,
        state: &NoiseState,
    ) -> Result<Self, NoiseError> {
        check_args(dim, std)?;
        let mode = if mode == Mode::Auto { state.mode } else { mode };
        let mut g = Self::build(c, dim, std, state.key.clone(), true, mode)?;
        g.rounding = state.rounding;
        g.restore(state)?;
        g.private = state.private_release_safe;
        Ok(g)
    }

    fn build(
        c: &LowerTriangular,
        dim: usize,
        std: f64,
        key: Key,
        private: bool,
        mode: Mode,
    ) -> Result<Self, NoiseError> {
        let n = c.n();
        let form = form_of(c)?;
        let slots = form.slots(n);
        let bytes = slots.checked_mul(dim).and_then(|v| v.checked_mul(4));
        let mode = match (mode, &form) {
            (_, Form::Identity) => Mode::Streaming,
            (Mode::Auto, _) => match bytes {
                Some(b) if b <= AUTO_MEMORY_BUDGET => Mode::Streaming,
                _ => Mode::Regenerate,
            },
            (m, _) => m,
        };
        let history = if mode == Mode::Streaming {
            let Some(_) = bytes else {
                return Err(NoiseError::invalid(
                    "dim",
                    format!(
                        "streaming history of {slots} rows × {dim} coordinates overflows memory"
                    ),
                ));
            };
            vec![0f32; slots * dim]
        } else {
            Vec::new()
        };
        Ok(Self {
            form,
            n,
            dim,
            std,
            mode,
            rounding: Rounding::None,
            key,
            private,
            step: 0,
            history,
        })
    }

    /// n, the number of steps.
    pub fn n(&self) -> usize {
        self.n
    }

    /// σ.
    pub fn std(&self) -> f64 {
        self.std
    }

    /// The resolved mode ([`Mode::Streaming`] or [`Mode::Regenerate`]; identity is always
    /// streaming, it keeps no history).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The ChaCha20 key (secret: see [`Key`]). Workers that regenerate noise need it.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Whether this noise may be used for a real private release (OS-seeded, or resumed from the
    /// state of an OS-seeded run). See [`Seed::is_private_release_safe`].
    pub fn is_private_release_safe(&self) -> bool {
        self.private
    }

    /// Name of the streaming form (`identity`, `fir`, `recursion`, `blt`, `dense`).
    pub fn form(&self) -> &'static str {
        self.form.name()
    }

    /// Bytes of generator state that scale with d (the ring buffer; 0 when regenerating).
    pub fn state_bytes(&self) -> usize {
        self.history.len() * std::mem::size_of::<f32>()
    }

    /// How many rows of `Z` step `t` needs: the work of one step is this times d Gaussians
    /// when regenerating (1 when streaming).
    pub fn taps(&self, t: usize) -> usize {
        self.form.taps(t).len()
    }
}

impl NoiseGenerator for CorrelatedNoise {
    fn dim(&self) -> usize {
        self.dim
    }

    fn step(&self) -> usize {
        self.step
    }

    /// Streaming: O(p·d) time (O(t·d) for the full-history forms). Regenerating: O(taps·d)
    /// Gaussians. Parallel over [`CHUNK`]-coordinate tasks.
    fn fill_next(&mut self, out: &mut [f32]) -> Result<(), NoiseError> {
        if out.len() != self.dim {
            return Err(NoiseError::invalid(
                "out",
                format!(
                    "the output slice must have dim = {} entries, got {}",
                    self.dim,
                    out.len()
                ),
            ));
        }
        if self.step >= self.n {
            return Err(NoiseError::PastEnd {
                step: self.step,
                n: self.n,
            });
        }
        match self.mode {
            Mode::Regenerate => self.regenerate(self.step, 0, out)?,
            _ => self.fill_streaming(out),
        }
        self.step += 1;
        Ok(())
    }

    fn save_state(&self) -> NoiseState {
        NoiseState {
            version: STATE_VERSION,
            form: self.form.name().to_string(),
            n: self.n,
            band: self.form.band(self.n),
            coeffs_hash: self.form.coeffs_hash(),
            dim: self.dim,
            std: self.std,
            mode: self.mode,
            rounding: self.rounding,
            key: self.key.clone(),
            private_release_safe: self.private,
            step: self.step,
            history: self.history.clone(),
        }
    }

    fn restore(&mut self, state: &NoiseState) -> Result<(), NoiseError> {
        self.fingerprint_check(state)?;
        self.step = state.step;
        self.history.copy_from_slice(&state.history);
        Ok(())
    }
}

/// The whole n×d noise matrix `σ·C⁻¹Z` (row-major, row t = step t) from a fresh generator in
/// [`Mode::Auto`]. O(n·d) memory for the result; for the CLI and small experiments.
pub fn generate_matrix(
    c: &LowerTriangular,
    dim: usize,
    std: f64,
    seed: Seed,
) -> Result<Vec<f32>, NoiseError> {
    let mut g = CorrelatedNoise::new(c, dim, std, seed, Mode::Auto)?;
    let n = g.n();
    let total = n
        .checked_mul(dim)
        .ok_or_else(|| NoiseError::invalid("dim", format!("n·d = {n}·{dim} overflows")))?;
    let mut out = vec![0f32; total];
    for row in out.chunks_exact_mut(dim) {
        g.fill_next(row)?;
    }
    Ok(out)
}
