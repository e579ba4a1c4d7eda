//! Learning-rate schedules χ as pure `step → rate` maps (MATH.md §2), with validation.
//!
//! ```
//! use lrmf_schedule::{Kind, LrSchedule, Schedule};
//!
//! // Exponential decay over 100 steps from 1 to β = 0.1.
//! let s = LrSchedule::new(Kind::Exponential, 100, 0.1, 0)?;
//! assert_eq!(s.rate(0), 1.0);
//! assert!((s.rate(99) - 0.1).abs() < 1e-12);
//! assert!(s.is_non_increasing());
//! # Ok::<(), lrmf_schedule::ScheduleError>(())
//! ```
//!
//! Rates are normalised: χ at the first step is 1 and, for the decaying schedules, χ at the last
//! step is β = `lr_decay` ∈ (0, 1]. The peak learning rate η multiplies the whole trajectory and
//! factors out of the workload. Steps are 0-based in code (t = 0..n−1); MATH.md is 1-based.
//!
//! | kind | χ_t (t = 0..n−1) |
//! |---|---|
//! | constant | 1 |
//! | exponential | α^t, α = β^{1/(n−1)} |
//! | polynomial | β + (1−β)·((n/(t+1))² − 1)/(n² − 1) |
//! | linear | 1 − (1−β)·t/(n−1) |
//! | cosine | β + (1−β)/2·(1 + cos(π t/(n−1))) |
//! | step (K stages) | β^{⌊K t/n⌋/(K−1)}: K equal stages from 1 down to β |
//! | file | the rates of a file, divided by the first |
//!
//! A linear warm-up of w steps can precede any of them: χ_t = (t+1)/(w+1) for t < w, then the
//! base schedule over the remaining n − w steps. Increasing rates are outside the paper's theory;
//! [`Schedule::is_non_increasing`] lets callers say so.

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Invalid schedule parameters, naming the flag and the allowed range.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ScheduleError {
    /// A parameter is out of range.
    #[error("invalid --{flag}: {message}")]
    Invalid {
        /// The CLI flag the parameter comes from.
        flag: &'static str,
        /// What is allowed.
        message: String,
    },
}

fn invalid(flag: &'static str, message: impl Into<String>) -> ScheduleError {
    ScheduleError::Invalid {
        flag,
        message: message.into(),
    }
}

/// A learning-rate schedule over a fixed number of steps.
pub trait Schedule {
    /// Number of steps n.
    fn len(&self) -> usize;
    /// χ_t for the 0-based step t < n.
    fn rate(&self, t: usize) -> f64;
    /// All rates χ_0 … χ_{n−1}.
    fn rates(&self) -> Vec<f64> {
        (0..self.len()).map(|t| self.rate(t)).collect()
    }
    /// True when the schedule never increases (the regime of the paper's theory).
    fn is_non_increasing(&self) -> bool {
        let r = self.rates();
        r.windows(2).all(|w| w[1] <= w[0])
    }
    /// True when the schedule has no step (n = 0 is never constructed; provided for clippy's sake).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The shape of a schedule, independent of its length and decay.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// χ ≡ 1.
    Constant,
    /// Geometric decay from 1 to β.
    Exponential,
    /// The paper's polynomial (inverse-square) decay.
    Polynomial,
    /// Linear decay from 1 to β.
    Linear,
    /// Cosine decay from 1 to β.
    Cosine,
    /// Step decay in `stages` equal stages from 1 to β.
    Step {
        /// Number of stages K ≥ 2.
        stages: usize,
    },
    /// Rates given one per step (normalised by the first).
    File(Vec<f64>),
}

/// Default number of stages of the step schedule.
pub const DEFAULT_STEP_STAGES: usize = 4;

/// Where a schedule's shape comes from, in the one spelling the CLI (`--schedule`) and the TOML
/// config (`[schedule] kind`) share: a built-in kind, or `file:PATH`, whose text the caller
/// reads and passes to [`Kind::parse_file_text`] (this crate reads no files).
#[derive(Debug, Clone, PartialEq)]
pub enum Source<'a> {
    /// A built-in kind (`exponential`, `step:8`, …).
    Builtin(Kind),
    /// `file:PATH`: one rate per line in the file at PATH.
    File(&'a str),
}

