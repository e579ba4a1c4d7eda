//! One evaluation = one CSV row, through the same function as `lrmf errors --json`
//! ([`lrmf_cli::evaluate`]) or the lower bound of `lrmf compare` ([`lrmf_factor::lower_bound`]),
//! and a parallel runner with a progress bar weighted by each job's expected cost.

use crate::table::{Table, f, opt};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use lrmf_cli::{ErrorsReport, StrategyArgs};
use lrmf_factor::Method;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// Method name of the nuclear-norm lower bound rows (`‖W‖_*/n`, bounds MeanSE and MaxSE).
pub const LOWER_BOUND: &str = "lower-bound";

/// The columns shared by the error CSVs.
pub const HEADER: [&str; 14] = [
    "schedule",
    "lr_decay",
    "n",
    "min_sep",
    "participations",
    "method",
    "band",
    "sensitivity",
    "sensitivity_kind",
    "max_se",
    "mean_se",
    "alpha",
    "millis",
    "buffers",
];

/// One configuration of experiments 1–3: a strategy's errors, or the lower bound of a
/// workload (the `lower-bound` curve, which is not a method).
#[derive(Debug, Clone)]
pub enum Job {
    /// `lrmf errors` on these flags.
    Strategy(StrategyArgs),
    /// ‖W‖_*/n of the workload of these flags (their method is not read).
    LowerBound(StrategyArgs),
}

impl Job {
    /// The flags.
    pub fn args(&self) -> &StrategyArgs {
        match self {
            Job::Strategy(a) | Job::LowerBound(a) => a,
        }
    }

    /// The curve's name in the CSVs: the method's, or [`LOWER_BOUND`].
    pub fn curve(&self) -> &'static str {
        match self {
            Job::Strategy(a) => a.method.name(),
            Job::LowerBound(_) => LOWER_BOUND,
        }
    }
}

/// The strategy flags of one configuration (single participation when `min_sep` is `None`).
pub fn args(
    schedule: &str,
    lr_decay: f64,
    n: usize,
    method: Method,
    band: Option<usize>,
    min_sep: Option<usize>,
    participations: usize,
) -> StrategyArgs {
    StrategyArgs {
        n: Some(n),
        schedule: schedule.to_string(),
        lr_decay,
        warmup: 0,
        momentum: 0.0,
        weight_decay: 1.0,
        method,
        band: band.map(Into::into),
        min_sep,
        participations,
        terms: Default::default(),
        strategy: None,
        objective: "mean-se".to_string(),
        buffers: None,
    }
}

/// The CSV row of one configuration: `lrmf_cli::evaluate(args)` (the values `lrmf errors
/// --json` prints) with that report, or for the lower bound `‖W‖_*/n` in both error columns
/// and no report.
pub fn evaluated(job: &Job) -> Result<(Vec<String>, Option<ErrorsReport>)> {
    let a = job.args();
    let lead = |method: &str, band: Option<usize>| {
        vec![
            a.schedule.clone(),
            f(a.lr_decay),
            opt(a.n),
            opt(a.min_sep),
            a.participations.to_string(),
            method.to_string(),
            opt(band),
        ]
    };
    if let Job::LowerBound(_) = job {
        let start = std::time::Instant::now();
        let problem = a.problem()?;
        let lb = lrmf_factor::lower_bound(problem.workload())?;
        let mut r = lead(LOWER_BOUND, None);
        r.extend([
            String::new(),
            String::new(),
            f(lb),
            f(lb),
            String::new(),
            f(start.elapsed().as_secs_f64() * 1e3),
            String::new(),
        ]);
        return Ok((r, None));
    }
    let e = lrmf_cli::evaluate(a).with_context(|| {
        format!(
            "{} n={:?} {} β={} band={:?} min-sep={:?} k={}",
            a.method, a.n, a.schedule, a.lr_decay, a.band, a.min_sep, a.participations
        )
    })?;
    let mut r = lead(&e.method, e.band);
    r.extend([
        f(e.sensitivity),
        e.sensitivity_kind.clone(),
        f(e.max_se),
        f(e.mean_se),
        f(e.alpha),
        f(e.millis),
        opt(e.buffers),
    ]);
    Ok((r, Some(e)))
}

