//! `cargo xtask`: data set-up (`cargo xtask data`) and the paper's reproduction suite
//! (`cargo xtask repro`), writing CSV files, plots and a generated report under
//! `results/<timestamp>/`.

mod accuracy;
mod errors;
mod eval;
mod memory;
mod plot;
mod report;
mod run;
mod table;
mod tidy;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use errors::Scale;
use run::{Meta, RunDir};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Do not update docs/RESULTS.md (quick mode updates it by default).
    #[arg(long)]
    no_docs: bool,
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

fn repro(a: ReproArgs) -> Result<()> {
    plot::register_font()?;
    let started = Instant::now();
    let scale = if a.full { Scale::FULL } else { Scale::QUICK };
    let acc_scale: &[accuracy::DataScale] = if a.full {
        &accuracy::FULL
    } else {
        &accuracy::QUICK
    };
    let mode = if a.full { "full" } else { "quick" };
    let parts = a.part.experiments();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let jobs_single = errors::single_epoch_jobs(scale);
    let jobs_bands = errors::band_jobs(scale);
    let jobs_memory = memory::memory_jobs(scale);
    let mut est = 0.0;
    for p in &parts {
        est += match p.as_str() {
            "single_epoch" => errors::estimate(&jobs_single) / cores,
            "bands" => errors::estimate(&jobs_bands) / cores,
            "memory" => errors::estimate(&jobs_memory) / cores,
            _ => accuracy::estimate(acc_scale),
        };
    }
    println!(
        "{mode} mode, experiments {}: expected run time about {} on {} cores",
        parts.join(", "),
        hms(est),
        cores
    );
    let root = a
        .out
        .clone()
        .unwrap_or_else(|| run::workspace_root().join("results"));
    let command = format!(
        "cargo xtask {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    let (rd, mut meta) = match (&a.resume, a.fresh) {
        (Some(p), _) => RunDir::open(p)?,
        (None, false) => match run::latest_unfinished(&root, mode, &parts) {
            Some(p) => RunDir::open(&p)?,
            None => {
                let m = Meta::probe(command.clone(), mode, &parts, a.seed);
                (RunDir::create(&root, &m)?, m)
            }
        },
        (None, true) => {
            let m = Meta::probe(command.clone(), mode, &parts, a.seed);
            (RunDir::create(&root, &m)?, m)
        }
    };
    if meta.mode != mode {
        bail!(
            "{} is a {} run; resume it with{} --full",
            rd.path.display(),
            meta.mode,
            if meta.mode == "full" { "" } else { "out" }
        );
    }
    let resuming = parts.iter().any(|p| rd.is_done(p)) || a.resume.is_some();
    if resuming {
        meta.resumed
            .push(run::iso_utc(std::time::SystemTime::now()));
        rd.write_meta(&meta)?;
        println!("resuming {}", rd.path.display());
    } else {
        println!("writing {}", rd.path.display());
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nstopping after the current step (Ctrl-C again to quit at once)…");
        })
        .context("cannot install the Ctrl-C handler")?;
    }
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
                &jobs_single,
                |_, _| vec![],
                &errors::header(),
                &stop,
            )?),
            "bands" => Some(eval::run_all(
                "2 bands",
                &jobs_bands,
                |_, _| vec![],
                &errors::header(),
                &stop,
            )?),
            "memory" => Some(eval::run_all(
                "3 memory",
                &jobs_memory,
                memory::memory_extra,
                &memory::memory_header(),
                &stop,
            )?),
            "accuracy" => {
                prepare_data_if_missing(&data_dir);
                accuracy::run(&rd, acc_scale, meta.seed, &data_dir, &stop)?
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
    let md = report::markdown(&rd, &meta, &|f| f.to_string())?;
    run::write_atomic(&rd.file("REPORT.md"), md.as_bytes())?;
    println!("report: {}", rd.file("REPORT.md").display());
    if !a.full && !a.no_docs {
        write_docs(&rd, &meta, &plots)?;
    }
    println!("wall time {}", hms(started.elapsed().as_secs_f64()));
    Ok(())
}

/// `docs/RESULTS.md`: the report with plot links into `docs/results/`, where the SVG plots
/// are copied (vector, a third of the PNG size; the run folder itself is git-ignored).
fn write_docs(rd: &RunDir, meta: &Meta, plots: &[PathBuf]) -> Result<()> {
    let docs = run::workspace_root().join("docs");
    let dest = docs.join("results");
    std::fs::create_dir_all(&dest)?;
    // Plots of an earlier run go, so the folder holds exactly the plots the page links.
    for e in std::fs::read_dir(&dest)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "svg" || x == "png") {
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
    run::write_atomic(&docs.join("RESULTS.md"), format!("{head}{md}").as_bytes())?;
    println!("docs: {}", docs.join("RESULTS.md").display());
    Ok(())
}
