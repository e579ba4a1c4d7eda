//! The f32 matrix products of the models, C = A·B (+ C), on the tall-skinny shapes a CNN step
//! produces (262144 × 288 × 32 forward, 32 × 262144 × 288 weight gradient, per-example
//! Δ_iᵀA_i). It exists because candle's CPU gemm (the `gemm` crate, AVX2 kernels on stable Rust)
//! reached 30–50 GFLOP/s per core on these shapes on the build machine's AVX-512 cores, against
//! 55–87 for MKL: a step spent two thirds of its time there.
//!
//! Method (BLIS-style, without packing): C is cut into 8-row × 32-column tiles held in 16 zmm
//! accumulators; each step p of the inner loop loads B[p, j..j+32] (two vectors), broadcasts the
//! 8 values A[i, p] and issues 16 fused multiply-adds. Eight rows, not twelve: LLVM hoists the
//! broadcasts of a step ahead of its multiply-adds, so a 12-row tile needs 24 + 2 + 12 = 38 live
//! vector registers of the 32 and spilled accumulators to the stack on every step (seen in the
//! disassembly); at 8 rows (26 registers) nothing spills, and one private CIFAR-10 epoch took
//! 141 s instead of 158 s. k is blocked by [`KC`] so a B panel stays
//! in L1/L2 while 96-row blocks of A stream past it; A is read in place through its strides
//! (row-major A is prefetched a few lines ahead; a transposed A — the weight gradient Δᵀ — is
//! read contiguously), so no packing copies are made. Column tails use masked loads and stores.
//!
//! Implicit convolution: a view's row and column offsets may jump by a fixed amount after every
//! `len` indices ([`Seg`]). That describes the im2col matrix of a zero-padded channels-last image
//! without building it — row (oy, ox) starts at pixel (oy, ox) of the padded image and column
//! (ky, kx, c) is a further (ky·W_p + kx)·C + c — so the convolutions read the activations in
//! place instead of through a copy nine times their size. Register tiles never straddle a row
//! jump of A, B panels never straddle a column jump of B, and the inner loop applies the k-axis
//! jumps as it steps.
//!
//! Threads: a product with few rows and a long k is cut into a fixed number of k-parts summed in
//! order (a function of the shape only, also on one thread); otherwise C is split by rows (each
//! element is computed the same way whatever the thread count). Results never depend on the
//! thread count.
//!
//! # Safety audit
//! Every entry point checks
//! with `assert!` (not `debug_assert!`) that each view's largest index lies inside its slice and
//! that C holds m·n values; the kernels then touch only A[i, p] (i < m, p < k), B[p, j]
//! (j < n; masked-out lanes of AVX-512 masked loads and stores are never accessed) and C[i, j].
//! The AVX-512 path runs only after `is_x86_feature_detected!("avx512f")`; elsewhere a safe
//! portable loop computes the same product.

use std::borrow::Cow;

use crate::model::ops;

/// The input precision of the convolutions' matrix products (sums are f32 either way): the
/// `[model] matmul` key of a run's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// f32 inputs (the AVX-512 or portable kernels): the default.
    #[default]
    F32,
    /// bf16 inputs (rounded to nearest even, subnormals to zero) with f32 sums, on every
    /// machine: on Intel AMX tiles where the CPU and the OS offer them (several times faster),
    /// elsewhere by the f32 kernels on inputs rounded to bf16 first ([`round_bf16`]), so a run
    /// computes the same arithmetic wherever it runs, up to the order of the f32 additions.
    /// Results differ from f32 by the inputs' rounding (at most 2⁻⁸ relative each: bf16 keeps 8 significant bits).
    Bf16,
}

impl Precision {
    /// Whether this precision rounds the inputs of a product with this A to bf16: the
    /// products the AMX path takes ([`super::amx::takes`]); the others stay f32 on every
    /// machine.
    fn bf16_for(self, a: &View<'_>) -> bool {
        self == Precision::Bf16 && super::amx::takes(a)
    }

    /// True for the default (configs that leave it out keep their serialisation).
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

/// Rows of the register tile.
const MR: usize = 8;
/// Columns of the register tile (two 16-lane vectors).
const NR: usize = 32;
/// Block of the inner dimension k kept in cache per pass.
const KC: usize = 256;
/// Rows of A streamed past one B panel per block.
const MC: usize = 96;

/// A jump in a view's offsets: after every `len` indices along an axis the offset grows by a
/// further `jump` (index i lies at i·stride + ⌊i / len⌋·jump).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seg {
    /// Indices per segment (≥ 1).
    pub len: usize,
    /// Extra offset between consecutive segments.
    pub jump: usize,
}

impl Seg {
    /// No jumps: a plain strided axis.
    pub const NONE: Seg = Seg {
        len: usize::MAX,
        jump: 0,
    };

    /// Offset of index `i` along an axis of stride `stride`.
    fn offset(self, i: usize, stride: usize) -> usize {
        i * stride + (i / self.len) * self.jump
    }

    /// Indices left in the segment that holds index `i` (counting `i`).
    pub(crate) fn left(self, i: usize) -> usize {
        self.len - i % self.len
    }
}

/// A read-only strided view of a rows × cols f32 matrix: element (i, p) is
/// `data[row_seg.offset(i, rs) + col_seg.offset(p, cs)]` (`data[i·rs + p·cs]` for a plain view).
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    /// The backing values.
    pub data: &'a [f32],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
    /// Jumps between groups of rows.
    pub row_seg: Seg,
    /// Jumps between groups of columns.
    pub col_seg: Seg,
}

