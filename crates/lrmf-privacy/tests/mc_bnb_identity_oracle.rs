//! The Monte Carlo balls-in-bins accountant for C = I against an independent oracle: a
//! conditional Monte Carlo of the random-allocation reduction.
//!
//! For C = I with bins fixed across epochs, an example in bin i* contributes s = √k (unit clip,
//! k participations) to coordinate i* of y ∈ R^b, noise std σ per coordinate. With
//! τ = s/σ and a_i = τ·g_i ∓ τ²/2, the privacy loss is L = ln((1/b) Σ_i e^{a_i}). Conditioning on
//! R = Σ_{i≠1} e^{a_i} (the bins without the example, drawn by plain Monte Carlo), the rest is
//! one-dimensional:
//! - remove (y ~ P, bin 1 holds the example, a₁ ~ N(τ²/2, τ²)): δ | R = ∫ (1 − b·e^ε/(e^{a₁} + R))₊
//!   dN(a₁), by composite Simpson on the Gaussian variable from the kink on;
//! - add (y ~ Q, a₁ ~ N(−τ²/2, τ²)): δ | R = Φ(g₁)(1 − e^ε R/b) − (e^ε/b)·Φ(g₁ − τ) in closed
//!   form, g₁ = (ln(b·e^{−ε} − R) + τ²/2)/τ (0 when R ≥ b·e^{−ε}).
//!
//! Nothing here shares code with the accountant (other generator, no importance sampling, no
//! Cholesky factor).

use lrmf_linalg::LowerTriangular;
use lrmf_privacy::accounting::{Accountant, McOptions, MonteCarloBnb};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

fn slow() -> bool {
    std::env::var("LRMF_SLOW_TESTS").is_ok_and(|v| v == "1")
}

