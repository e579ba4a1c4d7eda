//! `cargo xtask`: data set-up (`cargo xtask data`) and the paper's reproduction suite
//! (`cargo xtask repro`), writing CSV files, plots and a generated report under
//! `results/<timestamp>/`.

mod accuracy;
mod bench_train;
mod curves;
mod errors;
mod eval;
mod memory;
mod plot;
mod report;
mod run;
mod stats;
mod study;
mod study_docs;
mod study_errors;
mod study_report;
mod study_run;
mod table;
mod tidy;
mod train_config;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use errors::Scale;
use run::{Meta, RunDir};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Data set-up and the reproduction suite of lrmf"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Verify (sha256) and unpack the shared archives into the git-ignored data folder
    /// (CIFAR-10 JPEG → binary layout, IMDB reviews). Idempotent: a prepared folder returns at once.
    Data {
        /// Data root to prepare (default: $LRMF_DATA_DIR, else data/ of the repository).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Folder holding cifar10_jpg_q75.tar.gz and aclImdb_labeled.tar.gz (default ../shared/data).
        #[arg(long)]
        shared_dir: Option<PathBuf>,
    },
    /// Run the reproduction suite: error study (experiments 1–3) and accuracy (experiment 4).
    Repro(ReproArgs),
    /// Time lrmf's training steps (CNN ± group norm, text model; non-private and private) and,
    /// with --python, PyTorch and Opacus beside them; prints one table of times and ratios.
    /// Threads: $RAYON_NUM_THREADS, else every core.
    BenchTrain(bench_train::Args),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// Everything (experiments 1–4).
    All,
    /// The error study only (experiments 1–3), minutes.
    Errors,
    /// Experiment 1: single-epoch error vs n.
    SingleEpoch,
    /// Experiment 2: multi-epoch error vs band.
    Bands,
    /// Experiment 3: memory vs error.
    Memory,
    /// Experiment 4: training accuracy (needs `cargo xtask data`).
    Accuracy,
}

impl Part {
    fn experiments(self) -> Vec<String> {
        let v: &[&str] = match self {
            Part::All => &["single_epoch", "bands", "memory", "accuracy"],
            Part::Errors => &["single_epoch", "bands", "memory"],
            Part::SingleEpoch => &["single_epoch"],
            Part::Bands => &["bands"],
            Part::Memory => &["memory"],
            Part::Accuracy => &["accuracy"],
        };
        v.iter().map(|s| s.to_string()).collect()
    }
}

#[derive(clap::Args)]
struct ReproArgs {
    /// Which experiments to run.
    #[arg(value_enum, default_value = "all")]
    part: Part,
    /// Paper scale (hours); prints its expected run time first.
    #[arg(long)]
    full: bool,
    /// Resume this run folder (default: the latest unfinished run with the same mode and part).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start a new run folder even if an unfinished one exists.
    #[arg(long, conflicts_with = "resume")]
    fresh: bool,
    /// Folder holding the run folders.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the training runs (fixed: reproducible, NOT a private release).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Data root of the accuracy experiment (default: $LRMF_DATA_DIR, else data/).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also write the tracked docs/RESULTS.md and docs/results/ (quick mode: the whole report;
    /// full mode: its accuracy-study section and CSVs). Without it only the git-ignored run
    /// folder under results/ is written.
    #[arg(long)]
    update_docs: bool,
    /// Full accuracy study: take the finished runs committed in docs/results/accuracy_full/
    /// (those of the same config) instead of training them again, and the study's settings
    /// kept there when the run folder has none. With --update-docs each run that finishes is
    /// written there too, so committing that folder makes the study resumable on any machine.
    #[arg(long, requires = "full")]
    reuse_committed: bool,
    /// Full accuracy study: run only these data sets this time (imdb, cifar10).
    #[arg(long, value_enum, value_delimiter = ',', requires = "full")]
    only: Vec<study::Data>,
    /// Full accuracy study: start at most this many training runs, then stop (resumable).
    #[arg(long, requires = "full")]
    max_runs: Option<usize>,
    /// Full accuracy study: start no training run expected to end after this many hours.
    #[arg(long, requires = "full")]
    budget_hours: Option<f64>,
    /// Full accuracy study: epochs of the final runs per data set, e.g. `imdb=20,cifar10=10`
    /// (stored in the run folder; a changed value reruns the affected runs).
    #[arg(long, value_delimiter = ',', value_parser = per_data, requires = "full")]
    epochs: Vec<(study::Data, usize)>,
    /// Full accuracy study: epochs of the learning-rate grid runs per data set, e.g. `cifar10=3`.
    #[arg(long, value_delimiter = ',', value_parser = per_data, requires = "full")]
    grid_epochs: Vec<(study::Data, usize)>,
    /// Full accuracy study: seeds of the final runs per data set, e.g. `imdb=3,cifar10=2`.
    #[arg(long, value_delimiter = ',', value_parser = per_data, requires = "full")]
    seeds: Vec<(study::Data, usize)>,
}

