//! `dense-opt` / `lr-dense-opt`: the optimal dense strategy for single participation and
//! `mean-se` (Denisov et al. arXiv 2202.08312; MATH.md §5b):
//!
//! ```text
//! minimize tr(G X⁻¹) over X ≻ 0 with diag(X) = 1,   G = WᵀW,   C lower-triangular, CᵀC = X,
//! ```
//!
//! so that sens(C) = max_j ‖C[:, j]‖ = 1 and `MeanSE² = ‖W C⁻¹‖_F²/n = tr(G X⁻¹)/n`.
//!
//! # Algorithm: the dual fixed point with Anderson acceleration
//! For multipliers v > 0 (V = diag(v)) the Lagrangian is minimized by
//! `X(v) = V^{−1/2} S V^{−1/2}`, `S = (V^{1/2} G V^{1/2})^{1/2}`, with the dual value
//! `g(v) = 2 tr(S) − Σ v ≤ optimum` (at constant v it is the nuclear-norm bound ‖W‖_*²/n).
//! Optimality is `diag(X(v)) = 1`, i.e. the fixed point `v = diag(S)` of Denisov et al.; it is
//! iterated in `u = ln v` with Anderson acceleration (memory 5), which cuts the iterations
//! several-fold. The first step jumps to the best constant v (`√v = ‖W‖_*/n`, read off the first
//! eigendecomposition), where the dual equals the nuclear-norm bound. Every iterate also gives a feasible primal point: the correlation matrix
//! `X̃ = diag(S)^{−1/2} S diag(S)^{−1/2}` (diag 1), with value
//! `tr(G X̃⁻¹) = Σ_ij G_ij k_i k_j (S⁻¹)_ij`, `k = √diag(S)`. The run stops when the duality gap
//! `(primal − dual)/primal ≤ 10⁻⁶` — a certificate that the reported strategy is within that
//! factor of the optimum — or after [`MAX_ITER`] iterations (then `converged = false` and the
//! best primal point found is returned). C is the reversed Cholesky factor of X̃
//! (`J X̃ J = L Lᵀ`, `C = J Lᵀ J`).
//!
//! Cost per iteration: one symmetric eigendecomposition and one n×n product, O(n³); memory O(n²).

use crate::error::{FactorError, Field, invalid};
use faer::{Mat, Side};
use lrmf_linalg::{DenseLower, LinearOperator};
use lrmf_workload::Workload;

/// The iteration limit of the fixed point.
pub const MAX_ITER: usize = 100;
/// The stopping rule: relative duality gap.
pub const GAP_TOL: f64 = 1e-6;
/// Anderson memory.
const MEMORY: usize = 5;

