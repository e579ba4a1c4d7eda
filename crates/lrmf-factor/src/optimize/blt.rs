//! `blt` / `lr-blt`: buffered linear Toeplitz strategies `C = Toep(c)`,
//! `c(x) = 1 + Σ_i ω_i·x/(1 − θ_i x)` (Dvijotham et al. arXiv 2404.16706; McMahan et al. arXiv
//! 2408.08868; MATH.md §5b), with θ and ω optimized for `L = sens(C)²·agg_t ‖B[t, :]‖²`,
//! `B = W·C⁻¹`, on the exact workload `W = Toep(λ^k)·diag(χ)·Toep(μ^k)`.
//!
//! # Row norms in O(n·d²) with an exact adjoint
//! `B[:, j]` is the impulse response of a time-varying linear system with state
//! `z_t = (s_{1..d,t}, m_{t−1}, y_{t−1})` (the d BLT buffers of `C⁻¹`, the momentum and the
//! weight-decay accumulators): `x_t = u_t − ωᵀs_t`, `s_{t+1} = θ∘s_t + x_t`,
//! `m_t = μ m_{t−1} + x_t`, `y_t = λ y_{t−1} + χ_t m_t`, i.e. `z_{t+1} = A_t z_t + b_t u_t` with
//!
//! ```text
//! A_t = [ diag(θ) − 1ωᵀ   0      0 ]      b_t = [ 1 ]
//!       [ −ωᵀ             μ      0 ]            [ 1 ]
//!       [ −χ_t ωᵀ         χ_t μ  λ ]            [ χ_t ]
//! ```
//!
//! so `‖B[t, :]‖² = (P_{t+1})_{yy}` for the Gramian `P_{t+1} = A_t P_t A_tᵀ + b_t b_tᵀ`, `P_0 = 0`.
//! `A_t` is a rank-one update of a diagonal plus two rows, so `A_t·Y` costs O(d·s) for an s×s Y
//! (s = d + 2) and one step O(s²). The gradient is the adjoint of that recursion:
//! `Λ_t = A_tᵀ Λ_{t+1} A_t + a_{t−1} e_y e_yᵀ`, `∂L/∂A_t = 2 Λ_{t+1} A_t P_t`, with `a_t` the
//! derivative of the aggregate. Per evaluation: O(n·s²) time, O(n·s²) memory (the P_t).
//!
//! # Sensitivity in its checked regime
//! `c_0 = 1`, `c_k = Σ_i ω_i θ_i^{k−1}`: with θ ∈ (0, 1), ω > 0, `c` is positive and decreasing
//! from `c_1` on, so it is non-increasing iff `c_1 = Σ_i ω_i ≤ 1`. Under b-min-separation
//! (k > 1) the parametrization enforces `Σ ω < 1` (`ω_i = e^{v_i}/(1 + Σ_j e^{v_j})`), so the BSR
//! closed form `‖Σ_{i<k} shift_{ib}(c)‖` that the objective uses is the true sensitivity; single
//! participation needs no regime (`‖c‖`, `ω_i = e^{v_i}`). θ_i = logistic(a_i).
//!
//! # Optimization
//! f = ln L over (a, v) by BFGS ([`super::blt_bfgs`]). `mean-se` is smooth; `max-se` uses the
//! power mean `(mean_t r_t^p)^{1/p}` with continuation p = 4, 16, 64, 256, 1024 and keeps the
//! iterate with the smallest *true* max. Each d starts from a least-squares fit of the BLT to the
//! square-root coefficients of the workload and from the (d − 1)-buffer optimum with one buffer
//! added; the better result is kept. With `buffers = None`, d grows from 1 while the objective
//! improves by more than 1 % (at most [`MAX_BUFFERS`]).

use super::blt_bfgs::{BfgsSettings, minimize};
use crate::Objective;
use crate::error::{FactorError, Field, invalid};
use lrmf_linalg::BltMatrix;
use lrmf_privacy::Participation;
use lrmf_workload::Workload;

/// The largest number of BLT buffers.
pub const MAX_BUFFERS: usize = 10;
/// The largest n the BLT optimizer takes (its Gramians use O(n·d²) memory).
pub const MAX_BLT_N: usize = 1 << 16;

