//! The analytic Gaussian mechanism (Balle & Wang 2018): the exact (ε, δ) curve of one Gaussian
//! release with sensitivity 1 and noise std z, used for matrix mechanisms without amplification.
//!
//! Sampling assumed: [`Sampling::None`] — every example in every epoch in a fixed order. The
//! whole training run is one release of `CG + σZ` with `σ = z·sens(C)`, sens(C) taken under the
//! participation pattern (b-min-separation); dividing by sens(C) leaves a Gaussian mechanism of
//! sensitivity 1 and noise z, so ε depends on z only.

use super::{
    Accountant, Result, Sampling, bisect_epsilon, check_delta, check_epsilon_arg,
    check_noise_multiplier, ln_ndtr, ln_ndtr_error,
};

/// The analytic Gaussian accountant (no amplification).
///
/// δ(ε) = Φ(1/(2z) − εz) − e^ε Φ(−1/(2z) − εz), evaluated as
/// `Φ(a)·(−expm1(ε + ln Φ(b) − ln Φ(a)))` so that neither underflow nor the cancellation of
/// the two terms loses the answer. Every decision (ε, calibrated z, reported δ) uses the
/// rigorous upper bound [`delta_upper_bound`], so z and ε are never below the exact solution.
/// O(1) per evaluation; ε and z by bisection, O(50) evaluations.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnalyticGaussian;

const U: f64 = f64::EPSILON / 2.0;

/// δ(ε) of the Gaussian mechanism with sensitivity 1 and noise std `z`, for ε ≥ 0: the f64
/// evaluation of the exact formula (relative error ≲ 1e-13 away from cancellation; see
/// [`delta_upper_bound`] for the bound to use in privacy decisions).
///
/// # Privacy contract
/// None beyond f64 rounding: it can be below the exact δ by ~1e-13 relative. Privacy decisions
/// use [`delta_upper_bound`], which adds a proved error term.
pub fn delta_for_epsilon(z: f64, epsilon: f64) -> f64 {
    delta_parts(z, epsilon, false)
}

/// An upper bound on the exact δ(ε) of the Gaussian mechanism (sensitivity 1, noise std `z`),
/// for the f64 inputs `z` and `epsilon` taken as exact.
///
/// # Privacy contract
/// Never below the exact δ(ε), assuming `libm::erfc` is within [`super::ERFC_REL_ERR`]
/// relative error (tested against 80-digit mpmath). Proof sketch: with a = 1/(2z) − εz,
/// b = a − 1/z and t = ε + ln Φ(b) − ln Φ(a) ≤ 0, δ = Φ(a)(1 − eᵗ). The computed â, b̂ are
/// within 3u(1/(2z) + εz) of a, b (u = 2⁻⁵³); [`super::ln_ndtr_error`] bounds the error of each
/// ln Φ (E_a, E_b); the sum t̂ adds ≤ 2u(ε + |ln Φ(a)| + |ln Φ(b)|). So the true t ≥ t̂ − E_t
/// and Φ(a) ≤ exp(ln Φ̂(a) + E_a), and
/// δ ≤ exp(ln Φ̂(a) + E_a) · (−expm1(t̂ − E_t)) · (1 + 8u), the returned value (the last
/// factor covers exp, expm1 and the product). The bound is tight to ≈ E_t/|t| relative: where
/// e^ε Φ(b) nearly cancels Φ(a) (tiny ε, huge z) it is looser, never lower.
pub fn delta_upper_bound(z: f64, epsilon: f64) -> f64 {
    delta_parts(z, epsilon, true)
}

fn delta_parts(z: f64, epsilon: f64, upper: bool) -> f64 {
    let (h, ez) = (0.5 / z, epsilon * z);
    let a = h - ez;
    let b = -h - ez;
    let ln_pa = ln_ndtr(a);
    let ln_pb = ln_ndtr(b);
    let t = epsilon + ln_pb - ln_pa;
    if !upper {
        return (ln_pa.exp() * -t.exp_m1()).clamp(0.0, 1.0);
    }
    let x_err = 3.0 * U * (h + ez);
    let e_a = ln_ndtr_error(a, x_err);
    let e_b = ln_ndtr_error(b, x_err);
    let e_t = e_a + e_b + 2.0 * U * (epsilon + ln_pa.abs() + ln_pb.abs());
    let d = (ln_pa + e_a).exp() * -(t - e_t).exp_m1() * (1.0 + 8.0 * U);
    d.clamp(0.0, 1.0)
}

