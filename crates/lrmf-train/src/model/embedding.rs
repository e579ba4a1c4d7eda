//! A token embedding followed by mean pooling over the non-padding tokens:
//! h_i = (1/L_i)·Σ_{t: x_{i,t} ≠ 0} E[x_{i,t}], with h_i = 0 when example i is all padding.
//! Its per-example gradient is row-sparse, g_i[v] = (count_i(v)/L_i)·δ_i, so
//! ‖g_i‖² = ‖δ_i‖²·Σ_v (count_i(v)/L_i)² comes from token counts alone.
//!
//! Parameter layout: the table E as V × D, row-major (row 0, the padding token, never changes).

use std::collections::BTreeMap;

use super::grad::ParamGrad;
use super::init::normal;
use crate::{Result, TrainError};

/// An embedding table with mean pooling.
#[derive(Debug, Clone)]
pub(crate) struct EmbeddingMean {
    /// Vocabulary size V (token ids 0..V, 0 = padding).
    pub vocab: usize,
    /// Embedding width D.
    pub dim: usize,
    /// V × D.
    pub table: Vec<f32>,
}

/// (token, count/L_i) per example, kept for the backward pass.
pub(crate) struct EmbeddingCache {
    coef: Vec<Vec<(u32, f32)>>,
}

impl EmbeddingMean {
    /// Table entries ~ N(0, 1), as PyTorch's `nn.Embedding`.
    pub fn new(vocab: usize, dim: usize, rng: &mut impl rand::Rng) -> Self {
        EmbeddingMean {
            vocab,
            dim,
            table: normal(rng, vocab * dim),
        }
    }

    /// Number of parameters V·D.
    pub fn num_params(&self) -> usize {
        self.table.len()
    }

    /// Mean-pooled embeddings (N × D) of `tokens` (N × len).
    ///
    /// Complexity: O(N·len·D).
    pub fn forward(&self, tokens: &[u32], len: usize) -> Result<(Vec<f32>, EmbeddingCache)> {
        let n = tokens.len().checked_div(len).unwrap_or(0);
        let mut out = vec![0.0f32; n * self.dim];
        let mut coef = Vec::with_capacity(n);
        for i in 0..n {
            let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
            for &t in &tokens[i * len..(i + 1) * len] {
                if t as usize >= self.vocab {
                    return Err(TrainError::Shape(format!(
                        "token id {t} in example {i} is outside the vocabulary 0..{}",
                        self.vocab
                    )));
                }
                if t != 0 {
                    *counts.entry(t).or_default() += 1;
                }
            }
            let total: usize = counts.values().sum();
            let c: Vec<(u32, f32)> = counts
                .into_iter()
                .map(|(t, k)| (t, (k as f64 / total as f64) as f32))
                .collect();
            let h = &mut out[i * self.dim..(i + 1) * self.dim];
            for &(t, w) in &c {
                for (o, e) in h
                    .iter_mut()
                    .zip(&self.table[t as usize * self.dim..(t as usize + 1) * self.dim])
                {
                    *o += w * e;
                }
            }
            coef.push(c);
        }
        Ok((out, EmbeddingCache { coef }))
    }

    /// The (row-sparse) gradient of the table given δ = dL/dh (N × D); the same form serves the
    /// plain and the clipped sum.
    ///
    /// Complexity: O(N·D) here; the sum costs O(Σ_i distinct tokens_i·D).
    pub fn backward(&self, cache: EmbeddingCache, dy: Vec<f32>) -> ParamGrad {
        ParamGrad::Sparse {
            vocab: self.vocab,
            dim: self.dim,
            coef: cache.coef,
            delta: dy,
        }
    }
}
