//! `lrmf calibrate` and `lrmf epsilon`: the privacy accountants of `lrmf-privacy` behind flags.
//!
//! The accountant, the sampler it assumes and the sensitivity it needs come together in one
//! [`AccountingPlan`], built here from the flags, so Poisson accounting cannot be paired with a
//! matrix-factorization strategy or balls-in-bins with DP-SGD's Poisson sampler by mistake.

use crate::strategy::{ErrorsReport, StrategyArgs};
use crate::usage;
use anyhow::Result;
use clap::Args;
use lrmf_factor::Method;
use lrmf_privacy::accounting::{AccountantKind, AccountingPlan, McOptions, PrivacyReport};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The `--accountant` values: [`AccountantKind`]'s table, each with its one-line help.
fn accountant_parser() -> impl clap::builder::TypedValueParser<Value = AccountantKind> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(
        AccountantKind::ALL.map(|k| PossibleValue::new(k.name()).help(k.description())),
    )
    .try_map(|name| name.parse::<AccountantKind>())
}

/// Flags shared by `calibrate` and `epsilon`.
#[derive(Debug, Clone, Args)]
pub struct AccountingArgs {
    /// Target δ ∈ (0, 1).
    #[arg(long, allow_negative_numbers = true)]
    pub delta: f64,
    /// The accountant.
    #[arg(long, value_parser = accountant_parser(), default_value = "gaussian")]
    pub accountant: AccountantKind,
    /// Poisson sampling rate q ∈ (0, 1] = expected batch size / data-set size (rdp-poisson, pld-poisson; Opacus' sample_rate).
    #[arg(long = "sampling-rate", allow_negative_numbers = true)]
    pub sampling_rate: Option<f64>,
    /// Number of steps; the same value as --n (give either).
    #[arg(long, allow_negative_numbers = true)]
    pub steps: Option<usize>,
    /// Monte Carlo samples per direction (mc-bnb) [default: 1000000]. More samples tighten the upper bound; time grows linearly.
    #[arg(long)]
    pub samples: Option<usize>,
    /// Confidence level of the Monte Carlo upper bound on ε (mc-bnb), in (0, 1) [default: 0.95].
    #[arg(long, allow_negative_numbers = true)]
    pub confidence: Option<f64>,
    /// Seed of the Monte Carlo sampler (mc-bnb). Default: fixed by the mechanism (C, bins, target, δ), so the same question always gets the same draw. Re-running with other seeds to pick the smallest ε voids the stated confidence.
    #[arg(long = "mc-seed")]
    pub mc_seed: Option<u64>,
    /// The strategy (for gaussian and mc-bnb; without --n the sensitivity is 1).
    #[command(flatten)]
    pub strategy: StrategyArgs,
}

/// What `calibrate --json` and `epsilon --json` print.
#[derive(Debug, Clone, Serialize)]
pub struct AccountingReport {
    /// Accountant name.
    pub accountant: String,
    /// The batch sampler the guarantee holds for.
    pub sampling: String,
    /// ε: the target (calibrate) or the ε spent (epsilon).
    pub epsilon: f64,
    /// For calibrate: the ε of the returned noise multiplier (≤ the target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon_achieved: Option<f64>,
    /// δ.
    pub delta: f64,
    /// Noise multiplier z (noise std per unit sensitivity and clip norm).
    pub noise_multiplier: f64,
    /// sens(C) of the strategy (1 without strategy flags).
    pub sensitivity: f64,
    /// How the sensitivity was obtained (`closed-form`, `exact`, `upper-bound`, or `unit`).
    pub sensitivity_kind: String,
    /// Noise std per unit clip norm, z·sens(C).
    pub noise_std: f64,
    /// The method of the strategy, when strategy flags are given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Steps n of the strategy, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// MaxSE of the strategy (per unit noise multiplier and clip norm), when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_se: Option<f64>,
    /// Every parameter and error of the strategy (the object `lrmf errors --json` prints), when
    /// strategy flags are given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<ErrorsReport>,
    /// How the numbers were rounded.
    pub rounding: String,
    /// Monte Carlo confidence level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Monte Carlo samples per direction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// Monte Carlo seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Wall time in milliseconds.
    pub millis: f64,
}

struct Plan {
    plan: AccountingPlan,
    sensitivity_kind: String,
    method: Option<String>,
    n: Option<usize>,
    max_se: Option<f64>,
    strategy: Option<ErrorsReport>,
    /// mc-bnb: samples drawn so far, and the samples of one ε evaluation.
    progress: Option<(Arc<AtomicU64>, usize)>,
}

