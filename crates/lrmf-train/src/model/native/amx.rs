//! C = A·B (+ C) on Intel AMX tiles with bf16 inputs and f32 accumulation (`TDPBF16PS`): the
//! opt-in `matmul = "bf16"` path of the convolutions. One AMX instruction multiplies a 16 × 32
//! bf16 tile by a 32 × 16 one into 16 × 16 f32 sums; on the build machine's Sapphire Rapids
//! cores that runs at about 840 GFLOP/s on one core against 134 for AVX-512 f32 FMAs.
//!
//! Method: A and B are converted to bf16 (round to nearest even) and packed: A into 16 × 32
//! tiles (1 KiB each, row stride 64 bytes), B into the VNNI layout the instruction reads (16
//! pairs of k rows × 16 columns × 2, also 1 KiB). Zero padding fills m and n up to multiples of
//! 32 and k up to a multiple of 32, so every tile is whole. A 32 × 32 block of C lives in four
//! tile registers while k runs; whole blocks are stored straight into C, edge blocks through a
//! scratch block. A is packed 32 rows at a time (the panel stays in L1); a layer's weights are
//! packed once per update ([`PackedB`]). Implicit convolution: when A is the patch view of a
//! padded image with C a multiple of 32, the image is converted to bf16 once and each A tile
//! (16 or 8 consecutive output pixels × 32 channels of one kernel position) loads straight from
//! it with a row stride of C values — no packing of the nine-fold patch matrix (one private
//! CIFAR-10 epoch 103 s → 90 s). Sums are in f32 inside the tile unit (its own order of additions), so the
//! result differs from the f32 kernels by the bf16 rounding of the inputs (at most 2⁻⁸ relative per
//! input) and the summation order — never by the thread count.
//!
//! # Safety audit
//! [`available`] checks CPUID (AMX-TILE and AMX-BF16) and asks Linux for the tile state once
//! per process (`arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)`); [`product`] runs only after it
//! said yes. The packed buffers are sized from the padded shape before any tile load, every
//! tile load reads 16 rows of 64 bytes inside them, and every tile store writes 16 rows of 64
//! bytes inside the 32 × 32 scratch block. C is written only at (i, j) with i < m, j < n.

use std::sync::OnceLock;

use super::gemm::View;

/// Rows of an A tile and of a C tile; columns of a C tile.
const T: usize = 16;
/// k per tile step (32 bf16 = 64 bytes per tile row).
const KT: usize = 32;

/// Whether this process may use AMX-BF16 (CPUID and the kernel's permission), asked once.
pub(crate) fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            // Leaf 0 reports the highest CPUID leaf; leaf 7 holds the AMX bits.
            if std::arch::x86_64::__cpuid(0).eax < 7 {
                return false;
            }
            let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
            let (bf16, tile) = (edx & (1 << 22) != 0, edx & (1 << 24) != 0);
            // The packing converts with AVX-512 BF16 (`VCVTNE2PS2BF16`) and permutes words.
            let avx = std::arch::is_x86_feature_detected!("avx512bf16")
                && std::arch::is_x86_feature_detected!("avx512bw");
            bf16 && tile && avx && request_tile_state()
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        {
            false
        }
    })
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: Linux ≥ 5.16 grants the process the
/// AMX tile state (returns 0) or refuses (no AMX for this process).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_state() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: a plain system call that only changes which register state the kernel saves for
    // this process; rcx and r11 are clobbered by `syscall`.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

/// f32 → bf16, round to nearest even (NaN stays NaN), as `VCVTNE2PS2BF16` rounds.
fn bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// Lanes `0..len` (≤ 16) set.
fn lanes(len: usize) -> u16 {
    if len >= 16 {
        0xFFFF
    } else {
        ((1u32 << len) - 1) as u16
    }
}

