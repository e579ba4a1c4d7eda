//! A fully connected layer y = x·Wᵀ + b on one feature vector per example, with the per-example
//! gradient norm in closed form ‖g_i‖² = ‖x_i‖²·‖δ_i‖² + ‖δ_i‖² (no per-example gradient is
//! materialised; the clipped sum is one weighted gemm (wΔ)ᵀX).
//!
//! Parameter layout: weight `W` as out × in (row-major, as in PyTorch), then the bias (out).

use candle_core::Tensor;

use super::conv::column_sums;
use super::grad::{GradMode, ParamGrad};
use super::init::uniform;
use super::ops;
use crate::Result;

/// A dense layer `in → out`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    /// Input features.
    pub input: usize,
    /// Output features.
    pub output: usize,
    /// out × in.
    pub weight: Vec<f32>,
    /// out.
    pub bias: Vec<f32>,
}

/// The layer input, kept for the backward pass: N × in.
pub(crate) struct LinearCache {
    x: Tensor,
    n: usize,
}

impl Linear {
    /// PyTorch's default initialisation: weight and bias ~ U(−1/√in, 1/√in).
    pub fn new(input: usize, output: usize, rng: &mut impl rand::Rng) -> Self {
        let bound = 1.0 / (input as f32).sqrt();
        Linear {
            input,
            output,
            weight: uniform(rng, output * input, bound),
            bias: uniform(rng, output, bound),
        }
    }

    /// Number of parameters out·in + out.
    pub fn num_params(&self) -> usize {
        self.weight.len() + self.bias.len()
    }

    /// y = x·Wᵀ + b for x of N × in.
    ///
    /// Complexity: O(N·in·out) in one gemm.
    pub fn forward(
        &self,
        x: Vec<f32>,
        n: usize,
        keep: bool,
    ) -> Result<(Vec<f32>, Option<LinearCache>)> {
        let xt = ops::tensor(x, &[n, self.input])?;
        let w = ops::tensor_from_slice(&self.weight, &[self.output, self.input])?;
        let y = xt.matmul(&w.t()?)?;
        let mut out = ops::with_slice(&y, |s| s.to_vec())?;
        for row in out.chunks_mut(self.output) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v += b;
            }
        }
        Ok((out, keep.then_some(LinearCache { x: xt, n })))
    }

    /// Back-propagates `dy` (N × out): the input gradient dy·W (when asked) and the parameter
    /// gradient — the sum (dyᵀx, Σ_i dy_i), or per example the closed-form norms
    /// ‖g_i‖² = (‖x_i‖² + 1)·‖δ_i‖² with the sum deferred to one weighted gemm.
    ///
    /// Complexity: O(N·in·out) per gemm; norms O(N·(in + out)).
    pub fn backward(
        &self,
        cache: LinearCache,
        dy: Vec<f32>,
        mode: GradMode,
        need_dx: bool,
    ) -> Result<(Option<Vec<f32>>, ParamGrad)> {
        let LinearCache { x, n } = cache;
        let (k, m) = (self.input, self.output);
        let dx = if need_dx {
            let d = ops::tensor_from_slice(&dy, &[n, m])?;
            let w = ops::tensor_from_slice(&self.weight, &[m, k])?;
            Some(ops::to_vec(&d.matmul(&w)?)?)
        } else {
            None
        };
        let grad = match mode {
            GradMode::Sum => {
                let bias = column_sums(&dy, m);
                let d = ops::tensor(dy, &[n, m])?;
                let mut out = ops::to_vec(&d.t()?.matmul(&x)?)?;
                out.extend(bias);
                ParamGrad::Summed(out)
            }
            GradMode::PerExample => {
                let sq_norms = ops::with_slice(&x, |xs| {
                    (0..n)
                        .map(|i| {
                            let x2: f64 = xs[i * k..(i + 1) * k]
                                .iter()
                                .map(|&v| (v as f64).powi(2))
                                .sum();
                            let d2: f64 = dy[i * m..(i + 1) * m]
                                .iter()
                                .map(|&v| (v as f64).powi(2))
                                .sum();
                            (x2 + 1.0) * d2
                        })
                        .collect::<Vec<f64>>()
                })?;
                ParamGrad::Outer {
                    n,
                    t: 1,
                    a: x,
                    delta: dy,
                    m,
                    sq_norms,
                }
            }
        };
        Ok((dx, grad))
    }
}
