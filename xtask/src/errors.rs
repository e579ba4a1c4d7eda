//! Experiments 1–2 of the error study: single-epoch error vs n and multi-epoch error vs band
//! (experiment 3, memory vs error, is [`crate::memory`]). Each builds its configurations from
//! [`Method`]'s predicates, evaluates them through [`crate::eval`] (the `lrmf errors` code path),
//! and turns the finished CSV into plots and a report section; the row parsing here serves all
//! three.

use crate::eval::{self, Job, LOWER_BOUND, args};
use crate::plot::{self, Panel, Series, Style, color_of};
use crate::table::Table;
use anyhow::Result;
use lrmf_factor::{MAX_BLT_N, MAX_DENSE_OPT_N, Method};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The name DP-SGD (C = I) has in the result rows.
const DP_SGD: &str = Method::Identity.name();

/// Schedules of experiment 1.
pub const SCHEDULES: [&str; 4] = ["exponential", "cosine", "linear", "polynomial"];
/// Final-over-initial learning rates β of experiment 1.
pub const DECAYS: [f64; 3] = [0.5, 0.1, 0.01];
/// Steps per epoch b of experiments 2–3.
pub const MIN_SEPS: [usize; 2] = [64, 256];
/// β of experiment 2: 0.1 (schedule matters) and 1.0 (constant rate: lr- methods must equal
/// their schedule-blind versions).
pub const BAND_DECAYS: [f64; 2] = [0.1, 1.0];

/// True for blt and lr-blt (d buffers: constant memory without a band).
pub fn is_blt(m: Method) -> bool {
    m.plain() == Method::Blt
}

/// Methods of experiment 1: every method without a band (identity, sqrt, lr-sqrt, dense-sqrt,
/// blt, lr-blt, dense-opt, lr-dense-opt), in [`Method::ALL`]'s order.
pub fn single_epoch_methods() -> Vec<Method> {
    Method::ALL.into_iter().filter(|m| !m.is_banded()).collect()
}

/// Methods of experiment 2 besides DP-SGD: every banded method (closed forms and optimized, w/o
/// and w/ LRS) and BLT (w/o and w/ LRS, d chosen automatically).
pub fn band_study_methods() -> Vec<Method> {
    Method::ALL
        .into_iter()
        .filter(|&m| m.is_banded() || is_blt(m))
        .collect()
}

/// Size limits of one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// Largest n of experiment 1 (2²⁰).
    pub max_n: usize,
    /// Largest n of sqrt / lr-sqrt for schedules other than exponential (O(n²) path).
    pub max_n_quadratic: usize,
    /// Largest n of dense-sqrt and the lower bound (O(n³)).
    pub max_n_cubic: usize,
    /// Epochs k of experiments 2–3.
    pub epochs: &'static [usize],
    /// Largest n of the optimized banded methods in experiment 2 (bandmf is O(n²·p) per
    /// optimizer iteration).
    pub max_n_optimized: usize,
    /// Largest n of blt / lr-blt in experiment 1 (O(n·d²) per objective evaluation, a few
    /// hundred evaluations per d).
    pub max_n_blt: usize,
    /// Largest n of dense-opt / lr-dense-opt in experiment 1 (O(n³) per iteration).
    pub max_n_dense_opt: usize,
    /// Experiment 3: BLT with d = 1 … `max_buffers`.
    pub max_buffers: usize,
    /// Experiment 3: n of the single-participation setting (where dense-opt runs).
    pub memory_single_n: usize,
    /// Experiment 3: largest n of bandmf / lr-bandmf.
    pub max_n_memory_bandmf: usize,
}

impl Scale {
    /// The quick mode (`cargo xtask repro`): minutes on 2 cores.
    pub const QUICK: Scale = Scale {
        max_n: 1 << 20,
        max_n_quadratic: 1 << 15,
        max_n_cubic: 1 << 11,
        epochs: &[4, 16],
        max_n_optimized: 1024,
        max_n_blt: 1 << 10,
        max_n_dense_opt: 512,
        max_buffers: 4,
        memory_single_n: 256,
        max_n_memory_bandmf: 256,
    };
    /// The full mode (`--full`).
    pub const FULL: Scale = Scale {
        max_n: 1 << 20,
        max_n_quadratic: 1 << 18,
        max_n_cubic: lrmf_factor::MAX_DENSE_N,
        epochs: &[4, 16, 64],
        max_n_optimized: 4096,
        max_n_blt: 1 << 14,
        max_n_dense_opt: MAX_DENSE_OPT_N,
        max_buffers: 8,
        memory_single_n: 1024,
        max_n_memory_bandmf: 1024,
    };

