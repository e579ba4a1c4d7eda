//! Low-level kernels shared by the layers: channels-last `im2col`, and small
//! scoped-thread helpers that spread per-example loops over the available cores (the matrix
//! products live in `gemm.rs`).

use std::cell::Cell;

thread_local! {
    /// Set on the driver's chunk workers: their layers run on the calling thread only.
    static SERIAL: Cell<bool> = const { Cell::new(false) };
}

/// Number of worker threads used by the per-example loops and the matrix products: 1 on a
/// chunk worker of the batch driver (the batch is already spread over the threads there),
/// otherwise the count candle uses.
pub(crate) fn num_threads() -> usize {
    if SERIAL.with(Cell::get) {
        1
    } else {
        total_threads()
    }
}

/// Number of threads the process may use (candle's count, at least 1).
pub(crate) fn total_threads() -> usize {
    candle_core::utils::get_num_threads().max(1)
}

/// Runs `f` with [`num_threads`] = 1 on this thread (for the driver's chunk workers).
pub(crate) fn serially<R>(f: impl FnOnce() -> R) -> R {
    let before = SERIAL.with(|s| s.replace(true));
    let out = f();
    SERIAL.with(|s| s.set(before));
    out
}

/// Splits `out` into `items` equal consecutive blocks of `block` values and calls
/// `f(item_index, block_slice)` for each, spreading the items over [`num_threads`] scoped threads.
///
/// Complexity: the work of `f` over all items, divided over the threads.
pub(crate) fn par_blocks<F>(out: &mut [f32], block: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    if block == 0 || out.is_empty() {
        return;
    }
    let items = out.len() / block;
    let threads = num_threads().min(items).max(1);
    if threads == 1 {
        for (i, chunk) in out.chunks_mut(block).enumerate() {
            f(i, chunk);
        }
        return;
    }
    let per_thread = items.div_ceil(threads);
    std::thread::scope(|scope| {
        for (t, part) in out.chunks_mut(per_thread * block).enumerate() {
            let f = &f;
            scope.spawn(move || {
                for (j, chunk) in part.chunks_mut(block).enumerate() {
                    f(t * per_thread + j, chunk);
                }
            });
        }
    });
}

/// `f(i)` for i in 0..n, spread over [`num_threads`] scoped threads (in order).
///
/// Complexity: the work of `f` over all i, divided over the threads.
pub(crate) fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = num_threads().min(n).max(1);
    if threads == 1 {
        return (0..n).map(f).collect();
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                scope.spawn(move || (t * per..((t + 1) * per).min(n)).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Splits `out` into [`num_threads`] nearly equal consecutive parts and calls
/// `f(offset, part)` on each in its own scoped thread.
///
/// Complexity: the work of `f`, divided over the threads.
pub(crate) fn par_split(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    let threads = num_threads().min(out.len()).max(1);
    if threads == 1 {
        f(0, out);
        return;
    }
    let per = out.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for (t, part) in out.chunks_mut(per).enumerate() {
            let f = &f;
            scope.spawn(move || f(t * per, part));
        }
    });
}

/// Σ x² accumulated in f64 over eight independent lanes (so the loop vectorises).
///
/// Complexity: O(len).
pub(crate) fn sq_norm(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..8 {
            acc[j] += (c[j] as f64) * (c[j] as f64);
        }
    }
    acc.iter().sum::<f64>() + rest.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()
}

/// Geometry of a stride-1, square-kernel, zero-padded 2-D convolution on channels-last data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input channels.
    pub c: usize,
    /// Kernel side k.
    pub k: usize,
    /// Zero padding on each side.
    pub pad: usize,
}

impl ConvGeometry {
    /// Output height H + 2·pad − k + 1.
    pub fn out_h(&self) -> usize {
        self.h + 2 * self.pad + 1 - self.k
    }
    /// Output width W + 2·pad − k + 1.
    pub fn out_w(&self) -> usize {
        self.w + 2 * self.pad + 1 - self.k
    }
    /// Columns of the im2col matrix, k·k·C (ordered (ky, kx, c)).
    pub fn cols(&self) -> usize {
        self.k * self.k * self.c
    }
    /// The same convolution on the input zero-padded by [`pad_images`]: H + 2·pad by
    /// W + 2·pad, no further padding (same output size).
    pub fn padded(&self) -> ConvGeometry {
        ConvGeometry {
            h: self.h + 2 * self.pad,
            w: self.w + 2 * self.pad,
            pad: 0,
            ..*self
        }
    }
}

