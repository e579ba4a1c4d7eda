//! The training workload W as a structured operator (MATH.md §1).
//!
//! ```
//! use lrmf_workload::Workload;
//!
//! // Constant rate, momentum μ = 0.5, no weight decay: W[t, j] = Σ_{m=j}^{t} 0.5^{m−j}.
//! let w = Workload::new(vec![1.0; 8], 0.5, 1.0)?;
//! assert_eq!(w.entry(2, 0), 1.0 + 0.5 + 0.25);
//! assert_eq!(w.toeplitz_series(3), vec![1.0, 1.5, 1.75]);
//! # Ok::<(), lrmf_workload::WorkloadError>(())
//! ```
//!
//! SGD with schedule χ, heavy-ball momentum μ (`m_t = μ m_{t−1} + g_t`) and multiplicative weight
//! decay λ (`θ_t = λ θ_{t−1} − η χ_t m_t`) gives `θ_t − λ^t θ_0 = −η (W G)_t` with
//!
//! ```text
//! W[t, j] = Σ_{m=j}^{t} λ^{t−m} · χ_m · μ^{m−j}      (j ≤ t, else 0)
//! ```
//!
//! i.e. `W = Toep(λ^k) · diag(χ) · Toep(μ^k)`. Products with W cost O(n) through two first-order
//! recurrences; no n×n matrix is formed unless a test asks for [`Workload::to_dense`].
//! With χ ≡ 1, W = Toep(a) with `a_k = Σ_{j=0}^{k} λ^{k−j} μ^j` ([`Workload::toeplitz_series`]).

use lrmf_linalg::{LinearOperator, Mat};
use lrmf_schedule::{LrSchedule, Schedule};
use thiserror::Error;

/// Invalid workload parameters, naming the flag and the allowed range.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum WorkloadError {
    /// A parameter is out of range.
    #[error("invalid --{flag}: {message}")]
    Invalid {
        /// The CLI flag.
        flag: &'static str,
        /// What is allowed.
        message: String,
    },
}

/// Checks the rates χ: every one finite and > 0 (the one place this rule lives; the optimizer
/// of `lrmf-train` calls it too).
pub fn check_rates(chi: &[f64]) -> Result<(), WorkloadError> {
    match chi.iter().position(|c| !(c.is_finite() && *c > 0.0)) {
        Some(t) => Err(WorkloadError::Invalid {
            flag: "schedule",
            message: format!(
                "rate at step {t} is {}; rates must be finite and > 0",
                chi[t]
            ),
        }),
        None => Ok(()),
    }
}

/// Checks the heavy-ball momentum: μ ∈ [0, 1) (the one place this rule lives).
pub fn check_momentum(momentum: f64) -> Result<(), WorkloadError> {
    if momentum.is_finite() && (0.0..1.0).contains(&momentum) {
        Ok(())
    } else {
        Err(WorkloadError::Invalid {
            flag: "momentum",
            message: format!("{momentum} is outside [0, 1)"),
        })
    }
}

/// Checks the multiplicative weight decay of `θ ← λθ − ηχm`: λ ∈ (0, 1], 1 = no decay (the one
/// place this rule lives).
pub fn check_weight_decay(weight_decay: f64) -> Result<(), WorkloadError> {
    if weight_decay.is_finite() && weight_decay > 0.0 && weight_decay <= 1.0 {
        Ok(())
    } else {
        Err(WorkloadError::Invalid {
            flag: "weight-decay",
            message: format!("{weight_decay} is outside (0, 1] (λ of θ ← λθ − ηχm; 1 = no decay)"),
        })
    }
}

/// The workload `W = Toep(λ^k)·diag(χ)·Toep(μ^k)` of n steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    chi: Vec<f64>,
    momentum: f64,
    weight_decay: f64,
    geometric: Option<f64>,
}

