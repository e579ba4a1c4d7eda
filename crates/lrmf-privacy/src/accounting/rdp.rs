//! Rényi-DP accounting of DP-SGD with Poisson sampling: the subsampled Gaussian mechanism of
//! Mironov, Talwar & Zhang (2019), composed over steps, converted to (ε, δ) with the improved
//! bound of Balle et al. (2020) — the same formulas and default orders as Google's
//! `dp_accounting` `RdpAccountant`.
//!
//! Sampling assumed: [`Sampling::Poisson`] at rate q (each example joins each step
//! independently), strategy C = I with sensitivity 1 per step. The subsampled-Gaussian RDP bound
//! is proved for exactly this sampler; it does not hold for fixed or shuffled batches.

use super::{
    Accountant, AccountingError, Result, Sampling, check_delta, check_epsilon_arg,
    check_noise_multiplier, check_sampling_rate, check_steps, ln_ndtr, log_add,
};

/// The default Rényi orders of `dp_accounting` 0.6: 1.1, 1.2, …, 10.9, 12, 13, …, 63, 128, 256,
/// 512, 1024.
pub fn default_orders() -> Vec<f64> {
    let mut v: Vec<f64> = (1..100).map(|x| 1.0 + x as f64 / 10.0).collect();
    v.extend((12..64).map(|x| x as f64));
    v.extend([128.0, 256.0, 512.0, 1024.0]);
    v
}

/// RDP accountant for `steps` Poisson-subsampled Gaussian steps at rate `q`.
#[derive(Debug, Clone)]
pub struct RdpPoisson {
    q: f64,
    steps: usize,
    orders: Vec<f64>,
}

impl RdpPoisson {
    /// With the default orders. Errors name `--sampling-rate` (q ∈ (0, 1]) and `--steps` (≥ 1).
    pub fn new(sampling_rate: f64, steps: usize) -> Result<Self> {
        Self::with_orders(sampling_rate, steps, default_orders())
    }

    /// With explicit Rényi orders (each > 1).
    pub fn with_orders(sampling_rate: f64, steps: usize, orders: Vec<f64>) -> Result<Self> {
        check_sampling_rate(sampling_rate)?;
        check_steps(steps)?;
        if orders.is_empty() || orders.iter().any(|a| !(a.is_finite() && *a > 1.0)) {
            return Err(super::invalid(
                "orders",
                format!("{orders:?}"),
                "a non-empty list of finite orders > 1",
            ));
        }
        Ok(Self {
            q: sampling_rate,
            steps,
            orders,
        })
    }

    /// The composed RDP ε_α for every order, `steps · rdp_α(q, z)`.
    pub fn rdp(&self, z: f64) -> Vec<f64> {
        self.orders
            .iter()
            .map(|&a| self.steps as f64 * rdp_subsampled_gaussian(self.q, z, a))
            .collect()
    }

    /// The Rényi orders.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }
}

/// RDP of order α of one Poisson-subsampled Gaussian step (rate q, noise z, sensitivity 1):
/// `ln A_α / (α − 1)` with A_α of Mironov, Talwar & Zhang (2019): the binomial sum for integer
/// α (O(α) terms), the two-sided erfc series for fractional α (terms until both fall below
/// e^-30, as `dp_accounting`). q = 1 gives α/(2z²).
pub fn rdp_subsampled_gaussian(q: f64, z: f64, alpha: f64) -> f64 {
    if q == 1.0 {
        return alpha / (2.0 * z * z);
    }
    let log_a = if alpha.fract() == 0.0 {
        log_a_int(q, z, alpha as u64)
    } else {
        log_a_frac(q, z, alpha)
    };
    log_a / (alpha - 1.0)
}

fn ln_binom_int(n: u64, k: u64) -> f64 {
    use statrs::function::gamma::ln_gamma;
    ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
}

fn log_a_int(q: f64, z: f64, alpha: u64) -> f64 {
    let (lq, l1q) = (q.ln(), (-q).ln_1p());
    let mut log_a = f64::NEG_INFINITY;
    for i in 0..=alpha {
        let fi = i as f64;
        let log_coef = ln_binom_int(alpha, i) + fi * lq + (alpha - i) as f64 * l1q;
        let s = log_coef + (fi * fi - fi) / (2.0 * z * z);
        log_a = log_add(log_a, s);
    }
    log_a
}

