//! The outputs of the full accuracy study, generated from its result files only: the per-run
//! table `accuracy_full.csv`, the learning-rate grid `lr_grid.csv`, the accuracy curves, the
//! mean ± std and paired-comparison tables, the accuracy-vs-epoch plots, and the report section
//! with its "What we found" paragraph — every number traceable to a CSV row.

use crate::plot::{Panel, Series, Style};
use crate::run::{RunDir, write_atomic};
use crate::stats::{TInterval, mean, std_dev, t_interval};
use crate::study::{self, CONSTANT, Data, Job, Settings};
use crate::study_run::State;
use crate::table::{Table, f, opt};
use anyhow::Result;
use lrmf_factor::Method;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The study's settings in the run folder.
pub const SETTINGS_FILE: &str = "accuracy_study.json";
/// How many runs are planned and finished.
pub const STATUS_FILE: &str = "accuracy_status.json";
/// One row per final run.
pub const FULL_CSV: &str = "accuracy_full.csv";
/// One row per grid run.
pub const GRID_CSV: &str = "lr_grid.csv";
/// Test accuracy after each epoch of each final run.
pub const CURVES_CSV: &str = "accuracy_curves.csv";
/// Mean ± std per (data set, method, accountant, schedule).
pub const SUMMARY_CSV: &str = "accuracy_summary.csv";
/// Paired comparisons with their 95 % t-intervals.
pub const PAIRED_CSV: &str = "accuracy_paired.csv";
/// Every CSV file of the study, in the order the report names them.
pub const CSV_FILES: [&str; 6] = [
    FULL_CSV,
    GRID_CSV,
    SUMMARY_CSV,
    PAIRED_CSV,
    CURVES_CSV,
    crate::study_errors::ERRORS_CSV,
];

/// Columns of `accuracy_full.csv` (accuracies as fractions).
pub const FULL_HEADER: [&str; 17] = [
    "dataset",
    "method",
    "accountant",
    "schedule",
    "seed",
    "epochs",
    "test_accuracy",
    "lr",
    "band",
    "train_examples",
    "test_examples",
    "steps_per_epoch",
    "noise_multiplier",
    "epsilon",
    "sensitivity",
    "wall_s",
    "status",
];
/// Columns of `lr_grid.csv`.
pub const GRID_HEADER: [&str; 12] = [
    "dataset",
    "method",
    "accountant",
    "schedule",
    "lr",
    "validation_accuracy",
    "epochs",
    "train_examples",
    "validation_examples",
    "chosen",
    "wall_s",
    "status",
];
/// Columns of `accuracy_curves.csv`.
pub const CURVES_HEADER: [&str; 7] = [
    "dataset",
    "method",
    "accountant",
    "schedule",
    "seed",
    "epoch",
    "test_accuracy",
];
/// Columns of `accuracy_summary.csv`: `epochs` of the runs (the largest, should they differ)
/// and the mean training wall time per run in seconds.
pub const SUMMARY_HEADER: [&str; 9] = [
    "dataset",
    "method",
    "accountant",
    "schedule",
    "runs",
    "mean",
    "std",
    "epochs",
    "wall_s_mean",
];
/// Columns of `accuracy_paired.csv`: `comparison` is `lr-aware` (an lr- method vs its plain
/// form, same schedule) or `schedule` (a decaying schedule vs the constant rate, same method);
/// differences are `method − baseline` in accuracy (fraction).
pub const PAIRED_HEADER: [&str; 12] = [
    "dataset",
    "accountant",
    "comparison",
    "method",
    "baseline",
    "schedule",
    "baseline_schedule",
    "pairs",
    "mean_diff",
    "std_diff",
    "ci95_low",
    "ci95_high",
];

/// Planned and finished runs (`accuracy_status.json`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// Runs of the whole plan.
    pub planned: usize,
    /// Runs with a result.
    pub finished: usize,
    /// Grid runs of the plan.
    pub grid_planned: usize,
    /// Grid runs with a result.
    pub grid_finished: usize,
}

