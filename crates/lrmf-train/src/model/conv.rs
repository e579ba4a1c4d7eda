//! A stride-1, zero-padded 2-D convolution on channels-last activations, computed as
//! `im2col` + one matrix product so that both the forward and every backward product are large
//! gemms, and with per-example weight gradients (materialised or ghost norms) for clipping.
//!
//! Parameter layout: weight `W` as C_out × (k·k·C_in) with columns ordered (ky, kx, c_in)
//! (PyTorch's O×I×kH×kW permuted to O×kH×kW×I), then the bias (C_out).

use candle_core::Tensor;

use super::grad::{GradMode, NormStrategy, ParamGrad, conv_prefers_ghost};
use super::init::uniform;
use super::ops::{self, ConvGeometry};
use super::sequential::Act;
use crate::Result;

/// A k×k convolution, stride 1, `pad` zeros on each side.
#[derive(Debug, Clone)]
pub(crate) struct Conv2d {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel side.
    pub k: usize,
    /// Padding on each side.
    pub pad: usize,
    /// C_out × (k·k·C_in).
    pub weight: Vec<f32>,
    /// C_out.
    pub bias: Vec<f32>,
}

/// What the backward pass needs from the forward pass.
pub(crate) struct ConvCache {
    /// im2col of the input, (N·Ho·Wo) × (k·k·C_in).
    a: Tensor,
    /// The input geometry.
    geom: ConvGeometry,
    /// Batch size.
    n: usize,
}

impl Conv2d {
    /// PyTorch's default initialisation: weight and bias ~ U(−1/√fan_in, 1/√fan_in),
    /// fan_in = k·k·C_in.
    pub fn new(cin: usize, cout: usize, k: usize, pad: usize, rng: &mut impl rand::Rng) -> Self {
        let fan_in = k * k * cin;
        let bound = 1.0 / (fan_in as f32).sqrt();
        Conv2d {
            cin,
            cout,
            k,
            pad,
            weight: uniform(rng, cout * fan_in, bound),
            bias: uniform(rng, cout, bound),
        }
    }

    /// Number of parameters C_out·k·k·C_in + C_out.
    pub fn num_params(&self) -> usize {
        self.weight.len() + self.bias.len()
    }

    fn geometry(&self, x: &Act) -> ConvGeometry {
        ConvGeometry {
            h: x.h,
            w: x.w,
            c: self.cin,
            k: self.k,
            pad: self.pad,
        }
    }

