//! Buffered linear Toeplitz (BLT) matrices: `C = Toep(c)` with the rational generating function
//! `c(x) = 1 + Σ_i ω_i·x/(1 − θ_i x)` (Dvijotham et al. arXiv 2404.16706; MATH.md §5b), whose
//! products, solves and transposes run in O(n·d) through d scalar recursions ("buffers").

use crate::LinalgError;
use faer::Mat;

/// `C = Toep(c)` with `c_0 = 1` and `c_k = Σ_i ω_i·θ_i^{k−1}` for k ≥ 1, i.e. the generating
/// function `c(x) = 1 + Σ_i ω_i·x/(1 − θ_i x)`, with d = `theta.len()` buffers, θ_i ∈ (0, 1),
/// ω_i > 0.
///
/// `y = C·x` is the recursion `y_t = x_t + Σ_i ω_i s_{i,t}`, `s_{i,t+1} = θ_i s_{i,t} + x_t`
/// (`s_{i,0} = 0`), and `x = C⁻¹·y` runs it backwards: `x_t = y_t − Σ_i ω_i s_{i,t}`, then the same
/// state update with `x_t`. `C⁻¹` is again Toeplitz with a rational generating function
/// `1/c(x)` of degree d (its poles are the roots of `1 + Σ_i ω_i/(z − θ_i)`, all real and
/// interlaced with the θ_i); it is applied by the recursion, never by its poles.
///
/// Memory O(d); apply / solve / transpose O(n·d).
#[derive(Debug, Clone, PartialEq)]
pub struct BltMatrix {
    n: usize,
    theta: Vec<f64>,
    omega: Vec<f64>,
}

impl BltMatrix {
    /// The n×n BLT with decays `theta` (each in (0, 1)) and scales `omega` (each finite and
    /// > 0), of equal length d ≥ 1.
    pub fn new(n: usize, theta: Vec<f64>, omega: Vec<f64>) -> Result<Self, LinalgError> {
        if n == 0 {
            return Err(LinalgError::invalid("n", "the matrix size must be ≥ 1"));
        }
        if theta.is_empty() || theta.len() != omega.len() {
            return Err(LinalgError::invalid(
                "buffers",
                format!(
                    "need d ≥ 1 decays θ and as many scales ω, got {} and {}",
                    theta.len(),
                    omega.len()
                ),
            ));
        }
        if let Some(i) = theta.iter().position(|t| !(*t > 0.0 && *t < 1.0)) {
            return Err(LinalgError::invalid(
                "theta",
                format!("θ_{i} = {} is outside (0, 1)", theta[i]),
            ));
        }
        if let Some(i) = omega.iter().position(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(LinalgError::invalid(
                "omega",
                format!("ω_{i} = {} must be finite and > 0", omega[i]),
            ));
        }
        Ok(Self { n, theta, omega })
    }

    /// Size n.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The number of buffers d.
    pub fn buffers(&self) -> usize {
        self.theta.len()
    }

    /// The decays θ.
    pub fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// The scales ω.
    pub fn omega(&self) -> &[f64] {
        &self.omega
    }

    /// `c_0 … c_{len−1}`: `c_0 = 1`, `c_k = Σ_i ω_i θ_i^{k−1}`. O(len·d).
    ///
    /// Every power is a running product and every sum runs in the same order, so for θ ∈ (0, 1)
    /// and ω > 0 the computed `c_k` (k ≥ 1) are exactly non-increasing in floating point too.
    pub fn coeffs(&self, len: usize) -> Vec<f64> {
        Self::coeffs_of(&self.theta, &self.omega, len)
    }

    /// [`BltMatrix::coeffs`] for parameters not (yet) wrapped in a matrix, e.g. inside an
    /// optimizer. O(len·d).
    pub fn coeffs_of(theta: &[f64], omega: &[f64], len: usize) -> Vec<f64> {
        let mut c = Vec::with_capacity(len);
        if len == 0 {
            return c;
        }
        c.push(1.0);
        let mut pow = vec![1.0f64; theta.len()];
        for _ in 1..len {
            let mut v = 0.0;
            for ((p, w), t) in pow.iter_mut().zip(omega).zip(theta) {
                v += w * *p;
                *p *= t;
            }
            c.push(v);
        }
        c
    }

    /// `c_0 … c_{len−1}` of `C⁻¹ = Toep(1/c)`, by running [`BltMatrix::solve`]'s recursion on
    /// the unit impulse. O(len·d).
    pub fn inverse_coeffs(&self, len: usize) -> Vec<f64> {
        let mut e = vec![0.0; len];
        if len > 0 {
            e[0] = 1.0;
        }
        self.solve_prefix(&e)
    }

