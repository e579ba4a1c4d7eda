//! A stride-1, zero-padded 2-D convolution on channels-last activations, computed as matrix
//! products with the im2col matrix read in place from the zero-padded input (implicit GEMM:
//! `View::patches`, no copy nine times the activations' size), and with per-example weight
//! gradients (materialised or ghost norms) for clipping.
//!
//! Parameter layout: weight `W` as C_out × (k·k·C_in) with columns ordered (ky, kx, c_in)
//! (PyTorch's O×I×kH×kW permuted to O×kH×kW×I), then the bias (C_out).

use std::sync::OnceLock;

use super::grad::{GradMode, NormStrategy, ParamGrad, conv_prefers_ghost};
use super::init::uniform;
use super::native::amx::PackedB;
use super::native::gemm::{self, Precision, View, Weight};
use super::ops::{self, ConvGeometry};
use super::sequential::Act;
use crate::{Result, TrainError};

/// A k×k convolution, stride 1, `pad` zeros on each side.
#[derive(Debug, Clone)]
pub(crate) struct Conv2d {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel side.
    pub k: usize,
    /// Padding on each side.
    pub pad: usize,
    /// C_out × (k·k·C_in). Read-only here: change it through [`Conv2d::params_mut`], which
    /// drops the layouts derived from it.
    weight: Vec<f32>,
    /// C_out.
    pub bias: Vec<f32>,
    /// The weight in the layouts the products read, built on first use after each change.
    layouts: OnceLock<WeightLayouts>,
    /// Input precision of the forward, input-gradient and weight-gradient products (the ghost
    /// norms' Gram matrices stay f32); set by [`Conv2d::set_precision`].
    precision: Precision,
}

/// The weight rearranged for the products (built once per parameter update, not per chunk).
#[derive(Debug, Clone)]
struct WeightLayouts {
    /// Wᵀ, (k·k·C_in) × C_out: the B of the forward product.
    wt: Vec<f32>,
    /// W'ᵀ of the flipped kernel, (k·k·C_out) × C_in with rows ordered (ky, kx, c_out): the B
    /// of the input-gradient product.
    flipped_t: Vec<f32>,
    /// Wᵀ and W'ᵀ packed for AMX (bf16 precision on a machine with AMX only).
    packed: Option<(PackedB, PackedB)>,
    /// The layer's precision; at bf16, `wt` and `flipped_t` hold bf16 values.
    precision: Precision,
}

impl WeightLayouts {
    /// Wᵀ as the forward product's B.
    fn wt(&self, kk: usize, m: usize) -> Weight<'_> {
        Weight {
            view: View::new(&self.wt, kk, m),
            packed: self.packed.as_ref().map(|p| &p.0),
            precision: self.precision,
        }
    }

    /// W'ᵀ as the input-gradient product's B.
    fn flipped_t(&self, rows: usize, cin: usize) -> Weight<'_> {
        Weight {
            view: View::new(&self.flipped_t, rows, cin),
            packed: self.packed.as_ref().map(|p| &p.1),
            precision: self.precision,
        }
    }
}

/// What the backward pass needs from the forward pass.
pub(crate) struct ConvCache {
    /// The input zero-padded by `pad`: N × (H + 2·pad) × (W + 2·pad) × C_in.
    xp: Vec<f32>,
    /// The input geometry.
    geom: ConvGeometry,
    /// Batch size.
    n: usize,
}

/// The im2col matrix A_i (Ho·Wo × k²C) of image `i` of zero-padded images `xp` (geometry `gp`,
/// already padded), read in place.
fn patches(xp: &[f32], gp: ConvGeometry, i: usize) -> View<'_> {
    let size = gp.h * gp.w * gp.c;
    View::patches(&xp[i * size..(i + 1) * size], gp.h, gp.w, gp.c, gp.k)
}