/// The optimal C and its certificate.
#[derive(Debug, Clone)]
pub(crate) struct DenseFit {
    pub c: DenseLower,
    /// `tr(G X̃⁻¹)/n` = MeanSE² on the workload optimized for (sens = 1).
    pub value: f64,
    /// The best dual bound (same scale as `value`): `dual ≤ optimum ≤ value` (read by the tests
    /// as the optimality certificate).
    #[cfg_attr(not(test), allow(dead_code))]
    pub dual: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// One evaluation of the dual map at u = ln v.
struct Eval {
    /// ln diag(S): the fixed-point map.
    next: Vec<f64>,
    primal: f64,
    /// The dual bound g(v).
    dual: f64,
    /// The feasible X̃ of this iterate.
    x: Mat<f64>,
}

fn eval(g: &Mat<f64>, u: &[f64]) -> Result<Eval, FactorError> {
    let n = u.len();
    let sv: Vec<f64> = u.iter().map(|x| (0.5 * x).exp()).collect();
    let m = Mat::from_fn(n, n, |i, j| sv[i] * g[(i, j)] * sv[j]);
    let evd = m.self_adjoint_eigen(Side::Lower).map_err(|e| {
        invalid(
            Field::Steps,
            format!("eigendecomposition did not converge: {e:?}"),
        )
    })?;
    let q = evd.U();
    let lam: Vec<f64> = evd
        .S()
        .column_vector()
        .iter()
        .map(|l| l.max(f64::MIN_POSITIVE))
        .collect();
    let root: Vec<f64> = lam.iter().map(|l| l.sqrt()).collect();
    // S = Q Λ^{1/2} Qᵀ and S⁻¹ = Q Λ^{−1/2} Qᵀ.
    let qs = Mat::from_fn(n, n, |i, j| q[(i, j)] * root[j].sqrt());
    let qi = Mat::from_fn(n, n, |i, j| q[(i, j)] / root[j].sqrt());
    let s = &qs * qs.transpose();
    let s_inv = &qi * qi.transpose();
    let k: Vec<f64> = (0..n).map(|i| s[(i, i)].sqrt()).collect();
    let mut primal = 0.0;
    for j in 0..n {
        for i in 0..n {
            primal += g[(i, j)] * k[i] * k[j] * s_inv[(i, j)];
        }
    }
    let dual = 2.0 * root.iter().sum::<f64>() - u.iter().map(|x| x.exp()).sum::<f64>();
    Ok(Eval {
        next: (0..n).map(|i| s[(i, i)].ln()).collect(),
        primal,
        dual,
        x: Mat::from_fn(n, n, |i, j| s[(i, j)] / (k[i] * k[j])),
    })
}

/// The optimal dense C for `w` under single participation and mean-se. O(n³) per iteration.
pub(crate) fn optimize_dense(w: &Workload) -> Result<DenseFit, FactorError> {
    let n = w.n();
    let wd = w.to_dense();
    let g = wd.transpose() * &wd;
    let mut u = vec![0.0; n];
    let (mut us, mut rs): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
    let mut best: Option<Eval> = None;
    let mut dual = f64::NEG_INFINITY;
    let mut iterations = 0;
    let mut converged = false;
    for it in 0..MAX_ITER {
        let e = eval(&g, &u)?;
        iterations = it + 1;
        dual = dual.max(e.dual);
        let r: Vec<f64> = e.next.iter().zip(&u).map(|(a, b)| a - b).collect();
        if best.as_ref().is_none_or(|b| e.primal < b.primal) {
            best = Some(e);
        }
        let primal = best.as_ref().map_or(f64::INFINITY, |b| b.primal);
        if (primal - dual) / primal <= GAP_TOL {
            converged = true;
            break;
        }
        if it == 0 {
            // u = 0: Σ√λ = tr(G^{1/2}) = ‖W‖_*; jump to the dual-optimal constant.
            let nuclear = 0.5 * (dual + n as f64);
            u = vec![2.0 * (nuclear / n as f64).ln(); n];
            continue;
        }
        us.push(u.clone());
        rs.push(r);
        if us.len() > MEMORY + 1 {
            us.remove(0);
            rs.remove(0);
        }
        u = anderson(&u, rs.last().expect("just pushed"), &us, &rs);
    }
    let best = best.expect("at least one iteration");
    Ok(DenseFit {
        c: reversed_cholesky(&best.x)?,
        value: best.primal / n as f64,
        dual: dual / n as f64,
        iterations,
        converged,
    })
}

/// Anderson step `u + r − (ΔU + ΔR)γ`, γ = argmin ‖r − ΔR γ‖ (normal equations with a tiny
/// ridge; the plain step `u + r` when there is no history). O(n·m²).
fn anderson(u: &[f64], r: &[f64], us: &[Vec<f64>], rs: &[Vec<f64>]) -> Vec<f64> {
    let m = rs.len().saturating_sub(1);
    let plain: Vec<f64> = u.iter().zip(r).map(|(a, b)| a + b).collect();
    if m == 0 {
        return plain;
    }
    let diff = |v: &[Vec<f64>], i: usize| -> Vec<f64> {
        v[i + 1].iter().zip(&v[i]).map(|(a, b)| a - b).collect()
    };
    let dr: Vec<Vec<f64>> = (0..m).map(|i| diff(rs, i)).collect();
    let du: Vec<Vec<f64>> = (0..m).map(|i| diff(us, i)).collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut a = Mat::from_fn(m, m, |i, j| dot(&dr[i], &dr[j]));
    let tr: f64 = (0..m).map(|i| a[(i, i)]).sum();
    for i in 0..m {
        a[(i, i)] += 1e-12 * tr + f64::MIN_POSITIVE;
    }
    let b = Mat::from_fn(m, 1, |i, _| dot(&dr[i], r));
    let Ok(llt) = a.llt(Side::Lower) else {
        return plain;
    };
    let gamma = faer::linalg::solvers::Solve::solve(&llt, &b);
    let out: Vec<f64> = (0..u.len())
        .map(|t| {
            plain[t]
                - (0..m)
                    .map(|i| (du[i][t] + dr[i][t]) * gamma[(i, 0)])
                    .sum::<f64>()
        })
        .collect();
    if out.iter().all(|v| v.is_finite()) {
        out
    } else {
        plain
    }
}

/// The lower-triangular C with `CᵀC = X`: `J X J = L Lᵀ`, `C = J Lᵀ J` (J the reversal). O(n³).
fn reversed_cholesky(x: &Mat<f64>) -> Result<DenseLower, FactorError> {
    let n = x.nrows();
    let jxj = Mat::from_fn(n, n, |i, j| x[(n - 1 - i, n - 1 - j)]);
    let llt = jxj.llt(Side::Lower).map_err(|e| {
        invalid(
            Field::Steps,
            format!("the optimal X is not positive definite: {e:?}"),
        )
    })?;
    let l = llt.L();
    let c = Mat::from_fn(n, n, |i, j| {
        if j <= i {
            l[(n - 1 - j, n - 1 - i)]
        } else {
            0.0
        }
    });
    Ok(DenseLower::new(c)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower_bound;

    /// `tr(G X⁻¹)/n` for `X = CᵀC` of the returned C, recomputed densely; diag(X) = 1.
    fn check(w: &Workload) -> DenseFit {
        let n = w.n();
        let fit = optimize_dense(w).unwrap();
        let c = fit.c.as_mat();
        let x = c.transpose() * c;
        for i in 0..n {
            assert!((x[(i, i)] - 1.0).abs() < 1e-10);
        }
        let wd = w.to_dense();
        let mut b = wd.transpose().to_owned();
        c.transpose().solve_upper_triangular_in_place(&mut b); // Bᵀ = C⁻ᵀ Wᵀ
        let mean = (0..n)
            .map(|i| (0..n).map(|j| b[(i, j)] * b[(i, j)]).sum::<f64>())
            .sum::<f64>()
            / n as f64;
        assert!(
            (mean - fit.value).abs() <= 1e-9 * mean,
            "{mean} vs {}",
            fit.value
        );
        assert!(fit.converged && fit.dual <= fit.value * (1.0 + 1e-12));
        assert!((fit.value - fit.dual) <= GAP_TOL * fit.value * 1.0001);
        let lb = lower_bound(w).unwrap();
        assert!(fit.value.sqrt() >= lb * (1.0 - 1e-12));
        fit
    }

    #[test]
    fn matches_a_one_dimensional_search_at_n_two() {
        // n = 2: X = [[1, ρ], [ρ, 1]], tr(G X⁻¹) = (G₀₀ + G₁₁ − 2ρG₀₁)/(1 − ρ²), minimized over ρ.
        let w = Workload::new(vec![1.0, 0.4], 0.5, 0.9).unwrap();
        let g = {
            let wd = w.to_dense();
            wd.transpose() * &wd
        };
        let f = |r: f64| (g[(0, 0)] + g[(1, 1)] - 2.0 * r * g[(0, 1)]) / (1.0 - r * r) / 2.0;
        let (mut lo, mut hi) = (-0.999_999, 0.999_999);
        for _ in 0..200 {
            let (a, b) = (lo + (hi - lo) / 3.0, hi - (hi - lo) / 3.0);
            if f(a) < f(b) { hi = b } else { lo = a }
        }
        let fit = check(&w);
        assert!(
            (fit.value - f(lo)).abs() <= 1e-7 * fit.value,
            "{} vs {}",
            fit.value,
            f(lo)
        );
    }

    #[test]
    fn certificates_hold_for_scheduled_workloads() {
        check(&Workload::prefix_sum(40).unwrap());
        let chi = (0..33).map(|t| 0.1f64.powf(t as f64 / 32.0)).collect();
        check(&Workload::new(chi, 0.9, 0.999).unwrap());
        check(&Workload::prefix_sum(1).unwrap());
    }
}
