//! The optimized strategies (issues 10 and 11), end to end as `lrmf errors` runs them:
//! optimization + sensitivity + MaxSE/MeanSE.
//!
//! Targets on the 2-core reference machine (exponential schedule, β = 0.1, mean-se): n = 512,
//! band 16, min-sep 128, k = 4 in ≤ 1.5 s for lr-bandmf and ≤ 0.5 s for lr-bandinv; lr-bandinv at
//! n = 10⁴, band 64 (min-sep 1000, k = 10) in ≤ 10 s.
//!
//! BLT and the dense optimum (single participation, mean-se, d chosen automatically), measured
//! on the 2-core development machine with other builds running (load ≈ 6, so upper bounds),
//! `cargo bench --workspace --bench optimize -- 'blt|dense'` (median of 10 samples):
//!
//! | bench | median |
//! |---|---:|
//! | blt, n = 1024, k = 1 | 0.56 s |
//! | blt, n = 1024, k = 4 (min-sep 256) | 0.24 s |
//! | lr-blt, n = 1024, k = 1 | 0.96 s |
//! | lr-blt, n = 1024, k = 4 (min-sep 256) | 0.54 s |
//! | dense-opt, n = 256 | 0.23 s |
//! | dense-opt, n = 512 | 1.99 s |
//! | lr-dense-opt, n = 256 | 0.38 s |
//! | lr-dense-opt, n = 512 | 2.71 s |
//!
//! Each sample is one run (flat sampling), so the two groups take about a minute together.

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use lrmf_factor::{FactorSpec, Factorizer, Method, Objective, errors};
use lrmf_privacy::Participation;
use lrmf_schedule::{Kind, LrSchedule};
use lrmf_workload::Workload;
use std::hint::black_box;
use std::time::Duration;

/// MaxSE of `method` at n steps (band p for banded methods; k participations at min-separation
/// b, single participation when `b` is `None`).
fn run(
    n: usize,
    method: Method,
    band: Option<usize>,
    b: Option<usize>,
    k: usize,
    objective: Objective,
) -> f64 {
    let schedule = LrSchedule::new(Kind::Exponential, n, 0.1, 0).unwrap();
    let w = Workload::from_schedule(&schedule, 0.0, 1.0).unwrap();
    let p = Participation::new(n, b, k).unwrap();
    let f = FactorSpec::for_schedule(method, band, &schedule)
        .unwrap()
        .with_objective(objective)
        .factorize(&w, p)
        .unwrap();
    errors(&w, &f, p).unwrap().max_se
}

fn n512_band16(c: &mut Criterion) {
    let mut g = c.benchmark_group("optimized_n512_band16_k4");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .warm_up_time(Duration::from_secs(1));
    for method in [Method::LrBandmf, Method::LrBandinv] {
        for objective in Objective::ALL {
            g.bench_function(format!("{method}/{objective}"), |bch| {
                bch.iter(|| black_box(run(512, method, Some(16), Some(128), 4, objective)))
            });
        }
    }
    g.finish();
}

fn bandinv_n1e4_band64(c: &mut Criterion) {
    let mut g = c.benchmark_group("lr_bandinv_n10000_band64_k10");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_secs(1));
    for objective in Objective::ALL {
        g.bench_function(format!("{objective}"), |bch| {
            bch.iter(|| {
                black_box(run(
                    10_000,
                    Method::LrBandinv,
                    Some(64),
                    Some(1000),
                    10,
                    objective,
                ))
            })
        });
    }
    g.finish();
}

/// blt / lr-blt at n = 1024 (single participation, and k = 4 at min-sep 256), mean-se.
fn blt_n1024(c: &mut Criterion) {
    let mut g = c.benchmark_group("blt_n1024");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    for method in [Method::Blt, Method::LrBlt] {
        for (b, k) in [(None, 1), (Some(256), 4)] {
            g.bench_function(format!("{method}/k{k}"), |bch| {
                bch.iter(|| black_box(run(1024, method, None, b, k, Objective::MeanSe)))
            });
        }
    }
    g.finish();
}

/// dense-opt / lr-dense-opt at n = 256 and 512 (single participation, mean-se).
fn dense_opt(c: &mut Criterion) {
    let mut g = c.benchmark_group("dense_opt");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_secs(1));
    for method in [Method::DenseOpt, Method::LrDenseOpt] {
        for n in [256, 512] {
            g.bench_function(format!("{method}/n{n}"), |bch| {
                bch.iter(|| black_box(run(n, method, None, None, 1, Objective::MeanSe)))
            });
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    n512_band16,
    bandinv_n1e4_band64,
    blt_n1024,
    dense_opt
);
criterion_main!(benches);
