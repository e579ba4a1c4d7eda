//! The trainer's tests: exact SGD without privacy, the noise covariance of the factorization,
//! stop/resume equal to an uninterrupted run, folder checks, divergence, real models.
use super::setup::derive;
use super::*;
use crate::checkpoint::Checkpoint;
use crate::metrics::{METRICS_FILE, STEP_DIAGNOSTICS, StepMetrics};
use crate::model::Batch;
use crate::model::GradientStats;
use crate::plan::{NoiseSeed, PrivacyPlan};
use crate::sampler::Batching;
use crate::sampler::BinSampler;
use lrmf_data::{Dataset, Normalization};
use lrmf_linalg::LinearOperator;
use std::fs;

/// Least squares on the first min(d, 3072) pixels: loss_i = ½(θ·x_i − y_i)², y_i = label;
/// the per-example gradient is (θ·x_i − y_i)·x_i. `zero_grad` makes every gradient 0.
struct LeastSquares {
    theta: Vec<f32>,
    zero_grad: bool,
}

fn features(batch: &Batch, d: usize) -> Vec<(Vec<f64>, f64)> {
    let Batch::Images { pixels, labels, .. } = batch else {
        panic!("images expected")
    };
    labels
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            let x = pixels[i * 3072..i * 3072 + d]
                .iter()
                .map(|&v| v as f64)
                .collect();
            (x, y as f64)
        })
        .collect()
}

impl DpModel for LeastSquares {
    fn num_params(&self) -> usize {
        self.theta.len()
    }
    fn params(&self) -> Vec<f32> {
        self.theta.clone()
    }
    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        self.theta.copy_from_slice(params);
        Ok(())
    }
    fn clipped_gradient_sum(&self, batch: &Batch, clip: Option<f32>) -> Result<GradientStats> {
        let d = self.theta.len();
        let mut grad = vec![0f64; d];
        let (mut loss, mut correct, mut clipped) = (0.0, 0, 0);
        for (x, y) in features(batch, d.min(3072)) {
            let pred: f64 = x.iter().zip(&self.theta).map(|(a, b)| a * *b as f64).sum();
            let r = pred - y;
            loss += 0.5 * r * r;
            correct += usize::from(r.abs() < 0.5);
            let g: Vec<f64> = if self.zero_grad {
                vec![0.0; d]
            } else {
                x.iter()
                    .map(|v| r * v)
                    .chain(std::iter::repeat(0.0))
                    .take(d)
                    .collect()
            };
            let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
            let scale = match clip {
                Some(c) if norm > c as f64 => {
                    clipped += 1;
                    c as f64 / norm
                }
                _ => 1.0,
            };
            for (a, v) in grad.iter_mut().zip(&g) {
                *a += scale * v;
            }
        }
        Ok(GradientStats {
            grad_sum: grad.iter().map(|&v| v as f32).collect(),
            loss_sum: loss,
            correct,
            clipped,
        })
    }
    fn evaluate(&self, batch: &Batch) -> Result<(f64, usize)> {
        let s = self.clipped_gradient_sum(batch, None)?;
        Ok((s.loss_sum, s.correct))
    }
}

/// Small random images with labels 0..3 (pixels ~ U(−1, 1) from a ChaCha stream).
fn images(n: usize, seed: u64) -> Dataset {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let images = (0..n * 3072)
        .map(|_| (rand::Rng::next_u32(&mut rng) as f64 / u32::MAX as f64 * 2.0 - 1.0) as f32)
        .collect();
    Dataset {
        images,
        labels: (0..n).map(|i| (i % 3) as u8).collect(),
        n,
        normalization: Normalization::UnitRange,
    }
}

fn data(n_train: usize, n_test: usize) -> TrainData {
    TrainData {
        train: Examples::Images(images(n_train, 1)),
        test: Examples::Images(images(n_test, 2)),
        validation: None,
    }
}