/// The aggregate over steps of the squared row norms.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Agg {
    Mean,
    /// The power mean `(mean_t r_t^p)^{1/p}`, a smooth surrogate of the max.
    Power(f64),
}

/// The loss of a BLT on one workload and participation.
struct BltLoss<'a> {
    chi: &'a [f64],
    mu: f64,
    lambda: f64,
    b: usize,
    k: usize,
    agg: Agg,
}

/// Squared row norms, the Gramians `P_0 … P_{n−1}` (s×s, row-major, when kept).
struct Forward {
    r: Vec<f64>,
    ps: Vec<f64>,
}

impl<'a> BltLoss<'a> {
    fn new(w: &'a Workload, p: Participation) -> Self {
        Self {
            chi: w.chi(),
            mu: w.momentum(),
            lambda: w.weight_decay(),
            b: p.min_sep(),
            k: p.k(),
            agg: Agg::Mean,
        }
    }

    /// `A_t·Y` for an s×s row-major Y (s = d + 2). O(d·s).
    fn apply_a(&self, th: &[f64], om: &[f64], chi: f64, y: &[f64], out: &mut [f64]) {
        let d = th.len();
        let s = d + 2;
        for c in 0..s {
            let q: f64 = (0..d).map(|k| om[k] * y[k * s + c]).sum();
            for i in 0..d {
                out[i * s + c] = th[i] * y[i * s + c] - q;
            }
            out[d * s + c] = self.mu * y[d * s + c] - q;
            out[(d + 1) * s + c] =
                chi * (self.mu * y[d * s + c] - q) + self.lambda * y[(d + 1) * s + c];
        }
    }

    /// `A_tᵀ·Y`. O(d·s).
    fn apply_at(&self, th: &[f64], om: &[f64], chi: f64, y: &[f64], out: &mut [f64]) {
        let d = th.len();
        let s = d + 2;
        for c in 0..s {
            let r: f64 =
                (0..d).map(|k| y[k * s + c]).sum::<f64>() + y[d * s + c] + chi * y[(d + 1) * s + c];
            for i in 0..d {
                out[i * s + c] = th[i] * y[i * s + c] - om[i] * r;
            }
            out[d * s + c] = self.mu * (y[d * s + c] + chi * y[(d + 1) * s + c]);
            out[(d + 1) * s + c] = self.lambda * y[(d + 1) * s + c];
        }
    }

    /// `r_t = ‖B[t, :]‖²` by the Gramian recursion. O(n·s²).
    fn forward(&self, th: &[f64], om: &[f64], keep: bool) -> Forward {
        let n = self.chi.len();
        let s = th.len() + 2;
        let mut p = vec![0.0; s * s];
        let (mut t1, mut t2) = (vec![0.0; s * s], vec![0.0; s * s]);
        let mut ps = if keep {
            Vec::with_capacity(n * s * s)
        } else {
            Vec::new()
        };
        let mut r = Vec::with_capacity(n);
        for &chi in self.chi {
            if keep {
                ps.extend_from_slice(&p);
            }
            self.apply_a(th, om, chi, &p, &mut t1); // A P
            transpose(&t1, &mut t2, s); // P Aᵀ
            self.apply_a(th, om, chi, &t2, &mut p); // A P Aᵀ
            for i in 0..s {
                let bi = if i == s - 1 { chi } else { 1.0 };
                for j in 0..s {
                    let bj = if j == s - 1 { chi } else { 1.0 };
                    p[i * s + j] += bi * bj;
                }
            }
            r.push(p[s * s - 1]);
        }
        Forward { r, ps }
    }

