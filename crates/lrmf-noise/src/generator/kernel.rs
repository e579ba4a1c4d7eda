//! The arithmetic every path shares: per-task scratch buffers and the f64 accumulation of taps
//! in one fixed order (groups of [`GROUP`]), so streamed and regenerated noise agree bit for bit.

use super::CHUNK;

/// Per-task scratch buffers.
pub(super) struct Scratch {
    pub(super) words: Vec<u8>,
    pub(super) acc: Vec<f64>,
    /// Up to [`GROUP`] rows of `z` (regeneration) or one row (recursion).
    pub(super) z: Vec<f32>,
}

impl Scratch {
    pub(super) fn new() -> Self {
        Self {
            words: Vec::with_capacity(CHUNK / 2 * 12),
            acc: vec![0.0; CHUNK],
            z: vec![0.0; GROUP * CHUNK],
        }
    }
}

/// Taps are accumulated in groups of this many (fewer passes over the accumulator).
pub(super) const GROUP: usize = 4;

/// `acc_i += (h_0·z0_i + h_1·z1_i) + (h_2·z2_i + h_3·z3_i)` in f64. O(len).
#[inline]
fn accumulate4(acc: &mut [f64], h: &[f64], z: [&[f32]; GROUP]) {
    let n = acc.len();
    let (z0, z1, z2, z3) = (&z[0][..n], &z[1][..n], &z[2][..n], &z[3][..n]);
    let (h0, h1, h2, h3) = (h[0], h[1], h[2], h[3]);
    for i in 0..n {
        acc[i] += (h0 * f64::from(z0[i]) + h1 * f64::from(z1[i]))
            + (h2 * f64::from(z2[i]) + h3 * f64::from(z3[i]));
    }
}

/// `acc_i += h·z_i` in f64. O(len).
#[inline]
fn accumulate1(acc: &mut [f64], h: f64, z: &[f32]) {
    for (a, &zi) in acc.iter_mut().zip(z) {
        *a += h * f64::from(zi);
    }
}

/// `acc += Σ_k h_k·row(k)` with the one summation order every path uses: taps in groups of
/// [`GROUP`] from k = 0 ([`accumulate4`]), then the remaining taps one by one. Streamed and
/// regenerated noise therefore agree bit for bit. O(taps·len).
#[inline]
pub(super) fn accumulate<'a>(acc: &mut [f64], h: &[f64], row: impl Fn(usize) -> &'a [f32]) {
    let full = h.len() / GROUP * GROUP;
    for k in (0..full).step_by(GROUP) {
        accumulate4(
            acc,
            &h[k..k + GROUP],
            [row(k), row(k + 1), row(k + 2), row(k + 3)],
        );
    }
    for k in full..h.len() {
        accumulate1(acc, h[k], row(k));
    }
}
