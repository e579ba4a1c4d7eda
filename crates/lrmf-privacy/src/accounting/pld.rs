//! Privacy-loss-distribution (PLD) accounting of DP-SGD with Poisson sampling: the tight
//! numerical answer, as `dp_accounting`'s `PLDAccountant`.
//!
//! Sampling assumed: [`Sampling::Poisson`] at rate q, strategy C = I with sensitivity 1 per step
//! (the subsampled Gaussian's pair of distributions is exact only for this sampler).
//!
//! Per step and per neighbouring direction (remove: P = (1−q)N(0, z²) + qN(1, z²) against
//! Q = N(0, z²); add: the reverse), the exact hockey-stick curve δ(ε) is evaluated on the grid
//! ε_i = i·h and turned into the discrete PLD of Doroshenko et al. ("connect the dots", 2022):
//! the distribution whose curve interpolates the dots linearly in e^ε — which dominates the true
//! convex curve everywhere, so it is pessimistic. The grid spans the privacy losses of all but
//! e^-50 of the mass; the curve's value at the top of the grid becomes mass at +∞. The `steps`-fold
//! composition is one FFT power over a window chosen by a Chernoff bound with tail mass τ = 1e-15;
//! the upper tail τ/2 is added to δ, negative FFT round-off is clipped to 0 (both pessimistic).
//! The answer is the maximum over the two directions.

use super::{
    Accountant, AccountingError, Result, Sampling, check_delta, check_epsilon_arg,
    check_noise_multiplier, check_sampling_rate, check_steps, ln_ndtr, log_add,
};
use realfft::RealFftPlanner;

/// Default `value_discretization_interval` h (as `dp_accounting`).
pub const DEFAULT_DISCRETIZATION: f64 = 1e-4;
/// Tail mass dropped by the composition window (added to δ).
pub const TAIL_MASS_TRUNCATION: f64 = 1e-15;
/// Gaussian quantile (in standard deviations) at which the per-step grid is cut: mass beyond is
/// below 1e-23 < e^-50 and its hockey-stick contribution goes to +∞.
const GRID_TAIL_SD: f64 = 10.0;
/// Largest per-step grid or FFT length we accept (memory guard).
const MAX_LEN: usize = 1 << 23;

/// PLD accountant for `steps` Poisson-subsampled Gaussian steps at rate `q`.
#[derive(Debug, Clone)]
pub struct PldPoisson {
    q: f64,
    steps: usize,
    h: f64,
}

/// Neighbouring direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The example is removed: P = (1−q)N(0, z²) + qN(1, z²), Q = N(0, z²).
    Remove,
    /// The example is added: P = N(0, z²), Q = (1−q)N(0, z²) + qN(1, z²).
    Add,
}

/// A discrete privacy loss distribution: mass `masses[j]` at loss `(offset + j)·h`, plus mass
/// `infinity_mass` at +∞.
#[derive(Debug, Clone)]
pub struct DiscretePld {
    /// Discretization interval h.
    pub h: f64,
    /// Grid index of `masses[0]`.
    pub offset: i64,
    /// Probability masses on the grid.
    pub masses: Vec<f64>,
    /// Mass at +∞ (includes truncated tails).
    pub infinity_mass: f64,
}

impl DiscretePld {
    /// δ(ε) = μ_∞ + Σ_j μ_j (1 − e^{ε − ℓ_j})₊. O(len).
    ///
    /// # Privacy contract
    /// Exact for this discrete PLD; when the PLD dominates the mechanism's (as the pessimistic
    /// connect-the-dots discretisation does, with truncated tails moved to +∞), the value is
    /// never below the mechanism's δ(ε).
    pub fn delta_for_epsilon(&self, epsilon: f64) -> f64 {
        let mut d = 0.0;
        for (j, &m) in self.masses.iter().enumerate().rev() {
            let loss = (self.offset + j as i64) as f64 * self.h;
            if loss <= epsilon {
                break;
            }
            d += m * -(epsilon - loss).exp_m1();
        }
        (self.infinity_mass + d).min(1.0)
    }

