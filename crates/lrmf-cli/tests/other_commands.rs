//! The contracts of `lrmf calibrate`, `lrmf epsilon`, `lrmf noise` and `lrmf train`, checked
//! from outside: `shared/reference/accounting.json` through `--json`, exit code 2 on bad input,
//! and the smoke training run that CI relies on.

mod common;

use common::{check_bad, json, lrmf, repo};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn accounting_reference_through_the_cli() {
    let text = std::fs::read_to_string(repo().join("../shared/reference/accounting.json"))
        .expect("shared/reference beside the repository");
    let r: Value = serde_json::from_str(&text).unwrap();
    for c in r["calibrations"].as_array().unwrap() {
        let (e, d) = (c["epsilon"].to_string(), c["delta"].to_string());
        let got = json(&[
            "calibrate",
            "--epsilon",
            &e,
            "--delta",
            &d,
            "--accountant",
            "gaussian",
            "--json",
        ]);
        for key in [
            "accountant",
            "epsilon",
            "delta",
            "noise_multiplier",
            "sensitivity",
            "noise_std",
        ] {
            assert!(got.get(key).is_some(), "missing {key}");
        }
        let z = got["noise_multiplier"].as_f64().unwrap();
        let want = c["noise_multiplier"].as_f64().unwrap();
        assert!(rel(z, want) <= 1e-7, "ε = {e}: z = {z}, want {want}");
        assert!(
            z >= want * (1.0 - 1e-12),
            "calibration must not round z down"
        );
        assert_eq!(got["sensitivity"].as_f64(), Some(1.0));
        assert_eq!(got["noise_std"].as_f64(), Some(z));
    }
    for c in r["epsilon_of"].as_array().unwrap() {
        let (z, d) = (c["noise_multiplier"].to_string(), c["delta"].to_string());
        let got = json(&[
            "epsilon",
            "--noise-multiplier",
            &z,
            "--delta",
            &d,
            "--accountant",
            "gaussian",
            "--json",
        ]);
        let eps = got["epsilon"].as_f64().unwrap();
        assert!(
            rel(eps, c["epsilon"].as_f64().unwrap()) <= 1e-7,
            "z = {z}: ε = {eps}"
        );
    }
}

#[test]
fn calibrate_with_a_strategy_scales_by_its_sensitivity() {
    let base = json(&["calibrate", "--epsilon", "9", "--delta", "1e-5", "--json"]);
    let got = json(&[
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
        "--json",
    ]);
    let errs = json(&[
        "errors",
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
        "--json",
    ]);
    assert_eq!(
        got["noise_multiplier"], base["noise_multiplier"],
        "z is per unit sensitivity"
    );
    assert_eq!(got["sensitivity"], errs["sensitivity"]);
    let (z, s) = (
        got["noise_multiplier"].as_f64().unwrap(),
        got["sensitivity"].as_f64().unwrap(),
    );
    assert!(rel(got["noise_std"].as_f64().unwrap(), z * s) < 1e-15);
}

#[test]
fn poisson_accountants_through_the_cli() {
    let pld = json(&[
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
        "--json",
    ]);
    let eps = pld["epsilon"].as_f64().unwrap();
    // dp_accounting's PLD value for this case is 3.1892763171470144.
    assert!(
        (0.99 * 3.1892763171470144..=1.01 * 3.1892763171470144).contains(&eps),
        "{eps}"
    );
    assert!(pld["sampling"].as_str().unwrap().contains("poisson"));
}

