//! `Toep(c)`: lower-triangular Toeplitz matrices, banded when `c` is short.

use crate::LinalgError;
use crate::fft::convolve;
use crate::series::{self, Algorithm};
use faer::Mat;

/// The n×n lower-triangular Toeplitz matrix `Toep(c)`: entry `[t, j] = c_{t−j}` for `j ≤ t`
/// (0-based), and `c_k = 0` for `k ≥ c.len()` — so `c.len() = p < n` is a matrix of band p.
///
/// Memory O(p); products with vectors O(n·p) or O(n log n).
#[derive(Debug, Clone, PartialEq)]
pub struct ToeplitzLower {
    n: usize,
    c: Vec<f64>,
}

impl ToeplitzLower {
    /// `Toep(c)` of size n. Coefficients beyond n are dropped; errors on n = 0, empty or non-finite `c`.
    pub fn new(n: usize, mut c: Vec<f64>) -> Result<Self, LinalgError> {
        if n == 0 {
            return Err(LinalgError::invalid("n", "the matrix size must be ≥ 1"));
        }
        if c.is_empty() {
            return Err(LinalgError::invalid(
                "c",
                "at least one coefficient is needed",
            ));
        }
        if let Some(k) = c.iter().position(|v| !v.is_finite()) {
            return Err(LinalgError::invalid(
                "c",
                format!("coefficient {k} is {}", c[k]),
            ));
        }
        c.truncate(n);
        Ok(Self { n, c })
    }

    /// The n×n identity, `Toep([1])`.
    pub fn identity(n: usize) -> Result<Self, LinalgError> {
        Self::new(n, vec![1.0])
    }

    /// Matrix size n.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The stored coefficients `c_0 … c_{p−1}` (the rest are zero).
    pub fn coeffs(&self) -> &[f64] {
        &self.c
    }

    /// The band p = number of stored coefficients.
    pub fn band(&self) -> usize {
        self.c.len()
    }

    /// Entry `[t, j]`.
    pub fn get(&self, t: usize, j: usize) -> f64 {
        if j > t {
            0.0
        } else {
            self.c.get(t - j).copied().unwrap_or(0.0)
        }
    }

    /// The first `n` coefficients of the inverse, `Toep(c)⁻¹ = Toep(c⁻¹)`. O(n·p) or O(n log n).
    pub fn inverse_coeffs(&self) -> Result<Vec<f64>, LinalgError> {
        series::inverse(&self.c, self.n, Algorithm::Auto)
    }

    /// `Toep(c)·x`, i.e. `y_t = Σ_{j≤t} c_{t−j} x_j`. O(n·p) or O(n log n).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(x.len(), self.n, "apply: vector length must equal n");
        convolve(&self.c, x, self.n)
    }

    /// `Toep(c)ᵀ·x`, i.e. `y_j = Σ_{t≥j} c_{t−j} x_t`. O(n·p) or O(n log n).
    pub fn apply_transpose(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(
            x.len(),
            self.n,
            "apply_transpose: vector length must equal n"
        );
        let rev: Vec<f64> = x.iter().rev().copied().collect();
        let mut y = convolve(&self.c, &rev, self.n);
        y.reverse();
        y
    }

    /// `Toep(c)⁻¹·y` by forward substitution. O(n·p).
    pub fn solve(&self, y: &[f64]) -> Vec<f64> {
        assert_eq!(y.len(), self.n, "solve: vector length must equal n");
        let c0 = self.c[0];
        let mut x = vec![0.0; self.n];
        for t in 0..self.n {
            let jmax = t.min(self.c.len() - 1);
            let mut s = y[t];
            for k in 1..=jmax {
                s -= self.c[k] * x[t - k];
            }
            x[t] = s / c0;
        }
        x
    }

    /// The dense n×n matrix. O(n²) memory: for tests and small n.
    pub fn to_dense(&self) -> Mat<f64> {
        Mat::from_fn(self.n, self.n, |t, j| self.get(t, j))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(t: &ToeplitzLower, x: &[f64]) {
        let d = t.to_dense();
        let n = t.n();
        let dense_apply: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| d[(i, j)] * x[j]).sum())
            .collect();
        let dense_t: Vec<f64> = (0..n)
            .map(|j| (0..n).map(|i| d[(i, j)] * x[i]).sum())
            .collect();
        for (a, b) in t.apply(x).iter().zip(&dense_apply) {
            assert!((a - b).abs() < 1e-10);
        }
        for (a, b) in t.apply_transpose(x).iter().zip(&dense_t) {
            assert!((a - b).abs() < 1e-10);
        }
        let back = t.apply(&t.solve(x));
        for (a, b) in back.iter().zip(x) {
            assert!((a - b).abs() < 1e-9);
        }
        let inv = ToeplitzLower::new(n, t.inverse_coeffs().unwrap()).unwrap();
        for (a, b) in inv.apply(x).iter().zip(&t.solve(x)) {
            assert!((a - b).abs() < 1e-9);
        }
    }

    #[test]
    fn dense_agrees_for_banded_and_full() {
        let x: Vec<f64> = (0..200).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
        check(&ToeplitzLower::new(200, vec![1.0, 0.5, 0.25]).unwrap(), &x);
        check(&ToeplitzLower::new(200, crate::series::r(200)).unwrap(), &x);
        check(&ToeplitzLower::new(7, vec![2.0, -1.0]).unwrap(), &x[..7]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(ToeplitzLower::new(0, vec![1.0]).is_err());
        assert!(ToeplitzLower::new(3, vec![]).is_err());
        assert!(ToeplitzLower::new(3, vec![f64::INFINITY]).is_err());
    }
}