    /// The smallest ε ≥ 0 with δ(ε) ≤ `delta`, solved exactly on the piecewise curve
    /// δ(ε) = μ_∞ + A − e^ε·B between grid points. O(len). `None` if μ_∞ ≥ δ.
    ///
    /// # Privacy contract
    /// The smallest ε of this (dominating) PLD, so never below the mechanism's ε for `delta`
    /// (δ(ε) is non-increasing, and it is solved exactly between grid points).
    pub fn epsilon_for_delta(&self, delta: f64) -> Option<f64> {
        if self.infinity_mass >= delta {
            return None;
        }
        let (mut a, mut b) = (0.0f64, 0.0f64); // Σ μ and Σ μ e^{−ℓ} over grid points above
        let mut upper = f64::INFINITY; // loss of the grid point just above
        for (j, &m) in self.masses.iter().enumerate().rev() {
            let loss = (self.offset + j as i64) as f64 * self.h;
            if loss <= 0.0 {
                break;
            }
            let d = self.infinity_mass + a - loss.exp() * b;
            if d > delta {
                // root in (loss, upper]
                let e = ((self.infinity_mass + a - delta) / b).ln();
                return Some(e.max(loss).min(upper));
            }
            a += m;
            b += m * (-loss).exp();
            upper = loss;
        }
        let d0 = self.infinity_mass + a - b;
        if d0 <= delta {
            return Some(0.0);
        }
        let e = ((self.infinity_mass + a - delta) / b).ln();
        Some(e.max(0.0).min(upper))
    }
}

/// Exact δ(ε) of one subsampled Gaussian step in direction `dir` (noise z, rate q), by the
/// formulas in the module doc, in log space: `e^{T1}·(−expm1(T2 − T1))`.
pub fn single_step_delta(q: f64, z: f64, dir: Direction, epsilon: f64) -> f64 {
    let z2 = z * z;
    let (lq, l1q) = (q.ln(), (-q).ln_1p());
    match dir {
        Direction::Remove => {
            if q == 1.0 {
                // Plain Gaussian: the analytic formula holds for every real ε.
                return super::gaussian::delta_for_epsilon(z, epsilon);
            }
            if epsilon <= l1q {
                return -epsilon.exp_m1();
            }
            // x_ε = z² ln((e^ε − (1−q))/q) + 1/2
            let x = z2 * ((epsilon.exp_m1() + q).ln() - lq) + 0.5;
            let a = x / z;
            let t1 = log_add(l1q + ln_ndtr(-a), lq + ln_ndtr(-(a - 1.0 / z)));
            let t2 = epsilon + ln_ndtr(-a);
            (t1.exp() * -(t2 - t1).exp_m1()).clamp(0.0, 1.0)
        }
        Direction::Add => {
            if q == 1.0 {
                return single_step_delta(q, z, Direction::Remove, epsilon);
            }
            if epsilon >= -l1q {
                return 0.0;
            }
            // x' = z² ln((e^{−ε} − (1−q))/q) + 1/2
            let x = z2 * (((-epsilon).exp_m1() + q).ln() - lq) + 0.5;
            let a = x / z;
            let t1 = ln_ndtr(a);
            let t2 = epsilon + log_add(l1q + ln_ndtr(a), lq + ln_ndtr(a - 1.0 / z));
            (t1.exp() * -(t2 - t1).exp_m1()).clamp(0.0, 1.0)
        }
    }
}

/// Privacy loss ℓ(x) of the remove direction at output x: ln(1 − q + q·e^{(2x−1)/(2z²)}).
fn remove_loss(q: f64, z: f64, x: f64) -> f64 {
    log_add((-q).ln_1p(), q.ln() + (2.0 * x - 1.0) / (2.0 * z * z))
}

impl PldPoisson {
    /// With the default discretization 1e-4. Errors name `--sampling-rate` and `--steps`.
    pub fn new(sampling_rate: f64, steps: usize) -> Result<Self> {
        Self::with_discretization(sampling_rate, steps, DEFAULT_DISCRETIZATION)
    }

    /// With discretization interval `h` > 0.
    pub fn with_discretization(sampling_rate: f64, steps: usize, h: f64) -> Result<Self> {
        check_sampling_rate(sampling_rate)?;
        check_steps(steps)?;
        if !(h.is_finite() && h > 0.0 && h <= 1.0) {
            return Err(super::invalid(
                "value-discretization-interval",
                h,
                "in (0, 1]",
            ));
        }
        Ok(Self {
            q: sampling_rate,
            steps,
            h,
        })
    }

