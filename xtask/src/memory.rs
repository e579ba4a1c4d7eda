//! Experiment 3, memory vs error: every method's noise state (bytes per model parameter, 4 ×
//! `lrmf_noise::state_rows` as `lrmf errors` reports it) against its MaxSE and MeanSE, with the
//! Pareto front — the configurations that no other one beats in both memory and error. Banded
//! methods trade memory through their band p, BLT through its buffers d; the full-history
//! methods (sqrt, dense) keep n rows.

use crate::errors::{Metric, Row, Scale, bands, is_blt, label, rows, settings, sig};
use crate::eval::{self, Job, args};
use crate::plot::{self, FRONT_COLOR, Panel, Series, Style, color_of};
use crate::table::Table;
use anyhow::Result;
use lrmf_cli::{ErrorsReport, StrategyArgs};
use lrmf_factor::Method;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// β of experiment 3 (exponential schedule).
pub const BETA: f64 = 0.1;

/// The settings (k, b, n) of experiment 3: experiment 2's (k epochs at min-separation b,
/// n = k·b) and single participation (k = 1, no b) at [`Scale::memory_single_n`], where the
/// dense optimum is defined.
pub fn memory_settings(s: Scale) -> Vec<(usize, Option<usize>, usize)> {
    let mut v = vec![(1, None, s.memory_single_n)];
    for &k in s.epochs {
        for b in crate::errors::MIN_SEPS {
            v.push((k, Some(b), k * b));
        }
    }
    v
}

/// Bands of the banded methods: b/8 … min(8b, n) under b-min-separation (as in experiment 2),
/// 2, 4, …, n/8 under single participation (p = 1 makes C diagonal: DP-SGD again).
pub fn memory_bands(b: Option<usize>, n: usize) -> Vec<usize> {
    match b {
        Some(b) => bands(b, n),
        None => std::iter::successors(Some(2usize), |p| Some(2 * p))
            .take_while(|&p| p <= n / 8)
            .collect(),
    }
}

/// The (band, buffers) configurations of `m` in setting (k, b, n): identity, sqrt, lr-sqrt
/// once; dense-sqrt up to the cubic cap; the dense optimum under single participation up to its
/// cap; BLT at d = 1 … [`Scale::max_buffers`]; banded methods at [`memory_bands`], bandinv up
/// to [`Scale::max_n_optimized`], bandmf up to [`Scale::max_n_memory_bandmf`] and at p ≤ b.
pub fn memory_configs(
    s: Scale,
    m: Method,
    (k, b, n): (usize, Option<usize>, usize),
) -> Vec<(Option<usize>, Option<usize>)> {
    let once = vec![(None, None)];
    match m {
        Method::Identity | Method::Sqrt | Method::LrSqrt => once,
        Method::DenseSqrt if n <= s.max_n_cubic => once,
        Method::DenseOpt | Method::LrDenseOpt if k == 1 && n <= s.max_n_dense_opt => once,
        Method::Blt | Method::LrBlt => (1..=s.max_buffers).map(|d| (None, Some(d))).collect(),
        Method::Bandmf | Method::LrBandmf if n > s.max_n_memory_bandmf => vec![],
        Method::Bandinv | Method::LrBandinv if n > s.max_n_optimized => vec![],
        m if m.is_banded() => memory_bands(b, n)
            .into_iter()
            .filter(|&p| m.plain() != Method::Bandmf || b.is_none_or(|b| p <= b))
            .map(|p| (Some(p), None))
            .collect(),
        _ => vec![],
    }
}

/// Configurations of experiment 3: every method of [`Method::ALL`] at its
/// [`memory_configs`] in each of [`memory_settings`], exponential schedule, β = 0.1.
pub fn memory_jobs(s: Scale) -> Vec<Job> {
    let mut jobs = Vec::new();
    for setting in memory_settings(s) {
        let (k, b, n) = setting;
        for m in Method::ALL {
            for (p, d) in memory_configs(s, m, setting) {
                let mut a = args("exponential", BETA, n, m, p, b, k);
                a.buffers = d;
                jobs.push(Job::Strategy(a));
            }
        }
    }
    jobs
}

/// The extra columns of experiment 3.
pub const MEMORY_EXTRA: [&str; 2] = ["state_rows", "bytes_per_param"];

/// `state_rows` and `4·state_rows` bytes per parameter (f32), from the report `lrmf errors`
/// prints (`noise_state_rows`, i.e. `lrmf_noise::state_rows` of the evaluated C).
pub fn memory_extra(_a: &StrategyArgs, e: Option<&ErrorsReport>) -> Vec<String> {
    let r = e.map(|e| e.noise_state_rows).unwrap_or(0);
    vec![r.to_string(), (4 * r).to_string()]
}