/// Φ(x) via libm's erfc (accurate in both tails).
fn ndtr(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// The conditional Monte Carlo oracle: (mean, standard error) of δ(ε) per direction
/// `[remove, add]` from `draws` draws of R.
fn oracle(
    b: usize,
    k: usize,
    sigma: f64,
    epsilon: f64,
    draws: usize,
    seed: u64,
) -> [(f64, f64); 2] {
    let tau = (k as f64).sqrt() / sigma;
    let mu = 0.5 * tau * tau;
    let bf = b as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sums = [[0.0f64; 2]; 2];
    for _ in 0..draws {
        let mut r = 0.0;
        for _ in 1..b {
            let g: f64 = StandardNormal.sample(&mut rng);
            r += (tau * g - mu).exp();
        }
        // Remove: integrate over g with a₁ = μ + τg from the kink (or −12) to 12 past it.
        let c = bf * epsilon.exp();
        let lo = if r >= c {
            -12.0
        } else {
            (((c - r).ln() - mu) / tau).max(-12.0)
        };
        let hi = lo.max(0.0) + 12.0;
        let n = 600;
        let h = (hi - lo) / n as f64;
        let f = |g: f64| {
            let v = 1.0 - c / ((mu + tau * g).exp() + r);
            v.max(0.0) * (-0.5 * g * g).exp() / (2.0 * std::f64::consts::PI).sqrt()
        };
        let mut rem = f(lo) + f(hi);
        for j in 1..n {
            rem += f(lo + j as f64 * h) * if j % 2 == 1 { 4.0 } else { 2.0 };
        }
        rem *= h / 3.0;
        // Add: closed form.
        let t = bf * (-epsilon).exp() - r;
        let add = if t <= 0.0 {
            0.0
        } else {
            let g1 = (t.ln() + mu) / tau;
            (ndtr(g1) * (1.0 - epsilon.exp() * r / bf) - epsilon.exp() / bf * ndtr(g1 - tau))
                .max(0.0)
        };
        for (d, v) in [rem, add].into_iter().enumerate() {
            sums[d][0] += v;
            sums[d][1] += v * v;
        }
    }
    let m = draws as f64;
    sums.map(|[s1, s2]| {
        let mean = s1 / m;
        (mean, ((s2 / m - mean * mean).max(0.0) / m).sqrt())
    })
}

/// The accountant at (b, k, σ) for C = I, z = σ/√k (sens(I) = √k).
fn accountant(b: usize, k: usize, samples: usize, seed: u64) -> MonteCarloBnb {
    let options = McOptions {
        samples,
        seed: Some(seed),
        ..McOptions::default()
    };
    MonteCarloBnb::new(
        &LowerTriangular::Identity { n: b * k },
        b,
        (k as f64).sqrt(),
        options,
    )
    .unwrap()
}

/// The reported ε is an upper bound (the oracle's δ there is ≤ δ within 4 standard errors)
/// and within `slack` of the exact ε (the oracle's δ at ε/(1 + slack) exceeds δ by 4 standard
/// errors). Returns the reported ε.
fn check(
    b: usize,
    k: usize,
    sigma: f64,
    delta: f64,
    samples: usize,
    slack: f64,
    draws: usize,
) -> f64 {
    let acc = accountant(b, k, samples, 1);
    let z = sigma / (k as f64).sqrt();
    let t = std::time::Instant::now();
    let eps = acc.epsilon(z, delta).unwrap();
    let took = t.elapsed();
    let point = acc.epsilon_point_estimate(z, delta).unwrap();
    let at = oracle(b, k, sigma, eps, draws, 7);
    let below = oracle(b, k, sigma, eps / (1.0 + slack), draws, 8);
    eprintln!(
        "C = I, σ = {sigma}, b = {b}, k = {k}, δ = {delta}, m = {samples}: ε = {eps} in {took:?} \
         (point estimate {point}); oracle δ(ε) = {at:?}, δ(ε/{}) = {below:?}",
        1.0 + slack
    );
    for (d, (mean, se)) in at.iter().enumerate() {
        assert!(
            *mean <= delta + 4.0 * se,
            "direction {d}: oracle δ(ε = {eps}) = {mean} > {delta}"
        );
    }
    let mean = below[0].0.max(below[1].0);
    let se = below[0].1.max(below[1].1);
    assert!(
        mean > delta + 4.0 * se,
        "ε = {eps} is more than {slack} above exact: oracle δ(ε/(1 + {slack})) = {mean} ± {se}"
    );
    eps
}

#[test]
fn small_identity_case_is_tight_and_conservative() {
    // b = 8 bins, k = 4, σ = 1, δ = 1e-4, 200 000 samples: within 5 % of exact.
    check(8, 4, 1.0, 1e-4, 200_000, 0.05, 200_000);
}

#[test]
fn issue_cases_at_defaults_within_three_percent() {
    if !slow() {
        eprintln!(
            "set LRMF_SLOW_TESTS=1 for the default-sample C = I cases (b = 100, k = 10; b = 50, k = 4)"
        );
        return;
    }
    let m = McOptions::default().samples;
    let e1 = check(100, 10, 1.0, 1e-5, m, 0.03, 400_000);
    assert!(
        e1 <= 13.65,
        "σ = 1, b = 100, k = 10: ε = {e1} (exact 13.25)"
    );
    let e2 = check(50, 4, 1.5, 1e-5, m, 0.03, 400_000);
    assert!(e2 <= 2.37, "σ = 1.5, b = 50, k = 4: ε = {e2} (exact 2.30)");
}

/// The add direction's δ(ε) for b = 2 bins by deterministic quadrature: the closed form of
/// [`oracle`] in bin 1, composite Simpson over bin 2's Gaussian variable on [−15, 15].
fn add_two_bins(k: usize, sigma: f64, epsilon: f64) -> f64 {
    let tau = (k as f64).sqrt() / sigma;
    let mu = 0.5 * tau * tau;
    let (n, lo, hi) = (20_000, -15.0, 15.0);
    let h = (hi - lo) / n as f64;
    let f = |g: f64| {
        let r = (tau * g - mu).exp();
        let t = 2.0 * (-epsilon).exp() - r;
        let v = if t <= 0.0 {
            0.0
        } else {
            let g1 = (t.ln() + mu) / tau;
            (ndtr(g1) * (1.0 - epsilon.exp() * r / 2.0) - epsilon.exp() / 2.0 * ndtr(g1 - tau))
                .max(0.0)
        };
        v * (-0.5 * g * g).exp() / (2.0 * std::f64::consts::PI).sqrt()
    };
    let mut s = f(lo) + f(hi);
    for j in 1..n {
        s += f(lo + j as f64 * h) * if j % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0
}

#[test]
fn add_direction_is_unbiased_and_bounded() {
    // Where the add direction (y ~ Q against the mixture) has mass, from δ ≈ 0.4 down to
    // δ ≈ 1.6e-5: its importance-sampled estimate matches the exact value (quadrature for two
    // bins, within 2 %; the conditional Monte Carlo oracle otherwise), and the reported δ
    // bounds both directions' exact values.
    for (b, k, sigma, epsilon) in [
        (4, 4, 1.0, 0.5),
        (4, 1, 0.5, 5.0),
        (2, 1, 1.0, 3.0),
        (2, 2, 1.0, 4.0),
        (2, 1, 0.4, 6.0),
    ] {
        let acc = accountant(b, k, 200_000, 3);
        let z = sigma / (k as f64).sqrt();
        let [_, add] = acc.delta_point_estimate(z, epsilon).unwrap();
        let bound = acc.delta(z, epsilon).unwrap();
        let [rem_bound, add_bound] = acc.delta_by_direction(z, epsilon).unwrap();
        assert_eq!(
            bound,
            rem_bound.max(add_bound),
            "δ is the larger direction's bound"
        );
        let [rem_exact, add_mc] = oracle(b, k, sigma, epsilon, 200_000, 9);
        let add_exact = if b == 2 {
            (add_two_bins(k, sigma, epsilon), 0.0)
        } else {
            add_mc
        };
        eprintln!(
            "b = {b}, k = {k}, σ = {sigma}, ε = {epsilon}: add estimate {add}, bound {add_bound}, \
             exact {add_exact:?}; remove bound {rem_bound}, exact {rem_exact:?}"
        );
        assert!(add_exact.0 > 1e-5, "the case exercises the add direction");
        assert!(
            (add - add_exact.0).abs() <= 0.02 * add_exact.0 + 4.0 * add_exact.1,
            "add estimate {add} vs exact {add_exact:?}"
        );
        for (d, (bound, (mean, se))) in [(rem_bound, rem_exact), (add_bound, add_exact)]
            .into_iter()
            .enumerate()
        {
            assert!(
                bound >= mean - 4.0 * se && bound <= 1.25 * mean + 4.0 * se,
                "direction {d}: bound {bound} vs exact {mean} ± {se}"
            );
        }
    }
}
