//! A run with a validation split trains, samples and accounts on the reduced training set
//! only, and reports the held-out accuracy as a diagnostic outside the DP guarantee: what the
//! learning-rate grid of `cargo xtask repro --full` relies on.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use lrmf_train::{NoProgress, Summary, TrainConfig};

const CONFIG: &str = r#"
seed = 3
[data]
dataset = "synthetic-images"
train_examples = 300
test_examples = 100
VALIDATION
[model]
kind = "logistic"
[training]
epochs = 2
batch_size = 30
learning_rate = 0.5
momentum = 0.5
[privacy]
clip_norm = 1.0
method = "bisr"
band = 2
epsilon = 8.0
delta = 1e-5
"#;

/// Trains CONFIG with `validation` lines in `[data]`; returns the summary.
fn check(validation: &str) -> Summary {
    let cfg = TrainConfig::from_toml_str(&CONFIG.replace("VALIDATION", validation)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = lrmf_train::train(
        &cfg,
        dir.path(),
        false,
        Arc::new(AtomicBool::new(false)),
        &mut NoProgress,
    )
    .unwrap();
    assert!(s.completed);
    let back: Summary =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(back, s);
    s
}

#[test]
fn validation_split_reduces_n_and_reports_its_accuracy_outside_dp() {
    let s = check("validation = 60\nvalidation_seed = 11");
    // N = 300 − 60 = 240 training examples: b = 240 / 30 = 8 steps per epoch, and the noisy
    // sum is divided by the expected batch 240 / 8 — the sampler and the accountant see 240.
    assert_eq!(
        (s.num_train, s.steps_per_epoch, s.total_steps),
        (240, 8, 16)
    );
    assert_eq!(s.expected_batch_size, 30.0);
    assert_eq!(s.num_validation, Some(60));
    let acc = s.validation_accuracy.unwrap();
    assert!(acc > 0.3 && acc <= 1.0, "{acc}");
    assert!(s.outside_dp.iter().any(|k| k == "validation_accuracy"));
    assert!(s.epsilon.unwrap() <= 8.0);

    let plain = check("");
    assert_eq!((plain.num_train, plain.steps_per_epoch), (300, 10));
    assert_eq!(
        (plain.num_validation, plain.validation_accuracy),
        (None, None)
    );
    assert!(!plain.outside_dp.iter().any(|k| k == "validation_accuracy"));
}
