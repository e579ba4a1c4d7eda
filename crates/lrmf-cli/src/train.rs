//! `lrmf train`: a private (or non-private baseline) training run from one TOML file, with a
//! progress bar, SIGINT-safe checkpoints and `--resume`.

use crate::usage;
use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use lrmf_train::{Progress, RunInfo, StepMetrics, Summary, TrainConfig, TrainError};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Flags of `lrmf train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The run's TOML configuration (see configs/).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder (default: the config's `output.dir`, else `runs/<config name>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Resume the run in this folder from its last checkpoint (its saved config is used unless --config is given).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// No progress bar (log lines per epoch only; also the behaviour when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

/// A progress bar over the run's steps on a terminal; one log line per epoch otherwise (batch
/// jobs, `nohup`, CI logs) or with `--quiet`.
struct Bar {
    bar: Option<ProgressBar>,
    quiet: bool,
    /// (steps per epoch, epochs, total steps, first step) of the run.
    shape: (usize, usize, usize, usize),
    clock: std::time::Instant,
    /// Σ loss and count over the current epoch (diagnostics, outside DP).
    epoch_loss: (f64, usize),
}

impl Bar {
    /// One line at the end of an epoch (when there is no bar): progress, ETA, the epoch's
    /// mean training loss labelled as outside the DP guarantee.
    fn epoch_line(&mut self, m: &StepMetrics) -> String {
        let (b, k, n, first) = self.shape;
        let secs = self.clock.elapsed().as_secs_f64();
        let done = (m.step - first).max(1) as f64;
        let eta = secs / done * (n - m.step) as f64;
        let mut line = format!(
            "epoch {}/{k} done: step {}/{n}, {}, ETA {}; checkpoint written",
            m.step / b.max(1),
            m.step,
            crate::fmt::duration(secs),
            crate::fmt::duration(eta),
        );
        if self.epoch_loss.1 > 0 {
            line += &format!(
                "; train loss {} (diagnostic, outside DP)",
                crate::fmt::sig(self.epoch_loss.0 / self.epoch_loss.1 as f64)
            );
        }
        self.epoch_loss = (0.0, 0);
        line
    }
}

impl Progress for Bar {
    fn start(&mut self, info: &RunInfo) {
        for w in &info.warnings {
            eprintln!("warning: {w}");
        }
        if let (Some(e), Some(z)) = (info.epsilon, info.noise_multiplier) {
            eprintln!(
                "privacy: budget ε = {} for the whole run, noise multiplier z = {}",
                crate::fmt::sig(e),
                crate::fmt::sig(z)
            );
        }
        self.shape = (
            info.steps_per_epoch,
            info.epochs,
            info.total_steps,
            info.start_step,
        );
        self.clock = std::time::Instant::now();
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
        use std::io::IsTerminal;
        if !self.quiet && std::io::stderr().is_terminal() {
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
        if let Some(l) = m.loss {
            self.epoch_loss.0 += l;
            self.epoch_loss.1 += 1;
        }
        if self.bar.is_none() && m.step.is_multiple_of(self.shape.0.max(1)) {
            let line = self.epoch_line(m);
            eprintln!("{line}");
        }
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
                msg += &format!(" budget ε {e:.3}");
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
    // Without a handler (one already installed) Ctrl-C kills the run; the last checkpoint stays.
    let _ = crate::interrupt::install(
        &stop,
        "interrupt: finishing the current step and writing a checkpoint …",
    );
    let mut bar = Bar {
        bar: None,
        quiet: a.quiet,
        shape: (1, 1, 1, 0),
        clock: std::time::Instant::now(),
        epoch_loss: (0.0, 0),
    };
    let summary = lrmf_train::train(&config, &out_dir, resume, stop, &mut bar).map_err(classify)?;
    if let Some(b) = &bar.bar {
        b.finish_and_clear();
    }
    Ok(summary)
}

/// Flags of `lrmf eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// Folder of a completed `lrmf train` run (holds model.safetensors, release.json, config.toml).
    #[arg(long)]
    pub model: PathBuf,
    /// Print one JSON object (key `test_accuracy`, a fraction).
    #[arg(long)]
    pub json: bool,
}

/// `lrmf eval`: the test accuracy of a release artifact, without its checkpoint.
pub fn eval(a: &EvalArgs) -> Result<lrmf_train::release::EvalReport> {
    lrmf_train::release::evaluate_release(&a.model).map_err(classify)
}
