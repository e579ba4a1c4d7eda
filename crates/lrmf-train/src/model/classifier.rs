//! What the CNN and the MLP share: a [`Sequential`] network read as a classifier (softmax
//! cross-entropy on its outputs) and driven chunk by chunk, so that each of them writes only its
//! layers and its input conversion, and [`DpModel`] is implemented once for both.

use super::driver;
use super::grad::{GradMode, NormStrategy, ParamGrad};
use super::loss::cross_entropy;
use super::sequential::{Act, Sequential};
use super::{Batch, DpModel, GradientStats};
use crate::{Result, TrainError};

/// The layers and settings of a sequential classifier.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    /// The layers, input to logits.
    pub net: Sequential,
    /// Number of classes (the width of the logits).
    pub classes: usize,
    /// How convolutions compute per-example norms.
    pub strategy: NormStrategy,
    /// Examples per forward/backward chunk.
    pub chunk: usize,
}

impl Head {
    /// One chunk's (Σ loss, #correct, layer gradients in parameter order).
    ///
    /// Complexity: one forward and one backward pass of the network.
    pub fn step(
        &self,
        x: Act,
        labels: &[u32],
        mode: GradMode,
    ) -> Result<(f64, usize, Vec<ParamGrad>)> {
        let ((loss, correct), _, grads) =
            self.net
                .forward_backward(x, mode, self.strategy, false, |y| {
                    let (loss, correct, d) = cross_entropy(&y.data, labels, self.classes)?;
                    Ok(((loss, correct), d))
                })?;
        Ok((loss, correct, grads))
    }

    /// Sets the chunk size (≥ 1).
    pub fn set_chunk(&mut self, chunk: usize) -> Result<()> {
        driver::check_chunk(chunk)?;
        self.chunk = chunk;
        Ok(())
    }
}

/// A model made of a [`Head`] and an input conversion; [`DpModel`] follows from these.
pub(crate) trait SequentialClassifier: Sync {
    /// The layers and settings.
    fn head(&self) -> &Head;
    /// The layers and settings, mutably.
    fn head_mut(&mut self) -> &mut Head;
    /// A checked batch → the network's input activations and the labels.
    fn input(&self, batch: &Batch) -> Result<(Act, Vec<u32>)>;

    /// One chunk's (Σ loss, #correct, layer gradients in parameter order).
    fn step(&self, batch: &Batch, mode: GradMode) -> Result<(f64, usize, Vec<ParamGrad>)> {
        let (x, labels) = self.input(batch)?;
        self.head().step(x, &labels, mode)
    }
}

impl<T: SequentialClassifier> DpModel for T {
    fn num_params(&self) -> usize {
        self.head().net.num_params()
    }

    fn params(&self) -> Vec<f32> {
        self.head().net.params()
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        check_params(params, self.num_params())?;
        self.head_mut().net.set_params(params)
    }

    fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.head().net.param_shapes("net.")
    }

    /// Σ_i min(1, C'/‖g_i‖)·g_i with C' = C·(1 − 1e-5): per-example norms come from one backward
    /// pass (per-example conv gradients by batched gemm or ghost norms, closed forms for linear
    /// layers and group norm), and the clipped sum from the same quantities — no second
    /// backward.
    ///
    /// # Privacy contract
    /// Each example contributes a vector of norm ≤ C (up to f32 rounding below the 1e-5 margin),
    /// so adding or removing one example changes `grad_sum` by at most C in ℓ₂.
    ///
    /// Complexity: ≈ 3× the forward cost (forward, input-gradient and weight-gradient products)
    /// plus O(N·d) memory traffic for materialised per-example gradients.
    fn clipped_gradient_sum(&self, batch: &Batch, clip: Option<f32>) -> Result<GradientStats> {
        driver::clipped_sum(
            batch,
            self.head().chunk,
            self.num_params(),
            clip,
            |b, mode| self.step(b, mode),
        )
    }

    fn evaluate(&self, batch: &Batch) -> Result<(f64, usize)> {
        let head = self.head();
        driver::evaluate(batch, head.chunk, |b| {
            let (x, labels) = self.input(b)?;
            let y = head.net.forward(x)?;
            let (loss, correct, _) = cross_entropy(&y.data, &labels, head.classes)?;
            Ok((loss, correct))
        })
    }
}

/// Checks a parameter vector: length `d` and finite entries.
pub(crate) fn check_params(params: &[f32], d: usize) -> Result<()> {
    if params.len() != d {
        return Err(TrainError::Shape(format!(
            "expected {d} parameters, got {}",
            params.len()
        )));
    }
    if let Some(i) = params.iter().position(|p| !p.is_finite()) {
        return Err(TrainError::Diverged(format!(
            "parameter {i} is {}",
            params[i]
        )));
    }
    Ok(())
}