/// Whether the weight gradient Δ_iᵀA_i reads A_i in place: its 32-column panels must not
/// straddle a kernel row (k·C contiguous values), so k·C must fill whole 16-lane vectors; a
/// narrow input (C = 3: runs of 9) is copied to an explicit im2col matrix instead.
fn weight_gradient_in_place(g: ConvGeometry) -> bool {
    (g.k * g.c).is_multiple_of(16)
}

impl Conv2d {
    /// PyTorch's default initialisation: weight and bias ~ U(−1/√fan_in, 1/√fan_in),
    /// fan_in = k·k·C_in. The padding must be below the kernel side (the input gradient is the
    /// convolution of the output gradient with padding k − 1 − pad).
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        pad: usize,
        rng: &mut impl rand::Rng,
    ) -> Result<Self> {
        if k == 0 || pad >= k {
            return Err(TrainError::Shape(format!(
                "convolution: kernel side {k} must be ≥ 1 and padding {pad} below it"
            )));
        }
        let fan_in = k * k * cin;
        let bound = 1.0 / (fan_in as f32).sqrt();
        Ok(Conv2d {
            cin,
            cout,
            k,
            pad,
            weight: uniform(rng, cout * fan_in, bound),
            bias: uniform(rng, cout, bound),
            layouts: OnceLock::new(),
            precision: Precision::F32,
        })
    }

    /// The weight W (C_out × k·k·C_in).
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// The weight and the bias, to be changed in place; the derived layouts are rebuilt at the
    /// next use.
    pub fn params_mut(&mut self) -> [&mut Vec<f32>; 2] {
        self.layouts = OnceLock::new();
        [&mut self.weight, &mut self.bias]
    }

    /// Wᵀ and the flipped kernel's W'ᵀ (see [`WeightLayouts`]), built on first use.
    ///
    /// Complexity: O(C_out·k²·C_in) once per parameter change.
    fn layouts(&self) -> &WeightLayouts {
        self.layouts.get_or_init(|| {
            let (k, m, cin) = (self.k, self.cout, self.cin);
            let kk = k * k * cin;
            let mut wt = View::new(&self.weight, m, kk).t().to_row_major();
            // W'[c_in, ky, kx, c_out] = W[c_out, k−1−ky, k−1−kx, c_in], stored transposed.
            let mut flipped_t = vec![0.0f32; k * k * m * cin];
            for co in 0..m {
                for ky in 0..k {
                    for kx in 0..k {
                        let src = co * kk + (ky * k + kx) * cin;
                        let dst = (((k - 1 - ky) * k + (k - 1 - kx)) * m + co) * cin;
                        flipped_t[dst..dst + cin].copy_from_slice(&self.weight[src..src + cin]);
                    }
                }
            }
            let bf16 = self.precision == Precision::Bf16;
            if bf16 {
                // The products' B in bf16 once per update (where AMX packs, it rounds the same).
                for x in wt.iter_mut().chain(flipped_t.iter_mut()) {
                    *x = gemm::round_bf16(*x);
                }
            }
            let packed = bf16
                .then(|| {
                    let wt = PackedB::new(View::new(&wt, kk, m))?;
                    let flipped = PackedB::new(View::new(&flipped_t, k * k * m, cin))?;
                    Some((wt, flipped))
                })
                .flatten();
            WeightLayouts {
                wt,
                flipped_t,
                packed,
                precision: self.precision,
            }
        })
    }

    /// Input precision of the products (default f32); drops the weight layouts built for the
    /// previous one.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
        self.layouts = OnceLock::new();
    }

    /// Number of parameters C_out·k·k·C_in + C_out.
    pub fn num_params(&self) -> usize {
        self.weight.len() + self.bias.len()
    }

    fn geometry(&self, x: &Act) -> ConvGeometry {
        ConvGeometry {
            h: x.h,
            w: x.w,
            c: self.cin,
            k: self.k,
            pad: self.pad,
        }
    }

    /// y = im2col(x)·Wᵀ + b, one product per image with im2col read in place from the padded
    /// input.
    ///
    /// Complexity: O(N·Ho·Wo·k²·C_in·C_out) in N gemms, plus one padded copy of the input.
    pub fn forward(&self, x: &Act, keep: bool) -> Result<(Act, Option<ConvCache>)> {
        let g = self.geometry(x);
        let gp = g.padded();
        let (t, kk, m) = (g.out_h() * g.out_w(), g.cols(), self.cout);
        let xp = ops::pad_images(&x.data, x.n, g);
        let b = self.layouts().wt(kk, m);
        // y = b (every row, by doubling copies), then y_i += A_i·Wᵀ.
        let mut data = self.bias.repeat(x.n * t);
        ops::par_blocks(&mut data, t * m, |i, y| {
            gemm::matmul_seq_weight(patches(&xp, gp, i), b, y, true);
        });
        let out = Act {
            data,
            n: x.n,
            h: g.out_h(),
            w: g.out_w(),
            c: m,
        };
        Ok((
            out,
            keep.then_some(ConvCache {
                xp,
                geom: g,
                n: x.n,
            }),
        ))
    }

    /// Back-propagates `dy` (N·Ho·Wo × C_out): returns the input gradient (when asked) and the
    /// parameter gradient in the form `mode` needs.
    ///
    /// Per-example gradient of example i: G_i = Δ_iᵀA_i (C_out × k²C_in) and Σ_s δ_{i,s}. With
    /// `Materialize` it is computed by a batched gemm (the same multiply-adds as the summed
    /// gradient); with `Ghost`, ‖G_i‖²_F = ⟨A_iA_iᵀ, Δ_iΔ_iᵀ⟩_F (2·t² (k²C_in + C_out) per example,
    /// t = Ho·Wo) and the clipped sum is deferred to one weighted gemm.
    ///
    /// Complexity: input gradient one im2col and one gemm; parameter gradient as above.
    pub fn backward(
        &self,
        cache: ConvCache,
        dy: Vec<f32>,
        mode: GradMode,
        strategy: NormStrategy,
        need_dx: bool,
    ) -> Result<(Option<Act>, ParamGrad)> {
        let ConvCache { xp, geom, n } = cache;
        let gp = geom.padded();
        let (kk, m) = (geom.cols(), self.cout);
        let t = geom.out_h() * geom.out_w();
        let dx = need_dx.then(|| self.input_gradient(&dy, n, geom));
        let ghost = mode == GradMode::PerExample
            && match strategy {
                NormStrategy::Auto => conv_prefers_ghost(t, kk, m),
                NormStrategy::Materialize => false,
                NormStrategy::Ghost => true,
            };
        // A_i in place, or rows of an explicit im2col matrix where that is required.
        let explicit = (ghost || !weight_gradient_in_place(geom)).then(|| ops::im2col(&xp, n, gp));
        let a_i = |i: usize| match &explicit {
            Some(a) => View::new(&a[i * t * kk..(i + 1) * t * kk], t, kk),
            None => patches(&xp, gp, i),
        };
        let d_i = |i: usize| View::new(&dy[i * t * m..(i + 1) * t * m], t, m);
        let grad = match mode {
            GradMode::Sum => {
                // Σ_i Δ_iᵀA_i, example by example in order.
                let mut out = vec![0.0f32; m * kk + m];
                for i in 0..n {
                    let out = &mut out[..m * kk];
                    gemm::matmul_seq(d_i(i).t(), a_i(i), out, i > 0, self.precision);
                }
                out[m * kk..].copy_from_slice(&column_sums(&dy, m));
                ParamGrad::Summed(out)
            }
            GradMode::PerExample if ghost => {
                let a = explicit.unwrap_or_default();
                let sq_norms = ghost_sq_norms(&a, &dy, n, t, kk, m);
                ParamGrad::Outer {
                    n,
                    t,
                    k: kk,
                    a,
                    delta: dy,
                    m,
                    sq_norms,
                }
            }
            GradMode::PerExample => {
                // G_i and its squared norm while the row is still in cache.
                let p = m * kk + m;
                let (rows, sq_norms) = ops::par_build_map(n, p, |i, out| {
                    let (di, start) = (d_i(i), out.len());
                    gemm::matmul_seq_append(di.t(), a_i(i), out, self.precision);
                    out.extend(column_sums(di.data, m));
                    ops::sq_norm(&out[start..])
                });
                ParamGrad::PerExample {
                    n,
                    p,
                    rows,
                    sq_norms,
                }
            }
        };
        Ok((dx, grad))
    }
}

