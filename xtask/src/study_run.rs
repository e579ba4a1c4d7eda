//! Running the full accuracy study: one result file per training run
//! (`accuracy/<name>.result.json`, written atomically once the run is over), so a rerun skips
//! what is finished and the trainer resumes an interrupted run from its checkpoint; one
//! progress line per finished run on stdout (readable under `nohup` and in CI logs); limits on
//! how much one session runs (`--max-runs`, `--budget-hours`, `--only`). The run folder is
//! git-ignored and dies with its machine, so the results also live in a tracked [`Ledger`]
//! (`docs/results/accuracy_full/`) that a later session, on another machine, resumes from.

use crate::hms;
use crate::run::{RunDir, write_atomic};
use crate::study::{self, Data, Job, Kind, Settings};
use crate::table::Table;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use lrmf_train::metrics::METRICS_FILE;
use lrmf_train::{Progress, StepMetrics, Summary, TrainConfig, TrainError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What one finished training run left: the numbers of the CSV files, and the hash of the
/// config it ran, so a changed plan reruns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The run's name ([`Job::name`]).
    pub name: String,
    /// Data set.
    pub dataset: String,
    /// Method (`non-private` for the baseline).
    pub method: String,
    /// Schedule.
    pub schedule: String,
    /// Accountant (`none` non-private).
    pub accountant: String,
    /// Seed.
    pub seed: u64,
    /// A grid run (true) or a final run.
    pub grid: bool,
    /// Initial learning rate η.
    pub lr: f64,
    /// Epochs.
    pub epochs: usize,
    /// `ok`, or why there is no accuracy (`diverged: …`).
    pub status: String,
    /// Final test accuracy (fraction).
    pub test_accuracy: Option<f64>,
    /// Final validation accuracy (grid runs; fraction; outside DP).
    pub validation_accuracy: Option<f64>,
    /// Training examples N (after the validation split).
    pub num_train: usize,
    /// Test examples.
    pub num_test: usize,
    /// Validation examples (grid runs).
    pub num_validation: Option<usize>,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Band p (banded methods).
    pub band: Option<usize>,
    /// Noise multiplier z.
    pub noise_multiplier: Option<f64>,
    /// ε reached.
    pub epsilon: Option<f64>,
    /// sens(C).
    pub sensitivity: Option<f64>,
    /// Training wall time (all sessions), seconds.
    pub wall_s: f64,
    /// Hash of the run's config.
    pub config_hash: String,
    /// Test accuracy after each epoch: (epoch, accuracy).
    pub curve: Vec<(usize, f64)>,
}

impl RunResult {
    /// A result without numbers yet (status `status`).
    pub fn new(job: &Job, s: &Settings, lr: f64, cfg: &TrainConfig, status: String) -> Self {
        let sh = cfg.shape();
        RunResult {
            name: job.name(),
            dataset: job.data.name().into(),
            method: study::method_name(job.method).into(),
            schedule: job.schedule.0.into(),
            accountant: study::accountant_name(job.accountant()).into(),
            seed: job.seed(s),
            grid: job.is_grid(),
            lr,
            epochs: sh.epochs,
            status,
            test_accuracy: None,
            validation_accuracy: None,
            num_train: sh.num_train,
            num_test: sh.num_test,
            num_validation: cfg.data.validation,
            steps_per_epoch: sh.steps_per_epoch,
            band: cfg.privacy.band,
            noise_multiplier: None,
            epsilon: None,
            sensitivity: None,
            wall_s: 0.0,
            config_hash: cfg.hash(),
            curve: Vec::new(),
        }
    }

    /// The result of a completed run, with the per-epoch test accuracies of its metrics.
    fn from_summary(
        job: &Job,
        s: &Settings,
        lr: f64,
        cfg: &TrainConfig,
        sm: &Summary,
        dir: &Path,
    ) -> Self {
        RunResult {
            test_accuracy: sm.test_accuracy,
            validation_accuracy: sm.validation_accuracy,
            noise_multiplier: sm.noise_multiplier,
            epsilon: sm.epsilon,
            sensitivity: sm.sensitivity,
            band: sm.band,
            wall_s: sm.wall_time_s,
            curve: curve(dir),
            ..RunResult::new(job, s, lr, cfg, "ok".into())
        }
    }
}

