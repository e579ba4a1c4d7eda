//! Snapping of a released vector to a coarse grid: the post-processing half of the mitigation of
//! floating-point attacks on noise sampling (Mironov 2012).
//!
//! Mironov, "On significance of the least significant bits for differential privacy" (CCS 2012):
//! the floating-point values that `x + noise` can take depend on `x`, so the low-order bits of a
//! release can reveal `x` exactly. His *snapping mechanism* clamps the release to `[−B, B]` and
//! rounds it to a multiple of a power of two Λ, so the set of possible outputs no longer depends
//! on `x`. [`snap_release`] is that post-processing step for the released (noisy) vector, e.g.
//! the noisy gradient sum `g + σ·(C⁻¹Z)_t` before it is used or published.
//!
//! What it guarantees: every output is a multiple of Λ in `[−B, B]` (so the output alphabet is
//! the same for every input), and, being post-processing, it never weakens the real-arithmetic
//! Gaussian guarantee. What it does not: a formal floating-point DP bound — Mironov proves one
//! for snapped *Laplace* noise (with an ε overhead depending on B, Λ and the float precision); no
//! such theorem is claimed here for the Gaussian case. Pair it with [`crate::Rounding::Grid`].

use crate::NoiseError;

/// Clamps each value to `[−bound, bound]` and rounds it to the nearest multiple of `grid`
/// (ties to even), in f64, then stores it back as f32. O(len).
///
/// `grid` must be a power of two (so its multiples up to `2²⁴·grid` are exact in f32) and
/// `bound` finite and ≥ 0; NaN inputs are an error (they would bypass the clamp).
pub fn snap_release(values: &mut [f32], grid: f64, bound: f64) -> Result<(), NoiseError> {
    if !(grid.is_finite() && grid > 0.0) || grid.to_bits() & 0x000f_ffff_ffff_ffff != 0 {
        return Err(NoiseError::invalid(
            "grid",
            format!("the snapping grid Λ must be a finite power of two > 0, got {grid}"),
        ));
    }
    if !(bound.is_finite() && bound >= 0.0) {
        return Err(NoiseError::invalid(
            "bound",
            format!("the clamp bound B must be finite and ≥ 0, got {bound}"),
        ));
    }
    if let Some(i) = values.iter().position(|v| v.is_nan()) {
        return Err(NoiseError::invalid("values", format!("entry {i} is NaN")));
    }
    // The largest multiple of Λ inside [−B, B], so clamping keeps outputs on the grid.
    let b = (bound / grid).floor() * grid;
    for v in values.iter_mut() {
        let x = f64::from(*v).clamp(-bound, bound);
        *v = ((x / grid).round_ties_even() * grid).clamp(-b, b) as f32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[f32], grid: f64, bound: f64, want: &[f32]) {
        let mut v = input.to_vec();
        snap_release(&mut v, grid, bound).unwrap();
        assert_eq!(v, want);
        for x in &v {
            assert_eq!((f64::from(*x) / grid).fract(), 0.0);
            assert!(f64::from(x.abs()) <= bound);
        }
    }

    #[test]
    fn snaps_to_the_grid_inside_the_bound() {
        check(
            &[0.3, -0.3, 0.125, 0.375, 5.0, -5.0, f32::INFINITY],
            0.25,
            1.1,
            &[0.25, -0.25, 0.0, 0.5, 1.0, -1.0, 1.0],
        );
        check(&[1e-9, 3.0], 1.0, 2.0, &[0.0, 2.0]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut v = vec![1.0f32];
        assert!(snap_release(&mut v, 0.3, 1.0).is_err());
        assert!(snap_release(&mut v, 0.0, 1.0).is_err());
        assert!(snap_release(&mut v, f64::NAN, 1.0).is_err());
        assert!(snap_release(&mut v, 0.5, -1.0).is_err());
        assert!(snap_release(&mut v, 0.5, f64::INFINITY).is_err());
        let mut nan = vec![f32::NAN];
        assert!(matches!(
            snap_release(&mut nan, 0.5, 1.0),
            Err(NoiseError::Invalid { name: "values", .. })
        ));
    }
}