    /// Largest n of `m` in experiment 1 on `schedule` (0: not run).
    pub fn single_epoch_max_n(&self, m: Method, schedule: &str) -> usize {
        match m {
            Method::Sqrt | Method::LrSqrt if schedule != "exponential" => self.max_n_quadratic,
            Method::DenseSqrt => self.max_n_cubic,
            Method::Blt | Method::LrBlt => self.max_n_blt.min(MAX_BLT_N),
            Method::DenseOpt | Method::LrDenseOpt => self.max_n_dense_opt.min(MAX_DENSE_OPT_N),
            m if m.is_banded() => 0,
            _ => self.max_n,
        }
    }
}

/// Configurations of experiment 1: n = 2⁶ … 2²⁰ for every schedule and β; each method of
/// [`single_epoch_methods`] up to [`Scale::single_epoch_max_n`] (identity always, sqrt/lr-sqrt
/// up to the quadratic cap except for the exponential schedule, dense-sqrt up to the cubic cap,
/// BLT and the dense optimum up to theirs), the lower bound up to the cubic cap.
pub fn single_epoch_jobs(s: Scale) -> Vec<Job> {
    let mut jobs = Vec::new();
    for sched in SCHEDULES {
        for beta in DECAYS {
            let mut n = 64;
            while n <= s.max_n {
                for m in single_epoch_methods() {
                    if n <= s.single_epoch_max_n(m, sched) {
                        jobs.push(Job::Strategy(args(sched, beta, n, m, None, None, 1)));
                    }
                }
                if n <= s.max_n_cubic {
                    let a = args(sched, beta, n, Method::Identity, None, None, 1);
                    jobs.push(Job::LowerBound(a));
                }
                n *= 2;
            }
        }
    }
    jobs
}

/// Bands p = b/8, b/4, …, up to min(8b, n).
pub fn bands(b: usize, n: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut p = (b / 8).max(1);
    while p <= (8 * b).min(n) {
        v.push(p);
        p *= 2;
    }
    v
}

/// The bands at which `m` runs in experiment 2 for `k·b = n` steps (`[None]`: once, without a
/// band): the closed-form banded methods at every band of [`bands`]; bandinv and bandmf for
/// n ≤ [`Scale::max_n_optimized`], bandmf only at p ≤ b (column-normalized banded C has its
/// exact sensitivity only there); BLT once (d automatic) for n ≤ [`MAX_BLT_N`].
pub fn band_study_bands(s: Scale, m: Method, b: usize, n: usize) -> Vec<Option<usize>> {
    match m {
        Method::Blt | Method::LrBlt if n <= MAX_BLT_N => vec![None],
        m if !m.is_banded() => vec![],
        m if m.is_optimized() && n > s.max_n_optimized => vec![],
        Method::Bandmf | Method::LrBandmf => bands(b, n)
            .into_iter()
            .filter(|&p| p <= b)
            .map(Some)
            .collect(),
        _ => bands(b, n).into_iter().map(Some).collect(),
    }
}

/// Configurations of experiment 2 (exponential schedule, n = k·b, k participations at
/// min-separation b): DP-SGD and each method of [`band_study_methods`] at its bands
/// ([`band_study_bands`]), for β ∈ {0.1, 1}.
pub fn band_jobs(s: Scale) -> Vec<Job> {
    let mut jobs = Vec::new();
    for &k in s.epochs {
        for b in MIN_SEPS {
            for beta in BAND_DECAYS {
                let n = k * b;
                let dp_sgd = args("exponential", beta, n, Method::Identity, None, Some(b), k);
                jobs.push(Job::Strategy(dp_sgd));
                for m in band_study_methods() {
                    for p in band_study_bands(s, m, b, n) {
                        let a = args("exponential", beta, n, m, p, Some(b), k);
                        jobs.push(Job::Strategy(a));
                    }
                }
            }
        }
    }
    jobs
}

/// Four significant digits for the report.
pub fn sig(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = 4 - 1 - x.abs().log10().floor() as i32;
    if digits <= 0 {
        format!("{x:.0}")
    } else {
        format!("{x:.*}", digits as usize)
    }
}

/// n as a power of two (`2^k`) when it is one.
pub(crate) fn pow2(n: usize) -> String {
    if n.is_power_of_two() {
        format!("2^{}", n.trailing_zeros())
    } else {
        n.to_string()
    }
}

/// Parsed error row (experiments 1–3).
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub schedule: String,
    pub beta: f64,
    pub n: usize,
    pub min_sep: Option<usize>,
    pub k: usize,
    pub method: String,
    pub band: Option<usize>,
    pub max_se: f64,
    pub mean_se: f64,
    /// Bytes of noise state per parameter (experiment 3 only).
    pub bytes: Option<f64>,
    /// BLT buffers d (absent in CSVs written before the column existed).
    pub buffers: Option<usize>,
}