    /// The gradient of `Σ_t a_t r_t` with respect to (θ, ω), by the adjoint recursion. O(n·s²).
    fn adjoint(&self, th: &[f64], om: &[f64], fw: &Forward, a: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let d = th.len();
        let s = d + 2;
        let (mut gt, mut go) = (vec![0.0; d], vec![0.0; d]);
        let mut lam = vec![0.0; s * s];
        let (mut z, mut zt) = (vec![0.0; s * s], vec![0.0; s * s]);
        for t in (0..self.chi.len()).rev() {
            let chi = self.chi[t];
            let p = &fw.ps[t * s * s..(t + 1) * s * s];
            lam[s * s - 1] += a[t];
            self.apply_at(th, om, chi, &lam, &mut z); // Z = AᵀΛ, Zᵀ = ΛA
            // ∂/∂A = 2 Zᵀ P: θ_i on the diagonal; −ω_j in column j of rows with weights u.
            for i in 0..d {
                gt[i] += 2.0 * (0..s).map(|c| z[c * s + i] * p[c * s + i]).sum::<f64>();
            }
            for (j, g) in go.iter_mut().enumerate() {
                let mut acc = 0.0;
                for c in 0..s {
                    let wc = (0..d).map(|i| z[c * s + i]).sum::<f64>()
                        + z[c * s + d]
                        + chi * z[c * s + d + 1];
                    acc += wc * p[c * s + j];
                }
                *g -= 2.0 * acc;
            }
            transpose(&z, &mut zt, s);
            self.apply_at(th, om, chi, &zt, &mut lam); // Λ ← Aᵀ Λ A
        }
        (gt, go)
    }

    /// `sens(C)²` in the checked regime (`Σ ω ≤ 1` for k > 1), and optionally its gradient.
    /// O(n·d).
    fn sens2(&self, th: &[f64], om: &[f64], grad: bool) -> (f64, Vec<f64>, Vec<f64>) {
        let n = self.chi.len();
        let c = BltMatrix::coeffs_of(th, om, n);
        let (b, k) = (self.b, self.k);
        // v_t = Σ_{j<k, jb ≤ t} c_{t−jb} by a strided prefix sum.
        let v: Vec<f64> = if k == 1 {
            c.clone()
        } else {
            let mut pre = c.clone();
            for t in b..n {
                pre[t] += pre[t - b];
            }
            (0..n)
                .map(|t| pre[t] - if t >= k * b { pre[t - k * b] } else { 0.0 })
                .collect()
        };
        let s2: f64 = v.iter().map(|x| x * x).sum();
        if !grad {
            return (s2, Vec::new(), Vec::new());
        }
        // ∂s2/∂c_m = 2 Σ_{j<k, m+jb<n} v_{m+jb} by a strided suffix sum.
        let gc: Vec<f64> = if k == 1 {
            v.iter().map(|x| 2.0 * x).collect()
        } else {
            let mut suf = v.clone();
            for m in (0..n.saturating_sub(b)).rev() {
                suf[m] += suf[m + b];
            }
            (0..n)
                .map(|m| 2.0 * (suf[m] - if m + k * b < n { suf[m + k * b] } else { 0.0 }))
                .collect()
        };
        let d = th.len();
        let (mut gt, mut go) = (vec![0.0; d], vec![0.0; d]);
        for i in 0..d {
            // c_m = ω θ^{m−1}: ∂/∂ω = θ^{m−1}, ∂/∂θ = ω (m−1) θ^{m−2}.
            let (mut pw, mut pw_prev) = (1.0f64, 0.0f64);
            for (m, g) in gc.iter().enumerate().skip(1) {
                go[i] += g * pw;
                gt[i] += g * om[i] * (m - 1) as f64 * pw_prev;
                pw_prev = pw;
                pw *= th[i];
            }
        }
        (s2, gt, go)
    }

    /// The aggregate of r and its derivative weights `a_t = ∂agg/∂r_t`.
    fn aggregate(&self, r: &[f64]) -> (f64, Vec<f64>) {
        let n = r.len() as f64;
        match self.agg {
            Agg::Mean => (r.iter().sum::<f64>() / n, vec![1.0 / n; r.len()]),
            Agg::Power(p) => {
                let top = r.iter().fold(0.0f64, |m, v| m.max(*v));
                let e = top * (r.iter().map(|v| (v / top).powf(p)).sum::<f64>() / n).powf(1.0 / p);
                (e, r.iter().map(|v| (v / e).powf(p - 1.0) / n).collect())
            }
        }
    }