impl Kind {
    /// Parses a schedule's spelling: `file:PATH` ([`Source::File`]) or a built-in name
    /// ([`Kind::parse_builtin`]).
    pub fn parse_source(s: &str) -> Result<Source<'_>, ScheduleError> {
        match s.strip_prefix("file:") {
            Some("") => Err(invalid("schedule", "file:PATH needs a path")),
            Some(path) => Ok(Source::File(path)),
            None => Self::parse_builtin(s).map(Source::Builtin),
        }
    }

    /// The name used on the command line (`file:` schedules print as `file`).
    pub fn name(&self) -> String {
        match self {
            Kind::Constant => "constant".into(),
            Kind::Exponential => "exponential".into(),
            Kind::Polynomial => "polynomial".into(),
            Kind::Linear => "linear".into(),
            Kind::Cosine => "cosine".into(),
            Kind::Step { stages } if *stages == DEFAULT_STEP_STAGES => "step".into(),
            Kind::Step { stages } => format!("step:{stages}"),
            Kind::File(_) => "file".into(),
        }
    }

    /// Parses a schedule name other than `file:PATH` (reading files is the caller's job; pass
    /// the rates to [`Kind::from_rates`]). Accepts `step` and `step:K`.
    pub fn parse_builtin(s: &str) -> Result<Self, ScheduleError> {
        Ok(match s {
            "constant" => Kind::Constant,
            "exponential" => Kind::Exponential,
            "polynomial" => Kind::Polynomial,
            "linear" => Kind::Linear,
            "cosine" => Kind::Cosine,
            "step" => Kind::Step {
                stages: DEFAULT_STEP_STAGES,
            },
            _ => {
                if let Some(k) = s.strip_prefix("step:") {
                    let stages: usize = k.parse().map_err(|_| {
                        invalid(
                            "schedule",
                            format!("'step:{k}': the number of stages must be an integer ≥ 2"),
                        )
                    })?;
                    if stages < 2 {
                        return Err(invalid("schedule", "step:K needs K ≥ 2 stages"));
                    }
                    Kind::Step { stages }
                } else {
                    return Err(invalid(
                        "schedule",
                        format!(
                            "unknown schedule '{s}'; allowed: constant, exponential, polynomial, linear, cosine, step, step:K, file:PATH"
                        ),
                    ));
                }
            }
        })
    }

    /// A file schedule from its rates: all finite and > 0.
    pub fn from_rates(rates: Vec<f64>) -> Result<Self, ScheduleError> {
        if rates.is_empty() {
            return Err(invalid("schedule", "the schedule file holds no rate"));
        }
        if let Some(i) = rates.iter().position(|r| !(r.is_finite() && *r > 0.0)) {
            return Err(invalid(
                "schedule",
                format!(
                    "rate on line {} is {}; every rate must be finite and > 0",
                    i + 1,
                    rates[i]
                ),
            ));
        }
        Ok(Kind::File(rates))
    }

    /// Parses the text of a schedule file: one rate per line; blank lines and `#` comments skipped.
    pub fn parse_file_text(text: &str) -> Result<Self, ScheduleError> {
        let mut rates = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let r: f64 = line.parse().map_err(|_| {
                invalid(
                    "schedule",
                    format!("line {}: '{line}' is not a number", i + 1),
                )
            })?;
            rates.push(r);
        }
        Self::from_rates(rates)
    }
}

impl FromStr for Kind {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_builtin(s)
    }
}

/// A validated schedule: kind, length n, decay β and warm-up length.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    kind: Kind,
    n: usize,
    lr_decay: f64,
    warmup: usize,
}

