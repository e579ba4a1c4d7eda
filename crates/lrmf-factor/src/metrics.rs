//! Errors of a factorization (MATH.md §6): the row norms of `B = W·C⁻¹`, MaxSE, MeanSE, the
//! per-step error curve, and the nuclear-norm lower bound.
//!
//! `MaxSE = sens(C)·max_t ‖B[t, :]‖₂` and `MeanSE = sens(C)·‖B‖_F/√n` (not squared).
//!
//! B is never stored. With `C⁻¹ = Toep(g)` (every method but dense-sqrt) and
//! `W = Toep(λ^k)·diag(χ)·Toep(μ^k)`, `B = Toep(λ^k)·diag(χ)·Toep(m)` with `m = g * (μ^k)`, and
//! - when χ_t = α^t (constant or exponential schedule): `B[t, j] = α^j·s_{t−j}` with
//!   `s = (λ^k) * (α^k m_k)`, so `‖B[t, :]‖² = ρ_t = α²ρ_{t−1} + s_t²` — O(n) after g;
//! - for any other schedule with `m` of finite support p (μ = 0 and C⁻¹ banded: identity, the
//!   BISR family), column j of B is complete after step j + p − 1 and only decays by λ afterwards,
//!   so `ρ_t = S_t + Σ_{j>t−p} B[t, j]²` with `S_{t+1} = λ²(S_t + B[t, t−p+1]²)` — O(n·p);
//! - otherwise, row t of B follows `B[t, :] = λ·B[t−1, :] + χ_t·m_{t−·}` — O(n²) time, O(n) memory.
//!
//! Computing g costs O(n) for bisr (banded), O(n·p) or O(n log n) for bsr, O(n log n) for sqrt.
//! dense-sqrt forms B = W·C⁻¹ by a triangular solve, O(n³).

use crate::error::{Field, invalid};
use crate::{FactorError, Factorization, MAX_DENSE_N};
use lrmf_linalg::{LinearOperator, LowerTriangular, Mat};
use lrmf_privacy::{Participation, Sensitivity, sensitivity};
use lrmf_workload::Workload;

/// Largest n for the O(n²) row recurrence of non-geometric schedules.
pub const MAX_GENERIC_N: usize = 200_000;

/// The errors of one factorization under one participation schema.
#[derive(Debug, Clone)]
pub struct Errors {
    /// sens(C), with how it was obtained.
    pub sensitivity: Sensitivity,
    /// `sens(C)·max_t ‖B[t, :]‖₂`.
    pub max_se: f64,
    /// `sens(C)·‖B‖_F/√n`.
    pub mean_se: f64,
    /// `‖B[t, :]‖₂` for every step t.
    pub row_norms: Vec<f64>,
}

impl Errors {
    /// The per-step error curve `sens(C)·‖B[t, :]‖₂`: the standard deviation of the noise in
    /// the model after step t, per unit noise multiplier and clip norm.
    pub fn error_curve(&self) -> Vec<f64> {
        self.row_norms
            .iter()
            .map(|r| r * self.sensitivity.value)
            .collect()
    }
}

/// MaxSE, MeanSE and the error curve of `f` for workload `w` under participation `p`.
pub fn errors(w: &Workload, f: &Factorization, p: Participation) -> Result<Errors, FactorError> {
    if f.c.n() != w.n() {
        return Err(invalid(
            Field::Steps,
            format!(
                "C has size {} but the workload has {} steps",
                f.c.n(),
                w.n()
            ),
        ));
    }
    let sens = sensitivity(&f.c, p)?;
    let row_norms = b_row_norms(w, &f.c)?;
    let n = w.n() as f64;
    let max_row = row_norms.iter().fold(0.0f64, |m, r| m.max(*r));
    let frob2: f64 = row_norms.iter().map(|r| r * r).sum();
    Ok(Errors {
        max_se: sens.value * max_row,
        mean_se: sens.value * (frob2 / n).sqrt(),
        sensitivity: sens,
        row_norms,
    })
}