    /// `ln L` (value only: the line search). O(n·s²).
    fn log_loss(&self, th: &[f64], om: &[f64]) -> f64 {
        let fw = self.forward(th, om, false);
        let (e, _) = self.aggregate(&fw.r);
        (self.sens2(th, om, false).0 * e).ln()
    }

    /// `ln L` and its gradient with respect to (θ, ω). O(n·s²).
    fn log_loss_grad(&self, th: &[f64], om: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        let fw = self.forward(th, om, true);
        let (e, a) = self.aggregate(&fw.r);
        let (gte, goe) = self.adjoint(th, om, &fw, &a);
        let (s2, gts, gos) = self.sens2(th, om, true);
        let gt = (0..th.len()).map(|i| gts[i] / s2 + gte[i] / e).collect();
        let go = (0..th.len()).map(|i| gos[i] / s2 + goe[i] / e).collect();
        ((s2 * e).ln(), gt, go)
    }

    /// The true `L = sens² · (mean or max)_t r_t`.
    fn true_loss(&self, th: &[f64], om: &[f64], objective: Objective) -> f64 {
        let r = self.forward(th, om, false).r;
        let agg = match objective {
            Objective::MeanSe => r.iter().sum::<f64>() / r.len() as f64,
            Objective::MaxSe => r.iter().fold(0.0f64, |m, v| m.max(*v)),
        };
        self.sens2(th, om, false).0 * agg
    }
}

fn transpose(a: &[f64], out: &mut [f64], s: usize) {
    for i in 0..s {
        for j in 0..s {
            out[j * s + i] = a[i * s + j];
        }
    }
}

/// The unconstrained coordinates x = (a, v): θ = logistic(a); ω = e^v (single participation) or
/// ω = e^v/(1 + Σ e^v) (Σ ω < 1, for the closed-form sensitivity under min-separation).
#[derive(Debug, Clone, Copy)]
struct Coords {
    simplex: bool,
}

impl Coords {
    fn params_of(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let d = x.len() / 2;
        let th = x[..d]
            .iter()
            .map(|a| 1.0 / (1.0 + (-a.clamp(-30.0, 30.0)).exp()))
            .collect();
        let e: Vec<f64> = x[d..].iter().map(|v| v.clamp(-60.0, 30.0).exp()).collect();
        let om = if self.simplex {
            let tot = 1.0 + e.iter().sum::<f64>();
            e.iter().map(|v| v / tot).collect()
        } else {
            e
        };
        (th, om)
    }

    fn coords_of(&self, th: &[f64], om: &[f64]) -> Vec<f64> {
        let rest = 1.0 - om.iter().sum::<f64>();
        th.iter()
            .map(|t| (t / (1.0 - t)).ln())
            .chain(om.iter().map(|w| {
                if self.simplex {
                    (w / rest).ln()
                } else {
                    w.ln()
                }
            }))
            .collect()
    }

    /// ∂f/∂x from ∂f/∂θ and ∂f/∂ω (clamped coordinates have zero derivative).
    fn chain(&self, x: &[f64], th: &[f64], om: &[f64], gt: &[f64], go: &[f64]) -> Vec<f64> {
        let d = th.len();
        let inside = |v: f64, lo: f64, hi: f64| if v > lo && v < hi { 1.0 } else { 0.0 };
        let ga = (0..d).map(|i| gt[i] * th[i] * (1.0 - th[i]) * inside(x[i], -30.0, 30.0));
        let wg: f64 = (0..d).map(|j| om[j] * go[j]).sum();
        let gv = (0..d).map(|i| {
            let g = if self.simplex {
                om[i] * go[i] - om[i] * wg
            } else {
                om[i] * go[i]
            };
            g * inside(x[d + i], -60.0, 30.0)
        });
        ga.chain(gv).collect()
    }
}

/// One optimized BLT and the work it took.
#[derive(Debug, Clone)]
pub(crate) struct BltFit {
    pub theta: Vec<f64>,
    pub omega: Vec<f64>,
    /// The true objective `sens²·agg` on the workload optimized for.
    pub value: f64,
    pub iterations: usize,
    pub converged: bool,
}