/// Expected seconds of one configuration on a 2-core machine (measured at development time,
/// with other builds running): identity and banded O(n); sqrt/lr-sqrt O(n log n) for
/// exponential and constant schedules, O(n²) otherwise; dense-sqrt and the lower bound O(n³);
/// bandmf O(n²·p) per optimizer iteration (≈ 1 s at n = 512, p = 16; the lr- form also runs the
/// plain one); blt with automatic d ≈ 0.9·(n/1024)^1.15 s (1.2 s at n = 1024, 26 s at 2¹⁴),
/// with d fixed ≈ 0.2·d²·n/4096 s (it optimizes every d' ≤ d; 3 s at n = 4096, d = 4), lr-blt
/// twice that (it starts from blt); dense-opt O(n³) per iteration, ≈ 2.6·(n/512)³ s, the lr-
/// form 1.3× that.
pub fn cost_seconds(job: &Job) -> f64 {
    let a = job.args();
    let n = a.n.unwrap_or(1) as f64;
    let m = match job {
        // The lower bound: an SVD of W.
        Job::LowerBound(_) => return 1e-3 + 4.5 * (n / 2048.0).powi(3),
        Job::Strategy(a) => a.method,
    };
    let p = a.band().ok().flatten().unwrap_or(1) as f64;
    let geometric = matches!(a.schedule.as_str(), "exponential" | "constant");
    let lr = if m.is_lr_aware() { 2.0 } else { 1.0 };
    1e-3 + match m {
        Method::Sqrt | Method::LrSqrt if geometric => 1.2 * n / 1048576.0,
        Method::Sqrt | Method::LrSqrt => 2.0 * (n / 32768.0).powi(2),
        Method::DenseSqrt => 2.4 * (n / 2048.0).powi(3),
        Method::Bandmf | Method::LrBandmf => lr * (n / 512.0).powi(2) * p / 16.0,
        Method::Bandinv | Method::LrBandinv => 0.05 * n / 512.0,
        Method::Blt | Method::LrBlt => {
            lr * match a.buffers {
                Some(d) => 0.2 * (d * d) as f64 * n / 4096.0,
                None => 0.9 * (n / 1024.0).powf(1.15),
            }
        }
        Method::DenseOpt | Method::LrDenseOpt => {
            (if m.is_lr_aware() { 1.3 } else { 1.0 }) * 2.6 * (n / 512.0).powi(3)
        }
        Method::Identity | Method::Bsr | Method::LrBsr | Method::Bisr | Method::LrBisr => {
            1e-2 * n / 4096.0
        }
    }
}