impl Workload {
    /// Builds W from the rates χ (all finite, > 0), momentum μ ∈ [0, 1) and weight decay
    /// λ ∈ (0, 1].
    pub fn new(chi: Vec<f64>, momentum: f64, weight_decay: f64) -> Result<Self, WorkloadError> {
        if chi.is_empty() {
            return Err(WorkloadError::Invalid {
                flag: "n",
                message: "the number of steps must be ≥ 1".into(),
            });
        }
        check_rates(&chi)?;
        check_momentum(momentum)?;
        check_weight_decay(weight_decay)?;
        Ok(Self {
            chi,
            momentum,
            weight_decay,
            geometric: None,
        })
    }

    /// W for a schedule. When the schedule is exactly geometric (constant, or exponential
    /// without warm-up) W remembers its rate α, which enables the O(n log n) error paths.
    pub fn from_schedule(
        schedule: &LrSchedule,
        momentum: f64,
        weight_decay: f64,
    ) -> Result<Self, WorkloadError> {
        let mut w = Self::new(schedule.rates(), momentum, weight_decay)?;
        w.geometric = schedule.exact_geometric_rate();
        Ok(w)
    }

    /// The prefix-sum workload `A_1` (χ ≡ 1, μ = 0, λ = 1).
    pub fn prefix_sum(n: usize) -> Result<Self, WorkloadError> {
        let mut w = Self::new(vec![1.0; n], 0.0, 1.0)?;
        w.geometric = Some(1.0);
        Ok(w)
    }

    /// The constant-rate workload with the same n, momentum and weight decay (χ ≡ 1): what the
    /// schedule-blind ("plain") optimized methods optimize for (MATH.md §5b).
    pub fn constant_rate(&self) -> Self {
        Self {
            chi: vec![1.0; self.n()],
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            geometric: Some(1.0),
        }
    }

    /// Number of steps n.
    pub fn n(&self) -> usize {
        self.chi.len()
    }

    /// The rates χ.
    pub fn chi(&self) -> &[f64] {
        &self.chi
    }

    /// Momentum μ.
    pub fn momentum(&self) -> f64 {
        self.momentum
    }

    /// Weight decay λ.
    pub fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    /// α when χ_t = α^t for all t (known from the schedule, not guessed from floats).
    pub fn geometric_rate(&self) -> Option<f64> {
        self.geometric
    }

    /// The constant-rate Toeplitz series `a = geometric(λ) * geometric(μ)`, first `len` terms:
    /// `a_k = Σ_{j=0}^{k} λ^{k−j} μ^j`, the power series of 1/((1−λx)(1−μx)). O(len).
    pub fn toeplitz_series(&self, len: usize) -> Vec<f64> {
        // a_k = λ a_{k−1} + μ^k.
        let mut a = Vec::with_capacity(len);
        let (mut prev, mut mu_k) = (0.0, 1.0);
        for _ in 0..len {
            prev = self.weight_decay * prev + mu_k;
            a.push(prev);
            mu_k *= self.momentum;
        }
        a
    }

    /// Entry `W[t, j]`. O(t − j).
    pub fn entry(&self, t: usize, j: usize) -> f64 {
        if j > t {
            return 0.0;
        }
        (j..=t)
            .map(|m| {
                self.weight_decay.powi((t - m) as i32)
                    * self.chi[m]
                    * self.momentum.powi((m - j) as i32)
            })
            .sum()
    }

    /// `Toep(ρ^k)·x`, the recurrence `y_t = ρ y_{t−1} + x_t`. O(n).
    fn geometric_apply(rho: f64, x: &mut [f64]) {
        for t in 1..x.len() {
            x[t] += rho * x[t - 1];
        }
    }

    /// `Toep(ρ^k)ᵀ·x`, the recurrence `y_j = ρ y_{j+1} + x_j`. O(n).
    fn geometric_apply_transpose(rho: f64, x: &mut [f64]) {
        for j in (0..x.len().saturating_sub(1)).rev() {
            x[j] += rho * x[j + 1];
        }
    }
}

