//! BandInvMF (Kalinin et al. arXiv 2505.12128): banded `C⁻¹ = Toep(d)`, d of length p with
//! `d_0 = 1` (L is scale-invariant), so p − 1 parameters; `C = Toep(c)`, `c = d⁻¹` (the series
//! inverse, dense).
//!
//! # Sensitivity: the value the release uses
//! `c` is computed by exactly the call the release makes (`series::inverse`, recurrence), and for
//! k > 1 the objective is defined only inside the BSR closed form's checked regime
//! ([`closed_form_toeplitz`]: c ≥ 0, non-increasing on all n coefficients): outside it the
//! objective is +∞ and the line search backtracks, so every accepted iterate has the release's
//! closed-form sensitivity `sens² = ‖v‖²`, `v = Σ_{i<k} shift_{ib}(c)`. For k = 1, `sens² = ‖c‖²`
//! for any d.
//!
//! # Gradients (adjoints)
//! - Sensitivity: `∂sens²/∂c_t = 2 Σ_{i<k} v_{t+ib}`; through `Toep(d)·c = e_0`:
//!   `∂/∂d_j = −Σ_{u≥j} c_{u−j} ĝ_u` with `ĝ = Toep(d)⁻ᵀ·(∂/∂c)` (banded back substitution).
//!   O(n·p + n·k).
//! - Rows, geometric schedule χ_t = α^t: `B[t, j] = α^j s_{t−j}` with `m = d * (μ^k)`,
//!   `s_i = λ s_{i−1} + α^i m_i`, so `‖B[t, :]‖² = r_t = α² r_{t−1} + s_t²` and
//!   `Σ_t ω_t r_t = Σ_i κ_i s_i²`, `κ_i = ω_i + α² κ_{i+1}`; the adjoint runs the three first-order
//!   recurrences backwards. O(n).
//! - Rows, any other schedule: column j of B is `B[t, j] = λ B[t−1, j] + χ_t m_{t−j}`; with
//!   μ = 0, m has p terms and column j only decays by λ after row j + p − 1, whose tail enters
//!   r and the adjoint through the suffix sums `K_e = Σ_{t>e} ω_t λ^{2(t−e)}`. O(n·p) for
//!   μ = 0, O(n²) otherwise; O(n) memory.
//!
//! Per evaluation: O(n·p + n·k) on geometric schedules (and any μ = 0 schedule), O(n²) for a
//! non-geometric schedule with momentum.

use super::{Agg, Eval, best_of, run, true_log_agg, warm_starts};
use crate::{FactorError, FactorSpec, Factorization, Method, Objective, OptimizeInfo};
use lrmf_linalg::series::{self, Algorithm};
use lrmf_linalg::{LowerTriangular, ToeplitzLower};
use lrmf_privacy::Participation;
use lrmf_privacy::sensitivity::closed_form_toeplitz;
use lrmf_workload::Workload;
use std::time::Instant;

/// Iteration limit over all stages.
const MAX_ITER: usize = 600;