/// Evaluates every configuration (in parallel over rayon's pool), with a progress bar whose
/// ETA is weighted by [`cost_seconds`]; the rows come back in the order of `jobs`, so the
/// result does not depend on the number of threads.
pub fn run_all(
    label: &str,
    jobs: &[Job],
    extra: impl Fn(&StrategyArgs, Option<&ErrorsReport>) -> Vec<String> + Sync,
    header: &[&str],
    stop: &AtomicBool,
) -> Result<Table> {
    let total: f64 = jobs.iter().map(cost_seconds).sum();
    let bar = ProgressBar::new((total * 1000.0).ceil() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {percent:>3}% ETA {eta}  {msg}",
        )
        .expect("valid template"),
    );
    bar.set_prefix(label.to_string());
    // Expensive jobs first, so the last job to finish is a cheap one.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&i, &j| cost_seconds(&jobs[j]).total_cmp(&cost_seconds(&jobs[i])));
    let done: Vec<(usize, Result<Vec<String>>)> = order
        .par_iter()
        .map(|&i| {
            let job = &jobs[i];
            if stop.load(Ordering::Relaxed) {
                return (i, Err(anyhow::anyhow!("interrupted")));
            }
            let r = evaluated(job).map(|(mut r, e)| {
                r.extend(extra(job.args(), e.as_ref()));
                r
            });
            bar.inc((cost_seconds(job) * 1000.0).round() as u64);
            bar.set_message(format!("{} n={}", job.curve(), job.args().n.unwrap_or(0)));
            (i, r)
        })
        .collect();
    bar.finish_with_message(format!("{} configurations", jobs.len()));
    let mut rows: Vec<Option<Vec<String>>> = vec![None; jobs.len()];
    for (i, r) in done {
        rows[i] = Some(r?);
    }
    let mut t = Table::new(header);
    for r in rows.into_iter().flatten() {
        t.push(r)?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CSV row must hold exactly (bit for bit) the numbers `lrmf errors --json` prints for
    /// the same flags: through the `lrmf` binary when it is built next to this test, and
    /// always through `lrmf_cli::evaluate`.
    fn check(a: &StrategyArgs) {
        let r = evaluated(&Job::Strategy(a.clone())).unwrap().0;
        let t = {
            let mut t = Table::new(&HEADER);
            t.push(r.clone()).unwrap();
            Table::parse(&t.to_csv()).unwrap()
        };
        let back = &t.rows[0];
        let e = lrmf_cli::evaluate(a).unwrap();
        for (col, v) in [
            ("max_se", e.max_se),
            ("mean_se", e.mean_se),
            ("sensitivity", e.sensitivity),
            ("alpha", e.alpha),
            ("lr_decay", e.lr_decay),
        ] {
            assert_eq!(t.num(back, col).unwrap().to_bits(), v.to_bits(), "{col}");
        }
        assert_eq!(t.get(back, "method").unwrap(), e.method);
        assert_eq!(t.get(back, "sensitivity_kind").unwrap(), e.sensitivity_kind);
        assert_eq!(t.opt_num(back, "band").unwrap(), e.band.map(|b| b as f64));
        assert_eq!(
            t.opt_num(back, "buffers").unwrap(),
            e.buffers.map(|d| d as f64)
        );
        // The binary, when present (target/release/lrmf next to target/release/deps/<test>).
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().unwrap().parent().unwrap().join("lrmf");
        if bin.is_file() {
            let mut cmd = std::process::Command::new(&bin);
            cmd.args([
                "errors",
                "--json",
                "--method",
                a.method.name(),
                "--schedule",
                &a.schedule,
            ]);
            cmd.args([
                "--n",
                &a.n.unwrap().to_string(),
                "--lr-decay",
                &f(a.lr_decay),
            ]);
            if let Some(p) = a.band().unwrap() {
                cmd.args(["--band", &p.to_string()]);
            }
            if let Some(b) = a.min_sep {
                cmd.args(["--min-sep", &b.to_string()]);
            }
            cmd.args(["--participations", &a.participations.to_string()]);
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            for col in ["max_se", "mean_se", "sensitivity"] {
                let v = j[col].as_f64().unwrap();
                assert_eq!(
                    t.num(back, col).unwrap().to_bits(),
                    v.to_bits(),
                    "binary {col}"
                );
            }
        }
    }

    #[test]
    fn csv_rows_equal_lrmf_errors_json() {
        check(&args(
            "exponential",
            0.1,
            1024,
            Method::LrSqrt,
            None,
            None,
            1,
        ));
        check(&args("cosine", 0.01, 512, Method::Sqrt, None, None, 1));
        check(&args(
            "exponential",
            0.1,
            1024,
            Method::LrBisr,
            Some(32),
            Some(256),
            4,
        ));
        check(&args("linear", 0.5, 256, Method::DenseSqrt, None, None, 1));
        check(&args(
            "polynomial",
            0.1,
            300,
            Method::Identity,
            None,
            None,
            1,
        ));
        check(&args("cosine", 0.1, 256, Method::LrBlt, None, None, 1));
        check(&args(
            "exponential",
            0.1,
            128,
            Method::LrDenseOpt,
            None,
            None,
            1,
        ));
    }

    #[test]
    fn lower_bound_row_is_the_compare_bound_and_errors_are_named() {
        let a = args("exponential", 0.1, 128, Method::Identity, None, None, 1);
        let r = evaluated(&Job::LowerBound(a)).unwrap().0;
        let (rows, _) = lrmf_cli::compare(&args(
            "exponential",
            0.1,
            128,
            Method::Identity,
            None,
            None,
            1,
        ))
        .unwrap();
        let lb = rows[0].lower_bound.unwrap();
        assert_eq!(r[9].parse::<f64>().unwrap().to_bits(), lb.to_bits());
        // Every method's MeanSE is at least the bound.
        assert!(rows.iter().all(|e| e.mean_se >= lb * (1.0 - 1e-12)));
        let bad = args("exponential", 0.1, 128, Method::LrBsr, Some(0), None, 1);
        let err = evaluated(&Job::Strategy(bad)).unwrap_err();
        assert!(format!("{err:#}").contains("band"));
    }
}