    /// y = im2col(x)·Wᵀ + b.
    ///
    /// Complexity: O(N·Ho·Wo·k²·C_in·C_out) in one gemm.
    pub fn forward(&self, x: &Act, keep: bool) -> Result<(Act, Option<ConvCache>)> {
        let g = self.geometry(x);
        let (ho, wo, kk) = (g.out_h(), g.out_w(), g.cols());
        let rows = x.n * ho * wo;
        let a = ops::tensor(ops::im2col(&x.data, x.n, g), &[rows, kk])?;
        let w = ops::tensor_from_slice(&self.weight, &[self.cout, kk])?;
        let y = a.matmul(&w.t()?)?;
        let mut data = ops::with_slice(&y, |s| s.to_vec())?;
        for row in data.chunks_mut(self.cout) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v += b;
            }
        }
        let out = Act {
            data,
            n: x.n,
            h: ho,
            w: wo,
            c: self.cout,
        };
        Ok((out, keep.then_some(ConvCache { a, geom: g, n: x.n })))
    }

    /// Back-propagates `dy` (N·Ho·Wo × C_out): returns the input gradient (when asked) and the
    /// parameter gradient in the form `mode` needs.
    ///
    /// Per-example gradient of example i: G_i = Δ_iᵀA_i (C_out × k²C_in) and Σ_s δ_{i,s}. With
    /// `Materialize` it is computed by a batched gemm (the same multiply-adds as the summed
    /// gradient); with `Ghost`, ‖G_i‖²_F = ⟨A_iA_iᵀ, Δ_iΔ_iᵀ⟩_F (2·t² (k²C_in + C_out) per example,
    /// t = Ho·Wo) and the clipped sum is deferred to one weighted gemm.
    ///
    /// Complexity: input gradient one gemm plus col2im; parameter gradient as above.
    pub fn backward(
        &self,
        cache: ConvCache,
        dy: Vec<f32>,
        mode: GradMode,
        strategy: NormStrategy,
        need_dx: bool,
    ) -> Result<(Option<Act>, ParamGrad)> {
        let ConvCache { a, geom, n } = cache;
        let (kk, m) = (geom.cols(), self.cout);
        let t = geom.out_h() * geom.out_w();
        let d = ops::tensor(dy, &[n * t, m])?;
        let dx = if need_dx {
            let w = ops::tensor_from_slice(&self.weight, &[m, kk])?;
            let da = d.matmul(&w)?;
            let data = ops::with_slice(&da, |s| ops::col2im(s, n, geom))?;
            Some(Act {
                data,
                n,
                h: geom.h,
                w: geom.w,
                c: self.cin,
            })
        } else {
            None
        };
        let grad = match mode {
            GradMode::Sum => {
                let g = d.t()?.matmul(&a)?;
                let mut out = ops::with_slice(&g, |s| {
                    let mut v = Vec::with_capacity(m * kk + m);
                    v.extend_from_slice(s);
                    v
                })?;
                let bias = ops::with_slice(&d, |s| column_sums(s, m))?;
                out.extend(bias);
                ParamGrad::Summed(out)
            }
            GradMode::PerExample => {
                let ghost = match strategy {
                    NormStrategy::Auto => conv_prefers_ghost(t, kk, m),
                    NormStrategy::Materialize => false,
                    NormStrategy::Ghost => true,
                };
                let a3 = a.reshape((n, t, kk))?;
                let d3 = d.reshape((n, t, m))?;
                if ghost {
                    let ga = a3.matmul(&a3.t()?)?;
                    let gd = d3.matmul(&d3.t()?)?;
                    let mut sq = ops::with_slice(&ga, |ga| {
                        ops::with_slice(&gd, |gd| {
                            ga.chunks(t * t)
                                .zip(gd.chunks(t * t))
                                .map(|(x, y)| {
                                    x.iter()
                                        .zip(y)
                                        .map(|(p, q)| (*p as f64) * (*q as f64))
                                        .sum()
                                })
                                .collect::<Vec<f64>>()
                        })
                    })??;
                    let delta = ops::with_slice(&d, |s| s.to_vec())?;
                    for (i, s) in sq.iter_mut().enumerate() {
                        let b = column_sums(&delta[i * t * m..(i + 1) * t * m], m);
                        *s += b.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
                    }
                    ParamGrad::Outer {
                        n,
                        t,
                        a,
                        delta,
                        m,
                        sq_norms: sq,
                    }
                } else {
                    let g = d3.t()?.matmul(&a3)?;
                    let p = m * kk + m;
                    let mut rows = vec![0.0f32; n * p];
                    ops::with_slice(&g, |g| {
                        ops::with_slice(&d, |ds| {
                            ops::par_blocks(&mut rows, p, |i, row| {
                                row[..m * kk].copy_from_slice(&g[i * m * kk..(i + 1) * m * kk]);
                                row[m * kk..].copy_from_slice(&column_sums(
                                    &ds[i * t * m..(i + 1) * t * m],
                                    m,
                                ));
                            })
                        })
                    })??;
                    ParamGrad::PerExample { n, p, rows }
                }
            }
        };
        Ok((dx, grad))
    }
}

/// Sums the rows of a row-major matrix with `m` columns.
pub(crate) fn column_sums(x: &[f32], m: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; m];
    for row in x.chunks(m) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out
}
