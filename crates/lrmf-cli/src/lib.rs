//! The library behind the `lrmf` binary: argument types, and one function per subcommand that
//! turns arguments into library calls and a JSON-ready report. xtask calls the same functions,
//! so the CLI, the reproduction suite and the library give the same number for the same
//! configuration (one code path).
//!
//! ```
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     strategy: lrmf_cli::StrategyArgs,
//! }
//!
//! // What `lrmf errors --n 64 --method lr-bisr --band 8 --schedule cosine --lr-decay 0.1` prints.
//! let cli = Cli::parse_from([
//!     "lrmf", "--n", "64", "--method", "lr-bisr", "--band", "8",
//!     "--schedule", "cosine", "--lr-decay", "0.1",
//! ]);
//! let report = lrmf_cli::evaluate(&cli.strategy)?;
//! assert_eq!((report.n, report.method.as_str(), report.band), (64, "lr-bisr", Some(8)));
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod accounting;
pub mod budget;
pub mod flags;
pub mod fmt;
pub mod interrupt;
pub mod noise;
pub mod strategy;
pub mod strategy_file;
pub mod train;

pub use strategy::{BandArg, ErrorsReport, StrategyArgs, compare, evaluate};

/// An error that is the user's input: the binary prints it on one line and exits with code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Wraps any displayable error as a [`UsageError`] (exit code 2).
pub fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(UsageError(e.to_string()))
}