impl Row {
    /// MaxSE or MeanSE.
    pub fn metric(&self, m: Metric) -> f64 {
        match m {
            Metric::MaxSe => self.max_se,
            Metric::MeanSe => self.mean_se,
        }
    }

    /// The method's size parameter for tables: `p` of banded methods, `d = …` of BLT, — else.
    pub fn size(&self) -> String {
        match (self.band, self.buffers) {
            (Some(p), _) => p.to_string(),
            (None, Some(d)) => format!("d = {d}"),
            (None, None) => "—".into(),
        }
    }
}

/// The two error measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `sens(C)·max_t ‖B[t, :]‖₂`.
    MaxSe,
    /// `sens(C)·‖B‖_F/√n`.
    MeanSe,
}

impl Metric {
    /// Both, MaxSE first.
    pub const BOTH: [Metric; 2] = [Metric::MaxSe, Metric::MeanSe];

    /// `MaxSE` or `MeanSE`.
    pub fn name(&self) -> &'static str {
        match self {
            Metric::MaxSe => "MaxSE",
            Metric::MeanSe => "MeanSE",
        }
    }
}

pub(crate) fn rows(t: &Table) -> Result<Vec<Row>> {
    let has = |c: &str| t.col(c).is_ok();
    let (has_bytes, has_buffers) = (has("bytes_per_param"), has("buffers"));
    t.rows
        .iter()
        .map(|r| {
            Ok(Row {
                schedule: t.get(r, "schedule")?.to_string(),
                beta: t.num(r, "lr_decay")?,
                n: t.num(r, "n")? as usize,
                min_sep: t.opt_num(r, "min_sep")?.map(|v| v as usize),
                k: t.num(r, "participations")? as usize,
                method: t.get(r, "method")?.to_string(),
                band: t.opt_num(r, "band")?.map(|v| v as usize),
                max_se: t.num(r, "max_se")?,
                mean_se: t.num(r, "mean_se")?,
                bytes: if has_bytes {
                    Some(t.num(r, "bytes_per_param")?)
                } else {
                    None
                },
                buffers: if has_buffers {
                    t.opt_num(r, "buffers")?.map(|v| v as usize)
                } else {
                    None
                },
            })
        })
        .collect()
}

/// The curves of experiment 1: [`single_epoch_methods`] and the lower bound.
fn single_curves() -> Vec<&'static str> {
    let mut v: Vec<&str> = single_epoch_methods().iter().map(|m| m.name()).collect();
    v.push(LOWER_BOUND);
    v
}

pub(crate) fn label(m: &str) -> String {
    match m {
        DP_SGD => "identity (DP-SGD)".into(),
        LOWER_BOUND => "lower bound ‖W‖*/n".into(),
        _ => m.to_string(),
    }
}

/// Plots of experiment 1: one figure per schedule, MaxSE (top) and MeanSE (bottom) vs n for
/// each β; the legend is in the first panel.
pub fn plot_single_epoch(t: &Table, dir: &Path) -> Result<Vec<PathBuf>> {
    let rs = rows(t)?;
    let mut files = Vec::new();
    for sched in SCHEDULES {
        let mut panels = Vec::new();
        for metric in Metric::BOTH {
            for beta in DECAYS {
                let first = panels.is_empty();
                let series = single_curves()
                    .into_iter()
                    .map(|m| Series {
                        label: if first { label(m) } else { String::new() },
                        points: rs
                            .iter()
                            .filter(|r| r.schedule == sched && r.beta == beta && r.method == m)
                            .map(|r| (r.n as f64, r.metric(metric)))
                            .collect(),
                        style: if m == LOWER_BOUND {
                            Style::Dashed
                        } else {
                            Style::Line
                        },
                        color: color_of(m),
                    })
                    .collect();
                panels.push(Panel {
                    title: format!("{}, {sched}, β = {beta}", metric.name()),
                    x_label: "steps n (log)".into(),
                    y_label: format!("{} (log)", metric.name()),
                    series,
                    legend_right: false,
                });
            }
        }
        files.extend(plot::save(
            &dir.join(format!("single_epoch_{sched}")),
            &format!("Single epoch: error vs n, {sched} schedule"),
            &panels,
            3,
        )?);
    }
    Ok(files)
}

/// The paper's exponential-schedule claim: d(n) = MaxSE(lr-sqrt) − (1/π)·ln(n / (2 ln(1/β))).
pub fn paper_gap(max_se: f64, n: usize, beta: f64) -> f64 {
    max_se - (n as f64 / (2.0 * (1.0 / beta).ln())).ln() / std::f64::consts::PI
}

