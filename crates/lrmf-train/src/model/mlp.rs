//! A small multilayer perceptron (or, with no hidden layer, multinomial logistic regression) on
//! flattened images, for smoke tests and quick experiments.
//!
//! Inputs are the image pixels in the batch's own N×C×H×W order. Parameter order: each linear
//! layer's weight (out × in) then bias, input to output.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Batch;
use super::classifier::{Head, SequentialClassifier};
use super::driver::DENSE_CHUNK;
use super::grad::NormStrategy;
use super::linear::Linear;
use super::sequential::{Act, Sequential, Stage};
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
    head: Head,
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
        let classes = config.classes;
        Ok(Mlp {
            config,
            head: Head {
                net: Sequential { stages },
                classes,
                strategy: NormStrategy::Auto,
                chunk: DENSE_CHUNK,
            },
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
        &self.head.net
    }

    /// The configuration.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// Examples per forward/backward chunk (default [`DENSE_CHUNK`](super::DENSE_CHUNK)).
    pub fn set_chunk_size(&mut self, chunk: usize) -> Result<()> {
        self.head.set_chunk(chunk)
    }
}

impl SequentialClassifier for Mlp {
    fn head(&self) -> &Head {
        &self.head
    }

    fn head_mut(&mut self) -> &mut Head {
        &mut self.head
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
}
