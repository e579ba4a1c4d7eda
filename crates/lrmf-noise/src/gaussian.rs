//! The base noise `Z`: a key, a fixed layout of ChaCha20 key-stream words per (step, coordinate),
//! and the Box–Muller transform that turns those words into standard Gaussians.
//!
//! # Key-stream layout
//!
//! The 32-byte [`Key`] keys `ChaCha20Rng::from_seed(key)` (20 rounds, rand_chacha). Row `t` of `Z`
//! (the base noise of step `t`, 0-based) is ChaCha stream number `t` (`set_stream(t)`, the 64-bit
//! nonce). Inside that stream, coordinates come in pairs: coordinates `2k` and `2k + 1` are made
//! from the three 32-bit words at word positions `3k, 3k + 1, 3k + 2` (`set_word_pos(3k)`):
//!
//! ```text
//! stream t:  | w0 w1 w2 | w3 w4 w5 | ... | w(3k) w(3k+1) w(3k+2) | ...
//!            | z_t[0,1] | z_t[2,3] | ... |      z_t[2k, 2k+1]     | ...
//! ```
//!
//! So `(step, coordinate range)` is a fixed position in the key stream: any worker that holds the
//! key can regenerate any slice of any row without touching the rest, every row is drawn exactly
//! once, and rows never overlap (different nonces). A row of `d` coordinates uses `3⌈d/2⌉` words;
//! the 64-bit block counter allows 2⁶⁸ words per row.
//!
//! # Gaussian sampling: Box–Muller on a 64-bit radius uniform
//!
//! From the words `(lo, hi, w)` of pair `k`:
//! - `u = hi·2⁻³² + (lo + ½)·2⁻⁶⁴` (the midpoint of a 64-bit cell, rounded once to f64, so
//!   `u ∈ [2⁻⁶⁵, 1]`), `r = √(−2 ln u)`;
//! - `θ = 2π·w/2³²`;
//! - `z_{2k} = r cos θ`, `z_{2k+1} = r sin θ`, computed in f64 and rounded once to f32.
//!
//! **Why Box–Muller and not rand_distr's ziggurat:** Box–Muller consumes a fixed number of words
//! per output (1.5 words per Gaussian), which is what makes the layout above seekable; the
//! ziggurat consumes a data-dependent number of words (rejections), so a coordinate's position in
//! the stream would depend on every earlier coordinate. Box–Muller is also branch-free: the
//! transform is written as fixed-length structure-of-arrays loops of plain f64 and bit
//! operations that the compiler vectorizes.
//!
//! **Why ChaCha20 and not ChaCha8/12:** 20 rounds is the conservative, widely analysed choice;
//! the key stream costs about 40% of the time of an i.i.d. step (6 bytes per Gaussian), so fewer
//! rounds would buy at most ~1.3× — not worth a weaker security margin for a privacy mechanism.
//!
//! **Accuracy.** `ln` uses an exact exponent/mantissa split and the atanh series (relative error
//! < 10⁻¹⁰, also for `u → 1`); `sin`/`cos` use an exact quadrant reduction on the integer `w`
//! and Taylor polynomials on `[−π/4, π/4]` (absolute error < 10⁻¹⁰). Before the final rounding to
//! f32 each value is within ~10⁻¹⁰ relative of the exact transform of the lattice point, so the
//! f32 output is the correctly rounded value except in rare near-ties (then 1 ulp away); a test
//! checks this against the platform's `ln`/`sin`/`cos`. The arithmetic is plain IEEE f64 (no FMA,
//! no platform `libm`), so the same key gives bit-identical noise on every CPU.
//!
//! **Tails.** The smallest `u` is 2⁻⁶⁵, so `|z| ≤ √(2·65·ln 2) ≈ 9.49`. Coupling the exact
//! uniform with its 64-bit cell, the sampled pair differs from an exact Box–Muller pair beyond
//! rounding only when the cell is the lowest one (probability 2⁻⁶⁴ per pair), so N pairs change
//! the probability of any event by at most N·2⁻⁶⁴ (5·10⁻⁹ for 10¹¹ pairs): an additive δ.
//!
//! **Why f64 inside, f32 out.** The transform needs f64 (`ln u` near `u = 1` and the 2⁻⁶⁵ tail
//! resolution); the release is f32 because the model and the ring buffers are f32 (half the
//! memory traffic) and the accuracy requirement is f32 rounding.
//!
//! # Floating-point attacks (Mironov 2012)
//!
//! Mironov, "On significance of the least significant bits for differential privacy" (CCS 2012)
//! showed that a textbook floating-point Laplace sampler leaks the secret through the *set* of
//! floating-point values it can output: `x + noise` lands on values that are impossible for a
//! neighbouring `x'`, so an attacker can tell `x` from `x'` with certainty from the low-order bits.
//! The same argument applies to any floating-point Gaussian sampler, including this one (our
//! noise values lie on the irregular set of f32 values reachable from the lattice of `(u, θ)`).
//! What this crate offers, and what it does *not* guarantee, is documented on
//! [`crate::Rounding`] and [`crate::snap_release`].