/// Converts `len` ≤ 32 contiguous f32 at `src` to 32 bf16 at `dst` (zeros past `len`).
///
/// # Safety
/// AVX-512F/BW/BF16 are available; `src` is readable for `len` values, `dst` writable for 32.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn convert32(src: *const f32, len: usize, dst: *mut u16) {
    use std::arch::x86_64::*;
    // SAFETY: masked loads touch only lanes < len; the store writes 32 values at `dst`.
    unsafe {
        let lo = _mm512_maskz_loadu_ps(lanes(len), src);
        let hi = _mm512_maskz_loadu_ps(lanes(len.saturating_sub(16)), src.add(16.min(len)));
        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(dst.cast(), v);
    }
}

/// Rows `lo`, `hi` of 16 columns (f32, `len` ≤ 16 of them readable; null = a zero row) as the
/// 16 VNNI pairs (lo_j, hi_j) at `dst`.
///
/// # Safety
/// AVX-512F/BW/BF16 are available; non-null rows are readable for `len` values, `dst` writable
/// for 32 values.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pair16(lo: *const f32, hi: *const f32, len: usize, dst: *mut u16) {
    use std::arch::x86_64::*;
    // SAFETY: masked loads touch only lanes < len of non-null rows; one 64-byte store.
    unsafe {
        let load = |p: *const f32| {
            if p.is_null() {
                _mm512_setzero_ps()
            } else {
                _mm512_maskz_loadu_ps(lanes(len), p)
            }
        };
        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(load(hi), load(lo)));
        // bf16 lane 2j ← lo_j (lane j), 2j + 1 ← hi_j (lane 16 + j).
        let idx = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
            4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        _mm512_storeu_si512(dst.cast(), _mm512_permutexvar_epi16(idx, v));
    }
}

/// Rows `i0..i0 + 32` of A (those < m; the rest zero) packed as bf16 tiles into `out`
/// (2·16·kp values, every one written): tile (ib, kb), ib ∈ {0, 1}, holds rows i0 + 16·ib..
/// and k 32·kb.. at `((ib·kt + kb)·16 + r)·32 + c`; k ≥ a.cols is zero.
///
/// # Safety
/// As [`convert32`]; `a` is in bounds with unit column stride; `blocks` is [`k_blocks`] of `a`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_a(
    a: &View<'_>,
    i0: usize,
    kp: usize,
    blocks: &[(usize, usize, bool)],
    out: &mut [u16],
) {
    let kt = kp / KT;
    for li in 0..2 * T {
        let (i, tile_row) = (i0 + li, |kb: usize| ((li / T * kt + kb) * T + li % T) * KT);
        if i >= a.rows {
            (0..kt).for_each(|kb| out[tile_row(kb)..][..KT].fill(0));
            continue;
        }
        let r = a.row_off(i);
        for (kb, &(off, len, whole)) in blocks.iter().enumerate() {
            let at = tile_row(kb);
            if whole {
                let src = &a.data[r + off..][..len];
                // SAFETY: `src` holds len values; out[at..at + 32] is inside `out`.
                unsafe { convert32(src.as_ptr(), len, out.as_mut_ptr().add(at)) };
            } else {
                let p = kb * KT;
                for q in 0..KT {
                    out[at + q] = if q < len {
                        bf16(a.data[r + a.col_off(p + q)])
                    } else {
                        0
                    };
                }
            }
        }
    }
}

/// Per k block of 32 of A (unit column stride): the offset of its first column, its length,
/// and whether its columns are contiguous (inside one column segment) — computed once per
/// product, not per row.
fn k_blocks(a: &View<'_>, kp: usize) -> Vec<(usize, usize, bool)> {
    let k = a.cols;
    (0..kp / KT)
        .map(|kb| {
            let (p, len) = (kb * KT, KT.min(k.saturating_sub(kb * KT)));
            let off = a.col_off(p.min(k.saturating_sub(1)));
            (off, len, len > 0 && a.col_seg.left(p) >= len)
        })
        .collect()
}

