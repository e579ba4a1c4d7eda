//! Per-example gradient book-keeping: what each parameterised layer hands back from the backward
//! pass (a plain sum, materialised per-example gradients, or the factors of a deferred weighted
//! product), how per-example norms are combined across layers, and how the clip weights
//! w_i = min(1, C'/‖g_i‖) turn it into the clipped sum Σ_i w_i·g_i without a second backward.

use super::native::gemm::{self, View};
use super::ops;
use crate::{Result, TrainError};

/// Relative safety margin of the clip: examples are clipped to C' = C·(1 − `CLIP_MARGIN`), so a
/// per-example gradient whose float-computed norm is off by less than 1e-5 (relative) still has
/// norm ≤ C. Each example is scaled by w_i = min(1, C·(1 − `CLIP_MARGIN`)/‖g_i‖).
pub const CLIP_MARGIN: f64 = 1e-5;

/// How a layer hands its gradient to the clipper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GradMode {
    /// Only Σ_i g_i is needed (no clipping).
    Sum,
    /// Per-example norms and a weighted sum are needed.
    PerExample,
}

/// How convolutions compute per-example norms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NormStrategy {
    /// Pick per layer by cost: ghost only when t²·(k + m) < 16·k·m for t positions, k inputs, m outputs.
    #[default]
    Auto,
    /// Materialise every per-example weight gradient G_i = Δ_iᵀA_i (book-keeping).
    Materialize,
    /// Ghost norms ‖G_i‖² = ⟨A_iA_iᵀ, Δ_iΔ_iᵀ⟩ and one weighted product Σ_i w_i Δ_iᵀA_i.
    Ghost,
}

/// Memory-traffic weight of one stored per-example gradient entry, in multiply-adds.
const MEMORY_COST: usize = 16;

/// True when ghost norms are cheaper than materialising per-example gradients for a layer with
/// `t` positions (output pixels), `k` input columns and `m` outputs.
///
/// Extra cost per example: ghost = t²·(k + m) (two Gram matrices); materialise = `MEMORY_COST`·k·m
/// (storing and reading back G_i, whose product t·k·m replaces the summed gradient's and so is
/// free). Ghost wins only for few positions and wide layers.
pub(crate) fn conv_prefers_ghost(t: usize, k: usize, m: usize) -> bool {
    t * t * (k + m) < MEMORY_COST * k * m
}

/// The gradient of one parameterised layer for a chunk of n examples.
pub(crate) enum ParamGrad {
    /// The plain sum Σ_i g_i (already laid out in parameter order).
    Summed(Vec<f32>),
    /// Per-example gradients, n rows of `p` values in parameter order.
    PerExample {
        /// Number of examples n.
        n: usize,
        /// Parameters of the layer p.
        p: usize,
        /// n × p, row-major.
        rows: Vec<f32>,
        /// ‖g_i‖² per example ([`ops::sq_norm`] of each row).
        sq_norms: Vec<f64>,
    },
    /// A weight matrix (m × k) and bias (m) whose per-example gradient is
    /// g_i = (Σ_s δ_{i,s} a_{i,s}ᵀ, Σ_s δ_{i,s}) over t positions s; kept as the factors
    /// A = (n·t) × k and Δ = (n·t) × m so the clipped sum is one product (wΔ)ᵀA.
    Outer {
        /// Number of examples n.
        n: usize,
        /// Positions per example t.
        t: usize,
        /// Input width k.
        k: usize,
        /// Layer inputs, (n·t) × k, row-major.
        a: Vec<f32>,
        /// Output gradients, (n·t) × m, row-major.
        delta: Vec<f32>,
        /// Output width m.
        m: usize,
        /// ‖g_i‖² per example (weight and bias).
        sq_norms: Vec<f64>,
    },
    /// An embedding table (V × E) whose per-example gradient is row-sparse:
    /// g_i[v] = c_{i,v}·δ_i for the tokens v of example i with coefficients c_{i,v}.
    Sparse {
        /// Table rows V.
        vocab: usize,
        /// Row width E.
        dim: usize,
        /// Per example, (token, coefficient) with distinct tokens.
        coef: Vec<Vec<(u32, f32)>>,
        /// δ_i, n × E.
        delta: Vec<f32>,
    },
}

impl ParamGrad {
    /// Per-example gradients `rows` (n × p) with their squared norms computed here.
    ///
    /// Complexity: O(n·p), spread over the threads.
    pub(crate) fn per_example(n: usize, p: usize, rows: Vec<f32>) -> Self {
        let sq_norms = ops::par_map(n, |i| ops::sq_norm(&rows[i * p..(i + 1) * p]));
        ParamGrad::PerExample {
            n,
            p,
            rows,
            sq_norms,
        }
    }