impl LrSchedule {
    /// Builds and validates a schedule. `lr_decay` β ∈ (0, 1]; `warmup` < n; a file schedule
    /// must hold exactly n − warmup rates.
    pub fn new(kind: Kind, n: usize, lr_decay: f64, warmup: usize) -> Result<Self, ScheduleError> {
        if n == 0 {
            return Err(invalid("n", "the number of steps must be ≥ 1"));
        }
        if !(lr_decay.is_finite() && lr_decay > 0.0 && lr_decay <= 1.0) {
            return Err(invalid("lr-decay", format!("{lr_decay} is outside (0, 1]")));
        }
        if warmup >= n {
            return Err(invalid(
                "warmup",
                format!("{warmup} warm-up steps must be < n = {n}"),
            ));
        }
        if let Kind::File(r) = &kind
            && r.len() != n - warmup
        {
            return Err(invalid(
                "schedule",
                format!(
                    "the file holds {} rates, but n − warmup = {} steps need one each",
                    r.len(),
                    n - warmup
                ),
            ));
        }
        Ok(Self {
            kind,
            n,
            lr_decay,
            warmup,
        })
    }

    /// The constant schedule of length n.
    pub fn constant(n: usize) -> Result<Self, ScheduleError> {
        Self::new(Kind::Constant, n, 1.0, 0)
    }

    /// The kind.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// β: the ratio of the final to the initial rate of the decaying part. For a file schedule,
    /// its last rate over its first.
    pub fn lr_decay(&self) -> f64 {
        match &self.kind {
            Kind::File(r) => r[r.len() - 1] / r[0],
            Kind::Constant => 1.0,
            _ => self.lr_decay,
        }
    }

    /// Warm-up length w.
    pub fn warmup(&self) -> usize {
        self.warmup
    }

    /// The geometric rate α = β^{1/(m−1)} with the same end points as the decaying part
    /// (m = n − w steps); 1 when m = 1. The lr- factorizations use it as the schedule's surrogate.
    pub fn geometric_rate(&self) -> f64 {
        let m = self.n - self.warmup;
        if m <= 1 {
            1.0
        } else {
            self.lr_decay().powf(1.0 / (m - 1) as f64)
        }
    }

    /// When χ_t = α^t exactly for every t (constant, or exponential without warm-up), that α.
    pub fn exact_geometric_rate(&self) -> Option<f64> {
        match (&self.kind, self.warmup) {
            (Kind::Constant, 0) => Some(1.0),
            (Kind::Exponential, 0) => Some(self.geometric_rate()),
            _ => None,
        }
    }

    fn base_rate(&self, s: usize, m: usize) -> f64 {
        let beta = self.lr_decay;
        if m == 1 {
            return 1.0;
        }
        let frac = s as f64 / (m - 1) as f64;
        match &self.kind {
            Kind::Constant => 1.0,
            Kind::Exponential => beta.powf(frac),
            Kind::Polynomial => {
                let mf = m as f64;
                let ratio = mf / (s + 1) as f64;
                beta + (1.0 - beta) * (ratio * ratio - 1.0) / (mf * mf - 1.0)
            }
            Kind::Linear => 1.0 - (1.0 - beta) * frac,
            Kind::Cosine => beta + (1.0 - beta) / 2.0 * (1.0 + (std::f64::consts::PI * frac).cos()),
            Kind::Step { stages } => {
                let stage = (stages * s) / m;
                beta.powf(stage as f64 / (*stages - 1) as f64)
            }
            Kind::File(r) => r[s] / r[0],
        }
    }
}

impl Schedule for LrSchedule {
    fn len(&self) -> usize {
        self.n
    }