    /// The connect-the-dots PLD of one step in direction `dir`.
    ///
    /// Grid: [ℓ_lo, ℓ_hi] rounded outwards to multiples of h, where ℓ_lo/ℓ_hi are the privacy
    /// losses at the ±10-sd truncation points (or the loss's bounds when finite). Masses:
    /// B_i = (δ_i − δ_{i+1})/(e^{ε_{i+1}} − e^{ε_i}), B_{−1} = (1 − δ_0)e^{−ε_0}, B_m = 0,
    /// μ_i = e^{ε_i}(B_{i−1} − B_i), μ_∞ = δ_m. O(grid) normal-CDF evaluations.
    pub fn single_step(&self, z: f64, dir: Direction) -> Result<DiscretePld> {
        let (q, h) = (self.q, self.h);
        let (lo_loss, hi_loss) = match dir {
            Direction::Remove => {
                let lo = if q == 1.0 {
                    remove_loss(q, z, -GRID_TAIL_SD * z)
                } else {
                    (-q).ln_1p()
                };
                (lo, remove_loss(q, z, 1.0 + GRID_TAIL_SD * z))
            }
            Direction::Add => {
                let hi = if q == 1.0 {
                    -remove_loss(q, z, 1.0 - GRID_TAIL_SD * z)
                } else {
                    -(-q).ln_1p()
                };
                (-remove_loss(q, z, GRID_TAIL_SD * z), hi)
            }
        };
        let i_lo = (lo_loss / h).floor();
        let i_hi = (hi_loss / h).ceil();
        let len = i_hi - i_lo + 1.0;
        if !(len.is_finite() && len >= 2.0 && len <= MAX_LEN as f64) {
            return Err(AccountingError::Unreachable(format!(
                "the PLD grid at --noise-multiplier {z} needs {len} points (limit {MAX_LEN}); increase the noise multiplier or the discretization interval"
            )));
        }
        let (i_lo, len) = (i_lo as i64, len as usize);
        let eps: Vec<f64> = (0..len).map(|i| (i_lo + i as i64) as f64 * h).collect();
        let deltas: Vec<f64> = eps
            .iter()
            .map(|&e| single_step_delta(q, z, dir, e))
            .collect();
        let mut slopes = Vec::with_capacity(len + 1); // B_{−1}, B_0, …, B_m
        slopes.push((1.0 - deltas[0]) * (-eps[0]).exp());
        for i in 0..len - 1 {
            let de = eps[i + 1].exp() - eps[i].exp();
            slopes.push((deltas[i] - deltas[i + 1]) / de);
        }
        slopes.push(0.0);
        let masses: Vec<f64> = (0..len)
            .map(|i| (eps[i].exp() * (slopes[i] - slopes[i + 1])).max(0.0))
            .collect();
        Ok(DiscretePld {
            h,
            offset: i_lo,
            masses,
            infinity_mass: deltas[len - 1],
        })
    }

    /// The `steps`-fold composition of the one-step PLD in direction `dir`: an FFT power over
    /// the Chernoff window. O(N log N), N the window length.
    pub fn composed(&self, z: f64, dir: Direction) -> Result<DiscretePld> {
        let one = self.single_step(z, dir)?;
        compose(&one, self.steps)
    }
}

/// ln Σ_j μ_j e^{t·i_j} (log-MGF in grid units) from the pairs `(i_j, ln μ_j)`, stably.
fn log_mgf(points: &[(f64, f64)], t: f64) -> f64 {
    let m = points
        .iter()
        .fold(f64::NEG_INFINITY, |m, &(i, lm)| m.max(lm + t * i));
    let s: f64 = points.iter().map(|&(i, lm)| (lm + t * i - m).exp()).sum();
    m + s.ln()
}