const SETTINGS: BfgsSettings = BfgsSettings {
    max_iter: 400,
    ftol: 1e-11,
    gtol: 1e-9,
};

/// Optimizes one BLT with d = `th0.len()` buffers from (θ₀, ω₀).
fn optimize_from(loss: &mut BltLoss<'_>, objective: Objective, th0: &[f64], om0: &[f64]) -> BltFit {
    let coords = Coords {
        simplex: loss.k > 1,
    };
    let mut x = coords.coords_of(th0, om0);
    let mut best = {
        let (th, om) = coords.params_of(&x);
        let value = loss.true_loss(&th, &om, objective);
        BltFit {
            theta: th,
            omega: om,
            value,
            iterations: 0,
            converged: false,
        }
    };
    let stages: &[Agg] = match objective {
        Objective::MeanSe => &[Agg::Mean],
        Objective::MaxSe => &[
            Agg::Power(4.0),
            Agg::Power(16.0),
            Agg::Power(64.0),
            Agg::Power(256.0),
            Agg::Power(1024.0),
        ],
    };
    let mut iterations = 0;
    for &agg in stages {
        loss.agg = agg;
        let l = &*loss;
        let r = minimize(
            |x| {
                let (th, om) = coords.params_of(x);
                l.log_loss(&th, &om)
            },
            |x| {
                let (th, om) = coords.params_of(x);
                let (f, gt, go) = l.log_loss_grad(&th, &om);
                (f, coords.chain(x, &th, &om, &gt, &go))
            },
            x,
            SETTINGS,
        );
        iterations += r.iterations;
        x = r.x;
        let (th, om) = coords.params_of(&x);
        let value = loss.true_loss(&th, &om, objective);
        if value.is_finite() && value <= best.value {
            best = BltFit {
                theta: th,
                omega: om,
                value,
                iterations: 0,
                converged: r.converged,
            };
        }
    }
    best.iterations = iterations;
    best
}

/// A d-buffer start: time scales `τ_i = 1 + n^{(i+1)/(d+1)}` (θ_i = 1 − 1/τ_i) and ω the
/// least-squares fit of `c_k = Σ_i ω_i θ_i^{k−1}` to `target` (k ≥ 1), kept positive; for the
/// simplex coordinates scaled to Σ ω ≤ 0.9.
fn fitted_start(n: usize, d: usize, target: &[f64], simplex: bool) -> (Vec<f64>, Vec<f64>) {
    let th: Vec<f64> = (0..d)
        .map(|i| 1.0 - 1.0 / (1.0 + (n as f64).powf((i + 1) as f64 / (d + 1) as f64)))
        .collect();
    // Normal equations G ω = h with G_ij = Σ_k (θ_iθ_j)^{k−1}, h_i = Σ_k θ_i^{k−1} c_k.
    let mut g = vec![0.0f64; d * d];
    let mut h = vec![0.0f64; d];
    let mut pw = vec![1.0f64; d];
    for &ck in target.iter().skip(1) {
        for i in 0..d {
            h[i] += pw[i] * ck;
            for j in 0..d {
                g[i * d + j] += pw[i] * pw[j];
            }
        }
        for i in 0..d {
            pw[i] *= th[i];
        }
    }
    let ridge = 1e-10 * (0..d).map(|i| g[i * d + i]).sum::<f64>().max(1e-300);
    for i in 0..d {
        g[i * d + i] += ridge;
    }
    let sol = solve_small(g, h);
    let top = sol.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut om: Vec<f64> = sol
        .iter()
        .map(|&v| {
            if v.is_finite() && v > 1e-3 * top {
                v
            } else {
                (1e-3 * top).max(1e-4)
            }
        })
        .collect();
    cap_sum(&mut om, simplex);
    (th, om)
}