/// B (unit column stride) packed in the VNNI layout into `out` (every value written): tile
/// (jb, kb) holds columns 16·jb.. and k 32·kb.. as 16 rows of k pairs, each 16 columns × 2:
/// element (p, j) sits at `((jb·kp/2 + p/2)·16 + j % 16)·2 + p % 2`; padding is zero.
///
/// # Safety
/// As [`pair16`]; `b` is in bounds with unit column stride.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_b(b: &View<'_>, np: usize, kp: usize, out: &mut Vec<u16>) {
    let (k, n) = (b.rows, b.cols);
    if out.len() < np * kp {
        out.resize(np * kp, 0);
    }
    // Zero padding only where the loop below writes nothing: the k pairs past k (each column
    // block) and the column blocks past n (no fill of the whole buffer).
    for jb in 0..np / T {
        let from = if jb < n.div_ceil(T) { k.div_ceil(2) } else { 0 };
        out[(jb * (kp / 2) + from) * T * 2..(jb + 1) * (kp / 2) * T * 2].fill(0);
    }
    // Row offsets once (each costs a division on a segmented axis).
    let rows: Vec<usize> = (0..k).map(|p| b.row_off(p)).collect();
    for jb in 0..n.div_ceil(T) {
        let j = jb * T;
        let len = T.min(n - j);
        let (col, whole) = (b.col_off(j), b.col_seg.left(j) >= len);
        for q in 0..k.div_ceil(2) {
            let at = ((jb * (kp / 2) + q) * T) * 2;
            if whole {
                let ptr = |p: usize| {
                    rows.get(p)
                        .map_or(std::ptr::null(), |&r| b.data[r + col..][..len].as_ptr())
                };
                // SAFETY: each non-null row holds len values; out[at..at + 32] is inside `out`.
                unsafe { pair16(ptr(2 * q), ptr(2 * q + 1), len, out.as_mut_ptr().add(at)) };
            } else {
                out[at..at + 2 * T].fill(0);
                for c in 0..len {
                    for (h, p) in [(0, 2 * q), (1, 2 * q + 1)] {
                        if p < k {
                            out[at + 2 * c + h] = bf16(b.data[rows[p] + b.col_off(j + c)]);
                        }
                    }
                }
            }
        }
    }
}

/// [`pack_a`] for a transposed A (unit row stride, plain: the weight gradient's Δᵀ): each k
/// index p holds A[i0.., p] contiguously; 32 are converted at a time and scattered into the
/// tiles' rows.
///
/// # Safety
/// As [`convert32`]; `a` is in bounds, plain, with unit row stride.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_a_transposed(a: &View<'_>, i0: usize, kp: usize, out: &mut [u16]) {
    let (k, kt) = (a.cols, kp / KT);
    let len = (2 * T).min(a.rows - i0);
    let tile_row = |li: usize, kb: usize| ((li / T * kt + kb) * T + li % T) * KT;
    // Zeros where the loop below writes nothing: rows past m, k past k.
    for li in 0..2 * T {
        if li >= len {
            (0..kt).for_each(|kb| out[tile_row(li, kb)..][..KT].fill(0));
        } else if k % KT != 0 || k == 0 {
            let from = k % KT;
            out[tile_row(li, kt - 1) + from..][..KT - from].fill(0);
        }
    }
    let mut col = [0u16; 32];
    for p in 0..k {
        let src = &a.data[p * a.cs + i0..][..len];
        // SAFETY: `src` holds len ≤ 32 values; `col` holds 32.
        unsafe { convert32(src.as_ptr(), len, col.as_mut_ptr()) };
        let (kb, c) = (p / KT, p % KT);
        for (li, &v) in col[..len].iter().enumerate() {
            out[tile_row(li, kb) + c] = v;
        }
    }
}

