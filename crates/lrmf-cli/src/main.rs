//! The `lrmf` binary: learning-rate-aware matrix factorization for private training.
//!
//! Exit codes: 0 success, 2 bad input (one line naming the flag and the allowed range; clap's
//! own parse errors also use 2), 1 any other failure.

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use lrmf_cli::accounting::{AccountingArgs, AccountingReport};
use lrmf_cli::flags::{self, Given};
use lrmf_cli::fmt::sig;
use lrmf_cli::noise::NoiseArgs;
use lrmf_cli::strategy::StrategyArgs;
use lrmf_cli::train::{EvalArgs, TrainArgs};
use lrmf_cli::{ErrorsReport, UsageError};
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
    /// Factorize once and write the strategy (method, workload, participation, C, errors) to a file that every command reads back with --strategy.
    #[command(
        override_usage = "lrmf factorize --n <STEPS> --method <M> [--band <P>] --out <FILE.json> [--npy <FILE.npy>] [OPTIONS]"
    )]
    Factorize {
        #[command(flatten)]
        strategy: StrategyArgs,
        /// The strategy file to write (JSON).
        #[arg(long, value_name = "FILE.json")]
        out: std::path::PathBuf,
        /// Also write the dense C (n ≤ 4096) as a float64 n × n .npy, C order (for NumPy users).
        #[arg(long, value_name = "FILE.npy")]
        npy: Option<std::path::PathBuf>,
        /// Print the errors report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sensitivity, MaxSE and MeanSE of one factorization method.
    #[command(
        override_usage = "lrmf errors --n <STEPS> [--method <M>] [--band <P>] [OPTIONS]\n       lrmf errors --dataset-size <N> --batch-size <B> [--epochs <E>] [OPTIONS]"
    )]
    Errors {
        #[command(flatten)]
        strategy: StrategyArgs,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every method side by side, best (lowest MaxSE) first, with the lower bound.
    #[command(
        override_usage = "lrmf compare --n <STEPS> [--band <P|auto|P1,P2,…>] [OPTIONS]\n       lrmf compare --dataset-size <N> --batch-size <B> [--epochs <E>] [OPTIONS]"
    )]
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
    /// Test accuracy of a trained model's release (model.safetensors + release.json), without its checkpoint.
    Eval {
        #[command(flatten)]
        eval: EvalArgs,
    },
    /// Write a strategy's correlated noise σ·C⁻¹Z (n × d, f32) to a .npy file.
    #[command(
        override_usage = "lrmf noise --n <STEPS> --dim <D> --out <FILE.npy> [--method <M>] [--std <SIGMA>] [OPTIONS]"
    )]
    Noise {
        #[command(flatten)]
        noise: NoiseArgs,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let given = matches
        .subcommand()
        .map(|(_, m)| Given::from_matches(m))
        .unwrap_or_default();
    match run(cli, &given) {
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

/// The user's terms turned into low-level flags, contradictions refused, unused flags warned
/// about, and the memory the strategy needs checked: before any work.
fn prepare_strategy(s: &mut StrategyArgs, given: &Given, compare: bool) -> Result<()> {
    if let Some(line) = flags::apply_user_terms(s, given)? {
        eprintln!("note: {line}");
    }
    if !compare {
        flags::check_single_band(s)?;
    }
    flags::check_strategy_file(s, given, compare)?;
    for w in flags::check_strategy(s, given, compare) {
        flags::warn(&w);
    }
    lrmf_cli::budget::check_strategy(s)
}

fn prepare_accounting(a: &mut AccountingArgs, given: &Given) -> Result<()> {
    if let Some(line) = flags::apply_user_terms(&mut a.strategy, given)? {
        eprintln!("note: {line}");
    }
    for w in flags::check_accounting(a, given)? {
        flags::warn(&w);
    }
    flags::check_single_band(&a.strategy)?;
    flags::check_strategy_file(&a.strategy, given, false)?;
    lrmf_cli::budget::check_strategy(&a.strategy)
}

fn run(cli: Cli, given: &Given) -> Result<()> {
    match cli.command {
        Command::Errors { mut strategy, json } => {
            prepare_strategy(&mut strategy, given, false)?;
            emit(json, &lrmf_cli::evaluate(&strategy)?, print_errors)
        }
        Command::Factorize {
            mut strategy,
            out,
            npy,
            json,
        } => {
            prepare_strategy(&mut strategy, given, false)?;
            if strategy.strategy.is_some() {
                return Err(lrmf_cli::usage(
                    "invalid --strategy: factorize makes a strategy file; give --method and --band",
                ));
            }
            let r = lrmf_cli::strategy_file::factorize_to(&strategy, &out, npy.as_deref())?;
            emit(json, &r, |r| {
                print_errors(r);
                println!("wrote          {}", out.display());
            })
        }
        Command::Compare { mut strategy, json } => {
            prepare_strategy(&mut strategy, given, true)?;
            let (rows, skipped) = lrmf_cli::compare(&strategy)?;
            for s in &skipped {
                eprintln!("note: skipped {s}");
            }
            emit(json, &rows, |rows| print_compare(rows))
        }
        Command::Calibrate {
            epsilon,
            mut accounting,
            json,
        } => {
            prepare_accounting(&mut accounting, given)?;
            let r = lrmf_cli::accounting::calibrate(epsilon, &accounting)?;
            print_accounting(&r, json, true)
        }
        Command::Epsilon {
            noise_multiplier,
            mut accounting,
            json,
        } => {
            prepare_accounting(&mut accounting, given)?;
            let r = lrmf_cli::accounting::epsilon(noise_multiplier, &accounting)?;
            print_accounting(&r, json, false)
        }
        Command::Train { train } => run_train(&train),
        Command::Eval { eval } => emit(eval.json, &lrmf_cli::train::eval(&eval)?, print_eval),
        Command::Noise { mut noise, json } => {
            prepare_strategy(&mut noise.strategy, given, false)?;
            let r = lrmf_cli::noise::run(&noise)?;
            if let Some(w) = &r.warning {
                eprintln!("warning: {w}");
            }
            emit(json, &r, |r| {
                println!(
                    "wrote {} ({} × {} f32): {} noise, form {}, {} bytes of generator state",
                    r.out, r.n, r.dim, r.method, r.form, r.state_bytes
                )
            })
        }
    }
}

/// Prints `r` as pretty JSON with `--json`, else as the command's table.
fn emit<T: serde::Serialize + ?Sized>(json: bool, r: &T, table: impl FnOnce(&T)) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        table(r);
    }
    Ok(())
}