/// Report section of experiment 1.
pub fn report_single_epoch(t: &Table, img: &dyn Fn(&str) -> String) -> Result<String> {
    let rs = rows(t)?;
    let mut s = String::new();
    single_intro(&mut s, &rs, img)?;
    single_table(&mut s, &rs)?;
    paper_check(&mut s, &rs)?;
    lr_check(&mut s, &rs, Method::LrSqrt, Metric::MaxSe)?;
    writeln!(
        s,
        "\nThe optimized methods minimize MeanSE², so their lr- forms (optimized on the true workload; lr-blt also starts from the blt optimum) should have the smaller MeanSE:\n"
    )?;
    lr_check(&mut s, &rs, Method::LrBlt, Metric::MeanSe)?;
    writeln!(s)?;
    lr_check(&mut s, &rs, Method::LrDenseOpt, Metric::MeanSe)?;
    optimum_check(&mut s, &rs)?;
    Ok(s)
}

/// Largest n of `m` on `sched` in the CSV (0 when absent).
fn max_n_of(rs: &[Row], m: &str, sched: &str) -> usize {
    rs.iter()
        .filter(|r| r.method == m && r.schedule == sched)
        .map(|r| r.n)
        .max()
        .unwrap_or(0)
}

fn single_intro(s: &mut String, rs: &[Row], img: &dyn Fn(&str) -> String) -> Result<()> {
    let top = |m: &str, sched: &str| pow2(max_n_of(rs, m, sched));
    writeln!(
        s,
        "Single participation (k = 1), n = 2^6 … 2^{}. Sizes evaluated (from the CSV): identity up to n = {}; sqrt and lr-sqrt up to n = {} for the exponential schedule and n = {} for cosine, linear and polynomial (their error goes through an O(n²) path); dense-sqrt and the lower bound ‖W‖*/n up to n = {} (O(n³)); blt and lr-blt (BLT, d buffers chosen automatically) up to n = {}; dense-opt and lr-dense-opt (the optimal dense C for single participation, O(n³) per iteration) up to n = {}. The optimized methods minimize MeanSE (`--objective mean-se`): blt and dense-opt on the constant-rate workload (w/o LRS), lr-blt and lr-dense-opt on the true one (w/ LRS).\n",
        max_n_of(rs, DP_SGD, "exponential").trailing_zeros(),
        top(DP_SGD, "exponential"),
        top(Method::LrSqrt.name(), "exponential"),
        top(Method::LrSqrt.name(), "cosine"),
        top(Method::DenseSqrt.name(), "exponential"),
        top(Method::LrBlt.name(), "exponential"),
        top(Method::LrDenseOpt.name(), "exponential"),
    )?;
    for sched in SCHEDULES {
        writeln!(
            s,
            "![{sched}]({})\n",
            img(&format!("single_epoch_{sched}.png"))
        )?;
    }
    Ok(())
}

/// MaxSE table at a few n.
fn single_table(s: &mut String, rs: &[Row]) -> Result<()> {
    let ns: Vec<usize> = [1usize << 8, 1 << 9, 1 << 11, 1 << 15, 1 << 20]
        .into_iter()
        .filter(|n| rs.iter().any(|r| r.n == *n))
        .collect();
    writeln!(s, "MaxSE at selected n (— = not evaluated at this n):\n")?;
    write!(s, "| schedule | β | method |")?;
    for n in &ns {
        write!(s, " n = {} |", pow2(*n))?;
    }
    writeln!(s)?;
    writeln!(s, "|---|---|---|{}", "---:|".repeat(ns.len()))?;
    for sched in SCHEDULES {
        for beta in DECAYS {
            for m in single_curves() {
                write!(s, "| {sched} | {beta} | {} |", label(m))?;
                for n in &ns {
                    let v = rs.iter().find(|r| {
                        r.schedule == sched && r.beta == beta && r.method == m && r.n == *n
                    });
                    write!(s, " {} |", v.map(|r| sig(r.max_se)).unwrap_or("—".into()))?;
                }
                writeln!(s)?;
            }
        }
    }
    Ok(())
}

