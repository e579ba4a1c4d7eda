//! A fully connected layer y = x·Wᵀ + b on one feature vector per example, with the per-example
//! gradient norm in closed form ‖g_i‖² = ‖x_i‖²·‖δ_i‖² + ‖δ_i‖² (no per-example gradient is
//! materialised; the clipped sum is one weighted gemm (wΔ)ᵀX).
//!
//! Parameter layout: weight `W` as out × in (row-major, as in PyTorch), then the bias (out).

use super::conv::column_sums;
use super::grad::{GradMode, ParamGrad};
use super::init::uniform;
use super::native::gemm::{self, View};
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
    x: Vec<f32>,
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
        let mut out = Vec::with_capacity(n * self.output);
        for _ in 0..n {
            out.extend_from_slice(&self.bias);
        }
        let w = View::new(&self.weight, self.output, self.input);
        gemm::matmul(View::new(&x, n, self.input), w.t(), &mut out, true);
        Ok((out, keep.then_some(LinearCache { x, n })))
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
            let mut dx = vec![0.0f32; n * k];
            let w = View::new(&self.weight, m, k);
            gemm::matmul(View::new(&dy, n, m), w, &mut dx, false);
            Some(dx)
        } else {
            None
        };
        let grad = match mode {
            GradMode::Sum => {
                let mut out = vec![0.0f32; m * k + m];
                gemm::matmul(
                    View::new(&dy, n, m).t(),
                    View::new(&x, n, k),
                    &mut out[..m * k],
                    false,
                );
                out[m * k..].copy_from_slice(&column_sums(&dy, m));
                ParamGrad::Summed(out)
            }
            GradMode::PerExample => {
                let sq_norms = (0..n)
                    .map(|i| {
                        let x2 = ops::sq_norm(&x[i * k..(i + 1) * k]);
                        let d2 = ops::sq_norm(&dy[i * m..(i + 1) * m]);
                        (x2 + 1.0) * d2
                    })
                    .collect();
                ParamGrad::Outer {
                    n,
                    t: 1,
                    k,
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
