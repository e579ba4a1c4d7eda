//! The closed set of shapes a strategy matrix `C` takes, behind one operator interface.

use crate::{BandedLower, BltMatrix, DenseLower, LinalgError, ToeplitzLower};
use faer::Mat;

/// A square linear operator with products in both directions and an exact dense form for tests.
/// Shaped like faer's `LinOp`, but over plain slices.
pub trait LinearOperator {
    /// Number of rows (= columns).
    fn nrows(&self) -> usize;
    /// `A·x`.
    fn apply(&self, x: &[f64]) -> Vec<f64>;
    /// `Aᵀ·x`.
    fn apply_transpose(&self, x: &[f64]) -> Vec<f64>;
    /// The dense matrix (O(n²) memory; tests and small n).
    fn to_dense(&self) -> Mat<f64>;
}

/// An invertible lower-triangular matrix in one of the structures the factorizers produce.
///
/// | variant | matrix | apply / solve | memory |
/// |---|---|---|---|
/// | `Identity` | I | O(n) | O(1) |
/// | `Toeplitz(t)` | `Toep(c)` (sqrt, BSR families) | O(n·p) or O(n log n) / O(n·p) | O(p) |
/// | `InverseToeplitz(t)` | `Toep(d)⁻¹` (BISR family: the band is on `C⁻¹`) | O(n·p) / O(n·p) | O(p) |
/// | `Banded(b)` | general banded, p bands (bandmf: one free entry per band entry) | O(n·p) / O(n·p) | O(n·p) |
/// | `Blt(b)` | `Toep(c)`, `c(x) = 1 + Σ ω_i x/(1 − θ_i x)` (blt, lr-blt) | O(n·d) / O(n·d) | O(d) |
/// | `Dense(m)` | general (dense-sqrt, dense-opt) | O(n²) | O(n²) |
#[derive(Debug, Clone)]
pub enum LowerTriangular {
    /// The n×n identity.
    Identity {
        /// Size.
        n: usize,
    },
    /// `Toep(c)`.
    Toeplitz(ToeplitzLower),
    /// `Toep(d)⁻¹`: the stored Toeplitz matrix is the *inverse* of this operator.
    InverseToeplitz(ToeplitzLower),
    /// A general (non-Toeplitz) banded lower-triangular matrix.
    Banded(BandedLower),
    /// A buffered linear Toeplitz matrix with d buffers.
    Blt(BltMatrix),
    /// A general dense lower-triangular matrix.
    Dense(DenseLower),
}

impl LowerTriangular {
    /// Size n.
    pub fn n(&self) -> usize {
        match self {
            Self::Identity { n } => *n,
            Self::Toeplitz(t) | Self::InverseToeplitz(t) => t.n(),
            Self::Banded(b) => b.n(),
            Self::Blt(b) => b.n(),
            Self::Dense(d) => d.n(),
        }
    }

    /// `C⁻¹·y`.
    pub fn solve(&self, y: &[f64]) -> Result<Vec<f64>, LinalgError> {
        Ok(match self {
            Self::Identity { .. } => y.to_vec(),
            Self::Toeplitz(t) => t.solve(y),
            Self::InverseToeplitz(t) => t.apply(y),
            Self::Banded(b) => b.solve(y),
            Self::Blt(b) => b.solve(y),
            Self::Dense(d) => d.solve(y)?,
        })
    }

    /// When `C` is Toeplitz (every variant but `Banded` and `Dense`), the first `len` coefficients of its
    /// first column. O(len·p).
    pub fn toeplitz_coeffs(&self, len: usize) -> Option<Vec<f64>> {
        let mut c = match self {
            Self::Identity { .. } => vec![1.0],
            Self::Toeplitz(t) => t.coeffs().to_vec(),
            // The recurrence (O(len·p)) is exact to rounding in every coefficient, which the
            // sensitivity's regime check (c ≥ 0, non-increasing) needs; FFT noise would break it.
            Self::InverseToeplitz(t) => crate::series::inverse(
                t.coeffs(),
                len.min(t.n()).max(1),
                crate::series::Algorithm::Recurrence,
            )
            .ok()?,
            Self::Blt(b) => b.coeffs(len.min(b.n()).max(1)),
            Self::Banded(_) | Self::Dense(_) => return None,
        };
        c.resize(len.min(self.n()), 0.0);
        Some(c)
    }

    /// When `C⁻¹` is Toeplitz, the first `len` coefficients of its first column.
    pub fn inverse_toeplitz_coeffs(&self, len: usize) -> Option<Vec<f64>> {
        let mut c = match self {
            Self::Identity { .. } => vec![1.0],
            Self::InverseToeplitz(t) => t.coeffs().to_vec(),
            Self::Toeplitz(t) => crate::series::inverse(
                t.coeffs(),
                len.min(t.n()).max(1),
                crate::series::Algorithm::Auto,
            )
            .ok()?,
            Self::Blt(b) => b.inverse_coeffs(len.min(b.n()).max(1)),
            Self::Banded(_) | Self::Dense(_) => return None,
        };
        c.resize(len.min(self.n()), 0.0);
        Some(c)
    }

