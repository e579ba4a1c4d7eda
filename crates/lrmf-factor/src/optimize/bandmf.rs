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
//! Per evaluation: O(n²·p) time — `Y = Bᵀ = C⁻ᵀWᵀ` and `Z = C⁻¹(Y·diag(ω))` by banded
//! substitutions over whole rows (contiguous axpys), then n·p dot products: about 1.5·n²·p
//! multiply-adds for either objective, in parallel over fixed blocks of B's columns — and
//! O(n²/2) memory (Y), hence n ≤ [`MAX_DENSE_N`](crate::MAX_DENSE_N).

use super::{Agg, Eval, best_of, dot, run, true_log_agg, warm_starts};
use crate::error::{Field, invalid};
use crate::{FactorError, FactorSpec, Factorization, Method, OptimizeInfo};
use lrmf_linalg::{BandedLower, LowerTriangular};
use lrmf_privacy::Participation;
use lrmf_workload::Workload;
use rayon::prelude::*;
use std::time::Instant;

/// Iteration limit over all stages: mean-se usually stops on the tolerance well before it; the
/// max-se continuation uses it all (its margin over jax_privacy's 250 steps is measured in
/// `tests/optimized.rs`).
fn max_iter(objective: crate::Objective) -> usize {
    match objective {
        crate::Objective::MeanSe => 400,
        crate::Objective::MaxSe => 160,
    }
}

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

