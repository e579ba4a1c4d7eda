//! `lrmf noise`: writes the n×d correlated noise matrix σ·C⁻¹Z of a strategy as `.npy`, so its
//! statistics can be checked with numpy.

use crate::strategy::StrategyArgs;
use crate::usage;
use anyhow::{Context, Result};
use clap::Args;
use lrmf_noise::{CorrelatedNoise, Mode, NoiseGenerator, Seed, write_npy_header, write_npy_rows};
use serde::Serialize;
use std::path::PathBuf;

/// Flags of `lrmf noise`.
#[derive(Debug, Clone, Args)]
pub struct NoiseArgs {
    /// The strategy whose C⁻¹ correlates the noise.
    #[command(flatten)]
    pub strategy: StrategyArgs,
    /// Number of coordinates d per step (≥ 1).
    #[arg(long, allow_negative_numbers = true)]
    pub dim: usize,
    /// Standard deviation σ of the base Gaussian Z (finite, ≥ 0). For training noise pass z · sens(C) · clip norm (the `noise_std` of `lrmf calibrate` times the clip norm): the rows are then added to the clipped gradient sums.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub std: f64,
    /// Fixed seed: reproducible but NOT private. Default: a fresh key from the operating system.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output `.npy` file (f32, shape n × d, row t = step t).
    #[arg(long)]
    pub out: PathBuf,
}

/// What `lrmf noise` reports.
#[derive(Debug, Clone, Serialize)]
pub struct NoiseReport {
    /// The output file.
    pub out: String,
    /// Steps n (rows).
    pub n: usize,
    /// Coordinates d (columns).
    pub dim: usize,
    /// The method.
    pub method: String,
    /// The streaming form used.
    pub form: String,
    /// Bytes of generator state.
    pub state_bytes: usize,
    /// σ.
    pub std: f64,
    /// Whether the seed is suitable for a private release.
    pub private_release_safe: bool,
    /// A warning about the seed, if any.
    pub warning: Option<String>,
}

/// Generates the matrix step by step (memory: the generator's state plus one row) and writes it.
pub fn run(a: &NoiseArgs) -> Result<NoiseReport> {
    if a.dim == 0 {
        return Err(usage(
            "invalid --dim: the number of coordinates must be ≥ 1",
        ));
    }
    if !(a.std.is_finite() && a.std >= 0.0) {
        return Err(usage(format!(
            "invalid --std: {} must be finite and ≥ 0",
            a.std
        )));
    }
    let (problem, f) = a.strategy.factorize()?;
    let n = problem.n();
    crate::budget::check_noise(&a.strategy, a.dim, lrmf_noise::state_rows(&f.c))?;
    let seed = a.seed.map(Seed::Fixed).unwrap_or(Seed::FromOs);
    let mut g = CorrelatedNoise::new(&f.c, a.dim, a.std, seed, Mode::Auto).map_err(usage)?;
    // Write the .npy header and rows incrementally, atomically and privately (the noise
    // removes the privacy of whatever it was added to).
    n.checked_mul(a.dim)
        .and_then(|nd| nd.checked_mul(4))
        .ok_or_else(|| usage("invalid --dim: the file's n·d·4 bytes overflow"))?;
    let cannot = || format!("cannot write {}", a.out.display());
    let mut w = lrmf_io::AtomicFile::create_private(&a.out).with_context(cannot)?;
    write_npy_header(&mut w, n, a.dim)?;
    let mut row = vec![0f32; a.dim];
    for _ in 0..n {
        g.fill_next(&mut row).map_err(usage)?;
        write_npy_rows(&mut w, &row)?;
    }
    w.commit().with_context(cannot)?;
    Ok(NoiseReport {
        out: a.out.display().to_string(),
        n,
        dim: a.dim,
        method: f.name,
        form: g.form().to_string(),
        state_bytes: g.state_bytes(),
        std: a.std,
        private_release_safe: seed.is_private_release_safe(),
        warning: seed.warning().map(str::to_string),
    })
}
