//! Experiments 1–3, the error study: single-epoch error vs n, multi-epoch error vs band, and
//! noise-state memory vs error. Each builds its configurations, evaluates them through
//! [`crate::eval`] (the `lrmf errors` code path), and turns the finished CSV into plots and a
//! report section.

use crate::eval::{self, LOWER_BOUND, args};
use crate::plot::{self, Panel, Series, Style, color_of};
use crate::table::Table;
use anyhow::Result;
use lrmf_cli::StrategyArgs;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Schedules of experiment 1.
pub const SCHEDULES: [&str; 4] = ["exponential", "cosine", "linear", "polynomial"];
/// Final-over-initial learning rates β of experiment 1.
pub const DECAYS: [f64; 3] = [0.5, 0.1, 0.01];
/// Banded methods of experiments 2–3.
pub const BANDED: [&str; 4] = ["bsr", "lr-bsr", "bisr", "lr-bisr"];
/// Optimized banded methods of experiment 2 (w/ and w/o LRS; bandmf only for p ≤ b).
pub const OPTIMIZED_BANDED: [&str; 4] = ["bandmf", "lr-bandmf", "bandinv", "lr-bandinv"];
/// Every method of the band study.
pub const BAND_STUDY: [&str; 8] = [
    "bsr",
    "lr-bsr",
    "bisr",
    "lr-bisr",
    "bandmf",
    "lr-bandmf",
    "bandinv",
    "lr-bandinv",
];
/// Steps per epoch b of experiments 2–3.
pub const MIN_SEPS: [usize; 2] = [64, 256];
/// β of experiment 2: 0.1 (schedule matters) and 1.0 (constant rate: lr- methods must equal
/// their schedule-blind versions).
pub const BAND_DECAYS: [f64; 2] = [0.1, 1.0];

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
}

impl Scale {
    /// The quick mode (`cargo xtask repro`): minutes on 2 cores.
    pub const QUICK: Scale = Scale {
        max_n: 1 << 20,
        max_n_quadratic: 1 << 15,
        max_n_cubic: 1 << 11,
        epochs: &[4, 16],
        max_n_optimized: 1024,
    };
    /// The full mode (`--full`).
    pub const FULL: Scale = Scale {
        max_n: 1 << 20,
        max_n_quadratic: 1 << 18,
        max_n_cubic: lrmf_factor::MAX_DENSE_N,
        epochs: &[4, 16, 64],
        max_n_optimized: 4096,
    };
}