/// `log sens²` of `Toep(d)⁻¹` (None outside the checked regime when k > 1); adds
/// `∂ log sens² / ∂d` to `grad`. O(n·p + n·k).
pub(crate) fn log_sens2(d: &[f64], n: usize, b: usize, k: usize, grad: &mut [f64]) -> Option<f64> {
    let c = series::inverse(d, n, Algorithm::Recurrence).ok()?;
    let mut gc = vec![0.0; n];
    let s2 = if k == 1 {
        gc.iter_mut().zip(&c).for_each(|(g, v)| *g = 2.0 * v);
        c.iter().map(|v| v * v).sum::<f64>()
    } else {
        closed_form_toeplitz(&c, b, k)?;
        let mut v = vec![0.0; n];
        for i in (0..k).map(|i| i * b).take_while(|s| *s < n) {
            v[i..].iter_mut().zip(&c).for_each(|(o, ci)| *o += ci);
        }
        for i in (0..k).map(|i| i * b).take_while(|s| *s < n) {
            gc[..n - i]
                .iter_mut()
                .zip(&v[i..])
                .for_each(|(g, vi)| *g += 2.0 * vi);
        }
        v.iter().map(|x| x * x).sum::<f64>()
    };
    if !(s2 > 0.0 && s2.is_finite()) {
        return None;
    }
    // ĝ = Toep(d)⁻ᵀ gc: ĝ_u = (gc_u − Σ_{i=1}^{p−1} d_i ĝ_{u+i}) / d_0.
    let p = d.len().min(n);
    let mut gh = gc;
    for u in (0..n).rev() {
        let s: f64 = (1..p.min(n - u)).map(|i| d[i] * gh[u + i]).sum();
        gh[u] = (gh[u] - s) / d[0];
    }
    for (j, g) in grad.iter_mut().enumerate().take(p) {
        let s: f64 = c.iter().zip(&gh[j..]).map(|(a, b)| a * b).sum();
        *g -= s / s2;
    }
    Some(s2.ln())
}

/// `m = d * (μ^k)`, first `len` terms.
fn momentum_filter(d: &[f64], mu: f64, len: usize) -> Vec<f64> {
    let mut m = vec![0.0; len];
    let mut prev = 0.0;
    for (i, mi) in m.iter_mut().enumerate() {
        prev = mu * prev + d.get(i).copied().unwrap_or(0.0);
        *mi = prev;
    }
    m
}

/// `∂/∂d_k = Σ_{t≥k} μ^{t−k} ḡm_t` for k < p, added to `grad`.
fn momentum_adjoint(gm: &[f64], mu: f64, grad: &mut [f64]) {
    let mut tau = 0.0;
    for t in (0..gm.len()).rev() {
        tau = gm[t] + mu * tau;
        if t < grad.len() {
            grad[t] += tau;
        }
    }
}

/// Row norms² r of `B = W·Toep(d)` for χ_t = α^t, and (given ω) the adjoint. O(n).
fn geometric_rows(w: &Workload, alpha: f64, d: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = w.n();
    let m = momentum_filter(d, w.momentum(), n);
    let (lambda, a2) = (w.weight_decay(), alpha * alpha);
    let (mut s, mut r) = (vec![0.0; n], vec![0.0; n]);
    let (mut prev_s, mut prev_r, mut ak) = (0.0, 0.0, 1.0);
    for i in 0..n {
        prev_s = lambda * prev_s + ak * m[i];
        prev_r = a2 * prev_r + prev_s * prev_s;
        s[i] = prev_s;
        r[i] = prev_r;
        ak *= alpha;
    }
    (r, s)
}

fn geometric_adjoint(w: &Workload, alpha: f64, s: &[f64], omega: &[f64], grad: &mut [f64]) {
    let n = w.n();
    let (lambda, a2) = (w.weight_decay(), alpha * alpha);
    // κ_i = ω_i + α² κ_{i+1};  ḡs_i = 2 s_i κ_i;  σ_i = ḡs_i + λ σ_{i+1};  ḡm_i = α^i σ_i.
    let powers: Vec<f64> = std::iter::successors(Some(1.0f64), |a| Some(a * alpha))
        .take(n)
        .collect();
    let mut gm = vec![0.0; n];
    let (mut kappa, mut sigma) = (0.0, 0.0);
    for i in (0..n).rev() {
        kappa = omega[i] + a2 * kappa;
        sigma = 2.0 * s[i] * kappa + lambda * sigma;
        gm[i] = powers[i] * sigma;
    }
    momentum_adjoint(&gm, w.momentum(), grad);
}

/// Column j of `B = Toep(λ^k)·diag(χ)·Toep(m)` on rows j..j+len (len = m's support, cut at n).
fn column(chi: &[f64], lambda: f64, m: &[f64], j: usize, out: &mut Vec<f64>) {
    let e = (j + m.len()).min(chi.len());
    out.clear();
    let mut prev = 0.0;
    for t in j..e {
        prev = lambda * prev + chi[t] * m[t - j];
        out.push(prev);
    }
}

