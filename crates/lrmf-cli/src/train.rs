//! `lrmf train`: a private (or non-private baseline) training run from one TOML file, with a
//! progress bar, SIGINT-safe checkpoints and `--resume`.

use crate::usage;
use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use lrmf_train::{Progress, RunInfo, StepMetrics, Summary, TrainConfig, TrainError};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Flags of `lrmf train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The run's TOML configuration (see configs/).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder (default: the config's `output.dir`, else runs/<config name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Resume the run in this folder from its last checkpoint (its saved config is used unless --config is given).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// No progress bar (log lines per epoch only).
    #[arg(long)]
    pub quiet: bool,
}

/// A progress bar over the run's steps.
struct Bar {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress for Bar {
    fn start(&mut self, info: &RunInfo) {
        for w in &info.warnings {
            eprintln!("warning: {w}");
        }
        if let (Some(e), Some(z)) = (info.epsilon, info.noise_multiplier) {
            eprintln!("privacy: ε = {e}, noise multiplier z = {z}");
        }
        eprintln!(
            "training {} steps ({} epochs × {} steps), {} parameters{}",
            info.total_steps,
            info.epochs,
            info.steps_per_epoch,
            info.num_params,
            if info.start_step > 0 {
                format!(", resuming at step {}", info.start_step)
            } else {
                String::new()
            }
        );
        if !self.quiet {
            let bar = ProgressBar::new(info.total_steps as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
                )
                .expect("static template"),
            );
            bar.set_position(info.start_step as u64);
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, m: &StepMetrics) {
        if let Some(bar) = &self.bar {
            bar.set_position(m.step as u64);
            let mut msg = format!("epoch {}", m.epoch);
            if let Some(l) = m.loss {
                msg += &format!(" loss {l:.4}");
            }
            if let Some(a) = m.accuracy {
                msg += &format!(" acc {:.3}", a);
            }
            if let Some(e) = m.epsilon_spent {
                msg += &format!(" ε {e:.3}");
            }
            bar.set_message(msg);
        }
    }

    fn epoch(&mut self, epoch: usize, test_loss: f64, test_accuracy: f64) {
        let line = format!(
            "epoch {epoch}: test loss {test_loss:.4}, test accuracy {:.2} %",
            100.0 * test_accuracy
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn message(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

fn classify(e: TrainError) -> anyhow::Error {
    match e {
        TrainError::Config { .. } => usage(e),
        e => anyhow::Error::new(e),
    }
}

/// Runs (or resumes) the training run; Ctrl-C checkpoints and stops cleanly.
pub fn run(a: &TrainArgs) -> Result<Summary> {
    let (out_dir, resume) = match (&a.resume, &a.out) {
        (Some(r), Some(o)) if r != o => {
            return Err(usage(
                "invalid --out: with --resume DIR the run continues in DIR; omit --out",
            ));
        }
        (Some(r), _) => (Some(r.clone()), true),
        (None, o) => (o.clone(), false),
    };
    let config = match (&a.config, &out_dir, resume) {
        (Some(path), _, _) => TrainConfig::from_toml_file(path).map_err(classify)?,
        (None, Some(dir), true) => {
            TrainConfig::from_toml_file(&dir.join(lrmf_train::CONFIG_FILE)).map_err(classify)?
        }
        _ => {
            return Err(usage(
                "missing --config: a TOML run configuration is required (see configs/)",
            ));
        }
    };
    let out_dir = out_dir.unwrap_or_else(|| config.default_out_dir());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // A second Ctrl-C during the checkpoint falls through to the default (kill); the checkpoint
    // is atomic, so the previous one stays valid.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: finishing the current step and writing a checkpoint …");
    });
    let mut bar = Bar {
        bar: None,
        quiet: a.quiet,
    };
    let summary = lrmf_train::train(&config, &out_dir, resume, stop, &mut bar).map_err(classify)?;
    if let Some(b) = &bar.bar {
        b.finish_and_clear();
    }
    Ok(summary)
}