/// (epoch, test accuracy) of every evaluated epoch in a run folder's `metrics.jsonl`.
fn curve(dir: &Path) -> Vec<(usize, f64)> {
    let text = std::fs::read_to_string(dir.join(METRICS_FILE)).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<StepMetrics>(l).ok())
        .filter_map(|m| Some((m.epoch, m.test_accuracy?)))
        .collect()
}

/// Folder of a run's training files.
fn run_dir(rd: &RunDir, job: &Job) -> PathBuf {
    rd.file("accuracy").join(job.name())
}

/// Path of a run's result file.
fn result_path(rd: &RunDir, job: &Job) -> PathBuf {
    rd.file("accuracy")
        .join(format!("{}.result.json", job.name()))
}

/// The committed copy of a study's results: `<name>.result.json` of every finished run and the
/// study's settings, in a tracked folder (`docs/results/accuracy_full/`), so a study outlives
/// the machine it ran on. `read`: a run without a result in the run folder takes the ledger's
/// when it was made with the same config (`--reuse-committed`); `write`: each run that
/// finishes is also written there (`--update-docs`).
#[derive(Debug, Clone)]
pub struct Ledger {
    /// The folder.
    pub dir: PathBuf,
    /// Take results from it.
    pub read: bool,
    /// Write results into it.
    pub write: bool,
}

impl Ledger {
    /// The tracked folder of the study's results.
    pub const DOCS_DIR: &str = "docs/results/accuracy_full";

    /// Path of a run's result in the ledger.
    fn path(&self, job: &Job) -> PathBuf {
        self.dir.join(format!("{}.result.json", job.name()))
    }

    /// The study's settings kept in the ledger, when it is read and holds them.
    pub fn settings(&self) -> Result<Option<Settings>> {
        let p = self.dir.join(crate::study_report::SETTINGS_FILE);
        if !self.read || !p.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p)?;
        Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("invalid {}", p.display()))?,
        ))
    }

    /// Writes the study's settings (when the ledger is written).
    pub fn write_settings(&self, s: &Settings) -> Result<()> {
        if self.write {
            std::fs::create_dir_all(&self.dir)
                .with_context(|| format!("cannot create {}", self.dir.display()))?;
            write_atomic(
                &self.dir.join(crate::study_report::SETTINGS_FILE),
                serde_json::to_string_pretty(s)?.as_bytes(),
            )?;
        }
        Ok(())
    }

    /// Writes the results of `st` the ledger lacks (made in a session that did not write it),
    /// when the ledger is written; returns how many.
    pub fn sync(&self, jobs: &[Job], st: &State) -> Result<usize> {
        let mut added = 0;
        for job in jobs {
            if let Some(r) = st.results.get(&job.name())
                && self.write
                && !self.path(job).is_file()
            {
                self.record(job, r)?;
                added += 1;
            }
        }
        Ok(added)
    }

    /// Writes a finished run's result (when the ledger is written).
    pub fn record(&self, job: &Job, r: &RunResult) -> Result<()> {
        if self.write {
            std::fs::create_dir_all(&self.dir)
                .with_context(|| format!("cannot create {}", self.dir.display()))?;
            write_atomic(&self.path(job), serde_json::to_string_pretty(r)?.as_bytes())?;
        }
        Ok(())
    }
}

/// The result of `job` made with the config of hash `hash`: the run folder's, else the
/// ledger's (when it is read; copied into the run folder, which then holds the whole study).
fn find(rd: &RunDir, ledger: Option<&Ledger>, job: &Job, hash: &str) -> Result<Option<RunResult>> {
    let read = |p: PathBuf| -> Result<Option<RunResult>> {
        let Ok(text) = std::fs::read_to_string(&p) else {
            return Ok(None);
        };
        let r: RunResult =
            serde_json::from_str(&text).with_context(|| format!("invalid {}", p.display()))?;
        Ok((r.config_hash == hash).then_some(r))
    };
    if let Some(r) = read(result_path(rd, job))? {
        return Ok(Some(r));
    }
    let Some(l) = ledger.filter(|l| l.read) else {
        return Ok(None);
    };
    let r = read(l.path(job))?;
    if let Some(r) = &r {
        write_atomic(
            &result_path(rd, job),
            serde_json::to_string_pretty(r)?.as_bytes(),
        )?;
    }
    Ok(r)
}

