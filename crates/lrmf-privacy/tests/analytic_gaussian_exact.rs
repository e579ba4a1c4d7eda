//! The analytic Gaussian accountant never below the exact solution: every calibrated z and every
//! ε is checked against 80-digit mpmath values (tests/data/analytic_gaussian_reference.py wrote
//! tests/data/analytic_gaussian_reference.json) on a grid ε ∈ [1e-3, 100], δ ∈ [1e-12, 0.5].

use lrmf_privacy::accounting::{Accountant, AccountingPlan, AnalyticGaussian};
use serde_json::Value;

fn reference() -> Value {
    serde_json::from_str(include_str!("data/analytic_gaussian_reference.json")).unwrap()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("field {key} missing in {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("field {key} of {v}: {e}"))
}

/// `got` is never below the exact value (`up`: the smallest f64 ≥ it) and within `rel` of the
/// 25-digit value `exact`.
fn check(got: f64, up: f64, exact: f64, rel: f64, what: &str) {
    assert!(got >= up, "{what}: {got} is below the exact {exact}");
    assert!(
        got - exact <= rel * exact,
        "{what}: {got} is {:e} relative above the exact {exact}",
        (got - exact) / exact
    );
}

#[test]
fn calibrated_z_is_never_below_the_exact_solution() {
    let r = reference();
    let plan = AccountingPlan::gaussian(1.0).unwrap();
    let mut worst = 0.0f64;
    let cases = r["calibrations"].as_array().unwrap();
    assert_eq!(cases.len(), 140);
    for c in cases {
        let (e, d) = (num(c, "epsilon"), num(c, "delta"));
        let (exact, up) = (
            num(c, "noise_multiplier"),
            num(c, "noise_multiplier_f64_up"),
        );
        let z = AnalyticGaussian.calibrate(e, d).unwrap();
        check(z, up, exact, 1e-9, &format!("z(ε = {e}, δ = {d})"));
        worst = worst.max((z - exact) / exact);
        // The plan reports the z and the ε verified at it (≤ the target, ≥ the exact ε(z)).
        let rep = plan.calibrate(e, d).unwrap();
        assert_eq!(rep.noise_multiplier, z);
        assert!(
            rep.epsilon <= e,
            "achieved {} above target {e}",
            rep.epsilon
        );
        assert_eq!(rep.epsilon, AnalyticGaussian.epsilon(z, d).unwrap().min(e));
    }
    eprintln!("calibrated z: worst relative excess over the exact z* {worst:e}");
}

#[test]
fn epsilon_is_never_below_the_exact_value() {
    let r = reference();
    let mut worst = 0.0f64;
    for c in r["epsilon_of"].as_array().unwrap() {
        let z: f64 = num(c, "noise_multiplier");
        let d = num(c, "delta");
        let (exact, up) = (num(c, "epsilon"), num(c, "epsilon_f64_up"));
        let e = AnalyticGaussian.epsilon(z, d).unwrap();
        check(e, up, exact, 1e-9, &format!("ε(z = {z}, δ = {d})"));
        worst = worst.max((e - exact) / exact);
        // δ just below the exact ε is reported above the target (the exact δ there is).
        let below = f64::from_bits(up.to_bits() - 1);
        assert!(
            AnalyticGaussian.delta(z, below).unwrap() > d,
            "δ(z = {z}, ε = {below})"
        );
    }
    eprintln!("ε: worst relative excess over the exact ε* {worst:e}");
}
