//! The optimized methods (blt, lr-blt, dense-opt, lr-dense-opt) against their acceptance
//! criteria: the reference library's BLT values (`jax_privacy_blt.json`), lr- never worse than
//! plain, the dense optimum below every other method and above the nuclear-norm bound,
//! sensitivities against brute force, and bad input naming its flag.

use lrmf_factor::{
    FactorSpec, Factorization, Factorizer, MAX_DENSE_OPT_N, Method, Objective, errors, lower_bound,
};
use lrmf_linalg::{LinearOperator, LowerTriangular};
use lrmf_privacy::{Participation, sensitivity::brute_force};
use lrmf_schedule::{Kind, LrSchedule};
use lrmf_workload::Workload;
use serde_json::Value;

fn problem(kind: &str, n: usize, beta: f64, mu: f64) -> (LrSchedule, Workload) {
    let s = LrSchedule::new(Kind::parse_builtin(kind).unwrap(), n, beta, 0).unwrap();
    let w = Workload::from_schedule(&s, mu, 1.0).unwrap();
    (s, w)
}

fn run(m: Method, s: &LrSchedule, w: &Workload, p: Participation, o: Objective) -> Factorization {
    FactorSpec::for_schedule(m, None, s)
        .unwrap()
        .with_objective(o)
        .factorize(w, p)
        .unwrap()
}

fn metric(w: &Workload, f: &Factorization, p: Participation, o: Objective) -> f64 {
    let e = errors(w, f, p).unwrap();
    match o {
        Objective::MeanSe => e.mean_se,
        Objective::MaxSe => e.max_se,
    }
}

/// Each entry of the reference JSON: the same problem through `blt` must be within 1 % of (or
/// below) jax_privacy 2.0's `buffered_toeplitz.optimize` value.
#[test]
fn blt_matches_or_beats_the_reference_library() {
    let text = include_str!("jax_privacy_blt.json");
    let doc: Value = serde_json::from_str(text).unwrap();
    for e in doc["entries"].as_array().unwrap() {
        let n = e["n"].as_u64().unwrap() as usize;
        let k = e["participations"].as_u64().unwrap() as usize;
        let b = e["min_sep"].as_u64().unwrap() as usize;
        let o: Objective = e["objective"].as_str().unwrap().parse().unwrap();
        let want = e["value"].as_f64().unwrap();
        let (s, w) = problem("constant", n, 1.0, 0.0);
        let p = Participation::new(n, Some(b), k).unwrap();
        let f = run(Method::Blt, &s, &w, p, o);
        let got = metric(&w, &f, p, o);
        assert!(
            got <= want * 1.01,
            "n {n} k {k} {o}: lrmf {got} vs jax_privacy {want}"
        );
    }
    // dense.optimize (single participation, mean-se): dense-opt is at least as good.
    for e in doc["dense"].as_array().unwrap() {
        let n = e["n"].as_u64().unwrap() as usize;
        let want = e["value"].as_f64().unwrap();
        let (s, w) = problem("constant", n, 1.0, 0.0);
        let p = Participation::single();
        let f = run(Method::DenseOpt, &s, &w, p, Objective::MeanSe);
        let got = metric(&w, &f, p, Objective::MeanSe);
        assert!(
            got <= want * (1.0 + 1e-9),
            "dense n {n}: lrmf {got} vs jax_privacy {want}"
        );
    }
}

#[test]
fn lr_blt_is_never_worse_than_blt_on_scheduled_workloads() {
    for (kind, n, beta, mu, k, o) in [
        ("exponential", 128, 0.1, 0.0, 1, Objective::MeanSe),
        ("cosine", 96, 0.05, 0.9, 1, Objective::MeanSe),
        ("linear", 120, 0.2, 0.0, 4, Objective::MeanSe),
        ("exponential", 100, 0.1, 0.5, 2, Objective::MaxSe),
    ] {
        let (s, w) = problem(kind, n, beta, mu);
        let p = if k == 1 {
            Participation::single()
        } else {
            Participation::new(n, Some(n / k), k).unwrap()
        };
        let plain = run(Method::Blt, &s, &w, p, o);
        let lr = run(Method::LrBlt, &s, &w, p, o);
        let (a, b) = (metric(&w, &lr, p, o), metric(&w, &plain, p, o));
        assert!(
            a <= b * (1.0 + 1e-9),
            "{kind} β {beta} μ {mu} k {k} {o}: lr-blt {a} > blt {b}"
        );
        let d = lr.buffers.unwrap();
        assert!((1..=10).contains(&d));
        assert_eq!(lr.info.as_ref().unwrap().objective, o);
    }
}

