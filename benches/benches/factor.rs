//! Scale of the math core (issue 2): factorization + sensitivity + MaxSE/MeanSE end to end,
//! exactly what `lrmf errors` runs.
//!
//! Targets on the 2-core reference machine: bisr / lr-bisr (band 1024, min-sep 10⁴, 100
//! participations, exponential schedule) at n = 10⁶ in ≤ 2 s with ≤ 15× the time of n = 10⁵;
//! lr-sqrt (exponential) at n = 10⁶ in ≤ 2 s; sqrt / bsr with any schedule at n = 2·10⁴ in ≤ 5 s.

use criterion::{Criterion, criterion_group, criterion_main};
use lrmf_factor::{FactorSpec, Factorizer, Method, errors};
use lrmf_privacy::Participation;
use lrmf_schedule::{Kind, LrSchedule};
use lrmf_workload::Workload;
use std::hint::black_box;
use std::time::Duration;

fn run(
    kind: &str,
    n: usize,
    method: Method,
    band: Option<usize>,
    min_sep: Option<usize>,
    k: usize,
) -> f64 {
    let schedule = LrSchedule::new(Kind::parse_builtin(kind).unwrap(), n, 0.1, 0).unwrap();
    let w = Workload::from_schedule(&schedule, 0.0, 1.0).unwrap();
    let p = Participation::new(n, min_sep, k).unwrap();
    let f = FactorSpec::for_schedule(method, band, &schedule)
        .unwrap()
        .factorize(&w, p)
        .unwrap();
    errors(&w, &f, p).unwrap().max_se
}

fn banded_at_scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("banded_exponential_b1024_k100");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    for method in [Method::Bisr, Method::LrBisr, Method::Bsr, Method::LrBsr] {
        for n in [100_000usize, 1_000_000] {
            // min-sep 10⁴ with 100 participations needs n ≥ 10⁶; at 10⁵ keep k·b = n.
            let (b, k) = if n == 1_000_000 {
                (10_000, 100)
            } else {
                (1_000, 100)
            };
            g.bench_function(format!("{method}/n={n}"), |bch| {
                bch.iter(|| black_box(run("exponential", n, method, Some(1024), Some(b), k)))
            });
        }
    }
    g.finish();
}

fn lr_sqrt_at_scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("lr_sqrt_exponential");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .warm_up_time(Duration::from_secs(1));
    for n in [100_000usize, 1_000_000] {
        g.bench_function(format!("n={n}"), |bch| {
            bch.iter(|| black_box(run("exponential", n, Method::LrSqrt, None, None, 1)))
        });
    }
    g.finish();
}

fn any_schedule(c: &mut Criterion) {
    let mut g = c.benchmark_group("any_schedule_n20000");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    for kind in ["cosine", "linear", "polynomial"] {
        g.bench_function(format!("sqrt/{kind}"), |bch| {
            bch.iter(|| black_box(run(kind, 20_000, Method::Sqrt, None, Some(1000), 20)))
        });
        g.bench_function(format!("bsr256/{kind}"), |bch| {
            bch.iter(|| black_box(run(kind, 20_000, Method::Bsr, Some(256), Some(1000), 20)))
        });
    }
    g.finish();
}

criterion_group!(benches, banded_at_scale, lr_sqrt_at_scale, any_schedule);
criterion_main!(benches);
