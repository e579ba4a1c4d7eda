//! The optimized methods (bandmf, bandinv and their lr- forms, MATH.md §5b) against outside
//! oracles: jax_privacy's optimized banded C (`shared/reference/optimized_public.json`), the
//! closed forms they must never lose to, and brute-force sensitivities.
//!
//! The n = 1024 reference cases run only with `LRMF_SLOW_TESTS=1`.

use lrmf_factor::{Errors, FactorSpec, Factorization, Factorizer, Method, Objective, errors};
use lrmf_linalg::LinearOperator;
use lrmf_privacy::Participation;
use lrmf_privacy::sensitivity::brute_force;
use lrmf_schedule::{Kind, LrSchedule};
use lrmf_workload::Workload;
use serde_json::Value;
use std::path::PathBuf;

struct Case {
    schedule: LrSchedule,
    w: Workload,
    part: Participation,
    band: usize,
}

impl Case {
    /// `(β, μ, λ)` of the workload, `(b, k)` of the participation.
    fn new(
        kind: Kind,
        n: usize,
        (beta, mu, lambda): (f64, f64, f64),
        (b, k): (usize, usize),
        band: usize,
    ) -> Self {
        let schedule = LrSchedule::new(kind, n, beta, 0).unwrap();
        let w = Workload::from_schedule(&schedule, mu, lambda).unwrap();
        let part = Participation::new(n, Some(b), k).unwrap();
        Self {
            schedule,
            w,
            part,
            band,
        }
    }

    fn factorize(&self, method: Method, objective: Objective) -> Factorization {
        FactorSpec::for_schedule(method, Some(self.band), &self.schedule)
            .unwrap()
            .with_objective(objective)
            .factorize(&self.w, self.part)
            .unwrap()
    }
}

/// The objective's value (MeanSE or MaxSE, not squared) of `f` on `w`.
fn value(w: &Workload, f: &Factorization, part: Participation, objective: Objective) -> f64 {
    let e: Errors = errors(w, f, part).unwrap();
    match objective {
        Objective::MeanSe => e.mean_se,
        Objective::MaxSe => e.max_se,
    }
}

/// `a ≤ b` up to the rounding of two evaluations of the same matrix.
fn check(what: &str, a: f64, b: f64) {
    assert!(a <= b * (1.0 + 1e-12), "{what}: {a} > {b}");
}

fn check_orderings(case: &Case, objective: Objective) {
    let (w, part) = (&case.w, case.part);
    let wc = w.constant_rate();
    for (opt, closed) in [
        (
            (Method::Bandinv, Method::LrBandinv),
            (Method::Bisr, Method::LrBisr),
        ),
        (
            (Method::Bandmf, Method::LrBandmf),
            (Method::Bsr, Method::LrBsr),
        ),
    ] {
        let [plain, lr, cp, cl] =
            [opt.0, opt.1, closed.0, closed.1].map(|m| case.factorize(m, objective));
        let info = lr.info.as_ref().unwrap();
        assert_eq!(info.objective, objective);
        let v = |f: &Factorization| value(w, f, part, objective);
        let vc = |f: &Factorization| value(&wc, f, part, objective);
        check(&format!("{} vs {}", opt.1, closed.0), v(&lr), v(&cp));
        check(&format!("{} vs {}", opt.1, closed.1), v(&lr), v(&cl));
        check(&format!("{} vs {}", opt.1, opt.0), v(&lr), v(&plain));
        check(
            &format!("{} vs {} (constant rate)", opt.0, closed.0),
            vc(&plain),
            vc(&cp),
        );
        // The reported value is the release's objective on the workload optimized for.
        let rel = info.value.sqrt() / v(&lr) - 1.0;
        assert!(
            rel.abs() < 1e-12,
            "{}: info {} vs {}",
            opt.1,
            info.value,
            v(&lr)
        );
    }
}

#[test]
fn optimized_methods_never_lose_to_their_closed_forms() {
    for objective in Objective::ALL {
        check_orderings(
            &Case::new(Kind::Exponential, 96, (0.1, 0.0, 1.0), (24, 4), 8),
            objective,
        );
        check_orderings(
            &Case::new(Kind::Cosine, 80, (0.05, 0.5, 0.99), (16, 5), 6),
            objective,
        );
        check_orderings(
            &Case::new(Kind::Constant, 64, (1.0, 0.0, 1.0), (1, 1), 5),
            objective,
        );
        check_orderings(
            &Case::new(Kind::Step { stages: 3 }, 70, (0.2, 0.0, 0.995), (10, 7), 10),
            objective,
        );
    }
}