/// Single participation, mean-se: the optimum is below every method and above the bound, and
/// B·C = W.
#[test]
fn dense_opt_is_the_floor_of_the_ladder() {
    for (kind, n, beta, mu) in [("exponential", 64, 0.1, 0.0), ("cosine", 48, 0.1, 0.9)] {
        let (s, w) = problem(kind, n, beta, mu);
        let p = Participation::single();
        let o = Objective::MeanSe;
        let best = run(Method::LrDenseOpt, &s, &w, p, o);
        let opt = metric(&w, &best, p, o);
        assert!(opt >= lower_bound(&w).unwrap() * (1.0 - 1e-12));
        for m in Method::ALL {
            let f = FactorSpec::for_schedule(m, Some(8), &s)
                .unwrap()
                .factorize(&w, p)
                .unwrap();
            let v = metric(&w, &f, p, o);
            assert!(
                opt <= v * (1.0 + 1e-9),
                "{kind}: {m} {v} < lr-dense-opt {opt}"
            );
        }
        let LowerTriangular::Dense(c) = &best.c else {
            panic!("dense-opt must give a dense C")
        };
        let b = lrmf_factor::metrics::b_dense(&w, &best.c).unwrap();
        let bc = &b * c.as_mat();
        let wd = w.to_dense();
        let err = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .fold(0.0f64, |m, (i, j)| m.max((bc[(i, j)] - wd[(i, j)]).abs()));
        assert!(err < 1e-10, "‖W − B·C‖_max = {err}");
    }
}

/// Reported sensitivities are never below brute force over every valid participation set.
#[test]
fn sensitivities_are_at_least_brute_force() {
    for (n, b, k) in [(12, 3, 4), (16, 5, 3), (10, 1, 2), (16, 16, 1)] {
        let (s, w) = problem("exponential", n, 0.2, 0.3);
        let p = Participation::new(n, Some(b), k).unwrap();
        let mut methods = vec![Method::Blt, Method::LrBlt];
        if k == 1 {
            methods.extend([Method::DenseOpt, Method::LrDenseOpt]);
        }
        for m in methods {
            for o in Objective::ALL {
                if m.is_dense() && o == Objective::MaxSe {
                    continue;
                }
                let f = run(m, &s, &w, p, o);
                let rep = errors(&w, &f, p).unwrap().sensitivity.value;
                let bf = brute_force(&f.c.to_dense(), b, k);
                assert!(
                    rep >= bf * (1.0 - 1e-12),
                    "{m} n {n} b {b} k {k}: {rep} < {bf}"
                );
            }
        }
    }
}

fn flag_of(r: Result<Factorization, lrmf_factor::FactorError>) -> String {
    match r {
        Err(lrmf_factor::FactorError::Invalid { field, .. }) => field.name().to_string(),
        other => format!("not an invalid-flag error: {other:?}"),
    }
}

#[test]
fn bad_input_names_the_flag() {
    let (s, w) = problem("constant", 32, 1.0, 0.0);
    let single = Participation::single();
    for d in [0, 11] {
        let spec = FactorSpec::for_schedule(Method::Blt, None, &s)
            .unwrap()
            .with_buffers(Some(d));
        assert_eq!(flag_of(spec.factorize(&w, single)), "buffers");
    }
    let dense = FactorSpec::for_schedule(Method::DenseOpt, None, &s).unwrap();
    let multi = Participation::new(32, Some(8), 4).unwrap();
    assert_eq!(flag_of(dense.factorize(&w, multi)), "participations");
    let max = dense.with_objective(Objective::MaxSe);
    assert_eq!(flag_of(max.factorize(&w, single)), "objective");
    let big = Workload::prefix_sum(MAX_DENSE_OPT_N + 1).unwrap();
    assert_eq!(flag_of(dense.factorize(&big, single)), "n");
}
