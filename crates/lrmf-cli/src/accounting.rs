//! `lrmf calibrate` and `lrmf epsilon`: the privacy accountants of `lrmf-privacy` behind flags.
//!
//! The accountant, the sampler it assumes and the sensitivity it needs come together in one
//! [`AccountingPlan`], built here from the flags, so Poisson accounting cannot be paired with a
//! matrix-factorization strategy or balls-in-bins with DP-SGD's Poisson sampler by mistake.

use crate::strategy::StrategyArgs;
use crate::usage;
use anyhow::Result;
use clap::{Args, ValueEnum};
use lrmf_factor::{Factorization, errors};
use lrmf_privacy::Participation;
use lrmf_privacy::accounting::{AccountingPlan, McOptions, PrivacyReport};
use lrmf_privacy::sensitivity::sensitivity;
use serde::Serialize;
use std::time::Instant;

/// The accountants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccountantName {
    /// Analytic Gaussian mechanism, no amplification (any sampling with b-min-separation).
    Gaussian,
    /// DP-SGD with Poisson sampling, Rényi DP.
    RdpPoisson,
    /// DP-SGD with Poisson sampling, privacy-loss distribution (tight).
    PldPoisson,
    /// Matrix factorization under balls-in-bins batching, Monte Carlo (upper confidence bound).
    McBnb,
}

/// Flags shared by `calibrate` and `epsilon`.
#[derive(Debug, Clone, Args)]
pub struct AccountingArgs {
    /// Target δ ∈ (0, 1).
    #[arg(long, allow_negative_numbers = true)]
    pub delta: f64,
    /// The accountant.
    #[arg(long, value_enum, default_value = "gaussian")]
    pub accountant: AccountantName,
    /// Poisson sampling rate q ∈ (0, 1] (rdp-poisson, pld-poisson).
    #[arg(long = "sampling-rate", allow_negative_numbers = true)]
    pub sampling_rate: Option<f64>,
    /// Number of DP-SGD steps (rdp-poisson, pld-poisson).
    #[arg(long, allow_negative_numbers = true)]
    pub steps: Option<usize>,
    /// Monte Carlo samples per direction (mc-bnb).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Confidence level of the Monte Carlo upper bound (mc-bnb), in (0, 1).
    #[arg(long, allow_negative_numbers = true)]
    pub confidence: Option<f64>,
    /// Seed of the Monte Carlo sampler (mc-bnb; default: from the OS).
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
}

fn strategy_given(a: &AccountingArgs) -> bool {
    a.strategy.n.is_some()
}

fn factorized(a: &AccountingArgs) -> Result<(crate::strategy::Problem, Factorization)> {
    a.strategy.factorize()
}