    /// `C·x`. O(n·d).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(x.len(), self.n, "apply: vector length must equal n");
        let mut s = vec![0.0f64; self.buffers()];
        x.iter()
            .map(|&xt| {
                let y = xt + dot(&self.omega, &s);
                self.advance(&mut s, xt);
                y
            })
            .collect()
    }

    /// `C⁻¹·y`. O(n·d).
    pub fn solve(&self, y: &[f64]) -> Vec<f64> {
        assert_eq!(y.len(), self.n, "solve: vector length must equal n");
        self.solve_prefix(y)
    }

    fn solve_prefix(&self, y: &[f64]) -> Vec<f64> {
        let mut s = vec![0.0f64; self.buffers()];
        y.iter()
            .map(|&yt| {
                let x = yt - dot(&self.omega, &s);
                self.advance(&mut s, x);
                x
            })
            .collect()
    }

    /// `Cᵀ·x`: `y_j = x_j + Σ_i ω_i r_{i,j}` with `r_{i,j} = Σ_{t>j} θ_i^{t−j−1} x_t`, run from the
    /// end (`r_{i,j} = x_{j+1} + θ_i r_{i,j+1}`). O(n·d).
    pub fn apply_transpose(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(
            x.len(),
            self.n,
            "apply_transpose: vector length must equal n"
        );
        let mut r = vec![0.0f64; self.buffers()];
        let mut y = vec![0.0; self.n];
        for j in (0..self.n).rev() {
            y[j] = x[j] + dot(&self.omega, &r);
            self.advance(&mut r, x[j]);
        }
        y
    }

    /// `C⁻ᵀ·y`: the transpose recursion run backwards. O(n·d).
    pub fn solve_transpose(&self, y: &[f64]) -> Vec<f64> {
        assert_eq!(
            y.len(),
            self.n,
            "solve_transpose: vector length must equal n"
        );
        let mut r = vec![0.0f64; self.buffers()];
        let mut x = vec![0.0; self.n];
        for j in (0..self.n).rev() {
            x[j] = y[j] - dot(&self.omega, &r);
            self.advance(&mut r, x[j]);
        }
        x
    }

    /// `s_i ← θ_i s_i + x` for every buffer.
    #[inline]
    fn advance(&self, s: &mut [f64], x: f64) {
        for (si, t) in s.iter_mut().zip(&self.theta) {
            *si = t * *si + x;
        }
    }

    /// The dense n×n matrix (O(n²) memory: tests and small n).
    pub fn to_dense(&self) -> Mat<f64> {
        let c = self.coeffs(self.n);
        Mat::from_fn(self.n, self.n, |t, j| if j <= t { c[t - j] } else { 0.0 })
    }
}

#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ToeplitzLower;

    fn check(b: &BltMatrix) {
        let n = b.n();
        let c = b.coeffs(n);
        let t = ToeplitzLower::new(n, c.clone()).unwrap();
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).cos() + 0.1).collect();
        let close = |a: &[f64], e: &[f64]| {
            for (u, v) in a.iter().zip(e) {
                assert!((u - v).abs() <= 1e-11 * (1.0 + v.abs()), "{u} vs {v}");
            }
        };
        close(&b.apply(&x), &t.apply(&x));
        close(&b.apply_transpose(&x), &t.apply_transpose(&x));
        close(&b.solve(&x), &t.solve(&x));
        close(&b.inverse_coeffs(n), &t.inverse_coeffs().unwrap());
        close(&b.apply_transpose(&b.solve_transpose(&x)), &x);
        // Explicit coefficient formula.
        for (k, ck) in c.iter().enumerate().skip(1) {
            let want: f64 = (0..b.buffers())
                .map(|i| b.omega()[i] * b.theta()[i].powi(k as i32 - 1))
                .sum();
            assert!((ck - want).abs() <= 1e-14);
        }
        assert!(c.windows(2).all(|w| w[1] <= w[0]) || b.omega().iter().sum::<f64>() > 1.0);
    }

    #[test]
    fn recursions_agree_with_the_toeplitz_form() {
        check(&BltMatrix::new(40, vec![0.9, 0.5], vec![0.3, 0.2]).unwrap());
        check(&BltMatrix::new(25, vec![0.99, 0.7, 0.2], vec![0.1, 0.3, 0.4]).unwrap());
        check(&BltMatrix::new(1, vec![0.5], vec![2.0]).unwrap());
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(BltMatrix::new(0, vec![0.5], vec![0.5]).is_err());
        assert!(BltMatrix::new(4, vec![], vec![]).is_err());
        assert!(BltMatrix::new(4, vec![0.5], vec![0.5, 0.1]).is_err());
        assert!(BltMatrix::new(4, vec![1.0], vec![0.5]).is_err());
        assert!(BltMatrix::new(4, vec![0.5], vec![0.0]).is_err());
        assert!(BltMatrix::new(4, vec![f64::NAN], vec![0.5]).is_err());
    }
}