/// B packed once for many products (a layer's weight, packed once per parameter update).
#[derive(Debug, Clone)]
pub(crate) struct PackedB {
    data: Vec<u16>,
    k: usize,
    n: usize,
}

impl PackedB {
    /// Packs `b` (unit column stride) for [`product_packed`]; `None` where AMX is unavailable.
    pub(crate) fn new(b: View<'_>) -> Option<PackedB> {
        if !available() || b.cs != 1 || !b.in_bounds() {
            return None;
        }
        let (np, kp) = (
            b.cols.next_multiple_of(2 * T),
            b.rows.max(1).next_multiple_of(KT),
        );
        let mut data = Vec::new();
        // SAFETY: `available` checked AMX and AVX-512F/BW/BF16; `b` is in bounds (checked) with
        // unit column stride.
        unsafe { pack_b(&b, np, kp, &mut data) };
        Some(PackedB {
            data,
            k: b.rows,
            n: b.cols,
        })
    }

    /// Rows k of B.
    pub(crate) fn rows(&self) -> usize {
        self.k
    }

    /// Columns n of B.
    pub(crate) fn cols(&self) -> usize {
        self.n
    }
}

thread_local! {
    /// Packing buffers reused across the products of a thread.
    static PACKED: std::cell::RefCell<(Vec<u16>, Vec<u16>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// The tile configuration (palette 1): tiles 0–3 the C block, 4–5 A, 6–7 B; each 16 rows of
/// 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// C (m × n, row-major at `c`) = A·B (+ C) with bf16 inputs and f32 sums. Without `accumulate`
/// every element of C is stored and none is read first, so C may be uninitialised memory.
///
/// # Safety
/// [`available`] returned true; `a` and `b` are in bounds with `a.cols == b.rows`, [`takes`]
/// holds for `a`, and `b.cs == 1`; `c` is valid for writes of m·n values (and initialised when `accumulate`).
pub(crate) unsafe fn product(a: View<'_>, b: View<'_>, c: *mut f32, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let (np, kp) = (n.next_multiple_of(2 * T), k.max(1).next_multiple_of(KT));
    PACKED.with_borrow_mut(|(ap, bp)| {
        // SAFETY: the caller checked `available` (AMX and AVX-512F/BW/BF16) and the views.
        unsafe {
            pack_b(&b, np, kp, bp);
            run(&a, bp, (n, kp), c, accumulate, ap);
        }
    });
}

/// C (m × n, row-major at `c`) = A·B (+ C) with B packed beforehand; as [`product`].
///
/// # Safety
/// As [`product`], with `b` packed from a B of `a.cols` rows.
pub(crate) unsafe fn product_packed(a: View<'_>, b: &PackedB, c: *mut f32, accumulate: bool) {
    if a.rows == 0 || b.n == 0 {
        return;
    }
    let kp = a.cols.max(1).next_multiple_of(KT);
    PACKED.with_borrow_mut(|(ap, _)| {
        // SAFETY: as in `product`; `b.data` is the packing of an a.cols × n B.
        unsafe {
            match Implicit::of(&a, b.n) {
                Some(g) => implicit(&a, g, (&b.data, b.n), c, accumulate, ap),
                None => run(&a, &b.data, (b.n, kp), c, accumulate, ap),
            }
        };
    });
}

/// A patch view ([`View::patches`] of one zero-padded channels-last image) in the shape the
/// implicit path takes: C a multiple of 32, so each k step of 32 is 32 channels of one kernel
/// position, and A tiles of `tr` consecutive output pixels of one output row load straight
/// from the bf16 image with a row stride of C values.
#[derive(Debug, Clone, Copy)]
struct Implicit {
    /// Channels C.
    c: usize,
    /// Padded width W_p.
    wp: usize,
    /// Output width W_o.
    wo: usize,
    /// Kernel side k.
    k: usize,
    /// Rows of an A (and C) tile: output pixels per tile, within one output row.
    tr: usize,
}

impl Implicit {
    /// The geometry of `a` when it is a patch view this path takes and B has `n` columns (a
    /// multiple of 32); `None` otherwise.
    fn of(a: &View<'_>, n: usize) -> Option<Implicit> {
        let c = a.rs;
        let (wo, kc) = (a.row_seg.len, a.col_seg.len);
        if a.cs != 1
            || c == 0
            || !c.is_multiple_of(KT)
            || n == 0
            || !n.is_multiple_of(2 * T)
            || wo == 0
        {
            return None;
        }
        let (k, wp) = (kc / c, wo + a.row_seg.jump / c);
        let tr = wo.min(T);
        let tiles = a.rows / tr.max(1);
        let fits = kc.is_multiple_of(c)
            && a.row_seg.jump.is_multiple_of(c)
            && a.col_seg.jump == (wp - k) * c
            && a.cols == k * kc
            && a.rows.is_multiple_of(wo)
            && wo.is_multiple_of(tr)
            && tiles.is_multiple_of(2)
            && a.data.len() >= (a.rows / wo + k - 1) * wp * c;
        fits.then_some(Implicit { c, wp, wo, k, tr })
    }
}

/// C (Ho·Wo × n) = patches(image)·B (+ C) with the A tiles loaded from the image in bf16 (no
/// packing: each k step is one kernel position and 32 channels, whose 32 values are
/// contiguous for every output pixel). The image is converted to bf16 once into `img`.
///
/// # Safety
/// As [`product_packed`]; `bp` is B packed for n columns; `g` is [`Implicit::of`] of `a`
/// for n.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn implicit(
    a: &View<'_>,
    g: Implicit,
    (bp, n): (&[u16], usize),
    c: *mut f32,
    accumulate: bool,
    img: &mut Vec<u16>,
) {
    let Implicit {
        c: ch,
        wp,
        wo,
        k,
        tr,
    } = g;
    let len = (a.rows / wo + k - 1) * wp * ch;
    if img.len() < len {
        img.resize(len, 0);
    }
    for (src, dst) in a.data[..len].chunks(KT).zip(img.chunks_mut(KT)) {
        // SAFETY: 32 values each side (len is a multiple of C, hence of 32).
        unsafe { convert32(src.as_ptr(), src.len(), dst.as_mut_ptr()) };
    }
    let kt = a.cols / KT;
    // Byte offset of k step s = (ky, kx, channel block) from an output pixel's image position.
    let offsets: Vec<usize> = (0..kt)
        .map(|s| {
            let p = s * KT;
            let (ky, kx, cb) = (p / (k * ch), p % (k * ch) / ch, p % ch);
            2 * ((ky * wp + kx) * ch + cb)
        })
        .collect();
    // SAFETY: AMX is available (caller); palette 1 with A and C tiles of tr rows.
    unsafe { configure(tr as u8) };
    let tile_base = |t: usize| {
        let (oy, ox) = (t * tr / wo, t * tr % wo);
        (oy * wp + ox) * ch
    };
    for t in (0..a.rows / tr).step_by(2) {
        // SAFETY: tile t's first pixel lies in the image; every load below stays inside it
        // (k steps cover the kernel window of the tile's pixels, all inside the padded image).
        let ap = unsafe {
            [
                img.as_ptr().add(tile_base(t)),
                img.as_ptr().add(tile_base(t + 1)),
            ]
        };
        for j0 in (0..n).step_by(2 * T) {
            let jb = j0 / T;
            let b = [
                bp[jb * (kt * KT / 2) * T * 2..].as_ptr(),
                bp[(jb + 1) * (kt * KT / 2) * T * 2..].as_ptr(),
            ];
            // SAFETY: rows t·tr.. and (t + 1)·tr.. (tr each) of C, columns j0..j0 + 32 ≤ n.
            let q = unsafe {
                let r0 = c.add(t * tr * n + j0);
                let r1 = c.add((t + 1) * tr * n + j0);
                [r0, r0.add(T), r1, r1.add(T)]
            };
            // SAFETY: as above; C initialised when accumulating.
            unsafe { block_tiles(ap, 2 * ch, &offsets, b, q, 4 * n, accumulate) };
        }
    }
    // SAFETY: releases the tile state configured above.
    unsafe { std::arch::asm!("tilerelease", options(nostack)) };
}

/// Loads the tile configuration: tiles 0–3 (C) and 4–5 (A) of `rows` rows, 6–7 (B) of 16;
/// all rows 64 bytes.
///
/// # Safety
/// AMX is available.
unsafe fn configure(rows: u8) {
    let mut cfg = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [64; 16],
        rows: [0; 16],
    };
    cfg.colsb[8..].fill(0);
    cfg.rows[..6].fill(rows);
    cfg.rows[6..8].fill(T as u8);
    // SAFETY: the configuration is valid for palette 1 (rows ≤ 16, 64-byte rows).
    unsafe {
        std::arch::asm!("ldtilecfg [{}]", in(reg) &cfg as *const TileConfig, options(nostack))
    };
}

