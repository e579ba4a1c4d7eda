//! `lrmf errors` and `lrmf compare`: the strategy flags shared by several subcommands, and the
//! report of one factorization's sensitivity, MaxSE and MeanSE.

use crate::usage;
use anyhow::Result;
use clap::Args;
use lrmf_factor::{
    Factorization, Mechanism, MechanismSpec, Method, Objective, errors, lower_bound,
};
use lrmf_privacy::Participation;
use lrmf_schedule::{Kind, Schedule, Source};
use serde::Serialize;
use std::time::Instant;

/// The flags that describe a training workload, a factorization method and a participation schema.
#[derive(Debug, Clone, Args)]
pub struct StrategyArgs {
    /// Number of training steps n (≥ 1; required, or derived from --dataset-size/--batch-size/--epochs).
    #[arg(long, allow_negative_numbers = true, value_name = "STEPS")]
    pub n: Option<usize>,
    /// Learning-rate schedule χ_t, from 1 down to --lr-decay β: constant; exponential (β^((t−1)/(n−1))); polynomial (β + (1−β)((n/t)² − 1)/(n² − 1), power 2 as in the paper); linear; cosine; step (4 equal stages from 1 to β, geometric) or step:K (K ≥ 2 stages); file:PATH (one rate per line, `#` comments, normalised by the first).
    #[arg(long, default_value = "constant", value_name = "KIND")]
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
    /// Factorization method: identity, sqrt, lr-sqrt, bsr, lr-bsr, bisr, lr-bisr, dense-sqrt, bandmf, lr-bandmf, bandinv, lr-bandinv, blt, lr-blt, dense-opt, lr-dense-opt.
    #[arg(long, default_value = Method::Identity.name(), value_parser = parse_method)]
    pub method: Method,
    /// Band p of the banded methods (1 ≤ p ≤ n; with b-min-separation p ≤ min-sep keeps the cheap sensitivity). `compare` also takes `auto` (every power of two up to min-sep, or n) or a list such as 8,16,32, and reports each banded method at its best band.
    #[arg(long, allow_negative_numbers = true, value_name = "P")]
    pub band: Option<BandArg>,
    /// Minimum separation b between two participations of an example, in steps (≥ 1): the steps per epoch when every example is used once per epoch.
    #[arg(long = "min-sep", allow_negative_numbers = true, value_name = "STEPS")]
    pub min_sep: Option<usize>,
    /// Maximum participations k of an example (≥ 1, ≤ ⌈n/min-sep⌉; > 1 needs --min-sep).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub participations: usize,
    /// The same in the user's own terms (data-set size, batch size, epochs).
    #[command(flatten)]
    pub terms: UserTerms,
    /// A strategy C from a file instead of --method/--band: JSON written by `lrmf factorize --out` (or by hand: identity, toeplitz, inverse-toeplitz or dense C), or a float64 n × n `.npy`. Refused when its n, workload or participation differ from the other flags.
    #[arg(long, value_name = "FILE")]
    pub strategy: Option<std::path::PathBuf>,
    /// What the optimized methods (bandmf, bandinv and their lr- forms) minimize: mean-se or max-se.
    #[arg(long, default_value = "mean-se")]
    pub objective: String,
    /// Buffers d of the BLT methods (1..=10); chosen automatically when absent.
    #[arg(long, allow_negative_numbers = true)]
    pub buffers: Option<usize>,
}

/// A training run in the user's terms; `flags::apply_user_terms` turns them into `--n`,
/// `--min-sep` and `--participations` (or, for the Poisson accountants, the rate and steps).
#[derive(Debug, Clone, Default, Args)]
pub struct UserTerms {
    /// Training examples N. With --batch-size B and --epochs E: n = E·⌊N/B⌋ steps, min-sep ⌊N/B⌋ (= steps per epoch), E participations; for Poisson accountants q = B/N.
    #[arg(long = "dataset-size", allow_negative_numbers = true, value_name = "N")]
    pub dataset_size: Option<usize>,
    /// (Expected) batch size B (1 ≤ B ≤ N); see --dataset-size.
    #[arg(long = "batch-size", allow_negative_numbers = true, value_name = "B")]
    pub batch_size: Option<usize>,
    /// Epochs E (≥ 1) [default: 1]; see --dataset-size.
    #[arg(long, allow_negative_numbers = true, value_name = "E")]
    pub epochs: Option<usize>,
}

