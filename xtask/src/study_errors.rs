//! The factorization errors of the full study's own workloads: for each data set and decaying
//! schedule, every study method's sensitivity, MaxSE and MeanSE on the exact trajectory its
//! training runs follow (n = epochs × steps, min-sep = steps per epoch, k = epochs, momentum
//! 0.9, the study's band), through the same evaluation as `lrmf errors`. They tie the accuracy
//! differences to the error the paper optimizes: an lr- form whose MeanSE equals its plain
//! form's cannot train differently except through chance.

use crate::eval::{self, HEADER};
use crate::study::{self, Data, Job, Kind, SCHEDULES, Settings};
use crate::table::Table;
use anyhow::Result;
use lrmf_factor::Method;
use lrmf_train::config::AccountantKind;
use std::fmt::Write as _;
use std::path::Path;

/// One row per (data set, schedule, method): the columns of the error study's CSVs.
pub const ERRORS_CSV: &str = "accuracy_full_errors.csv";

/// The `lrmf errors` flags of `method` on the workload of `data`'s final runs.
fn workload(
    s: &Settings,
    data: Data,
    schedule: (&'static str, f64),
    method: Method,
) -> Result<lrmf_cli::StrategyArgs> {
    let job = Job {
        data,
        method: Some(method),
        schedule,
        kind: Kind::Final {
            seed: s.seed,
            accountant: Some(AccountantKind::Gaussian),
        },
    };
    let cfg = study::config(&job, 1.0, s, Path::new("data"))?;
    let sh = cfg.shape();
    let mut a = eval::args(
        schedule.0,
        schedule.1,
        sh.total_steps,
        method,
        cfg.privacy.band,
        Some(sh.steps_per_epoch),
        sh.epochs,
    );
    a.momentum = cfg.training.momentum;
    a.weight_decay = cfg.training.weight_decay;
    Ok(a)
}

/// The errors of every study method on both data sets' workloads, decaying schedules.
///
/// Complexity: one factorization (optimized for bandmf, bandinv, blt) per row, n = 500.
pub fn table(s: &Settings) -> Result<Table> {
    table_of(s, &[Data::Imdb, Data::Cifar10], &study::study_methods())
}

/// [`table`] for some data sets and methods.
///
/// The columns are `lrmf errors`'s but for `millis`: the time a factorization took differs on
/// every regeneration, and the committed copy of this table should change only when a number does.
pub fn table_of(s: &Settings, data: &[Data], methods: &[Method]) -> Result<Table> {
    let header: Vec<&str> = std::iter::once("dataset")
        .chain(HEADER.iter().copied().filter(|h| *h != MILLIS))
        .collect();
    let ms = millis_column();
    let mut t = Table::new(&header);
    for &d in data {
        for schedule in SCHEDULES {
            for &m in methods {
                let a = workload(s, d, schedule, m)?;
                let (row, _) = eval::evaluated(&eval::Job::Strategy(a))?;
                let row = row
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| *i != ms)
                    .map(|(_, v)| v);
                t.push(std::iter::once(d.name().to_string()).chain(row).collect())?;
            }
        }
    }
    Ok(t)
}

/// The wall-time column of `lrmf errors`, left out of the study's table.
const MILLIS: &str = "millis";

/// The position of [`MILLIS`] in [`HEADER`].
fn millis_column() -> usize {
    HEADER
        .iter()
        .position(|h| *h == MILLIS)
        .expect("lrmf errors reports the time of each factorization")
}

/// MeanSE of each lr- method over its plain form's, minus 1, per (data set, schedule, lr-
/// method), in table order.
pub fn lr_gains(t: &Table) -> Result<Vec<(String, String, String, f64)>> {
    let mut out = Vec::new();
    let method = t.col("method")?;
    for r in &t.rows {
        let Ok(m) = r[method].parse::<Method>() else {
            continue;
        };
        if !m.is_lr_aware() {
            continue;
        }
        let plain = t
            .rows
            .iter()
            .find(|p| p[0] == r[0] && p[1] == r[1] && p[method] == m.plain().name());
        if let Some(p) = plain {
            let ratio = t.num(r, "mean_se")? / t.num(p, "mean_se")? - 1.0;
            out.push((r[0].clone(), r[1].clone(), m.name().to_string(), ratio));
        }
    }
    Ok(out)
}