/// Configurations of experiment 1: n = 2⁶ … 2²⁰ for every schedule and β; identity always,
/// sqrt/lr-sqrt up to the quadratic cap (no cap for exponential), dense-sqrt and the lower
/// bound up to the cubic cap.
pub fn single_epoch_jobs(s: Scale) -> Vec<StrategyArgs> {
    let mut jobs = Vec::new();
    for sched in SCHEDULES {
        for beta in DECAYS {
            let mut n = 64;
            while n <= s.max_n {
                jobs.push(args(sched, beta, n, "identity", None, None, 1));
                if sched == "exponential" || n <= s.max_n_quadratic {
                    for m in ["sqrt", "lr-sqrt"] {
                        jobs.push(args(sched, beta, n, m, None, None, 1));
                    }
                }
                if n <= s.max_n_cubic {
                    jobs.push(args(sched, beta, n, "dense-sqrt", None, None, 1));
                    jobs.push(args(sched, beta, n, LOWER_BOUND, None, None, 1));
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

/// Configurations of experiment 2 (exponential schedule, n = k·b, k participations at
/// min-separation b): DP-SGD and each banded method at every band, for β ∈ {0.1, 1}.
pub fn band_jobs(s: Scale) -> Vec<StrategyArgs> {
    let mut jobs = Vec::new();
    for &k in s.epochs {
        for b in MIN_SEPS {
            for beta in BAND_DECAYS {
                let n = k * b;
                jobs.push(args("exponential", beta, n, "identity", None, Some(b), k));
                for m in BANDED {
                    for p in bands(b, n) {
                        jobs.push(args("exponential", beta, n, m, Some(p), Some(b), k));
                    }
                }
                if n <= s.max_n_optimized {
                    for m in OPTIMIZED_BANDED {
                        // Column-normalized banded C has its exact sensitivity only for p ≤ b.
                        for p in bands(b, n)
                            .into_iter()
                            .filter(|&p| !m.ends_with("bandmf") || p <= b)
                        {
                            jobs.push(args("exponential", beta, n, m, Some(p), Some(b), k));
                        }
                    }
                }
            }
        }
    }
    jobs
}

/// Configurations of experiment 3: the experiment-2 settings at β = 0.1, plus sqrt and
/// lr-sqrt (full-history noise).
pub fn memory_jobs(s: Scale) -> Vec<StrategyArgs> {
    let mut jobs = Vec::new();
    for &k in s.epochs {
        for b in MIN_SEPS {
            let n = k * b;
            for m in ["identity", "sqrt", "lr-sqrt"] {
                jobs.push(args("exponential", 0.1, n, m, None, Some(b), k));
            }
            for m in BANDED {
                for p in bands(b, n) {
                    jobs.push(args("exponential", 0.1, n, m, Some(p), Some(b), k));
                }
            }
        }
    }
    jobs
}

/// Rows of noise state a method keeps per model parameter (f32 each), as the noise crate's
/// streaming generator keeps them (`lrmf_noise::state_rows`): identity 0, bsr p − 1, bisr p,
/// sqrt / lr-sqrt / dense-sqrt n. 0 when the configuration does not factorize.
pub fn state_rows(a: &StrategyArgs) -> usize {
    a.factorize()
        .map(|(_, f)| lrmf_noise::state_rows(&f.c))
        .unwrap_or(0)
}

/// The extra columns of experiment 3.
pub const MEMORY_EXTRA: [&str; 2] = ["state_rows", "bytes_per_param"];

/// `state_rows` and `4·state_rows` bytes per parameter (f32).
pub fn memory_extra(a: &StrategyArgs, _row: &[String]) -> Vec<String> {
    let r = state_rows(a);
    vec![r.to_string(), (4 * r).to_string()]
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
fn pow2(n: usize) -> String {
    if n.is_power_of_two() {
        format!("2^{}", n.trailing_zeros())
    } else {
        n.to_string()
    }
}

/// Parsed error row.
#[derive(Debug, Clone)]
struct Row {
    schedule: String,
    beta: f64,
    n: usize,
    min_sep: Option<usize>,
    k: usize,
    method: String,
    band: Option<usize>,
    max_se: f64,
    mean_se: f64,
    bytes: Option<f64>,
}

fn rows(t: &Table) -> Result<Vec<Row>> {
    let has_bytes = t.col("bytes_per_param").is_ok();
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
            })
        })
        .collect()
}

const SINGLE_METHODS: [&str; 5] = ["identity", "sqrt", "lr-sqrt", "dense-sqrt", LOWER_BOUND];

fn label(m: &str) -> String {
    match m {
        "identity" => "identity (DP-SGD)".into(),
        LOWER_BOUND => "lower bound ‖W‖*/n".into(),
        _ => m.to_string(),
    }
}

/// Plots of experiment 1: one figure per schedule, MaxSE (top) and MeanSE (bottom) vs n for
/// each β.
pub fn plot_single_epoch(t: &Table, dir: &Path) -> Result<Vec<PathBuf>> {
    let rs = rows(t)?;
    let mut files = Vec::new();
    for sched in SCHEDULES {
        let mut panels = Vec::new();
        for metric in ["MaxSE", "MeanSE"] {
            for beta in DECAYS {
                let series = SINGLE_METHODS
                    .iter()
                    .map(|m| Series {
                        label: label(m),
                        points: rs
                            .iter()
                            .filter(|r| r.schedule == sched && r.beta == beta && r.method == *m)
                            .map(|r| {
                                let y = if metric == "MaxSE" {
                                    r.max_se
                                } else {
                                    r.mean_se
                                };
                                (r.n as f64, y)
                            })
                            .collect(),
                        style: if *m == LOWER_BOUND {
                            Style::Dashed
                        } else {
                            Style::Line
                        },
                        color: color_of(m),
                    })
                    .collect();
                panels.push(Panel {
                    title: format!("{metric}, {sched}, β = {beta}"),
                    x_label: "steps n (log)".into(),
                    y_label: format!("{metric} (log)"),
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
    let max_n = |m: &str, sched: &str| {
        rs.iter()
            .filter(|r| r.method == m && r.schedule == sched)
            .map(|r| r.n)
            .max()
            .unwrap_or(0)
    };
    writeln!(
        s,
        "Single participation (k = 1), n = 2^6 … 2^{}. Sizes evaluated (from the CSV): identity up to n = {}; sqrt and lr-sqrt up to n = {} for the exponential schedule and n = {} for cosine, linear and polynomial (their error goes through an O(n²) path); dense-sqrt and the lower bound ‖W‖*/n up to n = {} (O(n³)).\n",
        max_n("identity", "exponential").trailing_zeros(),
        pow2(max_n("identity", "exponential")),
        pow2(max_n("lr-sqrt", "exponential")),
        pow2(max_n("lr-sqrt", "cosine")),
        pow2(max_n("dense-sqrt", "exponential"))
    )?;
    for sched in SCHEDULES {
        writeln!(
            s,
            "![{sched}]({})\n",
            img(&format!("single_epoch_{sched}.png"))
        )?;
    }
    // MaxSE table at a few n.
    let ns: Vec<usize> = [1usize << 8, 1 << 11, 1 << 15, 1 << 20]
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
            for m in SINGLE_METHODS {
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
    // Paper check.
    writeln!(
        s,
        "\n**Check of the paper's exponential result.** d(n) = MaxSE(lr-sqrt) − (1/π)·ln(n / (2 ln(1/β))) for the exponential schedule:\n"
    )?;
    let exp_ns: Vec<usize> = {
        let mut v: Vec<usize> = rs
            .iter()
            .filter(|r| r.schedule == "exponential" && r.method == "lr-sqrt")
            .map(|r| r.n)
            .filter(|n| n.trailing_zeros() % 2 == 0)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    write!(s, "| β |")?;
    for n in &exp_ns {
        write!(s, " {} |", pow2(*n))?;
    }
    writeln!(s, " min … max over n ≥ 2^10 (all evaluated n) |")?;
    writeln!(s, "|---|{}---|", "---:|".repeat(exp_ns.len()))?;
    for beta in DECAYS {
        write!(s, "| {beta} |")?;
        let gap = |n: usize| {
            rs.iter()
                .find(|r| {
                    r.schedule == "exponential"
                        && r.beta == beta
                        && r.method == "lr-sqrt"
                        && r.n == n
                })
                .map(|r| paper_gap(r.max_se, n, beta))
        };
        for n in &exp_ns {
            write!(s, " {} |", gap(*n).map(sig).unwrap_or("—".into()))?;
        }
        let tail: Vec<f64> = rs
            .iter()
            .filter(|r| {
                r.schedule == "exponential"
                    && r.beta == beta
                    && r.method == "lr-sqrt"
                    && r.n >= 1024
            })
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
    // lr-sqrt below sqrt.
    writeln!(
        s,
        "**Where MaxSE(lr-sqrt) < MaxSE(sqrt)** (every evaluated n):\n"
    )?;
    writeln!(s, "| schedule | β | holds at | fails at n = |")?;
    writeln!(s, "|---|---|---|---|")?;
    for sched in SCHEDULES {
        for beta in DECAYS {
            let mut held = 0;
            let mut total = 0;
            let mut fails = Vec::new();
            for r in rs
                .iter()
                .filter(|r| r.schedule == sched && r.beta == beta && r.method == "lr-sqrt")
            {
                if let Some(q) = rs.iter().find(|q| {
                    q.schedule == sched && q.beta == beta && q.method == "sqrt" && q.n == r.n
                }) {
                    total += 1;
                    if r.max_se < q.max_se {
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
    Ok(s)
}

/// (k, b) settings present in a table, sorted.
fn settings(rs: &[Row]) -> Vec<(usize, usize)> {
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

/// Plots of experiment 2: per β, MaxSE vs band for each (k, b), DP-SGD dashed, best bands
/// circled.
pub fn plot_bands(t: &Table, dir: &Path) -> Result<Vec<PathBuf>> {
    let rs = rows(t)?;
    let mut files = Vec::new();
    for beta in BAND_DECAYS {
        let mut panels = Vec::new();
        for (k, b) in settings(&rs) {
            let sel = |m: &str| -> Vec<&Row> {
                rs.iter()
                    .filter(|r| r.k == k && r.min_sep == Some(b) && r.beta == beta && r.method == m)
                    .collect()
            };
            let all_bands: Vec<usize> = BAND_STUDY
                .iter()
                .flat_map(|m| sel(m).into_iter().filter_map(|r| r.band))
                .collect();
            let (lo, hi) = (
                all_bands.iter().copied().min().unwrap_or(1) as f64,
                all_bands.iter().copied().max().unwrap_or(1) as f64,
            );
            let mut series = Vec::new();
            if let Some(id) = sel("identity").first() {
                series.push(Series {
                    label: "DP-SGD (identity)".into(),
                    points: vec![(lo, id.max_se), (hi, id.max_se)],
                    style: Style::Dashed,
                    color: color_of("identity"),
                });
            }
            for m in BAND_STUDY {
                series.push(Series {
                    label: m.to_string(),
                    points: sel(m)
                        .iter()
                        .map(|r| (r.band.unwrap_or(0) as f64, r.max_se))
                        .collect(),
                    style: Style::Line,
                    color: color_of(m),
                });
            }
            series.push(Series {
                label: "best band".into(),
                points: BAND_STUDY
                    .iter()
                    .filter_map(|m| best(&rs, k, b, beta, m))
                    .map(|r| (r.band.unwrap_or(0) as f64, r.max_se))
                    .collect(),
                style: Style::Marker,
                color: 3,
            });
            panels.push(Panel {
                title: format!("k = {k}, b = {b}, n = {}, β = {beta}", k * b),
                x_label: "band p (log)".into(),
                y_label: "MaxSE (log)".into(),
                series,
                legend_right: false,
            });
        }
        files.extend(plot::save(
            &dir.join(format!("bands_beta{beta}")),
            &format!("Multi-epoch: MaxSE vs band, exponential schedule, β = {beta}"),
            &panels,
            2,
        )?);
    }
    Ok(files)
}

/// Report section of experiment 2.
pub fn report_bands(t: &Table, img: &dyn Fn(&str) -> String) -> Result<String> {
    let rs = rows(t)?;
    let mut s = String::new();
    writeln!(
        s,
        "Exponential schedule, n = k·b steps, k participations at min-separation b (epochs), bands p = b/8 … min(8b, n) in powers of two. The optimized methods (bandmf, bandinv: w/o LRS, optimized on the constant-rate workload; lr-bandmf, lr-bandinv: w/ LRS, optimized on the true workload) minimize MeanSE (the default `--objective mean-se`), run for n ≤ 1024 in quick mode (4096 in full), bandmf only for p ≤ b; the tables rank by MaxSE, so compare their MeanSE column too. β = 1 is the constant-rate check: there the lr- methods must coincide with their plain forms.\n"
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
        "Best band per method (lowest MaxSE over the bands evaluated):\n"
    )?;
    writeln!(
        s,
        "| k | b | n | β | DP-SGD MaxSE | method | best p | MaxSE at best p | MeanSE at best p | MaxSE / DP-SGD |"
    )?;
    writeln!(s, "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")?;
    for (k, b) in settings(&rs) {
        for beta in BAND_DECAYS {
            let Some(id) = rs.iter().find(|r| {
                r.k == k && r.min_sep == Some(b) && r.beta == beta && r.method == "identity"
            }) else {
                continue;
            };
            for m in BAND_STUDY {
                if let Some(r) = best(&rs, k, b, beta, m) {
                    writeln!(
                        s,
                        "| {k} | {b} | {} | {beta} | {} | {m} | {} | {} | {} | {} |",
                        k * b,
                        sig(id.max_se),
                        r.band.unwrap_or(0),
                        sig(r.max_se),
                        sig(r.mean_se),
                        sig(r.max_se / id.max_se)
                    )?;
                }
            }
        }
    }
    // Schedule-blind check at β = 1.
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
    Ok(s)
}

/// Plot of experiment 3: MaxSE vs bytes of noise state per parameter.
pub fn plot_memory(t: &Table, dir: &Path) -> Result<Vec<PathBuf>> {
    let rs = rows(t)?;
    let mut panels = Vec::new();
    for (k, b) in settings(&rs) {
        let series = [
            "identity", "sqrt", "lr-sqrt", "bsr", "lr-bsr", "bisr", "lr-bisr",
        ]
        .iter()
        .map(|m| {
            let pts: Vec<(f64, f64)> = rs
                .iter()
                .filter(|r| r.k == k && r.min_sep == Some(b) && r.method == *m)
                .map(|r| (r.bytes.unwrap_or(0.0), r.max_se))
                .collect();
            Series {
                label: if BANDED.contains(m) {
                    format!("{m} (p = b/8 … 8b)")
                } else {
                    label(m)
                },
                style: if pts.len() > 1 {
                    Style::Line
                } else {
                    Style::Marker
                },
                points: pts,
                color: color_of(m),
            }
        })
        .collect();
        panels.push(Panel {
            title: format!("k = {k}, b = {b}, n = {}, β = 0.1", k * b),
            x_label: "noise state, bytes per parameter (log)".into(),
            y_label: "MaxSE (log)".into(),
            series,
            legend_right: true,
        });
    }
    plot::save(
        &dir.join("memory"),
        "Memory vs error: exponential schedule, β = 0.1",
        &panels,
        2,
    )
}

/// Report section of experiment 3: the Pareto front of (bytes per parameter, MaxSE).
pub fn report_memory(t: &Table, img: &dyn Fn(&str) -> String) -> Result<String> {
    let rs = rows(t)?;
    let mut s = String::new();
    writeln!(
        s,
        "Noise state kept per model parameter (f32): DP-SGD none (each step's draw is fresh); bsr/lr-bsr p − 1 rows (4(p − 1) bytes); bisr/lr-bisr p rows (4p bytes); sqrt/lr-sqrt n rows (4n bytes). With regenerated noise (seekable ChaCha stream, `lrmf-noise`) the banded methods keep no history at O(p) compute per step instead. Same settings as experiment 2 at β = 0.1.\n"
    )?;
    writeln!(s, "![memory]({})\n", img("memory.png"))?;
    writeln!(
        s,
        "Pareto front per setting (no other configuration has both less memory and lower MaxSE):\n"
    )?;
    writeln!(
        s,
        "| k | b | method | band | bytes / param | MaxSE | MeanSE |"
    )?;
    writeln!(s, "|---:|---:|---|---:|---:|---:|---:|")?;
    for (k, b) in settings(&rs) {
        let mut set: Vec<&Row> = rs
            .iter()
            .filter(|r| r.k == k && r.min_sep == Some(b))
            .collect();
        set.sort_by(|x, y| {
            x.bytes
                .unwrap_or(0.0)
                .total_cmp(&y.bytes.unwrap_or(0.0))
                .then(x.max_se.total_cmp(&y.max_se))
        });
        let mut best_so_far = f64::INFINITY;
        for r in set {
            if r.max_se < best_so_far {
                best_so_far = r.max_se;
                writeln!(
                    s,
                    "| {k} | {b} | {} | {} | {} | {} | {} |",
                    r.method,
                    r.band.map(|p| p.to_string()).unwrap_or("—".into()),
                    r.bytes.unwrap_or(0.0),
                    sig(r.max_se),
                    sig(r.mean_se)
                )?;
            }
        }
    }
    Ok(s)
}

/// Estimated seconds of an experiment's configurations (summed; divide by cores for wall time).
pub fn estimate(jobs: &[StrategyArgs]) -> f64 {
    jobs.iter().map(eval::cost_seconds).sum()
}

/// CSV header of experiments 1–2.
pub fn header() -> Vec<&'static str> {
    eval::HEADER.to_vec()
}

/// CSV header of experiment 3.
pub fn memory_header() -> Vec<&'static str> {
    let mut h = eval::HEADER.to_vec();
    h.extend(MEMORY_EXTRA);
    h
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
        assert!(q.iter().all(|a| a.n.unwrap() <= 1 << 20));
        assert!(
            q.iter()
                .filter(|a| a.method == "dense-sqrt")
                .all(|a| a.n.unwrap() <= 2048)
        );
        assert!(
            q.iter()
                .filter(|a| a.method == "sqrt" && a.schedule == "cosine")
                .all(|a| a.n.unwrap() <= 1 << 15)
        );
        assert_eq!(
            q.iter().filter(|a| a.method == "identity").count(),
            4 * 3 * 15
        );
        assert_eq!(
            state_rows(&args("exponential", 0.1, 64, "bisr", Some(8), None, 1)),
            8
        );
        assert_eq!(
            state_rows(&args("exponential", 0.1, 64, "sqrt", None, None, 1)),
            64
        );
        assert_eq!(
            state_rows(&args("exponential", 0.1, 64, "identity", None, None, 1)),
            0
        );
        assert_eq!(
            state_rows(&args("exponential", 0.1, 64, "bsr", Some(8), None, 1)),
            7
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
}