/// The value of `--band`: one band, or (for `compare`) `auto` or a comma-separated list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BandArg {
    /// One band p.
    One(usize),
    /// Every power of two from 1 to min-sep (n under single participation).
    Auto,
    /// These bands.
    List(Vec<usize>),
}

impl std::str::FromStr for BandArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let one = |t: &str| {
            t.trim().parse::<usize>().map_err(|_| {
                format!(
                    "'{t}' is not a band: give an integer p ≥ 1, a list such as 8,16,32, or auto"
                )
            })
        };
        match s {
            "auto" => Ok(Self::Auto),
            s if s.contains(',') => s
                .split(',')
                .map(one)
                .collect::<Result<_, _>>()
                .map(Self::List),
            s => one(s).map(Self::One),
        }
    }
}

/// The value parser of `--method`: a name of the method table (`Method`'s `FromStr`). Its
/// error lists the allowed names; clap prefixes it with the flag and exits with status 2.
fn parse_method(s: &str) -> Result<Method, String> {
    s.parse().map_err(|e| match e {
        lrmf_factor::FactorError::Invalid { message, .. } => message,
        e => e.to_string(),
    })
}

impl From<usize> for BandArg {
    fn from(p: usize) -> Self {
        Self::One(p)
    }
}

/// The validated problem behind [`StrategyArgs`]: schedule, workload, participation and the
/// method's parameters ([`lrmf_factor::Mechanism`]).
pub type Problem = Mechanism;

impl StrategyArgs {
    /// The mechanism of the flags with the identity for a method: schedule (reading the file of
    /// `file:PATH`), workload, participation, objective and buffers. What `compare` starts from
    /// (it ignores `--method`); [`StrategyArgs::spec`] adds `--method` and `--band`.
    fn base_spec(&self) -> Result<MechanismSpec> {
        let schedule = match Kind::parse_source(&self.schedule).map_err(usage)? {
            Source::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| usage(format!("invalid --schedule: cannot read '{path}': {e}")))?;
                Kind::parse_file_text(&text).map_err(usage)?
            }
            Source::Builtin(kind) => kind,
        };
        Ok(MechanismSpec {
            schedule,
            lr_decay: self.lr_decay,
            warmup: self.warmup,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            objective: self.objective()?,
            buffers: self.buffers,
            min_sep: self.min_sep,
            participations: self.participations,
            ..MechanismSpec::new(self.n()?)
        })
    }

    /// The typed mechanism spec of the flags: the one place the CLI turns flag text into
    /// values; every range is checked by [`MechanismSpec::validate`].
    pub fn spec(&self) -> Result<MechanismSpec> {
        let base = self.base_spec()?;
        Ok(MechanismSpec {
            method: self.method,
            band: self.band()?,
            ..base
        })
    }

    /// Validates the workload and participation (the method is the identity; `--method` is
    /// not read). Reads the schedule file of `file:PATH`.
    pub fn problem(&self) -> Result<Problem> {
        self.base_spec()?.validate().map_err(usage)
    }

    /// Validates everything, `--method` and its parameters included.
    pub fn mechanism(&self) -> Result<Mechanism> {
        self.spec()?.validate().map_err(usage)
    }

    /// `--n`, which must be given (its range is the mechanism's to check).
    pub fn n(&self) -> Result<usize> {
        self.n
            .ok_or_else(|| usage("missing --n: the number of steps (≥ 1) is required"))
    }

    /// The single band of `--band` (`auto` and lists are for `compare` only).
    pub fn band(&self) -> Result<Option<usize>> {
        match &self.band {
            None => Ok(None),
            Some(BandArg::One(p)) => Ok(Some(*p)),
            Some(_) => Err(usage(
                "invalid --band: `auto` and lists (8,16,32) are for `lrmf compare`; give one band p here",
            )),
        }
    }

    /// The bands `compare` tries for banded methods: `auto` → powers of two from 1 to min-sep
    /// (n under single participation), capped at n.
    pub fn bands_to_try(&self, n: usize) -> Vec<usize> {
        match &self.band {
            None => Vec::new(),
            Some(BandArg::One(p)) => vec![*p],
            Some(BandArg::List(v)) => v.clone(),
            Some(BandArg::Auto) => {
                let top = self
                    .min_sep
                    .filter(|_| self.participations > 1)
                    .unwrap_or(n)
                    .min(n);
                std::iter::successors(Some(1usize), |p| p.checked_mul(2))
                    .take_while(|p| *p <= top)
                    .collect()
            }
        }
    }

    /// The objective named by `--objective`.
    pub fn objective(&self) -> Result<Objective> {
        self.objective.parse().map_err(usage)
    }

    /// Validates and factorizes: the strategy C of `--method` for this workload.
    pub fn factorize(&self) -> Result<(Problem, Factorization)> {
        let m = self.mechanism()?;
        let f = self.factorization(&m)?;
        Ok((m, f))
    }

    /// The strategy of `--strategy FILE` when given, else the mechanism's factorization.
    fn factorization(&self, m: &Mechanism) -> Result<Factorization> {
        match &self.strategy {
            Some(path) => crate::strategy_file::load(path, self, m),
            None => m.factorize().map_err(usage),
        }
    }
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
    /// Rows of d-vectors of noise state the streaming generator keeps (identity 0, bsr p − 1,
    /// bisr p, sqrt and dense n).
    pub noise_state_rows: usize,
    /// Bytes of noise state per model parameter (f32): 4 × `noise_state_rows`.
    pub noise_state_bytes_per_param: usize,
    /// BLT buffers d (blt, lr-blt: given or chosen automatically).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffers: Option<usize>,
    /// Wall time of factorization and evaluation, in milliseconds.
    pub millis: f64,
    /// The objective an optimized method minimized (absent for closed forms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objective: Option<String>,
    /// Optimizer iterations (optimized methods only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
    /// Whether the optimizer's stopping rule was met (optimized methods only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converged: Option<bool>,
    /// Wall time of the optimization alone, in milliseconds (optimized methods only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimize_millis: Option<f64>,
    /// Caveats (e.g. increasing rates are outside the paper's theory).
    pub notes: Vec<String>,
}