/// Row norms² r of `B = W·Toep(d)` column by column (any schedule). O(n·len(m)).
fn column_rows(w: &Workload, m: &[f64]) -> Vec<f64> {
    let (n, lambda) = (w.n(), w.weight_decay());
    let l2 = lambda * lambda;
    let (mut r, mut tail) = (vec![0.0; n], vec![0.0; n]);
    let mut col = Vec::with_capacity(m.len());
    for j in 0..n {
        column(w.chi(), lambda, m, j, &mut col);
        for (rt, v) in r[j..].iter_mut().zip(&col) {
            *rt += v * v;
        }
        let e = j + col.len() - 1;
        tail[e] += col[col.len() - 1].powi(2);
    }
    // T_t = Σ_{e<t} λ^{2(t−e)} B[e, j_e]²: the decayed tails of the completed columns.
    let mut acc = 0.0;
    for t in 0..n {
        if t > 0 {
            acc = l2 * (acc + tail[t - 1]);
        }
        r[t] += acc;
    }
    r
}

/// The adjoint of [`column_rows`]: `∂ Σ_t ω_t r_t / ∂m` (length of m). O(n·len(m)).
fn column_adjoint(w: &Workload, m: &[f64], omega: &[f64]) -> Vec<f64> {
    let (n, lambda, chi) = (w.n(), w.weight_decay(), w.chi());
    let l2 = lambda * lambda;
    // K_e = Σ_{t>e} ω_t λ^{2(t−e)} = λ²(ω_{e+1} + K_{e+1}).
    let mut big_k = vec![0.0; n];
    for e in (0..n.saturating_sub(1)).rev() {
        big_k[e] = l2 * (omega[e + 1] + big_k[e + 1]);
    }
    let mut gm = vec![0.0; m.len()];
    let mut col = Vec::with_capacity(m.len());
    for j in 0..n {
        column(chi, lambda, m, j, &mut col);
        // A_u = Σ_{t≥u} ω_t λ^{t−u} B[t, j]; ∂/∂m_{u−j} += 2 χ_u A_u.
        let e = j + col.len() - 1;
        let mut a = col[col.len() - 1] * (omega[e] + big_k[e]);
        gm[e - j] += 2.0 * chi[e] * a;
        for u in (j..e).rev() {
            a = omega[u] * col[u - j] + lambda * a;
            gm[u - j] += 2.0 * chi[u] * a;
        }
    }
    gm
}

/// `log L` of `C⁻¹ = Toep([1, x])` on `w` and its gradient in x. See the module doc.
pub(crate) fn eval(
    w: &Workload,
    b: usize,
    k: usize,
    objective: Objective,
    x: &[f64],
    grad: &mut [f64],
    agg: Agg,
) -> Eval {
    let n = w.n();
    let mut d = Vec::with_capacity(x.len() + 1);
    d.push(1.0);
    d.extend_from_slice(x);
    let mut gd = vec![0.0; d.len()];
    let Some(log_s2) = log_sens2(&d, n, b, k, &mut gd) else {
        return Eval {
            surrogate: f64::INFINITY,
            exact: f64::INFINITY,
        };
    };
    let mut omega = vec![0.0; n];
    let (log_agg, exact) = if let Some(alpha) = w.geometric_rate() {
        let (r, s) = geometric_rows(w, alpha, &d);
        let log_agg = agg.log_and_weights(&r, &mut omega);
        geometric_adjoint(w, alpha, &s, &omega, &mut gd);
        (log_agg, true_log_agg(objective, &r))
    } else {
        let support = if w.momentum() == 0.0 { d.len() } else { n };
        let m = momentum_filter(&d, w.momentum(), support.min(n));
        let r = column_rows(w, &m);
        let log_agg = agg.log_and_weights(&r, &mut omega);
        momentum_adjoint(&column_adjoint(w, &m, &omega), w.momentum(), &mut gd);
        (log_agg, true_log_agg(objective, &r))
    };
    grad.copy_from_slice(&gd[1..]);
    Eval {
        surrogate: log_s2 + log_agg,
        exact: log_s2 + exact,
    }
}

