//! Strategy files: `lrmf factorize --out` round trips through `--strategy` on every command,
//! user-written and NumPy strategies go through the same checks, and every mismatch or
//! malformed file exits 2 naming `--strategy` and the field.

mod common;

use common::{check_bad, json, lrmf};
use std::path::Path;

const PROBLEM: [&str; 10] = [
    "--n",
    "64",
    "--schedule",
    "exponential",
    "--lr-decay",
    "0.1",
    "--min-sep",
    "16",
    "--participations",
    "4",
];

fn with<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter()
        .chain(PROBLEM.iter())
        .chain(tail)
        .copied()
        .collect()
}

fn check(file: &Path, method: &str) {
    let f = file.to_str().unwrap();
    let from_file = json(&with(&["errors"], &["--strategy", f, "--json"]));
    let built_in = json(&with(
        &["errors"],
        &["--method", method, "--band", "4", "--json"],
    ));
    for key in ["max_se", "mean_se", "sensitivity"] {
        let (a, b) = (
            from_file[key].as_f64().unwrap(),
            built_in[key].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-12 * b,
            "{key}: {a} vs {b} ({})",
            file.display()
        );
    }
    // calibrate and noise take it too.
    let z = json(&with(
        &["calibrate", "--epsilon", "2", "--delta", "1e-5"],
        &["--strategy", f, "--json"],
    ));
    assert!(z["noise_multiplier"].as_f64().unwrap() > 0.0);
}

#[test]
fn factorize_round_trips_through_json_and_npy() {
    let dir = tempfile::tempdir().unwrap();
    for method in ["bisr", "bsr", "lr-bisr"] {
        let out = dir.path().join(format!("{method}.json"));
        let npy = dir.path().join(format!("{method}.npy"));
        let r = json(&with(
            &["factorize"],
            &[
                "--method",
                method,
                "--band",
                "4",
                "--out",
                out.to_str().unwrap(),
                "--npy",
                npy.to_str().unwrap(),
                "--json",
            ],
        ));
        assert_eq!(r["method"], method);
        check(&out, method);
        check(&npy, method);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn mismatched_and_malformed_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.json");
    let o = out.to_str().unwrap();
    json(&with(
        &["factorize"],
        &["--method", "bisr", "--band", "4", "--out", o, "--json"],
    ));
    let bad = |args: Vec<&str>, field: &str| {
        check_bad(&args, "--strategy");
        let err = String::from_utf8_lossy(&lrmf(&args).stderr).to_string();
        assert!(err.contains(field), "{field} not named: {err}");
    };
    let mut other_n: Vec<&str> = with(&["errors"], &["--strategy", o]);
    other_n[2] = "128";
    bad(other_n, "n");
    let mut other_schedule = with(&["errors"], &["--strategy", o]);
    other_schedule[4] = "cosine";
    bad(other_schedule, "workload.schedule");
    let mut other_k = with(&["errors"], &["--strategy", o]);
    other_k[10] = "3";
    bad(other_k, "participation.participations");
    // --strategy replaces --method.
    check_bad(
        &with(&["errors"], &["--strategy", o, "--method", "bsr"]),
        "--method",
    );
    let d = dir.path();
    for (name, text, field) in [
        ("garbage.json", "{not json", "s"),
        (
            "format.json",
            r#"{"format":"x","n":64,"c":{"kind":"identity"}}"#,
            "format",
        ),
        (
            "singular.json",
            r#"{"format":"lrmf-strategy/1","n":64,"c":{"kind":"toeplitz","coeffs":[0,1]}}"#,
            "singular",
        ),
        (
            "nan.json",
            r#"{"format":"lrmf-strategy/1","n":64,"c":{"kind":"inverse-toeplitz","coeffs":[1,null]}}"#,
            "expected f64",
        ),
        (
            "rows.json",
            r#"{"format":"lrmf-strategy/1","n":64,"c":{"kind":"dense","rows":[[1]]}}"#,
            "rows",
        ),
    ] {
        let f = write(d, name, text);
        bad(with(&["errors"], &["--strategy", &f]), field);
    }
    // A dense C that is not lower-triangular, and one of the wrong size, as .npy.
    let npy = |name: &str, n: usize, upper: f64| {
        let header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({n}, {n}), }}");
        let mut h = header.into_bytes();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h);
        for i in 0..n {
            for j in 0..n {
                let v = if i == j {
                    1.0
                } else if j == i + 1 {
                    upper
                } else {
                    0.0
                };
                bytes.extend(f64::to_le_bytes(v));
            }
        }
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let upper = npy("upper.npy", 64, 0.5);
    bad(
        with(&["errors"], &["--strategy", &upper]),
        "lower-triangular",
    );
    let small = npy("small.npy", 8, 0.0);
    bad(with(&["errors"], &["--strategy", &small]), "--n");
}

#[test]
fn a_user_strategy_with_signed_entries_is_never_under_stated() {
    // C = Toep([1, −1]), n = 4, min-sep 1, k = 2: opposite gradients give √6 (MATH.md §5).
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "signed.json",
        r#"{"format":"lrmf-strategy/1","n":4,"c":{"kind":"toeplitz","coeffs":[1,-1]}}"#,
    );
    let r = json(&[
        "errors",
        "--n",
        "4",
        "--min-sep",
        "1",
        "--participations",
        "2",
        "--strategy",
        &f,
        "--json",
    ]);
    assert_eq!(r["method"], "user");
    assert!(r["sensitivity"].as_f64().unwrap() >= 6f64.sqrt(), "{r}");
}