/// `lrmf train`: the summary as JSON; a run stopped by Ctrl-C exits 130 (128 + SIGINT).
fn run_train(train: &TrainArgs) -> Result<()> {
    let s = lrmf_cli::train::run(train)?;
    if !s.completed {
        eprintln!(
            "stopped after {} of {} steps; continue with --resume",
            s.steps_done, s.total_steps
        );
        std::process::exit(130);
    }
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(())
}

fn print_eval(r: &lrmf_train::release::EvalReport) {
    println!(
        "{} ({} on {}): test accuracy {:.2} % on {} examples, test loss {}{}",
        r.model_dir,
        r.model,
        r.dataset,
        100.0 * r.test_accuracy,
        r.num_test,
        lrmf_cli::fmt::sig(r.test_loss),
        r.epsilon
            .map(|e| format!(", ε = {}", lrmf_cli::fmt::sig(e)))
            .unwrap_or_else(|| ", non-private".into())
    );
}

fn print_accounting(r: &AccountingReport, json: bool, calibrate: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!("accountant        {} ({})", r.accountant, r.sampling);
    match &r.strategy {
        Some(s) => {
            let band = s.band.map(|p| format!(", band {p}")).unwrap_or_default();
            println!("strategy          {}{band}", s.method);
            println!("workload          {}", describe(s));
            println!("participation     {}", participation(s));
            println!(
                "MaxSE / MeanSE    {} / {} (per unit noise multiplier and clip norm)",
                sig(s.max_se),
                sig(s.mean_se)
            );
        }
        None => {
            if let (Some(m), Some(n)) = (&r.method, r.n) {
                println!("strategy          {m}, {n} steps");
            }
        }
    }
    if calibrate {
        println!(
            "target            ε = {}, δ = {}",
            sig(r.epsilon),
            sig(r.delta)
        );
        if let Some(a) = r.epsilon_achieved {
            println!("achieved ε        {} (verified for the returned z)", sig(a));
        }
    } else {
        println!("ε                 {}", sig(r.epsilon));
        println!("δ                 {}", sig(r.delta));
    }
    println!("noise multiplier  {}", sig(r.noise_multiplier));
    println!(
        "sensitivity       {} ({})",
        sig(r.sensitivity),
        r.sensitivity_kind
    );
    println!(
        "noise std         {} per unit clip norm (z · sens): add N(0, (std · clip)²) to the clipped gradient SUM, then divide by the batch size",
        sig(r.noise_std)
    );
    if let Some(c) = r.confidence {
        println!(
            "confidence        {} ({} samples per direction)",
            sig(c),
            r.samples.unwrap_or(0)
        );
    }
    println!("rounding          {}", r.rounding);
    Ok(())
}

fn describe(r: &ErrorsReport) -> String {
    let mut s = format!("n = {}, {} schedule", r.n, r.schedule);
    if r.schedule != "constant" {
        s += &format!(", lr-decay {}", sig(r.lr_decay));
    }
    if r.warmup > 0 {
        s += &format!(", {} warm-up steps", r.warmup);
    }
    s += &format!(
        ", momentum {}, weight decay {}",
        sig(r.momentum),
        sig(r.weight_decay)
    );
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
        "sensitivity    {} ({}: {})",
        sig(r.sensitivity),
        r.sensitivity_kind,
        r.sensitivity_method
    );
    println!("MaxSE          {}", sig(r.max_se));
    println!("MeanSE         {}", sig(r.mean_se));
    println!(
        "noise state    {} bytes per model parameter",
        r.noise_state_bytes_per_param
    );
    println!("time           {} ms", sig(r.millis));
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
        "{:<12} {:>6} {:>12} {:<12} {:>12} {:>12} {:>10} {:>10}",
        "method", "band", "sensitivity", "kind", "MaxSE", "MeanSE", "B/param", "ms"
    );
    for r in rows {
        let band = r.band.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:<12} {:>6} {:>12} {:<12} {:>12} {:>12} {:>10} {:>10}",
            r.method,
            band,
            sig(r.sensitivity),
            r.sensitivity_kind,
            sig(r.max_se),
            sig(r.mean_se),
            r.noise_state_bytes_per_param,
            sig(r.millis)
        );
    }
    if let Some(lb) = first.lower_bound {
        println!(
            "lower bound  ‖W‖_*/n = {}: no factorization has a MeanSE (or MaxSE) below it",
            sig(lb)
        );
    }
    let mut notes: Vec<&String> = rows.iter().flat_map(|r| &r.notes).collect();
    notes.dedup();
    for note in notes {
        println!("note: {note}");
    }
}