/// CSV header of experiment 3.
pub fn memory_header() -> Vec<&'static str> {
    let mut h = eval::HEADER.to_vec();
    h.extend(MEMORY_EXTRA);
    h
}

/// Relative difference under which two memories or errors count as equal (rounding noise: e.g.
/// lr-bandinv that stayed at bandinv's optimum).
pub const TIE: f64 = 1e-9;

/// Indices of the Pareto-optimal points of (memory, error) pairs, sorted by memory then error:
/// point i is dominated when some point j has `x_j ≤ x_i` and `y_j ≤ y_i` and is not equal to
/// it in both (equal: within the relative [`TIE`]). Ties dominate neither other, so all are
/// kept; points with a non-finite coordinate are left out.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let ok = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
    let eq = |a: f64, b: f64| (a - b).abs() <= TIE * a.abs().max(b.abs());
    let le = |a: f64, b: f64| a <= b || eq(a, b);
    let dominates = |a: (f64, f64), b: (f64, f64)| {
        le(a.0, b.0) && le(a.1, b.1) && !(eq(a.0, b.0) && eq(a.1, b.1))
    };
    let mut front: Vec<usize> = (0..points.len())
        .filter(|&i| ok(&points[i]))
        .filter(|&i| {
            !points
                .iter()
                .filter(|q| ok(q))
                .any(|&q| dominates(q, points[i]))
        })
        .collect();
    front.sort_by(|&i, &j| {
        let (a, b) = (points[i], points[j]);
        a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1))
    });
    front
}

/// The lower-left envelope through front points sorted by x (errors falling): from each point
/// right at its error to the next point's memory, then down to it.
pub fn staircase(front: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut v = Vec::new();
    for (i, &(x, y)) in front.iter().enumerate() {
        if i > 0 {
            v.push((x, front[i - 1].1));
        }
        v.push((x, y));
    }
    v
}

fn in_setting(r: &Row, k: usize, b: usize) -> bool {
    r.k == k && r.min_sep.unwrap_or(0) == b
}

fn setting_name(k: usize, b: usize, rs: &[&Row]) -> String {
    let n = rs.first().map(|r| r.n).unwrap_or(0);
    if b == 0 {
        format!("k = 1, n = {n}")
    } else {
        format!("k = {k}, b = {b}, n = {n}")
    }
}

/// The front rows of one setting by `metric`.
fn front_rows<'a>(set: &[&'a Row], metric: Metric) -> Vec<&'a Row> {
    let pts: Vec<(f64, f64)> = set
        .iter()
        .map(|r| (r.bytes.unwrap_or(0.0), r.metric(metric)))
        .collect();
    pareto_front(&pts).into_iter().map(|i| set[i]).collect()
}

/// Plot of experiment 3: per setting, MaxSE and MeanSE vs bytes of noise state per parameter
/// (log–log; DP-SGD keeps none and is drawn as a dashed level), the Pareto front as a wide grey
/// staircase; the legend (every series of every panel) in a panel of its own, last.
pub fn plot_memory(t: &Table, dir: &Path) -> Result<Vec<PathBuf>> {
    let rs = rows(t)?;
    let mut panels = Vec::new();
    for (k, b) in settings(&rs) {
        let set: Vec<&Row> = rs.iter().filter(|r| in_setting(r, k, b)).collect();
        for metric in Metric::BOTH {
            panels.push(memory_panel(&set, k, b, metric));
        }
    }
    let mut keys: Vec<Series> = Vec::new();
    for s in panels.iter_mut().flat_map(|p| p.series.iter_mut()) {
        let label = std::mem::take(&mut s.label);
        if !keys.iter().any(|k| k.label == label) {
            keys.push(Series {
                label,
                points: vec![],
                ..s.clone()
            });
        }
    }
    panels.push(Panel {
        title: "legend".into(),
        x_label: String::new(),
        y_label: String::new(),
        series: keys,
        legend_right: false,
    });
    plot::save(
        &dir.join("memory"),
        "Memory vs error: exponential schedule, β = 0.1",
        &panels,
        2,
    )
}

