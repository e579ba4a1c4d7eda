//! Optimized strategies (MATH.md §5b): minimize `L = sens(C)²·agg_t ‖B[t, :]‖²`, `B = W_opt·C⁻¹`,
//! over a structured family of C, with exact adjoint gradients and [`lbfgs`].
//!
//! - [`bandmf`]: column-normalized banded C (BandMF), n·p parameters, `sens = √k` exactly.
//! - [`bandinv`]: banded `C⁻¹ = Toep(d)` (BandInvMF), p − 1 parameters (`d_0 = 1`: L is
//!   scale-invariant), sensitivity by the checked BSR closed form.
//! - [`blt`]: buffered linear Toeplitz C (θ, ω of d buffers), BFGS over an exact adjoint
//!   ([`blt_bfgs`]).
//! - [`dense`]: the optimal dense C for single participation, mean-se (Denisov dual fixed point).
//!
//! Both minimize `log L` (scale-free, so one step size fits every problem). `max-se` is
//! non-smooth; it is approached through the smooth power mean `M_q(r) = (mean_t r_t^q)^{1/q}`
//! (`M_q ≤ max`, `M_q → max` as q → ∞) with continuation over q, and the iterate with the best
//! *true* maximum seen is kept. Whatever the optimizer does, the method returns the candidate —
//! optimized or warm start — with the lowest objective as the release computes it
//! ([`release_value`]), so an optimized method is never worse than its warm starts.

pub(crate) mod bandinv;
pub(crate) mod bandmf;
pub mod blt;
mod blt_bfgs;
pub mod dense;
mod lbfgs;

use crate::{FactorError, FactorSpec, Factorization, Factorizer, Method, Objective, metrics};
use lrmf_privacy::Participation;
use lrmf_workload::Workload;

/// The aggregate of one optimization stage: the mean, or the power mean with exponent q.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Agg {
    /// `mean_t r_t`.
    Mean,
    /// `(mean_t r_t^q)^{1/q}`.
    Power(f64),
}

impl Agg {
    /// `log agg(r)` and its gradient `ω_t = ∂ log agg / ∂r_t` (written into `omega`). O(n).
    pub(crate) fn log_and_weights(&self, r: &[f64], omega: &mut [f64]) -> f64 {
        match *self {
            Agg::Mean => {
                let sum: f64 = r.iter().sum();
                omega.iter_mut().for_each(|o| *o = 1.0 / sum);
                (sum / r.len() as f64).ln()
            }
            Agg::Power(q) => {
                // u_t = r_t / max r; log M_q = log max + (1/q) log mean u^q;
                // ∂ log M_q / ∂r_t = u_t^{q−1} / (max · Σ_s u_s^q).
                let rmax = r.iter().fold(0.0f64, |m, v| m.max(*v));
                let mut sum = 0.0;
                for (o, v) in omega.iter_mut().zip(r) {
                    let u = v / rmax;
                    let uq1 = u.powf(q - 1.0);
                    *o = uq1;
                    sum += uq1 * u;
                }
                omega.iter_mut().for_each(|o| *o /= rmax * sum);
                rmax.ln() + (sum / r.len() as f64).ln() / q
            }
        }
    }
}

/// `log agg(r)` of the objective itself (mean or true max). O(n).
pub(crate) fn true_log_agg(objective: Objective, r: &[f64]) -> f64 {
    match objective {
        Objective::MeanSe => (r.iter().sum::<f64>() / r.len() as f64).ln(),
        Objective::MaxSe => r.iter().fold(0.0f64, |m, v| m.max(*v)).ln(),
    }
}

/// The stages of one optimization: the mean, or a power mean with growing exponent.
fn stages(objective: Objective) -> Vec<Agg> {
    match objective {
        Objective::MeanSe => vec![Agg::Mean],
        Objective::MaxSe => [16.0, 128.0, 1024.0, 8192.0]
            .into_iter()
            .map(Agg::Power)
            .collect(),
    }
}