/// `‖B[t, :]‖₂` for `B = W·C⁻¹`, by the cheapest exact path (see the module doc).
pub fn b_row_norms(w: &Workload, c: &LowerTriangular) -> Result<Vec<f64>, FactorError> {
    let n = w.n();
    if let LowerTriangular::Banded(cb) = c {
        return banded_c_row_norms(w, cb);
    }
    let Some(g) = c.inverse_toeplitz_coeffs(n) else {
        let b = b_dense(w, c)?;
        return Ok((0..n)
            .map(|t| (0..=t).map(|j| b[(t, j)] * b[(t, j)]).sum::<f64>().sqrt())
            .collect());
    };
    let (mu, lambda) = (w.momentum(), w.weight_decay());
    // m = g * (μ^k): m_k = μ m_{k−1} + g_k.
    let mut m = g;
    for k in 1..n {
        m[k] += mu * m[k - 1];
    }
    if let Some(alpha) = w.geometric_rate() {
        // s_k = λ s_{k−1} + α^k m_k;  ρ_t = α² ρ_{t−1} + s_t².
        let (mut s, mut rho, mut ak) = (0.0f64, 0.0f64, 1.0f64);
        let alpha2 = alpha * alpha;
        let mut out = Vec::with_capacity(n);
        for mk in &m {
            s = lambda * s + ak * mk;
            rho = alpha2 * rho + s * s;
            out.push(rho.sqrt());
            ak *= alpha;
        }
        return Ok(out);
    }
    let support = m.iter().rposition(|v| *v != 0.0).map_or(1, |i| i + 1);
    if support.saturating_mul(support) <= n || support <= 64 {
        return Ok(banded_row_norms(w.chi(), lambda, &m[..support]));
    }
    if n > MAX_GENERIC_N {
        return Err(invalid(
            Field::Steps,
            format!(
                "errors for a non-geometric schedule cost O(n²); n = {n} exceeds {MAX_GENERIC_N} (use the exponential or constant schedule)"
            ),
        ));
    }
    // Row recurrence, stored reversed so that row[t − j] = B[t, j] and the update adds χ_t·m in place.
    let chi = w.chi();
    let mut row = vec![0.0f64; n];
    let mut out = Vec::with_capacity(n);
    for t in 0..n {
        // B[t, j] = λ B[t−1, j] + χ_t m_{t−j};  with r_t[d] = B[t, t−d]: r_t[d] = λ r_{t−1}[d−1] + χ_t m_d.
        // Keep r in a buffer indexed by j instead: buf[j] = B[t, j].
        let ct = chi[t];
        let mut norm2 = 0.0;
        for (j, b) in row[..=t].iter_mut().enumerate() {
            let v = lambda * *b + ct * m[t - j];
            *b = v;
            norm2 += v * v;
        }
        out.push(norm2.sqrt());
    }
    Ok(out)
}

/// Row t of W from row t − 1 in place: `W[t, j] = λ·W[t−1, j] + χ_t·μ^{t−j}` (j ≤ t). O(t).
pub(crate) fn next_workload_row(w: &Workload, t: usize, row: &mut [f64]) {
    let (mu, lambda, ct) = (w.momentum(), w.weight_decay(), w.chi()[t]);
    row[t] = 0.0;
    if lambda != 1.0 {
        row[..t].iter_mut().for_each(|v| *v *= lambda);
    }
    let mut mk = ct;
    for v in row[..=t].iter_mut().rev() {
        *v += mk;
        mk *= mu;
        if mk == 0.0 {
            break;
        }
    }
}

