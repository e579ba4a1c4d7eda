//! Experiment 4 in quick mode: test accuracy of private training on CIFAR-10 (CNN) and IMDB
//! (text model) at ε = 9, δ = 1e-5 — DP-SGD, BSR, BISR with and without the schedule-aware
//! factorization, and the non-private model — all with the same exponential schedule, through
//! [`lrmf_train::train`] (the `lrmf train` code path). Each training run has its own folder with
//! a checkpoint, so an interrupted experiment resumes run by run. The full mode's study (learning
//! rates per method, more methods, schedules, accountants and seeds) is `study.rs`.

use crate::errors::sig;
use crate::run::RunDir;
use crate::table::{Table, f, opt};
use crate::train_config::RunSpec;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use lrmf_factor::Method;
use lrmf_train::config::AccountantKind;
use lrmf_train::{Progress, StepMetrics, Summary, TrainConfig};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use crate::train_config::{DELTA, EPSILON};
/// The schedule shared by all runs: exponential decay to β = 0.1 of the initial rate.
pub const SCHEDULE: (&str, f64) = ("exponential", 0.1);
/// `None` = non-private; else the factorization method.
pub const METHODS: [Option<Method>; 6] = [
    None,
    Some(Method::Identity),
    Some(Method::Bsr),
    Some(Method::LrBsr),
    Some(Method::Bisr),
    Some(Method::LrBisr),
];

/// Size of one data set's runs in a mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataScale {
    /// `cifar10` or `imdb`.
    pub dataset: &'static str,
    /// Training examples (a class-balanced prefix of the training split); `None` = all.
    pub train: Option<usize>,
    /// Test examples; `None` = all.
    pub test: Option<usize>,
    /// Epochs k (participations).
    pub epochs: usize,
    /// Expected batch size (N / b).
    pub batch: usize,
    /// Initial learning rate η of the private runs (clipped gradients).
    pub lr: f64,
    /// Initial learning rate η of the non-private run (unclipped gradients are larger). Measured
    /// on this machine: CIFAR-10 CNN with group norm 0.007 (0.02 unstable, 0.05 and above
    /// diverge; 64.8 % after 2 full epochs at batch 256); IMDB at batch 1000 × 10 epochs:
    /// 0.5 → 67 %, 5 → 80 %, 20 unstable.
    pub lr_nonprivate: f64,
    /// Band p of the banded methods.
    pub band: usize,
    /// Seeds (mean ± std over them).
    pub seeds: usize,
    /// Expected seconds of one run on 2 cores (for the time estimate).
    pub seconds_per_run: f64,
}

/// IMDB at the same scale in both modes: the whole data set, three seeds (its model is small).
const IMDB: DataScale = DataScale {
    dataset: "imdb",
    train: None,
    test: None,
    epochs: 10,
    batch: 1000,
    lr: 20.0,
    lr_nonprivate: 5.0,
    band: 5,
    seeds: 3,
    seconds_per_run: 30.0,
};

/// Quick mode: a CIFAR-10 prefix subset (one seed) and the whole of IMDB (three seeds; its
/// model is small), about 15 minutes on 2 cores.
pub const QUICK: [DataScale; 2] = [
    DataScale {
        dataset: "cifar10",
        train: Some(2_000),
        test: Some(1_000),
        epochs: 3,
        batch: 100,
        lr: 2.0,
        lr_nonprivate: 0.007,
        band: 4,
        seeds: 1,
        seconds_per_run: 75.0,
    },
    IMDB,
];

/// Expected seconds of the whole experiment.
pub fn estimate(scales: &[DataScale]) -> f64 {
    scales
        .iter()
        .map(|d| d.seconds_per_run * (METHODS.len() * d.seeds) as f64)
        .sum()
}

/// The training config of one run.
pub fn config(
    d: &DataScale,
    method: Option<Method>,
    seed: u64,
    data_dir: &Path,
) -> Result<TrainConfig> {
    crate::train_config::build(&RunSpec {
        name: format!(
            "{}-{}-seed{seed}",
            d.dataset,
            method.map_or("non-private", |m| m.name())
        ),
        seed,
        dataset: d.dataset,
        data_dir,
        train_examples: d.train,
        test_examples: d.test,
        validation: None,
        epochs: d.epochs,
        batch: d.batch,
        lr: if method.is_some() {
            d.lr
        } else {
            d.lr_nonprivate
        },
        eval_each_epoch: false,
        schedule: SCHEDULE,
        private: method.map(|m| (m, d.band, AccountantKind::Gaussian)),
        matmul: lrmf_train::model::Precision::F32,
    })
}

