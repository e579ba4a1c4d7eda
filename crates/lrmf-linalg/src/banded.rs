//! General (non-Toeplitz) banded lower-triangular matrices: the strategy shape of BandMF, whose
//! n·p entries are free (one per entry of the band), unlike `Toep(c)`'s p coefficients.

use crate::LinalgError;
use faer::Mat;

/// An n×n lower-triangular matrix with p bands: `C[t, j] = 0` unless `0 ≤ t − j < p`.
///
/// Stored column by column (`cols[j·p + i] = C[j + i, j]`, zero where `j + i ≥ n`), so a column
/// is one contiguous slice — the unit that BandMF normalizes. Memory O(n·p); `apply`,
/// `apply_transpose`, `solve` and `solve_transpose` cost O(n·p). The diagonal is non-zero (checked
/// on construction), so C is invertible.
#[derive(Debug, Clone, PartialEq)]
pub struct BandedLower {
    n: usize,
    p: usize,
    cols: Vec<f64>,
}

impl BandedLower {
    /// The banded matrix with column-major band `cols` (length n·p, `cols[j·p + i] = C[j + i, j]`).
    /// Errors on n = 0, p outside 1..=n, a wrong length, a non-finite entry, a non-zero entry
    /// below row n − 1, or a zero diagonal entry (C singular).
    pub fn new(n: usize, p: usize, cols: Vec<f64>) -> Result<Self, LinalgError> {
        if n == 0 {
            return Err(LinalgError::invalid("n", "the matrix size must be ≥ 1"));
        }
        if p == 0 || p > n {
            return Err(LinalgError::invalid(
                "band",
                format!("{p} is outside 1..=n = {n}"),
            ));
        }
        if cols.len() != n * p {
            return Err(LinalgError::Dimension {
                what: "banded columns",
                got: cols.len(),
                expected: n * p,
            });
        }
        for j in 0..n {
            for i in 0..p {
                let v = cols[j * p + i];
                if !v.is_finite() {
                    return Err(LinalgError::invalid(
                        "matrix",
                        format!("entry ({}, {j}) is {v}", j + i),
                    ));
                }
                if j + i >= n && v != 0.0 {
                    return Err(LinalgError::invalid(
                        "matrix",
                        format!(
                            "band entry {i} of column {j} lies below row n − 1 = {}",
                            n - 1
                        ),
                    ));
                }
            }
            if cols[j * p] == 0.0 {
                return Err(LinalgError::invalid(
                    "matrix",
                    format!("diagonal entry {j} is zero, so C is singular"),
                ));
            }
        }
        Ok(Self { n, p, cols })
    }

    /// Matrix size n.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The band p.
    pub fn band(&self) -> usize {
        self.p
    }

    /// The column-major band (`[j·p + i] = C[j + i, j]`).
    pub fn cols(&self) -> &[f64] {
        &self.cols
    }

    /// Column j's band `C[j .. j + p, j]` (zero-padded past row n − 1).
    pub fn column(&self, j: usize) -> &[f64] {
        &self.cols[j * self.p..(j + 1) * self.p]
    }

    /// Entry `[t, j]`.
    pub fn get(&self, t: usize, j: usize) -> f64 {
        if j > t || t - j >= self.p {
            0.0
        } else {
            self.cols[j * self.p + t - j]
        }
    }