/// The learning rate of a run: its own (grid), the one its grid chose (final), or not yet.
#[derive(Debug, Clone, PartialEq)]
pub enum Lr {
    /// The rate to use.
    Use(f64),
    /// The grid has runs without a result yet.
    GridPending,
}

/// The results of a study that belong to its current plan (config hash equal), by run name.
#[derive(Debug, Default)]
pub struct State {
    /// Results by [`Job::name`].
    pub results: HashMap<String, RunResult>,
}

impl State {
    /// Reads the result files of `jobs` (in plan order, so each grid is read before the runs
    /// that take its rate) and keeps those made with the config the plan gives now ([`find`]).
    pub fn load(
        rd: &RunDir,
        ledger: Option<&Ledger>,
        s: &Settings,
        jobs: &[Job],
        data_dir: &Path,
    ) -> Result<Self> {
        let mut st = State::default();
        for job in jobs {
            let Lr::Use(lr) = st.lr(job, s) else { continue };
            let hash = study::config(job, lr, s, data_dir)?.hash();
            if let Some(r) = find(rd, ledger, job, &hash)? {
                st.results.insert(r.name.clone(), r);
            }
        }
        Ok(st)
    }

    /// Whether `job` has its result.
    pub fn is_done(&self, job: &Job) -> bool {
        self.results.contains_key(&job.name())
    }

    /// The grid results (lr, validation accuracy) of the grid `job` takes its rate from;
    /// `None` while some are missing.
    pub fn grid(&self, job: &Job, s: &Settings) -> Option<Vec<(f64, Option<f64>)>> {
        let cell = job.cell(s);
        study::plan_grid(s, job)
            .iter()
            .map(|g| {
                debug_assert_eq!(g.cell(s), cell);
                let r = self.results.get(&g.name())?;
                Some((r.lr, r.validation_accuracy))
            })
            .collect()
    }

    /// The learning rate of `job`.
    pub fn lr(&self, job: &Job, s: &Settings) -> Lr {
        match job.kind {
            Kind::Grid { lr } => Lr::Use(lr),
            Kind::Final { .. } => match self.grid(job, s).and_then(|g| study::choose(&g)) {
                None => Lr::GridPending,
                Some(lr) => Lr::Use(lr),
            },
        }
    }
}

/// Limits of one session of the study.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Only these data sets (all when empty).
    pub only: Vec<Data>,
    /// Start at most this many training runs.
    pub max_runs: Option<usize>,
    /// Start no run expected to end after this many seconds of the session.
    pub budget_s: Option<f64>,
}

/// A per-run progress bar on a terminal (hidden elsewhere: the progress lines say it all).
struct RunBar(ProgressBar);

impl Progress for RunBar {
    fn step(&mut self, _m: &StepMetrics) {
        self.0.inc(1);
    }
}

/// How a training run ended.
enum Outcome {
    /// Finished (completed or diverged): its result.
    Finished(Box<RunResult>),
    /// Stopped by Ctrl-C; resumable.
    Interrupted,
    /// Failed otherwise (retried next session).
    Failed(String),
}

/// Trains one run into its folder: resumes its checkpoint when it has one of the same config,
/// starts over otherwise (a run of an older plan). Also returns the fraction of the run's steps
/// left at its start (below 1 for a resumed run: the ETA must not take its short wall time for
/// the trainer's speed).
fn train_one(
    rd: &RunDir,
    job: &Job,
    s: &Settings,
    lr: f64,
    cfg: &TrainConfig,
    stop: &Arc<AtomicBool>,
) -> Result<(Outcome, f64)> {
    let dir = run_dir(rd, job);
    let ck = lrmf_train::checkpoint::Checkpoint::load(&dir)
        .ok()
        .flatten()
        .filter(|c| c.header.config_hash == cfg.hash());
    let resume = ck.is_some();
    if !resume && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let total = cfg.shape().total_steps;
    let left = ck.map_or(1.0, |c| left_fraction(c.header.step, total));
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ETA {eta}",
        )
        .expect("valid template"),
    );
    bar.set_prefix(job.name());
    let mut progress = RunBar(bar.clone());
    let out = lrmf_train::train(cfg, &dir, resume, stop.clone(), &mut progress);
    bar.finish_and_clear();
    let outcome = match out {
        Ok(sm) if !sm.completed => Outcome::Interrupted,
        Ok(sm) => Outcome::Finished(Box::new(RunResult::from_summary(
            job, s, lr, cfg, &sm, &dir,
        ))),
        Err(TrainError::Diverged(m)) => {
            let why = format!("diverged: {}", m.replace([',', '"', '\n', '\r'], ";"));
            Outcome::Finished(Box::new(RunResult::new(job, s, lr, cfg, why)))
        }
        Err(e) => Outcome::Failed(e.to_string()),
    };
    Ok((outcome, left))
}