/// The paper's exponential claim: d(n) bounded over n.
fn paper_check(s: &mut String, rs: &[Row]) -> Result<()> {
    writeln!(
        s,
        "\n**Check of the paper's exponential result.** d(n) = MaxSE(lr-sqrt) − (1/π)·ln(n / (2 ln(1/β))) for the exponential schedule:\n"
    )?;
    let lr_sqrt = |beta: f64| {
        rs.iter().filter(move |r| {
            r.schedule == "exponential" && r.beta == beta && r.method == Method::LrSqrt.name()
        })
    };
    let mut exp_ns: Vec<usize> = DECAYS
        .iter()
        .flat_map(|&b| lr_sqrt(b).map(|r| r.n))
        .filter(|n| n.trailing_zeros() % 2 == 0)
        .collect();
    exp_ns.sort();
    exp_ns.dedup();
    write!(s, "| β |")?;
    for n in &exp_ns {
        write!(s, " {} |", pow2(*n))?;
    }
    writeln!(s, " min … max over n ≥ 2^10 (all evaluated n) |")?;
    writeln!(s, "|---|{}---|", "---:|".repeat(exp_ns.len()))?;
    for beta in DECAYS {
        write!(s, "| {beta} |")?;
        for n in &exp_ns {
            let gap = lr_sqrt(beta)
                .find(|r| r.n == *n)
                .map(|r| paper_gap(r.max_se, r.n, beta));
            write!(s, " {} |", gap.map(sig).unwrap_or("—".into()))?;
        }
        let tail: Vec<f64> = lr_sqrt(beta)
            .filter(|r| r.n >= 1024)
            .map(|r| paper_gap(r.max_se, r.n, beta))
            .collect();
        let lo = tail.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = tail.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        writeln!(s, " {} … {} (spread {}) |", sig(lo), sig(hi), sig(hi - lo))?;
    }
    writeln!(
        s,
        "\nOver the same n the term (1/π)·ln(n / (2 ln(1/β))) itself grows by ln(2^10)/π = {} (n = 2^10 → 2^20); a spread of d(n) well below that is what \"bounded\" means here.\n",
        sig((1024f64).ln() / std::f64::consts::PI)
    )?;
    Ok(())
}

/// Table: where `metric(lr) < metric(lr.plain())`, per schedule and β, over every n both ran.
fn lr_check(s: &mut String, rs: &[Row], lr: Method, metric: Metric) -> Result<()> {
    let (a, b, name) = (lr.name(), lr.plain().name(), metric.name());
    writeln!(
        s,
        "**Where {name}({a}) < {name}({b})** (every evaluated n):\n"
    )?;
    writeln!(s, "| schedule | β | holds at | fails at n = |")?;
    writeln!(s, "|---|---|---|---|")?;
    for sched in SCHEDULES {
        for beta in DECAYS {
            let (mut held, mut total, mut fails) = (0, 0, Vec::new());
            let at = |m: &str, n: usize| {
                rs.iter()
                    .find(|q| q.schedule == sched && q.beta == beta && q.method == m && q.n == n)
            };
            for r in rs
                .iter()
                .filter(|r| r.schedule == sched && r.beta == beta && r.method == a)
            {
                if let Some(q) = at(b, r.n) {
                    total += 1;
                    if r.metric(metric) < q.metric(metric) {
                        held += 1;
                    } else {
                        fails.push(pow2(r.n));
                    }
                }
            }
            let fails = if fails.is_empty() {
                "—".to_string()
            } else {
                fails.join(", ")
            };
            writeln!(s, "| {sched} | {beta} | {held} of {total} n | {fails} |")?;
        }
    }
    Ok(())
}

/// lr-dense-opt is the MeanSE optimum over every C for single participation: each method's
/// MeanSE relative to it at the largest n it ran, and where it is (not) the least.
fn optimum_check(s: &mut String, rs: &[Row]) -> Result<()> {
    let opt = Method::LrDenseOpt.name();
    let n = max_n_of(rs, opt, "exponential");
    if n == 0 {
        return Ok(());
    }
    let others: Vec<&str> = single_curves().into_iter().filter(|m| *m != opt).collect();
    writeln!(
        s,
        "\n**The dense optimum.** lr-dense-opt minimizes MeanSE over all strategies C for single participation on the true workload, so every method's MeanSE is at least its own, which is at least the lower bound. MeanSE / MeanSE(lr-dense-opt) at n = {} (— = not evaluated):\n",
        pow2(n)
    )?;
    write!(s, "| schedule | β |")?;
    for m in &others {
        write!(s, " {} |", label(m))?;
    }
    writeln!(s, "\n|---|---|{}", "---:|".repeat(others.len()))?;
    let find = |sched: &str, beta: f64, m: &str, n: usize| {
        rs.iter()
            .find(|r| r.schedule == sched && r.beta == beta && r.method == m && r.n == n)
    };
    let (mut held, mut total, mut fails) = (0, 0, Vec::new());
    for sched in SCHEDULES {
        for beta in DECAYS {
            let Some(o) = find(sched, beta, opt, n) else {
                continue;
            };
            write!(s, "| {sched} | {beta} |")?;
            for m in &others {
                let v = find(sched, beta, m, n).map(|r| sig(r.mean_se / o.mean_se));
                write!(s, " {} |", v.unwrap_or("—".into()))?;
            }
            writeln!(s)?;
        }
    }
    for o in rs.iter().filter(|r| r.method == opt) {
        for m in others.iter().filter(|m| **m != LOWER_BOUND) {
            if let Some(r) = find(&o.schedule, o.beta, m, o.n) {
                total += 1;
                if o.mean_se <= r.mean_se {
                    held += 1;
                } else {
                    fails.push(format!(
                        "{m} at {} β = {} n = {} (by {})",
                        o.schedule,
                        o.beta,
                        pow2(o.n),
                        sig(o.mean_se / r.mean_se - 1.0)
                    ));
                }
            }
        }
    }
    let fails = if fails.is_empty() {
        "none".to_string()
    } else {
        fails.join("; ")
    };
    writeln!(
        s,
        "\nMeanSE(lr-dense-opt) ≤ MeanSE(method) holds in {held} of {total} (method, schedule, β, n) comparisons; exceptions (relative excess): {fails}."
    )?;
    Ok(())
}