    fn rate(&self, t: usize) -> f64 {
        assert!(t < self.n, "step {t} is outside 0..{}", self.n);
        if t < self.warmup {
            (t + 1) as f64 / (self.warmup + 1) as f64
        } else {
            self.base_rate(t - self.warmup, self.n - self.warmup)
        }
    }
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.name())?;
        if self.warmup > 0 {
            write!(f, " after {} warm-up steps", self.warmup)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(kind: Kind, n: usize, beta: f64, want: &[f64]) {
        let s = LrSchedule::new(kind, n, beta, 0).unwrap();
        let got = s.rates();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn formulas_match_the_contract() {
        check(Kind::Constant, 3, 0.5, &[1.0, 1.0, 1.0]);
        check(Kind::Exponential, 3, 0.25, &[1.0, 0.5, 0.25]);
        check(Kind::Linear, 3, 0.5, &[1.0, 0.75, 0.5]);
        check(Kind::Cosine, 3, 0.5, &[1.0, 0.75, 0.5]);
        // polynomial, n = 2: t = 1 → 1, t = 2 → β.
        check(Kind::Polynomial, 2, 0.1, &[1.0, 0.1]);
        // 1-based t = 2 of n = 3: β + (1−β)(9/4 − 1)/8.
        check(
            Kind::Polynomial,
            3,
            0.1,
            &[1.0, 0.1 + 0.9 * 1.25 / 8.0, 0.1],
        );
        check(Kind::Step { stages: 2 }, 4, 0.5, &[1.0, 1.0, 0.5, 0.5]);
        check(Kind::File(vec![2.0, 1.0]), 2, 1.0, &[1.0, 0.5]);
    }

    #[test]
    fn a_single_step_is_rate_one() {
        for k in [
            "constant",
            "exponential",
            "polynomial",
            "linear",
            "cosine",
            "step",
        ] {
            check(Kind::parse_builtin(k).unwrap(), 1, 0.1, &[1.0]);
        }
    }

    #[test]
    fn warmup_rises_then_decays() {
        let s = LrSchedule::new(Kind::Linear, 5, 0.5, 2).unwrap();
        let r = s.rates();
        assert_eq!(r[..2], [1.0 / 3.0, 2.0 / 3.0]);
        assert_eq!(r[2..], [1.0, 0.75, 0.5]);
        assert!(!s.is_non_increasing());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(LrSchedule::new(Kind::Constant, 0, 1.0, 0).is_err());
        assert!(LrSchedule::new(Kind::Exponential, 4, 0.0, 0).is_err());
        assert!(LrSchedule::new(Kind::Exponential, 4, 1.5, 0).is_err());
        assert!(LrSchedule::new(Kind::Exponential, 4, f64::NAN, 0).is_err());
        assert!(LrSchedule::new(Kind::Exponential, 4, 0.5, 4).is_err());
        assert!(LrSchedule::new(Kind::File(vec![1.0]), 4, 1.0, 0).is_err());
        assert!(Kind::parse_builtin("sawtooth").is_err());
        assert!(Kind::parse_builtin("step:1").is_err());
        assert!(Kind::parse_builtin("file:rates.txt").is_err());
        assert!(Kind::parse_source("file:").is_err());
        assert!(Kind::parse_source("sawtooth").is_err());
        assert_eq!(
            Kind::parse_source("file:dir/rates.txt").unwrap(),
            Source::File("dir/rates.txt")
        );
        assert_eq!(
            Kind::parse_source("step:8").unwrap(),
            Source::Builtin(Kind::Step { stages: 8 })
        );
        assert!(Kind::parse_file_text("1\n-2\n").is_err());
        assert!(Kind::parse_file_text("1\nabc\n").is_err());
        assert!(Kind::parse_file_text("# nothing\n").is_err());
        assert_eq!(
            Kind::parse_file_text("1 # first\n\n0.5\n").unwrap(),
            Kind::File(vec![1.0, 0.5])
        );
    }

    proptest! {
        #[test]
        fn decaying_schedules_run_from_one_to_beta(n in 2usize..500, beta in 0.001f64..1.0,
                                                  k in prop::sample::select(vec!["exponential", "polynomial", "linear", "cosine", "step"])) {
            let s = LrSchedule::new(Kind::parse_builtin(k).unwrap(), n, beta, 0).unwrap();
            let r = s.rates();
            prop_assert!((r[0] - 1.0).abs() < 1e-12);
            if k != "step" || n >= DEFAULT_STEP_STAGES {
                prop_assert!((r[n - 1] - beta).abs() < 1e-12 * beta.max(1e-3) * 1e3, "{} vs {}", r[n - 1], beta);
            }
            prop_assert!(s.is_non_increasing());
            prop_assert!(r.iter().all(|v| *v > 0.0 && v.is_finite()));
        }

        #[test]
        fn exponential_is_geometric(n in 2usize..300, beta in 0.01f64..1.0) {
            let s = LrSchedule::new(Kind::Exponential, n, beta, 0).unwrap();
            let alpha = s.exact_geometric_rate().unwrap();
            for (t, r) in s.rates().iter().enumerate() {
                prop_assert!((r - alpha.powi(t as i32)).abs() < 1e-12);
            }
        }
    }
}
