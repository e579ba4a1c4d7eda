//! Truncated power series: the algebra of lower-triangular Toeplitz matrices.
//!
//! `Toep(a)·Toep(b) = Toep(a * b)`, `Toep(c)⁻¹ = Toep(c⁻¹)` and `Toep(a)^{1/2} = Toep(√a)`, where
//! the right-hand sides are power-series operations truncated to `n` terms (MATH.md §3). Each
//! operation comes in two independent implementations that the tests hold against each other:
//!
//! | operation | recurrence | Newton + FFT |
//! |---|---|---|
//! | product | O(n·min(p, q)) direct sum | O(n log n) |
//! | inverse | O(n·p), p = non-zeros of c | O(n log n) (doubling: y ← y + y(1 − c·y)) |
//! | square root | O(n²) | O(n log n) (inverse root h ← h + h(1 − a·h²)/2, then √a = a·h) |
//!
//! [`Algorithm::Auto`] picks the recurrence while it is cheap (it is exact to rounding in every
//! coefficient) and Newton beyond.

use crate::LinalgError;
use crate::fft::convolve;

/// Which implementation of a series operation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// The classical recurrence: O(n²), or O(n·p) when the input has p non-zeros.
    Recurrence,
    /// FFT-based Newton iteration: O(n log n).
    Newton,
    /// The recurrence while its cost is below ~4·10⁶ multiply-adds, Newton beyond.
    #[default]
    Auto,
}

const AUTO_RECURRENCE_WORK: usize = 4_000_000;

/// The first `n` coefficients of `a * b`. O(n·min(len)) direct or O(n log n) by FFT.
pub fn mul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    convolve(a, b, n)
}

/// `(c_k · α^k)_k`: the series of `diag(α^t)·Toep(c)·diag(α^{-t})`, i.e. `c(αx)`.
pub fn scale_powers(c: &[f64], alpha: f64) -> Vec<f64> {
    let mut w = 1.0;
    c.iter()
        .map(|&ck| {
            let v = ck * w;
            w *= alpha;
            v
        })
        .collect()
}

/// `(ρ^k)_{k<n}`: the series of `1/(1 − ρx)`.
pub fn geometric(rho: f64, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    let mut w = 1.0;
    for _ in 0..n {
        out.push(w);
        w *= rho;
    }
    out
}

/// `r_k = binom(2k, k)/4^k`, the coefficients of `(1 − x)^{-1/2}`; `A_1^{1/2} = Toep(r)`.
/// Recurrence `r_0 = 1, r_k = r_{k−1}(2k − 1)/(2k)`. O(n).
pub fn r(n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    let mut v = 1.0;
    for k in 0..n {
        if k > 0 {
            v *= (2 * k - 1) as f64 / (2 * k) as f64;
        }
        out.push(v);
    }
    out
}

/// `r̃_k`, the coefficients of `(1 − x)^{1/2}`; `A_1^{-1/2} = Toep(r̃)`.
/// Recurrence `r̃_0 = 1, r̃_k = r̃_{k−1}(k − 3/2)/k`. O(n).
pub fn r_tilde(n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    let mut v = 1.0;
    for k in 0..n {
        if k > 0 {
            v *= (k as f64 - 1.5) / k as f64;
        }
        out.push(v);
    }
    out
}

fn check_input(c: &[f64], n: usize, name: &'static str) -> Result<(), LinalgError> {
    if n == 0 {
        return Err(LinalgError::invalid(
            "n",
            "the number of coefficients must be ≥ 1",
        ));
    }
    if c.is_empty() {
        return Err(LinalgError::invalid(
            name,
            "the series must have at least one coefficient",
        ));
    }
    if let Some(k) = c.iter().position(|v| !v.is_finite()) {
        return Err(LinalgError::invalid(
            name,
            format!("coefficient {k} is {}, all must be finite", c[k]),
        ));
    }
    Ok(())
}