/// `Σ a_i b_i` with four independent partial sums (fixed order, so deterministic), which lets
/// the compiler vectorize the reduction. O(len).
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for q in 0..4 {
            acc[q] += x[q] * y[q];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// One evaluation of a family's objective at a parameter vector.
pub(crate) struct Eval {
    /// `log L` with the stage's aggregate (+∞ outside the domain).
    pub surrogate: f64,
    /// `log L` with the objective's own aggregate.
    pub exact: f64,
}

/// What [`run`] found.
pub(crate) struct Found {
    /// The parameters with the best exact objective seen.
    pub x: Vec<f64>,
    /// Iterations over all stages.
    pub iterations: usize,
    /// Whether the last stage met its stopping rule.
    pub converged: bool,
}

/// Runs the stages of `objective` from `x0`; `eval(x, grad, agg)` writes `∇ surrogate` into
/// `grad`. Deterministic: no randomness, fixed stage schedule.
pub(crate) fn run<F>(objective: Objective, x0: Vec<f64>, max_iter: usize, mut eval: F) -> Found
where
    F: FnMut(&[f64], &mut [f64], Agg) -> Eval,
{
    let stages = stages(objective);
    let per_stage = (max_iter / stages.len()).max(1);
    let mut best = (f64::INFINITY, x0.clone());
    let mut x = x0;
    let (mut iterations, mut converged) = (0, false);
    for agg in stages {
        let settings = lbfgs::Settings {
            max_iter: per_stage,
            memory: 10,
            f_tol: 1e-9,
            g_tol: 1e-9,
        };
        let out = lbfgs::minimize(
            |x, g| {
                let e = eval(x, g, agg);
                if e.exact < best.0 {
                    best = (e.exact, x.to_vec());
                }
                e.surrogate
            },
            x,
            &settings,
        );
        iterations += out.iterations;
        converged = out.converged;
        x = out.x;
    }
    Found {
        x: best.1,
        iterations,
        converged,
    }
}

/// The objective as the release computes it: `sens(C)²·agg_t ‖B[t, :]‖²` with the
/// [`lrmf_privacy::sensitivity`] of C (checked regime, rounded up) and B's row norms on `w`, i.e.
/// MeanSE² or MaxSE² of [`metrics::errors`].
pub(crate) fn release_value(
    w: &Workload,
    f: &Factorization,
    p: Participation,
    objective: Objective,
) -> Result<f64, FactorError> {
    let e = metrics::errors(w, f, p)?;
    Ok(match objective {
        Objective::MeanSe => e.mean_se * e.mean_se,
        Objective::MaxSe => e.max_se * e.max_se,
    })
}

/// The index of the candidate with the smallest [`release_value`] on `w` (the first among
/// equals), and that value. Candidates whose evaluation fails are skipped; an error only when all
/// fail.
pub(crate) fn best_of(
    w: &Workload,
    candidates: &[Factorization],
    p: Participation,
    objective: Objective,
) -> Result<(usize, f64), FactorError> {
    let mut best: Option<(usize, f64)> = None;
    let mut last_err = None;
    for (i, f) in candidates.iter().enumerate() {
        match release_value(w, f, p, objective) {
            Ok(v) if best.is_none_or(|(_, b)| v < b) => best = Some((i, v)),
            Ok(_) => {}
            Err(e) => last_err = Some(e),
        }
    }
    best.ok_or_else(|| {
        last_err.unwrap_or_else(|| {
            crate::error::invalid(crate::error::Field::Method, "no candidate strategy")
        })
    })
}

/// The warm starts of an optimized method: the closed forms `methods` at the same band (built
/// for the true `w`, as those methods always are) and, for an lr- method, the result of its plain
/// form — so that `lr-X` is never worse than `X` on the true workload.
pub(crate) fn warm_starts<const N: usize>(
    spec: &FactorSpec,
    w: &Workload,
    part: Participation,
    methods: [Method; N],
) -> Result<Vec<Factorization>, FactorError> {
    let mut out = Vec::with_capacity(N + 1);
    for method in methods {
        out.push(FactorSpec { method, ..*spec }.factorize(w, part)?);
    }
    if spec.method.is_lr_aware() {
        let plain = FactorSpec {
            method: spec.method.plain(),
            ..*spec
        };
        out.push(plain.factorize(w, part)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(agg: Agg, r: &[f64]) {
        // ω = ∇ log agg against central differences.
        let mut omega = vec![0.0; r.len()];
        agg.log_and_weights(r, &mut omega);
        for t in 0..r.len() {
            let h = 1e-6 * r[t];
            let (mut up, mut dn) = (r.to_vec(), r.to_vec());
            up[t] += h;
            dn[t] -= h;
            let mut scratch = vec![0.0; r.len()];
            let fd = (agg.log_and_weights(&up, &mut scratch)
                - agg.log_and_weights(&dn, &mut scratch))
                / (2.0 * h);
            assert!(
                (fd - omega[t]).abs() <= 1e-6 * omega[t].abs().max(1e-3),
                "{agg:?} t = {t}: {fd} vs {}",
                omega[t]
            );
        }
    }

    #[test]
    fn aggregate_gradients_match_finite_differences_and_power_means_approach_the_max() {
        let r: Vec<f64> = (0..9).map(|t| 1.0 + (t as f64 * 0.7).sin().abs()).collect();
        check(Agg::Mean, &r);
        check(Agg::Power(4.0), &r);
        check(Agg::Power(64.0), &r);
        let max = true_log_agg(Objective::MaxSe, &r);
        let mut w = vec![0.0; r.len()];
        let mut prev = f64::NEG_INFINITY;
        for q in [2.0, 16.0, 256.0, 4096.0] {
            let v = Agg::Power(q).log_and_weights(&r, &mut w);
            assert!(v <= max + 1e-15 && v >= prev);
            prev = v;
        }
        assert!(max - prev < 1e-3);
    }
}