/// BandInvMF for `spec` (`Bandinv` optimizes on `w.constant_rate()`, `LrBandinv` on `w`),
/// warm-started from the better in-domain of bisr and lr-bisr; the result is the best of the
/// optimum found and those warm starts on `spec`'s own workload.
pub(crate) fn factorize(
    spec: &FactorSpec,
    w: &Workload,
    part: Participation,
    p: usize,
) -> Result<Factorization, FactorError> {
    let start = Instant::now();
    let n = w.n();
    let part = Participation::new(n, Some(part.min_sep()), part.k())?;
    let (b, k) = (part.min_sep(), part.k());
    let w_opt = if spec.method == Method::LrBandinv {
        w.clone()
    } else {
        w.constant_rate()
    };
    let mut candidates = Vec::new();
    let mut starts = Vec::new();
    for f in warm_starts(spec, w, part, [Method::Bisr, Method::LrBisr])? {
        let mut d = f.c.inverse_toeplitz_coeffs(p).unwrap_or_else(|| vec![1.0]);
        let d0 = d[0];
        d.iter_mut().for_each(|v| *v /= d0);
        d.resize(p, 0.0);
        let x = d[1..].to_vec();
        let mut g = vec![0.0; x.len()];
        let e = eval(&w_opt, b, k, spec.objective, &x, &mut g, Agg::Mean);
        starts.push((e.exact, x));
        candidates.push(inverse_toeplitz(spec, n, d)?);
    }
    let x0 = starts
        .into_iter()
        .filter(|(v, _)| v.is_finite())
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, x)| x);
    let (mut iterations, mut converged) = (0, false);
    if let Some(x0) = x0 {
        let found = run(spec.objective, x0, MAX_ITER, |x, g, agg| {
            eval(&w_opt, b, k, spec.objective, x, g, agg)
        });
        (iterations, converged) = (found.iterations, found.converged);
        let mut d = vec![1.0];
        d.extend(found.x);
        candidates.push(inverse_toeplitz(spec, n, d)?);
    }
    let (i, value) = best_of(&w_opt, &candidates, part, spec.objective)?;
    let mut f = candidates.swap_remove(i);
    f.info = Some(OptimizeInfo {
        objective: spec.objective,
        value,
        iterations,
        converged,
        millis: start.elapsed().as_secs_f64() * 1e3,
    });
    Ok(f)
}