/// Factorizes and evaluates `--method` for the given strategy flags.
pub fn evaluate(args: &StrategyArgs) -> Result<ErrorsReport> {
    Ok(evaluate_full(args)?.2)
}

/// [`evaluate`], also returning the problem and the factorization it evaluated (one
/// factorization and one sensitivity computation for callers that need C too).
pub fn evaluate_full(args: &StrategyArgs) -> Result<(Problem, Factorization, ErrorsReport)> {
    let m = args.mechanism()?;
    let (f, r) = evaluate_mechanism(args, &m)?;
    Ok((m, f, r))
}

fn evaluate_method(
    args: &StrategyArgs,
    problem: &Problem,
    method: Method,
    band: Option<usize>,
) -> Result<ErrorsReport> {
    let m = problem.with_method(method, band).map_err(usage)?;
    Ok(evaluate_mechanism(args, &m)?.1)
}

fn evaluate_mechanism(args: &StrategyArgs, m: &Mechanism) -> Result<(Factorization, ErrorsReport)> {
    let start = Instant::now();
    let (problem, spec) = (m, m.factor());
    let method = spec.method;
    let f = args.factorization(m)?;
    let e = errors(m.workload(), &f, m.participation()).map_err(usage)?;
    let millis = start.elapsed().as_secs_f64() * 1e3;
    let mut notes = Vec::new();
    if !problem.schedule().is_non_increasing() {
        notes.push(
            "the learning rate increases somewhere (e.g. warm-up): outside the paper's theory"
                .to_string(),
        );
    }
    if method.is_lr_aware()
        && !method.is_optimized()
        && problem.schedule().exact_geometric_rate().is_none()
    {
        notes.push(format!(
            "{method} uses the geometric surrogate α = β^(1/(n−1)) = {} of this schedule; B uses the true schedule",
            spec.alpha
        ));
    }
    let state_rows = lrmf_noise::state_rows(&f.c);
    let report = ErrorsReport {
        n: problem.n(),
        method: f.name.clone(),
        schedule: problem.schedule().kind().name(),
        lr_decay: problem.schedule().lr_decay(),
        warmup: args.warmup,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        band: f.band,
        min_sep: args.min_sep,
        participations: args.participations,
        alpha: spec.alpha,
        noise_state_rows: state_rows,
        noise_state_bytes_per_param: 4 * state_rows,
        sensitivity: e.sensitivity.value,
        sensitivity_kind: e.sensitivity.kind.as_str().to_string(),
        sensitivity_method: e.sensitivity.how.to_string(),
        max_se: e.max_se,
        mean_se: e.mean_se,
        lower_bound: None,
        buffers: f.buffers,
        millis,
        objective: f.info.as_ref().map(|i| i.objective.name().to_string()),
        iterations: f.info.as_ref().map(|i| i.iterations),
        converged: f.info.as_ref().map(|i| i.converged),
        optimize_millis: f.info.as_ref().map(|i| i.millis),
        notes,
    };
    Ok((f, report))
}