/// The report's table: one row per (data set, schedule, method).
pub fn markdown(t: &Table) -> Result<String> {
    let gains = lr_gains(t)?;
    let mut s = String::from(
        "| data set | schedule | method | band | sens | MaxSE | MeanSE | MeanSE vs plain form |\n|---|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in &t.rows {
        let m = t.get(r, "method")?;
        let vs = gains
            .iter()
            .find(|g| g.0 == r[0] && g.1 == r[1] && g.2 == m)
            .map_or(String::new(), |g| format!("{:+.3} %", 100.0 * g.3));
        writeln!(
            s,
            "| {} | {} | {m} | {} | {:.4} | {:.4} | {:.4} | {vs} |",
            r[0],
            r[1],
            t.get(r, "band")?,
            t.num(r, "sensitivity")?,
            t.num(r, "max_se")?,
            t.num(r, "mean_se")?
        )?;
    }
    Ok(s)
}

/// One sentence per data set for "What we found": the range of the lr- forms' MeanSE change.
pub fn finding(t: &Table, data: &str) -> Result<Option<String>> {
    let g: Vec<f64> = lr_gains(t)?
        .into_iter()
        .filter(|g| g.0 == data)
        .map(|g| 100.0 * g.3)
        .collect();
    if g.is_empty() {
        return Ok(None);
    }
    let lo = g.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = g.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Ok(Some(format!(
        "On this data set's workload the lr- forms change MeanSE by {lo:+.2} % to {hi:+.2} % against their plain forms (table below), so large accuracy differences between them are not expected."
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &Settings, d: Data, m: Method) -> lrmf_cli::StrategyArgs {
        workload(s, d, SCHEDULES[0], m).unwrap()
    }

    #[test]
    fn the_workload_is_the_one_the_final_runs_train_on() {
        let s = Settings::defaults(1);
        // IMDB: 25,000 examples, batch 1000, 20 epochs; CIFAR-10: 50,000, batch 1000, 10.
        let a = check(&s, Data::Imdb, Method::LrBisr);
        assert_eq!(
            (a.n, a.min_sep, a.participations, a.momentum),
            (Some(500), Some(25), 20, 0.9)
        );
        assert!(matches!(a.band, Some(lrmf_cli::BandArg::One(5))));
        let a = check(&s, Data::Cifar10, Method::Blt);
        assert_eq!(
            (a.n, a.min_sep, a.participations),
            (Some(500), Some(50), 10)
        );
        assert!(a.band.is_none());
        // The sensitivity matches what `lrmf errors` reports for the same flags, and the lr-
        // gain is the MeanSE ratio of the pair.
        let t = table_of(&s, &[Data::Imdb], &[Method::Bsr, Method::LrBsr]).unwrap();
        let (row, _) =
            eval::evaluated(&eval::Job::Strategy(check(&s, Data::Imdb, Method::Bsr))).unwrap();
        // The same row as `lrmf errors` gives (but for the time it took, which is left out).
        let ms = millis_column();
        assert_eq!(t.rows[0][1..], [&row[..ms], &row[ms + 1..]].concat());
        assert_eq!(t.col(MILLIS).ok(), None);
        let gain = |i: usize, j: usize| {
            t.num(&t.rows[i], "mean_se").unwrap() / t.num(&t.rows[j], "mean_se").unwrap() - 1.0
        };
        // Rows: exponential bsr, lr-bsr, then cosine bsr, lr-bsr.
        assert_eq!(
            lr_gains(&t).unwrap(),
            vec![
                (
                    "imdb".into(),
                    "exponential".into(),
                    "lr-bsr".into(),
                    gain(1, 0)
                ),
                ("imdb".into(), "cosine".into(), "lr-bsr".into(), gain(3, 2)),
            ]
        );
        assert!(
            markdown(&t)
                .unwrap()
                .contains("| imdb | exponential | lr-bsr | 5 |")
        );
        assert!(
            finding(&t, "imdb")
                .unwrap()
                .unwrap()
                .contains("change MeanSE by")
        );
        assert_eq!(finding(&t, "cifar10").unwrap(), None);
    }
}
