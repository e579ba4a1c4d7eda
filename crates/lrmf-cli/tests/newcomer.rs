//! The newcomer's contract (issue "first hour"): user terms, `--band auto`, flags that cannot
//! matter, readable human output, sizes the machine cannot hold, and the training log and
//! release artifact as seen from outside.

mod common;

use common::{check_bad, json, lrmf};
use serde_json::Value;

fn check_same(a: &[&str], b: &[&str]) {
    let (x, y) = (json(a), json(b));
    for key in [
        "n",
        "sensitivity",
        "max_se",
        "mean_se",
        "min_sep",
        "participations",
    ] {
        assert_eq!(x[key], y[key], "{key}: {a:?} vs {b:?}");
    }
}

#[test]
fn user_terms_give_the_low_level_numbers() {
    check_same(
        &[
            "errors",
            "--dataset-size",
            "50000",
            "--batch-size",
            "500",
            "--epochs",
            "5",
            "--method",
            "bisr",
            "--band",
            "16",
            "--json",
        ],
        &[
            "errors",
            "--n",
            "500",
            "--min-sep",
            "100",
            "--participations",
            "5",
            "--method",
            "bisr",
            "--band",
            "16",
            "--json",
        ],
    );
    // Poisson: q = B/N and E·⌊N/B⌋ steps.
    let a = json(&[
        "epsilon",
        "--accountant",
        "pld-poisson",
        "--noise-multiplier",
        "1",
        "--delta",
        "1e-5",
        "--dataset-size",
        "60000",
        "--batch-size",
        "600",
        "--epochs",
        "2",
        "--json",
    ]);
    let b = json(&[
        "epsilon",
        "--accountant",
        "pld-poisson",
        "--noise-multiplier",
        "1",
        "--delta",
        "1e-5",
        "--sampling-rate",
        "0.01",
        "--steps",
        "200",
        "--json",
    ]);
    assert_eq!(a["epsilon"], b["epsilon"]);
    check_bad(
        &[
            "errors",
            "--dataset-size",
            "50000",
            "--batch-size",
            "500",
            "--epochs",
            "5",
            "--n",
            "400",
        ],
        "--n",
    );
}