/// Largest n for which `compare` runs bandmf / lr-bandmf (O(n²·p) per optimizer iteration);
/// beyond it they are skipped (`lrmf errors --method bandmf` still runs them).
pub const COMPARE_MAX_BANDMF_N: usize = 2048;

/// The largest n at which `compare` runs the dense optimum (each iteration is O(n³)).
const COMPARE_DENSE_OPT_N: usize = 512;

/// The largest n at which `compare` optimizes BLTs (O(n·d²) per objective evaluation).
const COMPARE_BLT_N: usize = 4096;

/// Why `compare` leaves `method` out at `n` steps under `part`: beyond the size `compare` keeps
/// fast (tighter than [`Method::size_limit`] for the optimizers), or the dense optimum under
/// multiple participations.
fn compare_skip(method: Method, n: usize, part: Participation) -> Option<String> {
    let limit = match method {
        Method::Bandmf | Method::LrBandmf => Some(COMPARE_MAX_BANDMF_N),
        Method::Blt | Method::LrBlt => Some(COMPARE_BLT_N),
        Method::DenseOpt | Method::LrDenseOpt => Some(COMPARE_DENSE_OPT_N),
        m => m.size_limit().map(|(max, _)| max),
    };
    if let Some(max) = limit
        && n > max
    {
        let cost = method.size_limit().map_or("", |(_, cost)| cost);
        return Some(match method.size_limit() {
            Some((full, _)) if full > max => format!(
                "{method}: n > {max} in compare ({cost}; run `errors --method {method}` up to n = {full})"
            ),
            _ => format!("{method}: n > {max} ({cost})"),
        });
    }
    if matches!(method, Method::DenseOpt | Method::LrDenseOpt) && part.k() > 1 {
        return Some(format!(
            "{method}: single participation only (--participations 1)"
        ));
    }
    None
}

/// Every method side by side, best (lowest MaxSE) first. Methods that cannot run for these
/// flags (banded ones without `--band`, those `compare_skip` names, bandmf with a band wider
/// than the min-sep) are left out and named in the second return value. With several bands
/// (`--band auto` or a list) each banded method is reported at the band with the least MaxSE
/// among those tried (bands it cannot take are skipped).
pub fn compare(args: &StrategyArgs) -> Result<(Vec<ErrorsReport>, Vec<String>)> {
    let problem = args.problem()?;
    let lb = lower_bound(problem.workload()).ok();
    let (n, part) = (problem.n(), problem.participation());
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let bands = args.bands_to_try(n);
    if args.strategy.is_some() {
        let mut r = evaluate_method(args, &problem, Method::Identity, None)?;
        r.lower_bound = lb;
        r.method = format!("file:{}", r.method);
        out.push(r);
    }
    let args = &StrategyArgs {
        strategy: None,
        ..args.clone()
    };
    for method in Method::ALL {
        if let Some(why) = compare_skip(method, n, part) {
            skipped.push(why);
            continue;
        }
        let best = if method.is_banded() {
            if bands.is_empty() {
                skipped.push(format!("{method}: needs --band"));
                continue;
            }
            best_band(args, &problem, method, &bands, &mut skipped)?
        } else {
            Some(evaluate_method(args, &problem, method, None)?)
        };
        if let Some(mut r) = best {
            r.lower_bound = lb;
            out.push(r);
        }
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

/// The report of banded `method` at the band of least MaxSE among `bands` (bands it cannot
/// take are named in `skipped` when several are tried; with one band its error is returned).
fn best_band(
    args: &StrategyArgs,
    problem: &Problem,
    method: Method,
    bands: &[usize],
    skipped: &mut Vec<String>,
) -> Result<Option<ErrorsReport>> {
    let part = problem.participation();
    let bandmf = matches!(method, Method::Bandmf | Method::LrBandmf);
    let mut best: Option<ErrorsReport> = None;
    for &p in bands {
        if bandmf && part.k() > 1 && p > part.min_sep() {
            skipped.push(format!("{method} band {p}: needs --band ≤ --min-sep"));
            continue;
        }
        match evaluate_method(args, problem, method, Some(p)) {
            Ok(r) if best.as_ref().is_none_or(|b| r.max_se < b.max_se) => best = Some(r),
            Ok(_) => {}
            Err(e) if bands.len() > 1 => skipped.push(format!("{method} band {p}: {e}")),
            Err(e) => return Err(e),
        }
    }
    Ok(best)
}