/// One C block of the implicit path: quarters `q` (row stride `ldc` bytes) = (C if `load`) +
/// Σ_s A tiles at `a[r] + offsets[s]` bytes (row stride `lda` bytes) × B tiles at
/// `b[r] + 1 KiB·s`.
///
/// # Safety
/// Tiles are configured ([`configure`]); every A tile, B tile and C quarter addressed lies in
/// readable (C: writable, and readable when `load`) memory.
unsafe fn block_tiles(
    a: [*const u16; 2],
    lda: usize,
    offsets: &[usize],
    b: [*const u16; 2],
    q: [*mut f32; 4],
    ldc: usize,
    load: bool,
) {
    // SAFETY (all blocks): forwarded from the caller; tile registers 0–3 carry C between the
    // blocks (nothing else in this process uses them).
    unsafe {
        init_c(q, ldc, load);
        std::arch::asm!(
            "2:",
            "mov {o}, qword ptr [{offs}]",
            "lea {p}, [{a0} + {o}]",
            "tileloadd tmm4, [{p} + {sa}*1]",
            "lea {p}, [{a1} + {o}]",
            "tileloadd tmm5, [{p} + {sa}*1]",
            "tileloadd tmm6, [{b0} + {s64}*1]",
            "tileloadd tmm7, [{b1} + {s64}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {offs}, 8",
            "add {b0}, 1024",
            "add {b1}, 1024",
            "dec {steps}",
            "jnz 2b",
            a0 = in(reg) a[0],
            a1 = in(reg) a[1],
            sa = in(reg) lda,
            offs = inout(reg) offsets.as_ptr() => _,
            o = out(reg) _,
            p = out(reg) _,
            b0 = inout(reg) b[0] => _,
            b1 = inout(reg) b[1] => _,
            s64 = in(reg) 64usize,
            steps = inout(reg) offsets.len() => _,
            options(nostack),
        );
        store_c(q, ldc);
    }
}