fn inverse_toeplitz(
    spec: &FactorSpec,
    n: usize,
    d: Vec<f64>,
) -> Result<Factorization, FactorError> {
    Ok(Factorization {
        name: spec.method.name().to_string(),
        band: spec.band,
        c: LowerTriangular::InverseToeplitz(ToeplitzLower::new(n, d)?),
        info: None,
        buffers: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::release_value;
    use lrmf_schedule::{Kind, LrSchedule, Schedule};

    /// ∇ surrogate against central differences, and `exact` against the release's value.
    fn check(w: &Workload, b: usize, k: usize, x: &[f64], agg: Agg) {
        let mut g = vec![0.0; x.len()];
        let e = eval(w, b, k, Objective::MaxSe, x, &mut g, agg);
        assert!(e.surrogate.is_finite(), "{x:?} outside the domain");
        let mut scratch = vec![0.0; x.len()];
        for i in 0..x.len() {
            let h = 1e-6;
            let (mut up, mut dn) = (x.to_vec(), x.to_vec());
            up[i] += h;
            dn[i] -= h;
            let fd = (eval(w, b, k, Objective::MaxSe, &up, &mut scratch, agg).surrogate
                - eval(w, b, k, Objective::MaxSe, &dn, &mut scratch, agg).surrogate)
                / (2.0 * h);
            assert!(
                (fd - g[i]).abs() <= 1e-6 * (1.0 + g[i].abs()),
                "{agg:?} k = {k} coefficient {i}: adjoint {} vs finite difference {fd}",
                g[i]
            );
        }
        let mut d = vec![1.0];
        d.extend_from_slice(x);
        let n = w.n();
        let f = Factorization {
            name: "bandinv".into(),
            band: Some(d.len()),
            c: LowerTriangular::InverseToeplitz(ToeplitzLower::new(n, d).unwrap()),
            info: None,
            buffers: None,
        };
        let part = Participation::new(n, Some(b), k).unwrap();
        let release = release_value(w, &f, part, Objective::MaxSe).unwrap();
        // The release rounds the sensitivity up by 1 + 2(n + k + 2)u.
        let rel = release / e.exact.exp() - 1.0;
        assert!(
            (0.0..1e-12).contains(&rel),
            "release {release} vs objective {}",
            e.exact.exp()
        );
    }

    fn workload(kind: Kind, n: usize, mu: f64, lambda: f64) -> Workload {
        let s = LrSchedule::new(kind, n, 0.2, 0).unwrap();
        Workload::from_schedule(&s, mu, lambda).unwrap()
    }

    #[test]
    fn adjoint_gradients_match_finite_differences_on_every_path() {
        let x: Vec<f64> = series::r_tilde(5)[1..].to_vec();
        let wiggled: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1.0 + 0.1 * i as f64))
            .collect();
        let n = 23;
        for w in [
            workload(Kind::Exponential, n, 0.4, 0.97),
            workload(Kind::Cosine, n, 0.0, 0.9),
            workload(Kind::Cosine, n, 0.5, 0.95),
            workload(Kind::Constant, n, 0.0, 1.0),
        ] {
            for agg in [Agg::Mean, Agg::Power(8.0)] {
                check(&w, 1, 1, &wiggled, agg);
                check(&w, 6, 3, &x, agg);
                check(&w, 6, 3, &wiggled, agg);
            }
        }
    }

    #[test]
    fn the_geometric_and_column_paths_agree() {
        let n = 31;
        let s = LrSchedule::new(Kind::Exponential, n, 0.3, 0).unwrap();
        for mu in [0.0, 0.6] {
            let geo = Workload::from_schedule(&s, mu, 0.98).unwrap();
            let generic = Workload::new(s.rates(), mu, 0.98).unwrap();
            let x = &series::r_tilde(4)[1..];
            let (mut g1, mut g2) = (vec![0.0; 3], vec![0.0; 3]);
            let a = eval(&geo, 8, 3, Objective::MeanSe, x, &mut g1, Agg::Mean);
            let b = eval(&generic, 8, 3, Objective::MeanSe, x, &mut g2, Agg::Mean);
            assert!(a.exact.is_finite());
            assert!(
                (a.exact - b.exact).abs() < 1e-12,
                "μ = {mu}: {} vs {}",
                a.exact,
                b.exact
            );
            for (u, v) in g1.iter().zip(&g2) {
                assert!((u - v).abs() < 1e-10 * (1.0 + u.abs()));
            }
        }
    }

    #[test]
    fn outside_the_regime_is_outside_the_domain() {
        let w = workload(Kind::Constant, 20, 0.0, 1.0);
        // d = (1, 0.5): c alternates in sign, so the closed form's precondition fails.
        let mut g = vec![0.0];
        assert!(
            eval(&w, 5, 3, Objective::MeanSe, &[0.5], &mut g, Agg::Mean)
                .surrogate
                .is_infinite()
        );
        // Single participation needs no regime.
        assert!(
            eval(&w, 1, 1, Objective::MeanSe, &[0.5], &mut g, Agg::Mean)
                .surrogate
                .is_finite()
        );
    }
}