/// The fraction of a run's `total` steps still to train after `step` (in [0, 1]).
fn left_fraction(step: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        total.saturating_sub(step) as f64 / total as f64
    }
}

/// The progress line of a finished run.
fn line(
    k: usize,
    n: usize,
    job: &Job,
    r: &RunResult,
    run_s: f64,
    elapsed: f64,
    eta: f64,
) -> String {
    let pct = |x: Option<f64>| x.map_or("—".to_string(), |a| format!("{:.2}%", 100.0 * a));
    let acc = if job.is_grid() {
        format!("grid lr={} val_acc={}", r.lr, pct(r.validation_accuracy))
    } else {
        format!("lr={} acc={}", r.lr, pct(r.test_accuracy))
    };
    let status = if r.status == "ok" {
        String::new()
    } else {
        format!(" [{}]", r.status)
    };
    format!(
        "[{k}/{n}] {} seed={} {acc}{status} run {} elapsed {} ETA {}",
        job.label(),
        r.seed,
        hms(run_s),
        hms(elapsed),
        hms(eta)
    )
}

/// Whether the data of `jobs` is prepared; else writes `accuracy.skipped` and says why.
fn data_ready(rd: &RunDir, jobs: &[Job], data_dir: &Path) -> Result<bool> {
    let dd = lrmf_data::DataDir::new(data_dir);
    let mut missing = Vec::new();
    for d in [Data::Imdb, Data::Cifar10] {
        if jobs.iter().any(|j| j.data == d) {
            let r = match d {
                Data::Imdb => dd.imdb().map(|_| ()),
                Data::Cifar10 => dd.cifar10().map(|_| ()),
            };
            if let Err(e) = r {
                missing.push(e.to_string());
            }
        }
    }
    if missing.is_empty() {
        let _ = std::fs::remove_file(rd.file("accuracy.skipped"));
        return Ok(true);
    }
    let msg = format!(
        "the data is missing — run `cargo xtask data` (or `cargo xtask data --data-dir {}`) and then the same command again. {}",
        data_dir.display(),
        missing.join(" ")
    );
    write_atomic(&rd.file("accuracy.skipped"), msg.as_bytes())?;
    eprintln!("accuracy: skipped: {msg}");
    Ok(false)
}

/// Expected seconds of the runs of `jobs` without a result.
pub fn remaining(jobs: &[Job], st: &State, s: &Settings) -> f64 {
    jobs.iter()
        .filter(|j| !st.is_done(j))
        .map(|j| j.estimate(s))
        .sum()
}

/// Why the session stops before `job`, if it does.
fn limit_reached(l: &Limits, started: usize, elapsed: f64, next_s: f64) -> Option<String> {
    if l.max_runs.is_some_and(|m| started >= m) {
        return Some(format!("--max-runs {} reached", started));
    }
    match l.budget_s {
        Some(b) if elapsed + next_s > b => Some(format!(
            "--budget-hours {}: the next run is expected to take {} and {} of it are used",
            b / 3600.0,
            hms(next_s),
            hms(elapsed)
        )),
        _ => None,
    }
}

/// What one session of the study has done so far (for the progress lines and the ETA).
struct Session {
    clock: Instant,
    planned: usize,
    done: usize,
    started: usize,
    failed: usize,
    /// Estimated and measured seconds of the runs finished this session.
    est_sum: f64,
    real_sum: f64,
}

impl Session {
    /// Measured over estimated time of this session's runs (1 before the first).
    fn speed(&self) -> f64 {
        if self.est_sum > 0.0 {
            self.real_sum / self.est_sum
        } else {
            1.0
        }
    }
}

/// What every run of one session shares.
struct Study<'a> {
    rd: &'a RunDir,
    ledger: Option<&'a Ledger>,
    s: &'a Settings,
    /// The runs this session may start, in plan order.
    jobs: &'a [Job],
    data_dir: &'a Path,
    stop: &'a Arc<AtomicBool>,
}