impl Accountant for AnalyticGaussian {
    fn name(&self) -> &'static str {
        "gaussian"
    }

    fn sampling(&self) -> Sampling {
        Sampling::None
    }

    /// # Privacy contract
    /// Bisection on [`delta_upper_bound`] to relative width 1e-13; returns the upper end, where
    /// the bound (hence the exact δ) is ≤ `delta`: never below the exact ε.
    fn epsilon(&self, noise_multiplier: f64, delta: f64) -> Result<f64> {
        check_noise_multiplier(noise_multiplier)?;
        check_delta(delta)?;
        bisect_epsilon(|e| Ok(delta_upper_bound(noise_multiplier, e)), delta, 1e-13)
    }

    /// # Privacy contract
    /// [`delta_upper_bound`]: never below the exact δ(ε). The default `calibrate` bisects it, so
    /// the calibrated z (where this bound is ≤ δ) is never below the exact solution.
    fn delta(&self, noise_multiplier: f64, epsilon: f64) -> Result<f64> {
        check_noise_multiplier(noise_multiplier)?;
        check_epsilon_arg(epsilon)?;
        Ok(delta_upper_bound(noise_multiplier, epsilon))
    }

    fn z_tolerance(&self) -> f64 {
        1e-13
    }

    fn rounding(&self) -> String {
        "analytic-Gaussian δ(ε) with a rigorous floating-point error bound added; ε and z are the upper ends of bisection brackets of relative width 1e-13"
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
    fn balle_wang_example() {
        let z = AnalyticGaussian.calibrate(9.0, 1e-5).unwrap();
        check(z, 0.544_745_789_814_352, 1e-9);
        assert!(AnalyticGaussian.delta(z, 9.0).unwrap() <= 1e-5);
    }

    #[test]
    fn delta_agrees_with_the_direct_formula_where_it_is_safe() {
        // Oracle: the textbook two-term formula with erfc (fine away from cancellation).
        let phi = |x: f64| 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
        for &(z, e) in &[(1.0, 0.5), (0.7, 2.0), (2.0, 0.1), (0.5447, 9.0)] {
            let direct = phi(0.5 / z - e * z) - e.exp() * phi(-0.5 / z - e * z);
            check(delta_for_epsilon(z, e), direct, 1e-11);
        }
    }

    #[test]
    fn delta_at_zero_is_total_variation() {
        // δ(0) = 2Φ(1/(2z)) − 1 = erf(1/(2√2 z)); the upper bound sits above, within 1e-12.
        for &z in &[0.3, 1.0, 5.0] {
            let want = libm::erf(0.5 / z / std::f64::consts::SQRT_2);
            check(delta_for_epsilon(z, 0.0), want, 1e-12);
            let up = delta_upper_bound(z, 0.0);
            assert!(up >= want && up <= want * (1.0 + 1e-12), "{up} vs {want}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn epsilon_decreases_in_z(z in 0.2f64..20.0, f in 1.01f64..3.0, ld in -12.0f64..-2.0) {
            let d = 10f64.powf(ld);
            let e1 = AnalyticGaussian.epsilon(z, d).unwrap();
            let e2 = AnalyticGaussian.epsilon(z * f, d).unwrap();
            prop_assert!(e2 <= e1);
        }

        #[test]
        fn calibrated_z_meets_the_target(e in 0.05f64..20.0, ld in -12.0f64..-2.0) {
            let d = 10f64.powf(ld);
            let z = AnalyticGaussian.calibrate(e, d).unwrap();
            prop_assert!(AnalyticGaussian.delta(z, e).unwrap() <= d);
            prop_assert!(AnalyticGaussian.epsilon(z, d).unwrap() <= e * (1.0 + 1e-12));
            // and is tight: a slightly smaller z fails.
            prop_assert!(AnalyticGaussian.delta(z * (1.0 - 1e-9), e).unwrap() > d);
        }

        #[test]
        fn delta_is_monotone_in_epsilon(z in 0.2f64..20.0, e in 0.0f64..30.0, step in 1e-3f64..2.0) {
            let a = AnalyticGaussian.delta(z, e).unwrap();
            let b = AnalyticGaussian.delta(z, e + step).unwrap();
            prop_assert!(b <= a);
        }
    }
}