/// The first `n` coefficients of `1/c` (needs `c_0 ≠ 0`).
///
/// Recurrence: `y_0 = 1/c_0`, `y_k = −(Σ_{j=1}^{min(k, p−1)} c_j y_{k−j}) / c_0`, O(n·p) for p = len(c).
/// Newton: O(n log n).
pub fn inverse(c: &[f64], n: usize, algorithm: Algorithm) -> Result<Vec<f64>, LinalgError> {
    check_input(c, n, "c")?;
    if c[0] == 0.0 {
        return Err(LinalgError::invalid(
            "c",
            "c_0 must be non-zero for the series to be invertible",
        ));
    }
    let p = c.len().min(n);
    let use_recurrence = match algorithm {
        Algorithm::Recurrence => true,
        Algorithm::Newton => false,
        Algorithm::Auto => n.saturating_mul(p) <= AUTO_RECURRENCE_WORK || p <= 64,
    };
    Ok(if use_recurrence {
        inverse_recurrence(&c[..p], n)
    } else {
        inverse_newton(&c[..p], n)
    })
}

fn inverse_recurrence(c: &[f64], n: usize) -> Vec<f64> {
    let inv_c0 = 1.0 / c[0];
    let p = c.len();
    // tail[i] = c_{p−1−i}: y_k = −(Σ_{j=1}^{p−1} c_j y_{k−j})/c_0 becomes a forward dot product
    // of `tail` with the window y[k−p+1..k], which vectorises.
    let tail: Vec<f64> = c[1..].iter().rev().copied().collect();
    let mut y = vec![0.0; n];
    y[0] = inv_c0;
    // Coefficients that decay geometrically reach the subnormal range, where every arithmetic
    // operation is ~100× slower. They are flushed to zero (an absolute change below 2.3e-308),
    // and once p − 1 consecutive coefficients are zero every later one is exactly zero.
    let mut zeros = 0usize;
    for k in 1..n {
        let s = if k >= p - 1 {
            dot(&tail, &y[k + 1 - p..k])
        } else {
            // Warm-up: fewer than p − 1 earlier terms.
            dot(&tail[p - 1 - k..], &y[..k])
        };
        let v = -s * inv_c0;
        if v.abs() < f64::MIN_POSITIVE {
            zeros += 1;
            if zeros >= p - 1 {
                break;
            }
        } else {
            zeros = 0;
            y[k] = v;
        }
    }
    y
}

/// `Σ a_i b_i` with four independent accumulators (vectorisable; fixed order, so deterministic).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

fn inverse_newton(c: &[f64], n: usize) -> Vec<f64> {
    let mut y = vec![1.0 / c[0]];
    let mut m = 1;
    while m < n {
        let m2 = (2 * m).min(n);
        // e = c·y − 1 vanishes below x^m; the correction is y_new[m..m2] = −(y · e)[m..m2].
        let e = convolve(&c[..c.len().min(m2)], &y, m2);
        let corr = convolve(&y[..(m2 - m).min(m)], &e[m..m2], m2 - m);
        y.extend(corr.iter().map(|v| -v));
        m = m2;
    }
    y
}

/// The first `n` coefficients of `√a` with positive constant term (needs `a_0 > 0`).
///
/// Recurrence: `y_0 = √a_0`, `y_k = (a_k − Σ_{i=1}^{k−1} y_i y_{k−i}) / (2 y_0)`, O(n²).
/// Newton: O(n log n), via the inverse square root.
pub fn sqrt(a: &[f64], n: usize, algorithm: Algorithm) -> Result<Vec<f64>, LinalgError> {
    check_input(a, n, "a")?;
    if a[0] <= 0.0 {
        return Err(LinalgError::invalid(
            "a",
            format!("a_0 = {} must be > 0 for a real square root", a[0]),
        ));
    }
    let use_recurrence = match algorithm {
        Algorithm::Recurrence => true,
        Algorithm::Newton => false,
        Algorithm::Auto => n.saturating_mul(n) / 2 <= AUTO_RECURRENCE_WORK,
    };
    let a = &a[..a.len().min(n)];
    Ok(if use_recurrence {
        sqrt_recurrence(a, n)
    } else {
        let h = inverse_sqrt_newton(a, n);
        convolve(a, &h, n)
    })
}

