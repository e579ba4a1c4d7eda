//! BandMF (Choquette-Choo et al. arXiv 2306.08153; McKenna arXiv 2405.15913): a banded C with p
//! bands and unit-norm columns, one free parameter per band entry (n·p, as jax_privacy's
//! `ColumnNormalizedBanded`).
//!
//! With p ≤ b (or k = 1) columns of a b-separated set touch disjoint rows, so `sens = √k` exactly
//! for any signs ([`lrmf_privacy::sensitivity`]'s banded branch) and the objective is
//! `log L = log k + log agg_t ‖B[t, :]‖²`. Parameters θ (column-major like
//! [`BandedLower::cols`]); `C[:, j] = θ_j/‖θ_j‖`.
//!
//! Row t of `B = W·C⁻¹` is `b_t = C_{t+1}⁻ᵀ·W[t, 0..=t]` (leading block). With `v_t = C_{t+1}⁻¹ b_t`,
//! `∂‖b_t‖²/∂C[i, j] = −2·b_t[i]·v_t[j]`, so
//! `∂ Σ_t ω_t ‖b_t‖² / ∂C[i, j] = −2 Σ_{t≥i} ω_t b_t[i] v_t[j]` (the adjoint of the banded
//! substitutions), and the normalization adds `∂/∂θ_j = (G_j − ĉ_j (ĉ_jᵀG_j))/‖θ_j‖`.
//! Per evaluation: O(n²·p) time (three banded substitutions or updates of length ≤ t per row,
//! about 1.5·n²·p multiply-adds for mean-se, 2·n²·p for max-se), O(n·p) memory.

use super::{Agg, Eval, best_of, run, true_log_agg, warm_starts};
use crate::error::invalid;
use crate::metrics::next_workload_row;
use crate::{FactorError, FactorSpec, Factorization, Method, OptimizeInfo};
use lrmf_linalg::{BandedLower, LowerTriangular};
use lrmf_privacy::Participation;
use lrmf_workload::Workload;
use std::time::Instant;

/// Iteration limit over all stages.
const MAX_ITER: usize = 400;

/// The column-normalized banded C of `theta` (None when a column is zero: outside the family).
fn normalized(n: usize, p: usize, theta: &[f64]) -> Option<(BandedLower, Vec<f64>)> {
    let mut cols = theta.to_vec();
    let mut norms = Vec::with_capacity(n);
    for (j, col) in cols.chunks_exact_mut(p).enumerate() {
        // Entries below row n − 1 are not parameters.
        col[p.min(n - j)..].iter_mut().for_each(|v| *v = 0.0);
        let norm = col.iter().map(|v| v * v).sum::<f64>().sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return None;
        }
        col.iter_mut().for_each(|v| *v /= norm);
        norms.push(norm);
    }
    Some((BandedLower::new(n, p, cols).ok()?, norms))
}

/// `log L` and its gradient with respect to θ (see the module doc). O(n²·p).
pub(crate) fn eval(
    w: &Workload,
    k: usize,
    p: usize,
    objective: crate::Objective,
    theta: &[f64],
    grad: &mut [f64],
    agg: Agg,
) -> Eval {
    let n = w.n();
    let Some((c, norms)) = normalized(n, p, theta) else {
        return Eval {
            surrogate: f64::INFINITY,
            exact: f64::INFINITY,
        };
    };
    let rows = rows_reversed(&c);
    let (mut wrow, mut b, mut v) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut g = vec![0.0; n * p];
    let mut r = vec![0.0; n];
    let mean = matches!(agg, Agg::Mean);
    // Pass 1: r_t = ‖b_t‖² (and, for the mean, whose weights are all equal, the gradient).
    for t in 0..n {
        next_workload_row(w, t, &mut wrow);
        let bt = &mut b[..=t];
        bt.copy_from_slice(&wrow[..=t]);
        c.solve_transpose_prefix_in_place(bt);
        r[t] = bt.iter().map(|x| x * x).sum();
        if mean {
            accumulate(&rows, p, bt, &mut v[..=t], 1.0, &mut g);
        }
    }
    let mut omega = vec![0.0; n];
    let log_agg = agg.log_and_weights(&r, &mut omega);
    if mean {
        g.iter_mut().for_each(|x| *x *= omega[0]);
    } else {
        wrow.iter_mut().for_each(|x| *x = 0.0);
        for t in 0..n {
            next_workload_row(w, t, &mut wrow);
            let bt = &mut b[..=t];
            bt.copy_from_slice(&wrow[..=t]);
            c.solve_transpose_prefix_in_place(bt);
            accumulate(&rows, p, bt, &mut v[..=t], omega[t], &mut g);
        }
    }
    // Chain rule through the column normalization.
    for (j, norm) in norms.iter().enumerate() {
        let (cj, gc) = (&c.cols()[j * p..(j + 1) * p], &g[j * p..(j + 1) * p]);
        let proj: f64 = cj.iter().zip(gc).map(|(a, b)| a * b).sum();
        for ((o, a), b) in grad[j * p..(j + 1) * p].iter_mut().zip(cj).zip(gc) {
            *o = (b - a * proj) / norm;
        }
    }
    let log_k = (k as f64).ln();
    Eval {
        surrogate: log_k + log_agg,
        exact: log_k + true_log_agg(objective, &r),
    }
}

