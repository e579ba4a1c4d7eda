//! Throughput of the streaming noise generators (`lrmf-noise`): per-step time and state bytes
//! for d ∈ {10⁶, 10⁷} and band p ∈ {4, 64, 256}, next to a memory-bandwidth bound (a plain
//! `y += a·x` pass over the same bytes as the p-tap filter).
//!
//! Run: `cargo bench -p lrmf-benches --bench noise`. Goals (2-core machine, d = 10⁶): i.i.d.
//! ≤ 5.2 ms/step (5× jax_privacy's ≈ 26 ms); p = 64 ring-buffer filter ≤ 40 ms/step and within
//! 2× of the bandwidth bound. Configurations whose ring buffer would exceed [`MAX_STATE_BYTES`]
//! are skipped (and say so on stderr). Set-up (allocation, warm-up steps) happens only for the
//! benchmarks that run, so a filter such as `-- noise/iid` is quick.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lrmf_linalg::{LowerTriangular, ToeplitzLower, series};
use lrmf_noise::{CHUNK, CorrelatedNoise, Mode, NoiseGenerator, Seed};
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Duration;

/// Largest ring buffer a benchmark may allocate (the machine has ~23 GB shared with builds).
const MAX_STATE_BYTES: usize = 3 << 30;
/// Steps of the strategy: more than any benchmark runs.
const N: usize = 100_000;
const DIMS: [usize; 2] = [1_000_000, 10_000_000];

fn label(d: usize) -> &'static str {
    if d == 1_000_000 { "d=1e6" } else { "d=1e7" }
}

/// A generator advanced by `warm` steps (so every tap is live) and its output buffer.
fn warmed(c: &LowerTriangular, d: usize, mode: Mode, warm: usize) -> (CorrelatedNoise, Vec<f32>) {
    let mut g = CorrelatedNoise::new(c, d, 1.0, Seed::Fixed(1), mode).unwrap();
    let mut out = vec![0f32; d];
    for _ in 0..warm {
        g.fill_next(&mut out).unwrap();
    }
    eprintln!(
        "noise bench: form {} mode {:?} d {d}: state {} bytes ({:.1} MiB)",
        g.form(),
        g.mode(),
        g.state_bytes(),
        g.state_bytes() as f64 / (1 << 20) as f64
    );
    (g, out)
}

fn configure<'a>(
    cr: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = cr.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group
}

/// Benchmarks one generator; it is built on first use.
fn bench_generator(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    make: impl Fn() -> (CorrelatedNoise, Vec<f32>),
) {
    let mut state = None;
    group.bench_function(id, |b| {
        let (g, out) = state.get_or_insert_with(&make);
        b.iter(|| {
            g.fill_next(out).unwrap();
            black_box(&*out);
        })
    });
}

fn iid(cr: &mut Criterion) {
    let mut group = configure(cr, "noise/iid");
    for d in DIMS {
        let c = LowerTriangular::Identity { n: N };
        group.throughput(Throughput::Elements(d as u64));
        bench_generator(&mut group, BenchmarkId::from_parameter(label(d)), || {
            warmed(&c, d, Mode::Auto, 0)
        });
    }
    group.finish();
}

fn bisr_fir(cr: &mut Criterion) {
    let mut group = configure(cr, "noise/bisr-fir");
    for d in DIMS {
        for p in [4, 64, 256] {
            if p * d * 4 > MAX_STATE_BYTES {
                eprintln!(
                    "noise bench: skip bisr-fir p={p} {}: ring of {} bytes",
                    label(d),
                    p * d * 4
                );
                continue;
            }
            let c = LowerTriangular::InverseToeplitz(
                ToeplitzLower::new(N, series::r_tilde(p)).unwrap(),
            );
            group.throughput(Throughput::Bytes((p * d * 4) as u64));
            bench_generator(
                &mut group,
                BenchmarkId::new(format!("p={p}"), label(d)),
                || warmed(&c, d, Mode::Streaming, p),
            );
            // The bandwidth bound: y += a_k·x_k over the same p·d f32, chunked the same way.
            let a: Vec<f32> = (0..p).map(|k| 1.0 / (k + 1) as f32).collect();
            let mut bufs = None;
            group.bench_function(
                BenchmarkId::new(format!("axpy-bound p={p}"), label(d)),
                |b| {
                    let (xs, y) = bufs.get_or_insert_with(|| (vec![1.0f32; p * d], vec![0f32; d]));
                    b.iter(|| {
                        y.par_chunks_mut(CHUNK)
                            .zip(xs.par_chunks(CHUNK * p))
                            .for_each(|(y, x)| {
                                let len = y.len();
                                for (k, &ak) in a.iter().enumerate() {
                                    for (yi, &xi) in y.iter_mut().zip(&x[k * len..(k + 1) * len]) {
                                        *yi += ak * xi;
                                    }
                                }
                            });
                        black_box(&*y);
                    })
                },
            );
        }
    }
    group.finish();
}

fn bsr_recursion(cr: &mut Criterion) {
    let mut group = configure(cr, "noise/bsr-recursion");
    for d in DIMS {
        for p in [4, 64, 256] {
            if (p - 1) * d * 4 > MAX_STATE_BYTES {
                eprintln!("noise bench: skip bsr-recursion p={p} {}", label(d));
                continue;
            }
            let c = LowerTriangular::Toeplitz(ToeplitzLower::new(N, series::r(p)).unwrap());
            group.throughput(Throughput::Bytes(((p - 1) * d * 4) as u64));
            bench_generator(
                &mut group,
                BenchmarkId::new(format!("p={p}"), label(d)),
                || warmed(&c, d, Mode::Streaming, p),
            );
        }
    }
    group.finish();
}

fn bisr_regenerate(cr: &mut Criterion) {
    let mut group = configure(cr, "noise/bisr-regenerate");
    let d = 1_000_000;
    for p in [4, 16] {
        let c =
            LowerTriangular::InverseToeplitz(ToeplitzLower::new(N, series::r_tilde(p)).unwrap());
        group.throughput(Throughput::Elements((p * d) as u64));
        // Start at step p so every tap is live (regeneration needs no warm-up steps).
        bench_generator(
            &mut group,
            BenchmarkId::new(format!("p={p}"), label(d)),
            || {
                let (mut g, out) = warmed(&c, d, Mode::Regenerate, 0);
                let mut s = g.save_state();
                s.step = p;
                g.restore(&s).unwrap();
                (g, out)
            },
        );
    }
    group.finish();
}

criterion_group!(benches, iid, bisr_fir, bsr_recursion, bisr_regenerate);
criterion_main!(benches);