use crate::NoiseError;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng, TryRng};
use serde::{Deserialize, Serialize};

/// Key-stream words consumed per pair of Gaussians.
pub const WORDS_PER_PAIR: u64 = 3;

/// Where the ChaCha20 key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seed {
    /// A fresh 256-bit key from the operating system (`rand::rngs::SysRng`, i.e. getrandom).
    /// The default, and the only choice suitable for a real private release.
    #[default]
    FromOs,
    /// A reproducible key derived from a 64-bit seed: bytes `0..8` are `seed` little-endian, bytes
    /// `8..32` are the ASCII tag `"lrmf-noise fixed seed v1"`. **Not private**: anyone who knows
    /// or guesses the seed can subtract the noise. For tests, debugging and reproductions only.
    Fixed(u64),
    /// A caller-supplied 256-bit key. Private only if the caller drew it from a secure source and
    /// keeps it secret; treated as not private by [`Seed::is_private_release_safe`].
    FixedKey([u8; 32]),
}

impl Seed {
    /// Whether noise from this seed may be used for a real private release: only [`Seed::FromOs`].
    pub fn is_private_release_safe(&self) -> bool {
        matches!(self, Self::FromOs)
    }

    /// A warning to show to the user when the seed is not suitable for a private release.
    pub fn warning(&self) -> Option<&'static str> {
        match self {
            Self::FromOs => None,
            Self::Fixed(_) | Self::FixedKey(_) => Some(
                "the noise seed is fixed: the run is reproducible, but anyone who knows the seed \
                 can remove the noise — NOT suitable for a real private release",
            ),
        }
    }

    /// The 256-bit ChaCha20 key of this seed (drawn from the OS for [`Seed::FromOs`]).
    pub fn key(&self) -> Result<Key, NoiseError> {
        match self {
            Self::FromOs => {
                let mut k = [0u8; 32];
                rand::rngs::SysRng
                    .try_fill_bytes(&mut k)
                    .map_err(|e| NoiseError::Entropy(e.to_string()))?;
                Ok(Key(k))
            }
            Self::Fixed(s) => Ok(Key::from_fixed_seed(*s)),
            Self::FixedKey(k) => Ok(Key(*k)),
        }
    }
}

/// A 256-bit ChaCha20 key. Whoever holds it can regenerate (and so remove) all the noise: keep
/// it as secret as the private data. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key(pub [u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key(<redacted>)")
    }
}

const FIXED_TAG: &[u8; 24] = b"lrmf-noise fixed seed v1";

impl Key {
    /// The key of [`Seed::Fixed`]`(seed)` (layout documented there).
    pub fn from_fixed_seed(seed: u64) -> Self {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&seed.to_le_bytes());
        k[8..].copy_from_slice(FIXED_TAG);
        Self(k)
    }
}

/// `z_step[start .. start + out.len()]`: a slice of row `step` of the base noise `Z` (i.i.d.
/// N(0, 1), unscaled, f32), at the fixed key-stream position documented in the module docs.
///
/// Pure function of `(key, step, start)`: every call with the same arguments returns the same bits,
/// whatever slice boundaries or thread count the caller uses. O(len) time, O(len) scratch.
pub fn base_noise(key: &Key, step: usize, start: usize, out: &mut [f32]) {
    if out.is_empty() {
        return;
    }
    let mut words = Vec::new();
    if start.is_multiple_of(2) {
        fill_even(key, step, start, out, &mut words);
    } else {
        // Generate the pair that holds `start` and drop its first half.
        let mut tmp = vec![0f32; out.len() + 1];
        fill_even(key, step, start - 1, &mut tmp, &mut words);
        out.copy_from_slice(&tmp[1..]);
    }
}

/// A whole row: `z_step[0..dim]` as a new vector (tests, oracles, the CLI).
pub fn base_noise_row(key: &Key, step: usize, dim: usize) -> Vec<f32> {
    let mut v = vec![0f32; dim];
    base_noise(key, step, 0, &mut v);
    v
}

