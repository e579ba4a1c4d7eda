//! Models that can produce a per-example-clipped gradient sum: the seam between the candle
//! models and the (candle-free) DP-MF optimizer.
//!
//! Models: [`Cnn`] (CIFAR-10), [`TextClassifier`] (IMDB) and [`Mlp`] (smoke tests). All share a
//! hand-written backward pass over channels-last activations whose matrix products run through
//! the AVX-512 gemm of `native/` (a portable loop elsewhere); batches are cut into chunks that
//! run in parallel, one per thread (`driver.rs`); per-example gradient norms come from the layer inputs and output
//! gradients of that single pass (materialised conv gradients or ghost norms, closed forms for
//! linear layers, token counts for the embedding), and the clipped sum is formed from the same
//! quantities without a second backward pass.

mod classifier;
mod cnn;
mod conv;
mod driver;
mod embedding;
mod grad;
mod group_norm;
mod init;
mod linear;
mod loss;
mod mlp;
mod native;
mod ops;
mod pool;
mod sequential;
#[cfg(test)]
mod tests;
mod text;

pub use cnn::{Cnn, CnnConfig};
pub use driver::{DEFAULT_CHUNK, DENSE_CHUNK};
pub use grad::{CLIP_MARGIN, NormStrategy};
pub use mlp::{Mlp, MlpConfig};
pub use native::gemm::Precision;
pub use text::{TextClassifier, TextConfig};

/// One mini-batch of inputs and labels, in the layout a model expects.
#[derive(Debug, Clone)]
pub enum Batch {
    /// Images, N×C×H×W in row-major order, with N labels.
    Images {
        /// Pixel values, N·C·H·W.
        pixels: Vec<f32>,
        /// (C, H, W).
        shape: (usize, usize, usize),
        /// Class ids, one per example.
        labels: Vec<u32>,
    },
    /// Token sequences, N×L, with N labels.
    Tokens {
        /// Token ids, N·L (0 = padding).
        tokens: Vec<u32>,
        /// Sequence length L.
        len: usize,
        /// Class ids, one per example.
        labels: Vec<u32>,
    },
}

impl Batch {
    /// Number of examples N.
    pub fn len(&self) -> usize {
        match self {
            Batch::Images { labels, .. } | Batch::Tokens { labels, .. } => labels.len(),
        }
    }

    /// True when the batch holds no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one gradient computation returns.
#[derive(Debug, Clone)]
pub struct GradientStats {
    /// Σ_i clip(g_i) over the batch, flattened in the order of [`DpModel::params`]
    /// (the plain sum Σ_i g_i when no clip norm is given).
    pub grad_sum: Vec<f32>,
    /// Σ_i loss_i (cross-entropy).
    pub loss_sum: f64,
    /// Number of correctly classified examples.
    pub correct: usize,
    /// Number of examples whose gradient norm exceeded the clip norm.
    pub clipped: usize,
}

/// A classifier with flat f32 parameters and per-example-clipped gradients.
pub trait DpModel {
    /// Number of scalar parameters d.
    fn num_params(&self) -> usize;
    /// The parameters, flattened (a fixed, documented order).
    fn params(&self) -> Vec<f32>;
    /// Replace the parameters (same order and length as [`DpModel::params`]).
    fn set_params(&mut self, params: &[f32]) -> crate::Result<()>;
    /// Names and shapes of the parameter tensors, in the order of [`DpModel::params`] (their
    /// sizes add up to [`DpModel::num_params`]); the release artifact is written from them.
    /// Default: one flat tensor `params`.
    fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        vec![("params".into(), vec![self.num_params()])]
    }
    /// Σ_i min(1, clip/‖g_i‖)·g_i for the per-example gradients g_i of the summed loss,
    /// or Σ_i g_i when `clip` is `None`.
    fn clipped_gradient_sum(
        &self,
        batch: &Batch,
        clip: Option<f32>,
    ) -> crate::Result<GradientStats>;
    /// (Σ loss, #correct) without gradients.
    fn evaluate(&self, batch: &Batch) -> crate::Result<(f64, usize)>;
}
