//! `lrmf errors` and `lrmf compare`: the strategy flags shared by several subcommands, and the
//! report of one factorization's sensitivity, MaxSE and MeanSE.

use crate::usage;
use anyhow::Result;
use clap::Args;
use lrmf_factor::{FactorSpec, Factorization, Factorizer, Method, errors, lower_bound};
use lrmf_privacy::Participation;
use lrmf_schedule::{Kind, LrSchedule, Schedule};
use lrmf_workload::Workload;
use serde::Serialize;
use std::time::Instant;

/// The flags that describe a training workload, a factorization method and a participation schema.
#[derive(Debug, Clone, Args)]
pub struct StrategyArgs {
    /// Number of training steps n (≥ 1).
    #[arg(long, allow_negative_numbers = true)]
    pub n: Option<usize>,
    /// Learning-rate schedule: constant, exponential, polynomial, linear, cosine, step, step:K or file:PATH (one rate per line).
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Final over initial learning rate β ∈ (0, 1].
    #[arg(
        long = "lr-decay",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub lr_decay: f64,
    /// Linear warm-up steps in front of the schedule (< n).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub warmup: usize,
    /// Heavy-ball momentum μ ∈ [0, 1).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub momentum: f64,
    /// Multiplicative weight decay per step λ ∈ (0, 1].
    #[arg(
        long = "weight-decay",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub weight_decay: f64,
    /// Factorization method: identity, sqrt, lr-sqrt, bsr, lr-bsr, bisr, lr-bisr, dense-sqrt, blt, lr-blt, dense-opt, lr-dense-opt.
    #[arg(long, default_value = "identity")]
    pub method: String,
    /// Band p of the banded methods (1 ≤ p ≤ n).
    #[arg(long, allow_negative_numbers = true)]
    pub band: Option<usize>,
    /// Minimum separation b between two participations of an example (≥ 1).
    #[arg(long = "min-sep", allow_negative_numbers = true)]
    pub min_sep: Option<usize>,
    /// Maximum participations k of an example (≥ 1, ≤ ⌈n/min-sep⌉; > 1 needs --min-sep).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub participations: usize,
    /// Buffers d of the BLT methods (1..=10); chosen automatically when absent.
    #[arg(long, allow_negative_numbers = true)]
    pub buffers: Option<usize>,
}

/// The validated problem behind [`StrategyArgs`].
#[derive(Debug, Clone)]
pub struct Problem {
    /// The schedule.
    pub schedule: LrSchedule,
    /// The workload W.
    pub workload: Workload,
    /// The participation schema.
    pub participation: Participation,
}

impl StrategyArgs {
    /// Validates everything but the method: schedule, workload and participation. Reads the
    /// schedule file of `file:PATH`.
    pub fn problem(&self) -> Result<Problem> {
        let n = self.n()?;
        let kind = match self.schedule.strip_prefix("file:") {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| usage(format!("invalid --schedule: cannot read '{path}': {e}")))?;
                Kind::parse_file_text(&text).map_err(usage)?
            }
            None => Kind::parse_builtin(&self.schedule).map_err(usage)?,
        };
        let schedule = LrSchedule::new(kind, n, self.lr_decay, self.warmup).map_err(usage)?;
        let workload =
            Workload::from_schedule(&schedule, self.momentum, self.weight_decay).map_err(usage)?;
        let participation =
            Participation::new(n, self.min_sep, self.participations).map_err(usage)?;
        Ok(Problem {
            schedule,
            workload,
            participation,
        })
    }

    /// `--n`, which must be given and ≥ 1.
    pub fn n(&self) -> Result<usize> {
        match self.n {
            None => Err(usage("missing --n: the number of steps (≥ 1) is required")),
            Some(0) => Err(usage("invalid --n: the number of steps must be ≥ 1")),
            Some(n) => Ok(n),
        }
    }

    /// The method named by `--method`.
    pub fn method(&self) -> Result<Method> {
        self.method.parse().map_err(usage)
    }

    /// Validates and factorizes: the strategy C of `--method` for this workload.
    pub fn factorize(&self) -> Result<(Problem, Factorization)> {
        let problem = self.problem()?;
        let method = self.method()?;
        let f = spec(method, self.band, &problem)?
            .with_buffers(self.buffers)
            .factorize(&problem.workload, problem.participation)
            .map_err(usage)?;
        Ok((problem, f))
    }
}

fn spec(method: Method, band: Option<usize>, problem: &Problem) -> Result<FactorSpec> {
    if let Some(p) = band
        && method.is_banded()
        && (p == 0 || p > problem.workload.n())
    {
        return Err(usage(format!(
            "invalid --band: {p} is outside 1..=n = {}",
            problem.workload.n()
        )));
    }
    FactorSpec::for_schedule(method, band, &problem.schedule).map_err(usage)
}