    /// Number of parameters this gradient covers.
    pub(crate) fn len(&self) -> usize {
        match self {
            ParamGrad::Summed(v) => v.len(),
            ParamGrad::PerExample { p, .. } => *p,
            ParamGrad::Outer { k, m, .. } => m * k + m,
            ParamGrad::Sparse { vocab, dim, .. } => vocab * dim,
        }
    }

    /// Adds ‖g_i‖² of this layer to `acc[i]` (per-example modes only).
    ///
    /// Complexity: PerExample and Outer O(n) (precomputed); Sparse O(Σ_i tokens_i + n·E).
    pub(crate) fn add_sq_norms(&self, acc: &mut [f64]) -> Result<()> {
        match self {
            ParamGrad::Summed(_) => {
                return Err(TrainError::Other(
                    "internal: per-example norms requested from a summed gradient".into(),
                ));
            }
            ParamGrad::PerExample { sq_norms, .. } | ParamGrad::Outer { sq_norms, .. } => {
                for (a, s) in acc.iter_mut().zip(sq_norms) {
                    *a += s;
                }
            }
            ParamGrad::Sparse {
                dim, coef, delta, ..
            } => {
                for (i, c) in coef.iter().enumerate() {
                    let d2: f64 = delta[i * dim..(i + 1) * dim]
                        .iter()
                        .map(|&x| (x as f64) * (x as f64))
                        .sum();
                    let c2: f64 = c.iter().map(|&(_, w)| (w as f64) * (w as f64)).sum();
                    acc[i] += d2 * c2;
                }
            }
        }
        Ok(())
    }