/// The CSV columns of experiment 4.
pub const HEADER: [&str; 17] = [
    "dataset",
    "method",
    "band",
    "seed",
    "train_examples",
    "test_examples",
    "epochs",
    "steps_per_epoch",
    "total_steps",
    "expected_batch_size",
    "epsilon",
    "delta",
    "noise_multiplier",
    "sensitivity",
    "test_accuracy",
    "wall_s",
    "status",
];

struct Bar<'a> {
    bar: &'a ProgressBar,
    weight: u64,
}

impl Progress for Bar<'_> {
    fn step(&mut self, _m: &StepMetrics) {
        self.bar.inc(self.weight);
    }
}

/// Which CIFAR-10 copy the data folder holds: the JPEG q75 conversion (its marker names the
/// archive's checksum) or user-supplied binary files.
pub fn cifar10_copy(data_dir: &Path) -> String {
    let marker = lrmf_data::DataDir::new(data_dir)
        .cifar10_dir()
        .join(lrmf_data::setup::MARKER_NAME);
    match std::fs::read_to_string(&marker) {
        Ok(m) if m.contains(lrmf_data::setup::CIFAR10_JPG_Q75_SHA256) => {
            "CIFAR-10 (JPEG q75 copy)".into()
        }
        _ => format!(
            "CIFAR-10 (binary files in {}, not the JPEG q75 copy)",
            data_dir.display()
        ),
    }
}

/// Runs experiment 4 into `run/accuracy/<dataset>-<method>-seed<s>/`; returns the table, or
/// `Ok(None)` after writing `accuracy.skipped` when the data is missing.
pub fn run(
    run: &RunDir,
    scales: &[DataScale],
    seed: u64,
    data_dir: &Path,
    stop: &Arc<AtomicBool>,
) -> Result<Option<Table>> {
    if let Some(msg) = missing_data(scales, data_dir) {
        crate::run::write_atomic(&run.file("accuracy.skipped"), msg.as_bytes())?;
        eprintln!("accuracy: skipped: {msg}");
        return Ok(None);
    }
    let _ = std::fs::remove_file(run.file("accuracy.skipped"));
    crate::run::write_atomic(
        &run.file("accuracy_data.txt"),
        format!("{}\n", cifar10_copy(data_dir)).as_bytes(),
    )?;
    let mut jobs: Vec<(DataScale, Option<Method>, u64)> = Vec::new();
    for d in scales {
        for s in 0..d.seeds as u64 {
            for m in METHODS {
                jobs.push((*d, m, seed + s));
            }
        }
    }
    let configs: Vec<TrainConfig> = jobs
        .iter()
        .map(|(d, m, s)| config(d, *m, *s, data_dir))
        .collect::<Result<_>>()?;
    // Progress in expected seconds: each step of a job weighs its run time / its steps.
    let weights: Vec<u64> = jobs
        .iter()
        .zip(&configs)
        .map(|((d, _, _), c)| {
            (d.seconds_per_run * 1000.0 / c.shape().total_steps.max(1) as f64) as u64
        })
        .collect();
    let total: u64 = configs
        .iter()
        .zip(&weights)
        .map(|(c, w)| w * c.shape().total_steps as u64)
        .sum();
    let bar = progress_bar(total);
    let mut t = Table::new(&HEADER);
    for (((d, m, s), c), w) in jobs.iter().zip(&configs).zip(&weights) {
        let name = c.name.clone().unwrap_or_default();
        bar.set_message(name.clone());
        let dir = run.file("accuracy").join(&name);
        let mut p = Bar {
            bar: &bar,
            weight: *w,
        };
        let row = match train_or_reuse(c, &dir, stop, &mut p) {
            Ok(sm) if !sm.completed => {
                bar.abandon_with_message("interrupted");
                anyhow::bail!(
                    "interrupted during {name}; resume with `cargo xtask repro --resume {}`",
                    run.path.display()
                );
            }
            Ok(sm) => row(d, *m, *s, Ok(&sm)),
            Err(e) => {
                let why = e.to_string().replace([',', '"', '\n', '\r'], ";");
                eprintln!("accuracy: {name} failed: {why}");
                row(d, *m, *s, Err((c, why)))
            }
        };
        t.push(row)?;
    }
    bar.finish_with_message(format!("{} training runs", jobs.len()));
    Ok(Some(t))
}