/// Writes every CSV file, the plots and the status from the results of `all` (the whole
/// plan); returns the per-run table.
pub fn write_outputs(rd: &RunDir, s: &Settings, all: &[Job], st: &State) -> Result<Table> {
    let mut full = Table::new(&FULL_HEADER);
    let mut grid = Table::new(&GRID_HEADER);
    let mut curves = Table::new(&CURVES_HEADER);
    for job in all {
        let Some(r) = st.results.get(&job.name()) else {
            continue;
        };
        let id = [&r.dataset, &r.method, &r.accountant, &r.schedule].map(|x| x.to_string());
        if r.grid {
            let chosen = st.grid(job, s).and_then(|g| study::choose(&g)) == Some(r.lr);
            let rest = [
                f(r.lr),
                opt(r.validation_accuracy.map(f)),
                r.epochs.to_string(),
                r.num_train.to_string(),
                opt(r.num_validation),
                chosen.to_string(),
                f(r.wall_s),
                r.status.clone(),
            ];
            grid.push(id.into_iter().chain(rest).collect())?;
            continue;
        }
        let rest = [
            r.seed.to_string(),
            r.epochs.to_string(),
            opt(r.test_accuracy.map(f)),
            f(r.lr),
            opt(r.band),
            r.num_train.to_string(),
            r.num_test.to_string(),
            r.steps_per_epoch.to_string(),
            opt(r.noise_multiplier.map(f)),
            opt(r.epsilon.map(f)),
            opt(r.sensitivity.map(f)),
            f(r.wall_s),
            r.status.clone(),
        ];
        full.push(id.iter().cloned().chain(rest).collect())?;
        for &(e, a) in &r.curve {
            let row = [r.seed.to_string(), e.to_string(), f(a)];
            curves.push(id.iter().cloned().chain(row).collect())?;
        }
    }
    let status = Status {
        planned: all.len(),
        finished: all.iter().filter(|j| st.is_done(j)).count(),
        grid_planned: all.iter().filter(|j| j.is_grid()).count(),
        grid_finished: grid.rows.len(),
    };
    write_atomic(
        &rd.file(SETTINGS_FILE),
        serde_json::to_string_pretty(s)?.as_bytes(),
    )?;
    write_atomic(
        &rd.file(STATUS_FILE),
        serde_json::to_string_pretty(&status)?.as_bytes(),
    )?;
    for (name, t) in [
        (FULL_CSV, &full),
        (GRID_CSV, &grid),
        (CURVES_CSV, &curves),
        (SUMMARY_CSV, &summarize(&full)?),
        (PAIRED_CSV, &paired(&full)?),
    ] {
        write_atomic(&rd.file(name), t.to_csv().as_bytes())?;
    }
    plot_curves(rd, &curves)?;
    Ok(full)
}

/// The accuracies of `t` grouped by (dataset, method, accountant, schedule), in first-seen
/// order, each with its (seed, accuracy) pairs.
/// Per (data set, method, accountant, schedule): (seed, test accuracy, row index) of its runs.
type Groups = Vec<([String; 4], Vec<(String, f64, usize)>)>;

fn groups(t: &Table) -> Result<Groups> {
    let mut out: Groups = Vec::new();
    for (i, r) in t.rows.iter().enumerate() {
        let key = ["dataset", "method", "accountant", "schedule"]
            .map(|c| t.get(r, c).unwrap_or_default().to_string());
        let Some(acc) = t.opt_num(r, "test_accuracy")? else {
            continue;
        };
        let seed = t.get(r, "seed")?.to_string();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push((seed, acc, i)),
            None => out.push((key, vec![(seed, acc, i)])),
        }
    }
    Ok(out)
}

/// Mean and sample standard deviation of the test accuracy over seeds, per (data set, method,
/// accountant, schedule), with the runs' epochs and mean wall time.
pub fn summarize(full: &Table) -> Result<Table> {
    let mut t = Table::new(&SUMMARY_HEADER);
    for (key, v) in groups(full)? {
        let acc: Vec<f64> = v.iter().map(|x| x.1).collect();
        let (mut epochs, mut wall) = (None::<f64>, Vec::new());
        for &(_, _, i) in &v {
            let r = &full.rows[i];
            if let Some(e) = full.opt_num(r, "epochs")? {
                epochs = Some(epochs.map_or(e, |x| x.max(e)));
            }
            wall.extend(full.opt_num(r, "wall_s")?);
        }
        let row = [
            acc.len().to_string(),
            opt(mean(&acc).map(f)),
            opt(std_dev(&acc).map(f)),
            opt(epochs.map(f)),
            opt(mean(&wall).map(f)),
        ];
        t.push(key.into_iter().chain(row).collect())?;
    }
    Ok(t)
}