impl<'a> View<'a> {
    /// A row-major rows × cols matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
            row_seg: Seg::NONE,
            col_seg: Seg::NONE,
        }
    }

    /// The im2col matrix of one zero-padded channels-last image (H_p × W_p × C, `data`) for a
    /// stride-1 k×k convolution without further padding, read in place: row (oy, ox) (Ho·Wo
    /// rows, Ho = H_p − k + 1) holds the patch at pixel (oy, ox), columns ordered (ky, kx, c).
    pub fn patches(data: &'a [f32], hp: usize, wp: usize, c: usize, k: usize) -> Self {
        let (ho, wo) = ((hp + 1).saturating_sub(k), (wp + 1).saturating_sub(k));
        View {
            data,
            rows: ho * wo,
            cols: k * k * c,
            rs: c,
            cs: 1,
            row_seg: Seg {
                len: wo.max(1),
                jump: (wp - wo) * c,
            },
            col_seg: Seg {
                len: (k * c).max(1),
                jump: (wp - k) * c,
            },
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        View {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            row_seg: self.col_seg,
            col_seg: self.row_seg,
        }
    }

    /// True when no axis jumps.
    pub(crate) fn is_plain(&self) -> bool {
        self.row_seg == Seg::NONE && self.col_seg == Seg::NONE
    }

    /// Offset of row `i`'s first element.
    pub(crate) fn row_off(&self, i: usize) -> usize {
        self.row_seg.offset(i, self.rs)
    }

    /// Offset of column `p` within a row.
    pub(crate) fn col_off(&self, p: usize) -> usize {
        self.col_seg.offset(p, self.cs)
    }

    /// Rows `lo..hi` (no copy).
    fn sub_rows(self, lo: usize, hi: usize) -> Self {
        View {
            data: &self.data[(lo * self.rs).min(self.data.len())..],
            rows: hi - lo,
            ..self
        }
    }

    /// Columns `lo..hi` (no copy).
    fn sub_cols(self, lo: usize, hi: usize) -> Self {
        View {
            data: &self.data[(lo * self.cs).min(self.data.len())..],
            cols: hi - lo,
            ..self
        }
    }

    /// True when every element lies inside `data` (offsets grow with both indices, so the last
    /// element has the largest).
    pub(crate) fn in_bounds(&self) -> bool {
        self.span() <= self.data.len()
    }

    /// Element (i, p).
    fn at(&self, i: usize, p: usize) -> f32 {
        self.data[self.row_off(i) + self.col_off(p)]
    }

    /// Number of leading values of `data` the view reads (the last element's offset + 1).
    fn span(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            self.row_off(self.rows - 1) + self.col_off(self.cols - 1) + 1
        }
    }

    /// The same view over `data[..span]` rounded to bf16 (`buf` holds the copy).
    fn rounded<'b>(self, buf: &'b mut Vec<f32>) -> View<'b> {
        round_into(&self.data[..self.span()], buf);
        View { data: buf, ..self }
    }

    /// A row-major copy (rows × cols) of the viewed matrix.
    ///
    /// Complexity: O(rows·cols).
    pub fn to_row_major(self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for i in 0..self.rows {
            out.extend((0..self.cols).map(|p| self.at(i, p)));
        }
        out
    }

    /// `self` when its columns are contiguous (within each column segment), else a row-major
    /// copy.
    fn unit_cols(self) -> Cow<'a, [f32]> {
        if self.cs == 1 {
            return Cow::Borrowed(self.data);
        }
        Cow::Owned(self.to_row_major())
    }
}