/// A config for `n` synthetic training images with the given `[privacy]` body.
fn config(n: usize, extra_training: &str, privacy: &str) -> TrainConfig {
    TrainConfig::from_toml_str(&format!(
        r#"
seed = 11
[data]
dataset = "synthetic-images"
train_examples = {n}
test_examples = 10
[model]
kind = "logistic"
[training]
epochs = 3
batch_size = 8
learning_rate = 0.05
momentum = 0.8
weight_decay = 0.99
{extra_training}
[schedule]
kind = "cosine"
lr_decay = 0.2
[privacy]
{privacy}
"#
    ))
    .unwrap()
}

/// Runs `train_model` into a fresh temp folder; returns (summary, final params, folder).
fn check(
    cfg: &TrainConfig,
    model: &mut dyn DpModel,
    data: &TrainData,
) -> (Summary, Vec<f32>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = train_model(
        cfg,
        model,
        data,
        dir.path(),
        false,
        Arc::new(AtomicBool::new(false)),
        &mut crate::NoProgress,
    )
    .unwrap();
    (s, model.params(), dir)
}

#[test]
fn non_private_equals_sgd_with_momentum_and_weight_decay() {
    let (n, d) = (40, 5);
    let cfg = config(
        n,
        "",
        "mode = \"non-private\"\nsampling = \"fixed-partition\"",
    );
    let data = data(n, 10);
    let mut model = LeastSquares {
        theta: vec![0.1; d],
        zero_grad: false,
    };
    let (summary, params, dir) = check(&cfg, &mut model, &data);
    assert!(summary.completed);

    // Oracle: the same batches, plain f64 SGD with heavy-ball momentum and weight decay.
    let b = n / 8;
    let total = 3 * b;
    let sampler = BinSampler::new(
        n,
        b,
        Batching::FixedPartition,
        derive(11, "lrmf-train sampler v1"),
    )
    .unwrap();
    let Examples::Images(train) = &data.train else {
        unreachable!()
    };
    let mut theta = vec![0.1f64; d];
    let mut m = vec![0f64; d];
    let mut losses = Vec::new();
    for t in 0..total {
        let chi =
            0.2 + 0.8 / 2.0 * (1.0 + (std::f64::consts::PI * t as f64 / (total - 1) as f64).cos());
        let mut g = vec![0f64; d];
        let mut loss = 0.0;
        for &i in sampler.batch(t) {
            let x = &train.images[i as usize * 3072..i as usize * 3072 + d];
            let r: f64 = x
                .iter()
                .zip(&theta)
                .map(|(a, b)| *a as f64 * b)
                .sum::<f64>()
                - train.labels[i as usize] as f64;
            loss += 0.5 * r * r;
            for k in 0..d {
                g[k] += r * x[k] as f64;
            }
        }
        losses.push(loss / sampler.batch(t).len() as f64);
        for k in 0..d {
            m[k] = 0.8 * m[k] + g[k] / (n as f64 / b as f64);
            theta[k] = 0.99 * theta[k] - 0.05 * chi * m[k];
        }
    }
    for k in 0..d {
        assert!(
            (params[k] as f64 - theta[k]).abs() < 1e-4,
            "{k}: {} vs {}",
            params[k],
            theta[k]
        );
    }
    let text = fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
    let lines: Vec<StepMetrics> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), total);
    for (t, l) in lines.iter().enumerate() {
        assert_eq!(l.step, t + 1);
        assert!((l.loss.unwrap() - losses[t]).abs() < 1e-4 * (1.0 + losses[t]));
    }
    assert_eq!(summary.noise_std, None);
    assert!(dir.path().join("summary.json").is_file());
}