/// One panel: the rows of one setting against `metric`.
fn memory_panel(set: &[&Row], k: usize, b: usize, metric: Metric) -> Panel {
    let of = |m: Method| -> Vec<&Row> {
        let mut v: Vec<&Row> = set
            .iter()
            .copied()
            .filter(|r| r.method == m.name())
            .collect();
        v.sort_by_key(|r| (r.band, r.buffers));
        v
    };
    let xs = set.iter().filter_map(|r| r.bytes).filter(|&x| x > 0.0);
    let lo = xs.clone().fold(f64::INFINITY, f64::min);
    let hi = xs.fold(0.0, f64::max);
    let mut series = Vec::new();
    for m in Method::ALL {
        let v = of(m);
        let pts: Vec<(f64, f64)> = v
            .iter()
            .map(|r| (r.bytes.unwrap_or(0.0), r.metric(metric)))
            .collect();
        let (text, points, style) = match (m, v.first()) {
            (_, None) => continue,
            (Method::Identity, Some(r)) => (
                "DP-SGD (identity, 0 bytes)".to_string(),
                vec![(lo, r.metric(metric)), (hi, r.metric(metric))],
                Style::Dashed,
            ),
            (m, _) if m.is_banded() => (format!("{m} (p)"), pts, Style::Line),
            (m, _) if is_blt(m) => (format!("{m} (d = 1…{})", v.len()), pts, Style::Line),
            (m, _) => (label(m.name()), pts, Style::Marker),
        };
        series.push(Series {
            label: text,
            points,
            style,
            color: color_of(m.name()),
        });
    }
    let front: Vec<(f64, f64)> = front_rows(set, metric)
        .iter()
        .map(|r| (r.bytes.unwrap_or(0.0), r.metric(metric)))
        .filter(|&(x, _)| x > 0.0)
        .collect();
    series.push(Series {
        label: "Pareto front".into(),
        points: staircase(&front),
        style: Style::Envelope,
        color: FRONT_COLOR,
    });
    Panel {
        title: format!("{}, {}", metric.name(), setting_name(k, b, set)),
        x_label: "noise state, bytes per parameter (log)".into(),
        y_label: format!("{} (log)", metric.name()),
        series,
        legend_right: true,
    }
}

/// Report section of experiment 3: the Pareto fronts by MaxSE and by MeanSE, and which methods
/// are on them.
pub fn report_memory(t: &Table, img: &dyn Fn(&str) -> String) -> Result<String> {
    let rs = rows(t)?;
    let mut s = String::new();
    let top = |f: &dyn Fn(&Row) -> Option<usize>| rs.iter().filter_map(f).max().unwrap_or(0);
    writeln!(
        s,
        "Noise state kept per model parameter (f32, 4 bytes per row of `lrmf_noise::state_rows`, as `lrmf errors` reports it): DP-SGD none (each step's draw is fresh); bsr, lr-bsr, bandmf, lr-bandmf p − 1 rows; bisr, lr-bisr, bandinv, lr-bandinv p rows; blt, lr-blt d rows (one per buffer); sqrt, lr-sqrt, dense-sqrt, dense-opt, lr-dense-opt n rows. With regenerated noise (seekable ChaCha stream, `lrmf-noise`) the banded methods keep no history at O(p) compute per step instead. Exponential schedule, β = 0.1: the settings of experiment 2 and single participation at n = {} (the only setting of the dense optimum); BLT at d = 1 … {}; bandmf up to n = {} (from the CSV), at p ≤ b.\n",
        top(&|r| (r.k == 1).then_some(r.n)),
        top(&|r| r.buffers),
        top(&|r| (r.method == Method::LrBandmf.name()).then_some(r.n)),
    )?;
    writeln!(s, "![memory]({})\n", img("memory.png"))?;
    for metric in Metric::BOTH {
        front_table(&mut s, &rs, metric)?;
    }
    Ok(s)
}