/// `G x = h` for a small d×d row-major G by Gaussian elimination with partial pivoting. O(d³).
fn solve_small(mut g: Vec<f64>, mut h: Vec<f64>) -> Vec<f64> {
    let d = h.len();
    for col in 0..d {
        let piv = (col..d)
            .max_by(|&a, &b| g[a * d + col].abs().total_cmp(&g[b * d + col].abs()))
            .unwrap_or(col);
        for j in 0..d {
            g.swap(col * d + j, piv * d + j);
        }
        h.swap(col, piv);
        for r in col + 1..d {
            let f = g[r * d + col] / g[col * d + col];
            for j in col..d {
                g[r * d + j] -= f * g[col * d + j];
            }
            h[r] -= f * h[col];
        }
    }
    let mut x = vec![0.0; d];
    for r in (0..d).rev() {
        let s: f64 = (r + 1..d).map(|j| g[r * d + j] * x[j]).sum();
        x[r] = (h[r] - s) / g[r * d + r];
    }
    x
}

/// The (d − 1)-buffer optimum with one buffer added in the widest gap of the time scales.
fn extended_start(prev: &BltFit, n: usize, simplex: bool) -> (Vec<f64>, Vec<f64>) {
    let mut taus: Vec<f64> = prev.theta.iter().map(|t| 1.0 / (1.0 - t)).collect();
    taus.push(1.0);
    taus.push(n as f64 + 1.0);
    taus.sort_by(f64::total_cmp);
    let (mut at, mut widest) = (0, 0.0);
    for i in 1..taus.len() {
        let gap = (taus[i] / taus[i - 1]).ln();
        if gap > widest {
            (at, widest) = (i, gap);
        }
    }
    let tau = (taus[at] * taus[at - 1]).sqrt().max(1.01);
    let mut th = prev.theta.clone();
    let mut om = prev.omega.clone();
    th.push(1.0 - 1.0 / tau);
    om.push(0.02 * om.iter().sum::<f64>() / om.len() as f64);
    cap_sum(&mut om, simplex);
    (th, om)
}

fn cap_sum(om: &mut [f64], simplex: bool) {
    let total: f64 = om.iter().sum();
    if simplex && total > 0.9 {
        om.iter_mut().for_each(|w| *w *= 0.9 / total);
    }
}

/// The optimized BLT for workload `w` (the one optimized for), participation `p` and objective,
/// with `buffers` d or d chosen automatically; `target` holds square-root coefficients of the
/// workload for the fitted start, `extra` an additional start (e.g. the plain `blt` optimum for
/// `lr-blt`). Returns the best fit and the total iterations.
///
/// Cost: O(n·d²) per objective evaluation; a few hundred evaluations per d.
pub(crate) fn optimize_blt(
    w: &Workload,
    p: Participation,
    objective: Objective,
    buffers: Option<usize>,
    target: &[f64],
    extra: Option<&BltFit>,
) -> Result<BltFit, FactorError> {
    // FactorSpec::check has refused buffers outside 1..=MAX_BUFFERS and n > MAX_BLT_N.
    let n = w.n();
    let mut loss = BltLoss::new(w, p);
    let simplex = loss.k > 1;
    let (lo, hi) = match buffers {
        Some(d) => (d, d),
        None => (1, MAX_BUFFERS),
    };
    let mut best: Option<BltFit> = None;
    let mut prev: Option<BltFit> = None;
    let mut total = 0;
    for d in 1..=hi {
        let mut starts = vec![fitted_start(n, d, target, simplex)];
        if let Some(pf) = &prev {
            starts.push(extended_start(pf, n, simplex));
        }
        let mut fit: Option<BltFit> = None;
        for (th, om) in starts {
            let f = optimize_from(&mut loss, objective, &th, &om);
            total += f.iterations;
            if fit.as_ref().is_none_or(|b| f.value < b.value) {
                fit = Some(f);
            }
        }
        let fit = fit.expect("at least one start");
        if d >= lo {
            let improves = best.as_ref().is_none_or(|b| fit.value < 0.99 * b.value);
            if !improves {
                break;
            }
            best = Some(fit.clone());
        }
        prev = Some(fit);
    }
    let mut best = best.expect("d = lo is always accepted");
    // The extra start competes with the result whatever its d (lr-blt never loses to blt).
    if let Some(e) = extra {
        let f = optimize_from(&mut loss, objective, &e.theta, &e.omega);
        total += f.iterations;
        if f.value < best.value {
            best = f;
        }
    }
    best.iterations = total;
    Ok(best)
}