/// Trains `job` and records its outcome (in the run folder and the ledger); `Ok(false)` when
/// the session must stop (Ctrl-C).
fn step(x: &Study, job: &Job, st: &mut State, ses: &mut Session) -> Result<bool> {
    let (done, n, s) = (ses.done, ses.planned, x.s);
    let lr = match st.lr(job, s) {
        Lr::Use(lr) => lr,
        other => {
            println!(
                "[{done}/{n}] {} seed={}: not run ({other:?})",
                job.label(),
                job.seed(s)
            );
            return Ok(true);
        }
    };
    let cfg = study::config(job, lr, s, x.data_dir)?;
    // A final run whose rate its grid chose this session may have a committed result.
    if let Some(r) = find(x.rd, x.ledger, job, &cfg.hash())? {
        ses.done += 1;
        println!(
            "[{}/{n}] {} seed={}: committed result taken (lr={})",
            ses.done,
            job.label(),
            r.seed,
            r.lr
        );
        st.results.insert(r.name.clone(), r);
        return Ok(true);
    }
    ses.started += 1;
    let t = Instant::now();
    let (outcome, left) = train_one(x.rd, job, s, lr, &cfg, x.stop)?;
    match outcome {
        Outcome::Interrupted => {
            println!(
                "accuracy study: interrupted during {}; run the same command to resume",
                job.name()
            );
            return Ok(false);
        }
        Outcome::Failed(why) => {
            ses.failed += 1;
            println!(
                "[{done}/{n}] {} seed={}: FAILED (retried next time): {why}",
                job.label(),
                job.seed(s)
            );
        }
        Outcome::Finished(r) => {
            write_atomic(
                &result_path(x.rd, job),
                serde_json::to_string_pretty(&r)?.as_bytes(),
            )?;
            if let Some(l) = x.ledger {
                l.record(job, &r)?;
            }
            let run_s = t.elapsed().as_secs_f64();
            ses.est_sum += job.estimate(s) * left;
            ses.real_sum += run_s;
            ses.done += 1;
            st.results.insert(r.name.clone(), (*r).clone());
            let eta = remaining(x.jobs, st, s) * ses.speed();
            let elapsed = ses.clock.elapsed().as_secs_f64();
            println!("{}", line(ses.done, n, job, &r, run_s, elapsed, eta));
        }
    }
    Ok(true)
}

