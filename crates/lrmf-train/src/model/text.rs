//! The IMDB sentiment classifier: token embedding (V × D) → mean over the non-padding tokens →
//! linear (D → classes). Per-example norms are exact and cheap: the embedding's from token
//! counts, the linear layer's in closed form.
//!
//! Parameter order: the table (V × D, row-major), the linear weight (classes × D), its bias.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::classifier::check_params;
use super::driver::{self, DENSE_CHUNK};
use super::embedding::EmbeddingMean;
use super::grad::{GradMode, NormStrategy, ParamGrad};
use super::linear::Linear;
use super::loss::cross_entropy;
use super::sequential::{Act, Sequential, Stage};
use super::{Batch, DpModel, GradientStats};
use crate::{Result, TrainError};

/// Shape of a [`TextClassifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextConfig {
    /// Vocabulary size V ≥ 2 (token 0 is padding).
    pub vocab: usize,
    /// Embedding width D ≥ 1.
    pub embed_dim: usize,
    /// Number of classes ≥ 2.
    pub classes: usize,
}

/// Embedding + mean pooling + linear classifier.
#[derive(Debug, Clone)]
pub struct TextClassifier {
    config: TextConfig,
    embedding: EmbeddingMean,
    head: Sequential,
    chunk: usize,
}

impl TextClassifier {
    /// A classifier with the table ~ N(0, 1) and the linear layer ~ U(±1/√D), drawn from
    /// ChaCha8 seeded by `seed`.
    pub fn new(config: TextConfig, seed: u64) -> Result<Self> {
        let bad = |key: &str, message: String| {
            Err(TrainError::Config {
                key: format!("text.{key}"),
                message,
            })
        };
        if config.vocab < 2 {
            return bad(
                "vocab",
                format!("must be ≥ 2 (token 0 is padding), got {}", config.vocab),
            );
        }
        if config.embed_dim == 0 {
            return bad("embed_dim", "must be ≥ 1".into());
        }
        if config.classes < 2 {
            return bad("classes", format!("must be ≥ 2, got {}", config.classes));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let embedding = EmbeddingMean::new(config.vocab, config.embed_dim, &mut rng);
        let head = Sequential {
            stages: vec![Stage::Linear(Linear::new(
                config.embed_dim,
                config.classes,
                &mut rng,
            ))],
        };
        Ok(TextClassifier {
            config,
            embedding,
            head,
            chunk: DENSE_CHUNK,
        })
    }

    /// The embedding and the head (for the oracle tests).
    #[cfg(test)]
    pub(crate) fn parts(&self) -> (&EmbeddingMean, &Sequential) {
        (&self.embedding, &self.head)
    }

    /// The configuration.
    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// Examples per forward/backward chunk (default [`DENSE_CHUNK`](super::DENSE_CHUNK)).
    pub fn set_chunk_size(&mut self, chunk: usize) -> Result<()> {
        driver::check_chunk(chunk)?;
        self.chunk = chunk;
        Ok(())
    }

    fn tokens(batch: &Batch) -> Result<(&[u32], usize, &[u32])> {
        match batch {
            Batch::Tokens {
                tokens,
                len,
                labels,
            } => Ok((tokens, *len, labels)),
            Batch::Images { .. } => Err(TrainError::Shape(
                "the text classifier needs a token batch, got images".into(),
            )),
        }
    }

    pub(crate) fn step(
        &self,
        batch: &Batch,
        mode: GradMode,
    ) -> Result<(f64, usize, Vec<ParamGrad>)> {
        let (tokens, len, labels) = Self::tokens(batch)?;
        let n = labels.len();
        let (h, cache) = self.embedding.forward(tokens, len)?;
        let x = Act {
            data: h,
            n,
            h: 1,
            w: 1,
            c: self.config.embed_dim,
        };
        let classes = self.config.classes;
        let ((loss, correct), dx, mut head) =
            self.head
                .forward_backward(x, mode, NormStrategy::Auto, true, |y| {
                    let (loss, correct, d) = cross_entropy(&y.data, labels, classes)?;
                    Ok(((loss, correct), d))
                })?;
        let dx = dx.ok_or_else(|| TrainError::Other("internal: missing input gradient".into()))?;
        let mut grads = vec![self.embedding.backward(cache, dx.data)];
        grads.append(&mut head);
        Ok((loss, correct, grads))
    }
}

impl DpModel for TextClassifier {
    fn num_params(&self) -> usize {
        self.embedding.num_params() + self.head.num_params()
    }

    fn params(&self) -> Vec<f32> {
        let mut p = self.embedding.table.clone();
        p.extend(self.head.params());
        p
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        check_params(params, self.num_params())?;
        let e = self.embedding.table.len();
        self.embedding.table.copy_from_slice(&params[..e]);
        self.head.set_params(&params[e..])
    }

    fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let e = &self.embedding;
        let mut out = vec![("embedding.weight".to_string(), vec![e.vocab, e.dim])];
        out.extend(self.head.param_shapes("head."));
        out
    }

    /// Σ_i min(1, C'/‖g_i‖)·g_i with C' = C·(1 − 1e-5), from one backward pass.
    ///
    /// # Privacy contract
    /// Each example contributes a vector of norm ≤ C (up to f32 rounding below the 1e-5 margin).
    ///
    /// Complexity: O(N·(L + D·classes)) plus O(Σ_i distinct tokens_i·D) for the sum.
    fn clipped_gradient_sum(&self, batch: &Batch, clip: Option<f32>) -> Result<GradientStats> {
        driver::clipped_sum(batch, self.chunk, self.num_params(), clip, |b, m| {
            self.step(b, m)
        })
    }

    fn evaluate(&self, batch: &Batch) -> Result<(f64, usize)> {
        driver::evaluate(batch, self.chunk, |b| {
            let (tokens, len, labels) = Self::tokens(b)?;
            let (h, _) = self.embedding.forward(tokens, len)?;
            let y = self.head.forward(Act {
                data: h,
                n: labels.len(),
                h: 1,
                w: 1,
                c: self.config.embed_dim,
            })?;
            let (loss, correct, _) = cross_entropy(&y.data, labels, self.config.classes)?;
            Ok((loss, correct))
        })
    }
}