/// Why the data of `scales` cannot be read from `data_dir` (with the command that fetches it),
/// or `None` when it is all there.
fn missing_data(scales: &[DataScale], data_dir: &Path) -> Option<String> {
    let dd = lrmf_data::DataDir::new(data_dir);
    let mut missing = Vec::new();
    if scales.iter().any(|d| d.dataset == "cifar10")
        && let Err(e) = dd.cifar10()
    {
        missing.push(e.to_string());
    }
    if scales.iter().any(|d| d.dataset == "imdb")
        && let Err(e) = dd.imdb()
    {
        missing.push(e.to_string());
    }
    (!missing.is_empty()).then(|| {
        format!(
            "the data is missing — run `cargo xtask data` (or `cargo xtask data --data-dir {}`) and then `cargo xtask repro` again. {}",
            data_dir.display(),
            missing.join(" ")
        )
    })
}

/// The progress bar of experiment 4 over `total` weighted steps.
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {percent:>3}% ETA {eta}  {msg}",
        )
        .expect("valid template"),
    );
    bar.set_prefix("accuracy");
    bar
}

/// The summary of the run of `c` in `dir`: reused when a completed run of the same config is
/// there, else trained (resumed from its checkpoint when there is one; a completed run of an
/// older config is started over).
fn train_or_reuse(
    c: &TrainConfig,
    dir: &Path,
    stop: &Arc<AtomicBool>,
    p: &mut Bar<'_>,
) -> Result<Summary> {
    let prev: Option<Summary> = std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|x| serde_json::from_str(&x).ok());
    match prev {
        Some(sm) if sm.completed && sm.config_hash == c.hash() => {
            p.bar.inc(p.weight * c.shape().total_steps as u64);
            Ok(sm)
        }
        _ => {
            let resume = dir.join("checkpoint.bin").is_file();
            if !resume && dir.join(lrmf_train::release::RELEASE_FILE).exists() {
                std::fs::remove_dir_all(dir)?;
            }
            Ok(lrmf_train::train(c, dir, resume, stop.clone(), p)?)
        }
    }
}

/// The [`HEADER`] row of one run: its summary, or (config, reason) when it failed.
fn row(
    d: &DataScale,
    m: Option<Method>,
    seed: u64,
    result: std::result::Result<&Summary, (&TrainConfig, String)>,
) -> Vec<String> {
    let method = m.map_or("non-private", |m| m.name()).to_string();
    match result {
        Ok(sm) => vec![
            d.dataset.to_string(),
            method,
            opt(sm.band),
            seed.to_string(),
            sm.num_train.to_string(),
            sm.num_test.to_string(),
            sm.epochs.to_string(),
            sm.steps_per_epoch.to_string(),
            sm.total_steps.to_string(),
            f(sm.expected_batch_size),
            opt(sm.epsilon.map(f)),
            opt(sm.delta.map(f)),
            opt(sm.noise_multiplier.map(f)),
            opt(sm.sensitivity.map(f)),
            opt(sm.test_accuracy.map(f)),
            f(sm.wall_time_s),
            "ok".into(),
        ],
        Err((c, why)) => {
            let sh = c.shape();
            let mut r = vec![
                d.dataset.to_string(),
                method,
                String::new(),
                seed.to_string(),
                sh.num_train.to_string(),
                sh.num_test.to_string(),
                sh.epochs.to_string(),
                sh.steps_per_epoch.to_string(),
                sh.total_steps.to_string(),
            ];
            r.resize(HEADER.len() - 1, String::new());
            r.push(format!("failed: {why}"));
            r
        }
    }
}