/// ln(eᵃ − eᵇ) for a ≥ b, as `dp_accounting`'s `_log_sub`.
fn log_sub(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    if a == b {
        return f64::NEG_INFINITY;
    }
    let d = (a - b).exp_m1();
    if d.is_infinite() { a } else { d.ln() + b }
}

/// ln erfc(x) = ln 2 + ln Φ(−x√2).
fn log_erfc(x: f64) -> f64 {
    std::f64::consts::LN_2 + ln_ndtr(-x * std::f64::consts::SQRT_2)
}

fn log_a_frac(q: f64, z: f64, alpha: f64) -> f64 {
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z2 = z * z;
    let z0 = z2 * (1.0 / q - 1.0).ln() + 0.5;
    let (lq, l1q) = (q.ln(), (-q).ln_1p());
    let mut log_abs_coef = 0.0f64; // ln |binom(α, 0)|
    let mut sign = 1.0f64;
    let mut i = 0u64;
    loop {
        if i > 0 {
            let f = (alpha - i as f64 + 1.0) / i as f64;
            if f < 0.0 {
                sign = -sign;
            }
            log_abs_coef += f.abs().ln();
        }
        let fi = i as f64;
        let j = alpha - fi;
        let log_t0 = log_abs_coef + fi * lq + j * l1q;
        let log_t1 = log_abs_coef + j * lq + fi * l1q;
        let log_e0 = 0.5f64.ln() + log_erfc((fi - z0) / (std::f64::consts::SQRT_2 * z));
        let log_e1 = 0.5f64.ln() + log_erfc((z0 - j) / (std::f64::consts::SQRT_2 * z));
        let log_s0 = log_t0 + (fi * fi - fi) / (2.0 * z2) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * z2) + log_e1;
        if sign > 0.0 {
            log_a0 = log_add(log_a0, log_s0);
            log_a1 = log_add(log_a1, log_s1);
        } else {
            log_a0 = log_sub(log_a0, log_s0);
            log_a1 = log_sub(log_a1, log_s1);
        }
        i += 1;
        if log_s0.max(log_s1) < -30.0 || i > 100_000 {
            break;
        }
    }
    log_add(log_a0, log_a1)
}

/// ε from RDP (Balle et al. 2020, Prop. 12 / `dp_accounting.compute_epsilon`):
/// `ε = min_α [ r_α + ln(1 − 1/α) − ln(δ·α)/(α − 1) ]` (orders with α ≤ 1.01 skipped), and 0 when
/// `δ² + expm1(−r_α) > 0` for some order (the KL bound). O(number of orders).
///
/// # Privacy contract
/// For a mechanism that is (α, r_α)-RDP at every given order, the returned ε makes it (ε, δ)-DP:
/// each candidate is a valid conversion (Balle et al. 2020, Prop. 12), so their minimum is too.
/// The caller must pass RDP values that are upper bounds (as [`RdpPoisson`] computes them).
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> f64 {
    let mut best = f64::INFINITY;
    for (&a, &r) in orders.iter().zip(rdp) {
        let e = if delta * delta + (-r).exp_m1() > 0.0 {
            0.0
        } else if a > 1.01 {
            r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
        } else {
            f64::INFINITY
        };
        best = best.min(e);
    }
    best.max(0.0)
}

/// δ from RDP (`dp_accounting.compute_delta`): `min_α` of the KL bound `sqrt(1 − e^{−r_α})` and
/// `exp((α − 1)(r_α − ε + ln(1 − 1/α)) − ln α)`. O(number of orders).
pub fn delta_from_rdp(orders: &[f64], rdp: &[f64], epsilon: f64) -> f64 {
    let mut best = f64::INFINITY;
    for (&a, &r) in orders.iter().zip(rdp) {
        let mut log_delta = if r == 0.0 {
            f64::NEG_INFINITY
        } else {
            0.5 * (-(-r).exp()).ln_1p()
        };
        if a > 1.01 {
            let bound = (a - 1.0) * (r - epsilon + (-1.0 / a).ln_1p()) - a.ln();
            log_delta = log_delta.min(bound);
        }
        best = best.min(log_delta);
    }
    best.exp().min(1.0)
}