/// `steps`-fold self-composition of `p` (see the module doc for the pessimistic truncation).
pub fn compose(p: &DiscretePld, steps: usize) -> Result<DiscretePld> {
    let k = steps as f64;
    let len = p.masses.len() as i64;
    let (nat_lo, nat_hi) = (k * p.offset as f64, k * (p.offset + len - 1) as f64);
    // Chernoff window: P(S ≥ s) ≤ exp(k·K(t) − t·s), t > 0, and symmetrically for t < 0.
    let log_tail = (TAIL_MASS_TRUNCATION / 2.0).ln();
    let (mut s_hi, mut s_lo) = (nat_hi, nat_lo);
    let points: Vec<(f64, f64)> = p
        .masses
        .iter()
        .enumerate()
        .filter(|(_, mu)| **mu > 0.0)
        .map(|(j, &mu)| ((p.offset + j as i64) as f64, mu.ln()))
        .collect();
    for i in 0..=48 {
        let theta = 10f64.powf(-3.0 + 6.0 * i as f64 / 48.0); // order in loss units
        let t = theta * p.h;
        let up = (k * log_mgf(&points, t) - log_tail) / t;
        if up.is_finite() {
            s_hi = s_hi.min(up.ceil());
        }
        // P(S ≤ s) ≤ exp(k·K(−t) + t·s) for t > 0.
        let down = (log_tail - k * log_mgf(&points, -t)) / t;
        if down.is_finite() {
            s_lo = s_lo.max(down.floor());
        }
    }
    if s_lo > s_hi {
        s_lo = s_hi;
    }
    let width = s_hi - s_lo + 1.0;
    if !(width.is_finite() && width <= MAX_LEN as f64) {
        return Err(AccountingError::Unreachable(format!(
            "the composed PLD needs a window of {width} points (limit {MAX_LEN})"
        )));
    }
    let n_fft = (width as usize).next_power_of_two().max(2);
    let mut x = vec![0.0f64; n_fft];
    for (j, &mu) in p.masses.iter().enumerate() {
        x[(p.offset + j as i64).rem_euclid(n_fft as i64) as usize] += mu;
    }
    let mut planner = RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n_fft);
    let inv = planner.plan_fft_inverse(n_fft);
    let mut spec = fwd.make_output_vec();
    fwd.process(&mut x, &mut spec)
        .map_err(|e| AccountingError::Unreachable(format!("FFT failed: {e}")))?;
    let power = u32::try_from(steps)
        .map_err(|_| super::invalid("--steps", steps, "an integer in [1, 2^31]"))?;
    for c in spec.iter_mut() {
        *c = c.powu(power);
    }
    spec[0].im = 0.0;
    let last = spec.len() - 1;
    spec[last].im = 0.0;
    let mut y = inv.make_output_vec();
    inv.process(&mut spec, &mut y)
        .map_err(|e| AccountingError::Unreachable(format!("FFT failed: {e}")))?;
    let scale = 1.0 / n_fft as f64;
    let (s_lo, s_hi) = (s_lo as i64, s_hi as i64);
    let masses: Vec<f64> = (s_lo..=s_hi)
        .map(|s| (y[s.rem_euclid(n_fft as i64) as usize] * scale).max(0.0))
        .collect();
    let inf = 1.0 - (1.0 - p.infinity_mass).powf(k);
    let upper_cut = if s_hi < nat_hi as i64 {
        TAIL_MASS_TRUNCATION / 2.0
    } else {
        0.0
    };
    Ok(DiscretePld {
        h: p.h,
        offset: s_lo,
        masses,
        infinity_mass: (inf + upper_cut).min(1.0),
    })
}