/// Fills `out` with `z_step[start..start + out.len()]` for an even `start`, using `words` as
/// scratch for the key-stream bytes.
pub(crate) fn fill_even(
    key: &Key,
    step: usize,
    start: usize,
    out: &mut [f32],
    words: &mut Vec<u8>,
) {
    fill_even_map(key, step, start, out, words, |z| z);
}

/// [`fill_even`] with `post` applied to each f32 Gaussian as it is stored (fuses the scaling of
/// i.i.d. noise into the generation pass).
#[inline(always)]
pub(crate) fn fill_even_map(
    key: &Key,
    step: usize,
    start: usize,
    out: &mut [f32],
    words: &mut Vec<u8>,
    post: impl Fn(f32) -> f32,
) {
    debug_assert!(start.is_multiple_of(2));
    let pairs = out.len().div_ceil(2);
    let nbytes = pairs * (WORDS_PER_PAIR as usize) * 4;
    words.resize(nbytes, 0);
    let mut rng = ChaCha20Rng::from_seed(key.0);
    rng.set_stream(step as u64);
    rng.set_word_pos(u128::from(WORDS_PER_PAIR) * (start / 2) as u128);
    rng.fill_bytes(&mut words[..nbytes]);
    let full = out.len() / 2;
    // Structure-of-arrays blocks: decode words, then radii, angles and products in loops of
    // fixed length, so they vectorize. Same functions as `box_muller`, hence the same bits.
    const BLOCK: usize = 64;
    let (mut lo, mut hi, mut th) = ([0u32; BLOCK], [0u32; BLOCK], [0u32; BLOCK]);
    let (mut r, mut c, mut s) = ([0f64; BLOCK], [0f64; BLOCK], [0f64; BLOCK]);
    for (wb, ob) in words[..12 * full]
        .chunks(12 * BLOCK)
        .zip(out[..2 * full].chunks_mut(2 * BLOCK))
    {
        for (i, w) in wb.chunks_exact(12).enumerate() {
            (lo[i], hi[i], th[i]) = (word(w, 0), word(w, 1), word(w, 2));
        }
        for i in 0..BLOCK {
            r[i] = radius(lo[i], hi[i]);
        }
        for i in 0..BLOCK {
            (c[i], s[i]) = cos_sin_turn(th[i]);
        }
        for (o, ((ri, ci), si)) in ob.chunks_exact_mut(2).zip(r.iter().zip(&c).zip(&s)) {
            o[0] = post((ri * ci) as f32);
            o[1] = post((ri * si) as f32);
        }
    }
    if out.len() % 2 == 1 {
        let w = &words[12 * full..12 * full + 12];
        let (a, _) = box_muller(word(w, 0), word(w, 1), word(w, 2));
        out[2 * full] = post(a);
    }
}

#[inline(always)]
fn word(w: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]])
}

/// The Box–Muller transform of one triple of key-stream words (layout in the module docs).
#[inline(always)]
pub(crate) fn box_muller(lo: u32, hi: u32, w: u32) -> (f32, f32) {
    let (a, b) = box_muller_f64(lo, hi, w);
    (a as f32, b as f32)
}

/// Box–Muller before the final f32 rounding.
#[inline(always)]
pub(crate) fn box_muller_f64(lo: u32, hi: u32, w: u32) -> (f64, f64) {
    let r = radius(lo, hi);
    let (c, s) = cos_sin_turn(w);
    (r * c, r * s)
}

/// The radius `r = √(−2 ln u)` of the uniform `u` of [`radius_uniform`].
#[inline(always)]
pub(crate) fn radius(lo: u32, hi: u32) -> f64 {
    (-2.0 * ln_unit(radius_uniform(lo, hi))).sqrt()
}

/// The radius uniform: `u = hi·2⁻³² + (lo + ½)·2⁻⁶⁴`, the midpoint of the 64-bit cell
/// `x = hi·2³² + lo`, rounded once to the nearest f64 — so `u ∈ [2⁻⁶⁵, 1]`, uniform at full f64
/// resolution (cells below 2⁻¹¹ are represented exactly).
#[inline(always)]
pub(crate) fn radius_uniform(lo: u32, hi: u32) -> f64 {
    const TWO_M32: f64 = 1.0 / 4_294_967_296.0;
    f64::from(hi) * TWO_M32 + (f64::from(lo) + 0.5) * (TWO_M32 * TWO_M32)
}