impl LinearOperator for Workload {
    fn nrows(&self) -> usize {
        self.n()
    }

    /// `W·x = Toep(λ^k)(χ ∘ Toep(μ^k) x)`. O(n).
    fn apply(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(x.len(), self.n());
        let mut y = x.to_vec();
        Self::geometric_apply(self.momentum, &mut y);
        for (v, c) in y.iter_mut().zip(&self.chi) {
            *v *= c;
        }
        Self::geometric_apply(self.weight_decay, &mut y);
        y
    }

    /// `Wᵀ·x = Toep(μ^k)ᵀ(χ ∘ Toep(λ^k)ᵀ x)`. O(n).
    fn apply_transpose(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(x.len(), self.n());
        let mut y = x.to_vec();
        Self::geometric_apply_transpose(self.weight_decay, &mut y);
        for (v, c) in y.iter_mut().zip(&self.chi) {
            *v *= c;
        }
        Self::geometric_apply_transpose(self.momentum, &mut y);
        y
    }

    /// The dense W, column by column from the recurrence `W[t, j] = λ W[t−1, j] + χ_t μ^{t−j}`.
    /// O(n²).
    fn to_dense(&self) -> Mat<f64> {
        let n = self.n();
        let mut m = Mat::zeros(n, n);
        for j in 0..n {
            let mut prev = 0.0;
            let mut mu_k = 1.0;
            for t in j..n {
                prev = self.weight_decay * prev + self.chi[t] * mu_k;
                m[(t, j)] = prev;
                mu_k *= self.momentum;
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrmf_schedule::Kind;
    use proptest::prelude::*;

    fn check(w: &Workload) {
        let n = w.n();
        let d = w.to_dense();
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 1.3).cos()).collect();
        let (ax, atx) = (w.apply(&x), w.apply_transpose(&x));
        for t in 0..n {
            for j in 0..n {
                assert!((d[(t, j)] - w.entry(t, j)).abs() < 1e-12);
            }
            let want: f64 = (0..n).map(|j| d[(t, j)] * x[j]).sum();
            assert!((ax[t] - want).abs() < 1e-10);
            let want_t: f64 = (0..n).map(|i| d[(i, t)] * x[i]).sum();
            assert!((atx[t] - want_t).abs() < 1e-10);
        }
        if w.chi().iter().all(|c| *c == 1.0) {
            let a = w.toeplitz_series(n);
            for t in 0..n {
                assert!((d[(t, 0)] - a[t]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn special_cases() {
        let w = Workload::prefix_sum(4).unwrap();
        let d = w.to_dense();
        assert_eq!(d[(3, 0)], 1.0);
        assert_eq!(d[(0, 3)], 0.0);
        check(&w);
        // A_χ = A_1 diag(χ): learning rates scale the columns.
        let w = Workload::new(vec![1.0, 0.5, 0.25], 0.0, 1.0).unwrap();
        assert_eq!(w.to_dense()[(2, 1)], 0.5);
        check(&w);
        check(&Workload::new(vec![1.0; 7], 0.9, 0.99).unwrap());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(Workload::new(vec![], 0.0, 1.0).is_err());
        assert!(Workload::new(vec![1.0], 1.0, 1.0).is_err());
        assert!(Workload::new(vec![1.0], -0.1, 1.0).is_err());
        assert!(Workload::new(vec![1.0], 0.0, 0.0).is_err());
        assert!(Workload::new(vec![1.0], 0.0, 1.01).is_err());
        assert!(Workload::new(vec![1.0, f64::NAN], 0.0, 1.0).is_err());
    }

    proptest! {
        #[test]
        fn operators_match_dense(n in 1usize..40, mu in 0.0f64..0.99, lambda in 0.5f64..=1.0, beta in 0.01f64..=1.0) {
            let s = LrSchedule::new(Kind::Cosine, n, beta, 0).unwrap();
            check(&Workload::from_schedule(&s, mu, lambda).unwrap());
        }
    }
}
