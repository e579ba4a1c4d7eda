//! General dense lower-triangular matrices (faer), for `dense-sqrt` and as test oracles.

use crate::LinalgError;
use faer::Mat;

/// A dense n×n lower-triangular matrix. Memory O(n²).
#[derive(Debug, Clone)]
pub struct DenseLower {
    m: Mat<f64>,
}

impl DenseLower {
    /// Wraps a square matrix, checking that it is lower-triangular and finite.
    pub fn new(m: Mat<f64>) -> Result<Self, LinalgError> {
        if m.nrows() != m.ncols() || m.nrows() == 0 {
            return Err(LinalgError::invalid(
                "matrix",
                format!(
                    "must be square and non-empty, got {}×{}",
                    m.nrows(),
                    m.ncols()
                ),
            ));
        }
        for j in 0..m.ncols() {
            for i in 0..m.nrows() {
                let v = m[(i, j)];
                if !v.is_finite() {
                    return Err(LinalgError::invalid(
                        "matrix",
                        format!("entry ({i}, {j}) is {v}"),
                    ));
                }
                if i < j && v != 0.0 {
                    return Err(LinalgError::invalid(
                        "matrix",
                        format!("must be lower-triangular, entry ({i}, {j}) = {v}"),
                    ));
                }
            }
        }
        Ok(Self { m })
    }

    /// Size n.
    pub fn n(&self) -> usize {
        self.m.nrows()
    }

    /// The matrix.
    pub fn as_mat(&self) -> &Mat<f64> {
        &self.m
    }

    /// `M·x`. O(n²).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        let n = self.n();
        assert_eq!(x.len(), n);
        let mut y = vec![0.0; n];
        for j in 0..n {
            let xj = x[j];
            let col = self.m.col(j);
            for i in j..n {
                y[i] += col[i] * xj;
            }
        }
        y
    }

    /// `Mᵀ·x`. O(n²).
    pub fn apply_transpose(&self, x: &[f64]) -> Vec<f64> {
        let n = self.n();
        assert_eq!(x.len(), n);
        (0..n)
            .map(|j| {
                let col = self.m.col(j);
                (j..n).map(|i| col[i] * x[i]).sum()
            })
            .collect()
    }

    /// `M⁻¹·y` by forward substitution. O(n²). Errors on a zero diagonal.
    pub fn solve(&self, y: &[f64]) -> Result<Vec<f64>, LinalgError> {
        let n = self.n();
        assert_eq!(y.len(), n);
        let mut x = y.to_vec();
        for j in 0..n {
            let d = self.m[(j, j)];
            if d == 0.0 {
                return Err(LinalgError::invalid(
                    "matrix",
                    format!("diagonal entry {j} is zero"),
                ));
            }
            x[j] /= d;
            let xj = x[j];
            let col = self.m.col(j);
            for i in j + 1..n {
                x[i] -= col[i] * xj;
            }
        }
        Ok(x)
    }

    /// The principal square root `X` (`X² = M`, positive diagonal) of a lower-triangular `M` with
    /// positive diagonal, by the triangular Schur recurrence
    /// `X_ii = √M_ii`, `X_ij = (M_ij − Σ_{k=j+1}^{i−1} X_ik X_kj) / (X_ii + X_jj)`. O(n³/6) time, O(n²) memory.
    pub fn sqrt(&self) -> Result<Self, LinalgError> {
        let n = self.n();
        for i in 0..n {
            if self.m[(i, i)] <= 0.0 {
                return Err(LinalgError::invalid(
                    "matrix",
                    format!(
                        "diagonal entry {i} = {} must be > 0 for a real square root",
                        self.m[(i, i)]
                    ),
                ));
            }
        }
        // Row-major X (rows[i][j], j ≤ i) and column-major copy (cols[j][k − j]) keep the inner
        // product Σ_k X_ik X_kj contiguous in memory.
        let mut rows: Vec<Vec<f64>> = (0..n).map(|i| vec![0.0; i + 1]).collect();
        let mut cols: Vec<Vec<f64>> = (0..n).map(|j| vec![0.0; n - j]).collect();
        for i in 0..n {
            let xii = self.m[(i, i)].sqrt();
            rows[i][i] = xii;
            cols[i][0] = xii;
            for j in (0..i).rev() {
                let xjj = rows[j][j];
                let s: f64 = rows[i][j + 1..i]
                    .iter()
                    .zip(&cols[j][1..i - j])
                    .map(|(a, b)| a * b)
                    .sum();
                let v = (self.m[(i, j)] - s) / (xii + xjj);
                rows[i][j] = v;
                cols[j][i - j] = v;
            }
        }
        let m = Mat::from_fn(n, n, |i, j| if j <= i { rows[i][j] } else { 0.0 });
        Ok(Self { m })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(m: &Mat<f64>) {
        let d = DenseLower::new(m.clone()).unwrap();
        let x = d.sqrt().unwrap();
        let sq = x.as_mat() * x.as_mat();
        let n = m.nrows();
        for i in 0..n {
            for j in 0..n {
                assert!((sq[(i, j)] - m[(i, j)]).abs() < 1e-10, "({i},{j})");
            }
        }
        let y: Vec<f64> = (0..n).map(|i| i as f64 - 2.0).collect();
        let back = d.apply(&d.solve(&y).unwrap());
        for (a, b) in back.iter().zip(&y) {
            assert!((a - b).abs() < 1e-9);
        }
    }

    #[test]
    fn schur_sqrt_squares_back() {
        check(&Mat::from_fn(30, 30, |i, j| {
            if j <= i {
                1.0 + 0.1 * (i as f64) - 0.05 * j as f64
            } else {
                0.0
            }
        }));
        check(&Mat::from_fn(1, 1, |_, _| 4.0));
    }

    #[test]
    fn rejects_upper_entries_and_bad_diagonal() {
        assert!(DenseLower::new(Mat::from_fn(2, 2, |_, _| 1.0)).is_err());
        let z = DenseLower::new(Mat::from_fn(
            2,
            2,
            |i, j| if i == 1 && j == 0 { 1.0 } else { 0.0 },
        ))
        .unwrap();
        assert!(z.sqrt().is_err());
        assert!(z.solve(&[1.0, 1.0]).is_err());
    }
}