fn sqrt_recurrence(a: &[f64], n: usize) -> Vec<f64> {
    let mut y = vec![0.0; n];
    y[0] = a[0].sqrt();
    let inv2y0 = 0.5 / y[0];
    for k in 1..n {
        let mut s = 0.0;
        // Σ_{i=1}^{k−1} y_i y_{k−i} is symmetric: sum half and double.
        let half = (k - 1) / 2;
        for i in 1..=half {
            s += y[i] * y[k - i];
        }
        s *= 2.0;
        if k % 2 == 0 {
            s += y[k / 2] * y[k / 2];
        }
        let ak = a.get(k).copied().unwrap_or(0.0);
        y[k] = (ak - s) * inv2y0;
    }
    y
}

/// The first `n` coefficients of `1/√a` (needs `a_0 > 0`), by Newton doubling. O(n log n).
pub fn inverse_sqrt(a: &[f64], n: usize, algorithm: Algorithm) -> Result<Vec<f64>, LinalgError> {
    check_input(a, n, "a")?;
    if a[0] <= 0.0 {
        return Err(LinalgError::invalid(
            "a",
            format!("a_0 = {} must be > 0", a[0]),
        ));
    }
    let a = &a[..a.len().min(n)];
    match algorithm {
        Algorithm::Newton => Ok(inverse_sqrt_newton(a, n)),
        _ => {
            let s = sqrt(a, n, algorithm)?;
            inverse(&s, n, algorithm)
        }
    }
}

