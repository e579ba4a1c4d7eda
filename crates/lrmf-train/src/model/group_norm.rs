//! Group normalisation on channels-last activations (per example, per group of C/G channels:
//! x̂ = (x − μ)/√(σ² + ε) over the group's H·W·C/G values, biased variance, ε = 1e-5;
//! y = γ_c·x̂ + β_c). Its per-example parameter gradients are tiny (2C values) and are
//! materialised directly.
//!
//! Parameter layout: γ (C), then β (C).

use super::grad::{GradMode, ParamGrad};
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
        let (g, cg, hw) = (self.groups, c / self.groups, x.h * x.w);
        let mut xhat = vec![0.0f32; x.data.len()];
        let mut inv_std = vec![0.0f32; x.n * g];
        let count = (hw * cg) as f64;
        for i in 0..x.n {
            let xi = &x.data[i * hw * c..(i + 1) * hw * c];
            for gi in 0..g {
                let (mut s, mut s2) = (0.0f64, 0.0f64);
                for p in 0..hw {
                    for &v in &xi[p * c + gi * cg..p * c + (gi + 1) * cg] {
                        s += v as f64;
                    }
                }
                let mean = s / count;
                for p in 0..hw {
                    for &v in &xi[p * c + gi * cg..p * c + (gi + 1) * cg] {
                        s2 += (v as f64 - mean).powi(2);
                    }
                }
                let inv = 1.0 / (s2 / count + GN_EPS as f64).sqrt();
                inv_std[i * g + gi] = inv as f32;
                for p in 0..hw {
                    for ch in gi * cg..(gi + 1) * cg {
                        let o = i * hw * c + p * c + ch;
                        xhat[o] = ((xi[p * c + ch] as f64 - mean) * inv) as f32;
                    }
                }
            }
        }
        let mut data = xhat.clone();
        for row in data.chunks_mut(c) {
            for ((v, ga), be) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *v = *v * ga + be;
            }
        }
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
        let mut rows = vec![0.0f32; n * 2 * c];
        let mut dx = vec![0.0f32; dy.data.len()];
        let count = (hw * cg) as f64;
        for i in 0..n {
            let base = i * hw * c;
            let row = &mut rows[i * 2 * c..(i + 1) * 2 * c];
            for p in 0..hw {
                for ch in 0..c {
                    let d = dy.data[base + p * c + ch];
                    row[ch] += d * xhat[base + p * c + ch];
                    row[c + ch] += d;
                }
            }
            for gi in 0..g {
                let (mut m1, mut m2) = (0.0f64, 0.0f64);
                for p in 0..hw {
                    for ch in gi * cg..(gi + 1) * cg {
                        let o = base + p * c + ch;
                        let dh = (dy.data[o] * self.gamma[ch]) as f64;
                        m1 += dh;
                        m2 += dh * xhat[o] as f64;
                    }
                }
                let (m1, m2) = (m1 / count, m2 / count);
                let inv = inv_std[i * g + gi] as f64;
                for p in 0..hw {
                    for ch in gi * cg..(gi + 1) * cg {
                        let o = base + p * c + ch;
                        let dh = (dy.data[o] * self.gamma[ch]) as f64;
                        dx[o] = (inv * (dh - m1 - xhat[o] as f64 * m2)) as f32;
                    }
                }
            }
        }
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