thread_local! {
    /// Scratch of the bf16 rounding on machines without AMX (A's and B's copies), kept per
    /// thread so the products of a step do not allocate and fault in fresh pages each time.
    static ROUNDED: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// Calls `f` with `a` and `b` rounded to bf16 (`b` as it is when `b_is_bf16`), over this
/// thread's scratch.
fn with_rounded<R>(
    a: View<'_>,
    b: View<'_>,
    b_is_bf16: bool,
    f: impl FnOnce(View<'_>, View<'_>) -> R,
) -> R {
    ROUNDED.with(|cell| {
        // A product never runs inside another on the same thread; `take` keeps it so.
        let (mut ba, mut bb) = std::mem::take(&mut *cell.borrow_mut());
        let out = {
            let a = a.rounded(&mut ba);
            let b = if b_is_bf16 { b } else { b.rounded(&mut bb) };
            f(a, b)
        };
        *cell.borrow_mut() = (ba, bb);
        out
    })
}

/// C = A·B, or C += A·B when `accumulate`; C is row-major m × n (m = A's rows, n = B's columns),
/// spread over the model's worker threads.
///
/// Panics when the shapes disagree, a view reaches outside its slice or has jumps (use
/// [`matmul_seq`] for those) — a bug in the caller.
///
/// Complexity: 2·m·k·n flops, divided over the threads when m or k is large.
pub(crate) fn matmul(a: View<'_>, b: View<'_>, c: &mut [f32], accumulate: bool) {
    check_shapes(&a, &b, c);
    assert!(
        a.is_plain() && b.is_plain(),
        "gemm: matmul needs plain views"
    );
    with_unit_cols(b, |b| spread(a, b, c, accumulate));
}

/// The threading of [`matmul`], B with unit column stride. Whether k is cut into parts is a
/// function of the shape only, so the result never depends on the thread count.
fn spread(a: View<'_>, b: View<'_>, c: &mut [f32], accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let threads = ops::num_threads();
    if m * n > 0 && m < 8 * MR && k >= 2 * KC {
        // Few rows, long k: fixed parts (a function of k only), each summed into its own
        // buffer, added in order.
        let parts = (k / KC).min(4);
        let per = k.div_ceil(parts);
        let partial = ops::par_map(parts, |j| {
            let (lo, hi) = (j * per, ((j + 1) * per).min(k));
            let mut out = vec![0.0f32; m * n];
            product(a.sub_cols(lo, hi), b.sub_rows(lo, hi), &mut out, false);
            out
        });
        let c = &mut c[..m * n];
        if !accumulate {
            c.fill(0.0);
        }
        for p in &partial {
            for (x, y) in c.iter_mut().zip(p) {
                *x += y;
            }
        }
    } else if threads > 1 && n > 0 && m >= 4 * MR * threads {
        // Rows split over the threads: every element is computed as on one thread.
        let per = m.div_ceil(threads).div_ceil(MR) * MR;
        std::thread::scope(|scope| {
            for (t, part) in c[..m * n].chunks_mut(per * n).enumerate() {
                let rows = part.len() / n.max(1);
                let a = a.sub_rows(t * per, t * per + rows);
                scope.spawn(move || product(a, b, part, accumulate));
            }
        });
    } else {
        product(a, b, &mut c[..m * n], accumulate);
    }
}

/// [`matmul`] on the calling thread only (for products already spread over examples), at the
/// given input precision.
///
/// Complexity: 2·m·k·n flops.
pub(crate) fn matmul_seq(
    a: View<'_>,
    b: View<'_>,
    c: &mut [f32],
    accumulate: bool,
    precision: Precision,
) {
    check_shapes(&a, &b, c);
    with_unit_cols(b, |b| {
        let c = &mut c[..a.rows * b.cols];
        match (precision.bf16_for(&a), super::amx::available()) {
            // SAFETY: AMX is available (checked); the views are in bounds with matching inner
            // dimensions and B has unit column stride; `c` holds m·n initialised values.
            (true, true) => unsafe { super::amx::product(a, b, c.as_mut_ptr(), accumulate) },
            (true, false) => with_rounded(a, b, false, |a, b| product(a, b, c, accumulate)),
            (false, _) => product(a, b, c, accumulate),
        }
    });
}

/// Appends C = A·B (m × n, row-major) to `out` on the calling thread, each value written once
/// by the product (no zero-fill first: the AVX-512 kernel stores every element of C when it
/// does not accumulate, and reads none before).
///
/// Complexity: 2·m·k·n flops.
pub(crate) fn matmul_seq_append(
    a: View<'_>,
    b: View<'_>,
    out: &mut Vec<f32>,
    precision: Precision,
) {
    check_views(&a, &b);
    with_unit_cols(b, |b| {
        match (precision.bf16_for(&a), super::amx::available()) {
            (true, true) => {
                // SAFETY: AMX is available (checked); the views are in bounds (checked above);
                // the product without accumulation stores all m·n values and reads none.
                let len = a.rows * b.cols;
                unsafe { append_written(out, len, |c| super::amx::product(a, b, c, false)) };
            }
            (true, false) => with_rounded(a, b, false, |a, b| append_f32(a, b, out)),
            (false, _) => append_f32(a, b, out),
        }
    });
}

/// [`matmul_seq_append`] on the f32 kernels; `b` has unit column stride.
fn append_f32(a: View<'_>, b: View<'_>, out: &mut Vec<f32>) {
    let len = a.rows * b.cols;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F; the views are in bounds (checked by the caller); the
        // product without accumulation stores all m·n values and reads none.
        unsafe { append_written(out, len, |c| avx512::product(a, b, c, false)) };
        return;
    }
    let start = out.len();
    out.resize(start + len, 0.0);
    portable(a, b, &mut out[start..], false);
}

/// Appends `len` values to `out`, written in place by `write` into reserved capacity (no
/// zero-fill first).
///
/// # Safety
/// `write` stores all `len` values at the pointer it is given and reads none of them.
unsafe fn append_written(out: &mut Vec<f32>, len: usize, write: impl FnOnce(*mut f32)) {
    out.reserve(len);
    let start = out.len();
    // SAFETY: the reserved capacity holds `len` values after `start`; `write` initialises
    // each of them (caller) before `set_len` exposes them.
    unsafe {
        write(out.as_mut_ptr().add(start));
        out.set_len(start + len);
    }
}

/// A layer's weight as the B of its products: the f32 view, and its bf16 packing for AMX when
/// the layer computes at [`Precision::Bf16`] on a machine that has AMX.
#[derive(Clone, Copy)]
pub(crate) struct Weight<'a> {
    /// B, row-major; at [`Precision::Bf16`] its values are bf16 already (the layer rounds its
    /// weight layouts once per update with [`round_bf16`]).
    pub view: View<'a>,
    /// B packed for [`super::amx::product_packed`].
    pub packed: Option<&'a super::amx::PackedB>,
    /// The layer's input precision.
    pub precision: Precision,
}

impl Weight<'_> {
    /// The AMX packing, when there is one and `a` is a layout the AMX path takes.
    fn packed_for(&self, a: &View<'_>) -> Option<&super::amx::PackedB> {
        self.packed.filter(|p| {
            super::amx::takes(a) && (p.rows(), p.cols()) == (self.view.rows, self.view.cols)
        })
    }
}

/// [`matmul_seq`] with a weight as B: on AMX tiles when it is packed for them.
///
/// Complexity: 2·m·k·n flops.
pub(crate) fn matmul_seq_weight(a: View<'_>, w: Weight<'_>, c: &mut [f32], accumulate: bool) {
    check_shapes(&a, &w.view, c);
    match w.packed_for(&a) {
        // SAFETY: a packing exists only where `amx::available` said yes; `a` is in bounds
        // (checked), taken by the AMX path, with a.cols = B's rows; `c` holds m·n values.
        Some(p) => unsafe {
            super::amx::product_packed(a, p, c.as_mut_ptr(), accumulate);
        },
        // B is rounded already: only A is.
        None if w.precision.bf16_for(&a) && !super::amx::available() => {
            let c = &mut c[..a.rows * w.view.cols];
            with_rounded(a, w.view, true, |a, b| product(a, b, c, accumulate))
        }
        None => matmul_seq(a, w.view, c, accumulate, w.precision),
    }
}