/// Report section of experiment 4: mean ± std of test accuracy over seeds (quick mode), or the
/// full study's section when `t` is its per-run table (it has an `accountant` column).
pub fn report(run: &RunDir, t: &Table, img: &dyn Fn(&str) -> String) -> Result<String> {
    if t.col("accountant").is_ok() {
        return crate::study_docs::markdown(run, img);
    }
    let mut s = String::new();
    let copy = std::fs::read_to_string(run.file("accuracy_data.txt")).unwrap_or_default();
    writeln!(
        s,
        "Data: {} and IMDB (aclImdb v1, labelled part); where the train/test counts below are smaller than the full splits (quick mode, to fit its time budget) they are prefixes of the splits, class-balanced for CIFAR-10 by its record order. Same exponential schedule for all runs (β = {}), momentum 0.9, clip norm 1, Gaussian accountant (no amplification), balls-in-bins batches, ε = {}, δ = {:e}. Learning rates were not tuned per method. Fixed seeds (reproducible; not a private release).\n",
        copy.trim(),
        SCHEDULE.1,
        EPSILON,
        DELTA
    )?;
    writeln!(
        s,
        "| data set | method | band | train / test examples | epochs × steps | z | runs | test accuracy (mean ± std) |"
    )?;
    writeln!(s, "|---|---|---:|---|---|---:|---:|---:|")?;
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in &t.rows {
        let k = (
            t.get(r, "dataset")?.to_string(),
            t.get(r, "method")?.to_string(),
        );
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (ds, m) in keys {
        let rs: Vec<&Vec<String>> = t.rows.iter().filter(|r| r[0] == ds && r[1] == m).collect();
        let accs: Vec<f64> = rs
            .iter()
            .filter_map(|r| t.opt_num(r, "test_accuracy").ok().flatten())
            .collect();
        let first = rs[0];
        let acc = match (crate::stats::mean(&accs), crate::stats::std_dev(&accs)) {
            (None, _) => format!("failed: {}", t.get(first, "status")?),
            (Some(mean), Some(sd)) => format!("{:.2} ± {:.2} %", 100.0 * mean, 100.0 * sd),
            (Some(mean), None) => format!("{:.2} % (one seed)", 100.0 * mean),
        };
        writeln!(
            s,
            "| {ds} | {m} | {} | {} / {} | {} × {} | {} | {} | {acc} |",
            t.get(first, "band")?,
            t.get(first, "train_examples")?,
            t.get(first, "test_examples")?,
            t.get(first, "epochs")?,
            t.get(first, "steps_per_epoch")?,
            t.opt_num(first, "noise_multiplier")?
                .map(sig)
                .unwrap_or("—".into()),
            accs.len()
        )?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(d: &DataScale, method: Option<Method>) {
        let c = config(d, method, 7, Path::new("/nonexistent")).unwrap();
        let shape = c.shape();
        assert_eq!(shape.epochs, d.epochs);
        if let Some(n) = d.train {
            assert_eq!(shape.num_train, n);
            assert_eq!(shape.steps_per_epoch, n / d.batch);
        }
        assert_eq!(c.privacy.method, method.unwrap_or(Method::Identity));
        assert_eq!(c.seed, Some(7));
    }

    #[test]
    fn every_config_of_both_modes_validates() {
        for d in QUICK.iter() {
            for m in METHODS {
                check(d, m);
            }
        }
        assert!(estimate(&QUICK) > 0.0);
    }

    #[test]
    fn missing_data_is_skipped_with_the_fetch_command() {
        let dir = tempfile::tempdir().unwrap();
        let meta = crate::run::Meta::probe("t".into(), "quick", &["accuracy".into()], 1);
        let rd = RunDir::create(dir.path(), &meta).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let out = run(&rd, &QUICK, 1, &dir.path().join("no-data"), &stop).unwrap();
        assert!(out.is_none());
        let why = std::fs::read_to_string(rd.file("accuracy.skipped")).unwrap();
        assert!(why.contains("cargo xtask data"), "{why}");
        let md = crate::report::markdown(&rd, &meta, &|f| f.to_string()).unwrap();
        assert!(md.contains("Skipped"), "{md}");
    }
}