fn inverse_sqrt_newton(a: &[f64], n: usize) -> Vec<f64> {
    let mut h = vec![1.0 / a[0].sqrt()];
    let mut m = 1;
    while m < n {
        let m2 = (2 * m).min(n);
        // e = a·h² − 1 vanishes below x^m; h_new[m..m2] = −(h · e)[m..m2] / 2.
        let h2 = convolve(&h, &h, m2);
        let e = convolve(&a[..a.len().min(m2)], &h2, m2);
        let corr = convolve(&h[..(m2 - m).min(m)], &e[m..m2], m2 - m);
        h.extend(corr.iter().map(|v| -0.5 * v));
        m = m2;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * scale, "coefficient {k}: {g} vs {w}");
        }
    }

    fn unit(n: usize) -> Vec<f64> {
        let mut e = vec![0.0; n];
        e[0] = 1.0;
        e
    }

    #[test]
    fn r_is_sqrt_of_geometric_and_r_tilde_its_inverse() {
        let n = 50;
        let ones = vec![1.0; n];
        check(
            &sqrt(&ones, n, Algorithm::Recurrence).unwrap(),
            &r(n),
            1e-15,
        );
        check(
            &inverse(&r(n), n, Algorithm::Recurrence).unwrap(),
            &r_tilde(n),
            1e-14,
        );
        check(&mul(&r(n), &r_tilde(n), n), &unit(n), 1e-15);
        assert_eq!(r(3), vec![1.0, 0.5, 0.375]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(inverse(&[0.0, 1.0], 4, Algorithm::Auto).is_err());
        assert!(sqrt(&[-1.0], 4, Algorithm::Auto).is_err());
        assert!(sqrt(&[1.0, f64::NAN], 4, Algorithm::Auto).is_err());
        assert!(inverse(&[1.0], 0, Algorithm::Auto).is_err());
        assert!(inverse(&[], 3, Algorithm::Auto).is_err());
    }

    #[test]
    fn newton_matches_recurrence_at_scale() {
        let n = 5000;
        let a: Vec<f64> = (0..n).map(|k| 1.0 / (1.0 + k as f64).powf(0.3)).collect();
        let s_rec = sqrt(&a, n, Algorithm::Recurrence).unwrap();
        let s_new = sqrt(&a, n, Algorithm::Newton).unwrap();
        check(&s_new, &s_rec, 1e-11);
        let i_rec = inverse(&a, n, Algorithm::Recurrence).unwrap();
        let i_new = inverse(&a, n, Algorithm::Newton).unwrap();
        check(&i_new, &i_rec, 1e-11);
    }

    proptest! {
        #[test]
        fn sqrt_squared_is_identity(a0 in 0.1f64..3.0, rest in prop::collection::vec(-1.0f64..1.0, 0..60), n in 1usize..80) {
            let mut a = vec![a0];
            a.extend(rest);
            for alg in [Algorithm::Recurrence, Algorithm::Newton] {
                let s = sqrt(&a, n, alg).unwrap();
                let sq = mul(&s, &s, n);
                let mut want = a.clone();
                want.resize(n, 0.0);
                want.truncate(n);
                // Backward-error bound of a computed square: coefficient k of s·s sums k + 1
                // products, so its residual is a small multiple of (k + 1)·ε·Σ_j |s_j|·|s_{k−j}|
                // (the size of the coefficients, which grow like (2/a0)^k). Newton forms s
                // through the inverse root h = 1/√a, so its residual also carries the size of
                // h: the bound uses (|s|·|s|)·(|s|·|h|). Measured over 200 000 random cases: at
                // most 1.0 (recurrence) and 2.4 (Newton) times these sizes; the factor is 64.
                let abs = |x: &[f64]| x.iter().map(|v| v.abs()).collect::<Vec<f64>>();
                let mut size = mul(&abs(&s), &abs(&s), n);
                if alg == Algorithm::Newton {
                    let h = inverse(&s, n, Algorithm::Recurrence).unwrap();
                    size = mul(&size, &mul(&abs(&s), &abs(&h), n), n);
                }
                for (k, ((g, w), m)) in sq.iter().zip(&want).zip(&size).enumerate() {
                    let tol = 64.0 * f64::EPSILON * (k + 1) as f64 * m.max(1.0);
                    prop_assert!((g - w).abs() <= tol, "{alg:?} coefficient {k}: {g} vs {w} (tolerance {tol:e})");
                }
            }
        }

        #[test]
        fn inverse_times_series_is_one(c0 in prop_oneof![0.5f64..3.0, -3.0f64..-0.5], rest in prop::collection::vec(-0.3f64..0.3, 0..60), n in 1usize..80) {
            let mut c = vec![c0];
            c.extend(rest);
            for alg in [Algorithm::Recurrence, Algorithm::Newton] {
                let y = inverse(&c, n, alg).unwrap();
                let growth = y.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                check(&mul(&c, &y, n), &unit(n), 1e-12 * growth);
            }
        }

        #[test]
        fn newton_equals_recurrence(c in prop::collection::vec(0.0f64..1.0, 1..200), n in 1usize..300) {
            let mut c = c;
            c[0] += 1.0;
            // Well-conditioned inputs (Σ_{k≥1} c_k ≤ 0.9·c_0, so 1/c and √c have no pole near
            // the unit circle): there both algorithms are accurate to ~1e-13 and must agree.
            // Near-singular random series amplify rounding in *both* by their condition
            // number, which made this test flaky (1e-8 differences) without any bug.
            let tail: f64 = c[1..].iter().sum();
            if tail > 0.9 * c[0] {
                let s = 0.9 * c[0] / tail;
                c[1..].iter_mut().for_each(|v| *v *= s);
            }
            let growth = |v: &[f64]| v.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            let (a, b) = (inverse(&c, n, Algorithm::Recurrence).unwrap(), inverse(&c, n, Algorithm::Newton).unwrap());
            check(&b, &a, 1e-10 * growth(&a));
            let (a, b) = (sqrt(&c, n, Algorithm::Recurrence).unwrap(), sqrt(&c, n, Algorithm::Newton).unwrap());
            check(&b, &a, 1e-10 * growth(&a));
        }
    }
}
