//! A small dense BFGS minimizer for the BLT parameters (2d ≤ 20 unknowns), hand-written so that
//! the BLT optimizer carries no optimizer dependency and is deterministic to the last bit.
//!
//! Stopping rule: the step's decrease `f_k − f_{k+1} ≤ ftol` (absolute; the BLT objective is a
//! logarithm, so this is a relative decrease of the loss) on two consecutive iterations, or
//! `‖∇f‖_∞ ≤ gtol`, or no Armijo step along the steepest-descent direction (a numerical
//! minimum). Per iteration: one gradient and a backtracking line search of value-only calls,
//! plus O(m²) for the inverse-Hessian update (m unknowns).

/// The result of [`minimize`].
#[derive(Debug, Clone)]
pub(crate) struct BfgsResult {
    /// The minimizer found.
    pub x: Vec<f64>,
    /// Iterations taken.
    pub iterations: usize,
    /// Whether the stopping rule (not the iteration limit) ended the run.
    pub converged: bool,
}

/// Settings of [`minimize`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct BfgsSettings {
    pub max_iter: usize,
    pub ftol: f64,
    pub gtol: f64,
}

/// Minimizes `f` from `x0`. `value(x)` returns f(x) (non-finite = infeasible); `grad(x)`
/// returns (f(x), ∇f(x)).
pub(crate) fn minimize(
    mut value: impl FnMut(&[f64]) -> f64,
    mut grad: impl FnMut(&[f64]) -> (f64, Vec<f64>),
    x0: Vec<f64>,
    s: BfgsSettings,
) -> BfgsResult {
    let m = x0.len();
    let mut x = x0;
    let (mut f, mut g) = grad(&x);
    let mut h = identity(m);
    let mut fresh = true; // H is the identity (no curvature information yet).
    let mut small_steps = 0;
    for iter in 0..s.max_iter {
        if !f.is_finite() || norm_inf(&g) <= s.gtol {
            return done(x, iter, true);
        }
        let mut dir: Vec<f64> = (0..m).map(|i| -dot(&h[i * m..(i + 1) * m], &g)).collect();
        let mut slope = dot(&g, &dir);
        if slope >= 0.0 || slope.is_nan() {
            h = identity(m);
            fresh = true;
            dir = g.iter().map(|v| -v).collect();
            slope = -dot(&g, &g);
        }
        // Backtracking Armijo line search; a first step of at most 1 in the sup norm.
        let mut alpha = if fresh {
            1.0f64.min(1.0 / norm_inf(&dir))
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..60 {
            let trial: Vec<f64> = x.iter().zip(&dir).map(|(a, d)| a + alpha * d).collect();
            let ft = value(&trial);
            if ft.is_finite() && ft <= f + 1e-4 * alpha * slope {
                accepted = Some(trial);
                break;
            }
            alpha *= 0.5;
        }
        let Some(xn) = accepted else {
            if fresh {
                return done(x, iter, true);
            }
            h = identity(m);
            fresh = true;
            continue;
        };
        let (fnew, gnew) = grad(&xn);
        let sv: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = gnew.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&sv, &yv);
        if sy > 1e-12 * norm2(&sv) * norm2(&yv) {
            if fresh {
                // Scale the initial inverse Hessian by sᵀy/yᵀy (Nocedal & Wright eq. 6.20).
                let scale = sy / dot(&yv, &yv);
                h.iter_mut().for_each(|v| *v *= scale);
            }
            bfgs_update(&mut h, &sv, &yv, sy);
            fresh = false;
        }
        let decrease = f - fnew;
        x = xn;
        f = fnew;
        g = gnew;
        small_steps = if decrease <= s.ftol {
            small_steps + 1
        } else {
            0
        };
        if small_steps >= 2 {
            return done(x, iter + 1, true);
        }
    }
    done(x, s.max_iter, false)
}

fn done(x: Vec<f64>, iterations: usize, converged: bool) -> BfgsResult {
    BfgsResult {
        x,
        iterations,
        converged,
    }
}

/// `H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ`, ρ = 1/(sᵀy). O(m²).
fn bfgs_update(h: &mut [f64], s: &[f64], y: &[f64], sy: f64) {
    let m = s.len();
    let rho = 1.0 / sy;
    let hy: Vec<f64> = (0..m).map(|i| dot(&h[i * m..(i + 1) * m], y)).collect();
    let yhy = dot(y, &hy);
    for i in 0..m {
        for j in 0..m {
            h[i * m + j] +=
                -rho * (hy[i] * s[j] + s[i] * hy[j]) + (rho * rho * yhy + rho) * s[i] * s[j];
        }
    }
}

fn identity(m: usize) -> Vec<f64> {
    let mut h = vec![0.0; m * m];
    for i in 0..m {
        h[i * m + i] = 1.0;
    }
    h
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm2(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

fn norm_inf(a: &[f64]) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(x0: Vec<f64>, want: &[f64]) {
        // Rosenbrock in 2-D plus a separable quadratic in the rest.
        let f = |x: &[f64]| {
            let mut v = 100.0 * (x[1] - x[0] * x[0]).powi(2) + (1.0 - x[0]).powi(2);
            for i in 2..x.len() {
                v += (i as f64) * (x[i] - 0.5).powi(2);
            }
            v
        };
        let g = |x: &[f64]| {
            let h = 1e-7;
            let gr = (0..x.len())
                .map(|i| {
                    let (mut a, mut b) = (x.to_vec(), x.to_vec());
                    a[i] += h;
                    b[i] -= h;
                    (f(&a) - f(&b)) / (2.0 * h)
                })
                .collect();
            (f(x), gr)
        };
        let s = BfgsSettings {
            max_iter: 500,
            ftol: 1e-14,
            gtol: 1e-7,
        };
        let r = minimize(f, g, x0, s);
        assert!(r.converged);
        for (a, b) in r.x.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{:?} vs {want:?}", r.x);
        }
    }

    #[test]
    fn finds_the_minimum_of_rosenbrock_and_a_quadratic() {
        check(vec![-1.2, 1.0], &[1.0, 1.0]);
        check(vec![0.0, 0.0, 3.0, -2.0], &[1.0, 1.0, 0.5, 0.5]);
    }
}