/// Row norms of `B = W·C⁻¹` for a banded C with p bands: `B[t, :]·C = W[t, :]` on the leading
/// (t+1)×(t+1) block, so row t is one banded back substitution `C_{t+1}⁻ᵀ·W[t, 0..=t]`.
/// O(n²·p) time, O(n) memory.
fn banded_c_row_norms(w: &Workload, c: &lrmf_linalg::BandedLower) -> Result<Vec<f64>, FactorError> {
    let n = w.n();
    if n > MAX_GENERIC_N {
        return Err(invalid(
            Field::Steps,
            format!("errors of a banded C cost O(n²·p); n = {n} exceeds {MAX_GENERIC_N}"),
        ));
    }
    let (mut wrow, mut x) = (vec![0.0f64; n], vec![0.0f64; n]);
    Ok((0..n)
        .map(|t| {
            next_workload_row(w, t, &mut wrow);
            let x = &mut x[..=t];
            x.copy_from_slice(&wrow[..=t]);
            c.solve_transpose_prefix_in_place(x);
            x.iter().map(|v| v * v).sum::<f64>().sqrt()
        })
        .collect())
}

/// Row norms of `B = Toep(λ^k)·diag(χ)·Toep(m)` when m has p = len(m) coefficients. O(n·p).
fn banded_row_norms(chi: &[f64], lambda: f64, m: &[f64]) -> Vec<f64> {
    let n = chi.len();
    let p = m.len();
    // win[j % p] = B[t, j] for the p most recent columns j ∈ (t − p, t].
    let mut win = vec![0.0f64; p];
    let lambda2 = lambda * lambda;
    let mut settled = 0.0f64; // S_t = Σ_{j ≤ t−p} B[t, j]²
    let mut out = Vec::with_capacity(n);
    for t in 0..n {
        if t >= 1 {
            // Columns complete at t − 1 (j = t − p) leave the window and join S, decayed by λ.
            if t >= p {
                let j = t - p;
                let v = win[j % p];
                settled = lambda2 * (settled + v * v);
            } else {
                settled *= lambda2;
            }
        }
        let ct = chi[t];
        let lo = (t + 1).saturating_sub(p);
        let mut head = 0.0;
        for j in lo..=t {
            let slot = j % p;
            let prev = if j == t { 0.0 } else { win[slot] };
            let v = lambda * prev + ct * m[t - j];
            win[slot] = v;
            head += v * v;
        }
        out.push((settled + head).sqrt());
    }
    out
}

/// The dense `B = W·C⁻¹`, by solving `Cᵀ·Bᵀ = Wᵀ`. O(n³); n ≤ [`MAX_DENSE_N`].
pub fn b_dense(w: &Workload, c: &LowerTriangular) -> Result<Mat<f64>, FactorError> {
    let n = w.n();
    if n > MAX_DENSE_N {
        return Err(invalid(
            Field::Steps,
            format!("dense B needs n ≤ {MAX_DENSE_N}, got {n}"),
        ));
    }
    let cd = c.to_dense();
    let mut bt = w.to_dense().transpose().to_owned();
    cd.transpose().solve_upper_triangular_in_place(&mut bt);
    Ok(bt.transpose().to_owned())
}