    /// `C·x`. O(n·p).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(x.len(), self.n, "apply: vector length must equal n");
        let mut y = vec![0.0; self.n];
        for (j, &xj) in x.iter().enumerate() {
            let len = self.p.min(self.n - j);
            for (yi, c) in y[j..j + len].iter_mut().zip(self.column(j)) {
                *yi += c * xj;
            }
        }
        y
    }

    /// `Cᵀ·x`: `y_j = Σ_i C[j + i, j]·x_{j+i}`. O(n·p).
    pub fn apply_transpose(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(
            x.len(),
            self.n,
            "apply_transpose: vector length must equal n"
        );
        (0..self.n)
            .map(|j| {
                let len = self.p.min(self.n - j);
                self.column(j)[..len]
                    .iter()
                    .zip(&x[j..j + len])
                    .map(|(c, v)| c * v)
                    .sum()
            })
            .collect()
    }

    /// `C⁻¹·y` by forward substitution,
    /// `x_t = (y_t − Σ_{i=1}^{p−1} C[t, t−i]·x_{t−i}) / C[t, t]`. O(n·p).
    pub fn solve(&self, y: &[f64]) -> Vec<f64> {
        assert_eq!(y.len(), self.n, "solve: vector length must equal n");
        let mut x = y.to_vec();
        self.solve_prefix_in_place(&mut x);
        x
    }

    /// `x ← C_m⁻¹·x` for the leading m×m block `C_m` (m = `x.len()` ≤ n). O(m·p).
    pub fn solve_prefix_in_place(&self, x: &mut [f64]) {
        let p = self.p;
        for t in 0..x.len() {
            let mut s = x[t];
            for i in 1..p.min(t + 1) {
                s -= self.cols[(t - i) * p + i] * x[t - i];
            }
            x[t] = s / self.cols[t * p];
        }
    }

    /// `x ← C_m⁻ᵀ·x` for the leading m×m block (m = `x.len()` ≤ n) by back substitution,
    /// `x_j = (x_j − Σ_{i=1}^{p−1} C[j+i, j]·x_{j+i}) / C[j, j]`. O(m·p).
    ///
    /// Row t of `B = W·C⁻¹` is this applied to `W[t, 0..=t]` (B is lower-triangular).
    pub fn solve_transpose_prefix_in_place(&self, x: &mut [f64]) {
        let (p, m) = (self.p, x.len());
        for j in (0..m).rev() {
            let col = self.column(j);
            let len = p.min(m - j);
            let s: f64 = col[1..len]
                .iter()
                .zip(&x[j + 1..j + len])
                .map(|(c, v)| c * v)
                .sum();
            x[j] = (x[j] - s) / col[0];
        }
    }

    /// `C⁻ᵀ·y`. O(n·p).
    pub fn solve_transpose(&self, y: &[f64]) -> Vec<f64> {
        assert_eq!(
            y.len(),
            self.n,
            "solve_transpose: vector length must equal n"
        );
        let mut x = y.to_vec();
        self.solve_transpose_prefix_in_place(&mut x);
        x
    }

    /// Row t of `C⁻¹`, entries `0..=t` (the rest are zero): `e_tᵀ·C⁻¹`. O(t·p).
    pub fn inverse_row(&self, t: usize) -> Vec<f64> {
        let mut x = vec![0.0; t + 1];
        x[t] = 1.0;
        self.solve_transpose_prefix_in_place(&mut x);
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

    fn check(c: &BandedLower) {
        let n = c.n();
        let d = c.to_dense();
        let x: Vec<f64> = (0..n).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
        let want: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| d[(i, j)] * x[j]).sum())
            .collect();
        let want_t: Vec<f64> = (0..n)
            .map(|j| (0..n).map(|i| d[(i, j)] * x[i]).sum())
            .collect();
        for i in 0..n {
            assert!((c.apply(&x)[i] - want[i]).abs() < 1e-10);
            assert!((c.apply_transpose(&x)[i] - want_t[i]).abs() < 1e-10);
            assert!((c.apply(&c.solve(&x))[i] - x[i]).abs() < 1e-9);
            assert!((c.apply_transpose(&c.solve_transpose(&x))[i] - x[i]).abs() < 1e-9);
        }
        for t in 0..n {
            let row = c.inverse_row(t);
            let back = c.apply_transpose(&{
                let mut r = row.clone();
                r.resize(n, 0.0);
                r
            });
            for (j, v) in back.iter().enumerate() {
                assert!((v - if j == t { 1.0 } else { 0.0 }).abs() < 1e-10);
            }
        }
    }

    fn band(n: usize, p: usize) -> Vec<f64> {
        (0..n * p)
            .map(|k| {
                let (j, i) = (k / p, k % p);
                if j + i >= n {
                    0.0
                } else if i == 0 {
                    1.0 + 0.1 * j as f64
                } else {
                    ((k * 7) % 5) as f64 * 0.1 - 0.2
                }
            })
            .collect()
    }

    #[test]
    fn dense_agrees() {
        for (n, p) in [(1, 1), (7, 3), (12, 12), (30, 4)] {
            check(&BandedLower::new(n, p, band(n, p)).unwrap());
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(BandedLower::new(0, 1, vec![]).is_err());
        assert!(BandedLower::new(3, 4, vec![1.0; 12]).is_err());
        assert!(BandedLower::new(3, 2, vec![1.0; 5]).is_err());
        // Entry below the last row.
        assert!(BandedLower::new(2, 2, vec![1.0, 0.5, 1.0, 0.5]).is_err());
        assert!(BandedLower::new(2, 2, vec![0.0, 0.5, 1.0, 0.0]).is_err());
        assert!(BandedLower::new(2, 2, vec![1.0, f64::NAN, 1.0, 0.0]).is_err());
        assert!(BandedLower::new(2, 2, vec![1.0, 0.5, 1.0, 0.0]).is_ok());
    }
}
