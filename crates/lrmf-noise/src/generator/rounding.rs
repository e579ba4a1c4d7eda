//! The optional discretisation of the released noise (a mitigation of floating-point attacks),
//! and the one place every output is scaled by σ and rounded to f32.

use super::CorrelatedNoise;
use crate::NoiseError;
use serde::{Deserialize, Serialize};

/// Optional discretisation of the released noise (a mitigation of floating-point attacks).
///
/// `Grid(λ)`: every output is `λ·round(σ·y/λ)` (ties to even), computed in f64 before the single
/// rounding to f32. Choose λ a power of two (then every multiple up to `2²⁴·λ` is exact in f32)
/// and small next to σ (e.g. `λ ≈ σ·2⁻¹⁰`; the added error is at most λ/2 per coordinate).
///
/// **What it guarantees:** the noise takes values only on the regular lattice `λℤ`; its low-order
/// bits no longer carry the irregular pattern of reachable floating-point values that Mironov's
/// attack (CCS 2012) reads, and every lattice point has (up to the tail truncation and the
/// ~10⁻¹⁰ transform error) exactly the Gaussian mass of its rounding cell.
/// **What it does not guarantee:** the release `x + noise` is still computed in floating point
/// by the caller, and the rounding of that sum can still depend on `x`. For a release whose
/// support does not depend on `x`, round the *sum* to a coarse grid as well
/// ([`crate::snap_release`]). No formal floating-point DP proof (like Mironov's for the snapping
/// Laplace mechanism) is claimed for the Gaussian case.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum Rounding {
    /// Release `σ·y` rounded once to f32 (the default).
    #[default]
    None,
    /// Round to multiples of λ (see the type's docs).
    Grid(f64),
}

impl CorrelatedNoise {
    /// Sets the rounding of the released noise (before the first step; see [`Rounding`]).
    /// Errors if λ is not finite and > 0, or if steps were already generated.
    pub fn with_rounding(mut self, rounding: Rounding) -> Result<Self, NoiseError> {
        if let Rounding::Grid(l) = rounding
            && !(l.is_finite() && l > 0.0)
        {
            return Err(NoiseError::invalid(
                "rounding",
                format!("the grid λ must be finite and > 0, got {l}"),
            ));
        }
        if self.step != 0 {
            return Err(NoiseError::invalid(
                "rounding",
                format!(
                    "must be set before the first step (now at step {})",
                    self.step
                ),
            ));
        }
        self.rounding = rounding;
        Ok(self)
    }

    #[inline]
    pub(super) fn finish(&self, y: f64) -> f32 {
        let x = self.std * y;
        match self.rounding {
            Rounding::None => x as f32,
            Rounding::Grid(l) => ((x / l).round_ties_even() * l) as f32,
        }
    }
}
