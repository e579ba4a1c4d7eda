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
        let count = (hw * cg) as f64;
        // Per example and group: the mean, then 1/σ from the centred second moment (two passes
        // over the example, per-channel f64 sums combined by group).
        let stats: Vec<Vec<(f64, f64)>> = ops::par_map(x.n, |i| {
            let xi = &x.data[i * hw * c..(i + 1) * hw * c];
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
        });
        let inv_std: Vec<f32> = stats.iter().flatten().map(|&(_, inv)| inv as f32).collect();
        let mut xhat = vec![0.0f32; x.data.len()];
        ops::par_blocks(&mut xhat, hw * c, |i, block| {
            let xi = &x.data[i * hw * c..(i + 1) * hw * c];
            let (mean, inv): (Vec<f64>, Vec<f64>) = (0..c).map(|ch| stats[i][ch / cg]).unzip();
            for (out, px) in block.chunks_mut(c).zip(xi.chunks(c)) {
                for (((o, &v), m), r) in out.iter_mut().zip(px).zip(&mean).zip(&inv) {
                    *o = ((v as f64 - m) * r) as f32;
                }
            }
        });
        let mut data = vec![0.0f32; xhat.len()];
        ops::par_blocks(&mut data, hw * c, |i, block| {
            let xi = &xhat[i * hw * c..(i + 1) * hw * c];
            for (out, px) in block.chunks_mut(c).zip(xi.chunks(c)) {
                for (((o, &v), ga), be) in out.iter_mut().zip(px).zip(&self.gamma).zip(&self.beta) {
                    *o = v * ga + be;
                }
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
        let (g, cg, hw) = (self.groups, c / self.groups, h * w);
        let count = (hw * cg) as f64;
        // Per example and channel, in f64: Σ_s dy∘x̂ (= dγ) and Σ_s dy (= dβ).
        let sums: Vec<Vec<f64>> = ops::par_map(n, |i| {
            let base = i * hw * c;
            let mut s = vec![0.0f64; 2 * c];
            let (sg, sb) = s.split_at_mut(c);
            for (dp, xp) in dy.data[base..base + hw * c]
                .chunks(c)
                .zip(xhat[base..base + hw * c].chunks(c))
            {
                for (((a, b), &d), &xv) in sg.iter_mut().zip(sb.iter_mut()).zip(dp).zip(xp) {
                    *a += d as f64 * xv as f64;
                    *b += d as f64;
                }
            }
            s
        });
        let rows: Vec<f32> = sums.iter().flatten().map(|&v| v as f32).collect();
        // Per group, with dx̂ = dy·γ: m1 = mean(dx̂) = Σ_{ch∈g} γ_ch·dβ_ch / count and
        // m2 = mean(dx̂∘x̂) = Σ_{ch∈g} γ_ch·dγ_ch / count.
        let mut dx = vec![0.0f32; dy.data.len()];
        ops::par_blocks(&mut dx, hw * c, |i, block| {
            let base = i * hw * c;
            let s = &sums[i];
            let moments: Vec<(f64, f64, f64)> = (0..g)
                .map(|gi| {
                    let chans = gi * cg..(gi + 1) * cg;
                    let m1: f64 = chans
                        .clone()
                        .map(|ch| self.gamma[ch] as f64 * s[c + ch])
                        .sum();
                    let m2: f64 = chans.map(|ch| self.gamma[ch] as f64 * s[ch]).sum();
                    (m1 / count, m2 / count, inv_std[i * g + gi] as f64)
                })
                .collect();
            // Per channel: γ, m1, m2, 1/σ of its group (so the inner loop vectorises).
            let per_ch: Vec<[f64; 4]> = (0..c)
                .map(|ch| {
                    let (m1, m2, inv) = moments[ch / cg];
                    [self.gamma[ch] as f64, m1, m2, inv]
                })
                .collect();
            for ((out, dp), xp) in block
                .chunks_mut(c)
                .zip(dy.data[base..base + hw * c].chunks(c))
                .zip(xhat[base..base + hw * c].chunks(c))
            {
                for (((o, &d), &xv), [ga, m1, m2, inv]) in
                    out.iter_mut().zip(dp).zip(xp).zip(&per_ch)
                {
                    *o = (inv * (d as f64 * ga - m1 - xv as f64 * m2)) as f32;
                }
            }
        });
        let grad = match mode {
            GradMode::PerExample => ParamGrad::PerExample { n, p: 2 * c, rows },
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
