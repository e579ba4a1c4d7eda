//! Group normalisation on channels-last activations (per example, per group of C/G channels:
//! x̂ = (x − μ)/√(σ² + ε) over the group's H·W·C/G values, biased variance, ε = 1e-5;
//! y = γ_c·x̂ + β_c). Its per-example parameter gradients are tiny (2C values) and are
//! materialised directly.
//!
//! Parameter layout: γ (C), then β (C).

use super::grad::{GradMode, ParamGrad};
use super::ops;
use super::sequential::Act;
use crate::{Result, TrainError};

/// ε added to the group variance.
pub(crate) const GN_EPS: f32 = 1e-5;

/// Group norm over `groups` groups of `channels / groups` channels.
#[derive(Debug, Clone)]
pub(crate) struct GroupNorm {
    /// Number of groups G (divides the channel count).
    pub groups: usize,
    /// γ, one per channel (initialised to 1).
    pub gamma: Vec<f32>,
    /// β, one per channel (initialised to 0).
    pub beta: Vec<f32>,
}

/// x̂ and 1/σ per (example, group), kept for the backward pass.
pub(crate) struct GnCache {
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
    n: usize,
    h: usize,
    w: usize,
}

impl GroupNorm {
    /// γ = 1, β = 0; fails unless `groups` divides `channels`.
    pub fn new(groups: usize, channels: usize) -> Result<Self> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(TrainError::Config {
                key: "group_norm.groups".into(),
                message: format!("{groups} groups must divide {channels} channels"),
            });
        }
        Ok(GroupNorm {
            groups,
            gamma: vec![1.0; channels],
            beta: vec![0.0; channels],
        })
    }

    /// Number of parameters 2C.
    pub fn num_params(&self) -> usize {
        2 * self.gamma.len()
    }

    /// Normalises each (example, group) and applies the affine map.
    ///
    /// Complexity: O(N·H·W·C).
    pub fn forward(&self, x: &Act) -> Result<(Act, GnCache)> {
        let c = self.gamma.len();
        if x.c != c {
            return Err(TrainError::Shape(format!(
                "group norm expects {c} channels, got {}",
                x.c
            )));
        }
        let (cg, hw) = (c / self.groups, x.h * x.w);
        let stats: Vec<Vec<(f64, f64)>> = ops::par_map(x.n, |i| {
            group_stats(&x.data[i * hw * c..(i + 1) * hw * c], c, cg)
        });
        let inv_std: Vec<f32> = stats.iter().flatten().map(|&(_, inv)| inv as f32).collect();
        // x̂ = x·(1/σ) − μ/σ and y = γ·x̂ + β, per channel coefficients in f32 (so the
        // element loops vectorise); the statistics above stay in f64.
        let xhat = ops::par_build(x.n, hw * c, |i, out| {
            let xi = &x.data[i * hw * c..(i + 1) * hw * c];
            let (scale, shift): (Vec<f32>, Vec<f32>) = (0..c)
                .map(|ch| {
                    let (m, r) = stats[i][ch / cg];
                    (r as f32, (-m * r) as f32)
                })
                .unzip();
            for px in xi.chunks(c) {
                out.extend(
                    px.iter()
                        .zip(&scale)
                        .zip(&shift)
                        .map(|((&v, a), b)| v * a + b),
                );
            }
        });
        let data = ops::par_build(x.n, hw * c, |i, out| {
            for px in xhat[i * hw * c..(i + 1) * hw * c].chunks(c) {
                out.extend(
                    px.iter()
                        .zip(&self.gamma)
                        .zip(&self.beta)
                        .map(|((&v, ga), be)| v * ga + be),
                );
            }
        });
        Ok((
            Act {
                data,
                n: x.n,
                h: x.h,
                w: x.w,
                c,
            },
            GnCache {
                xhat,
                inv_std,
                n: x.n,
                h: x.h,
                w: x.w,
            },
        ))
    }

    /// Per channel of one example: [γ, m1, m2, 1/σ] of its group, with dx̂ = dy·γ,
    /// m1 = mean(dx̂) = Σ_{ch∈g} γ_ch·dβ_ch / count and m2 = mean(dx̂∘x̂) = Σ_{ch∈g} γ_ch·dγ_ch /
    /// count (`sums` = [dγ; dβ] of the example, `inv_std` its groups' 1/σ), laid out per channel
    /// so the inner loop of the backward pass vectorises.
    fn coefficients(&self, sums: &[f64], inv_std: &[f32], count: f64) -> Vec<[f64; 4]> {
        let c = self.gamma.len();
        let cg = c / self.groups;
        let moments: Vec<(f64, f64)> = (0..self.groups)
            .map(|gi| {
                let chans = gi * cg..(gi + 1) * cg;
                let m1: f64 = chans
                    .clone()
                    .map(|ch| self.gamma[ch] as f64 * sums[c + ch])
                    .sum();
                let m2: f64 = chans.map(|ch| self.gamma[ch] as f64 * sums[ch]).sum();
                (m1 / count, m2 / count)
            })
            .collect();
        (0..c)
            .map(|ch| {
                let (m1, m2) = moments[ch / cg];
                [self.gamma[ch] as f64, m1, m2, inv_std[ch / cg] as f64]
            })
            .collect()
    }

    /// dx = (1/σ)(dx̂ − mean(dx̂) − x̂·mean(dx̂ ∘ x̂)) per group, with dx̂ = dy·γ;
    /// dγ_i = Σ_s dy ∘ x̂, dβ_i = Σ_s dy (per example when `mode` asks).
    ///
    /// Complexity: O(N·H·W·C).
    pub fn backward(&self, cache: GnCache, dy: &Act, mode: GradMode) -> (Act, ParamGrad) {
        let GnCache {
            xhat,
            inv_std,
            n,
            h,
            w,
        } = cache;
        let c = self.gamma.len();
        let (g, hw) = (self.groups, h * w);
        let count = (hw * (c / g)) as f64;
        let sums = channel_sums(&dy.data, &xhat, n, hw, c);
        let rows: Vec<f32> = sums.iter().flatten().map(|&v| v as f32).collect();
        // dx = a·dy + b·x̂ + e per channel, a = γ/σ, b = −m2/σ, e = −m1/σ (coefficients from
        // the f64 moments, the element loop in f32 so it vectorises).
        let dx = ops::par_build(n, hw * c, |i, out| {
            let base = i * hw * c;
            let per_ch: Vec<[f32; 3]> = self
                .coefficients(&sums[i], &inv_std[i * g..(i + 1) * g], count)
                .into_iter()
                .map(|[ga, m1, m2, inv]| {
                    [(inv * ga) as f32, (-inv * m2) as f32, (-inv * m1) as f32]
                })
                .collect();
            for (dp, xp) in dy.data[base..base + hw * c]
                .chunks(c)
                .zip(xhat[base..base + hw * c].chunks(c))
            {
                out.extend(
                    dp.iter()
                        .zip(xp)
                        .zip(&per_ch)
                        .map(|((&d, &xv), [a, b, e])| a * d + b * xv + e),
                );
            }
        });
        let grad = match mode {
            GradMode::PerExample => ParamGrad::per_example(n, 2 * c, rows),
            GradMode::Sum => {
                let mut sum = vec![0.0f32; 2 * c];
                for r in rows.chunks(2 * c) {
                    for (s, v) in sum.iter_mut().zip(r) {
                        *s += v;
                    }
                }
                ParamGrad::Summed(sum)
            }
        };
        (
            Act {
                data: dx,
                n,
                h,
                w,
                c,
            },
            grad,
        )
    }
}