/// `ln u` for `u ∈ [2⁻⁶⁵, 1]`: `u = 2^e·m`, `m ∈ [√½, √2)`, `ln m = 2·atanh(s)`,
/// `s = (m − 1)/(m + 1)`, series to `s¹¹/11` (relative error < 10⁻¹⁰ since `|s| ≤ 0.1716`).
/// Exponent and mantissa are split with bit operations only, so the loop vectorizes.
#[inline(always)]
pub(crate) fn ln_unit(u: f64) -> f64 {
    const TWO52: f64 = 4_503_599_627_370_496.0;
    let bits = u.to_bits();
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    // e + 1023 + 2^52, exactly, without an integer→float conversion.
    let e = f64::from_bits(0x4330_0000_0000_0000 | (bits >> 52)) - (TWO52 + 1023.0);
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { 0.5 * m } else { m };
    let e = if big { e + 1.0 } else { e };
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let p = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0)))));
    e * std::f64::consts::LN_2 + 2.0 * s * p
}

/// `(cos 2πw/2³², sin 2πw/2³²)`: exact quadrant reduction on the integer, Taylor polynomials on
/// `φ ∈ [−π/4, π/4)` (absolute error < 10⁻¹¹).
#[inline(always)]
pub(crate) fn cos_sin_turn(w: u32) -> (f64, f64) {
    let v = w.wrapping_add(1 << 29);
    let q = v >> 30;
    let rem = (v & 0x3fff_ffff) as i32 - (1 << 29);
    let phi = f64::from(rem) * (std::f64::consts::FRAC_PI_2 / 1_073_741_824.0);
    let p2 = phi * phi;
    let sin = phi
        * (1.0
            + p2 * (-1.0 / 6.0
                + p2 * (1.0 / 120.0
                    + p2 * (-1.0 / 5040.0 + p2 * (1.0 / 362_880.0 + p2 * (-1.0 / 39_916_800.0))))));
    let cos = 1.0
        + p2 * (-0.5
            + p2 * (1.0 / 24.0
                + p2 * (-1.0 / 720.0 + p2 * (1.0 / 40_320.0 + p2 * (-1.0 / 3_628_800.0)))));
    // θ = q·π/2 + φ: rotate (cos φ, sin φ) by q quarter turns — swap for odd q, negate cos
    // for q ∈ {1, 2} and sin for q ∈ {2, 3} — with bit operations so the loop vectorizes.
    let q = u64::from(q);
    let swap = (q & 1).wrapping_neg();
    let (cb, sb) = (cos.to_bits(), sin.to_bits());
    let a = (cb & !swap) | (sb & swap);
    let b = (sb & !swap) | (cb & swap);
    let cos_theta = f64::from_bits(a ^ (((q ^ (q >> 1)) & 1) << 63));
    let sin_theta = f64::from_bits(b ^ ((q >> 1) << 63));
    (cos_theta, sin_theta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transform against the platform's `ln`, `sqrt`, `cos`, `sin` in f64.
    fn check(lo: u32, hi: u32, w: u32) {
        let (a, b) = box_muller_f64(lo, hi, w);
        // u = (x + ½)·2⁻⁶⁴ rounded once to f64 (u128 → f64 rounds to nearest, ties to even).
        let x = (u64::from(hi) << 32) | u64::from(lo);
        let u = (2 * u128::from(x) + 1) as f64 * 2f64.powi(-65);
        assert_eq!(u, radius_uniform(lo, hi));
        let r = (-2.0 * u.ln()).sqrt();
        let theta = std::f64::consts::TAU * f64::from(w) / 4_294_967_296.0;
        let (ea, eb) = (r * theta.cos(), r * theta.sin());
        // Relative error of ln and absolute error of cos/sin, both far below f32 resolution.
        let tol = 1e-9 * (1.0 + r);
        assert!(
            (a - ea).abs() <= tol,
            "cos part {a} vs {ea} (lo={lo}, hi={hi}, w={w})"
        );
        assert!(
            (b - eb).abs() <= tol,
            "sin part {b} vs {eb} (lo={lo}, hi={hi}, w={w})"
        );
        // ln near u = 1 keeps its relative accuracy.
        let l = ln_unit(u);
        assert!((l - u.ln()).abs() <= 1e-10 * u.ln().abs(), "ln({u}) = {l}");
        // The f32 outputs are the exact values rounded once: within half an f32 ulp plus the
        // transform error.
        let (fa, fb) = box_muller(lo, hi, w);
        for (f, e) in [(fa, ea), (fb, eb)] {
            let half_ulp = 0.5 * f64::from(f32::EPSILON) * e.abs();
            assert!(
                (f64::from(f) - e).abs() <= half_ulp + tol,
                "f32 output {f} vs {e}"
            );
        }
    }

    #[test]
    fn box_muller_matches_libm_on_edges_and_random_words() {
        for &(lo, hi) in &[
            (0, 0),
            (1, 0),
            (2048, 0),
            (u32::MAX, u32::MAX),
            (0, 1),
            (1 << 12, 0),
            (0, 1 << 31),
        ] {
            for &w in &[
                0,
                1,
                1 << 29,
                (1 << 29) - 1,
                1 << 30,
                3 << 30,
                u32::MAX,
                12345,
            ] {
                check(lo, hi, w);
            }
        }
        let mut rng = ChaCha20Rng::from_seed([7; 32]);
        for _ in 0..200_000 {
            check(rng.next_u32(), rng.next_u32(), rng.next_u32());
        }
    }

    #[test]
    fn tail_radius_is_the_documented_maximum() {
        let (a, _) = box_muller_f64(0, 0, 0);
        let want = (2.0 * 65.0 * std::f64::consts::LN_2).sqrt();
        assert!((a - want).abs() < 1e-9, "{a} vs {want}");
        // The top cell rounds to u = 1: radius 0.
        assert_eq!(box_muller_f64(u32::MAX, u32::MAX, 0), (0.0, 0.0));
        // The block path and the single-pair path give the same bits.
        let key = Key::from_fixed_seed(1);
        let row = base_noise_row(&key, 0, 301);
        let mut rng = ChaCha20Rng::from_seed(key.0);
        for k in 0..150 {
            let (x, y) = box_muller(rng.next_u32(), rng.next_u32(), rng.next_u32());
            assert_eq!(
                (x.to_bits(), y.to_bits()),
                (row[2 * k].to_bits(), row[2 * k + 1].to_bits())
            );
        }
    }

    #[test]
    fn slices_are_fixed_positions_of_the_row() {
        let key = Key::from_fixed_seed(3);
        let row = base_noise_row(&key, 5, 1001);
        for (start, len) in [
            (0, 1001),
            (1, 10),
            (2, 999),
            (999, 2),
            (1000, 1),
            (37, 64),
            (4, 0),
        ] {
            let mut part = vec![0f32; len];
            base_noise(&key, 5, start, &mut part);
            assert_eq!(part, row[start..start + len]);
        }
        // The first pair is the Box–Muller transform of words 0, 1, 2 of stream 5.
        let mut rng = ChaCha20Rng::from_seed(key.0);
        rng.set_stream(5);
        let (a, b) = box_muller(rng.next_u32(), rng.next_u32(), rng.next_u32());
        assert_eq!((a, b), (row[0], row[1]));
        // Different steps and different keys give different rows.
        assert_ne!(base_noise_row(&key, 6, 8), row[..8]);
        assert_ne!(base_noise_row(&Key::from_fixed_seed(4), 5, 8), row[..8]);
    }

    proptest::proptest! {
        /// Any slice of any row is the same bits as that part of the whole row.
        #[test]
        fn any_slice_is_its_part_of_the_row(seed in 0u64..1000, step in 0usize..1 << 40, start in 0usize..300, len in 0usize..300) {
            let key = Key::from_fixed_seed(seed);
            let row = base_noise_row(&key, step, start + len);
            let mut part = vec![0f32; len];
            base_noise(&key, step, start, &mut part);
            proptest::prop_assert_eq!(&part[..], &row[start..]);
        }
    }

    #[test]
    fn seeds_report_whether_they_are_private() {
        assert!(Seed::FromOs.is_private_release_safe());
        assert!(Seed::FromOs.warning().is_none());
        assert!(!Seed::Fixed(1).is_private_release_safe());
        assert!(Seed::Fixed(1).warning().unwrap().contains("NOT suitable"));
        assert!(!Seed::FixedKey([0; 32]).is_private_release_safe());
        let a = Seed::FromOs.key().unwrap();
        let b = Seed::FromOs.key().unwrap();
        assert_ne!(a, b, "two OS keys must differ");
        assert_eq!(Seed::Fixed(9).key().unwrap(), Key::from_fixed_seed(9));
        assert_eq!(format!("{a:?}"), "Key(<redacted>)");
    }
}