/// `buffers` must be in 1..=[`MAX_BUFFERS`] when given.
pub(crate) fn check_buffers(buffers: Option<usize>) -> Result<(), FactorError> {
    match buffers {
        Some(d) if d == 0 || d > MAX_BUFFERS => Err(invalid(
            Field::Buffers,
            format!("{d} is outside 1..={MAX_BUFFERS}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::b_row_norms;
    use lrmf_linalg::LowerTriangular;
    use lrmf_privacy::sensitivity;

    fn workload(n: usize, beta: f64, mu: f64, lambda: f64) -> Workload {
        let chi = (0..n)
            .map(|t| beta.powf(t as f64 / (n.max(2) - 1) as f64) * (1.0 + 0.3 * (t as f64).sin()))
            .collect();
        Workload::new(chi, mu, lambda).unwrap()
    }

    /// The Gramian row norms and the objective's sensitivity against the library's independent
    /// paths (metrics' row recurrence, the privacy crate's checked sensitivity); the analytic
    /// gradient of ln L against central finite differences in the unconstrained coordinates.
    fn check(w: &Workload, p: Participation, agg: Agg, th: &[f64], om: &[f64]) {
        let mut loss = BltLoss::new(w, p);
        loss.agg = agg;
        let n = w.n();
        let c = LowerTriangular::Blt(BltMatrix::new(n, th.to_vec(), om.to_vec()).unwrap());
        let want = b_row_norms(w, &c).unwrap();
        for (r, rw) in loss.forward(th, om, false).r.iter().zip(&want) {
            assert!((r.sqrt() - rw).abs() <= 1e-10 * rw, "{} vs {rw}", r.sqrt());
        }
        let s = sensitivity(&c, p).unwrap();
        let s2 = loss.sens2(th, om, false).0;
        assert!(
            (s2.sqrt() - s.value).abs() <= 1e-12 * s.value,
            "{s2} vs {s:?}"
        );
        let coords = Coords { simplex: p.k() > 1 };
        let x = coords.coords_of(th, om);
        let f = |x: &[f64]| {
            let (t, o) = coords.params_of(x);
            loss.log_loss(&t, &o)
        };
        let (f0, gt, go) = loss.log_loss_grad(th, om);
        assert!((f0 - f(&x)).abs() <= 1e-12 * f0.abs().max(1.0));
        let g = coords.chain(&x, th, om, &gt, &go);
        for i in 0..x.len() {
            let h = 1e-5;
            let (mut a, mut b) = (x.clone(), x.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (f(&a) - f(&b)) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() <= 1e-6 * (1.0 + g[i].abs()),
                "coord {i}: {fd} vs {}",
                g[i]
            );
        }
    }

    #[test]
    fn rows_sensitivity_and_gradient_are_exact() {
        let (th, om) = ([0.97, 0.6, 0.2], [0.2, 0.25, 0.1]);
        let single = Participation::single();
        let w = workload(64, 0.1, 0.0, 1.0);
        check(&w, single, Agg::Mean, &th, &om);
        check(&w, single, Agg::Power(16.0), &th, &om);
        let w = workload(50, 0.3, 0.9, 0.999);
        check(
            &w,
            Participation::new(50, Some(7), 5).unwrap(),
            Agg::Mean,
            &th,
            &om,
        );
        check(
            &w,
            Participation::new(50, Some(3), 4).unwrap(),
            Agg::Power(64.0),
            &th[..2],
            &om[..2],
        );
        check(
            &Workload::prefix_sum(1).unwrap(),
            single,
            Agg::Mean,
            &th[..1],
            &om[..1],
        );
    }

    #[test]
    fn bad_buffers_name_the_flag() {
        for d in [0, MAX_BUFFERS + 1] {
            let e = check_buffers(Some(d)).unwrap_err();
            assert!(e.to_string().contains("--buffers"), "{e}");
        }
        assert!(check_buffers(Some(MAX_BUFFERS)).is_ok() && check_buffers(None).is_ok());
    }
}