/// (k, b) settings present in a table, sorted (b = 0: single participation).
pub(crate) fn settings(rs: &[Row]) -> Vec<(usize, usize)> {
    let mut v: Vec<(usize, usize)> = rs.iter().map(|r| (r.k, r.min_sep.unwrap_or(0))).collect();
    v.sort();
    v.dedup();
    v
}

/// The band with the lowest MaxSE of `method` in one setting (ties: smaller band).
fn best<'a>(rs: &'a [Row], k: usize, b: usize, beta: f64, method: &str) -> Option<&'a Row> {
    rs.iter()
        .filter(|r| r.k == k && r.min_sep == Some(b) && r.beta == beta && r.method == method)
        .min_by(|x, y| x.max_se.total_cmp(&y.max_se).then(x.band.cmp(&y.band)))
}

/// Plots of experiment 2: per β, MaxSE vs band for each (k, b), DP-SGD and BLT (no band) as
/// dashed levels, best bands circled; the legend is in the first panel.
pub fn plot_bands(t: &Table, dir: &Path) -> Result<Vec<PathBuf>> {
    let rs = rows(t)?;
    let mut files = Vec::new();
    for beta in BAND_DECAYS {
        let panels: Vec<Panel> = settings(&rs)
            .into_iter()
            .enumerate()
            .map(|(i, (k, b))| band_panel(&rs, k, b, beta, i == 0))
            .collect();
        files.extend(plot::save(
            &dir.join(format!("bands_beta{beta}")),
            &format!("Multi-epoch: MaxSE vs band, exponential schedule, β = {beta}"),
            &panels,
            2,
        )?);
    }
    Ok(files)
}

/// One panel of experiment 2's plot (setting k, b at β).
fn band_panel(rs: &[Row], k: usize, b: usize, beta: f64, legend: bool) -> Panel {
    let sel = |m: &str| -> Vec<&Row> {
        rs.iter()
            .filter(|r| r.k == k && r.min_sep == Some(b) && r.beta == beta && r.method == m)
            .collect()
    };
    let name = |s: String| if legend { s } else { String::new() };
    let methods = band_study_methods();
    let all_bands: Vec<usize> = methods
        .iter()
        .flat_map(|m| sel(m.name()).into_iter().filter_map(|r| r.band))
        .collect();
    let lo = all_bands.iter().copied().min().unwrap_or(1) as f64;
    let hi = all_bands.iter().copied().max().unwrap_or(1) as f64;
    let level = |label: String, r: &Row, color: usize| Series {
        label: name(label),
        points: vec![(lo, r.max_se), (hi, r.max_se)],
        style: Style::Dashed,
        color,
    };
    let mut series = Vec::new();
    if let Some(id) = sel(DP_SGD).first() {
        series.push(level("DP-SGD (identity)".into(), id, color_of(DP_SGD)));
    }
    for m in &methods {
        let rows = sel(m.name());
        if is_blt(*m) {
            if let Some(r) = rows.first() {
                let l = format!("{m} (no band, d auto)");
                series.push(level(l, r, color_of(m.name())));
            }
            continue;
        }
        series.push(Series {
            label: name(m.to_string()),
            points: rows
                .iter()
                .map(|r| (r.band.unwrap_or(0) as f64, r.max_se))
                .collect(),
            style: Style::Line,
            color: color_of(m.name()),
        });
    }
    series.push(Series {
        label: name("best band".into()),
        points: methods
            .iter()
            .filter(|m| m.is_banded())
            .filter_map(|m| best(rs, k, b, beta, m.name()))
            .map(|r| (r.band.unwrap_or(0) as f64, r.max_se))
            .collect(),
        style: Style::Marker,
        color: 3,
    });
    Panel {
        title: format!("k = {k}, b = {b}, n = {}, β = {beta}", k * b),
        x_label: "band p (log)".into(),
        y_label: "MaxSE (log)".into(),
        series,
        legend_right: false,
    }
}

