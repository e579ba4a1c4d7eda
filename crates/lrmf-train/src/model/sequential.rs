//! A chain of layers on channels-last activations (N×H×W×C; feature vectors are N×1×1×C) with
//! a hand-written backward pass that hands each parameterised layer's gradient to the clipper
//! in the form it needs (plain sum, materialised per-example, or deferred factors).

use super::conv::{Conv2d, ConvCache};
use super::grad::{GradMode, NormStrategy, ParamGrad};
use super::group_norm::{GnCache, GroupNorm};
use super::linear::{Linear, LinearCache};
use super::pool::{self, PoolCache};
use crate::{Result, TrainError};

/// Activations of a batch, channels-last.
#[derive(Debug, Clone)]
pub(crate) struct Act {
    /// N·H·W·C values.
    pub data: Vec<f32>,
    /// Examples N.
    pub n: usize,
    /// Height H.
    pub h: usize,
    /// Width W.
    pub w: usize,
    /// Channels C.
    pub c: usize,
}

/// One layer of a [`Sequential`].
#[derive(Debug, Clone)]
pub(crate) enum Stage {
    /// Convolution (parameters: weight, bias).
    Conv(Conv2d),
    /// Group norm (parameters: γ, β).
    GroupNorm(GroupNorm),
    /// ReLU.
    Relu,
    /// 2×2 max pool.
    MaxPool2,
    /// N×H×W×C → N×1×1×(H·W·C), features ordered (h, w, c).
    Flatten,
    /// Dense layer on N×1×1×C (parameters: weight, bias).
    Linear(Linear),
}

/// Per-stage forward state.
enum Cache {
    Conv(ConvCache),
    GroupNorm(GnCache),
    Relu(Vec<bool>),
    MaxPool(PoolCache),
    Flatten(usize, usize, usize),
    Linear(LinearCache),
}

/// Layers applied in order.
#[derive(Debug, Clone)]
pub(crate) struct Sequential {
    /// The layers.
    pub stages: Vec<Stage>,
}

impl Sequential {
    /// Σ of the layers' parameter counts.
    pub fn num_params(&self) -> usize {
        self.stages
            .iter()
            .map(|s| match s {
                Stage::Conv(c) => c.num_params(),
                Stage::GroupNorm(g) => g.num_params(),
                Stage::Linear(l) => l.num_params(),
                _ => 0,
            })
            .sum()
    }

    /// Mutable views of the parameter blocks in the documented order (per layer, in layer
    /// order: conv weight, bias; group-norm γ, β; linear weight, bias).
    pub fn blocks_mut(&mut self) -> Vec<&mut Vec<f32>> {
        let mut out = Vec::new();
        for s in &mut self.stages {
            match s {
                Stage::Conv(c) => out.extend(c.params_mut()),
                Stage::GroupNorm(g) => {
                    out.push(&mut g.gamma);
                    out.push(&mut g.beta);
                }
                Stage::Linear(l) => {
                    out.push(&mut l.weight);
                    out.push(&mut l.bias);
                }
                _ => {}
            }
        }
        out
    }

