//! A small deterministic L-BFGS with a backtracking Armijo line search, for the optimized
//! strategies. Hand-written because the objectives have a hard domain (the sensitivity's checked
//! regime): a trial point outside it evaluates to +∞ and the line search simply backtracks, which
//! general-purpose crates do not support without a projection.
//!
//! Per iteration: one objective/gradient evaluation per trial step plus O(m·len) for the two-loop
//! recursion (m = [`Settings::memory`]).

use std::collections::VecDeque;

/// Stopping rule and memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Iteration limit.
    pub max_iter: usize,
    /// Number of (s, y) pairs kept.
    pub memory: usize,
    /// Stop when `f_{k−1} − f_k ≤ f_tol·(1 + |f_k|)` on two consecutive iterations.
    pub f_tol: f64,
    /// Stop when `‖∇f‖_∞ ≤ g_tol`.
    pub g_tol: f64,
}

/// The result of [`minimize`].
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// The last accepted point (f never increases along the iterates).
    pub x: Vec<f64>,
    /// f at `x`.
    pub f: f64,
    /// Accepted iterations.
    pub iterations: usize,
    /// Whether the stopping rule (not the iteration limit) ended the run. A line search that finds
    /// no decrease even along −∇f counts as converged: no descent step exists at working precision.
    pub converged: bool,
}

/// Backtracking halvings before a line search gives up.
const MAX_BACKTRACKS: usize = 40;
/// Armijo constant.
const C1: f64 = 1e-4;

/// Minimizes `f` from `x0`. `f(x, g)` returns the value and writes the gradient into `g`; it may
/// return +∞ (or NaN) for a point outside the domain, which the line search treats as a failed trial.
/// `x0` must be inside the domain (else it is returned unchanged, not converged).
///
/// The rule: quasi-Newton direction from the last `memory` pairs (with `sᵀy > 0` only; steepest
/// descent when none or when the direction is not a descent direction), step 1 (the first step
/// has length ≤ 1 in ∞-norm), halved until Armijo holds; stop on [`Settings`]' tolerances or the
/// iteration limit.
pub(crate) fn minimize<F>(mut f: F, x0: Vec<f64>, s: &Settings) -> Outcome
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let len = x0.len();
    let mut x = x0;
    let mut g = vec![0.0; len];
    let mut fx = f(&x, &mut g);
    let mut out = Outcome {
        x: Vec::new(),
        f: fx,
        iterations: 0,
        converged: false,
    };
    if !fx.is_finite() || len == 0 {
        out.x = x;
        out.converged = len == 0;
        return out;
    }
    let mut pairs: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::with_capacity(s.memory);
    let (mut xn, mut gn) = (vec![0.0; len], vec![0.0; len]);
    let mut small_steps = 0;
    for _ in 0..s.max_iter {
        if inf_norm(&g) <= s.g_tol {
            out.converged = true;
            break;
        }
        let mut d = direction(&g, &pairs);
        let mut slope = dot(&g, &d);
        if slope >= 0.0 || slope.is_nan() {
            pairs.clear();
            d = direction(&g, &pairs);
            slope = dot(&g, &d);
        }
        let Some(fnew) = line_search(&mut f, &x, fx, &d, slope, &mut xn, &mut gn) else {
            if pairs.is_empty() {
                out.converged = true;
                break;
            }
            pairs.clear();
            continue;
        };
        let sv: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&sv, &yv);
        if sy > 1e-12 * dot(&sv, &sv).sqrt() * dot(&yv, &yv).sqrt() && sy > 0.0 {
            if pairs.len() == s.memory {
                pairs.pop_front();
            }
            pairs.push_back((sv, yv, 1.0 / sy));
        }
        let decrease = fx - fnew;
        std::mem::swap(&mut x, &mut xn);
        std::mem::swap(&mut g, &mut gn);
        fx = fnew;
        out.iterations += 1;
        small_steps = if decrease <= s.f_tol * (1.0 + fx.abs()) {
            small_steps + 1
        } else {
            0
        };
        if small_steps >= 2 {
            out.converged = true;
            break;
        }
    }
    out.x = x;
    out.f = fx;
    out
}

/// Armijo backtracking from step 1 along `d`; on success `xn`, `gn` hold the new point and
/// gradient and the new value is returned.
fn line_search<F>(
    f: &mut F,
    x: &[f64],
    fx: f64,
    d: &[f64],
    slope: f64,
    xn: &mut [f64],
    gn: &mut [f64],
) -> Option<f64>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let mut t = 1.0;
    for _ in 0..MAX_BACKTRACKS {
        for ((o, a), b) in xn.iter_mut().zip(x).zip(d) {
            *o = a + t * b;
        }
        let fnew = f(xn, gn);
        if fnew.is_finite() && fnew <= fx + C1 * t * slope {
            return Some(fnew);
        }
        t *= 0.5;
    }
    None
}

/// The L-BFGS two-loop recursion `d = −H·g`; with no pairs, `−g` scaled to ∞-norm ≤ 1.
fn direction(g: &[f64], pairs: &VecDeque<(Vec<f64>, Vec<f64>, f64)>) -> Vec<f64> {
    let mut q: Vec<f64> = g.to_vec();
    let Some((s_last, y_last, _)) = pairs.back() else {
        let scale = 1.0 / inf_norm(g).max(1.0);
        return q.iter().map(|v| -v * scale).collect();
    };
    let mut alphas = Vec::with_capacity(pairs.len());
    for (s, y, rho) in pairs.iter().rev() {
        let a = rho * dot(s, &q);
        q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
        alphas.push(a);
    }
    let gamma = dot(s_last, y_last) / dot(y_last, y_last);
    q.iter_mut().for_each(|v| *v *= gamma);
    for ((s, y, rho), a) in pairs.iter().zip(alphas.iter().rev()) {
        let b = rho * dot(y, &q);
        q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
    }
    q.iter_mut().for_each(|v| *v = -*v);
    q
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn inf_norm(a: &[f64]) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(x0: Vec<f64>, want: &[f64]) {
        // Rosenbrock in len dimensions, with a hard wall x_0 ≤ 1.5 (the domain).
        let f = |x: &[f64], g: &mut [f64]| {
            if x[0] > 1.5 {
                return f64::INFINITY;
            }
            g.iter_mut().for_each(|v| *v = 0.0);
            let mut v = 0.0;
            for i in 0..x.len() - 1 {
                let (a, b) = (1.0 - x[i], x[i + 1] - x[i] * x[i]);
                v += a * a + 100.0 * b * b;
                g[i] += -2.0 * a - 400.0 * x[i] * b;
                g[i + 1] += 200.0 * b;
            }
            v
        };
        let s = Settings {
            max_iter: 2000,
            memory: 8,
            f_tol: 0.0,
            g_tol: 1e-9,
        };
        let out = minimize(f, x0, &s);
        assert!(out.converged, "{out:?}");
        for (a, b) in out.x.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn finds_the_rosenbrock_minimum_and_respects_the_domain() {
        check(vec![-1.2, 1.0], &[1.0, 1.0]);
        check(vec![0.0; 6], &[1.0; 6]);
    }

    #[test]
    fn a_start_outside_the_domain_is_returned_unchanged() {
        let out = minimize(
            |_: &[f64], _: &mut [f64]| f64::INFINITY,
            vec![2.0],
            &Settings {
                max_iter: 10,
                memory: 3,
                f_tol: 0.0,
                g_tol: 0.0,
            },
        );
        assert!(!out.converged && out.x == [2.0] && out.iterations == 0);
    }
}