impl Conv2d {
    /// dx = the convolution of Δ (N × Ho × Wo × C_out) with the flipped kernel
    /// W'[c_in, ky, kx, c_out] = W[c_out, k−1−ky, k−1−kx, c_in] and padding k − 1 − pad:
    /// dx[iy, ix, c_in] = Σ W[c_out, ky, kx, c_in]·Δ[iy − ky + pad, ix − kx + pad, c_out].
    /// As im2col(Δ)·W'ᵀ this is one product with inner dimension k²·C_out and the input gradient
    /// comes out channels-last, where Δ·W followed by col2im would write k² values per input
    /// value with an inner dimension of only C_out and then scatter-add them.
    ///
    /// Complexity: 2·N·H·W·k²·C_in·C_out flops plus one padded copy of Δ.
    fn input_gradient(&self, dy: &[f32], n: usize, geom: ConvGeometry) -> Act {
        let (k, m, cin) = (self.k, self.cout, self.cin);
        let g = ConvGeometry {
            h: geom.out_h(),
            w: geom.out_w(),
            c: m,
            k,
            pad: k - 1 - self.pad,
        };
        debug_assert_eq!((g.out_h(), g.out_w()), (geom.h, geom.w));
        // W'ᵀ, rows ordered (ky, kx, c_out) like im2col(Δ)'s columns: the product's B in the
        // row-major layout the gemm reads.
        let b = self.layouts().flipped_t(k * k * m, cin);
        let dyp = ops::pad_images(dy, n, g);
        let gp = g.padded();
        let data = ops::par_build(n, geom.h * geom.w * cin, |i, out| {
            gemm::matmul_seq_append_weight(patches(&dyp, gp, i), b, out);
        });
        Act {
            data,
            n,
            h: geom.h,
            w: geom.w,
            c: cin,
        }
    }
}