    /// Adds Σ_i w_i·g_i (w_i = 1 when `weights` is `None`) into `out` (length [`Self::len`]).
    ///
    /// Complexity: PerExample O(n·p); Outer one (m × n·t) · (n·t × k) product; Sparse
    /// O(Σ_i tokens_i·E).
    pub(crate) fn accumulate(self, weights: Option<&[f32]>, out: &mut [f32]) -> Result<()> {
        match self {
            ParamGrad::Summed(v) => {
                if weights.is_some() {
                    return Err(TrainError::Other(
                        "internal: weighted sum requested from a summed gradient".into(),
                    ));
                }
                for (o, x) in out.iter_mut().zip(v) {
                    *o += x;
                }
            }
            ParamGrad::PerExample { n, p, rows, .. } => {
                ops::par_split(out, |off, part| {
                    for i in 0..n {
                        let w = weights.map_or(1.0, |w| w[i]);
                        let src = &rows[i * p + off..i * p + off + part.len()];
                        for (o, x) in part.iter_mut().zip(src) {
                            *o += w * x;
                        }
                    }
                });
            }
            ParamGrad::Outer {
                n,
                t,
                k,
                a,
                mut delta,
                m,
                ..
            } => {
                if let Some(w) = weights {
                    for i in 0..n {
                        for x in &mut delta[i * t * m..(i + 1) * t * m] {
                            *x *= w[i];
                        }
                    }
                }
                let d = View::new(&delta, n * t, m);
                gemm::matmul(d.t(), View::new(&a, n * t, k), &mut out[..m * k], true);
                for row in delta.chunks(m) {
                    for (o, x) in out[m * k..].iter_mut().zip(row) {
                        *o += x;
                    }
                }
            }
            ParamGrad::Sparse {
                dim, coef, delta, ..
            } => {
                for (i, c) in coef.iter().enumerate() {
                    let w = weights.map_or(1.0, |w| w[i]);
                    let di = &delta[i * dim..(i + 1) * dim];
                    for &(v, cv) in c {
                        let row = &mut out[v as usize * dim..(v as usize + 1) * dim];
                        for (o, x) in row.iter_mut().zip(di) {
                            *o += w * cv * x;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Clip weights w_i = min(1, C'/‖g_i‖) with C' = C·(1 − [`CLIP_MARGIN`]), from squared norms, and
/// the number of clipped examples (‖g_i‖ > C').
///
/// # Privacy contract
/// Every returned weight satisfies w_i·‖g_i‖ ≤ C' < C for the computed norm, so the clipped
/// per-example gradient has norm ≤ C as long as the float error of the computed norm is below
/// `CLIP_MARGIN` (relative); the sensitivity of Σ_i w_i g_i to adding or removing one example is
/// therefore C. A non-finite norm is an error (never a silent weight), since it would break the bound.
///
/// Complexity: O(n).
pub(crate) fn clip_weights(sq_norms: &[f64], clip: f32) -> Result<(Vec<f32>, usize)> {
    let c = clip as f64 * (1.0 - CLIP_MARGIN);
    let mut clipped = 0;
    let mut w = Vec::with_capacity(sq_norms.len());
    for (i, &s) in sq_norms.iter().enumerate() {
        let norm = s.sqrt();
        if !norm.is_finite() {
            return Err(TrainError::Diverged(format!(
                "per-example gradient norm of example {i} is {norm}"
            )));
        }
        if norm > c {
            clipped += 1;
            w.push((c / norm) as f32);
        } else {
            w.push(1.0);
        }
    }
    Ok((w, clipped))
}

/// Validates a clip norm: `None` or a finite value > 0.
pub(crate) fn check_clip(clip: Option<f32>) -> Result<()> {
    match clip {
        Some(c) if !(c.is_finite() && c > 0.0) => Err(TrainError::Config {
            key: "clip".into(),
            message: format!("clip norm must be finite and > 0, got {c}"),
        }),
        _ => Ok(()),
    }
}

/// Turns the layer gradients of one chunk of `n` examples (in parameter order) into Σ_i clip(g_i),
/// added into `out`; returns the number of clipped examples.
///
/// Complexity: the sum of the layers' [`ParamGrad::add_sq_norms`] and [`ParamGrad::accumulate`].
pub(crate) fn reduce(
    grads: Vec<ParamGrad>,
    n: usize,
    clip: Option<f32>,
    out: &mut [f32],
) -> Result<usize> {
    let total: usize = grads.iter().map(ParamGrad::len).sum();
    if total != out.len() {
        return Err(TrainError::Shape(format!(
            "internal: layer gradients cover {total} parameters, model has {}",
            out.len()
        )));
    }
    let (weights, clipped) = match clip {
        None => (None, 0),
        Some(c) => {
            let mut sq = vec![0.0f64; n];
            for g in &grads {
                g.add_sq_norms(&mut sq)?;
            }
            let (w, clipped) = clip_weights(&sq, c)?;
            (Some(w), clipped)
        }
    };
    let mut offset = 0;
    for g in grads {
        let len = g.len();
        g.accumulate(weights.as_deref(), &mut out[offset..offset + len])?;
        offset += len;
    }
    Ok(clipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "index {i}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn clip_weights_scale_to_the_margin_and_count() {
        let (w, clipped) = clip_weights(&[4.0, 0.25, 0.0], 1.0).unwrap();
        assert_eq!(clipped, 1);
        check(&w, &[(0.5 * (1.0 - CLIP_MARGIN)) as f32, 1.0, 1.0], 1e-7);
        assert!(clip_weights(&[f64::NAN], 1.0).is_err());
        assert!(clip_weights(&[f64::INFINITY], 1.0).is_err());
        assert!(check_clip(Some(0.0)).is_err());
        assert!(check_clip(Some(f32::NAN)).is_err());
        assert!(check_clip(Some(-1.0)).is_err());
        assert!(check_clip(Some(1.0)).is_ok() && check_clip(None).is_ok());
    }

    #[test]
    fn outer_and_per_example_agree() {
        // Two examples, t = 2 positions, k = 3 inputs, m = 2 outputs: the Outer factors and the
        // explicitly materialised g_i = (Δ_iᵀA_i, Σ_s δ_{i,s}) give the same weighted sum.
        let (n, t, k, m) = (2, 2, 3, 2);
        let a: Vec<f32> = (0..n * t * k).map(|i| (i as f32) * 0.5 - 2.0).collect();
        let delta: Vec<f32> = (0..n * t * m).map(|i| 1.0 - (i as f32) * 0.3).collect();
        let p = m * k + m;
        let mut rows = vec![0.0f32; n * p];
        let mut sq = vec![0.0f64; n];
        for i in 0..n {
            for s in 0..t {
                for o in 0..m {
                    let d = delta[(i * t + s) * m + o];
                    for j in 0..k {
                        rows[i * p + o * k + j] += d * a[(i * t + s) * k + j];
                    }
                    rows[i * p + m * k + o] += d;
                }
            }
            sq[i] = rows[i * p..(i + 1) * p]
                .iter()
                .map(|&x| (x as f64).powi(2))
                .sum();
        }
        let w = [0.25f32, 2.0];
        let outer = ParamGrad::Outer {
            n,
            t,
            k,
            a,
            delta,
            m,
            sq_norms: sq.clone(),
        };
        let per = ParamGrad::per_example(n, p, rows);
        let (mut s1, mut s2) = (vec![0.0; n], vec![0.0; n]);
        outer.add_sq_norms(&mut s1).unwrap();
        per.add_sq_norms(&mut s2).unwrap();
        let (mut o1, mut o2) = (vec![0.0; p], vec![0.0; p]);
        outer.accumulate(Some(&w), &mut o1).unwrap();
        per.accumulate(Some(&w), &mut o2).unwrap();
        check(&o1, &o2, 1e-6);
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
        check(&to32(s1), &to32(s2), 1e-6);
    }

    #[test]
    fn ghost_rule_prefers_materialising_large_images() {
        assert!(!conv_prefers_ghost(1024, 288, 32));
        assert!(conv_prefers_ghost(1, 2048, 10));
    }
}
