//! Run time of each privacy accountant (issue 3): analytic Gaussian (ε and calibration), RDP and
//! PLD for Poisson DP-SGD (q = 0.01, 1000 steps), and the Monte Carlo balls-in-bins accountant
//! on a BISR strategy (n = 980, b = 98, band 64) at a reduced sample count (10⁵ per direction;
//! the default 10⁶ scales linearly).
//!
//! Run: `cargo bench -p lrmf-benches --bench accounting` (about two minutes).

use criterion::{Criterion, criterion_group, criterion_main};
use lrmf_linalg::{LowerTriangular, ToeplitzLower, series};
use lrmf_privacy::accounting::{
    Accountant, AnalyticGaussian, McOptions, MonteCarloBnb, PldPoisson, RdpPoisson,
};
use lrmf_privacy::{Participation, sensitivity};
use std::hint::black_box;
use std::time::Duration;

fn gaussian(c: &mut Criterion) {
    let mut g = c.benchmark_group("gaussian");
    g.bench_function("epsilon", |b| {
        b.iter(|| AnalyticGaussian.epsilon(black_box(0.5447), 1e-5).unwrap())
    });
    g.bench_function("calibrate", |b| {
        b.iter(|| AnalyticGaussian.calibrate(black_box(9.0), 1e-5).unwrap())
    });
    g.finish();
}

fn poisson(c: &mut Criterion) {
    let mut g = c.benchmark_group("poisson_q0.01_steps1000");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let rdp = RdpPoisson::new(0.01, 1000).unwrap();
    g.bench_function("rdp_epsilon", |b| {
        b.iter(|| rdp.epsilon(black_box(1.0), 1e-5).unwrap())
    });
    let pld = PldPoisson::new(0.01, 1000).unwrap();
    g.bench_function("pld_epsilon", |b| {
        b.iter(|| pld.epsilon(black_box(1.0), 1e-5).unwrap())
    });
    g.finish();
}

fn monte_carlo(c: &mut Criterion) {
    let (n, bins, p) = (980, 98, 64);
    let strategy = LowerTriangular::InverseToeplitz(
        ToeplitzLower::new(n, series::r_tilde(n)[..p].to_vec()).unwrap(),
    );
    let sens = sensitivity(
        &strategy,
        Participation::new(n, Some(bins), n / bins).unwrap(),
    )
    .unwrap()
    .value;
    let options = McOptions {
        samples: 100_000,
        confidence: 0.95,
        seed: Some(1),
    };
    let mut g = c.benchmark_group("mc_bnb_bisr_n980_b98_p64");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("build_gram", |b| {
        b.iter(|| MonteCarloBnb::new(&strategy, bins, sens, options).unwrap())
    });
    let acc = MonteCarloBnb::new(&strategy, bins, sens, options).unwrap();
    g.bench_function("epsilon_1e5_samples", |b| {
        b.iter(|| acc.epsilon(black_box(0.8), 1e-4).unwrap())
    });
    g.finish();
}

criterion_group!(benches, gaussian, poisson, monte_carlo);
criterion_main!(benches);