/// "after 10 epochs (16 min of training per run)" for a summary row; empty without epochs.
fn effort(summary: &Table, r: &[String]) -> Result<String> {
    let Some(e) = summary.opt_num(r, "epochs")? else {
        return Ok(String::new());
    };
    let wall = summary.opt_num(r, "wall_s_mean")?;
    Ok(match wall {
        Some(w) if w >= 90.0 => format!(
            " after {e} epochs ({:.0} min of training per run)",
            w / 60.0
        ),
        Some(w) => format!(" after {e} epochs ({w:.0} s of training per run)"),
        None => format!(" after {e} epochs"),
    })
}

/// Whether a method name is a baseline of the constant-schedule comparison.
fn baseline_name(name: &str) -> bool {
    study::is_baseline(name.parse::<Method>().ok())
}

/// The paired comparisons: each lr- method vs its plain form (same data set, accountant,
/// schedule, seed — hence the same bins and noise key), and each baseline method under a
/// decaying schedule vs the constant rate; mean difference with a 95 % Student's t-interval.
pub fn paired(full: &Table) -> Result<Table> {
    let g = groups(full)?;
    let mut t = Table::new(&PAIRED_HEADER);
    for (k, v) in &g {
        let (ds, m, acct, sch) = (&k[0], &k[1], &k[2], &k[3]);
        let lr_plain = m
            .parse::<Method>()
            .ok()
            .filter(|x| x.is_lr_aware())
            .map(|x| x.plain().name().to_string());
        let mut against = Vec::new();
        if let Some(p) = lr_plain {
            against.push(("lr-aware", [ds.clone(), p, acct.clone(), sch.clone()]));
        }
        if sch != CONSTANT.0 && baseline_name(m) {
            let base = [ds.clone(), m.clone(), acct.clone(), CONSTANT.0.to_string()];
            against.push(("schedule", base));
        }
        for (kind, base) in against {
            let Some((_, b)) = g.iter().find(|(bk, _)| *bk == base) else {
                continue;
            };
            let diffs: Vec<f64> = v
                .iter()
                .filter_map(|(seed, a, _)| b.iter().find(|x| &x.0 == seed).map(|x| a - x.1))
                .collect();
            if diffs.is_empty() {
                continue;
            }
            let ci = t_interval(&diffs, 0.95);
            let row = [
                ds.clone(),
                acct.clone(),
                kind.to_string(),
                m.clone(),
                base[1].clone(),
                sch.clone(),
                base[3].clone(),
                diffs.len().to_string(),
                opt(mean(&diffs).map(f)),
                opt(std_dev(&diffs).map(f)),
                opt(ci.map(|c| f(c.low))),
                opt(ci.map(|c| f(c.high))),
            ];
            t.push(row.into())?;
        }
    }
    Ok(t)
}

/// The plot file stem of a data set's accuracy-vs-epoch figure.
pub fn plot_stem(dataset: &str) -> String {
    format!("accuracy_full_{dataset}")
}

/// The accuracies of one method's runs: per (schedule, accountant), per epoch, over seeds.
type Lines = BTreeMap<(String, String), BTreeMap<usize, Vec<f64>>>;

/// One figure per data set: a panel per method, a line per (schedule, accountant), the mean
/// test accuracy over seeds after each epoch.
fn plot_curves(rd: &RunDir, curves: &Table) -> Result<Vec<PathBuf>> {
    let mut by: BTreeMap<(String, String), Lines> = BTreeMap::new();
    for r in &curves.rows {
        let g = |c: &str| curves.get(r, c).unwrap_or_default().to_string();
        let epoch = curves.num(r, "epoch")? as usize;
        by.entry((g("dataset"), g("method")))
            .or_default()
            .entry((g("schedule"), g("accountant")))
            .or_default()
            .entry(epoch)
            .or_default()
            .push(curves.num(r, "test_accuracy")?);
    }
    let mut files = Vec::new();
    for d in [Data::Imdb, Data::Cifar10] {
        let mut panels = Vec::new();
        for m in std::iter::once(None).chain(study::study_methods().into_iter().map(Some)) {
            let key = (d.name().to_string(), study::method_name(m).to_string());
            let Some(lines) = by.get(&key) else { continue };
            let series = lines
                .iter()
                .map(|((sch, acct), pts)| Series {
                    label: format!("{sch}, {acct}"),
                    points: pts
                        .iter()
                        .map(|(e, v)| (*e as f64, mean(v).unwrap_or(f64::NAN)))
                        .collect(),
                    style: if sch == CONSTANT.0 {
                        Style::Dashed
                    } else {
                        Style::Line
                    },
                    color: curve_color(sch, acct),
                })
                .collect();
            panels.push(Panel {
                title: key.1.clone(),
                x_label: "epoch".into(),
                y_label: "test accuracy (%)".into(),
                series,
                legend_right: true,
            });
        }
        if !panels.is_empty() {
            let title = format!("{}: test accuracy vs epoch (mean over seeds)", d.name());
            files.extend(crate::curves::save_linear(
                &rd.file(&plot_stem(d.name())),
                &title,
                &panels,
                4,
            )?);
        }
    }
    Ok(files)
}