/// The lower bound `‖W‖_*/n` (nuclear norm over n) that every factorization's MeanSE — and
/// hence MaxSE — is at least. O(n³) by SVD; n ≤ [`MAX_DENSE_N`].
pub fn lower_bound(w: &Workload) -> Result<f64, FactorError> {
    let n = w.n();
    if n > MAX_DENSE_N {
        return Err(invalid(
            Field::Steps,
            format!("the nuclear-norm lower bound needs an SVD: n = {n} exceeds {MAX_DENSE_N}"),
        ));
    }
    let s = w
        .to_dense()
        .singular_values()
        .map_err(|e| invalid(Field::Steps, format!("SVD did not converge: {e:?}")))?;
    Ok(s.iter().sum::<f64>() / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FactorSpec, Factorizer, Method};
    use lrmf_schedule::{Kind, LrSchedule};
    use proptest::prelude::*;

    fn check(w: &Workload, spec: FactorSpec) {
        let n = w.n();
        let f = spec.factorize(w, Participation::single()).unwrap();
        let b = b_dense(w, &f.c).unwrap();
        // B·C = W, dense.
        let bc = &b * f.c.to_dense();
        let wd = w.to_dense();
        let scale = (0..n).map(|t| wd[(t, 0)].abs()).fold(1.0f64, f64::max);
        for t in 0..n {
            for j in 0..n {
                assert!(
                    (bc[(t, j)] - wd[(t, j)]).abs() <= 1e-9 * scale,
                    "{:?} ({t},{j})",
                    spec.method
                );
            }
        }
        // Structured row norms = dense row norms.
        let fast = b_row_norms(w, &f.c).unwrap();
        for t in 0..n {
            let dense: f64 = (0..n).map(|j| b[(t, j)] * b[(t, j)]).sum::<f64>().sqrt();
            assert!(
                (fast[t] - dense).abs() <= 1e-9 * dense.max(1.0),
                "{:?} row {t}: {} vs {dense}",
                spec.method,
                fast[t]
            );
        }
    }

    fn schedule(kind: &str, n: usize, beta: f64) -> LrSchedule {
        LrSchedule::new(Kind::parse_builtin(kind).unwrap(), n, beta, 0).unwrap()
    }

    #[test]
    fn lower_bound_is_below_every_method() {
        let s = schedule("exponential", 48, 0.1);
        let w = Workload::from_schedule(&s, 0.0, 1.0).unwrap();
        let lb = lower_bound(&w).unwrap();
        for m in Method::ALL {
            let spec = FactorSpec::for_schedule(m, Some(8), &s).unwrap();
            let e = errors(
                &w,
                &spec.factorize(&w, Participation::single()).unwrap(),
                Participation::single(),
            )
            .unwrap();
            assert!(e.mean_se >= lb * (1.0 - 1e-12), "{m}: {} < {lb}", e.mean_se);
            assert!(e.max_se >= e.mean_se * (1.0 - 1e-12));
        }
    }

    #[test]
    fn too_large_is_an_error() {
        let w = Workload::prefix_sum(MAX_DENSE_N + 1).unwrap();
        assert!(lower_bound(&w).is_err());
        let spec = FactorSpec::new(Method::DenseSqrt, None, 1.0).unwrap();
        assert!(spec.factorize(&w, Participation::single()).is_err());
        assert!(FactorSpec::new(Method::Bisr, None, 1.0).is_err());
        let spec = FactorSpec::new(Method::Bisr, Some(0), 1.0).unwrap();
        assert!(spec.factorize(&w, Participation::single()).is_err());
        let spec = FactorSpec::new(Method::Bsr, Some(MAX_DENSE_N + 2), 1.0).unwrap();
        assert!(spec.factorize(&w, Participation::single()).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn b_times_c_is_w(n in 1usize..28, kind in prop::sample::select(vec!["constant", "exponential", "cosine", "linear", "polynomial", "step"]),
                          beta in 0.05f64..=1.0, mu in prop_oneof![Just(0.0), 0.0f64..0.95], lambda in prop_oneof![Just(1.0), 0.9f64..=1.0],
                          band in 1usize..30) {
            let s = schedule(kind, n, beta);
            let w = Workload::from_schedule(&s, mu, lambda).unwrap();
            for m in Method::ALL {
                check(&w, FactorSpec::for_schedule(m, Some(band.min(n)), &s).unwrap());
            }
        }

        #[test]
        fn lr_methods_equal_plain_at_beta_one(n in 1usize..60, band in 1usize..60, mu in 0.0f64..0.9) {
            let s = schedule("exponential", n, 1.0);
            let w = Workload::from_schedule(&s, mu, 1.0).unwrap();
            for m in [Method::LrSqrt, Method::LrBsr, Method::LrBisr] {
                let a = FactorSpec::for_schedule(m, Some(band.min(n)), &s).unwrap().factorize(&w, Participation::single()).unwrap();
                let b = FactorSpec::for_schedule(m.plain(), Some(band.min(n)), &s).unwrap().factorize(&w, Participation::single()).unwrap();
                prop_assert_eq!(a.c.to_dense(), b.c.to_dense());
            }
        }
    }
}