/// Runs (or resumes) the study into `rd/accuracy/`; writes its CSV files and plots; returns
/// the per-run table once every run of the whole plan has its result, else `Ok(None)`.
pub fn run(
    rd: &RunDir,
    ledger: Option<&Ledger>,
    s: &Settings,
    l: &Limits,
    data_dir: &Path,
    stop: &Arc<AtomicBool>,
) -> Result<Option<Table>> {
    let all = study::plan(s, &[]);
    let jobs = study::plan(s, &l.only);
    if !data_ready(rd, &jobs, data_dir)? {
        return Ok(None);
    }
    let mut st = State::load(rd, ledger, s, &all, data_dir)?;
    if let Some(l) = ledger {
        l.write_settings(s)?;
        let added = l.sync(&all, &st)?;
        if added > 0 {
            println!(
                "accuracy study: {added} results of the run folder written to {}",
                l.dir.display()
            );
        }
    }
    let x = Study {
        rd,
        ledger,
        s,
        jobs: &jobs,
        data_dir,
        stop,
    };
    let mut ses = Session {
        clock: Instant::now(),
        planned: jobs.len(),
        done: jobs.iter().filter(|j| st.is_done(j)).count(),
        started: 0,
        failed: 0,
        est_sum: 0.0,
        real_sum: 0.0,
    };
    println!(
        "accuracy study: {} runs planned here, {} finished before; the rest is expected to take {} (at today's trainer speed; the ETA below follows the measured speed)",
        ses.planned,
        ses.done,
        hms(remaining(&jobs, &st, s))
    );
    for job in jobs.iter().filter(|j| !st.is_done(j)).collect::<Vec<_>>() {
        let elapsed = ses.clock.elapsed().as_secs_f64();
        if let Some(why) = limit_reached(l, ses.started, elapsed, job.estimate(s) * ses.speed()) {
            println!("accuracy study: stopping ({why}); run the same command to continue");
            break;
        }
        if stop.load(Ordering::SeqCst) || !step(&x, job, &mut st, &mut ses)? {
            break;
        }
    }
    println!(
        "accuracy study: {} runs started this session ({} failed), {} of {} finished",
        ses.started, ses.failed, ses.done, ses.planned
    );
    let table = crate::study_report::write_outputs(rd, s, &all, &st)?;
    let errors = crate::study_errors::table(s)?;
    write_atomic(
        &rd.file(crate::study_errors::ERRORS_CSV),
        errors.to_csv().as_bytes(),
    )?;
    Ok(all.iter().all(|j| st.is_done(j)).then_some(table))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Meta;

    /// Writes the result of `job` as its run would, with validation/test accuracy `acc`.
    fn check(rd: &RunDir, s: &Settings, job: &Job, lr: f64, acc: f64) -> RunResult {
        let cfg = study::config(job, lr, s, Path::new("/data")).unwrap();
        let mut r = RunResult::new(job, s, lr, &cfg, "ok".into());
        if job.is_grid() {
            r.validation_accuracy = Some(acc);
        } else {
            r.test_accuracy = Some(acc);
            r.curve = vec![(1, acc - 0.1), (2, acc)];
        }
        write_atomic(
            &result_path(rd, job),
            serde_json::to_string(&r).unwrap().as_bytes(),
        )
        .unwrap();
        r
    }

    #[test]
    fn a_resumed_run_counts_only_its_left_part_for_the_eta() {
        // A run resumed at step 735 of 980 trains a quarter of its estimate: 200 s of a 800 s
        // estimate is the trainer's expected speed (1), not a 4× faster one.
        let left = left_fraction(735, 980);
        assert_eq!(left, 0.25);
        let ses = Session {
            clock: Instant::now(),
            planned: 1,
            done: 1,
            started: 1,
            failed: 0,
            est_sum: 800.0 * left,
            real_sum: 200.0,
        };
        assert_eq!(ses.speed(), 1.0);
        assert_eq!(
            (
                left_fraction(0, 980),
                left_fraction(980, 980),
                left_fraction(999, 980)
            ),
            (1.0, 0.0, 0.0)
        );
        assert_eq!(left_fraction(0, 0), 0.0);
    }

    #[test]
    fn finished_runs_are_skipped_and_a_changed_plan_reruns_them() {
        let dir = tempfile::tempdir().unwrap();
        let rd = RunDir::create(
            dir.path(),
            &Meta::probe("t".into(), "full", &["accuracy".into()], 0),
        )
        .unwrap();
        let mut s = Settings::defaults(0);
        s.grid_factors = vec![0.5, 1.0, 2.0];
        let jobs = study::plan(&s, &[Data::Imdb]);
        let load = |s: &Settings| State::load(&rd, None, s, &jobs, Path::new("/data")).unwrap();
        let first = jobs.iter().find(|j| !j.is_grid()).unwrap();
        assert_eq!(first.name(), "imdb-non-private-exponential-none-seed0");
        assert_eq!(load(&s).lr(first, &s), Lr::GridPending);
        let before = remaining(&jobs, &load(&s), &s);
        // The grid of the first final run: 2.5, 5 and 10 (non-private centre 5); 5 wins.
        let grid = study::plan_grid(&s, first);
        for (g, acc) in grid.iter().zip([0.70, 0.80, 0.75]) {
            let Kind::Grid { lr } = g.kind else { panic!() };
            check(&rd, &s, g, lr, acc);
        }
        let st = load(&s);
        assert!(grid.iter().all(|g| st.is_done(g)) && !st.is_done(first));
        assert_eq!(st.lr(first, &s), Lr::Use(5.0));
        assert!(remaining(&jobs, &st, &s) < before);
        check(&rd, &s, first, 5.0, 0.85);
        assert!(load(&s).is_done(first));
        // A result made with another learning rate (another config) does not count.
        let second = jobs.iter().filter(|j| !j.is_grid()).nth(1).unwrap();
        check(&rd, &s, second, 123.0, 0.5);
        assert!(!load(&s).is_done(second));
        // More epochs for the final runs: the final result is stale, the grid still holds.
        s.of_mut(Data::Imdb).epochs = 7;
        let st = load(&s);
        assert!(grid.iter().all(|g| st.is_done(g)) && !st.is_done(first));
    }

    #[test]
    fn a_new_run_folder_on_another_machine_resumes_from_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::probe("t".into(), "full", &["accuracy".into()], 0);
        let old = RunDir::create(&dir.path().join("old"), &meta).unwrap();
        let new = RunDir::create(&dir.path().join("new"), &meta).unwrap();
        let mut s = Settings::defaults(0);
        s.grid_factors = vec![0.5, 1.0, 2.0];
        let jobs = study::plan(&s, &[Data::Imdb]);
        let ledger = |read, write| Ledger {
            dir: dir.path().join("ledger"),
            read,
            write,
        };
        // The old machine finishes the first grid and records it; a ledger not written
        // stays empty.
        let first = jobs.iter().find(|j| !j.is_grid()).unwrap();
        for (g, acc) in study::plan_grid(&s, first).iter().zip([0.70, 0.80, 0.75]) {
            let Kind::Grid { lr } = g.kind else { panic!() };
            let r = check(&old, &s, g, lr, acc);
            ledger(false, false).record(g, &r).unwrap();
            assert!(!ledger(true, false).path(g).exists());
            ledger(false, true).record(g, &r).unwrap();
        }
        ledger(false, true).write_settings(&s).unwrap();
        assert_eq!(ledger(true, false).settings().unwrap(), Some(s.clone()));
        assert_eq!(ledger(false, false).settings().unwrap(), None);
        // The new machine keeps its data elsewhere: the same configs, the same hashes.
        let load = |l: Ledger| State::load(&new, Some(&l), &s, &jobs, Path::new("/elsewhere"));
        assert!(!load(ledger(false, true)).unwrap().is_done(&jobs[0]));
        let st = load(ledger(true, false)).unwrap();
        assert_eq!(st.lr(first, &s), Lr::Use(5.0));
        // Adopted results are copied into the new run folder, which then stands alone.
        let alone = State::load(&new, None, &s, &jobs, Path::new("/elsewhere")).unwrap();
        assert_eq!(alone.results, st.results);
        // Results of a session that did not write the ledger join it at the next that does.
        let late = jobs.iter().find(|j| j.is_grid() && !st.is_done(j)).unwrap();
        let Kind::Grid { lr } = late.kind else {
            panic!()
        };
        check(&new, &s, late, lr, 0.5);
        let st = load(ledger(false, false)).unwrap();
        assert_eq!(ledger(false, false).sync(&jobs, &st).unwrap(), 0);
        assert_eq!(ledger(false, true).sync(&jobs, &st).unwrap(), 1);
        assert_eq!(ledger(false, true).sync(&jobs, &st).unwrap(), 0);
        assert!(ledger(true, false).path(late).is_file());
        // A committed result of another plan is not taken.
        s.of_mut(Data::Imdb).grid_epochs = 3;
        let fresh = RunDir::create(&dir.path().join("fresh"), &meta).unwrap();
        let st = State::load(
            &fresh,
            Some(&ledger(true, false)),
            &s,
            &jobs,
            Path::new("/d"),
        );
        assert!(st.unwrap().results.is_empty());
    }

    #[test]
    fn limits_and_progress_lines() {
        let l = Limits {
            max_runs: Some(2),
            budget_s: Some(3600.0),
            ..Limits::default()
        };
        assert_eq!(limit_reached(&l, 1, 100.0, 60.0), None);
        assert!(
            limit_reached(&l, 2, 100.0, 60.0)
                .unwrap()
                .contains("--max-runs")
        );
        assert!(
            limit_reached(&l, 0, 3000.0, 601.0)
                .unwrap()
                .contains("--budget-hours")
        );
        let s = Settings::defaults(0);
        let job = study::plan(&s, &[])
            .into_iter()
            .find(|j| j.name() == "imdb-lr-bisr-cosine-gaussian-seed1")
            .unwrap();
        let cfg = study::config(&job, 20.0, &s, Path::new("/data")).unwrap();
        let mut r = RunResult::new(&job, &s, 20.0, &cfg, "ok".into());
        r.test_accuracy = Some(0.83125);
        assert_eq!(
            line(7, 250, &job, &r, 61.0, 3723.0, 7200.0),
            "[7/250] imdb lr-bisr cosine gaussian seed=1 lr=20 acc=83.12% run 0h 01m 01s elapsed 1h 02m 03s ETA 2h 00m 00s"
        );
    }
}