#[test]
fn accounting_bad_input_exits_2() {
    check_bad(
        &["calibrate", "--epsilon", "0", "--delta", "1e-5"],
        "--epsilon",
    );
    check_bad(
        &["calibrate", "--epsilon", "-1", "--delta", "1e-5"],
        "--epsilon",
    );
    check_bad(
        &["calibrate", "--epsilon", "NaN", "--delta", "1e-5"],
        "--epsilon",
    );
    check_bad(&["calibrate", "--epsilon", "1", "--delta", "1"], "--delta");
    check_bad(&["calibrate", "--epsilon", "1", "--delta", "0"], "--delta");
    check_bad(
        &["epsilon", "--noise-multiplier", "0", "--delta", "1e-5"],
        "--noise-multiplier",
    );
    check_bad(
        &["epsilon", "--noise-multiplier", "-1", "--delta", "1e-5"],
        "--noise-multiplier",
    );
    check_bad(
        &[
            "epsilon",
            "--noise-multiplier",
            "1",
            "--delta",
            "1e-5",
            "--accountant",
            "rdp-poisson",
            "--steps",
            "10",
        ],
        "--sampling-rate",
    );
    check_bad(
        &[
            "epsilon",
            "--noise-multiplier",
            "1",
            "--delta",
            "1e-5",
            "--accountant",
            "rdp-poisson",
            "--sampling-rate",
            "1.5",
            "--steps",
            "10",
        ],
        "--sampling-rate",
    );
    check_bad(
        &[
            "epsilon",
            "--noise-multiplier",
            "1",
            "--delta",
            "1e-5",
            "--accountant",
            "pld-poisson",
            "--sampling-rate",
            "0.1",
            "--steps",
            "0",
        ],
        "--steps",
    );
    check_bad(
        &[
            "epsilon",
            "--noise-multiplier",
            "1",
            "--delta",
            "1e-5",
            "--sampling-rate",
            "0.1",
            "--steps",
            "10",
        ],
        "--sampling-rate",
    );
}

#[test]
fn noise_writes_a_valid_npy_and_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("noise.npy");
    let o = out.to_str().unwrap();
    let r = json(&[
        "noise", "--method", "bisr", "--band", "4", "--n", "8", "--dim", "1000", "--seed", "7",
        "--std", "1.0", "--out", o, "--json",
    ]);
    assert_eq!(r["private_release_safe"], Value::Bool(false));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0);
    assert_eq!(bytes.len(), 10 + header_len + 8 * 1000 * 4);
    // Same seed, same bytes.
    let out2 = dir.path().join("again.npy");
    json(&[
        "noise",
        "--method",
        "bisr",
        "--band",
        "4",
        "--n",
        "8",
        "--dim",
        "1000",
        "--seed",
        "7",
        "--out",
        out2.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(bytes, std::fs::read(&out2).unwrap());
    check_bad(&["noise", "--n", "8", "--dim", "0", "--out", o], "--dim");
    check_bad(
        &[
            "noise", "--n", "8", "--dim", "10", "--std", "inf", "--out", o,
        ],
        "--std",
    );
    check_bad(
        &[
            "noise", "--n", "8", "--dim", "10", "--std", "-1", "--out", o,
        ],
        "--std",
    );
    check_bad(
        &[
            "noise", "--n", "8", "--dim", "10", "--method", "bisr", "--band", "9", "--out", o,
        ],
        "--band",
    );
}

fn smoke(dir: &Path) -> Output {
    let config = repo().join("configs/smoke.toml");
    lrmf(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--quiet",
    ])
}

#[test]
fn smoke_training_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("smoke");
    let out = smoke(&run);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(run.join("metrics.jsonl").is_file());
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["completed"], Value::Bool(true));
    assert!(
        summary["test_accuracy"].as_f64().unwrap() > 0.2,
        "beats chance (0.1) on learnable data"
    );
    // A second fresh run into the same folder is refused (it would overwrite a checkpoint).
    assert_eq!(smoke(&run).status.code(), Some(2));
}

#[test]
fn bad_train_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(repo().join("configs/smoke.toml")).unwrap()
        + "\n[surprise]\nkey = 1\n";
    std::fs::write(&bad, text).unwrap();
    let out = lrmf(&[
        "train",
        "--config",
        bad.to_str().unwrap(),
        "--out",
        dir.path().join("r").to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = lrmf(&["train"]);
    assert_eq!(out.status.code(), Some(2));
}