/// One method's errors, as printed by `lrmf errors --json` (and each element of `compare --json`).
#[derive(Debug, Clone, Serialize)]
pub struct ErrorsReport {
    /// Number of steps.
    pub n: usize,
    /// Method name.
    pub method: String,
    /// Schedule name (`file` for file schedules).
    pub schedule: String,
    /// β.
    pub lr_decay: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// μ.
    pub momentum: f64,
    /// λ.
    pub weight_decay: f64,
    /// Band p (banded methods only).
    pub band: Option<usize>,
    /// Minimum separation b (when given).
    pub min_sep: Option<usize>,
    /// Maximum participations k.
    pub participations: usize,
    /// The geometric rate α the lr- methods used.
    pub alpha: f64,
    /// sens(C).
    pub sensitivity: f64,
    /// `closed-form`, `exact` or `upper-bound`.
    pub sensitivity_kind: String,
    /// The sensitivity formula used.
    pub sensitivity_method: String,
    /// `sens(C)·max_t ‖B[t, :]‖₂`.
    pub max_se: f64,
    /// `sens(C)·‖B‖_F/√n`.
    pub mean_se: f64,
    /// The nuclear-norm lower bound `‖W‖_*/n` (compare only, n ≤ 4096).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_bound: Option<f64>,
    /// BLT buffers d (blt, lr-blt: given or chosen automatically).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffers: Option<usize>,
    /// Wall time of factorization and evaluation, in milliseconds.
    pub millis: f64,
    /// Caveats (e.g. increasing rates are outside the paper's theory).
    pub notes: Vec<String>,
}

/// Factorizes and evaluates `--method` for the given strategy flags.
pub fn evaluate(args: &StrategyArgs) -> Result<ErrorsReport> {
    let problem = args.problem()?;
    let method = args.method()?;
    evaluate_method(args, &problem, method)
}

fn evaluate_method(args: &StrategyArgs, problem: &Problem, method: Method) -> Result<ErrorsReport> {
    let start = Instant::now();
    let spec = spec(method, args.band, problem)?.with_buffers(args.buffers);
    let f = spec
        .factorize(&problem.workload, problem.participation)
        .map_err(usage)?;
    let e = errors(&problem.workload, &f, problem.participation).map_err(usage)?;
    let millis = start.elapsed().as_secs_f64() * 1e3;
    let mut notes = Vec::new();
    if !problem.schedule.is_non_increasing() {
        notes.push(
            "the learning rate increases somewhere (e.g. warm-up): outside the paper's theory"
                .to_string(),
        );
    }
    if method.is_lr_aware()
        && !method.is_optimized()
        && problem.schedule.exact_geometric_rate().is_none()
    {
        notes.push(format!(
            "{method} uses the geometric surrogate α = β^(1/(n−1)) = {} of this schedule; B uses the true schedule",
            spec.alpha
        ));
    }
    Ok(ErrorsReport {
        n: problem.workload.n(),
        method: method.name().to_string(),
        schedule: problem.schedule.kind().name(),
        lr_decay: problem.schedule.lr_decay(),
        warmup: args.warmup,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        band: f.band,
        min_sep: args.min_sep,
        participations: args.participations,
        alpha: spec.alpha,
        sensitivity: e.sensitivity.value,
        sensitivity_kind: e.sensitivity.kind.as_str().to_string(),
        sensitivity_method: e.sensitivity.how.to_string(),
        max_se: e.max_se,
        mean_se: e.mean_se,
        lower_bound: None,
        buffers: f.buffers,
        millis,
        notes,
    })
}

/// The largest n at which `compare` runs the dense optimum (each iteration is O(n³)).
const COMPARE_DENSE_OPT_N: usize = 512;

/// The largest n at which `compare` optimizes BLTs (O(n·d²) per objective evaluation).
const COMPARE_BLT_N: usize = 4096;

/// Every method side by side, best (lowest MaxSE) first. Methods that cannot run for these
/// flags (banded ones without `--band`, dense-sqrt beyond its size limit, BLT and the dense
/// optimum beyond the sizes that keep `compare` fast, the dense optimum under multiple
/// participations) are left out and named in the second return value.
pub fn compare(args: &StrategyArgs) -> Result<(Vec<ErrorsReport>, Vec<String>)> {
    let problem = args.problem()?;
    let lb = lower_bound(&problem.workload).ok();
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for method in Method::ALL {
        if method.is_banded() && args.band.is_none() {
            skipped.push(format!("{method}: needs --band"));
            continue;
        }
        if method == Method::DenseSqrt && problem.workload.n() > lrmf_factor::MAX_DENSE_N {
            skipped.push(format!(
                "{method}: n > {} (O(n³))",
                lrmf_factor::MAX_DENSE_N
            ));
            continue;
        }
        if matches!(method, Method::Blt | Method::LrBlt) && problem.workload.n() > COMPARE_BLT_N {
            skipped.push(format!(
                "{method}: n > {COMPARE_BLT_N} in compare (run `errors --method {method}` up to n = {})",
                lrmf_factor::MAX_BLT_N
            ));
            continue;
        }
        if matches!(method, Method::DenseOpt | Method::LrDenseOpt) {
            if problem.workload.n() > COMPARE_DENSE_OPT_N {
                skipped.push(format!(
                    "{method}: n > {COMPARE_DENSE_OPT_N} in compare (O(n³) per iteration; run `errors --method {method}` up to n = {})",
                    lrmf_factor::MAX_DENSE_OPT_N
                ));
                continue;
            }
            if problem.participation.k() > 1 {
                skipped.push(format!(
                    "{method}: single participation only (--participations 1)"
                ));
                continue;
            }
        }
        let mut r = evaluate_method(args, &problem, method)?;
        r.lower_bound = lb;
        out.push(r);
    }
    out.sort_by(|a, b| a.max_se.total_cmp(&b.max_se));
    if lb.is_none() {
        skipped.push(format!(
            "lower bound: n > {} (SVD)",
            lrmf_factor::MAX_DENSE_N
        ));
    }
    Ok((out, skipped))
}
