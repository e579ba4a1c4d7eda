//! Deterministic parameter initialisation from a ChaCha stream (candle's CPU RNG cannot be
//! seeded): uniform and standard-normal draws used by the layer constructors.

use rand::RngExt;

/// `len` draws from U(−bound, bound).
///
/// Complexity: O(len).
pub(crate) fn uniform(rng: &mut impl rand::Rng, len: usize, bound: f32) -> Vec<f32> {
    (0..len)
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * bound)
        .collect()
}

/// `len` draws from N(0, 1) by the Box–Muller transform (u₁ ∈ (0, 1], u₂ ∈ [0, 1)):
/// z = √(−2 ln u₁)·cos(2π u₂).
///
/// Complexity: O(len).
pub(crate) fn normal(rng: &mut impl rand::Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| {
            let u1 = 1.0 - rng.random::<f64>();
            let u2 = rng.random::<f64>();
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn check(mean: f64, var: f64, want_mean: f64, want_var: f64) {
        assert!(
            (mean - want_mean).abs() < 0.02,
            "mean {mean} vs {want_mean}"
        );
        assert!(
            (var - want_var).abs() < 0.03,
            "variance {var} vs {want_var}"
        );
    }

    fn moments(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    #[test]
    fn draws_have_the_right_moments_and_are_seeded() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let u = uniform(&mut rng, 40_000, 0.5);
        assert!(u.iter().all(|x| x.abs() <= 0.5));
        let (m, v) = moments(&u);
        check(m, v, 0.0, 0.25 / 3.0);
        let z = normal(&mut rng, 40_000);
        let (m, v) = moments(&z);
        check(m, v, 0.0, 1.0);
        let again = uniform(&mut ChaCha8Rng::seed_from_u64(7), 10, 0.5);
        assert_eq!(again, u[..10].to_vec());
    }
}