/// Whether [`product`] takes this A: unit column stride, or a plain view with unit row stride.
pub(crate) fn takes(a: &View<'_>) -> bool {
    a.cs == 1 || (a.rs == 1 && a.is_plain())
}

/// The products' loop: 32 rows of A at a time are packed (small enough to stay in L1 while
/// they meet every column block of B) and multiplied by all of packed B.
///
/// # Safety
/// As [`product`]; `bp` holds B packed for n columns and kp (padded) k.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn run(
    a: &View<'_>,
    bp: &[u16],
    (n, kp): (usize, usize),
    c: *mut f32,
    accumulate: bool,
    ap: &mut Vec<u16>,
) {
    if ap.len() < 2 * T * kp {
        ap.resize(2 * T * kp, 0);
    }
    let mut cfg = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [0; 16],
        rows: [0; 16],
    };
    for t in 0..8 {
        cfg.colsb[t] = 64;
        cfg.rows[t] = T as u8;
    }
    // SAFETY: AMX is available (caller); the configuration is valid for palette 1.
    unsafe {
        std::arch::asm!("ldtilecfg [{}]", in(reg) &cfg as *const TileConfig, options(nostack))
    };
    let blocks = if a.cs == 1 {
        k_blocks(a, kp)
    } else {
        Vec::new()
    };
    for i0 in (0..a.rows).step_by(2 * T) {
        // SAFETY: as the caller's; `ap` holds the 2·16·kp values of a panel.
        unsafe {
            if a.cs == 1 {
                pack_a(a, i0, kp, &blocks, ap);
            } else {
                pack_a_transposed(a, i0, kp, ap);
            }
            panel(ap, bp, i0, (a.rows, n, kp), c, accumulate);
        }
    }
    // SAFETY: releases the tile state configured above.
    unsafe { std::arch::asm!("tilerelease", options(nostack)) };
}