/// [`matmul_seq_append`] with a weight as B: on AMX tiles when it is packed for them.
///
/// Complexity: 2·m·k·n flops.
pub(crate) fn matmul_seq_append_weight(a: View<'_>, w: Weight<'_>, out: &mut Vec<f32>) {
    check_views(&a, &w.view);
    match w.packed_for(&a) {
        Some(p) => {
            let len = a.rows * w.view.cols;
            // SAFETY: as in `matmul_seq_weight`; the product without accumulation stores all
            // m·n values and reads none.
            unsafe { append_written(out, len, |c| super::amx::product_packed(a, p, c, false)) };
        }
        None if w.precision.bf16_for(&a) && !super::amx::available() => {
            with_rounded(a, w.view, true, |a, b| append_f32(a, b, out))
        }
        None => matmul_seq_append(a, w.view, out, w.precision),
    }
}

/// `out` = [`round_bf16`] of each value of `src` (16 lanes at a time with AVX-512, where the
/// crate's baseline target would vectorise it 4 wide).
///
/// Complexity: O(len).
fn round_into(src: &[f32], out: &mut Vec<f32>) {
    out.clear();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        out.reserve(src.len());
        // SAFETY: the CPU has AVX-512F; `out` has capacity for `src.len()` values, each
        // written by `avx512::round` before `set_len` exposes them.
        unsafe {
            avx512::round(src, out.as_mut_ptr());
            out.set_len(src.len());
        }
        return;
    }
    out.extend(src.iter().map(|&x| round_bf16(x)));
}

/// x rounded to the nearest bf16 (ties to even) and returned as f32, as the AMX path's
/// conversion (`VCVTNE2PS2BF16`) rounds: subnormal inputs become zero of the same sign, a NaN
/// stays a (quiet) NaN, values past the largest bf16 become ±∞.
pub(crate) fn round_bf16(x: f32) -> f32 {
    // Integer selects rather than branches, so slices of it vectorise.
    let bits = x.to_bits();
    let magnitude = bits & 0x7FFF_FFFF;
    let nearest = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) & 0xFFFF_0000;
    let nan = (bits | 0x0040_0000) & 0xFFFF_0000;
    let zero = bits & 0x8000_0000;
    let out = if magnitude > 0x7F80_0000 {
        nan
    } else {
        nearest
    };
    f32::from_bits(if magnitude < 0x0080_0000 { zero } else { out })
}

/// Calls `f` with `b` or, when its columns are not contiguous, a row-major copy of it.
fn with_unit_cols<R>(b: View<'_>, f: impl FnOnce(View<'_>) -> R) -> R {
    match b.unit_cols() {
        Cow::Borrowed(_) => f(b),
        Cow::Owned(data) => f(View::new(&data, b.rows, b.cols)),
    }
}

/// The shape and bounds checks every entry point makes before any kernel runs.
fn check_shapes(a: &View<'_>, b: &View<'_>, c: &[f32]) {
    check_views(a, b);
    assert!(c.len() >= a.rows * b.cols, "gemm: output too short");
}

/// The inner dimensions agree and both views lie inside their slices.
fn check_views(a: &View<'_>, b: &View<'_>) {
    assert_eq!(a.cols, b.rows, "gemm: inner dimensions differ");
    assert!(a.in_bounds() && b.in_bounds(), "gemm: view out of bounds");
}

/// One product on the calling thread: the AVX-512 kernels when the CPU has them, the portable
/// loop otherwise. `b` has unit column stride; `c` is exactly m × n.
fn product(a: View<'_>, b: View<'_>, c: &mut [f32], accumulate: bool) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked above); the views are in bounds and `c` holds
        // m·n values (checked by the caller), which is all `avx512::product` touches.
        unsafe { avx512::product(a, b, c.as_mut_ptr(), accumulate) };
        return;
    }
    portable(a, b, c, accumulate);
}

