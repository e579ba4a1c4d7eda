//! Linear convolution of real sequences, naive or by real FFT, behind one function.
//!
//! Every O(n log n) path of the crate (series products, Newton iterations, Toeplitz products)
//! reduces to [`convolve`], which picks the direct O(len_a · len_b) sum for short inputs and a
//! zero-padded real FFT (realfft) otherwise. Both paths are exact up to f64 rounding; the FFT path
//! has absolute error of order `1e-16 · ‖a‖₁ · ‖b‖₁ · log n`.

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

/// Below this product of lengths the direct sum is faster than an FFT.
const DIRECT_WORK: usize = 1 << 14;

/// The first `len` coefficients of the linear convolution `a * b` (missing entries are zero).
///
/// `(a * b)_k = Σ_{i+j=k} a_i b_j`. Cost: O(min(len_a·len_b, N log N)) with N the padded length.
pub fn convolve(a: &[f64], b: &[f64], len: usize) -> Vec<f64> {
    let a = &a[..a.len().min(len)];
    let b = &b[..b.len().min(len)];
    if a.is_empty() || b.is_empty() || len == 0 {
        return vec![0.0; len];
    }
    if a.len().min(b.len()) <= 32 || a.len() * b.len() <= DIRECT_WORK {
        return convolve_direct(a, b, len);
    }
    convolve_fft(a, b, len)
}

/// The direct O(len_a · len_b) convolution, truncated to `len` terms.
pub fn convolve_direct(a: &[f64], b: &[f64], len: usize) -> Vec<f64> {
    let mut out = vec![0.0; len];
    // Iterate over the shorter operand in the outer loop so the inner loop is long and contiguous.
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    for (i, &s) in short.iter().enumerate() {
        if i >= len || s == 0.0 {
            continue;
        }
        let m = long.len().min(len - i);
        for (o, &l) in out[i..i + m].iter_mut().zip(&long[..m]) {
            *o += s * l;
        }
    }
    out
}

/// The FFT convolution, truncated to `len` terms. O(N log N), N = next power of two ≥ the full length.
pub fn convolve_fft(a: &[f64], b: &[f64], len: usize) -> Vec<f64> {
    let full = a.len() + b.len() - 1;
    let size = full.next_power_of_two().max(2);
    let mut planner = RealFftPlanner::<f64>::new();
    let forward = planner.plan_fft_forward(size);
    let inverse = planner.plan_fft_inverse(size);
    let spectrum = |x: &[f64]| {
        let mut buf = vec![0.0; size];
        buf[..x.len()].copy_from_slice(x);
        let mut out = forward.make_output_vec();
        forward
            .process(&mut buf, &mut out)
            .expect("buffer sizes come from the plan");
        out
    };
    let fa = spectrum(a);
    let fb = spectrum(b);
    let mut prod: Vec<Complex<f64>> = fa.iter().zip(&fb).map(|(x, y)| x * y).collect();
    // The DC and Nyquist bins of a real signal's spectrum are real; rounding must not break that.
    prod[0].im = 0.0;
    if let Some(last) = prod.last_mut() {
        last.im = 0.0;
    }
    let mut time = inverse.make_output_vec();
    inverse
        .process(&mut prod, &mut time)
        .expect("buffer sizes come from the plan");
    let scale = 1.0 / size as f64;
    let mut out: Vec<f64> = time.iter().take(len.min(full)).map(|v| v * scale).collect();
    out.resize(len, 0.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(a: &[f64], b: &[f64], len: usize) {
        let direct = convolve_direct(a, b, len);
        let fft = convolve_fft(a, b, len);
        let scale: f64 =
            a.iter().map(|v| v.abs()).sum::<f64>() * b.iter().map(|v| v.abs()).sum::<f64>();
        for (x, y) in direct.iter().zip(&fft) {
            assert!((x - y).abs() <= 1e-13 * scale.max(1.0), "{x} vs {y}");
        }
    }

    #[test]
    fn small_known_product() {
        assert_eq!(
            convolve_direct(&[1.0, 2.0], &[3.0, 4.0], 3),
            vec![3.0, 10.0, 8.0]
        );
        assert_eq!(
            convolve_direct(&[1.0, 2.0], &[3.0, 4.0], 5),
            vec![3.0, 10.0, 8.0, 0.0, 0.0]
        );
        check(&[1.0, 2.0], &[3.0, 4.0], 3);
    }

    proptest! {
        #[test]
        fn fft_equals_direct(a in prop::collection::vec(-1.0f64..1.0, 1..300),
                             b in prop::collection::vec(-1.0f64..1.0, 1..300),
                             len in 1usize..700) {
            check(&a, &b, len);
        }
    }
}
