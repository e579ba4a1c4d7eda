//! Helpers shared by the CLI contract tests: run the `lrmf` binary, parse its JSON, and check
//! the one-line, exit-code-2 contract for bad input.

#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The root of the checkout under test, found at run time (see
/// [`lrmf_data::setup::workspace_root`]: a compile-time path can name another checkout that
/// shares the target directory).
pub fn repo() -> PathBuf {
    lrmf_data::setup::workspace_root()
}

/// Runs `lrmf ARGS`.
pub fn lrmf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lrmf"))
        .args(args)
        .output()
        .expect("the lrmf binary runs")
}

/// Runs `lrmf ARGS`, which must succeed, and parses its standard output as JSON.
pub fn json(args: &[&str]) -> Value {
    let out = lrmf(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

/// `lrmf ARGS` must exit with code 2, name `flag` on standard error, and not panic.
pub fn check_bad(args: &[&str], flag: &str) {
    let out = lrmf(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} should exit 2, stderr: {stderr}"
    );
    assert!(
        stderr.contains(flag),
        "{args:?}: the message should name {flag}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "no output on error");
}