/// The colour (an index into plotters' `Palette99`) of a (schedule, accountant) curve, the same
/// in every panel so that one legend reads for all: blue, green and red (dashed) for exponential,
/// cosine and constant without amplification (or without noise), orange and purple for
/// exponential and cosine under mc-bnb.
fn curve_color(schedule: &str, accountant: &str) -> usize {
    match (schedule, accountant == "mc-bnb") {
        ("exponential", false) => 3,
        ("cosine", false) => 1,
        ("exponential", true) => 4,
        ("cosine", true) => 5,
        ("constant", false) => 0,
        _ => 6,
    }
}

/// A fraction as a percentage with 2 decimals.
fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

/// A difference in percentage points with its interval.
fn pp(c: &TInterval) -> String {
    format!(
        "{:+.2} pp [{:+.2}, {:+.2}]",
        100.0 * c.mean,
        100.0 * c.low,
        100.0 * c.high
    )
}

/// One paired comparison of the paired table: its label, the mean difference and, from two
/// pairs on, its interval.
struct Pair {
    label: String,
    mean: f64,
    ci: Option<TInterval>,
}

/// The paired table's rows of one data set and comparison kind.
fn intervals(p: &Table, ds: &str, kind: &str) -> Result<Vec<Pair>> {
    let mut out = Vec::new();
    for r in p.rows.iter().filter(|r| r[0] == ds && r[2] == kind) {
        let label = if kind == "lr-aware" {
            format!("{} vs {} ({}, {})", r[3], r[4], r[5], r[1])
        } else {
            format!("{} {} vs constant ({})", r[3], r[5], r[1])
        };
        let mean = p.num(r, "mean_diff")?;
        let ci = match (p.opt_num(r, "ci95_low")?, p.opt_num(r, "ci95_high")?) {
            (Some(low), Some(high)) => Some(TInterval {
                n: p.num(r, "pairs")? as usize,
                mean,
                sd: p.opt_num(r, "std_diff")?.unwrap_or(0.0),
                low,
                high,
            }),
            _ => None,
        };
        out.push(Pair { label, mean, ci });
    }
    Ok(out)
}

/// One sentence on a family of paired comparisons: how many intervals lie above 0, below 0,
/// or contain it, naming the ones that do not contain 0; then the comparisons with a single
/// pair so far, by the sign of their difference (a direction, not evidence).
fn verdict(what: &str, better: &str, xs: &[Pair]) -> String {
    if xs.is_empty() {
        return format!("{what}: no paired runs yet.");
    }
    let with: Vec<(&str, TInterval)> = xs
        .iter()
        .filter_map(|x| x.ci.map(|c| (x.label.as_str(), c)))
        .collect();
    let list = |want: Option<bool>| -> Vec<String> {
        with.iter()
            .filter(|(_, c)| c.sign() == want)
            .map(|(l, c)| format!("{l}: {}", pp(c)))
            .collect()
    };
    let mut s = String::new();
    if !with.is_empty() {
        let (up, down, zero) = (list(Some(true)), list(Some(false)), list(None));
        write!(
            s,
            "{what} (paired, 95 % t-interval of the difference): {better} in {} of {} comparisons",
            up.len(),
            with.len()
        )
        .ok();
        if !up.is_empty() {
            write!(s, " ({})", up.join("; ")).ok();
        }
        write!(s, ", worse in {}", down.len()).ok();
        if !down.is_empty() {
            write!(s, " ({})", down.join("; ")).ok();
        }
        write!(
            s,
            "; in {} the interval includes 0 (no detectable difference with these seeds)",
            zero.len()
        )
        .ok();
    }
    let single: Vec<f64> = xs
        .iter()
        .filter(|x| x.ci.is_none())
        .map(|x| x.mean)
        .collect();
    if !single.is_empty() {
        let count = |f: fn(f64) -> bool| single.iter().filter(|&&d| f(d)).count();
        let (lo, hi) = single
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &d| {
                (a.min(d), b.max(d))
            });
        let n = single.len();
        let range = if n == 1 {
            format!("difference {:+.2} pp", 100.0 * lo)
        } else {
            format!("differences {:+.2} to {:+.2} pp", 100.0 * lo, 100.0 * hi)
        };
        write!(
            s,
            "{}{n} comparison{} with one seed so far (no interval yet): {better} in {}, worse in {}, equal in {}, {range}",
            if with.is_empty() {
                format!("{what}: ")
            } else {
                "; ".into()
            },
            if n == 1 { "" } else { "s" },
            count(|d| d > 0.0),
            count(|d| d < 0.0),
            count(|d| d == 0.0),
        )
        .ok();
    }
    s.push('.');
    s
}