    /// The dense `C⁻¹` (O(n²) memory).
    pub fn inverse_to_dense(&self) -> Result<Mat<f64>, LinalgError> {
        let n = self.n();
        let mut out = Mat::zeros(n, n);
        for j in 0..n {
            let mut e = vec![0.0; n];
            e[j] = 1.0;
            let col = self.solve(&e)?;
            for i in 0..n {
                out[(i, j)] = col[i];
            }
        }
        Ok(out)
    }
}

impl LinearOperator for LowerTriangular {
    fn nrows(&self) -> usize {
        self.n()
    }

    fn apply(&self, x: &[f64]) -> Vec<f64> {
        match self {
            Self::Identity { .. } => x.to_vec(),
            Self::Toeplitz(t) => t.apply(x),
            Self::InverseToeplitz(t) => t.solve(x),
            Self::Banded(b) => b.apply(x),
            Self::Blt(b) => b.apply(x),
            Self::Dense(d) => d.apply(x),
        }
    }

    fn apply_transpose(&self, x: &[f64]) -> Vec<f64> {
        match self {
            Self::Identity { .. } => x.to_vec(),
            Self::Toeplitz(t) => t.apply_transpose(x),
            Self::InverseToeplitz(t) => {
                // (Toep(d)⁻¹)ᵀ x = Toep(d)⁻ᵀ x: back substitution on the upper-triangular Toep(d)ᵀ.
                let d = t.coeffs();
                let n = t.n();
                let mut y = vec![0.0; n];
                for j in (0..n).rev() {
                    let mut s = x[j];
                    for k in 1..d.len().min(n - j) {
                        s -= d[k] * y[j + k];
                    }
                    y[j] = s / d[0];
                }
                y
            }
            Self::Banded(b) => b.apply_transpose(x),
            Self::Blt(b) => b.apply_transpose(x),
            Self::Dense(d) => d.apply_transpose(x),
        }
    }

    fn to_dense(&self) -> Mat<f64> {
        match self {
            Self::Identity { n } => Mat::from_fn(*n, *n, |i, j| if i == j { 1.0 } else { 0.0 }),
            Self::Toeplitz(t) => t.to_dense(),
            Self::Blt(b) => b.to_dense(),
            Self::InverseToeplitz(_) => {
                let n = self.n();
                let mut out = Mat::zeros(n, n);
                for j in 0..n {
                    let mut e = vec![0.0; n];
                    e[j] = 1.0;
                    let col = self.apply(&e);
                    for i in 0..n {
                        out[(i, j)] = col[i];
                    }
                }
                out
            }
            Self::Banded(b) => b.to_dense(),
            Self::Dense(d) => d.as_mat().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(c: &LowerTriangular) {
        let n = c.n();
        let d = c.to_dense();
        let inv = c.inverse_to_dense().unwrap();
        let prod = &d * &inv;
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
        let at = c.apply_transpose(&x);
        for i in 0..n {
            for j in 0..n {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((prod[(i, j)] - want).abs() < 1e-10);
            }
            let want: f64 = (0..n).map(|k| d[(k, i)] * x[k]).sum();
            assert!((at[i] - want).abs() < 1e-10);
        }
        if let Some(coeffs) = c.toeplitz_coeffs(n) {
            for t in 0..n {
                assert!((coeffs[t] - d[(t, 0)]).abs() < 1e-12);
            }
        }
        if let Some(coeffs) = c.inverse_toeplitz_coeffs(n) {
            for t in 0..n {
                assert!((coeffs[t] - inv[(t, 0)]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn every_shape_is_consistent_with_its_dense_form() {
        let n = 12;
        check(&LowerTriangular::Identity { n });
        check(&LowerTriangular::Toeplitz(
            ToeplitzLower::new(n, vec![1.0, 0.5, 0.25]).unwrap(),
        ));
        check(&LowerTriangular::InverseToeplitz(
            ToeplitzLower::new(n, vec![1.0, -0.5, -0.125]).unwrap(),
        ));
        check(&LowerTriangular::Blt(
            BltMatrix::new(n, vec![0.95, 0.4], vec![0.2, 0.3]).unwrap(),
        ));
        let dense = Mat::from_fn(n, n, |i, j| {
            if j <= i {
                1.0 / (1.0 + (i - j) as f64)
            } else {
                0.0
            }
        });
        check(&LowerTriangular::Dense(DenseLower::new(dense).unwrap()));
        let cols = (0..n * 3)
            .map(|k| match (k / 3 + k % 3 >= n, k % 3) {
                (true, _) => 0.0,
                (false, 0) => 1.0 + 0.05 * (k / 3) as f64,
                (false, i) => 0.3 / i as f64 - 0.01 * (k / 3) as f64,
            })
            .collect();
        check(&LowerTriangular::Banded(
            BandedLower::new(n, 3, cols).unwrap(),
        ));
    }
}