fn build_plan(a: &AccountingArgs) -> Result<Plan> {
    let reject_poisson_flags = |name: &str| -> Result<()> {
        if a.sampling_rate.is_some() || a.steps.is_some() {
            return Err(usage(format!(
                "invalid --sampling-rate/--steps: they describe Poisson-sampled DP-SGD; use --accountant rdp-poisson or pld-poisson, not {name}"
            )));
        }
        Ok(())
    };
    match a.accountant {
        AccountantName::Gaussian => {
            reject_poisson_flags("gaussian")?;
            if !strategy_given(a) {
                return Ok(Plan {
                    plan: AccountingPlan::gaussian(1.0).map_err(usage)?,
                    sensitivity_kind: "unit".into(),
                    method: None,
                    n: None,
                    max_se: None,
                });
            }
            let (problem, f) = factorized(a)?;
            let e = errors(&problem.workload, &f, problem.participation).map_err(usage)?;
            Ok(Plan {
                plan: AccountingPlan::gaussian(e.sensitivity.value).map_err(usage)?,
                sensitivity_kind: e.sensitivity.kind.as_str().into(),
                method: Some(f.name.clone()),
                n: Some(problem.workload.n()),
                max_se: Some(e.max_se),
            })
        }
        AccountantName::RdpPoisson | AccountantName::PldPoisson => {
            if strategy_given(a) && a.strategy.method != "identity" {
                return Err(usage(
                    "invalid --method: Poisson accountants hold for DP-SGD (identity) only; use --accountant gaussian or mc-bnb for a factorization",
                ));
            }
            let q = a.sampling_rate.ok_or_else(|| {
                usage("missing --sampling-rate: the Poisson rate q ∈ (0, 1] is required")
            })?;
            let steps = a
                .steps
                .ok_or_else(|| usage("missing --steps: the number of steps (≥ 1) is required"))?;
            let plan = if a.accountant == AccountantName::RdpPoisson {
                AccountingPlan::rdp_poisson(q, steps)
            } else {
                AccountingPlan::pld_poisson(q, steps)
            }
            .map_err(usage)?;
            Ok(Plan {
                plan,
                sensitivity_kind: "unit".into(),
                method: Some("identity".into()),
                n: Some(steps),
                max_se: None,
            })
        }
        AccountantName::McBnb => {
            reject_poisson_flags("mc-bnb")?;
            if !strategy_given(a) {
                return Err(usage(
                    "missing --n: mc-bnb needs the strategy flags (--n, --method, --min-sep, --participations …)",
                ));
            }
            let (problem, f) = factorized(a)?;
            let n = problem.workload.n();
            let b = a.strategy.min_sep.ok_or_else(|| {
                usage("missing --min-sep: mc-bnb needs the number of bins b (= steps per epoch)")
            })?;
            let k = n.div_ceil(b);
            if a.strategy.participations != k {
                return Err(usage(format!(
                    "invalid --participations: under balls-in-bins every example participates ⌈n/min-sep⌉ = {k} times; got {}",
                    a.strategy.participations
                )));
            }
            let sens = sensitivity(&f.c, Participation::new(n, Some(b), k).map_err(usage)?)
                .map_err(usage)?;
            let mut options = McOptions::default();
            if let Some(s) = a.samples {
                options.samples = s;
            }
            if let Some(c) = a.confidence {
                options.confidence = c;
            }
            options.seed = a.mc_seed;
            let e = errors(&problem.workload, &f, problem.participation).map_err(usage)?;
            Ok(Plan {
                plan: AccountingPlan::mc_bnb(&f.c, b, sens.value, options).map_err(usage)?,
                sensitivity_kind: sens.kind.as_str().into(),
                method: Some(f.name.clone()),
                n: Some(n),
                max_se: Some(e.max_se),
            })
        }
    }
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
        rounding: r.rounding,
        confidence: r.confidence,
        samples: r.samples,
        seed: r.seed,
        millis: start.elapsed().as_secs_f64() * 1e3,
    }
}

/// `lrmf calibrate`: the smallest noise multiplier z meeting (ε, δ).
pub fn calibrate(epsilon: f64, a: &AccountingArgs) -> Result<AccountingReport> {
    let start = Instant::now();
    lrmf_privacy::accounting::check_epsilon(epsilon).map_err(usage)?;
    lrmf_privacy::accounting::check_delta(a.delta).map_err(usage)?;
    let p = build_plan(a)?;
    let r = p.plan.calibrate(epsilon, a.delta).map_err(usage)?;
    let achieved = r.epsilon;
    Ok(report(p, r, epsilon, Some(achieved), start))
}

/// `lrmf epsilon`: the ε spent at noise multiplier z.
pub fn epsilon(noise_multiplier: f64, a: &AccountingArgs) -> Result<AccountingReport> {
    let start = Instant::now();
    lrmf_privacy::accounting::check_noise_multiplier(noise_multiplier).map_err(usage)?;
    lrmf_privacy::accounting::check_delta(a.delta).map_err(usage)?;
    let p = build_plan(a)?;
    let r = p.plan.epsilon(noise_multiplier, a.delta).map_err(usage)?;
    let eps = r.epsilon;
    Ok(report(p, r, eps, None, start))
}
