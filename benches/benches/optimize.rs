//! The optimized strategies (issue 10), end to end as `lrmf errors` runs them: optimization +
//! sensitivity + MaxSE/MeanSE.
//!
//! Targets on the 2-core reference machine (exponential schedule, β = 0.1, mean-se): n = 512,
//! band 16, min-sep 128, k = 4 in ≤ 1.5 s for lr-bandmf and ≤ 0.5 s for lr-bandinv; lr-bandinv at
//! n = 10⁴, band 64 (min-sep 1000, k = 10) in ≤ 10 s.

use criterion::{Criterion, criterion_group, criterion_main};
use lrmf_factor::{FactorSpec, Factorizer, Method, Objective, errors};
use lrmf_privacy::Participation;
use lrmf_schedule::{Kind, LrSchedule};
use lrmf_workload::Workload;
use std::hint::black_box;
use std::time::Duration;

fn run(n: usize, method: Method, band: usize, b: usize, k: usize, objective: Objective) -> f64 {
    let schedule = LrSchedule::new(Kind::Exponential, n, 0.1, 0).unwrap();
    let w = Workload::from_schedule(&schedule, 0.0, 1.0).unwrap();
    let p = Participation::new(n, Some(b), k).unwrap();
    let f = FactorSpec::for_schedule(method, Some(band), &schedule)
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
                bch.iter(|| black_box(run(512, method, 16, 128, 4, objective)))
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
            bch.iter(|| black_box(run(10_000, Method::LrBandinv, 64, 1000, 10, objective)))
        });
    }
    g.finish();
}

criterion_group!(benches, n512_band16, bandinv_n1e4_band64);
criterion_main!(benches);