/// The "What we found" paragraph, from the summary and paired tables.
pub fn findings(summary: &Table, paired_t: &Table, errors: Option<&Table>) -> Result<String> {
    let mut s = String::new();
    let mut with_interval = 0;
    for d in [Data::Imdb, Data::Cifar10] {
        let rows: Vec<&Vec<String>> = summary.rows.iter().filter(|r| r[0] == d.name()).collect();
        if rows.is_empty() {
            continue;
        }
        write!(s, "**{}.** ", d.name())?;
        for acct in ["gaussian", "mc-bnb"] {
            let best = rows
                .iter()
                .filter(|r| r[2] == acct)
                .filter_map(|r| Some((summary.opt_num(r, "mean").ok()??, r)))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((m, r)) = best {
                let sd = summary
                    .opt_num(r, "std")?
                    .map_or(String::new(), |x| format!(" ± {}", pct(x)));
                let runs = &r[4];
                write!(
                    s,
                    "Best private method with the {acct} accountant: {} ({}) {}{sd} % over {runs} seed{}{}, {} the {} % target. ",
                    r[1],
                    r[3],
                    pct(m),
                    if runs == "1" { "" } else { "s" },
                    effort(summary, r)?,
                    if m >= d.target() { "meeting" } else { "below" },
                    pct(d.target())
                )?;
            }
        }
        let lr = intervals(paired_t, d.name(), "lr-aware")?;
        let sch = intervals(paired_t, d.name(), "schedule")?;
        if let Some(e) = errors.map(|t| crate::study_errors::finding(t, d.name())) {
            write!(s, "{} ", e?.unwrap_or_default())?;
        }
        with_interval += lr.iter().chain(&sch).filter(|x| x.ci.is_some()).count();
        writeln!(
            s,
            "{}",
            verdict(
                "Schedule-aware (lr-) factorization vs its plain form",
                "better",
                &lr
            )
        )?;
        writeln!(
            s,
            "{}",
            verdict("A decaying schedule vs the constant rate", "better", &sch)
        )?;
        writeln!(s)?;
    }
    if s.is_empty() {
        return Ok("No final run has finished yet.\n".into());
    }
    s.push_str("The paper claims that a learning-rate schedule helps private training and that schedule-aware factorizations help further; a comparison whose interval lies below 0 disagrees with that claim here, and one whose interval includes 0 neither confirms nor refutes it at this number of seeds.");
    if with_interval > 0 {
        write!(
            s,
            " The intervals are not corrected for multiplicity: of these {with_interval}, about {:.1} would exclude 0 by chance alone if no method differed from its baseline.",
            with_interval as f64 * 0.05
        )?;
    }
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A per-run table of (method, schedule, seed, accuracy) rows on IMDB, Gaussian accountant.
    fn check(rows: &[(&str, &str, u64, f64)]) -> Table {
        let mut t = Table::new(&FULL_HEADER);
        for &(m, sch, seed, acc) in rows {
            let acct = if m == "non-private" {
                "none"
            } else {
                "gaussian"
            };
            let mut r: Vec<String> = FULL_HEADER.iter().map(|_| String::new()).collect();
            for (c, v) in [
                ("dataset", "imdb".to_string()),
                ("method", m.into()),
                ("accountant", acct.into()),
                ("schedule", sch.into()),
                ("seed", seed.to_string()),
                ("test_accuracy", f(acc)),
                ("epochs", "20".into()),
                ("wall_s", (30 + 2 * seed).to_string()),
            ] {
                r[t.col(c).unwrap()] = v;
            }
            t.push(r).unwrap();
        }
        t
    }

    #[test]
    fn csv_columns_are_the_issues() {
        for c in [
            "dataset",
            "method",
            "accountant",
            "schedule",
            "seed",
            "epochs",
            "test_accuracy",
        ] {
            assert!(FULL_HEADER.contains(&c), "{c}");
        }
        for c in [
            "dataset",
            "method",
            "accountant",
            "schedule",
            "lr",
            "validation_accuracy",
        ] {
            assert!(GRID_HEADER.contains(&c), "{c}");
        }
    }

    #[test]
    fn summary_paired_comparisons_and_findings() {
        let full = check(&[
            ("bisr", "exponential", 0, 0.80),
            ("bisr", "exponential", 1, 0.82),
            ("bisr", "exponential", 2, 0.81),
            ("lr-bisr", "exponential", 0, 0.81),
            ("lr-bisr", "exponential", 1, 0.84),
            ("lr-bisr", "exponential", 2, 0.83),
            // Seed 3 has no plain partner: left out of the pairs.
            ("lr-bisr", "exponential", 3, 0.90),
            ("bisr", "constant", 0, 0.70),
            ("bisr", "constant", 1, 0.71),
            ("bisr", "constant", 2, 0.72),
            // One seed so far: a direction without an interval.
            ("bsr", "exponential", 0, 0.80),
            ("lr-bsr", "exponential", 0, 0.79),
        ]);
        let sm = summarize(&full).unwrap();
        let row = sm
            .rows
            .iter()
            .find(|r| r[1] == "bisr" && r[3] == "exponential")
            .unwrap();
        assert_eq!(sm.num(row, "runs").unwrap(), 3.0);
        assert!((sm.num(row, "mean").unwrap() - 0.81).abs() < 1e-12);
        assert!((sm.num(row, "std").unwrap() - 0.01).abs() < 1e-12);
        let p = paired(&full).unwrap();
        let lr = p
            .rows
            .iter()
            .find(|r| r[2] == "lr-aware" && r[3] == "lr-bisr")
            .unwrap();
        // Differences 0.01, 0.02, 0.02: mean 0.016667, sd 0.0057735, t_{0.975,2} = 4.302653.
        assert_eq!(
            (lr[3].as_str(), lr[4].as_str(), p.num(lr, "pairs").unwrap()),
            ("lr-bisr", "bisr", 3.0)
        );
        let half = 4.302653 * 0.0057735 / 3f64.sqrt();
        assert!((p.num(lr, "ci95_low").unwrap() - (0.016667 - half)).abs() < 1e-5);
        assert!((p.num(lr, "ci95_high").unwrap() - (0.016667 + half)).abs() < 1e-5);
        let sch = p.rows.iter().find(|r| r[2] == "schedule").unwrap();
        assert_eq!(
            (sch[3].as_str(), sch[5].as_str(), sch[6].as_str()),
            ("bisr", "exponential", "constant")
        );
        assert!((p.num(sch, "mean_diff").unwrap() - 0.10).abs() < 1e-12);
        let text = findings(&sm, &p, None).unwrap();
        assert!(text.contains("lr-bisr (exponential) 84.50"), "{text}");
        // Seeds 0..3 ran 30, 32, 34, 36 s: mean 33 s.
        assert!(
            text.contains("over 4 seeds after 20 epochs (33 s of training per run)"),
            "{text}"
        );
        assert_eq!(
            (
                sm.num(row, "epochs").unwrap(),
                sm.num(row, "wall_s_mean").unwrap()
            ),
            (20.0, 32.0)
        );
        assert!(
            text.contains(
                "better in 1 of 1 comparisons (lr-bisr vs bisr (exponential, gaussian): +1.67 pp"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "; 1 comparison with one seed so far (no interval yet): better in 0, worse in 1, equal in 0, difference -1.00 pp."
            ),
            "{text}"
        );
        assert!(text.contains("meeting the 83.00 % target"), "{text}");
        // Two intervals (lr-aware, schedule): 0.1 expected to exclude 0 by chance.
        assert!(
            text.contains("of these 2, about 0.1 would exclude 0"),
            "{text}"
        );
    }
}
