//! The `lrmf errors` / `lrmf compare` contract, checked from outside: every entry of
//! `shared/reference/errors.json` through `--json`, and one-line errors with exit code 2 for
//! every kind of bad input.

mod common;

use common::{check_bad, json};
use serde_json::Value;

#[test]
fn reference_entries_through_the_cli() {
    let path = common::repo().join("../shared/reference/errors.json");
    let text =
        std::fs::read_to_string(&path).expect("shared/reference/errors.json beside the repository");
    let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
    for e in &entries {
        let mut args: Vec<String> = vec!["errors".into(), "--json".into()];
        for (key, flag) in [
            ("n", "--n"),
            ("schedule", "--schedule"),
            ("lr_decay", "--lr-decay"),
            ("momentum", "--momentum"),
            ("weight_decay", "--weight-decay"),
            ("method", "--method"),
            ("band", "--band"),
            ("min_sep", "--min-sep"),
            ("participations", "--participations"),
        ] {
            if let Some(v) = e.get(key) {
                args.push(flag.into());
                args.push(match v {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                });
            }
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let got = json(&refs);
        for key in [
            "n",
            "method",
            "schedule",
            "lr_decay",
            "momentum",
            "weight_decay",
            "band",
            "min_sep",
            "participations",
            "sensitivity_kind",
            "millis",
        ] {
            assert!(got.get(key).is_some(), "missing key {key}");
        }
        for key in ["sensitivity", "max_se", "mean_se"] {
            let (g, w) = (got[key].as_f64().unwrap(), e[key].as_f64().unwrap());
            assert!(
                (g - w).abs() <= 1e-9 * w.abs(),
                "{args:?} {key}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn compare_is_sorted_and_complete() {
    let rows = json(&[
        "compare",
        "--json",
        "--n",
        "256",
        "--schedule",
        "cosine",
        "--lr-decay",
        "0.1",
        "--band",
        "16",
        "--min-sep",
        "32",
        "--participations",
        "4",
    ]);
    let rows = rows.as_array().unwrap();
    // The 8 closed forms, the 4 optimized banded ones, blt and lr-blt; the dense optimum is
    // single-participation only.
    assert_eq!(rows.len(), 14);
    assert!(
        rows.iter()
            .any(|r| r["method"] == "lr-blt" && r["buffers"].as_u64().is_some())
    );
    let max: Vec<f64> = rows.iter().map(|r| r["max_se"].as_f64().unwrap()).collect();
    assert!(max.windows(2).all(|w| w[0] <= w[1]));
    let lb = rows[0]["lower_bound"].as_f64().unwrap();
    assert!(rows.iter().all(|r| r["mean_se"].as_f64().unwrap() >= lb));
}

#[test]
fn schedules_from_files_and_warmup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rates.txt");
    std::fs::write(&path, "1.0\n0.5\n0.25\n0.125\n").unwrap();
    let file = format!("file:{}", path.display());
    let from_file = json(&[
        "errors",
        "--json",
        "--n",
        "4",
        "--schedule",
        &file,
        "--method",
        "sqrt",
    ]);
    let exp = json(&[
        "errors",
        "--json",
        "--n",
        "4",
        "--schedule",
        "exponential",
        "--lr-decay",
        "0.125",
        "--method",
        "sqrt",
    ]);
    assert!(
        (from_file["max_se"].as_f64().unwrap() - exp["max_se"].as_f64().unwrap()).abs() < 1e-12
    );
    let warm = json(&[
        "errors",
        "--json",
        "--n",
        "40",
        "--schedule",
        "cosine",
        "--lr-decay",
        "0.1",
        "--warmup",
        "5",
        "--method",
        "lr-sqrt",
    ]);
    assert!(
        !warm["notes"].as_array().unwrap().is_empty(),
        "increasing rates are reported"
    );
    let one = json(&[
        "errors",
        "--json",
        "--n",
        "1",
        "--schedule",
        "exponential",
        "--lr-decay",
        "0.1",
        "--method",
        "dense-sqrt",
    ]);
    let max_se = one["max_se"].as_f64().unwrap();
    assert!(
        (1.0..1.0 + 1e-12).contains(&max_se),
        "n = 1: MaxSE {max_se} (1, rounded up)"
    );
    check_bad(
        &[
            "errors",
            "--n",
            "4",
            "--schedule",
            "file:/nonexistent/rates.txt",
        ],
        "--schedule",
    );
    check_bad(&["errors", "--n", "5", "--schedule", &file], "--schedule");
}

#[test]
fn bad_input_exits_2_naming_the_flag() {
    check_bad(&["errors", "--n", "0"], "--n");
    check_bad(&["errors", "--n", "abc"], "--n");
    check_bad(&["errors", "--n", "-5"], "--n");
    check_bad(
        &["errors", "--n", "64", "--method", "bsr", "--band", "-1"],
        "--band",
    );
    check_bad(&["errors", "--n", "64", "--method", "bisr"], "--band");
    check_bad(
        &["errors", "--n", "64", "--method", "bisr", "--band", "0"],
        "--band",
    );
    check_bad(
        &["errors", "--n", "64", "--method", "bsr", "--band", "65"],
        "--band",
    );
    check_bad(
        &[
            "errors",
            "--n",
            "64",
            "--min-sep",
            "0",
            "--participations",
            "2",
        ],
        "--min-sep",
    );
    check_bad(
        &["errors", "--n", "64", "--participations", "2"],
        "--min-sep",
    );
    check_bad(
        &[
            "errors",
            "--n",
            "64",
            "--min-sep",
            "16",
            "--participations",
            "5",
        ],
        "--participations",
    );
    check_bad(&["errors", "--n", "64", "--lr-decay", "0"], "--lr-decay");
    check_bad(&["errors", "--n", "64", "--lr-decay", "1.5"], "--lr-decay");
    check_bad(&["errors", "--n", "64", "--lr-decay", "NaN"], "--lr-decay");
    check_bad(&["errors", "--n", "64", "--momentum", "1"], "--momentum");
    check_bad(&["errors", "--n", "64", "--momentum", "-0.1"], "--momentum");
    check_bad(
        &["errors", "--n", "64", "--weight-decay", "0"],
        "--weight-decay",
    );
    check_bad(
        &["errors", "--n", "64", "--weight-decay", "1.1"],
        "--weight-decay",
    );
    check_bad(&["errors", "--n", "64", "--method", "magic"], "--method");
    check_bad(
        &["errors", "--n", "64", "--schedule", "sawtooth"],
        "--schedule",
    );
    check_bad(&["errors", "--n", "64", "--warmup", "64"], "--warmup");
    check_bad(&["errors", "--n", "5000", "--method", "dense-sqrt"], "--n");
    check_bad(&["compare", "--n", "0"], "--n");
    check_bad(
        &[
            "errors",
            "--n",
            "64",
            "--method",
            "bandmf",
            "--band",
            "4",
            "--objective",
            "median-se",
        ],
        "--objective",
    );
    let wide = [
        "errors",
        "--n",
        "64",
        "--band",
        "17",
        "--min-sep",
        "16",
        "--participations",
        "2",
        "--method",
    ];
    check_bad(&[&wide[..], &["lr-bandmf"]].concat(), "--band");
}

#[test]
fn optimized_methods_report_their_optimization() {
    for objective in ["mean-se", "max-se"] {
        let base = [
            "errors",
            "--json",
            "--n",
            "64",
            "--schedule",
            "exponential",
            "--lr-decay",
            "0.1",
            "--band",
            "8",
            "--min-sep",
            "16",
            "--participations",
            "4",
            "--objective",
            objective,
            "--method",
        ];
        let lr = json(&[&base[..], &["lr-bandinv"]].concat());
        assert_eq!(lr["objective"], objective);
        assert!(lr["iterations"].as_u64().is_some() && lr["converged"].is_boolean());
        assert!(lr["optimize_millis"].as_f64().unwrap() >= 0.0);
        let closed = json(&[&base[..], &["lr-bisr"]].concat());
        assert!(closed.get("objective").is_none());
        let key = if objective == "mean-se" {
            "mean_se"
        } else {
            "max_se"
        };
        assert!(lr[key].as_f64().unwrap() <= closed[key].as_f64().unwrap() * (1.0 + 1e-12));
    }
}