/// C's band by rows, each row reversed: `rows[t·p + p−1−i] = C[t, t−i]` (zero for i > t), so the
/// forward substitution reads both operands contiguously. O(n·p).
fn rows_reversed(c: &BandedLower) -> Vec<f64> {
    let (n, p) = (c.n(), c.band());
    let mut rows = vec![0.0; n * p];
    for t in 0..n {
        for i in 0..p.min(t + 1) {
            rows[t * p + p - 1 - i] = c.get(t, t - i);
        }
    }
    rows
}

/// `x ← C_m⁻¹·x` (leading block, m = `x.len()`) from [`rows_reversed`]. O(m·p).
fn forward_solve(rows: &[f64], p: usize, x: &mut [f64]) {
    for t in 0..x.len() {
        let lo = t.saturating_sub(p - 1);
        let row = &rows[t * p..(t + 1) * p];
        let s: f64 = row[p - 1 - (t - lo)..p - 1]
            .iter()
            .zip(&x[lo..t])
            .map(|(a, b)| a * b)
            .sum();
        x[t] = (x[t] - s) / row[p - 1];
    }
}

/// `G[i, j] −= 2·ω·b[i]·v[j]` over the band, with `v = C_{t+1}⁻¹ b` (`v` is scratch of b's
/// length; `rows` from [`rows_reversed`]). O(t·p).
fn accumulate(rows: &[f64], p: usize, b: &[f64], v: &mut [f64], omega: f64, g: &mut [f64]) {
    let m = b.len();
    v.copy_from_slice(b);
    forward_solve(rows, p, v);
    for (j, &vj) in v.iter().enumerate() {
        let len = p.min(m - j);
        let scale = -2.0 * omega * vj;
        for (gi, bi) in g[j * p..j * p + len].iter_mut().zip(&b[j..j + len]) {
            *gi += scale * bi;
        }
    }
}

/// `Toep(c)` (first p coefficients) as a banded matrix, columns truncated at row n − 1, and
/// optionally normalized.
fn toeplitz_as_banded(n: usize, p: usize, c: &[f64], normalize: bool) -> Result<BandedLower, FactorError> {
    let mut cols = vec![0.0; n * p];
    for j in 0..n {
        let len = p.min(n - j);
        let col = &mut cols[j * p..j * p + len];
        col.copy_from_slice(&c[..len]);
        if normalize {
            let norm = col.iter().map(|v| v * v).sum::<f64>().sqrt();
            col.iter_mut().for_each(|v| *v /= norm);
        }
    }
    Ok(BandedLower::new(n, p, cols)?)
}