/// The Pareto front by `metric` per setting, then the methods on it.
fn front_table(s: &mut String, rs: &[Row], metric: Metric) -> Result<()> {
    let name = metric.name();
    writeln!(
        s,
        "Pareto front by {name} per setting (no other configuration has both less memory and lower {name}):\n"
    )?;
    writeln!(
        s,
        "| setting | method | p or d | bytes / param | MaxSE | MeanSE |"
    )?;
    writeln!(s, "|---|---|---:|---:|---:|---:|")?;
    let all = settings(rs);
    let mut on: Vec<(&str, usize)> = Vec::new();
    for &(k, b) in &all {
        let set: Vec<&Row> = rs.iter().filter(|r| in_setting(r, k, b)).collect();
        let front = front_rows(&set, metric);
        for r in &front {
            writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                setting_name(k, b, &set),
                r.method,
                r.size(),
                r.bytes.unwrap_or(0.0),
                sig(r.max_se),
                sig(r.mean_se)
            )?;
        }
        let mut methods: Vec<&str> = front.iter().map(|r| r.method.as_str()).collect();
        methods.dedup();
        for m in methods {
            match on.iter_mut().find(|(x, _)| *x == m) {
                Some(e) => e.1 += 1,
                None => on.push((m, 1)),
            }
        }
    }
    let order = |m: &str| Method::ALL.iter().position(|x| x.name() == m);
    on.sort_by_key(|(m, _)| order(m));
    let list: Vec<String> = on
        .iter()
        .map(|(m, c)| format!("{m} ({c} of {})", all.len()))
        .collect();
    writeln!(
        s,
        "\n**Pareto-optimal by {name}** (settings where the method has a point on the front): {}.\n",
        list.join(", ")
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(points: &[(f64, f64)], want: &[usize]) {
        assert_eq!(pareto_front(points), want, "{points:?}");
    }

    #[test]
    fn pareto_front_keeps_exactly_the_undominated_points() {
        // (1, 5) dominated by (1, 3) (same memory, more error); (4, 3) by (1, 3) (same error,
        // more memory); (3, 4) by (2, 2).
        check(
            &[
                (1.0, 5.0),
                (1.0, 3.0),
                (2.0, 2.0),
                (4.0, 3.0),
                (3.0, 4.0),
                (8.0, 1.0),
            ],
            &[1, 2, 5],
        );
        // Ties are both kept, also within rounding (1e-12 relative); zero memory (DP-SGD) is a
        // point like any other.
        check(&[(2.0, 2.0), (0.0, 9.0), (2.0, 2.0)], &[1, 0, 2]);
        check(&[(2.0, 2.0 + 2e-12), (2.0, 2.0), (2.0, 2.1)], &[1, 0]);
        // A smaller error beyond the tolerance still dominates.
        check(&[(2.0, 2.0 + 1e-6), (2.0, 2.0)], &[1]);
        // Non-finite points are left out and dominate nothing.
        check(&[(f64::NAN, 0.0), (1.0, f64::INFINITY), (5.0, 5.0)], &[2]);
        check(&[], &[]);
        assert_eq!(
            staircase(&[(1.0, 4.0), (2.0, 3.0), (8.0, 1.0)]),
            [(1.0, 4.0), (2.0, 4.0), (2.0, 3.0), (8.0, 3.0), (8.0, 1.0)]
        );
    }

    #[test]
    fn every_method_runs_in_some_setting_and_state_rows_come_from_the_report() {
        for s in [Scale::QUICK, Scale::FULL] {
            let jobs = memory_jobs(s);
            for m in Method::ALL {
                assert!(jobs.iter().any(|a| a.curve() == m.name()), "{m}");
            }
            let blt: Vec<_> = jobs.iter().filter(|a| a.curve() == "blt").collect();
            assert_eq!(blt.len(), memory_settings(s).len() * s.max_buffers);
            assert!(
                jobs.iter()
                    .filter(|a| a.curve().contains("dense-opt"))
                    .all(|a| a.args().participations == 1
                        && a.args().n.unwrap() <= s.max_n_dense_opt)
            );
            assert!(jobs.iter().filter(|a| a.curve() == "lr-bandmf").all(|a| {
                let a = a.args();
                a.n.unwrap() <= s.max_n_memory_bandmf
                    && a.min_sep.is_none_or(|b| a.band().unwrap().unwrap() <= b)
            }));
        }
        assert_eq!(memory_bands(None, 256), [2, 4, 8, 16, 32]);
        assert_eq!(memory_bands(Some(64), 256), bands(64, 256));
        // bytes = 4 × state rows of the evaluated C: bisr p, bsr p − 1, BLT d, sqrt n, DP-SGD 0.
        for (m, p, d, rows) in [
            (Method::Bisr, Some(8), None, 8),
            (Method::Bsr, Some(8), None, 7),
            (Method::Blt, None, Some(2), 2),
            (Method::Sqrt, None, None, 64),
            (Method::Identity, None, None, 0),
        ] {
            let mut a = args("exponential", BETA, 64, m, p, None, 1);
            a.buffers = d;
            let (_, e) = eval::evaluated(&Job::Strategy(a.clone())).unwrap();
            let want = vec![rows.to_string(), (4 * rows).to_string()];
            assert_eq!(memory_extra(&a, e.as_ref()), want, "{m}");
        }
    }

    #[test]
    fn toy_study_plots_and_reports_its_fronts() {
        let s = Scale {
            epochs: &[2],
            max_n_cubic: 128,
            max_n_optimized: 0,
            max_n_memory_bandmf: 0,
            max_buffers: 2,
            memory_single_n: 32,
            ..Scale::QUICK
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        let jobs = memory_jobs(s);
        let t = eval::run_all("toy", &jobs, memory_extra, &memory_header(), &stop).unwrap();
        crate::plot::register_font().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = plot_memory(&t, dir.path()).unwrap();
        assert!(files.iter().all(|f| f.is_file()));
        let md = report_memory(&t, &|f| f.to_string()).unwrap();
        // DP-SGD alone keeps no state, so it is on every front; the MeanSE optimum lr-dense-opt
        // has the least MeanSE of its setting, so it is on that front.
        assert!(md.contains("identity (3 of 3)"), "{md}");
        assert!(md.contains("| k = 1, n = 32 | lr-dense-opt |"), "{md}");
        assert!(md.contains("**Pareto-optimal by MeanSE**"), "{md}");
    }
}
