//! Time of one training step of the CIFAR-10 CNN (`lrmf-train`) at batch 256: the non-private
//! gradient (`clip = None`) against the private one (per-example clipping, `clip = Some(1.0)`),
//! in s/step and images/s.
//!
//! Run: `cargo bench -p lrmf-benches --bench train_step`; the side-by-side comparison with
//! PyTorch and Opacus is `cargo xtask bench-train --python PATH` (table in docs/RESULTS.md).
//!
//! Before/after the AVX-512 gemm, the resident step buffers and the vectorised group norm, measured
//! 2026-12-02 on the 2-core build machine with both builds run alternately under the same load
//! (load average 9–10 from other builds, so CPU seconds per step are the comparable number;
//! `cargo xtask bench-train --steps 2` from the old and the new tree): plain CNN non-private
//! 2.88 → 1.86–1.93 CPU s, private 3.30–3.60 → 2.17–2.29; with group norm non-private
//! 3.52–3.61 → 2.12 (after the group-norm change), private 4.39–4.47 → 2.49–2.67.
//!
//! Before/after chunk-parallel batches (chunks of 8 examples, one per thread, single-threaded
//! layers; no zero-filled im2col and input-gradient buffers), 2026-12-02, idle machine,
//! `cargo xtask bench-train` at the parent commit and after (wall s/step, CPU s in parentheses):
//! CNN non-private 1.115 (1.748) → 0.618–0.70 (1.22–1.36), private 1.135 (1.817) → 0.70–0.85;
//! with group norm non-private 1.134 (1.785) → 0.69–0.84, private 1.220 (1.920) → 0.71–0.83.
//! A CIFAR-10 epoch of `configs/cifar10-bisr-lr.toml` (private, batch ≈ 1000, evaluation
//! included): 4.8 min → 3.2 min (3 epochs in 571 s, 58.5 % test accuracy).
//!
//! Before/after implicit-GEMM convolutions (im2col read in place from the padded input) and
//! 8-row gemm tiles (the 12-row tile spilled accumulators), 2026-12-02, idle machine: one
//! private epoch of `configs/cifar10-bisr-lr.toml` 189 s (372 CPU-s) → 141 s (274 CPU-s); the
//! config's 3 epochs 571 s → 431 s (2.4 min per epoch, 57.9 % test accuracy); `cargo xtask
//! bench-train --steps 8 --python …` CNN non-private 0.692 → 0.582 s, private 0.794 → 0.644 s;
//! with group norm 0.761 → 0.666 s and 0.727 → 0.764 s (load 2.0 during the second run); peak
//! resident memory of a private step at batch 1024 150 → 64 MiB. This bench, run at the parent
//! commit f5478ad (`-- --save-baseline before`) and after (`-- --baseline before`) back to back
//! on the idle machine: plain non-private 775 → 548 ms (−31 %), private 852 → 593 ms (−33 %);
//! group norm non-private 813 → 636 ms (−20 %), private 917 → 646 ms (−30 %), p < 0.05 each.
//!
//! bf16 convolutions on AMX tiles (`gn/private_bf16`, `[model] matmul = "bf16"`), 2026-12-02,
//! `cargo bench -p lrmf-benches --bench train_step -- gn/private`, study paused: group norm,
//! private 701 ms (f32) → 400 ms (bf16), 1.75×; one private epoch of the config above 145.3 s →
//! 89.7 s, back to back.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lrmf_train::model::{Batch, Cnn, CnnConfig, DpModel, Precision};

/// Batch size of the benchmark.
const BATCH: usize = 256;

/// A deterministic CIFAR-shaped batch (pixel values in [−1, 1], labels 0..10).
fn batch() -> Batch {
    let s = 3 * 32 * 32;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let pixels = (0..BATCH * s)
        .map(|_| (next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect();
    let labels = (0..BATCH).map(|_| (next() % 10) as u32).collect();
    Batch::Images {
        pixels,
        shape: (3, 32, 32),
        labels,
    }
}

fn train_step(c: &mut Criterion) {
    let data = batch();
    let mut group = c.benchmark_group("cifar10_cnn_step_b256");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(25))
        .warm_up_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(BATCH as u64));
    for group_norm in [false, true] {
        let model = Cnn::new(CnnConfig::cifar10(group_norm), 1).expect("model");
        let tag = if group_norm { "gn" } else { "plain" };
        group.bench_function(format!("{tag}/non_private"), |b| {
            b.iter(|| black_box(model.clipped_gradient_sum(&data, None).expect("step")))
        });
        group.bench_function(format!("{tag}/private"), |b| {
            b.iter(|| black_box(model.clipped_gradient_sum(&data, Some(1.0)).expect("step")))
        });
    }
    // The opt-in bf16 convolutions (AMX tiles where the machine has them, elsewhere the f32
    // kernels on inputs rounded to bf16: slower than f32 there).
    let mut model = Cnn::new(CnnConfig::cifar10(true), 1).expect("model");
    model.set_matmul(Precision::Bf16);
    group.bench_function("gn/private_bf16", |b| {
        b.iter(|| black_box(model.clipped_gradient_sum(&data, Some(1.0)).expect("step")))
    });
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