#[test]
fn contradictions_are_refused_and_unused_flags_warned() {
    check_bad(
        &[
            "epsilon",
            "--accountant",
            "pld-poisson",
            "--method",
            "bisr",
            "--band",
            "4",
            "--noise-multiplier",
            "1",
            "--delta",
            "1e-5",
            "--sampling-rate",
            "0.01",
            "--steps",
            "100",
        ],
        "--method",
    );
    check_bad(
        &[
            "epsilon",
            "--accountant",
            "pld-poisson",
            "--noise-multiplier",
            "1",
            "--delta",
            "1e-5",
            "--sampling-rate",
            "0.01",
            "--n",
            "200",
            "--steps",
            "100",
        ],
        "--steps",
    );
    // A strategy flag without the number of steps would silently mean C = I.
    check_bad(
        &[
            "calibrate",
            "--epsilon",
            "1",
            "--delta",
            "1e-5",
            "--method",
            "bisr",
            "--band",
            "4",
        ],
        "--n",
    );
    check_bad(
        &["errors", "--n", "64", "--method", "bisr", "--band", "auto"],
        "--band",
    );
    let out = lrmf(&["errors", "--n", "16", "--band", "4"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: --band has no effect"), "{err}");
    let out = lrmf(&["compare", "--n", "16", "--method", "bisr"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: --method has no effect"), "{err}");
}

#[test]
fn band_auto_finds_the_best_power_of_two() {
    let base = [
        "--n",
        "256",
        "--schedule",
        "exponential",
        "--lr-decay",
        "0.1",
        "--min-sep",
        "64",
        "--participations",
        "4",
    ];
    let mut args = vec!["compare"];
    args.extend(base);
    args.extend(["--band", "auto", "--json"]);
    let rows = json(&args);
    for method in ["bsr", "bisr"] {
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["method"] == method)
            .unwrap();
        let best = row["max_se"].as_f64().unwrap();
        let mut p = 1;
        while p <= 64 {
            let ps = p.to_string();
            let mut e = vec!["errors", "--method", method, "--band", &ps, "--json"];
            e.extend(base);
            let v = json(&e)["max_se"].as_f64().unwrap();
            assert!(best <= v, "{method}: auto {best} > band {p}: {v}");
            p *= 2;
        }
        assert!(row["noise_state_bytes_per_param"].as_u64().is_some());
    }
}

/// No number in human output has more than 8 significant digits.
fn check_digits(args: &[&str]) {
    let out = lrmf(args);
    assert!(out.status.success(), "{args:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for word in text.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
        let digits: String = word.chars().filter(|c| c.is_ascii_digit()).collect();
        let significant = digits.trim_start_matches('0');
        assert!(significant.len() <= 8, "{args:?}: '{word}' in\n{text}");
    }
}

#[test]
fn human_output_is_readable() {
    check_digits(&[
        "errors",
        "--n",
        "980",
        "--schedule",
        "exponential",
        "--lr-decay",
        "0.1",
        "--method",
        "lr-bisr",
        "--band",
        "64",
        "--min-sep",
        "98",
        "--participations",
        "10",
    ]);
    check_digits(&[
        "calibrate",
        "--epsilon",
        "9",
        "--delta",
        "1e-5",
        "--n",
        "980",
        "--min-sep",
        "98",
        "--participations",
        "10",
        "--method",
        "bisr",
        "--band",
        "64",
    ]);
    check_digits(&[
        "epsilon",
        "--noise-multiplier",
        "0.8",
        "--delta",
        "1e-5",
        "--sampling-rate",
        "0.01024",
        "--steps",
        "980",
        "--accountant",
        "pld-poisson",
    ]);
    // calibrate echoes every strategy parameter.
    let out = lrmf(&[
        "calibrate",
        "--epsilon",
        "9",
        "--delta",
        "1e-5",
        "--n",
        "980",
        "--min-sep",
        "98",
        "--participations",
        "10",
        "--method",
        "bisr",
        "--band",
        "64",
        "--schedule",
        "cosine",
        "--lr-decay",
        "0.1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    for want in ["band 64", "cosine", "k = 10", "min-sep 98"] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    let v: Value = json(&[
        "calibrate",
        "--epsilon",
        "9",
        "--delta",
        "1e-5",
        "--n",
        "98",
        "--method",
        "bisr",
        "--band",
        "4",
        "--json",
    ]);
    assert_eq!(v["strategy"]["band"], 4);
}

#[test]
fn sizes_the_machine_cannot_hold_are_errors() {
    check_bad(
        &["errors", "--n", "4000000000", "--method", "identity"],
        "--n",
    );
    check_bad(&["errors", "--n", "18446744073709551615"], "--n");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npy");
    check_bad(
        &[
            "noise",
            "--method",
            "bisr",
            "--band",
            "4",
            "--n",
            "8",
            "--dim",
            "4000000000",
            "--out",
            out.to_str().unwrap(),
        ],
        "--dim",
    );
}

#[test]
fn training_logs_each_epoch_without_a_terminal_and_releases_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("smoke");
    let config = common::repo().join("configs/smoke.toml");
    let config = config.to_str().unwrap();
    // Output captured by the test: not a terminal, as under nohup or in CI.
    let out = lrmf(&["train", "--config", config, "--out", run.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for epoch in ["epoch 1/2 done", "epoch 2/2 done"] {
        assert!(err.contains(epoch), "{epoch} missing in\n{err}");
    }
    assert!(err.contains("outside DP"), "{err}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !run.join("checkpoint.bin").exists(),
        "the noise key is gone"
    );
    let eval = json(&["eval", "--model", run.to_str().unwrap(), "--json"]);
    assert_eq!(eval["test_accuracy"], summary["test_accuracy"]);
    let release: Value =
        serde_json::from_slice(&std::fs::read(run.join("release.json")).unwrap()).unwrap();
    assert_eq!(release["epsilon"], summary["epsilon"]);
    assert_eq!(release["method"], "lr-bisr");
    check_bad(
        &["eval", "--model", dir.path().to_str().unwrap()],
        "--model",
    );
}