#[test]
fn added_noise_has_the_covariance_of_the_factorization() {
    // Zero gradients, μ = 0, λ = 1, χ ≡ 1, η = 1: θ_t − θ_{t+1} = ξ_t / B exactly, so the
    // noise of each step is read back from the parameters; over d coordinates its empirical
    // covariance must be σ_eff² · C⁻¹C⁻ᵀ (σ_eff = z · sens · clip).
    let (n, d) = (16, 40_000);
    for (method, band) in [("identity", ""), ("bisr", "band = 2"), ("bsr", "band = 3")] {
        let cfg = TrainConfig::from_toml_str(&format!(
            r#"
seed = 5
[data]
dataset = "synthetic-images"
train_examples = {n}
test_examples = 4
[model]
kind = "logistic"
[training]
epochs = 2
batch_size = 4
learning_rate = 1.0
eval_each_epoch = false
[privacy]
clip_norm = 0.5
method = "{method}"
{band}
epsilon = 4.0
delta = 1e-5
"#
        ))
        .unwrap();
        let data = data(n, 4);
        let mut model = LeastSquares {
            theta: vec![0.0; d],
            zero_grad: true,
        };
        let dir = tempfile::tempdir().unwrap();
        let steps = 8;
        let bsz = n as f64 / 4.0;
        let mut noise = vec![vec![0f64; d]; steps];
        // Read θ after every step through the progress callback's checkpoints: run one
        // step at a time with the stop flag.
        struct StopEach(Arc<AtomicBool>);
        impl Progress for StopEach {
            fn step(&mut self, _: &StepMetrics) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let mut prev = vec![0f32; d];
        let mut summary = None;
        for t in 0..steps {
            let stop = Arc::new(AtomicBool::new(false));
            let mut p = StopEach(stop.clone());
            let s = train_model(&cfg, &mut model, &data, dir.path(), t > 0, stop, &mut p).unwrap();
            let now = model.params();
            for i in 0..d {
                noise[t][i] = (prev[i] as f64 - now[i] as f64) * bsz;
            }
            prev = now;
            summary = Some(s);
        }
        let s = summary.unwrap();
        assert!(s.completed);
        let sigma = s.noise_std.unwrap();
        assert!((sigma - s.noise_multiplier.unwrap() * s.sensitivity.unwrap() * 0.5).abs() < 1e-12);
        // Expected covariance from the strategy, computed densely.
        let plan = PrivacyPlan::build(&cfg, &cfg.validate().unwrap().mechanism).unwrap();
        assert_eq!(plan.sensitivity, s.sensitivity.unwrap());
        let cinv = plan.c.inverse_to_dense().unwrap();
        let scale = sigma * sigma;
        for a in 0..steps {
            for b2 in 0..=a {
                let emp: f64 = (0..d).map(|i| noise[a][i] * noise[b2][i]).sum::<f64>() / d as f64;
                let exp: f64 = (0..steps)
                    .map(|j| cinv[(a, j)] * cinv[(b2, j)])
                    .sum::<f64>()
                    * scale;
                // Standard error of the estimate ≤ scale·√(2/d)·max diag ≈ 0.007·scale·diag.
                let diag = (0..steps)
                    .map(|j| cinv[(a, j)].powi(2))
                    .sum::<f64>()
                    .max(1.0);
                assert!(
                    (emp - exp).abs() < 0.05 * scale * diag,
                    "{method} [{a},{b2}]: {emp} vs {exp}"
                );
            }
        }
        // Sanity: the dense C of the plan is lower-triangular and C·C⁻¹ = I.
        let c = plan.c.to_dense();
        assert!((c[(1, 1)] * cinv[(1, 1)] - 1.0).abs() < 1e-12);
    }
}

/// Sets the stop flag once `at` steps have completed.
struct StopAt(usize, Arc<AtomicBool>);
impl Progress for StopAt {
    fn step(&mut self, m: &StepMetrics) {
        if m.step == self.0 {
            self.1.store(true, Ordering::SeqCst);
        }
    }
}

const PRIVATE: &str = "clip_norm = 0.7\nmethod = \"bisr\"\nband = 3\nepsilon = 3.0\ndelta = 1e-5";

#[test]
fn stopped_and_resumed_run_equals_uninterrupted_run() {
    let n = 48;
    let cfg = config(n, "checkpoint_every = 4", PRIVATE);
    let data = data(n, 10);
    let fresh = || LeastSquares {
        theta: vec![0.2; 6],
        zero_grad: false,
    };
    let (full, full_params, full_dir) = check(&cfg, &mut fresh(), &data);
    assert!(full.completed && full.total_steps == 18);

    // Stop mid-epoch (step 8 of b = 6 per epoch), resume in a new "process".
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut model = fresh();
    let part = train_model(
        &cfg,
        &mut model,
        &data,
        dir.path(),
        false,
        stop.clone(),
        &mut StopAt(8, stop),
    )
    .unwrap();
    assert!(!part.completed);
    assert_eq!(part.steps_done, 8);
    assert_eq!(
        Checkpoint::load(dir.path()).unwrap().unwrap().header.step,
        8
    );
    // A killed process may have written metrics past the checkpoint: resume drops them.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join(METRICS_FILE))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"step\": 9, \"torn").unwrap();
    drop(f);
    let mut model = fresh();
    let done = train_model(
        &cfg,
        &mut model,
        &data,
        dir.path(),
        true,
        Arc::new(AtomicBool::new(false)),
        &mut crate::NoProgress,
    )
    .unwrap();
    assert!(done.completed);
    assert_eq!(model.params(), full_params, "bit-identical parameters");
    assert_eq!(
        fs::read(dir.path().join(METRICS_FILE)).unwrap(),
        fs::read(full_dir.path().join(METRICS_FILE)).unwrap(),
        "identical metrics"
    );
    assert_eq!(done.test_accuracy, full.test_accuracy);
    assert_eq!(done.epsilon, full.epsilon);
    // The completed run deleted its secret checkpoint; the release holds θ_n.
    assert!(Checkpoint::load(dir.path()).unwrap().is_none());
    assert_eq!(
        crate::release::load_params(dir.path(), &model).unwrap(),
        full_params
    );

    // A crash (the process dies mid-epoch, here a panic after step 11 with the last
    // checkpoint at step 8 and metrics of steps 9..11 written): resume from step 8.
    struct CrashAt(usize);
    impl Progress for CrashAt {
        fn step(&mut self, m: &StepMetrics) {
            if m.step == self.0 {
                panic!("simulated crash at step {}", m.step);
            }
        }
    }
    let crash_dir = tempfile::tempdir().unwrap();
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut model = fresh();
        train_model(
            &cfg,
            &mut model,
            &data,
            crash_dir.path(),
            false,
            Arc::new(AtomicBool::new(false)),
            &mut CrashAt(11),
        )
    }));
    assert!(crashed.is_err());
    assert_eq!(
        Checkpoint::load(crash_dir.path())
            .unwrap()
            .unwrap()
            .header
            .step,
        8
    );
    let mut model = fresh();
    train_model(
        &cfg,
        &mut model,
        &data,
        crash_dir.path(),
        true,
        Arc::new(AtomicBool::new(false)),
        &mut crate::NoProgress,
    )
    .unwrap();
    assert_eq!(model.params(), full_params, "bit-identical after a crash");
    assert_eq!(
        fs::read(crash_dir.path().join(METRICS_FILE)).unwrap(),
        fs::read(full_dir.path().join(METRICS_FILE)).unwrap(),
        "identical metrics after a crash"
    );

    // A finished run deleted its checkpoint: resuming it is refused, naming --resume.
    let again = train_model(
        &cfg,
        &mut fresh(),
        &data,
        dir.path(),
        true,
        Arc::new(AtomicBool::new(false)),
        &mut crate::NoProgress,
    );
    assert!(
        matches!(&again, Err(TrainError::Config { key, message }) if key == "--resume" && message.contains("complete")),
        "{again:?}"
    );
}