/// The safe reference product: row i of C accumulates A[i, p]·B[p, ·] over p, B's row read as
/// its contiguous column segments (the inner loop vectorises for the baseline target).
///
/// Complexity: 2·m·k·n flops.
fn portable(a: View<'_>, b: View<'_>, c: &mut [f32], accumulate: bool) {
    let n = b.cols;
    if n == 0 {
        return;
    }
    for (i, row) in c.chunks_mut(n).enumerate().take(a.rows) {
        if !accumulate {
            row.fill(0.0);
        }
        for p in 0..a.cols {
            let x = a.at(i, p);
            let mut j = 0;
            while j < n {
                let len = b.col_seg.left(j).min(n - j);
                let start = b.row_off(p) + b.col_off(j);
                let bp = &b.data[start..start + len];
                for (o, y) in row[j..j + len].iter_mut().zip(bp) {
                    *o += x * y;
                }
                j += len;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The AVX-512 register-tile kernels (see the module documentation for the method).

    use std::arch::x86_64::*;

    use super::{KC, MC, MR, NR, View};

    /// `out[i]` = [`super::round_bf16`]`(src[i])` for every i: the same integer selects, 16
    /// lanes at a time, the tail in scalar code.
    ///
    /// # Safety
    /// The CPU supports AVX-512F; `out` is valid for writes of `src.len()` values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn round(src: &[f32], out: *mut f32) {
        let full = src.len() / 16 * 16;
        let c = _mm512_set1_epi32;
        for i in (0..full).step_by(16) {
            // SAFETY: i + 16 ≤ len for both `src` and `out` (caller).
            unsafe {
                let b = _mm512_loadu_si512(src.as_ptr().add(i).cast());
                let magnitude = _mm512_and_si512(b, c(0x7FFF_FFFF));
                let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(b), c(1));
                let up = _mm512_add_epi32(b, _mm512_add_epi32(c(0x7FFF), odd));
                let nearest = _mm512_and_si512(up, c(0xFFFF_0000_u32 as i32));
                let nan = _mm512_and_si512(
                    _mm512_or_si512(b, c(0x0040_0000)),
                    c(0xFFFF_0000_u32 as i32),
                );
                let zero = _mm512_and_si512(b, c(0x8000_0000_u32 as i32));
                let is_nan = _mm512_cmpgt_epi32_mask(magnitude, c(0x7F80_0000));
                let is_small = _mm512_cmplt_epi32_mask(magnitude, c(0x0080_0000));
                let v = _mm512_mask_blend_epi32(is_nan, nearest, nan);
                let v = _mm512_mask_blend_epi32(is_small, v, zero);
                _mm512_storeu_si512(out.add(i).cast(), v);
            }
        }
        for (i, &x) in src.iter().enumerate().skip(full) {
            // SAFETY: i < len (caller).
            unsafe { *out.add(i) = super::round_bf16(x) };
        }
    }

    /// C (m × n, row-major at `c`) = A·B (+ C), B with unit column stride. Without
    /// `accumulate` every element of C is stored and none is read first, so C may be
    /// uninitialised memory.
    ///
    /// # Safety
    /// The CPU supports AVX-512F; `a` and `b` are in bounds, `b.cs == 1`, `c` is valid for
    /// writes of m·n values (and initialised when `accumulate`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(a: View<'_>, b: View<'_>, c: *mut f32, accumulate: bool) {
        let (m, k, n) = (a.rows, a.cols, b.cols);
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                // SAFETY: `c` is valid for m·n writes; all-zero bits are 0.0f32.
                unsafe { std::ptr::write_bytes(c, 0, m * n) };
            }
            return;
        }
        let mut pc = 0;
        while pc < k {
            let kc = KC.min(k - pc);
            let acc = accumulate || pc > 0;
            let mut ic = 0;
            while ic < m {
                let mc = MC.min(m - ic);
                // SAFETY: rows ic..ic+mc, columns pc..pc+kc of A, rows pc..pc+kc of B and rows
                // ic..ic+mc of C are inside the checked bounds.
                unsafe { block(&a, &b, c, ic, mc, pc, kc, acc) };
                ic += mc;
            }
            pc += kc;
        }
    }

    /// Rows of the next register tile at row `row` with `rest` rows left in the block: at most
    /// [`MR`], never across a row jump of A, and a short remainder shared by two tiles.
    fn tile_rows(a: &View<'_>, row: usize, rest: usize) -> usize {
        let r = rest.min(a.row_seg.left(row));
        if r <= MR {
            r
        } else if r < 2 * MR {
            r.div_ceil(2)
        } else {
            MR
        }
    }

    /// Rows ic..ic+mc of C over the k-block pc..pc+kc, tile by tile.
    ///
    /// # Safety
    /// As [`product`], with the block inside m × k × n.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn block(
        a: &View<'_>,
        b: &View<'_>,
        c: *mut f32,
        ic: usize,
        mc: usize,
        pc: usize,
        kc: usize,
        acc: bool,
    ) {
        let n = b.cols;
        let mut jr = 0;
        while jr < n {
            // A panel of B never straddles a column jump: its columns are contiguous.
            let nr = NR.min(n - jr).min(b.col_seg.left(jr));
            let nv = nr.div_ceil(16);
            let rem = nr - 16 * (nv - 1);
            let mask: __mmask16 = if rem == 16 {
                0xFFFF
            } else {
                ((1u32 << rem) - 1) as u16
            };
            let mut ir = 0;
            while ir < mc {
                let row = ic + ir;
                let mr = tile_rows(a, row, mc - ir);
                // SAFETY: offsets of elements (row, pc) of A, (pc, jr) of B and (row, jr) of C,
                // all inside the checked bounds.
                let (ap, bp, cp) = unsafe {
                    (
                        a.data.as_ptr().add(a.row_off(row) + a.col_off(pc)),
                        b.data.as_ptr().add(b.row_off(pc) + b.col_off(jr)),
                        c.add(row * n + jr),
                    )
                };
                let t = Tile {
                    k: kc,
                    a: ap,
                    rs_a: a.rs as isize,
                    cs_a: a.cs as isize,
                    a_seg: Jumps::at(a.col_seg.len, a.col_seg.jump, pc),
                    b: bp,
                    ldb: b.rs as isize,
                    b_seg: Jumps::at(b.row_seg.len, b.row_seg.jump, pc),
                    c: cp,
                    ldc: n as isize,
                    mask,
                    acc,
                };
                // SAFETY: the tile mr × nr at (row, jr) lies inside C and its A rows / B columns
                // inside the checked views (the rows within one row segment of A, the columns
                // within one column segment of B).
                unsafe { dispatch(t, mr, nv) };
                ir += mr;
            }
            jr += nr;
        }
    }

    /// The jumps of a pointer stepping along the k axis: `jump` extra after every `len` steps,
    /// the first after `left`.
    #[derive(Clone, Copy)]
    struct Jumps {
        len: usize,
        jump: isize,
        left: usize,
    }

    impl Jumps {
        /// The jumps of an axis segmented by (`len`, `jump`), starting at index `start`.
        fn at(len: usize, jump: usize, start: usize) -> Self {
            Jumps {
                len,
                jump: jump as isize,
                left: len - start % len,
            }
        }

        /// Advances `p` by one step of `stride` (plus the jump at a segment end).
        #[inline(always)]
        fn step(&mut self, p: *const f32, stride: isize) -> *const f32 {
            self.left -= 1;
            if self.left == 0 {
                self.left = self.len;
                p.wrapping_offset(stride + self.jump)
            } else {
                p.wrapping_offset(stride)
            }
        }
    }

    /// One register tile: k steps, pointers to its first A, B and C elements.
    #[derive(Clone, Copy)]
    struct Tile {
        k: usize,
        a: *const f32,
        rs_a: isize,
        cs_a: isize,
        a_seg: Jumps,
        b: *const f32,
        ldb: isize,
        b_seg: Jumps,
        c: *mut f32,
        ldc: isize,
        mask: __mmask16,
        acc: bool,
    }

    /// Calls the kernel instantiated for `mr` rows and `nv` vectors.
    ///
    /// # Safety
    /// As [`kernel`].
    #[target_feature(enable = "avx512f")]
    unsafe fn dispatch(t: Tile, mr: usize, nv: usize) {
        macro_rules! by_rows {
            ($nv:literal) => {
                match mr {
                    1 => kernel::<1, $nv>(t),
                    2 => kernel::<2, $nv>(t),
                    3 => kernel::<3, $nv>(t),
                    4 => kernel::<4, $nv>(t),
                    5 => kernel::<5, $nv>(t),
                    6 => kernel::<6, $nv>(t),
                    7 => kernel::<7, $nv>(t),
                    _ => kernel::<8, $nv>(t),
                }
            };
        }
        // SAFETY: forwarded from the caller.
        unsafe { if nv == 2 { by_rows!(2) } else { by_rows!(1) } }
    }

    /// C[0..M, 0..16·NV] (+)= Σ_p A[0..M, p]·B[p, 0..16·NV], the last vector masked by `t.mask`.
    ///
    /// # Safety
    /// AVX-512F is available; A[i, p] for i < M, p < k, B[p, j] and C[i, j] for the unmasked
    /// j < 16·NV are inside their allocations.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const M: usize, const NV: usize>(t: Tile) {
        let mut acc = [[_mm512_setzero_ps(); NV]; M];
        let (mut ap, mut bp) = (t.a, t.b);
        let (mut a_seg, mut b_seg) = (t.a_seg, t.b_seg);
        let prefetch = t.cs_a == 1;
        for q in 0..t.k {
            // SAFETY (whole loop body): ap points at A[0, q] and bp at B[q, 0]; loads stay inside
            // rows < M of A and the unmasked lanes of row q of B. The prefetch is a hint only
            // (it never faults); pointers advance with `wrapping_offset` and are dereferenced
            // only while q < k, that is at elements inside the views.
            unsafe {
                if prefetch {
                    let ahead = ap.wrapping_offset((q % M) as isize * t.rs_a + 64);
                    _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
                }
                let mut bv = [_mm512_setzero_ps(); NV];
                for (v, slot) in bv.iter_mut().enumerate() {
                    *slot = if v + 1 == NV {
                        _mm512_maskz_loadu_ps(t.mask, bp.add(16 * v))
                    } else {
                        _mm512_loadu_ps(bp.add(16 * v))
                    };
                }
                for (i, row) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*ap.offset(i as isize * t.rs_a));
                    for (v, r) in row.iter_mut().enumerate() {
                        *r = _mm512_fmadd_ps(x, bv[v], *r);
                    }
                }
                ap = a_seg.step(ap, t.cs_a);
                bp = b_seg.step(bp, t.ldb);
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, r) in row.iter().enumerate() {
                let mask = if v + 1 == NV { t.mask } else { 0xFFFF };
                // SAFETY: C[i, 16v..16v+16] with the masked-out lanes never touched.
                unsafe {
                    let cp = t.c.offset(i as isize * t.ldc).add(16 * v);
                    let mut x = *r;
                    if t.acc {
                        x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, cp));
                    }
                    _mm512_mask_storeu_ps(cp, mask, x);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f64 reference A·B for views.
    fn reference(a: View<'_>, b: View<'_>) -> Vec<f64> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols)
                    .map(|p| a.at(i, p) as f64 * b.at(p, j) as f64)
                    .sum();
            }
        }
        out
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5) - 1.0)
            .collect()
    }

    /// Checks `matmul`, `matmul_seq` and the portable loop against the f64 reference for an
    /// m × k × n product, A transposed or not, with and without accumulation.
    fn check(m: usize, k: usize, n: usize, a_transposed: bool) {
        let a_data = values(m * k, 1);
        let b_data = values(k * n, 2);
        let a = if a_transposed {
            View::new(&a_data, k, m).t()
        } else {
            View::new(&a_data, m, k)
        };
        let b = View::new(&b_data, k, n);
        let want = reference(a, b);
        let start = values(m * n, 3);
        let tol = 1e-5 * (k as f64).sqrt().max(1.0);
        type Product = fn(View<'_>, View<'_>, &mut [f32], bool);
        let products: [(&str, Product); 3] = [
            ("matmul", matmul),
            ("matmul_seq", |a, b, c, acc| {
                matmul_seq(a, b, c, acc, Precision::F32)
            }),
            ("portable", portable),
        ];
        // Appended after an existing value, written without a zero-fill.
        let mut appended = vec![7.0f32];
        matmul_seq_append(a, b, &mut appended, Precision::F32);
        assert_eq!(appended.len(), 1 + m * n);
        assert_eq!(appended[0], 7.0);
        for (idx, (&got, &w)) in appended[1..].iter().zip(&want).enumerate() {
            assert!(
                (got as f64 - w).abs() <= tol * (1.0 + w.abs()),
                "matmul_seq_append {m}×{k}×{n} (Aᵀ {a_transposed}) at {idx}: {got} vs {w}"
            );
        }
        for (name, f) in products {
            for accumulate in [false, true] {
                let mut c = start.clone();
                f(a, b, &mut c, accumulate);
                for (idx, (&got, &w)) in c.iter().zip(&want).enumerate() {
                    let w = w + if accumulate { start[idx] as f64 } else { 0.0 };
                    assert!(
                        (got as f64 - w).abs() <= tol * (1.0 + w.abs()),
                        "{name} {m}×{k}×{n} (Aᵀ {a_transposed}, acc {accumulate}) at {idx}: \
                         {got} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn products_match_the_f64_reference_on_every_tile_shape() {
        // Every row remainder of the 8-row tile (and the split of a short remainder over two
        // tiles), one- and two-vector and masked column tails.
        for m in [1, 5, 8, 9, 12, 13, 25] {
            for n in [1, 10, 16, 27, 32, 33, 70] {
                check(m, 9, n, false);
                check(m, 9, n, true);
            }
        }
    }

    #[test]
    fn products_match_on_blocked_and_split_shapes() {
        // k over one cache block (k-split path for few rows), many rows (row-split path).
        check(7, 3 * KC + 5, 20, true);
        check(40, 2 * KC + 1, 33, false);
        check(4 * MR * 2 + 7, 64, 32, false);
        check(300, 27, 32, false);
        check(0, 5, 3, false);
        check(3, 0, 4, false);
    }

    #[test]
    fn patch_views_multiply_like_their_explicit_im2col() {
        // A zero-padded image read in place as im2col (the forward and input-gradient A) and
        // as the B of a weight gradient Δᵀ·A_i: every tile-row and panel boundary against the
        // row and column jumps, and k blocks that start inside a segment.
        for (hp, wp, c, k) in [(6, 7, 2, 3), (10, 18, 16, 3), (5, 5, 3, 5), (34, 34, 32, 3)] {
            let img = values(hp * wp * c, 6);
            let a = View::patches(&img, hp, wp, c, k);
            let (ho, wo) = (hp + 1 - k, wp + 1 - k);
            assert_eq!((a.rows, a.cols), (ho * wo, k * k * c));
            let mut explicit = Vec::new();
            for oy in 0..ho {
                for ox in 0..wo {
                    for ky in 0..k {
                        for kx in 0..k {
                            for ch in 0..c {
                                explicit.push(img[((oy + ky) * wp + ox + kx) * c + ch]);
                            }
                        }
                    }
                }
            }
            let e = View::new(&explicit, ho * wo, k * k * c);
            for i in 0..a.rows {
                for p in 0..a.cols {
                    assert_eq!(a.at(i, p), e.at(i, p), "{hp}×{wp}×{c} k={k} at ({i}, {p})");
                }
            }
            let n = 21;
            let w = values(a.cols * n, 7);
            let b = View::new(&w, a.cols, n);
            let d = values(a.rows * n, 8);
            let dt = View::new(&d, a.rows, n).t();
            let cases = [(a, b, e, b), (dt, a, dt, e)];
            for (x, y, x_ref, y_ref) in cases {
                let want = reference(x_ref, y_ref);
                let tol = 1e-5 * (x.cols as f64).sqrt();
                for seq in [true, false] {
                    let mut got = vec![0.0f32; x.rows * y.cols];
                    if seq {
                        matmul_seq(x, y, &mut got, false, Precision::F32);
                    } else {
                        portable(x, y, &mut got, false);
                    }
                    for (idx, (&g, &w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g as f64 - w).abs() <= tol * (1.0 + w.abs()),
                            "{hp}×{wp}×{c} k={k} ({} × {} × {}) at {idx}: {g} vs {w}",
                            x.rows,
                            x.cols,
                            y.cols
                        );
                    }
                }
            }
        }
    }

    /// Checks the bf16 products of `a`·`b` (AMX where available, rounded inputs on the f32
    /// kernels elsewhere) against the f64 product of the inputs rounded to bf16 by
    /// [`round_bf16`]: only the f32 sums differ, |C − ÂB̂| ≤ (k + 2)·2⁻²³·Σ_p |Â_ip B̂_pj|.
    fn check_bf16(a: View<'_>, b: View<'_>, what: &str) {
        check_bf16_with(a, b, None, what);
    }

    /// [`check_bf16`], B given as a weight packed for AMX when `packed` (the convolutions'
    /// path, with the implicit patch loads where the view allows them).
    fn check_bf16_with(
        a: View<'_>,
        b: View<'_>,
        packed: Option<&super::super::amx::PackedB>,
        what: &str,
    ) {
        // A weight holds bf16 values (the layer rounds them once per update).
        let b_hat: Vec<f32> = b.to_row_major().into_iter().map(round_bf16).collect();
        let w = Weight {
            view: View::new(&b_hat, b.rows, b.cols),
            packed,
            precision: Precision::Bf16,
        };
        let term = |i: usize, p: usize, j: usize| {
            round_bf16(a.at(i, p)) as f64 * round_bf16(b.at(p, j)) as f64
        };
        let (mut want, mut size) = (vec![0.0f64; a.rows * b.cols], vec![0.0f64; a.rows * b.cols]);
        for i in 0..a.rows {
            for j in 0..b.cols {
                want[i * b.cols + j] = (0..a.cols).map(|p| term(i, p, j)).sum();
                size[i * b.cols + j] = (0..a.cols).map(|p| term(i, p, j).abs()).sum();
            }
        }
        let rel = (a.cols + 2) as f64 * 2f64.powi(-23);
        let start = values(a.rows * b.cols, 9);
        let mut appended = vec![7.0f32];
        if packed.is_some() {
            matmul_seq_append_weight(a, w, &mut appended);
        } else {
            matmul_seq_append(a, b, &mut appended, Precision::Bf16);
        }
        assert_eq!((appended.len(), appended[0]), (1 + want.len(), 7.0));
        for accumulate in [false, true] {
            let mut c = start.clone();
            if packed.is_some() {
                matmul_seq_weight(a, w, &mut c, accumulate);
            } else {
                matmul_seq(a, b, &mut c, accumulate, Precision::Bf16);
            }
            for (idx, (&got, &w)) in c.iter().zip(&want).enumerate() {
                let w = w + if accumulate { start[idx] as f64 } else { 0.0 };
                let tol = rel * size[idx] + 1e-6 * w.abs();
                assert!(
                    (got as f64 - w).abs() <= tol,
                    "bf16 {what} ({}×{}×{}, acc {accumulate}) at {idx}: {got} vs {w}",
                    a.rows,
                    a.cols,
                    b.cols
                );
                if !accumulate {
                    assert_eq!(appended[1 + idx], got, "append {what} at {idx}");
                }
            }
        }
    }

    #[test]
    fn bf16_products_stay_within_the_bf16_bound() {
        eprintln!(
            "AMX bf16 tiles available: {}",
            super::super::amx::available()
        );
        // Tile edges (16 and 32 rows/columns, 32 k) and their remainders, A transposed or not.
        for (m, k, n) in [
            (1, 1, 1),
            (16, 32, 16),
            (33, 31, 17),
            (40, 70, 65),
            (5, 0, 3),
        ] {
            let (a_data, b_data) = (values(m * k, 1), values(k * n, 2));
            let b = View::new(&b_data, k, n);
            check_bf16(View::new(&a_data, m, k), b, "plain");
            check_bf16(View::new(&a_data, k, m).t(), b, "Aᵀ");
        }
        // The convolution's views: patches as A (forward) and as B (weight gradient Δᵀ·A_i).
        let (hp, wp, c, k) = (10, 18, 16, 3);
        let img = values(hp * wp * c, 6);
        let a = View::patches(&img, hp, wp, c, k);
        let w = values(a.cols * 21, 7);
        check_bf16(a, View::new(&w, a.cols, 21), "patches · W");
        let d = values(a.rows * 21, 8);
        check_bf16(View::new(&d, a.rows, 21).t(), a, "Δᵀ · patches");
        // Weights packed once (the convolutions' path): patch views with C a multiple of 32
        // load their A tiles straight from the bf16 image (16- and 8-pixel tiles, several
        // column blocks); an odd tile count falls back to packing.
        for (hp, c, n) in [(18, 32, 32), (10, 64, 64), (10, 32, 96), (9, 32, 32)] {
            let img = values(hp * hp * c, 11);
            let a = View::patches(&img, hp, hp, c, 3);
            let w = values(a.cols * n, 12);
            let b = View::new(&w, a.cols, n);
            let packed = super::super::amx::PackedB::new(b);
            check_bf16_with(
                a,
                b,
                packed.as_ref(),
                &format!("patches {hp}²×{c} · packed W"),
            );
        }
        // Smaller products after larger ones: the reused packing buffers' padding is zero.
        for (m, k, n) in [(33, 31, 17), (7, 5, 3)] {
            let (a_data, b_data) = (values(m * k, 3), values(k * n, 4));
            let b = View::new(&b_data, k, n);
            check_bf16(View::new(&a_data, m, k), b, "plain after larger");
            check_bf16(View::new(&a_data, k, m).t(), b, "Aᵀ after larger");
        }
    }

    #[test]
    fn bf16_rounding_is_to_nearest_even_and_matches_the_hardware_conversion() {
        let check = |x: f32, want: f32| {
            let got = round_bf16(x);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{x:e} ({:#010x}): {got:e} vs {want:e}",
                x.to_bits()
            );
        };
        let bits = f32::from_bits;
        check(1.0, 1.0);
        check(bits(0x3F80_8000), 1.0); // a tie: to the even 1.0
        check(bits(0x3F81_8000), bits(0x3F82_0000)); // a tie: to the even neighbour above
        check(bits(0x3F80_8001), bits(0x3F81_0000)); // past the tie: up
        check(-bits(0x3F80_7FFF), -1.0);
        check(f32::MAX, f32::INFINITY);
        check(f32::NEG_INFINITY, f32::NEG_INFINITY);
        check(bits(0x0000_0001), 0.0); // subnormals to zero, sign kept
        check(-bits(0x007F_FFFF), -0.0);
        check(f32::NAN, f32::NAN);
        // Idempotent; within half a unit in the last place of bf16's 8 significant bits (2⁻⁸).
        for i in 0..100_000u32 {
            let x = bits(i.wrapping_mul(2_654_435_761));
            let r = round_bf16(x);
            assert_eq!(round_bf16(r).to_bits(), r.to_bits(), "idempotent at {x:e}");
            if x.is_normal() && r.is_finite() {
                assert!(((r - x) / x).abs() <= 2f32.powi(-8), "{x:e} → {r:e}");
            }
        }
        // Slices (the vector path and its scalar tail) round like the scalar function.
        for len in [0, 1, 15, 16, 17, 100, 1001] {
            let src: Vec<f32> = (0..len as u32)
                .map(|i| bits(i.wrapping_mul(2_246_822_519) ^ 0x8000_7FFF))
                .chain([f32::NAN, -0.0, f32::MIN_POSITIVE / 3.0, f32::MAX])
                .collect();
            let mut out = vec![1.0];
            round_into(&src, &mut out);
            assert_eq!(out.len(), src.len());
            for (x, r) in src.iter().zip(&out) {
                check(*x, *r);
            }
        }
        // The AMX path's conversion, where the CPU has it: the same bits for every input.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            #[target_feature(enable = "avx512f,avx512bf16")]
            unsafe fn hardware(x: [f32; 16]) -> [u16; 16] {
                use std::arch::x86_64::*;
                // SAFETY: the caller checked AVX-512 BF16; plain value conversions.
                unsafe {
                    let v = _mm512_loadu_ps(x.as_ptr());
                    std::mem::transmute(_mm512_cvtneps_pbh(v))
                }
            }
            for block in 0..20_000u32 {
                let x: [f32; 16] = std::array::from_fn(|l| {
                    bits((block * 16 + l as u32).wrapping_mul(2_654_435_761) ^ (block << 3))
                });
                // SAFETY: AVX-512 BF16 is available (checked above).
                let hw = unsafe { hardware(x) };
                for (x, h) in x.iter().zip(hw) {
                    check(*x, bits((h as u32) << 16));
                }
            }
        }
    }

    #[test]
    fn a_strided_b_is_copied_to_rows() {
        // B given transposed (column stride ≠ 1) is multiplied like its row-major copy.
        let (m, k, n) = (6, 20, 35);
        let a_data = values(m * k, 4);
        let bt = values(n * k, 5);
        let a = View::new(&a_data, m, k);
        let b = View::new(&bt, n, k).t();
        let want = reference(a, b);
        let mut c = vec![0.0f32; m * n];
        matmul(a, b, &mut c, false);
        for (g, w) in c.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-4, "{g} vs {w}");
        }
    }
}
