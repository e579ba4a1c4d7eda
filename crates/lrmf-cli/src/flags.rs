//! Which flags the user actually typed, and what follows from that: flags that cannot matter in
//! the command's configuration are warned about (stderr) or, when they contradict another flag,
//! refused (exit 2); the user's own terms (data-set size, batch size, epochs) are turned into
//! the low-level ones (`--n`, `--min-sep`, `--participations`, or the Poisson rate and steps).

use crate::accounting::AccountingArgs;
use crate::strategy::{BandArg, StrategyArgs};
use crate::usage;
use anyhow::Result;
use clap::ArgMatches;
use clap::parser::ValueSource;
use lrmf_privacy::accounting::AccountantKind;
use std::collections::BTreeSet;

/// The argument ids given on the command line (not defaults).
#[derive(Debug, Clone, Default)]
pub struct Given(BTreeSet<String>);

impl Given {
    /// The ids of `m` whose value came from the command line.
    pub fn from_matches(m: &ArgMatches) -> Self {
        Self(
            m.ids()
                .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                .map(|id| id.as_str().to_string())
                .collect(),
        )
    }

    /// Whether the argument with this id (the field name, e.g. `min_sep`) was typed.
    pub fn has(&self, id: &str) -> bool {
        self.0.contains(id)
    }

    /// A set from ids (tests and library callers).
    pub fn of(ids: &[&str]) -> Self {
        Self(ids.iter().map(|s| s.to_string()).collect())
    }
}

/// The flag spelling of an argument id (`min_sep` → `--min-sep`).
fn flag(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// Prints one warning line on stderr.
pub fn warn(text: &str) {
    eprintln!("warning: {text}");
}

/// Fills `--n`, `--min-sep` and `--participations` from `--dataset-size N --batch-size B
/// --epochs E` (b = ⌊N/B⌋ steps per epoch, n = E·b, min-sep b, E participations: every example
/// at most once per epoch, e.g. balls-in-bins with the bin fixed across epochs). A low-level
/// flag that disagrees is refused. Returns the line that says what was derived.
pub fn apply_user_terms(s: &mut StrategyArgs, given: &Given) -> Result<Option<String>> {
    let t = s.terms.clone();
    if t.dataset_size.is_none() && t.batch_size.is_none() && t.epochs.is_none() {
        return Ok(None);
    }
    let big_n = t.dataset_size.ok_or_else(|| {
        usage(
            "missing --dataset-size: --batch-size/--epochs need the number of training examples N",
        )
    })?;
    let batch = t.batch_size.ok_or_else(|| {
        usage("missing --batch-size: --dataset-size/--epochs need the (expected) batch size B")
    })?;
    let epochs = t.epochs.unwrap_or(1);
    if big_n == 0 {
        return Err(usage("invalid --dataset-size: must be ≥ 1"));
    }
    if batch == 0 || batch > big_n {
        return Err(usage(format!(
            "invalid --batch-size: {batch} is outside 1..=N = {big_n}"
        )));
    }
    if epochs == 0 {
        return Err(usage("invalid --epochs: must be ≥ 1"));
    }
    let b = big_n / batch;
    let n = epochs
        .checked_mul(b)
        .ok_or_else(|| usage(format!("invalid --epochs: {epochs} × {b} steps overflows")))?;
    let derived = [
        ("n", s.n, n),
        ("min_sep", s.min_sep, b),
        ("participations", Some(s.participations), epochs),
    ];
    for (id, have, want) in derived {
        if given.has(id) && have != Some(want) {
            return Err(usage(format!(
                "invalid {}: {} disagrees with --dataset-size {big_n} --batch-size {batch} --epochs {epochs}, which give {} {want}; give one or the other",
                flag(id),
                have.map_or("none".into(), |v| v.to_string()),
                flag(id)
            )));
        }
    }
    s.n = Some(n);
    s.min_sep = Some(b);
    s.participations = epochs;
    Ok(Some(format!(
        "derived from --dataset-size {big_n} --batch-size {batch} --epochs {epochs}: --n {n} --min-sep {b} --participations {epochs} \
         (b = ⌊N/B⌋ = {b} steps per epoch; every example at most once per epoch, e.g. balls-in-bins with bins fixed across epochs)"
    )))
}

/// `--strategy FILE` replaces `--method` and `--band` (except on `compare`, where the file is
/// one more row): giving both is a contradiction.
pub fn check_strategy_file(s: &StrategyArgs, given: &Given, compare: bool) -> Result<()> {
    if s.strategy.is_some() && !compare {
        for id in ["method", "band"] {
            if given.has(id) {
                return Err(usage(format!(
                    "invalid {}: --strategy FILE gives the strategy; omit {}",
                    flag(id),
                    flag(id)
                )));
            }
        }
    }
    Ok(())
}

/// Warnings for strategy flags that have no effect with the chosen method; `compare` evaluates
/// every method, so `--method` has no effect there.
pub fn check_strategy(s: &StrategyArgs, given: &Given, compare: bool) -> Vec<String> {
    let mut out = Vec::new();
    if compare && given.has("method") {
        out.push("--method has no effect on compare, which evaluates every method".into());
    }
    if !compare && given.has("band") && !s.method.is_banded() {
        out.push(format!(
            "--band has no effect with --method {} (not a banded method)",
            s.method
        ));
    }
    if given.has("lr_decay") && s.schedule == "constant" {
        out.push("--lr-decay has no effect with --schedule constant".into());
    }
    if given.has("min_sep") && s.participations == 1 {
        out.push(
            "--min-sep has no effect with a single participation (add --participations k > 1)"
                .into(),
        );
    }
    out
}

/// Strategy flags that describe a factorization's workload (not the number of steps).
const STRATEGY_IDS: [&str; 9] = [
    "method",
    "band",
    "schedule",
    "lr_decay",
    "warmup",
    "momentum",
    "weight_decay",
    "min_sep",
    "participations",
];

/// Checks of `calibrate` / `epsilon`: refusals for contradictions, warnings for flags the
/// accountant does not read. Also derives the Poisson rate and steps from the user's terms.
pub fn check_accounting(a: &mut AccountingArgs, given: &Given) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let poisson = a.accountant.is_poisson();
    let name = a.accountant.name();
    let t = a.strategy.terms.clone();
    if poisson {
        if let (Some(big_n), Some(batch)) = (t.dataset_size, t.batch_size) {
            // DP-SGD with Poisson sampling of expected batch B: q = B/N, E·⌊N/B⌋ steps.
            let q = batch as f64 / big_n as f64;
            if given.has("sampling_rate") && a.sampling_rate != Some(q) {
                return Err(usage(format!(
                    "invalid --sampling-rate: {} disagrees with --batch-size {batch} / --dataset-size {big_n} = {q}; give one or the other",
                    a.sampling_rate.unwrap_or(f64::NAN)
                )));
            }
            a.sampling_rate = Some(q);
        }
        for id in STRATEGY_IDS {
            if given.has(id) && id != "method" {
                out.push(format!(
                    "{} has no effect with --accountant {name} (Poisson-sampled DP-SGD: only --sampling-rate and --steps/--n matter)",
                    flag(id)
                ));
            }
        }
    } else {
        // `--sampling-rate` with these accountants is refused by the plan builder itself
        // (`accounting::build_plan`), which library callers go through too.
        let has_n = a.strategy.n.is_some() || a.steps.is_some();
        if let Some(id) = STRATEGY_IDS.iter().find(|id| given.has(id))
            && !has_n
        {
            return Err(usage(format!(
                "missing --n: {} describes a strategy, which needs the number of steps --n (or --dataset-size/--batch-size/--epochs); without them the sensitivity is 1 (C = I, one participation)",
                flag(id)
            )));
        }
        out.extend(check_strategy(&a.strategy, given, false));
    }
    if a.accountant != AccountantKind::McBnb {
        for id in ["samples", "confidence", "mc_seed"] {
            if given.has(id) {
                out.push(format!(
                    "{} has no effect with --accountant {name} (it is a Monte Carlo option of mc-bnb)",
                    flag(id)
                ));
            }
        }
    }
    Ok(out)
}