impl Plan {
    fn unit(plan: AccountingPlan, method: Option<String>, n: Option<usize>) -> Self {
        Self {
            plan,
            sensitivity_kind: "unit".into(),
            method,
            n,
            max_se: None,
            strategy: None,
            progress: None,
        }
    }

    fn of(plan: AccountingPlan, r: ErrorsReport) -> Self {
        Self {
            plan,
            sensitivity_kind: r.sensitivity_kind.clone(),
            method: Some(r.method.clone()),
            n: Some(r.n),
            max_se: Some(r.max_se),
            strategy: Some(r),
            progress: None,
        }
    }
}

/// The strategy flags with `--steps` as the number of steps when `--n` is absent: `--n` and
/// `--steps` are one value (refused when both are given and differ).
fn strategy_args(a: &AccountingArgs) -> Result<StrategyArgs> {
    let mut s = a.strategy.clone();
    match (s.n, a.steps) {
        (Some(n), Some(steps)) if n != steps => {
            return Err(usage(format!(
                "invalid --steps: --n {n} and --steps {steps} are the same value (the number of steps); give one"
            )));
        }
        (None, Some(steps)) => s.n = Some(steps),
        _ => {}
    }
    Ok(s)
}

/// The accounting plan of the flags; `target` is the ε (calibrate) or z (epsilon) the command
/// fixes, which with C, the bins and δ seeds the Monte Carlo sampler unless `--mc-seed` is given.
fn build_plan(a: &AccountingArgs, target: f64) -> Result<Plan> {
    let reject_poisson_flags = |name: &str| -> Result<()> {
        if a.sampling_rate.is_some() {
            return Err(usage(format!(
                "invalid --sampling-rate: it describes Poisson-sampled DP-SGD; use --accountant rdp-poisson or pld-poisson, not {name}"
            )));
        }
        Ok(())
    };
    match a.accountant {
        AccountantKind::Gaussian => {
            reject_poisson_flags("gaussian")?;
            let s = strategy_args(a)?;
            if s.n.is_none() {
                return Ok(Plan::unit(
                    AccountingPlan::gaussian(1.0).map_err(usage)?,
                    None,
                    None,
                ));
            }
            let r = crate::strategy::evaluate(&s)?;
            Ok(Plan::of(
                AccountingPlan::gaussian(r.sensitivity).map_err(usage)?,
                r,
            ))
        }
        AccountantKind::RdpPoisson | AccountantKind::PldPoisson => poisson_plan(a),
        AccountantKind::McBnb => {
            reject_poisson_flags("mc-bnb")?;
            mc_bnb_plan(a, target)
        }
    }
}

/// DP-SGD with Poisson sampling: the identity only, the rate q and the steps.
fn poisson_plan(a: &AccountingArgs) -> Result<Plan> {
    let method = a.strategy.method;
    if method != Method::Identity {
        return Err(usage(format!(
            "invalid --method: Poisson accountants hold for DP-SGD (identity) only, not {method}; use --accountant gaussian or mc-bnb for a factorization"
        )));
    }
    let q = a.sampling_rate.ok_or_else(|| {
        usage("missing --sampling-rate: the Poisson rate q ∈ (0, 1] is required (batch size / data-set size)")
    })?;
    let steps = strategy_args(a)?.n.ok_or_else(|| {
        usage("missing --steps: the number of steps (≥ 1) is required (--n is the same value)")
    })?;
    let plan = if a.accountant == AccountantKind::RdpPoisson {
        AccountingPlan::rdp_poisson(q, steps)
    } else {
        AccountingPlan::pld_poisson(q, steps)
    }
    .map_err(usage)?;
    Ok(Plan::unit(plan, Some(method.name().into()), Some(steps)))
}

