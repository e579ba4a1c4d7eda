//! The `lrmf` binary: learning-rate-aware matrix factorization for private training.
//!
//! Exit codes: 0 success, 2 bad input (one line naming the flag and the allowed range; clap's
//! own parse errors also use 2), 1 any other failure.

use anyhow::Result;
use clap::{Parser, Subcommand};
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
    }
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