/// BandMF for `spec` (`Bandmf` optimizes on `w.constant_rate()`, `LrBandmf` on `w`), warm-started
/// from the best of bsr and lr-bsr (as given and column-normalized). Errors when k > 1 and
/// p > b: the exact sensitivity √k needs p ≤ min-sep.
pub(crate) fn factorize(
    spec: &FactorSpec,
    w: &Workload,
    part: Participation,
    p: usize,
) -> Result<Factorization, FactorError> {
    let start = Instant::now();
    let n = w.n();
    if part.k() > 1 && p > part.min_sep() {
        return Err(invalid(
            "band",
            format!(
                "{} needs band p ≤ min-sep b when k > 1 (its exact sensitivity √k holds only then); got p = {p} > b = {}",
                spec.method,
                part.min_sep()
            ),
        ));
    }
    let w_opt = if spec.method == Method::LrBandmf {
        w.clone()
    } else {
        w.constant_rate()
    };
    let mut candidates = Vec::new();
    for f in warm_starts(spec, w, part, [Method::Bsr, Method::LrBsr])? {
        match f.c {
            LowerTriangular::Banded(c) => {
                candidates.push(banded(spec, c.clone()));
                candidates.push(banded(spec, c));
            }
            c => {
                let coeffs = c.toeplitz_coeffs(p).unwrap_or_else(|| vec![1.0]);
                for normalize in [true, false] {
                    candidates.push(banded(spec, toeplitz_as_banded(n, p, &coeffs, normalize)?));
                }
            }
        }
    }
    let normalized_starts: Vec<Factorization> = candidates.iter().step_by(2).cloned().collect();
    let (i, _) = best_of(&w_opt, &normalized_starts, part, spec.objective)?;
    let LowerTriangular::Banded(x0) = &normalized_starts[i].c else {
        return Err(invalid("method", "bandmf: a warm start is not banded"));
    };
    let k = part.k();
    let found = run(spec.objective, x0.cols().to_vec(), MAX_ITER, |x, g, agg| {
        eval(&w_opt, k, p, spec.objective, x, g, agg)
    });
    if let Some((c, _)) = normalized(n, p, &found.x) {
        candidates.push(banded(spec, c));
    }
    let (i, value) = best_of(&w_opt, &candidates, part, spec.objective)?;
    let mut f = candidates.swap_remove(i);
    f.info = Some(OptimizeInfo {
        objective: spec.objective,
        value,
        iterations: found.iterations,
        converged: found.converged,
        millis: start.elapsed().as_secs_f64() * 1e3,
    });
    Ok(f)
}

fn banded(spec: &FactorSpec, c: BandedLower) -> Factorization {
    Factorization {
        name: spec.method.name().to_string(),
        band: spec.band,
        c: LowerTriangular::Banded(c),
        info: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Objective;
    use crate::optimize::release_value;
    use lrmf_schedule::{Kind, LrSchedule};

    /// ∇ surrogate against central differences, and `exact` against the release's value.
    fn check(w: &Workload, p: usize, b: usize, k: usize, theta: &[f64], agg: Agg) {
        let mut g = vec![0.0; theta.len()];
        let e = eval(w, k, p, Objective::MaxSe, theta, &mut g, agg);
        let mut scratch = vec![0.0; theta.len()];
        for i in 0..theta.len() {
            let h = 1e-6;
            let (mut up, mut dn) = (theta.to_vec(), theta.to_vec());
            up[i] += h;
            dn[i] -= h;
            let fd = (eval(w, k, p, Objective::MaxSe, &up, &mut scratch, agg).surrogate
                - eval(w, k, p, Objective::MaxSe, &dn, &mut scratch, agg).surrogate)
                / (2.0 * h);
            assert!(
                (fd - g[i]).abs() <= 1e-6 * (1.0 + g[i].abs()),
                "{agg:?} entry {i}: adjoint {} vs finite difference {fd}",
                g[i]
            );
        }
        let n = w.n();
        let (c, _) = normalized(n, p, theta).unwrap();
        let f = Factorization {
            name: "bandmf".into(),
            band: Some(p),
            c: LowerTriangular::Banded(c),
            info: None,
        };
        let part = Participation::new(n, Some(b), k).unwrap();
        let release = release_value(w, &f, part, Objective::MaxSe).unwrap();
        let rel = release / e.exact.exp() - 1.0;
        assert!((0.0..1e-12).contains(&rel), "release {release} vs objective {}", e.exact.exp());
    }

    #[test]
    fn adjoint_gradients_match_finite_differences() {
        let (n, p) = (11, 3);
        let theta: Vec<f64> = (0..n * p)
            .map(|q| match (q / p + q % p >= n, q % p) {
                (true, _) => 0.0,
                (false, 0) => 1.0 + 0.03 * (q / p) as f64,
                (false, i) => ((q * 7) % 5) as f64 * 0.1 - 0.15 / i as f64,
            })
            .collect();
        for (kind, mu, lambda) in [(Kind::Cosine, 0.5, 0.95), (Kind::Exponential, 0.0, 1.0)] {
            let s = LrSchedule::new(kind, n, 0.2, 0).unwrap();
            let w = Workload::from_schedule(&s, mu, lambda).unwrap();
            for agg in [Agg::Mean, Agg::Power(8.0)] {
                check(&w, p, 3, 3, &theta, agg);
            }
        }
    }
}