/// One panel of 32 rows of C (from row `i0`) over packed A (`ap`, the panel's two tile rows)
/// and packed B (`bp`), 32 × 32 blocks held in tile registers 0–3.
///
/// # Safety
/// As [`product`]; tiles are configured (`run`); `ap` holds a packed panel and `bp` B packed
/// for n columns and kp k.
unsafe fn panel(
    ap: &[u16],
    bp: &[u16],
    i0: usize,
    (m, n, kp): (usize, usize, usize),
    c: *mut f32,
    accumulate: bool,
) {
    let kt = kp / KT;
    let mut block = [0f32; 4 * T * T];
    for j0 in (0..n).step_by(2 * T) {
        // A whole 32 × 32 block of C is read and written in place (row stride n); an edge
        // block goes through `block` (row stride 32) and its valid part is copied.
        let direct = i0 + 2 * T <= m && j0 + 2 * T <= n;
        let (cp, ldc) = if direct {
            // SAFETY: element (i0, j0) of C, inside its m·n values.
            (unsafe { c.add(i0 * n + j0) }, n)
        } else {
            (block.as_mut_ptr(), 2 * T)
        };
        // SAFETY: the four 16 × 16 quarters at cp with row stride ldc lie inside C (direct:
        // rows i0..i0 + 32 ≤ m, columns j0..j0 + 32 ≤ n) or inside `block`.
        let quarters = unsafe { [cp, cp.add(T), cp.add(T * ldc), cp.add(T * ldc + T)] };
        let a = [ap.as_ptr(), ap[kt * T * KT..].as_ptr()];
        let jb = j0 / T;
        let b = [
            bp[jb * (kp / 2) * T * 2..].as_ptr(),
            bp[(jb + 1) * (kp / 2) * T * 2..].as_ptr(),
        ];
        // SAFETY: `a` and `b` start the panel's two tile rows and the column blocks jb, jb + 1
        // (< np/16) of the packings, each kt tiles of 1 KiB long; the quarters as above (C
        // initialised when accumulating).
        unsafe { block_packed(a, b, kt, quarters, 4 * ldc, direct && accumulate) };
        if !direct {
            // SAFETY: as the caller's: C holds m·n values, initialised when accumulating.
            unsafe { copy_edge(&block, c, (i0, j0), (m, n), accumulate) };
        }
    }
}