/// Ghost norms ‖G_i‖²_F + ‖Σ_s δ_{i,s}‖² with ‖G_i‖²_F = ⟨A_iA_iᵀ, Δ_iΔ_iᵀ⟩_F, one example per
/// task: A_i is t × kk and Δ_i is t × m (rows of `a` and `dy` for example i).
///
/// Complexity: 2·t²·(kk + m) + t² per example, spread over the threads.
fn ghost_sq_norms(a: &[f32], dy: &[f32], n: usize, t: usize, kk: usize, m: usize) -> Vec<f64> {
    ops::par_map(n, |i| {
        let ai = View::new(&a[i * t * kk..(i + 1) * t * kk], t, kk);
        let di = View::new(&dy[i * t * m..(i + 1) * t * m], t, m);
        let (mut ga, mut gd) = (vec![0.0f32; t * t], vec![0.0f32; t * t]);
        gemm::matmul_seq(ai, ai.t(), &mut ga, false, Precision::F32);
        gemm::matmul_seq(di, di.t(), &mut gd, false, Precision::F32);
        let weight: f64 = ga
            .iter()
            .zip(&gd)
            .map(|(p, q)| (*p as f64) * (*q as f64))
            .sum();
        let bias = column_sums(di.data, m);
        weight + bias.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>()
    })
}

/// Sums the rows of a row-major matrix with `m` columns.
pub(crate) fn column_sums(x: &[f32], m: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; m];
    for row in x.chunks(m) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out
}
