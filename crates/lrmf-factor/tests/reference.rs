//! Reproduces every entry of `shared/reference/errors.json` (MATH.md §8) through the library,
//! to 1e-9 relative error in sensitivity, MaxSE and MeanSE.

use lrmf_factor::{FactorSpec, Factorizer, Method, errors};
use lrmf_privacy::Participation;
use lrmf_schedule::{Kind, LrSchedule};
use lrmf_workload::Workload;
use serde_json::Value;
use std::path::PathBuf;

fn reference() -> Vec<Value> {
    let path = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test"))
        .join("../../../shared/reference/errors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): the shared reference folder must sit beside the repository",
            path.display()
        )
    });
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn check(entry: &Value) {
    let get = |k: &str| entry.get(k);
    let n = get("n").unwrap().as_u64().unwrap() as usize;
    let kind = Kind::parse_builtin(
        get("schedule")
            .and_then(Value::as_str)
            .unwrap_or("constant"),
    )
    .unwrap();
    let beta = get("lr_decay").and_then(Value::as_f64).unwrap_or(1.0);
    let mu = get("momentum").and_then(Value::as_f64).unwrap_or(0.0);
    let lambda = get("weight_decay").and_then(Value::as_f64).unwrap_or(1.0);
    let method: Method = get("method").unwrap().as_str().unwrap().parse().unwrap();
    let band = get("band").and_then(Value::as_u64).map(|b| b as usize);
    let min_sep = get("min_sep").and_then(Value::as_u64).map(|b| b as usize);
    let k = get("participations").and_then(Value::as_u64).unwrap_or(1) as usize;

    let schedule = LrSchedule::new(kind, n, beta, 0).unwrap();
    let w = Workload::from_schedule(&schedule, mu, lambda).unwrap();
    let p = Participation::new(n, min_sep, k).unwrap();
    let f = FactorSpec::for_schedule(method, band, &schedule)
        .unwrap()
        .factorize(&w, p)
        .unwrap();
    let e = errors(&w, &f, p).unwrap();
    for (name, got) in [
        ("sensitivity", e.sensitivity.value),
        ("max_se", e.max_se),
        ("mean_se", e.mean_se),
    ] {
        let want = get(name).unwrap().as_f64().unwrap();
        let rel = (got - want).abs() / want.abs();
        assert!(
            rel <= 1e-9,
            "{entry}\n{name}: got {got}, want {want} (relative error {rel:e}, kind {})",
            e.sensitivity.kind
        );
    }
}

#[test]
fn every_reference_entry_is_reproduced() {
    let entries = reference();
    assert_eq!(entries.len(), 61);
    for entry in &entries {
        check(entry);
    }
}