impl Accountant for PldPoisson {
    fn name(&self) -> &'static str {
        "pld-poisson"
    }

    fn sampling(&self) -> Sampling {
        Sampling::Poisson { q: self.q }
    }

    /// # Privacy contract
    /// The ε of a pessimistic discrete PLD (connect the dots, truncated mass at +∞), maximised
    /// over add and remove: never below the exact ε of the subsampled Gaussian.
    fn epsilon(&self, noise_multiplier: f64, delta: f64) -> Result<f64> {
        check_noise_multiplier(noise_multiplier)?;
        check_delta(delta)?;
        let mut eps = 0.0f64;
        for dir in [Direction::Remove, Direction::Add] {
            let pld = self.composed(noise_multiplier, dir)?;
            let e = pld.epsilon_for_delta(delta).ok_or_else(|| {
                AccountingError::Unreachable(format!(
                    "--delta {delta} is below the PLD's mass at infinity {:e}",
                    pld.infinity_mass
                ))
            })?;
            eps = eps.max(e);
        }
        Ok(eps)
    }

    /// # Privacy contract
    /// δ of the pessimistic discrete PLD, maximised over add and remove.
    fn delta(&self, noise_multiplier: f64, epsilon: f64) -> Result<f64> {
        check_noise_multiplier(noise_multiplier)?;
        check_epsilon_arg(epsilon)?;
        let mut d = 0.0f64;
        for dir in [Direction::Remove, Direction::Add] {
            d = d.max(
                self.composed(noise_multiplier, dir)?
                    .delta_for_epsilon(epsilon),
            );
        }
        Ok(d)
    }

    fn z_tolerance(&self) -> f64 {
        1e-9
    }

    fn rounding(&self) -> String {
        format!(
            "pessimistic connect-the-dots PLD (h = {}), truncated tails added to δ, max over add/remove; z is the upper end of a bisection bracket",
            self.h
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(got: f64, want: f64, rel: f64) {
        assert!(
            (got - want).abs() <= rel * want.abs().max(1e-300),
            "got {got}, want {want}"
        );
    }

    #[test]
    fn single_step_delta_matches_the_direct_formula() {
        use statrs::function::erf::erfc;
        let phi = |x: f64| 0.5 * erfc(-x / std::f64::consts::SQRT_2);
        let (q, z) = (0.1, 1.3);
        for &e in &[0.0f64, 0.05, 0.5, 2.0] {
            // remove: P(L>ε) − e^ε Q(L>ε) with x_ε by the inverse of the loss
            let x = z * z * ((e.exp() - (1.0 - q)) / q).ln() + 0.5;
            let want = (1.0 - q) * phi(-x / z) + q * phi(-(x - 1.0) / z) - e.exp() * phi(-x / z);
            check(single_step_delta(q, z, Direction::Remove, e), want, 1e-9);
        }
        for &e in &[0.0f64, 0.01, 0.05] {
            let x = z * z * (((-e).exp() - (1.0 - q)) / q).ln() + 0.5;
            let want = phi(x / z) - e.exp() * ((1.0 - q) * phi(x / z) + q * phi((x - 1.0) / z));
            check(single_step_delta(q, z, Direction::Add, e), want, 1e-9);
        }
        assert_eq!(single_step_delta(q, z, Direction::Add, 0.2), 0.0);
    }

    #[test]
    fn connect_the_dots_reproduces_the_curve_on_the_grid() {
        let a = PldPoisson::with_discretization(0.05, 1, 1e-3).unwrap();
        for dir in [Direction::Remove, Direction::Add] {
            let p = a.single_step(0.9, dir).unwrap();
            let total: f64 = p.masses.iter().sum::<f64>() + p.infinity_mass;
            check(total, 1.0, 1e-9);
            for &i in &[3usize, 50, 200] {
                if i >= p.masses.len() {
                    continue;
                }
                let e = (p.offset + i as i64) as f64 * p.h;
                let want = single_step_delta(0.05, 0.9, dir, e);
                assert!(
                    (p.delta_for_epsilon(e) - want).abs() < 1e-12 + 1e-9 * want,
                    "{dir:?} {i}"
                );
            }
        }
    }

    #[test]
    fn full_batch_composition_matches_the_gaussian() {
        // q = 1, k steps of noise z = one Gaussian of noise z/√k: exact δ known.
        let (z, k) = (2.0, 4usize);
        let a = PldPoisson::with_discretization(1.0, k, 1e-4).unwrap();
        let want = super::super::gaussian::delta_for_epsilon(z / (k as f64).sqrt(), 1.0);
        let got = a.delta(z, 1.0).unwrap();
        assert!(got >= want, "{got} < {want}");
        check(got, want, 2e-3);
    }

    #[test]
    fn epsilon_for_delta_inverts_delta_for_epsilon() {
        let a = PldPoisson::new(0.02, 50).unwrap();
        let p = a.composed(1.1, Direction::Remove).unwrap();
        let e = p.epsilon_for_delta(1e-5).unwrap();
        check(p.delta_for_epsilon(e), 1e-5, 1e-9);
        assert!(p.delta_for_epsilon(e * 0.999) > 1e-5);
    }

    #[test]
    fn tiny_noise_is_an_error_and_calibration_steps_over_it() {
        let a = PldPoisson::with_discretization(0.5, 1, 1e-3).unwrap();
        assert!(matches!(
            a.epsilon(1e-4, 1e-5),
            Err(AccountingError::Unreachable(_))
        ));
        // A large target drives the bracket towards small z; unevaluable z count as "not met".
        let z = a.calibrate(6.0, 1e-5).unwrap();
        assert!(a.delta(z, 6.0).unwrap() <= 1e-5);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8))]
        // Each case composes full PLDs, so the grid is coarse (h = 1e-3) and the run short.
        #[test]
        fn epsilon_decreases_in_z(z in 0.6f64..3.0, f in 1.05f64..1.5, q in 0.01f64..0.2) {
            let a = PldPoisson::with_discretization(q, 20, 1e-3).unwrap();
            proptest::prop_assert!(a.epsilon(z * f, 1e-5).unwrap() <= a.epsilon(z, 1e-5).unwrap());
        }

        #[test]
        fn calibrated_z_meets_the_target(e in 0.5f64..4.0, q in 0.01f64..0.2) {
            let a = PldPoisson::with_discretization(q, 20, 1e-3).unwrap();
            let z = a.calibrate(e, 1e-5).unwrap();
            proptest::prop_assert!(a.delta(z, e).unwrap() <= 1e-5);
            proptest::prop_assert!(a.epsilon(z, 1e-5).unwrap() <= e * (1.0 + 1e-12));
        }

        #[test]
        fn delta_is_monotone_in_epsilon(z in 0.6f64..3.0, e in 0.0f64..4.0, s in 1e-3f64..1.0) {
            let a = PldPoisson::with_discretization(0.05, 20, 1e-3).unwrap();
            proptest::prop_assert!(a.delta(z, e + s).unwrap() <= a.delta(z, e).unwrap());
        }
    }
}
