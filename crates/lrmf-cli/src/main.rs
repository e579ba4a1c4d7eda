//! The `lrmf` binary: learning-rate-aware matrix factorization for private training.
//!
//! Exit codes: 0 success, 2 bad input (one line naming the flag and the allowed range; clap's
//! own parse errors also use 2), 1 any other failure.

use anyhow::Result;
use clap::{Parser, Subcommand};
use lrmf_cli::accounting::{AccountingArgs, AccountingReport};
use lrmf_cli::noise::NoiseArgs;
use lrmf_cli::train::TrainArgs;
use lrmf_cli::{ErrorsReport, StrategyArgs, UsageError};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lrmf",
    version,
    about = "Learning-rate-aware matrix factorization for differentially private training"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sensitivity, MaxSE and MeanSE of one factorization method.
    Errors {
        #[command(flatten)]
        strategy: StrategyArgs,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every method side by side, best (lowest MaxSE) first, with the lower bound.
    Compare {
        #[command(flatten)]
        strategy: StrategyArgs,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The noise multiplier for a target (ε, δ), with the strategy's sensitivity and noise std.
    Calibrate {
        /// Target ε (> 0).
        #[arg(long, allow_negative_numbers = true)]
        epsilon: f64,
        #[command(flatten)]
        accounting: AccountingArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The ε spent at a given noise multiplier.
    Epsilon {
        /// Noise multiplier z (> 0): noise std per unit sensitivity and clip norm.
        #[arg(long = "noise-multiplier", allow_negative_numbers = true)]
        noise_multiplier: f64,
        #[command(flatten)]
        accounting: AccountingArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Train a model privately from a TOML config (Ctrl-C checkpoints; --resume continues).
    Train {
        #[command(flatten)]
        train: TrainArgs,
    },
    /// Write a strategy's correlated noise σ·C⁻¹Z (n × d, f32) to a .npy file.
    Noise {
        #[command(flatten)]
        noise: NoiseArgs,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(u) = e.downcast_ref::<UsageError>() {
                eprintln!("error: {u}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Errors { strategy, json } => {
            let r = lrmf_cli::evaluate(&strategy)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print_errors(&r);
            }
        }
        Command::Compare { strategy, json } => {
            let (rows, skipped) = lrmf_cli::compare(&strategy)?;
            for s in &skipped {
                eprintln!("note: skipped {s}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_compare(&rows);
            }
        }
        Command::Calibrate {
            epsilon,
            accounting,
            json,
        } => {
            let r = lrmf_cli::accounting::calibrate(epsilon, &accounting)?;
            print_accounting(&r, json, true)?;
        }
        Command::Epsilon {
            noise_multiplier,
            accounting,
            json,
        } => {
            let r = lrmf_cli::accounting::epsilon(noise_multiplier, &accounting)?;
            print_accounting(&r, json, false)?;
        }
        Command::Train { train } => {
            let s = lrmf_cli::train::run(&train)?;
            if !s.completed {
                eprintln!(
                    "stopped after {} of {} steps; continue with --resume",
                    s.steps_done, s.total_steps
                );
                // 128 + SIGINT: the conventional status of a run stopped by Ctrl-C.
                std::process::exit(130);
            }
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        Command::Noise { noise, json } => {
            let r = lrmf_cli::noise::run(&noise)?;
            if let Some(w) = &r.warning {
                eprintln!("warning: {w}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "wrote {} ({} × {} f32): {} noise, form {}, {} bytes of generator state",
                    r.out, r.n, r.dim, r.method, r.form, r.state_bytes
                );
            }
        }
    }
    Ok(())
}

fn print_accounting(r: &AccountingReport, json: bool, calibrate: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!("accountant        {} ({})", r.accountant, r.sampling);
    if let (Some(m), Some(n)) = (&r.method, r.n) {
        println!("strategy          {m}, n = {n}");
    }
    if calibrate {
        println!("target            ε = {}, δ = {}", r.epsilon, r.delta);
        if let Some(a) = r.epsilon_achieved {
            println!("achieved ε        {a}");
        }
    } else {
        println!("ε                 {}", r.epsilon);
        println!("δ                 {}", r.delta);
    }
    println!("noise multiplier  {}", r.noise_multiplier);
    println!(
        "sensitivity       {} ({})",
        r.sensitivity, r.sensitivity_kind
    );
    println!(
        "noise std         {} per unit clip norm (z · sens)",
        r.noise_std
    );
    if let Some(c) = r.confidence {
        println!(
            "confidence        {c} ({} samples per direction)",
            r.samples.unwrap_or(0)
        );
    }
    println!("rounding          {}", r.rounding);
    Ok(())
}

fn describe(r: &ErrorsReport) -> String {
    let mut s = format!("n = {}, {} schedule", r.n, r.schedule);
    if r.schedule != "constant" {
        s += &format!(", lr-decay {}", r.lr_decay);
    }
    if r.warmup > 0 {
        s += &format!(", {} warm-up steps", r.warmup);
    }
    s += &format!(", momentum {}, weight decay {}", r.momentum, r.weight_decay);
    s
}

fn participation(r: &ErrorsReport) -> String {
    match (r.participations, r.min_sep) {
        (1, _) => "single participation".to_string(),
        (k, Some(b)) => format!("k = {k} participations, min-sep {b}"),
        (k, None) => format!("k = {k} participations"),
    }
}

fn print_errors(r: &ErrorsReport) {
    let band = r.band.map(|p| format!(" (band {p})")).unwrap_or_default();
    println!("method         {}{band}", r.method);
    println!("workload       {}", describe(r));
    println!("participation  {}", participation(r));
    println!(
        "sensitivity    {:.9} ({}: {})",
        r.sensitivity, r.sensitivity_kind, r.sensitivity_method
    );
    println!("MaxSE          {:.9}", r.max_se);
    println!("MeanSE         {:.9}", r.mean_se);
    println!("time           {:.2} ms", r.millis);
    for note in &r.notes {
        println!("note           {note}");
    }
}

fn print_compare(rows: &[ErrorsReport]) {
    let Some(first) = rows.first() else {
        println!("no method could run with these flags");
        return;
    };
    println!("{}; {}", describe(first), participation(first));
    println!(
        "{:<12} {:>6} {:>14} {:<12} {:>14} {:>14} {:>10}",
        "method", "band", "sensitivity", "kind", "MaxSE", "MeanSE", "ms"
    );
    for r in rows {
        let band = r.band.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:<12} {:>6} {:>14.6} {:<12} {:>14.6} {:>14.6} {:>10.2}",
            r.method, band, r.sensitivity, r.sensitivity_kind, r.max_se, r.mean_se, r.millis
        );
    }
    if let Some(lb) = first.lower_bound {
        println!(
            "{:<12} {:>6} {:>14} {:<12} {:>14} {:>14.6}",
            "lower bound", "", "", "‖W‖_*/n", "≥ MeanSE", lb
        );
    }
    let mut notes: Vec<&String> = rows.iter().flat_map(|r| &r.notes).collect();
    notes.dedup();
    for note in notes {
        println!("note: {note}");
    }
}