#[test]
fn folder_and_config_mismatches_are_errors() {
    let n = 24;
    let mut cfg = config(n, "", PRIVATE);
    // Kept on request, so that resuming with another config can be tried.
    cfg.output.keep_checkpoint = true;
    let data = data(n, 10);
    let mut model = LeastSquares {
        theta: vec![0.0; 3],
        zero_grad: false,
    };
    let (s, _, dir) = check(&cfg, &mut model, &data);
    assert!(s.checkpoint.starts_with("kept"), "{}", s.checkpoint);
    assert!(dir.path().join("checkpoint.bin").is_file());
    let go = |c: &TrainConfig, resume: bool, dir: &Path| {
        let mut m = LeastSquares {
            theta: vec![0.0; 3],
            zero_grad: false,
        };
        train_model(
            c,
            &mut m,
            &data,
            dir,
            resume,
            Arc::new(AtomicBool::new(false)),
            &mut crate::NoProgress,
        )
    };
    let key = |r: Result<Summary>| match r {
        Err(TrainError::Config { key, .. }) => key,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert_eq!(key(go(&cfg, false, dir.path())), "--out");
    let mut other = cfg.clone();
    other.training.learning_rate = 0.01;
    assert_eq!(key(go(&other, true, dir.path())), "--config");
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(key(go(&cfg, true, empty.path())), "--resume");
    // Data that does not match the config's sizes.
    let small = TrainData {
        train: Examples::Images(images(n - 1, 1)),
        test: Examples::Images(images(10, 2)),
        validation: None,
    };
    let mut m = LeastSquares {
        theta: vec![0.0; 3],
        zero_grad: false,
    };
    let e = train_model(
        &cfg,
        &mut m,
        &small,
        empty.path(),
        false,
        Arc::new(AtomicBool::new(false)),
        &mut crate::NoProgress,
    );
    assert_eq!(key(e), "data");
}

#[test]
fn divergence_stops_with_the_last_good_checkpoint_intact() {
    let n = 24;
    let cfg = config(n, "", "mode = \"non-private\"").clone();
    let mut cfg = cfg;
    cfg.training.learning_rate = 1e6;
    cfg.training.momentum = 0.0;
    let data = data(n, 10);
    let dir = tempfile::tempdir().unwrap();
    let mut model = LeastSquares {
        theta: vec![1.0; 50],
        zero_grad: false,
    };
    let r = train_model(
        &cfg,
        &mut model,
        &data,
        dir.path(),
        false,
        Arc::new(AtomicBool::new(false)),
        &mut crate::NoProgress,
    );
    assert!(matches!(r, Err(TrainError::Diverged(_))), "{r:?}");
    let ck = Checkpoint::load(dir.path()).unwrap().unwrap();
    assert!(ck.params.iter().all(|p| p.is_finite()));
    assert_eq!(ck.header.step % 3, 0, "an epoch-end (or step-0) checkpoint");
}

#[test]
fn smoke_run_with_a_real_model_learns() {
    let cfg = TrainConfig::from_toml_str(
        r#"
seed = 3
[data]
dataset = "synthetic-images"
train_examples = 300
test_examples = 100
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
"#,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = train(
        &cfg,
        dir.path(),
        false,
        Arc::new(AtomicBool::new(false)),
        &mut crate::NoProgress,
    )
    .unwrap();
    assert!(s.completed);
    assert!(s.test_accuracy.unwrap() > 0.3, "{s:?}");
    assert_eq!(s.accountant.as_deref(), Some("gaussian"));
    assert!(s.epsilon.unwrap() <= 8.0 && s.epsilon.unwrap() > 7.9);
    assert!(s.warnings.iter().any(|w| w.contains("NOT for a real")));
    for f in [
        METRICS_FILE,
        "summary.json",
        CONFIG_FILE,
        "model.safetensors",
        "release.json",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    // No secret is left behind, and nothing in the folder is readable by others.
    assert!(!dir.path().join("checkpoint.bin").exists());
    assert!(s.checkpoint.starts_with("deleted"), "{}", s.checkpoint);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        for e in fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    // Every diagnostic computed from private data without noise is labelled.
    let first = fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
    let m: StepMetrics = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(m.outside_dp, STEP_DIAGNOSTICS);
    assert_eq!(s.outside_dp, ["train_loss_last_epoch"]);
    // The release scores the same test accuracy without the checkpoint.
    let e = crate::release::evaluate_release(dir.path()).unwrap();
    assert_eq!(Some(e.test_accuracy), s.test_accuracy);
    // A second fresh run into the completed folder is refused.
    let again = train(
        &cfg,
        dir.path(),
        false,
        Arc::new(AtomicBool::new(false)),
        &mut crate::NoProgress,
    );
    assert!(matches!(again, Err(TrainError::Config { .. })));
}

#[test]
fn mc_bnb_accountant_calibrates_reproducibly_across_resume() {
    let n = 24;
    let cfg = config(
        n,
        "",
        "clip_norm = 1.0\nmethod = \"bisr\"\nband = 2\nepsilon = 4.0\ndelta = 0.01\naccountant = \"mc-bnb\"\nmc_samples = 4000",
    );
    let data = data(n, 10);
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut m = LeastSquares {
        theta: vec![0.0; 4],
        zero_grad: false,
    };
    let part = train_model(
        &cfg,
        &mut m,
        &data,
        dir.path(),
        false,
        stop.clone(),
        &mut StopAt(2, stop),
    )
    .unwrap();
    assert!(!part.completed);
    let mut m = LeastSquares {
        theta: vec![0.0; 4],
        zero_grad: false,
    };
    let done = train_model(
        &cfg,
        &mut m,
        &data,
        dir.path(),
        true,
        Arc::new(AtomicBool::new(false)),
        &mut crate::NoProgress,
    )
    .unwrap();
    assert!(done.completed);
    assert_eq!(done.accountant.as_deref(), Some("mc-bnb"));
    assert_eq!(done.noise_multiplier, part.noise_multiplier);
    assert!(done.epsilon.unwrap() <= 4.0);
    assert!(done.warnings.iter().any(|w| w.contains("Monte Carlo")));
}

#[test]
fn noise_state_round_trips_through_the_compact_encoding() {
    let cfg = config(24, "", PRIVATE);
    let plan = PrivacyPlan::build(&cfg, &cfg.validate().unwrap().mechanism).unwrap();
    let (mut a, _) = plan
        .noise_source(7, NoiseSeed::Fixed([4; 32]), None)
        .unwrap();
    let mut buf = vec![0f32; 7];
    for _ in 0..4 {
        a.fill_next(&mut buf).unwrap();
    }
    let state = a.save_state().unwrap();
    let (mut b, safe) = plan
        .noise_source(7, NoiseSeed::FromCheckpoint, Some(&state))
        .unwrap();
    assert!(!safe, "a fixed key is not release-safe");
    let mut other = vec![0f32; 7];
    a.fill_next(&mut buf).unwrap();
    b.fill_next(&mut other).unwrap();
    assert_eq!(buf, other);
    assert!(
        plan.noise_source(7, NoiseSeed::FromCheckpoint, Some(&state[..5]))
            .is_err()
    );
    let (_, safe) = plan.noise_source(7, NoiseSeed::Os, None).unwrap();
    assert!(safe, "an OS key is release-safe");
}

#[test]
fn shipped_smoke_config_runs_and_leaves_metrics_and_summary() {
    let path = lrmf_data::setup::workspace_root().join("configs/smoke.toml");
    let cfg = TrainConfig::from_toml_file(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = train(
        &cfg,
        dir.path(),
        false,
        Arc::new(AtomicBool::new(false)),
        &mut crate::NoProgress,
    )
    .unwrap();
    assert!(s.completed && s.test_accuracy.unwrap() > 0.5, "{s:?}");
    let lines = fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
    assert_eq!(lines.lines().count(), s.total_steps);
    let back: Summary =
        serde_json::from_str(&fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(back, s);
}