#[test]
fn reported_sensitivity_is_never_below_brute_force() {
    for (method, band) in [
        (Method::Bandmf, 3),
        (Method::LrBandmf, 3),
        (Method::Bandinv, 4),
        (Method::LrBandinv, 4),
    ] {
        for objective in Objective::ALL {
            for (n, b, k) in [(12, 3, 3), (16, 4, 4), (10, 1, 1)] {
                let case = Case::new(Kind::Exponential, n, (0.1, 0.3, 1.0), (b, k), band);
                let f = case.factorize(method, objective);
                let s = errors(&case.w, &f, case.part).unwrap().sensitivity;
                let exact = brute_force(&f.c.to_dense(), b, k);
                assert!(
                    s.value >= exact,
                    "{method} {objective} n = {n}: {s:?} < {exact}"
                );
                assert!(s.value <= exact * (1.0 + 1e-9) || s.kind.as_str() == "upper-bound");
            }
        }
    }
}

#[test]
fn a_band_wider_than_the_separation_is_refused_for_bandmf() {
    let case = Case::new(Kind::Exponential, 40, (0.1, 0.0, 1.0), (4, 3), 5);
    for m in [Method::Bandmf, Method::LrBandmf] {
        let err = FactorSpec::for_schedule(m, Some(5), &case.schedule)
            .unwrap()
            .factorize(&case.w, case.part)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--band") && err.contains("min-sep"), "{err}");
    }
    // Single participation has no such constraint; bandinv has none either.
    let single = Participation::single();
    assert!(
        case.factorize(Method::Bandinv, Objective::MeanSe)
            .info
            .is_some()
    );
    assert!(
        FactorSpec::for_schedule(Method::Bandmf, Some(5), &case.schedule)
            .unwrap()
            .factorize(&case.w, single)
            .is_ok()
    );
}

#[test]
fn optimization_is_deterministic() {
    let case = Case::new(Kind::Cosine, 48, (0.1, 0.2, 1.0), (12, 4), 6);
    for m in [Method::LrBandmf, Method::LrBandinv] {
        let a = case.factorize(m, Objective::MaxSe).c.to_dense();
        let b = case.factorize(m, Objective::MaxSe).c.to_dense();
        assert_eq!(a, b, "{m}");
    }
}

fn reference_cases() -> Vec<Value> {
    let path = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test"))
        .join("../../../shared/reference/optimized_public.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {} ({e})", path.display()));
    serde_json::from_str::<Value>(&text).unwrap()["cases"]
        .as_array()
        .unwrap()
        .clone()
}

/// lr-bandmf within 0.5 % of (or below) jax_privacy's optimized column-normalized banded C.
#[test]
fn lr_bandmf_matches_or_beats_jax_privacy() {
    let slow = std::env::var("LRMF_SLOW_TESTS").is_ok_and(|v| v == "1");
    for case in reference_cases() {
        let num = |k: &str| case[k].as_f64().unwrap();
        let n = num("n") as usize;
        if n > 512 && !slow {
            continue;
        }
        let objective: Objective = case["objective"].as_str().unwrap().parse().unwrap();
        let kind = Kind::parse_builtin(case["schedule"].as_str().unwrap()).unwrap();
        let c = Case::new(
            kind,
            n,
            (num("lr_decay"), num("momentum"), num("weight_decay")),
            (num("min_sep") as usize, num("participations") as usize),
            num("band") as usize,
        );
        let f = c.factorize(Method::LrBandmf, objective);
        let got = value(&c.w, &f, c.part, objective);
        let want = num("jax_privacy_value");
        eprintln!(
            "n = {n} band {} {objective}: lrmf {got:.6} vs jax_privacy {want:.6} ({:+.3} %), {:.0} ms, {} iterations",
            c.band,
            100.0 * (got / want - 1.0),
            f.info.as_ref().unwrap().millis,
            f.info.as_ref().unwrap().iterations
        );
        assert!(
            got <= want * 1.005,
            "n = {n} {objective}: {got} > {want}·1.005"
        );
    }
}
