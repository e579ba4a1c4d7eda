//! A small multilayer perceptron (or, with no hidden layer, multinomial logistic regression) on
//! flattened images, for smoke tests and quick experiments.
//!
//! Inputs are the image pixels in the batch's own N×C×H×W order. Parameter order: each linear
//! layer's weight (out × in) then bias, input to output.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::cnn::check_params;
use super::driver::{self, DENSE_CHUNK};
use super::grad::{GradMode, NormStrategy, ParamGrad};
use super::linear::Linear;
use super::loss::cross_entropy;
use super::sequential::{Act, Sequential, Stage};
use super::{Batch, DpModel, GradientStats};
use crate::{Result, TrainError};

/// Shape of an [`Mlp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlpConfig {
    /// Input features C·H·W (≥ 1).
    pub inputs: usize,
    /// Hidden widths (each ≥ 1; empty = logistic regression).
    pub hidden: Vec<usize>,
    /// Number of classes (≥ 2).
    pub classes: usize,
}

/// Linear → ReLU → … → linear on flattened images.
#[derive(Debug, Clone)]
pub struct Mlp {
    config: MlpConfig,
    net: Sequential,
    chunk: usize,
}

impl Mlp {
    /// An MLP with every linear layer ~ U(±1/√in), drawn from ChaCha8 seeded by `seed`.
    pub fn new(config: MlpConfig, seed: u64) -> Result<Self> {
        let bad = |key: &str, message: String| {
            Err(TrainError::Config {
                key: format!("mlp.{key}"),
                message,
            })
        };
        if config.inputs == 0 {
            return bad("inputs", "must be ≥ 1".into());
        }
        if config.hidden.contains(&0) {
            return bad(
                "hidden",
                format!("widths must be ≥ 1, got {:?}", config.hidden),
            );
        }
        if config.classes < 2 {
            return bad("classes", format!("must be ≥ 2, got {}", config.classes));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut stages = Vec::new();
        let mut width = config.inputs;
        for &h in &config.hidden {
            stages.push(Stage::Linear(Linear::new(width, h, &mut rng)));
            stages.push(Stage::Relu);
            width = h;
        }
        stages.push(Stage::Linear(Linear::new(width, config.classes, &mut rng)));
        Ok(Mlp {
            config,
            net: Sequential { stages },
            chunk: DENSE_CHUNK,
        })
    }

    /// Logistic regression (no hidden layer).
    pub fn logistic(inputs: usize, classes: usize, seed: u64) -> Result<Self> {
        Mlp::new(
            MlpConfig {
                inputs,
                hidden: Vec::new(),
                classes,
            },
            seed,
        )
    }

    /// The layers (for the oracle tests).
    #[cfg(test)]
    pub(crate) fn net(&self) -> &Sequential {
        &self.net
    }

    /// The configuration.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// Examples per forward/backward chunk (default 16).
    pub fn set_chunk_size(&mut self, chunk: usize) -> Result<()> {
        driver::check_chunk(chunk)?;
        self.chunk = chunk;
        Ok(())
    }

    fn input(&self, batch: &Batch) -> Result<(Act, Vec<u32>)> {
        let Batch::Images {
            pixels,
            shape: (c, h, w),
            labels,
        } = batch
        else {
            return Err(TrainError::Shape(
                "the MLP needs an image batch, got tokens".into(),
            ));
        };
        if c * h * w != self.config.inputs {
            return Err(TrainError::Shape(format!(
                "the MLP expects {} features per example, got {c}×{h}×{w}",
                self.config.inputs
            )));
        }
        let act = Act {
            data: pixels.clone(),
            n: labels.len(),
            h: 1,
            w: 1,
            c: self.config.inputs,
        };
        Ok((act, labels.clone()))
    }

    pub(crate) fn step(
        &self,
        batch: &Batch,
        mode: GradMode,
    ) -> Result<(f64, usize, Vec<ParamGrad>)> {
        let (x, labels) = self.input(batch)?;
        let classes = self.config.classes;
        let ((loss, correct), _, grads) =
            self.net
                .forward_backward(x, mode, NormStrategy::Auto, false, |y| {
                    let (loss, correct, d) = cross_entropy(&y.data, &labels, classes)?;
                    Ok(((loss, correct), d))
                })?;
        Ok((loss, correct, grads))
    }
}

impl DpModel for Mlp {
    fn num_params(&self) -> usize {
        self.net.num_params()
    }

    fn params(&self) -> Vec<f32> {
        self.net.params()
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        check_params(params, self.num_params())?;
        self.net.set_params(params)
    }

    fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.net.param_shapes("net.")
    }

    /// Σ_i min(1, C'/‖g_i‖)·g_i with C' = C·(1 − 1e-5); linear layers use the closed form
    /// ‖g_i‖² = (‖x_i‖² + 1)·‖δ_i‖².
    ///
    /// # Privacy contract
    /// Each example contributes a vector of norm ≤ C (up to f32 rounding below the 1e-5 margin).
    ///
    /// Complexity: ≈ 3× the forward cost O(N·Σ in·out).
    fn clipped_gradient_sum(&self, batch: &Batch, clip: Option<f32>) -> Result<GradientStats> {
        driver::clipped_sum(batch, self.chunk, self.num_params(), clip, |b, m| {
            self.step(b, m)
        })
    }

    fn evaluate(&self, batch: &Batch) -> Result<(f64, usize)> {
        driver::evaluate(batch, self.chunk, |b| {
            let (x, labels) = self.input(b)?;
            let y = self.net.forward(x)?;
            let (loss, correct, _) = cross_entropy(&y.data, &labels, self.config.classes)?;
            Ok((loss, correct))
        })
    }
}