/// Report section of experiment 2.
pub fn report_bands(t: &Table, img: &dyn Fn(&str) -> String) -> Result<String> {
    let rs = rows(t)?;
    let mut s = String::new();
    let top = |m: &str| {
        rs.iter()
            .filter(|r| r.method == m)
            .map(|r| r.n)
            .max()
            .map(|n| n.to_string())
            .unwrap_or("— (not run)".into())
    };
    writeln!(
        s,
        "Exponential schedule, n = k·b steps, k participations at min-separation b (epochs), bands p = b/8 … min(8b, n) in powers of two. The optimized methods (bandmf, bandinv, blt: w/o LRS, optimized on the constant-rate workload; lr-bandmf, lr-bandinv, lr-blt: w/ LRS, optimized on the true workload) minimize MeanSE (the default `--objective mean-se`); bandmf and bandinv run up to n = {} (from the CSV), bandmf only for p ≤ b; blt and lr-blt (no band: d buffers, chosen automatically, shown as a level in the plots) up to n = {}. The tables rank by MaxSE, so compare their MeanSE column too. β = 1 is the constant-rate check: there the lr- methods must coincide with their plain forms.\n",
        top(Method::LrBandmf.name()),
        top(Method::LrBlt.name())
    )?;
    for beta in BAND_DECAYS {
        writeln!(
            s,
            "![bands β = {beta}]({})\n",
            img(&format!("bands_beta{beta}.png"))
        )?;
    }
    writeln!(
        s,
        "Best band per method (lowest MaxSE over the bands evaluated; BLT has no band, its d is shown):\n"
    )?;
    writeln!(
        s,
        "| k | b | n | β | DP-SGD MaxSE | method | best p (or d) | MaxSE at best p | MeanSE at best p | MaxSE / DP-SGD |"
    )?;
    writeln!(s, "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")?;
    for (k, b) in settings(&rs) {
        for beta in BAND_DECAYS {
            let Some(id) = rs
                .iter()
                .find(|r| r.k == k && r.min_sep == Some(b) && r.beta == beta && r.method == DP_SGD)
            else {
                continue;
            };
            for m in band_study_methods() {
                if let Some(r) = best(&rs, k, b, beta, m.name()) {
                    writeln!(
                        s,
                        "| {k} | {b} | {} | {beta} | {} | {m} | {} | {} | {} | {} |",
                        k * b,
                        sig(id.max_se),
                        r.size(),
                        sig(r.max_se),
                        sig(r.mean_se),
                        sig(r.max_se / id.max_se)
                    )?;
                }
            }
        }
    }
    blind_check(&mut s, &rs)?;
    Ok(s)
}

/// Schedule-blind check at β = 1: each lr- method against its plain form at equal band.
fn blind_check(s: &mut String, rs: &[Row]) -> Result<()> {
    let mut worst: f64 = 0.0;
    let mut pairs = 0;
    for r in rs
        .iter()
        .filter(|r| r.beta == 1.0 && r.method.starts_with("lr-"))
    {
        let base = &r.method[3..];
        if let Some(q) = rs.iter().find(|q| {
            q.beta == 1.0
                && q.method == base
                && q.k == r.k
                && q.min_sep == r.min_sep
                && q.band == r.band
        }) {
            pairs += 1;
            worst = worst.max((r.max_se - q.max_se).abs() / q.max_se);
        }
    }
    let worst = if worst == 0.0 {
        "0 (identical values)".to_string()
    } else {
        format!("{worst:e}")
    };
    writeln!(
        s,
        "\nConstant-rate check (β = 1): over {pairs} (lr-method, method) pairs at equal band, the largest relative MaxSE difference is {worst}."
    )?;
    Ok(())
}

/// Estimated seconds of an experiment's configurations (summed; divide by cores for wall time).
pub fn estimate(jobs: &[Job]) -> f64 {
    jobs.iter().map(eval::cost_seconds).sum()
}