    /// Names and shapes of the parameter blocks in the order of [`Self::blocks_mut`], named
    /// `{prefix}{layer}.weight` / `.bias` as PyTorch names them (group norm: γ = weight,
    /// β = bias). Conv weights are `[C_out, kH, kW, C_in]` (channels-last), linear weights
    /// `[out, in]`.
    pub fn param_shapes(&self, prefix: &str) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for (i, s) in self.stages.iter().enumerate() {
            let (w, b) = match s {
                Stage::Conv(c) => (vec![c.cout, c.k, c.k, c.cin], vec![c.cout]),
                Stage::GroupNorm(g) => (vec![g.gamma.len()], vec![g.beta.len()]),
                Stage::Linear(l) => (vec![l.output, l.input], vec![l.output]),
                _ => continue,
            };
            out.push((format!("{prefix}{i}.weight"), w));
            out.push((format!("{prefix}{i}.bias"), b));
        }
        out
    }

    /// The parameters, flattened in the order of [`Self::blocks_mut`].
    pub fn params(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.num_params());
        for s in &self.stages {
            match s {
                Stage::Conv(c) => {
                    out.extend_from_slice(c.weight());
                    out.extend_from_slice(&c.bias);
                }
                Stage::GroupNorm(g) => {
                    out.extend_from_slice(&g.gamma);
                    out.extend_from_slice(&g.beta);
                }
                Stage::Linear(l) => {
                    out.extend_from_slice(&l.weight);
                    out.extend_from_slice(&l.bias);
                }
                _ => {}
            }
        }
        out
    }

    /// Copies `params` (length [`Self::num_params`]) into the layers.
    pub fn set_params(&mut self, params: &[f32]) -> Result<()> {
        let mut offset = 0;
        for b in self.blocks_mut() {
            let len = b.len();
            b.copy_from_slice(&params[offset..offset + len]);
            offset += len;
        }
        Ok(())
    }

    /// Runs the layers; with `keep` it also returns what the backward pass needs.
    ///
    /// Complexity: the sum of the layers' forward costs.
    fn forward_impl(&self, mut x: Act, keep: bool) -> Result<(Act, Vec<Cache>)> {
        let mut caches = Vec::with_capacity(if keep { self.stages.len() } else { 0 });
        for s in &self.stages {
            let cache;
            (x, cache) = match s {
                Stage::Conv(conv) => {
                    if x.c != conv.cin {
                        return Err(TrainError::Shape(format!(
                            "convolution expects {} input channels, got {}",
                            conv.cin, x.c
                        )));
                    }
                    let (y, c) = conv.forward(&x, keep)?;
                    (y, c.map(Cache::Conv))
                }
                Stage::GroupNorm(g) => {
                    let (y, c) = g.forward(&x)?;
                    (y, Some(Cache::GroupNorm(c)))
                }
                Stage::Relu => {
                    let mask = pool::relu_forward(&mut x.data);
                    (x, Some(Cache::Relu(mask)))
                }
                Stage::MaxPool2 => {
                    let (y, c) = pool::maxpool_forward(&x)?;
                    (y, Some(Cache::MaxPool(c)))
                }
                Stage::Flatten => {
                    let (h, w, c) = (x.h, x.w, x.c);
                    (
                        Act {
                            data: x.data,
                            n: x.n,
                            h: 1,
                            w: 1,
                            c: h * w * c,
                        },
                        Some(Cache::Flatten(h, w, c)),
                    )
                }
                Stage::Linear(l) => {
                    if x.h * x.w * x.c != l.input {
                        return Err(TrainError::Shape(format!(
                            "linear layer expects {} features, got {}",
                            l.input,
                            x.h * x.w * x.c
                        )));
                    }
                    let n = x.n;
                    let (y, c) = l.forward(x.data, n, keep)?;
                    (
                        Act {
                            data: y,
                            n,
                            h: 1,
                            w: 1,
                            c: l.output,
                        },
                        c.map(Cache::Linear),
                    )
                }
            };
            if keep {
                caches.push(
                    cache.ok_or_else(|| TrainError::Other("internal: missing cache".into()))?,
                );
            }
        }
        Ok((x, caches))
    }

    /// The output for `x`, keeping nothing for a backward pass.
    pub fn forward(&self, x: Act) -> Result<Act> {
        Ok(self.forward_impl(x, false)?.0)
    }

    /// Forward then backward: `loss_grad` maps the output to (value, dL/doutput); returns the
    /// value, the gradient w.r.t. the input (when `need_dx`) and the layer gradients in
    /// parameter order.
    ///
    /// Complexity: about three times the forward cost (two gemms per layer in the backward pass).
    pub fn forward_backward<T>(
        &self,
        x: Act,
        mode: GradMode,
        strategy: NormStrategy,
        need_dx: bool,
        loss_grad: impl FnOnce(&Act) -> Result<(T, Vec<f32>)>,
    ) -> Result<(T, Option<Act>, Vec<ParamGrad>)> {
        let (y, caches) = self.forward_impl(x, true)?;
        let (value, dy) = loss_grad(&y)?;
        let mut d = Act {
            data: dy,
            n: y.n,
            h: y.h,
            w: y.w,
            c: y.c,
        };
        drop(y);
        let mut grads = Vec::new();
        // Index of the first layer whose input gradient matters: everything before the first
        // parameterised layer needs no input gradient unless the caller asks for it.
        let first_param = self
            .stages
            .iter()
            .position(|s| matches!(s, Stage::Conv(_) | Stage::GroupNorm(_) | Stage::Linear(_)))
            .unwrap_or(self.stages.len());
        for (idx, (s, cache)) in self.stages.iter().zip(caches).enumerate().rev() {
            let want_dx = need_dx || idx > first_param;
            match (s, cache) {
                (Stage::Conv(conv), Cache::Conv(c)) => {
                    let n = d.n;
                    let (dx, g) = conv.backward(c, d.data, mode, strategy, want_dx)?;
                    grads.push(g);
                    d = dx.unwrap_or(Act {
                        data: Vec::new(),
                        n,
                        h: 0,
                        w: 0,
                        c: 0,
                    });
                }
                (Stage::GroupNorm(gn), Cache::GroupNorm(c)) => {
                    let (dx, g) = gn.backward(c, &d, mode);
                    grads.push(g);
                    d = dx;
                }
                (Stage::Relu, Cache::Relu(mask)) => pool::relu_backward(&mut d.data, &mask),
                (Stage::MaxPool2, Cache::MaxPool(c)) => d = pool::maxpool_backward(&c, &d),
                (Stage::Flatten, Cache::Flatten(h, w, c)) => {
                    d = Act {
                        data: d.data,
                        n: d.n,
                        h,
                        w,
                        c,
                    };
                }
                (Stage::Linear(l), Cache::Linear(c)) => {
                    let n = d.n;
                    let (dx, g) = l.backward(c, d.data, mode, want_dx)?;
                    grads.push(g);
                    d = Act {
                        data: dx.unwrap_or_default(),
                        n,
                        h: 1,
                        w: 1,
                        c: l.input,
                    };
                }
                _ => {
                    return Err(TrainError::Other(
                        "internal: cache does not match its layer".into(),
                    ));
                }
            }
        }
        grads.reverse();
        Ok((value, need_dx.then_some(d), grads))
    }
}