impl Accountant for RdpPoisson {
    fn name(&self) -> &'static str {
        "rdp-poisson"
    }

    fn sampling(&self) -> Sampling {
        Sampling::Poisson { q: self.q }
    }

    /// # Privacy contract
    /// RDP is an upper bound on the privacy loss; the conversion is a valid (ε, δ) bound.
    fn epsilon(&self, noise_multiplier: f64, delta: f64) -> Result<f64> {
        check_noise_multiplier(noise_multiplier)?;
        check_delta(delta)?;
        let e = epsilon_from_rdp(&self.orders, &self.rdp(noise_multiplier), delta);
        if e.is_finite() {
            Ok(e)
        } else {
            Err(AccountingError::Unreachable(format!(
                "RDP gives no finite ε at --noise-multiplier {noise_multiplier}, --delta {delta}"
            )))
        }
    }

    /// # Privacy contract
    /// A valid upper bound on δ(ε).
    fn delta(&self, noise_multiplier: f64, epsilon: f64) -> Result<f64> {
        check_noise_multiplier(noise_multiplier)?;
        check_epsilon_arg(epsilon)?;
        Ok(delta_from_rdp(
            &self.orders,
            &self.rdp(noise_multiplier),
            epsilon,
        ))
    }

    fn z_tolerance(&self) -> f64 {
        1e-12
    }

    fn rounding(&self) -> String {
        "RDP upper bound (Mironov-Talwar-Zhang), Balle et al. 2020 conversion; z is the upper end of a bisection bracket"
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(got: f64, want: f64, rel: f64) {
        assert!(
            (got - want).abs() <= rel * want.abs(),
            "got {got}, want {want}"
        );
    }

    #[test]
    fn full_batch_is_the_gaussian_rdp() {
        check(rdp_subsampled_gaussian(1.0, 2.0, 3.0), 3.0 / 8.0, 1e-15);
    }

    #[test]
    fn fractional_and_integer_orders_agree_at_the_seam() {
        // A_α is continuous in α: the erfc series at α = 3 ± 1e-6 matches the binomial sum at 3.
        for &(q, z) in &[(0.01, 1.0), (0.1, 2.0), (0.3, 0.8)] {
            let int = rdp_subsampled_gaussian(q, z, 3.0);
            let lo = rdp_subsampled_gaussian(q, z, 3.0 - 1e-7);
            let hi = rdp_subsampled_gaussian(q, z, 3.0 + 1e-7);
            check(lo, int, 1e-5);
            check(hi, int, 1e-5);
        }
    }

    #[test]
    fn integer_order_two_closed_form() {
        // A_2 = (1−q)² + 2q(1−q) + q² e^{1/z²} = 1 + q²(e^{1/z²} − 1).
        for &(q, z) in &[(0.01f64, 1.0f64), (0.5, 0.7)] {
            let want = (q * q * ((1.0 / (z * z)).exp() - 1.0)).ln_1p();
            check(rdp_subsampled_gaussian(q, z, 2.0), want, 1e-10);
        }
    }

    #[test]
    fn delta_and_epsilon_conversions_are_consistent() {
        let a = RdpPoisson::new(0.01, 1000).unwrap();
        let e = a.epsilon(1.0, 1e-5).unwrap();
        let d = a.delta(1.0, e).unwrap();
        assert!(d <= 1e-5 * (1.0 + 1e-9), "{d}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn epsilon_decreases_in_z(z in 0.5f64..5.0, f in 1.01f64..2.0, q in 0.001f64..0.5) {
            let a = RdpPoisson::new(q, 100).unwrap();
            prop_assert!(a.epsilon(z * f, 1e-5).unwrap() <= a.epsilon(z, 1e-5).unwrap());
        }

        #[test]
        fn calibrated_z_meets_the_target(e in 0.5f64..10.0, q in 0.001f64..0.2) {
            let a = RdpPoisson::new(q, 50).unwrap();
            let z = a.calibrate(e, 1e-5).unwrap();
            prop_assert!(a.epsilon(z, 1e-5).unwrap() <= e * (1.0 + 1e-9));
        }

        #[test]
        fn delta_is_monotone_in_epsilon(z in 0.5f64..5.0, e in 0.0f64..10.0, s in 1e-3f64..1.0) {
            let a = RdpPoisson::new(0.02, 200).unwrap();
            prop_assert!(a.delta(z, e + s).unwrap() <= a.delta(z, e).unwrap());
        }
    }
}