/// Refuses `--band auto` / lists outside `compare`.
pub fn check_single_band(s: &StrategyArgs) -> Result<()> {
    match s.band {
        Some(BandArg::Auto) | Some(BandArg::List(_)) => s.band().map(|_| ()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        s: StrategyArgs,
    }

    fn check(args: &[&str]) -> (StrategyArgs, Given) {
        let m = <Cli as clap::CommandFactory>::command()
            .try_get_matches_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap();
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        (cli.s, Given::from_matches(&m))
    }

    #[test]
    fn user_terms_derive_the_low_level_flags() {
        let (mut s, g) = check(&[
            "--dataset-size",
            "50000",
            "--batch-size",
            "500",
            "--epochs",
            "5",
        ]);
        assert!(g.has("dataset_size") && !g.has("n") && !g.has("participations"));
        let line = apply_user_terms(&mut s, &g).unwrap().unwrap();
        assert_eq!(
            (s.n, s.min_sep, s.participations),
            (Some(500), Some(100), 5)
        );
        assert!(line.contains("--n 500 --min-sep 100 --participations 5"));
        // Agreeing low-level flags are fine, disagreeing ones refused, naming the flag.
        let (mut s, g) = check(&[
            "--dataset-size",
            "50000",
            "--batch-size",
            "500",
            "--epochs",
            "5",
            "--n",
            "500",
        ]);
        assert!(apply_user_terms(&mut s, &g).is_ok());
        let (mut s, g) = check(&[
            "--dataset-size",
            "50000",
            "--batch-size",
            "500",
            "--epochs",
            "5",
            "--participations",
            "4",
        ]);
        let e = apply_user_terms(&mut s, &g).unwrap_err().to_string();
        assert!(e.starts_with("invalid --participations"), "{e}");
        let (mut s, g) = check(&["--batch-size", "500"]);
        let e = apply_user_terms(&mut s, &g).unwrap_err().to_string();
        assert!(e.starts_with("missing --dataset-size"), "{e}");
        let (mut s, g) = check(&["--dataset-size", "10", "--batch-size", "11"]);
        assert!(apply_user_terms(&mut s, &g).is_err());
        let (mut s, g) = check(&["--n", "10"]);
        assert_eq!(apply_user_terms(&mut s, &g).unwrap(), None);
    }

    #[test]
    fn unused_flags_are_warned_about() {
        let (s, g) = check(&["--n", "10", "--band", "4"]);
        let w = check_strategy(&s, &g, false);
        assert!(
            w[0].starts_with("--band has no effect with --method identity"),
            "{w:?}"
        );
        let (s, g) = check(&["--n", "10", "--method", "bisr", "--band", "4"]);
        assert!(check_strategy(&s, &g, false).is_empty());
        assert_eq!(check_strategy(&s, &g, true).len(), 1);
        let (s, g) = check(&["--n", "10", "--lr-decay", "0.1"]);
        assert_eq!(check_strategy(&s, &g, false).len(), 1);
    }
}