/// `log L` and its gradient with respect to θ (see the module doc). O(n²·p) time, O(n²) memory.
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
    let (r, log_agg, g) = rows_and_gradient(w, &c, |r, omega| agg.log_and_weights(r, omega));
    // The column normalization: ∂/∂θ_j = (G_j − ĉ_j (ĉ_jᵀG_j))/‖θ_j‖.
    for (j, norm) in norms.iter().enumerate() {
        let (cj, gc) = (c.column(j), &g[j * p..(j + 1) * p]);
        let proj = dot(cj, gc);
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

/// Columns t of B per parallel task: columns of `B = W·C⁻¹` are independent, so each block of
/// them is computed on its own. Fixed, so results never depend on the number of threads.
const BLOCK: usize = 64;
/// Blocks whose gradient partials are held at once (memory ≤ GROUP·n·p for the partials).
const GROUP: usize = 8;

/// Rows `j < t1` of `Y = Bᵀ` restricted to the columns `t ∈ [t0, t1)` (row-major, width
/// `t1 − t0`; `Y[j, t] = B[t, j]`, zero for t < j).
struct YBlock {
    t0: usize,
    t1: usize,
    y: Vec<f64>,
}

impl YBlock {
    fn width(&self) -> usize {
        self.t1 - self.t0
    }

    /// Row j from column `max(j, t0)` on.
    fn row(&self, j: usize) -> &[f64] {
        let wd = self.width();
        &self.y[j * wd + j.max(self.t0) - self.t0..(j + 1) * wd]
    }
}

/// `Y = C⁻ᵀ·Wᵀ` on the columns `[t0, t1)` by banded back substitution over whole rows,
/// `Y[j, :] = (Wᵀ[j, :] − Σ_{i=1}^{p−1} C[j+i, j]·Y[j+i, :]) / C[j, j]` (contiguous axpys).
/// O(t1·(t1 − t0)·p).
fn y_block(w: &Workload, c: &BandedLower, t0: usize, t1: usize) -> YBlock {
    let (n, p, wd) = (c.n(), c.band(), t1 - t0);
    let (mu, lambda, chi) = (w.momentum(), w.weight_decay(), w.chi());
    // W[t0 − 1, j] for j < t0, by W[t, j] = λ^{t−j} χ_j + μ·W[t, j+1].
    let mut wprev = vec![0.0; t0];
    let mut lam = 1.0;
    for j in (0..t0).rev() {
        let next = if j + 1 < t0 { wprev[j + 1] } else { 0.0 };
        wprev[j] = lam * chi[j] + mu * next;
        lam *= lambda;
    }
    let mut y = vec![0.0; t1 * wd];
    for j in (0..t1).rev() {
        let (head, tail) = y.split_at_mut((j + 1) * wd);
        let row = &mut head[j * wd..];
        let ts = j.max(t0);
        // Wᵀ[j, t] = W[t, j] = λ·W[t−1, j] + χ_t·μ^{t−j}.
        let (mut prev, mut mu_k) = if j < t0 {
            (wprev[j], mu.powi((t0 - j) as i32))
        } else {
            (0.0, 1.0)
        };
        for (t, v) in row
            .iter_mut()
            .enumerate()
            .skip(ts - t0)
            .map(|(k, v)| (k + t0, v))
        {
            prev = lambda * prev + chi[t] * mu_k;
            *v = prev;
            mu_k *= mu;
        }
        let col = c.column(j);
        for (i, &cij) in col.iter().enumerate().take(p.min(n - j)).skip(1) {
            if j + i >= t1 {
                break;
            }
            let from = (j + i).max(t0) - t0;
            let other = &tail[(i - 1) * wd + from..i * wd];
            for (v, o) in row[from..].iter_mut().zip(other) {
                *v -= cij * o;
            }
        }
        let inv = 1.0 / col[0];
        row[ts - t0..].iter_mut().for_each(|v| *v *= inv);
    }
    YBlock { t0, t1, y }
}

/// The gradient partial of one block: `−2 Σ_{t∈[t0,t1), t≥i} Y[i, t]·Z[j, t]` for the band
/// entries (i, j), i < t1 (column-major like [`BandedLower::cols`], length t1·p), where
/// `Z = C⁻¹·(Y·diag(ω))` — column t is `C⁻¹(ω_t b_t)`, the adjoint of row t's substitution —
/// by forward substitution over whole rows. O(t1·(t1 − t0)·p).
fn gradient_block(c: &BandedLower, blk: &YBlock, omega: &[f64]) -> Vec<f64> {
    let (p, t0, t1, wd) = (c.band(), blk.t0, blk.t1, blk.width());
    let mut z = vec![0.0; t1 * wd];
    let mut g = vec![0.0; t1 * p];
    for j in 0..t1 {
        let ts = j.max(t0);
        let (head, tail) = z.split_at_mut(j * wd);
        let row = &mut tail[ts - t0..wd];
        for ((v, yv), o) in row.iter_mut().zip(blk.row(j)).zip(&omega[ts..t1]) {
            *v = yv * o;
        }
        for i in 1..p.min(j + 1) {
            let cji = c.get(j, j - i);
            let prev = &head[(j - i) * wd + ts - t0..(j - i + 1) * wd];
            for (v, o) in row.iter_mut().zip(prev) {
                *v -= cji * o;
            }
        }
        let inv = 1.0 / c.get(j, j);
        row.iter_mut().for_each(|v| *v *= inv);
        // Band entries (i, j), i = j + d < t1: Σ over t ≥ max(i, t0).
        for d in 0..p.min(t1 - j) {
            let i = j + d;
            let from = i.max(t0) - t0;
            let zj = &z[j * wd + from..(j + 1) * wd];
            g[j * p + d] = -2.0 * dot(blk.row(i), zj);
        }
    }
    g
}

/// `r_t = ‖B[t, :]‖²` and `∂ Σ_t ω_t r_t / ∂C` on the band (ω from `weights(r)`), in parallel
/// over fixed column blocks. O(n²·p) time, O(n²/2) memory (the blocks of Y).
fn rows_and_gradient(
    w: &Workload,
    c: &BandedLower,
    weights: impl FnOnce(&[f64], &mut [f64]) -> f64,
) -> (Vec<f64>, f64, Vec<f64>) {
    let (n, p) = (c.n(), c.band());
    let starts: Vec<usize> = (0..n).step_by(BLOCK).collect();
    let blocks: Vec<YBlock> = starts
        .par_iter()
        .map(|&t0| y_block(w, c, t0, (t0 + BLOCK).min(n)))
        .collect();
    let mut r = vec![0.0; n];
    for blk in &blocks {
        for j in 0..blk.t1 {
            let ts = j.max(blk.t0);
            for (rt, v) in r[ts..blk.t1].iter_mut().zip(blk.row(j)) {
                *rt += v * v;
            }
        }
    }
    let mut omega = vec![0.0; n];
    let log_agg = weights(&r, &mut omega);
    let mut g = vec![0.0; n * p];
    for group in blocks.chunks(GROUP) {
        let partials: Vec<Vec<f64>> = group
            .par_iter()
            .map(|blk| gradient_block(c, blk, &omega))
            .collect();
        for part in partials {
            g.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
        }
    }
    (r, log_agg, g)
}

/// `Toep(c)` (first p coefficients) as a banded matrix, columns truncated at row n − 1, and
/// optionally normalized.
fn toeplitz_as_banded(
    n: usize,
    p: usize,
    c: &[f64],
    normalize: bool,
) -> Result<BandedLower, FactorError> {
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
/// from the best of bsr and lr-bsr (as given and column-normalized). [`FactorSpec::check`] has
/// refused k > 1 with p > b (the exact sensitivity √k needs p ≤ min-sep) and n > its limit.
pub(crate) fn factorize(
    spec: &FactorSpec,
    w: &Workload,
    part: Participation,
    p: usize,
) -> Result<Factorization, FactorError> {
    let start = Instant::now();
    let n = w.n();
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
        return Err(invalid(Field::Method, "bandmf: a warm start is not banded"));
    };
    let k = part.k();
    let found = run(
        spec.objective,
        x0.cols().to_vec(),
        max_iter(spec.objective),
        |x, g, agg| eval(&w_opt, k, p, spec.objective, x, g, agg),
    );
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
        buffers: None,
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
            buffers: None,
        };
        let part = Participation::new(n, Some(b), k).unwrap();
        let release = release_value(w, &f, part, Objective::MaxSe).unwrap();
        let rel = release / e.exact.exp() - 1.0;
        assert!(
            (0.0..1e-12).contains(&rel),
            "release {release} vs objective {}",
            e.exact.exp()
        );
    }

    #[test]
    fn adjoint_gradients_match_finite_differences() {
        // n = 11: one column block; n = 150: three (BLOCK = 64), so the blocking is covered.
        for (n, p) in [(11, 3), (150, 2)] {
            gradients_for(n, p);
        }
    }

    fn gradients_for(n: usize, p: usize) {
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
                check(&w, p, p, 3, &theta, agg);
            }
        }
    }
}