/// `n` channels-last images (N×H×W×C) with `g.pad` zeros added on each side:
/// N × (H + 2·pad) × (W + 2·pad) × C, each value written once. The convolutions read their
/// patches from it in place (`View::patches`).
///
/// Complexity: O(N·(H + 2·pad)·(W + 2·pad)·C) writes, spread over the threads.
pub(crate) fn pad_images(x: &[f32], n: usize, g: ConvGeometry) -> Vec<f32> {
    let (p, c) = (g.pad, g.c);
    let wp = g.w + 2 * p;
    par_build(n, (g.h + 2 * p) * wp * c, |i, out| {
        let xi = &x[i * g.h * g.w * c..(i + 1) * g.h * g.w * c];
        out.extend(std::iter::repeat_n(0.0, p * wp * c));
        for r in 0..g.h {
            out.extend(std::iter::repeat_n(0.0, p * c));
            out.extend_from_slice(&xi[r * g.w * c..(r + 1) * g.w * c]);
            out.extend(std::iter::repeat_n(0.0, p * c));
        }
        out.extend(std::iter::repeat_n(0.0, p * wp * c));
    })
}

/// `im2col` for `n` channels-last images (N×H×W×C): row (n, oy, ox) of the result holds the
/// k×k×C input patch feeding output pixel (oy, ox), columns ordered (ky, kx, c), zeros outside
/// the image. The result is (N·Ho·Wo) × (k·k·C).
///
/// Every value is written once (no zero-fill first); on one thread the images are appended to
/// one buffer, on several each thread builds its images and the parts are joined.
///
/// Complexity: O(N·Ho·Wo·k²·C) copies, spread over the threads.
pub(crate) fn im2col(x: &[f32], n: usize, g: ConvGeometry) -> Vec<f32> {
    let per_image = g.out_h() * g.out_w() * g.cols();
    par_build(n, per_image, |i, out| {
        im2col_image(&x[i * g.h * g.w * g.c..(i + 1) * g.h * g.w * g.c], g, out);
    })
}

/// The concatenation of `items` blocks of `per_item` values, block i appended by `f(i, out)`
/// (which pushes exactly `per_item` values): every value is written once, with no zero-fill
/// first. On one thread the blocks go straight into the result; on several each thread builds
/// its blocks and the parts are joined.
///
/// Complexity: the work of `f` over all items, divided over the threads (plus one copy when
/// threaded).
pub(crate) fn par_build(
    items: usize,
    per_item: usize,
    f: impl Fn(usize, &mut Vec<f32>) + Sync,
) -> Vec<f32> {
    par_build_map(items, per_item, f).0
}

/// [`par_build`], also collecting the value `f` returns for each item, in item order.
///
/// Complexity: as [`par_build`].
pub(crate) fn par_build_map<T: Send>(
    items: usize,
    per_item: usize,
    f: impl Fn(usize, &mut Vec<f32>) -> T + Sync,
) -> (Vec<f32>, Vec<T>) {
    if num_threads() == 1 || items <= 1 {
        let mut out = Vec::with_capacity(items * per_item);
        let values = (0..items).map(|i| f(i, &mut out)).collect();
        return (out, values);
    }
    let parts = par_map(items, |i| {
        let mut out = Vec::with_capacity(per_item);
        let value = f(i, &mut out);
        (out, value)
    });
    let mut out = Vec::with_capacity(items * per_item);
    let mut values = Vec::with_capacity(items);
    for (part, value) in parts {
        out.extend_from_slice(&part);
        values.push(value);
    }
    (out, values)
}

/// The range kx ∈ lo..hi of kernel columns that land inside the image for output column `ox`
/// (input column ox + kx − pad ∈ 0..w); empty when none do.
fn inside_columns(ox: usize, g: ConvGeometry) -> (usize, usize) {
    let lo = g.pad.saturating_sub(ox).min(g.k);
    let hi = (g.w + g.pad).saturating_sub(ox).clamp(lo, g.k);
    (lo, hi)
}