/// Parses `DATASET=COUNT` (COUNT ≥ 1).
fn per_data(s: &str) -> std::result::Result<(study::Data, usize), String> {
    let (d, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected DATASET=COUNT (imdb=20), got {s:?}"))?;
    let d = <study::Data as ValueEnum>::from_str(d, true)
        .map_err(|_| format!("unknown data set {d:?}; allowed: imdb, cifar10"))?;
    match v.parse::<usize>() {
        Ok(n) if n >= 1 => Ok((d, n)),
        _ => Err(format!("COUNT must be an integer ≥ 1, got {v:?}")),
    }
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Data {
            data_dir,
            shared_dir,
        } => data(data_dir, shared_dir),
        Cmd::Repro(a) => repro(a),
        Cmd::BenchTrain(a) => bench_train::run(a),
    }
}

fn data_root(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| lrmf_data::DataDir::from_env().root().to_path_buf())
}

fn data(data_dir: Option<PathBuf>, shared_dir: Option<PathBuf>) -> Result<()> {
    use lrmf_data::setup::{CIFAR10_ARCHIVE_NAME, IMDB_ARCHIVE_NAME, default_shared_dir};
    let root = data_root(data_dir);
    let shared = shared_dir.unwrap_or_else(default_shared_dir);
    for name in [CIFAR10_ARCHIVE_NAME, IMDB_ARCHIVE_NAME] {
        if !shared.join(name).is_file() {
            bail!(
                "{} not found in {}; pass --shared-dir DIR (the folder holding {CIFAR10_ARCHIVE_NAME} and {IMDB_ARCHIVE_NAME}), or point training at your own copies with --data-dir",
                name,
                shared.display()
            );
        }
    }
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let t = Instant::now();
    let c = lrmf_data::setup_cifar10(
        &lrmf_data::Source::SharedArchive(shared.join(CIFAR10_ARCHIVE_NAME)),
        &root,
    )?;
    println!(
        "CIFAR-10 (JPEG q75 copy): {} train / {} test images in {} ({:.1} s)",
        c.n_train,
        c.n_test,
        c.dir.display(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let i = lrmf_data::setup_imdb(
        &lrmf_data::Source::SharedArchive(shared.join(IMDB_ARCHIVE_NAME)),
        &root,
    )?;
    println!(
        "IMDB: {} train / {} test reviews in {} ({:.1} s)",
        i.n_train,
        i.n_test,
        i.dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A newcomer's `cargo xtask repro` should not need a separate set-up step: when the prepared
/// data is missing but the shared archives are beside the repository, prepare it (seconds).
/// Failures are reported and left to the accuracy experiment, which skips with the fix.
fn prepare_data_if_missing(data_dir: &std::path::Path) {
    let dd = lrmf_data::DataDir::new(data_dir);
    if dd.cifar10().is_ok() && dd.imdb().is_ok() {
        return;
    }
    println!("accuracy: data not prepared yet; running `cargo xtask data` first");
    if let Err(e) = data(Some(data_dir.to_path_buf()), None) {
        eprintln!("accuracy: data set-up failed: {e:#}");
    }
}

fn hms(secs: f64) -> String {
    let s = secs.round() as u64;
    format!("{}h {:02}m {:02}s", s / 3600, (s / 60) % 60, s % 60)
}

/// The full study's settings: those stored in the run folder (a resumed study keeps its plan),
/// else the defaults; then the flags given now (stored again by the study).
fn study_settings(a: &ReproArgs, rd: Option<&RunDir>, seed: u64) -> Result<study::Settings> {
    let stored = rd.map(|r| r.file(study_report::SETTINGS_FILE));
    let mut s = match stored.filter(|p| p.is_file()) {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(&p)?)
            .with_context(|| format!("invalid {}", p.display()))?,
        None => match ledger(a).settings()? {
            Some(s) => s,
            None => study::Settings::defaults(seed),
        },
    };
    for &(d, n) in &a.epochs {
        s.of_mut(d).epochs = n;
    }
    for &(d, n) in &a.grid_epochs {
        s.of_mut(d).grid_epochs = n;
    }
    for &(d, n) in &a.seeds {
        s.of_mut(d).seeds = n;
    }
    Ok(s)
}

/// The tracked copy of the full study's results, read and written as the flags say.
fn ledger(a: &ReproArgs) -> study_run::Ledger {
    study_run::Ledger {
        dir: run::workspace_root().join(study_run::Ledger::DOCS_DIR),
        read: a.reuse_committed,
        write: a.update_docs,
    }
}

/// Prints the expected run time of the selected experiments.
fn print_estimate(a: &ReproArgs, parts: &[String], mode: &str) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let scale = if a.full { Scale::FULL } else { Scale::QUICK };
    let mut est = 0.0;
    for p in parts {
        est += match p.as_str() {
            "single_epoch" => errors::estimate(&errors::single_epoch_jobs(scale)) / cores,
            "bands" => errors::estimate(&errors::band_jobs(scale)) / cores,
            "memory" => errors::estimate(&memory::memory_jobs(scale)) / cores,
            _ if a.full => {
                let s = study_settings(a, None, a.seed)?;
                let jobs = study::plan(&s, &a.only);
                let secs: f64 = jobs.iter().map(|j| j.estimate(&s)).sum();
                let grid = jobs.iter().filter(|j| j.is_grid()).count();
                println!(
                    "full accuracy study: {} training runs ({grid} learning-rate grid + {} final), about {} at today's trainer speed (before skipping finished runs)",
                    jobs.len(),
                    jobs.len() - grid,
                    hms(secs)
                );
                for d in s
                    .data
                    .iter()
                    .filter(|d| a.only.is_empty() || a.only.contains(&d.data))
                {
                    println!(
                        "  {}: final runs {} epochs × {} seeds, grid {} epochs; {} s per epoch assumed",
                        d.data.name(),
                        d.epochs,
                        d.seeds,
                        d.grid_epochs,
                        d.seconds_per_epoch
                    );
                }
                secs
            }
            _ => accuracy::estimate(&accuracy::QUICK),
        };
    }
    println!(
        "{mode} mode, experiments {}: expected run time about {} on {} cores",
        parts.join(", "),
        hms(est),
        cores
    );
    Ok(())
}

/// The run folder to write: the one given, the latest unfinished one of this mode and parts,
/// or a new one.
fn open_run(a: &ReproArgs, mode: &str, parts: &[String]) -> Result<(RunDir, Meta)> {
    let root = a
        .out
        .clone()
        .unwrap_or_else(|| run::workspace_root().join("results"));
    let command = format!(
        "cargo xtask {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    let fresh = || -> Result<(RunDir, Meta)> {
        let m = Meta::probe(command.clone(), mode, parts, a.seed);
        Ok((RunDir::create(&root, &m)?, m))
    };
    let (rd, mut meta) = match (&a.resume, a.fresh) {
        (Some(p), _) => RunDir::open(p)?,
        (None, false) => match run::latest_unfinished(&root, mode, parts) {
            Some(p) => RunDir::open(&p)?,
            None => fresh()?,
        },
        (None, true) => fresh()?,
    };
    if meta.mode != mode {
        bail!(
            "{} is a {} run; resume it with{} --full",
            rd.path.display(),
            meta.mode,
            if meta.mode == "full" { "" } else { "out" }
        );
    }
    let resuming = parts.iter().any(|p| rd.is_done(p))
        || a.resume.is_some()
        || rd.file(study_report::SETTINGS_FILE).is_file();
    if resuming {
        meta.resumed
            .push(run::iso_utc(std::time::SystemTime::now()));
        rd.write_meta(&meta)?;
        println!("resuming {}", rd.path.display());
    } else {
        println!("writing {}", rd.path.display());
    }
    Ok((rd, meta))
}

fn repro(a: ReproArgs) -> Result<()> {
    plot::register_font()?;
    let started = Instant::now();
    let scale = if a.full { Scale::FULL } else { Scale::QUICK };
    let mode = if a.full { "full" } else { "quick" };
    let parts = a.part.experiments();
    print_estimate(&a, &parts, mode)?;
    let (rd, meta) = open_run(&a, mode, &parts)?;
    let stop = Arc::new(AtomicBool::new(false));
    lrmf_cli::interrupt::install(
        &stop,
        "stopping after the current step (Ctrl-C again to quit at once)…",
    )
    .context("cannot install the Ctrl-C handler")?;
    let data_dir = data_root(a.data_dir.clone());
    for p in &meta.parts.clone() {
        if rd.is_done(p) {
            println!("{p}: done, skipping");
            continue;
        }
        let t = Instant::now();
        let table = match p.as_str() {
            "single_epoch" => Some(eval::run_all(
                "1 n-sweep",
                &errors::single_epoch_jobs(scale),
                |_, _| vec![],
                &errors::header(),
                &stop,
            )?),
            "bands" => Some(eval::run_all(
                "2 bands",
                &errors::band_jobs(scale),
                |_, _| vec![],
                &errors::header(),
                &stop,
            )?),
            "memory" => Some(eval::run_all(
                "3 memory",
                &memory::memory_jobs(scale),
                memory::memory_extra,
                &memory::memory_header(),
                &stop,
            )?),
            "accuracy" => {
                prepare_data_if_missing(&data_dir);
                if a.full {
                    let settings = study_settings(&a, Some(&rd), meta.seed)?;
                    run::write_atomic(
                        &rd.file(study_report::SETTINGS_FILE),
                        serde_json::to_string_pretty(&settings)?.as_bytes(),
                    )?;
                    let limits = study_run::Limits {
                        only: a.only.clone(),
                        max_runs: a.max_runs,
                        budget_s: a.budget_hours.map(|h| h * 3600.0),
                    };
                    study_run::run(&rd, Some(&ledger(&a)), &settings, &limits, &data_dir, &stop)?
                } else {
                    accuracy::run(&rd, &accuracy::QUICK, meta.seed, &data_dir, &stop)?
                }
            }
            other => bail!("unknown experiment {other} in {}", rd.path.display()),
        };
        if let Some(table) = table {
            rd.finish(p, &table, t.elapsed().as_secs_f64())?;
            println!(
                "{p}: {} rows in {:.1} s",
                table.rows.len(),
                t.elapsed().as_secs_f64()
            );
        }
    }
    write_reports(&a, &rd, &meta)?;
    println!("wall time {}", hms(started.elapsed().as_secs_f64()));
    Ok(())
}

/// The run folder's plots and `REPORT.md`; with `--update-docs`, the tracked docs too.
fn write_reports(a: &ReproArgs, rd: &RunDir, meta: &Meta) -> Result<()> {
    let mut plots = Vec::new();
    if let Some(t) = rd.table("single_epoch")? {
        plots.extend(errors::plot_single_epoch(&t, &rd.path)?);
    }
    if let Some(t) = rd.table("bands")? {
        plots.extend(errors::plot_bands(&t, &rd.path)?);
    }
    if let Some(t) = rd.table("memory")? {
        plots.extend(memory::plot_memory(&t, &rd.path)?);
    }
    let study = a.full && meta.parts.iter().any(|p| p == "accuracy");
    let mut md = report::markdown(rd, meta, &|f| f.to_string())?;
    if study && !rd.is_done("accuracy") {
        md.push_str(&study_docs::markdown(rd, &|f| f.to_string())?);
    }
    run::write_atomic(&rd.file("REPORT.md"), md.as_bytes())?;
    println!("report: {}", rd.file("REPORT.md").display());
    let docs = run::workspace_root().join("docs");
    match (a.update_docs, a.full) {
        (true, false) => write_docs(rd, meta, &plots)?,
        (true, true) if study => study_docs::update_docs(rd, &docs)?,
        (true, true) => println!(
            "--update-docs: full mode updates only the accuracy study's section; the error study stays in {}",
            rd.path.display()
        ),
        (false, _) => println!(
            "tracked files left alone: everything is in {} (pass --update-docs to also write {})",
            rd.path.display(),
            docs.join("RESULTS.md").display()
        ),
    }
    Ok(())
}

/// `docs/RESULTS.md`: the report with plot links into `docs/results/`, where the SVG plots
/// are copied (vector, a third of the PNG size; the run folder itself is git-ignored).
fn write_docs(rd: &RunDir, meta: &Meta, plots: &[PathBuf]) -> Result<()> {
    let docs = run::workspace_root().join("docs");
    let dest = docs.join("results");
    std::fs::create_dir_all(&dest)?;
    // Plots of an earlier run go, so the folder holds exactly the plots the page links (the
    // full-mode study's files stay, with its section of the page).
    for e in std::fs::read_dir(&dest)? {
        let p = e?.path();
        let study = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("accuracy_full"));
        if !study && p.extension().is_some_and(|x| x == "svg" || x == "png") {
            std::fs::remove_file(&p)?;
        }
    }
    for p in plots
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
    {
        let name = p.file_name().context("plot file name")?;
        std::fs::copy(p, dest.join(name))
            .with_context(|| format!("cannot copy {} to {}", p.display(), dest.display()))?;
    }
    let md = report::markdown(rd, meta, &|f: &str| {
        format!("results/{}", f.replace(".png", ".svg"))
    })?;
    let head = "<!-- Generated by `cargo xtask repro` from a run's CSV files; do not edit by hand. -->\n\n";
    let page = docs.join("RESULTS.md");
    let old = std::fs::read_to_string(&page).unwrap_or_default();
    // The sections other commands own (the full accuracy study, the training-speed table)
    // are kept as they are.
    let mut text = format!("{head}{md}");
    let kept = [
        study_docs::extract(&old),
        study_docs::extract_marked(&old, bench_train::BEGIN, bench_train::END),
    ];
    for section in kept.into_iter().flatten() {
        text = format!("{}\n\n{section}\n", text.trim_end());
    }
    run::write_atomic(&page, text.as_bytes())?;
    println!("docs: {}", docs.join("RESULTS.md").display());
    Ok(())
}