/// The Monte Carlo balls-in-bins accountant: b bins (= `--min-sep`), every example in
/// ⌈n/b⌉ steps; one factorization and one sensitivity (the errors report's participation is
/// b-min-separation with k = ⌈n/b⌉, exactly what balls-in-bins guarantees).
fn mc_bnb_plan(a: &AccountingArgs, target: f64) -> Result<Plan> {
    let s = strategy_args(a)?;
    if s.n.is_none() {
        return Err(usage(
            "missing --n: mc-bnb needs the strategy flags (--n, --method, --min-sep, --participations …)",
        ));
    }
    let n = s.n()?;
    let b = s.min_sep.ok_or_else(|| {
        usage("missing --min-sep: mc-bnb needs the number of bins b (= steps per epoch)")
    })?;
    let k = n.div_ceil(b);
    if s.participations != k {
        return Err(usage(format!(
            "invalid --participations: under balls-in-bins every example participates ⌈n/min-sep⌉ = {k} times; got {}",
            s.participations
        )));
    }
    let mut options = McOptions::default();
    if let Some(samples) = a.samples {
        options.samples = samples;
    }
    if let Some(c) = a.confidence {
        options.confidence = c;
    }
    let (_, f, r) = crate::strategy::evaluate_full(&s)?;
    options.seed = Some(
        a.mc_seed
            .unwrap_or_else(|| lrmf_privacy::accounting::mechanism_seed(&f.c, b, target, a.delta)),
    );
    let counter = Arc::new(AtomicU64::new(0));
    let plan =
        AccountingPlan::mc_bnb_with_progress(&f.c, b, r.sensitivity, options, counter.clone())
            .map_err(usage)?;
    Ok(Plan {
        progress: Some((counter, options.samples)),
        ..Plan::of(plan, r)
    })
}

fn report(
    p: Plan,
    r: PrivacyReport,
    epsilon: f64,
    achieved: Option<f64>,
    start: Instant,
) -> AccountingReport {
    AccountingReport {
        accountant: r.accountant,
        sampling: r.sampling,
        epsilon,
        epsilon_achieved: achieved,
        delta: r.delta,
        noise_multiplier: r.noise_multiplier,
        sensitivity: r.sensitivity,
        sensitivity_kind: p.sensitivity_kind,
        noise_std: r.noise_std,
        method: p.method,
        n: p.n,
        max_se: p.max_se,
        strategy: p.strategy,
        rounding: r.rounding,
        confidence: r.confidence,
        samples: r.samples,
        seed: r.seed,
        millis: start.elapsed().as_secs_f64() * 1e3,
    }
}

/// Runs `work`; for mc-bnb on a terminal, after a second shows on stderr the samples drawn,
/// the rate and the time left of the current ε evaluation (a calibration runs several).
fn with_progress<T>(p: &Plan, work: impl FnOnce() -> T) -> T {
    use std::io::{IsTerminal, Write};
    let Some((counter, per_eval)) = p.progress.clone() else {
        return work();
    };
    if !std::io::stderr().is_terminal() {
        return work();
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let shown = std::thread::spawn(move || {
        let start = Instant::now();
        let mut printed = false;
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(250));
            let secs = start.elapsed().as_secs_f64();
            if secs < 1.0 {
                continue;
            }
            let drawn = counter.load(Ordering::Relaxed);
            let rate = drawn as f64 / secs;
            let left = (per_eval as u64).saturating_sub(drawn % per_eval.max(1) as u64);
            eprint!(
                "\rmc-bnb: {drawn} samples drawn ({} /s); this ε evaluation: {} left   ",
                crate::fmt::sig_n(rate, 3),
                crate::fmt::duration(left as f64 / rate.max(1.0))
            );
            let _ = std::io::stderr().flush();
            printed = true;
        }
        if printed {
            eprint!("\r\x1b[K");
        }
    });
    let out = work();
    done.store(true, Ordering::Relaxed);
    let _ = shown.join();
    out
}

/// `lrmf calibrate`: the smallest noise multiplier z meeting (ε, δ).
pub fn calibrate(epsilon: f64, a: &AccountingArgs) -> Result<AccountingReport> {
    let start = Instant::now();
    lrmf_privacy::accounting::check_epsilon(epsilon).map_err(usage)?;
    lrmf_privacy::accounting::check_delta(a.delta).map_err(usage)?;
    let p = build_plan(a, epsilon)?;
    let r = with_progress(&p, || p.plan.calibrate(epsilon, a.delta)).map_err(usage)?;
    let achieved = r.epsilon;
    Ok(report(p, r, epsilon, Some(achieved), start))
}

/// `lrmf epsilon`: the ε spent at noise multiplier z.
pub fn epsilon(noise_multiplier: f64, a: &AccountingArgs) -> Result<AccountingReport> {
    let start = Instant::now();
    lrmf_privacy::accounting::check_noise_multiplier(noise_multiplier).map_err(usage)?;
    lrmf_privacy::accounting::check_delta(a.delta).map_err(usage)?;
    let p = build_plan(a, noise_multiplier)?;
    let r = with_progress(&p, || p.plan.epsilon(noise_multiplier, a.delta)).map_err(usage)?;
    let eps = r.epsilon;
    Ok(report(p, r, eps, None, start))
}