/// Per example and channel, in f64: [Σ_s dy∘x̂ (= dγ); Σ_s dy (= dβ)] (2·C values per example).
///
/// Complexity: O(N·H·W·C), spread over the examples.
fn channel_sums(dy: &[f32], xhat: &[f32], n: usize, hw: usize, c: usize) -> Vec<Vec<f64>> {
    ops::par_map(n, |i| {
        let base = i * hw * c;
        let mut s = vec![0.0f64; 2 * c];
        let (sg, sb) = s.split_at_mut(c);
        for (dp, xp) in dy[base..base + hw * c]
            .chunks(c)
            .zip(xhat[base..base + hw * c].chunks(c))
        {
            for (((a, b), &d), &xv) in sg.iter_mut().zip(sb.iter_mut()).zip(dp).zip(xp) {
                *a += d as f64 * xv as f64;
                *b += d as f64;
            }
        }
        s
    })
}
/// (μ, 1/σ) of each group of one channels-last example `xi` (`c` channels, groups of `cg`):
/// the mean, then 1/σ = 1/√(σ² + ε) from the centred second moment — two passes over the
/// example, per-channel f64 sums combined by group.
fn group_stats(xi: &[f32], c: usize, cg: usize) -> Vec<(f64, f64)> {
    let count = (xi.len() / c * cg) as f64;
    let by_group = |sums: &[f64]| -> Vec<f64> {
        sums.chunks(cg)
            .map(|s| s.iter().sum::<f64>() / count)
            .collect()
    };
    let mut sums = vec![0.0f64; c];
    for px in xi.chunks(c) {
        for (s, &v) in sums.iter_mut().zip(px) {
            *s += v as f64;
        }
    }
    let mean = by_group(&sums);
    let mean_ch: Vec<f64> = (0..c).map(|ch| mean[ch / cg]).collect();
    sums.fill(0.0);
    for px in xi.chunks(c) {
        for ((s, &v), m) in sums.iter_mut().zip(px).zip(&mean_ch) {
            *s += (v as f64 - m).powi(2);
        }
    }
    let var = by_group(&sums);
    mean.into_iter()
        .zip(var)
        .map(|(m, v)| (m, 1.0 / (v + GN_EPS as f64).sqrt()))
        .collect()
}