/// Appends the im2col rows of one image (H×W×C) to `out`: per output pixel and kernel row ky,
/// the zeros left of the image, the contiguous run of input pixels, the zeros right of it.
fn im2col_image(xi: &[f32], g: ConvGeometry, out: &mut Vec<f32>) {
    let (ho, wo, c) = (g.out_h(), g.out_w(), g.c);
    for oy in 0..ho {
        for ox in 0..wo {
            let (lo, hi) = inside_columns(ox, g);
            for ky in 0..g.k {
                let iy = (oy + ky).wrapping_sub(g.pad);
                if iy >= g.h || lo == hi {
                    out.extend(std::iter::repeat_n(0.0, g.k * c));
                    continue;
                }
                let first = iy * g.w + ox + lo - g.pad;
                out.extend(std::iter::repeat_n(0.0, lo * c));
                // An element loop, not a memcpy call: the runs are short (9 values at C = 3).
                out.extend(xi[first * c..(first + hi - lo) * c].iter().copied());
                out.extend(std::iter::repeat_n(0.0, (g.k - hi) * c));
            }
        }
    }
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
    fn im2col_matches_the_definition_on_one_thread_and_several() {
        // Element (n, oy, ox; ky, kx, c) = x[n, oy + ky − pad, ox + kx − pad, c] or 0 outside.
        for (h, w, c, k, pad) in [
            (5, 4, 3, 3, 1),
            (4, 6, 2, 3, 0),
            (3, 3, 1, 5, 2),
            (2, 3, 2, 1, 0),
        ] {
            let g = ConvGeometry { h, w, c, k, pad };
            let n = 3;
            let x: Vec<f32> = (0..n * h * w * c)
                .map(|i| (i * 7 % 13) as f32 - 6.0)
                .collect();
            let mut want = Vec::new();
            for img in 0..n {
                for oy in 0..g.out_h() {
                    for ox in 0..g.out_w() {
                        for ky in 0..k {
                            for kx in 0..k {
                                for ch in 0..c {
                                    let (iy, ix) = (oy + ky, ox + kx);
                                    let inside =
                                        iy >= pad && ix >= pad && iy - pad < h && ix - pad < w;
                                    want.push(if inside {
                                        x[((img * h + iy - pad) * w + ix - pad) * c + ch]
                                    } else {
                                        0.0
                                    });
                                }
                            }
                        }
                    }
                }
            }
            check(&im2col(&x, n, g), &want, 0.0);
            check(&serially(|| im2col(&x, n, g)), &want, 0.0);
        }
    }

    #[test]
    fn im2col_matches_direct_patches() {
        let g = ConvGeometry {
            h: 3,
            w: 3,
            c: 2,
            k: 3,
            pad: 1,
        };
        let x: Vec<f32> = (0..18).map(|i| i as f32 + 1.0).collect();
        let cols = im2col(&x, 1, g);
        // Output pixel (0,0): the patch rows -1..=1, cols -1..=1; only (0,0),(0,1),(1,0),(1,1) exist.
        let row = &cols[0..18];
        let mut expected = vec![0.0f32; 18];
        for (ky, kx) in [(1usize, 1usize), (1, 2), (2, 1), (2, 2)] {
            let (iy, ix) = (ky - 1, kx - 1);
            for c in 0..2 {
                expected[(ky * 3 + kx) * 2 + c] = x[(iy * 3 + ix) * 2 + c];
            }
        }
        check(row, &expected, 0.0);
        assert_eq!((g.out_h(), g.out_w(), g.cols()), (3, 3, 18));
    }

    #[test]
    fn parallel_helpers_cover_every_index() {
        let squares = par_map(11, |i| i * i);
        assert_eq!(squares, (0..11).map(|i| i * i).collect::<Vec<_>>());
        let mut out = vec![0.0f32; 13];
        par_split(&mut out, |off, part| {
            for (j, v) in part.iter_mut().enumerate() {
                *v = (off + j) as f32;
            }
        });
        check(&out, &(0..13).map(|i| i as f32).collect::<Vec<_>>(), 0.0);
        let x: Vec<f32> = (0..19).map(|i| i as f32 - 9.0).collect();
        let direct: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
        check(&[sq_norm(&x) as f32], &[direct as f32], 0.0);
    }
}