/// CSV header of experiments 1–2.
pub fn header() -> Vec<&'static str> {
    eval::HEADER.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(b: usize, n: usize, want: &[usize]) {
        assert_eq!(bands(b, n), want);
    }

    #[test]
    fn band_grid_and_job_counts() {
        check(64, 256, &[8, 16, 32, 64, 128, 256]);
        check(64, 4096, &[8, 16, 32, 64, 128, 256, 512]);
        check(8, 32, &[1, 2, 4, 8, 16, 32]);
        let q = single_epoch_jobs(Scale::QUICK);
        assert!(q.iter().all(|a| a.args().n.unwrap() <= 1 << 20));
        assert!(
            q.iter()
                .filter(|a| a.curve() == "dense-sqrt")
                .all(|a| a.args().n.unwrap() <= 2048)
        );
        assert!(
            q.iter()
                .filter(|a| a.curve() == "sqrt" && a.args().schedule == "cosine")
                .all(|a| a.args().n.unwrap() <= 1 << 15)
        );
        assert_eq!(
            q.iter().filter(|a| a.curve() == "identity").count(),
            4 * 3 * 15
        );
    }

    #[test]
    fn optimized_methods_join_the_studies_within_their_caps() {
        let names = |v: Vec<Method>| v.iter().map(|m| m.name()).collect::<Vec<_>>();
        assert_eq!(
            names(single_epoch_methods()),
            [
                "identity",
                "sqrt",
                "lr-sqrt",
                "dense-sqrt",
                "blt",
                "lr-blt",
                "dense-opt",
                "lr-dense-opt"
            ]
        );
        let band = names(band_study_methods());
        assert!(band.contains(&"blt") && band.contains(&"lr-blt") && band.len() == 10);
        assert!(!band.iter().any(|m| m.contains("dense")));
        for s in [Scale::QUICK, Scale::FULL] {
            let q = single_epoch_jobs(s);
            for (m, cap) in [
                ("blt", s.max_n_blt),
                ("lr-blt", s.max_n_blt),
                ("dense-opt", s.max_n_dense_opt),
                ("lr-dense-opt", s.max_n_dense_opt),
            ] {
                let ns: Vec<usize> = q
                    .iter()
                    .filter(|a| a.curve() == m)
                    .map(|a| a.args().n.unwrap())
                    .collect();
                // Every schedule and β, n = 2⁶ … cap.
                let per = cap.trailing_zeros() as usize - 5;
                assert_eq!(ns.len(), 4 * 3 * per, "{m}");
                assert!(ns.iter().all(|&n| n <= cap), "{m}");
            }
            assert!(s.max_n_dense_opt <= MAX_DENSE_OPT_N && s.max_n_blt <= MAX_BLT_N);
        }
        assert_eq!(Scale::QUICK.max_n_dense_opt, 512);
        let b = band_jobs(Scale::QUICK);
        // BLT once per (k, b, β), without a band.
        let blt: Vec<_> = b
            .iter()
            .filter(|a| a.curve() == "lr-blt")
            .map(Job::args)
            .collect();
        assert_eq!(blt.len(), 2 * 2 * 2);
        assert!(blt.iter().all(|a| a.band.is_none() && a.min_sep.is_some()));
        assert!(
            b.iter()
                .filter(|a| a.curve() == "bandmf")
                .map(Job::args)
                .all(|a| a.band().unwrap().unwrap() <= a.min_sep.unwrap())
        );
    }

    #[test]
    fn formatting_and_paper_gap() {
        assert_eq!(sig(1234.56), "1235");
        assert_eq!(sig(0.012345), "0.01235");
        assert_eq!(sig(3.0), "3.000");
        // d(n) is MaxSE minus (1/π)·ln(n/(2 ln(1/β))): at n = 2·ln(10), β = 0.1 the log is 0.
        let n = 5;
        let expect = 1.0 - (5.0 / (2.0 * 10f64.ln())).ln() / std::f64::consts::PI;
        assert!((paper_gap(1.0, n, 0.1) - expect).abs() < 1e-15);
    }

    #[test]
    fn toy_single_epoch_study_reports_the_optimum() {
        let s = Scale {
            max_n: 128,
            ..Scale::QUICK
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        let jobs = single_epoch_jobs(s);
        let t = eval::run_all("toy", &jobs, |_, _| vec![], &header(), &stop).unwrap();
        let md = report_single_epoch(&t, &|f| f.to_string()).unwrap();
        assert!(md.contains("**The dense optimum.**"), "{md}");
        // lr-dense-opt is the MeanSE optimum: no exception at any n, schedule or β.
        assert!(md.contains("exceptions (relative excess): none"), "{md}");
        assert!(
            md.contains("**Where MeanSE(lr-blt) < MeanSE(blt)**"),
            "{md}"
        );
        crate::plot::register_font().unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(plot_single_epoch(&t, dir.path()).unwrap().len(), 8);
    }
}