/// One C block of packed operands: [`block_tiles`] with A tiles 1 KiB apart (row stride 64
/// bytes), stepped by a constant instead of an offset table: a separate loop because the
/// table's extra load per step cost 4 % of a private step (criterion `gn/private_bf16`, 451
/// vs 470 ms, alternating runs).
///
/// # Safety
/// As [`block_tiles`], with `a[r]`, `b[r]` readable for kt consecutive 1 KiB tiles.
unsafe fn block_packed(
    a: [*const u16; 2],
    b: [*const u16; 2],
    kt: usize,
    q: [*mut f32; 4],
    ldc: usize,
    load: bool,
) {
    // SAFETY (all blocks): forwarded from the caller; tile registers 0–3 carry C between the
    // blocks (nothing else in this process uses them).
    unsafe {
        init_c(q, ldc, load);
        std::arch::asm!(
            "2:",
            "tileloadd tmm4, [{a0} + {s64}*1]",
            "tileloadd tmm5, [{a1} + {s64}*1]",
            "tileloadd tmm6, [{b0} + {s64}*1]",
            "tileloadd tmm7, [{b1} + {s64}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, 1024",
            "add {a1}, 1024",
            "add {b0}, 1024",
            "add {b1}, 1024",
            "dec {steps}",
            "jnz 2b",
            a0 = inout(reg) a[0] => _,
            a1 = inout(reg) a[1] => _,
            b0 = inout(reg) b[0] => _,
            b1 = inout(reg) b[1] => _,
            steps = inout(reg) kt => _,
            s64 = in(reg) 64usize,
            options(nostack),
        );
        store_c(q, ldc);
    }
}

/// Tile registers 0–3 (a C block's quarters at `q`, row stride `stride` bytes) ← the block
/// (`load`) or zero.
///
/// # Safety
/// Tiles are configured; with `load` the quarters are readable (16 rows — or the configured
/// rows — of 64 bytes at `stride`).
unsafe fn init_c(q: [*mut f32; 4], stride: usize, load: bool) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if load {
            std::arch::asm!(
                "tileloadd tmm0, [{c00} + {s}*1]",
                "tileloadd tmm1, [{c01} + {s}*1]",
                "tileloadd tmm2, [{c10} + {s}*1]",
                "tileloadd tmm3, [{c11} + {s}*1]",
                c00 = in(reg) q[0], c01 = in(reg) q[1], c10 = in(reg) q[2],
                c11 = in(reg) q[3], s = in(reg) stride, options(nostack),
            );
        } else {
            std::arch::asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack)
            );
        }
    }
}

/// The quarters at `q` (row stride `stride` bytes) ← tile registers 0–3.
///
/// # Safety
/// Tiles are configured; the quarters are writable for the configured rows of 64 bytes.
unsafe fn store_c(q: [*mut f32; 4], stride: usize) {
    // SAFETY: forwarded from the caller.
    unsafe {
        std::arch::asm!(
            "tilestored [{c00} + {s}*1], tmm0",
            "tilestored [{c01} + {s}*1], tmm1",
            "tilestored [{c10} + {s}*1], tmm2",
            "tilestored [{c11} + {s}*1], tmm3",
            c00 = in(reg) q[0], c01 = in(reg) q[1], c10 = in(reg) q[2],
            c11 = in(reg) q[3], s = in(reg) stride, options(nostack),
        );
    }
}

/// Copies (or adds, `accumulate`) the part of a 32 × 32 edge block inside C: rows from `i0`,
/// columns from `j0`, below m and n (blocks start below them: the padding rounds the sizes
/// up by less than a block).
///
/// # Safety
/// C at `c` is valid for writes of m·n values (and initialised when accumulating).
unsafe fn copy_edge(
    block: &[f32],
    c: *mut f32,
    (i0, j0): (usize, usize),
    (m, n): (usize, usize),
    accumulate: bool,
) {
    let w = (2 * T).min(n - j0);
    for r in 0..(2 * T).min(m - i0) {
        let src = &block[r * 2 * T..][..w];
        // SAFETY: row i0 + r < m and columns j0..j0 + w ≤ n of C.
        unsafe {
            let dst = c.add((i0 + r) * n + j0);
            for (q, &v) in src.iter().enumerate() {
                if accumulate {
                    *dst.add(q) += v;
                } else {
                    dst.add(q).write(v);
                }
            }
        }
    }
}
