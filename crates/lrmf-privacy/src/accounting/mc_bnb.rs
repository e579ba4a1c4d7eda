//! Monte Carlo accounting of a matrix mechanism under balls-in-bins batching: the method of
//! Choquette-Choo, Ganesh, Haque, Steinke & Thakurta, *Near Exact Privacy Amplification for
//! Matrix Mechanisms* (arXiv 2410.06266), with a rigorous upper confidence bound.
//!
//! Sampling assumed: [`Sampling::BallsInBins`] — every example is assigned once, uniformly at
//! random, to one of b bins; bin i is the batch of steps i, i + b, i + 2b, … < n (the bin is
//! fixed across epochs). The randomness of the bin is what amplifies privacy; without it (fixed
//! batches) use the `gaussian` accountant.
//!
//! # Model
//! With x_i ∈ {0,1}ⁿ the participation vector of bin i and v_i = C x_i / sens(C) (the strategy
//! normalised once by its sensitivity, so the noise std is the noise multiplier z), the
//! mechanism's output under "remove" is y ~ P = (1/b) Σ_i N(v_i, z²I) against Q = N(0, z²I)
//! ("add" is the reverse pair). The privacy loss of P against Q is
//!
//! ```text
//! L(y) = ln( (1/b) Σ_i exp((⟨v_i, y⟩ − ‖v_i‖²/2) / z²) ),
//! ```
//!
//! and δ(ε) = E_P[(1 − e^{ε − L})₊] (remove), E_Q[(1 − e^{ε + L})₊] (add). Only the b inner
//! products ⟨v_i, y⟩ are needed: for y = v_{i*} + z·g they are G[i*, i] + z·u_i with the Gram
//! matrix G = VᵀV and u = R w, w ~ N(0, I_b), R the Cholesky factor of G. Building G costs b
//! structured products with C plus O(b²n); each sample costs O(b²).
//!
//! Scalar contributions (every participation contributes the same unit vector) are the worst
//! case when C has non-negative entries — the setting of the paper (BSR, BISR, sqrt: all
//! non-negative); other strategies are refused rather than risk an under-stated ε.
//!
//! # Estimator and confidence bound
//! Samples are drawn in fixed chunks of [`CHUNK`] with a ChaCha20 stream per chunk, so the
//! answer does not depend on the number of threads. Both directions use the same draws w: each
//! direction's samples are i.i.d. on their own, and only per-direction bounds are used. For "remove", sample j uses bin
//! i* = j mod b (stratified; the sample count is rounded up to a multiple of b, so the
//! average of the per-sample means is exactly δ). The variables V_j = (1 − e^{ε − L_j})₊ are
//! independent and in [0, 1]; the one-sided Chernoff–Hoeffding bound (Hoeffding 1963, Thm. 1,
//! valid for independent, not identically distributed [0, 1] variables) gives, with probability
//! ≥ 1 − α, δ(ε) ≤ UCB = max{μ ≥ V̄ : m·kl(V̄ ‖ μ) ≤ ln(1/α)} (kl the Bernoulli
//! relative entropy; this is the Clopper–Pearson-style "KL" bound).
//!
//! The same samples (common random numbers) serve every ε of a search. Because V̄ and the UCB
//! are non-increasing in ε, the smallest ε with UCB(ε) ≤ δ is below the true ε* only if the
//! bound fails at the single, fixed point ε*: the returned ε is an upper bound with confidence
//! 1 − α, no union bound needed. The maximum over the two directions keeps that confidence (only
//! the direction attaining the true maximum matters).
//!
//! # Cost
//! Building: b products with C plus O(b²n + b³) (≈ 25 ms for BISR n = 980, b = 98, band 64).
//! Each ε or δ: O(m·b²) for m samples, parallel over chunks. Measured on the 2-core reference
//! machine (shared with other builds): n = 980, b = 98, BISR band 64, 10⁵ samples ≈ 0.8 s
//! (`cargo bench -p lrmf-benches --bench accounting`), so ≈ 8 s at the default 10⁶; C = I with
//! n = 1000, b = 100 at 10⁶ samples ≈ 7.5 s. Calibration costs ≈ 10–15 such evaluations.
//! At δ = 1e-5 the 10⁶-sample bound is ≈ 6 % above the point estimate (C = I, σ = 1, b = 100,
//! k = 10: UCB ε ≈ 14.0, point estimate ≈ 13.3); more samples tighten it.

use super::{
    Accountant, AccountingError, Result, Sampling, bisect_epsilon, check_delta, check_epsilon,
    check_epsilon_arg, check_noise_multiplier, invalid,
};
use lrmf_linalg::{LinearOperator, LowerTriangular};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// Samples per chunk (one ChaCha stream each).
pub const CHUNK: usize = 4096;
/// Default Monte Carlo samples per direction.
pub const DEFAULT_SAMPLES: usize = 1_000_000;
/// Default confidence level of the upper bound.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;
/// Verification rounds of [`MonteCarloBnb`]'s calibration (each at level α / rounds).
pub const VERIFY_ROUNDS: u64 = 4;

/// Options of the Monte Carlo accountant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct McOptions {
    /// Samples per direction (≥ 1; rounded up to a multiple of the number of bins).
    pub samples: usize,
    /// Confidence level 1 − α of the reported bound, in (0, 1).
    pub confidence: f64,
    /// Seed of the sampler. `None`: drawn from the operating system (the default); a fixed seed
    /// is an explicit, reproducible choice (the randomness of accounting need not be secret).
    pub seed: Option<u64>,
}

impl Default for McOptions {
    fn default() -> Self {
        Self {
            samples: DEFAULT_SAMPLES,
            confidence: DEFAULT_CONFIDENCE,
            seed: None,
        }
    }
}

/// The Monte Carlo balls-in-bins accountant (see the module doc).
#[derive(Debug, Clone)]
pub struct MonteCarloBnb {
    n: usize,
    bins: usize,
    /// G = VᵀV, b×b row-major, V's columns normalised by sens(C).
    gram: Vec<f64>,
    /// Lower Cholesky factor R of G, column-major: `chol_cols[c·b + i] = R[i][c]`.
    chol_cols: Vec<f64>,
    /// One past the last non-zero row of each column of R.
    col_end: Vec<usize>,
    samples: usize,
    confidence: f64,
    seed: u64,
}

/// Sorted (descending) positive privacy losses of one direction, and the sample count.
#[derive(Debug, Clone)]
struct Losses {
    positive: Vec<f64>,
    m: usize,
}

/// Bernoulli relative entropy kl(p ‖ q), with 0·ln 0 = 0.
fn kl(p: f64, q: f64) -> f64 {
    let a = if p > 0.0 { p * (p / q).ln() } else { 0.0 };
    let b = if p < 1.0 {
        (1.0 - p) * ((-p).ln_1p() - (-q).ln_1p())
    } else {
        0.0
    };
    a + b
}

/// The KL upper confidence bound: max{μ ∈ [mean, 1] : m·kl(mean ‖ μ) ≤ ln(1/α)}, by bisection
/// (100 steps), returning the upper end of the bracket. O(1).
///
/// # Privacy contract
/// Never below the exact root, so never below the Chernoff–Hoeffding bound.
pub fn kl_upper_bound(mean: f64, m: usize, alpha: f64) -> f64 {
    let mean = mean.clamp(0.0, 1.0);
    if mean >= 1.0 {
        return 1.0;
    }
    let budget = (1.0 / alpha).ln() / m as f64;
    let (mut lo, mut hi) = (mean, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if kl(mean, mid) <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

impl MonteCarloBnb {
    /// Builds the accountant for strategy `c` (n×n), `bins` bins, and `sensitivity` = sens(C)
    /// under `bins`-min-separation with ⌈n/bins⌉ participations (from [`crate::sensitivity::sensitivity`]).
    ///
    /// Errors: `--bins` outside [1, n]; `--mc-samples` = 0; `--confidence` outside (0, 1);
    /// a non-finite or non-positive sensitivity; C with a negative entry; a singular Gram matrix.
    ///
    /// Complexity: b products with C (O(b·n·p) for band p) + O(b²n + b³).
    pub fn new(
        c: &LowerTriangular,
        bins: usize,
        sensitivity: f64,
        options: McOptions,
    ) -> Result<Self> {
        let n = c.n();
        if bins == 0 || bins > n {
            return Err(invalid(
                "--bins",
                bins,
                &format!("an integer in [1, n = {n}]"),
            ));
        }
        if options.samples == 0 || options.samples > (1 << 34) {
            return Err(invalid(
                "--mc-samples",
                options.samples,
                "an integer in [1, 2^34]",
            ));
        }
        if !(options.confidence > 0.0 && options.confidence < 1.0) {
            return Err(invalid(
                "--confidence",
                options.confidence,
                "in the open interval (0, 1)",
            ));
        }
        if !(sensitivity.is_finite() && sensitivity > 0.0) {
            return Err(invalid("sensitivity", sensitivity, "a finite number > 0"));
        }
        check_non_negative(c)?;
        let vs: Vec<Vec<f64>> = (0..bins)
            .into_par_iter()
            .map(|i| {
                let x: Vec<f64> = (0..n)
                    .map(|t| if t % bins == i { 1.0 } else { 0.0 })
                    .collect();
                c.apply(&x).into_iter().map(|v| v / sensitivity).collect()
            })
            .collect();
        let mut gram = vec![0.0; bins * bins];
        for i in 0..bins {
            for j in 0..=i {
                let g: f64 = vs[i].iter().zip(&vs[j]).map(|(a, b)| a * b).sum();
                gram[i * bins + j] = g;
                gram[j * bins + i] = g;
            }
        }
        let chol = cholesky(&gram, bins).ok_or_else(|| {
            AccountingError::Strategy(
                "the Gram matrix of the bins' signals is not positive definite".into(),
            )
        })?;
        let mut chol_cols = vec![0.0; bins * bins];
        let mut col_end = vec![0; bins];
        for c in 0..bins {
            for i in c..bins {
                chol_cols[c * bins + i] = chol[i * bins + c];
                if chol[i * bins + c] != 0.0 {
                    col_end[c] = i + 1;
                }
            }
        }
        let seed = match options.seed {
            Some(s) => s,
            None => {
                use rand::RngExt;
                rand::rng().random::<u64>()
            }
        };
        let samples = options.samples.div_ceil(bins) * bins;
        Ok(Self {
            n,
            bins,
            gram,
            chol_cols,
            col_end,
            samples,
            confidence: options.confidence,
            seed,
        })
    }

    /// Number of steps n.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of bins b.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// The normalised Gram matrix G = VᵀV (b×b, row-major).
    pub fn gram(&self) -> &[f64] {
        &self.gram
    }

    fn alpha(&self) -> f64 {
        1.0 - self.confidence
    }

    /// Privacy losses of both directions `[remove, add]` at noise multiplier z from stream
    /// family `round`. The two directions share the draws w (each direction's samples are still
    /// i.i.d., which is all its bound needs; see the module doc). O(m·b²).
    fn losses(&self, z: f64, round: u64) -> Result<[Losses; 2]> {
        let (b, m) = (self.bins, self.samples);
        let chunks = m.div_ceil(CHUNK);
        let inv_z = 1.0 / z;
        let inv_z2 = inv_z * inv_z;
        let ln_b = (b as f64).ln();
        // Means of the b scores: row i* of `remove` = (G[i*, i] − G[i, i]/2)/z²; `add` = −G[i, i]/(2z²).
        let remove: Vec<f64> = (0..b * b)
            .map(|r| (self.gram[r] - 0.5 * self.gram[(r % b) * b + r % b]) * inv_z2)
            .collect();
        let add: Vec<f64> = (0..b)
            .map(|i| -0.5 * self.gram[i * b + i] * inv_z2)
            .collect();
        let lse = |u: &[f64], mean: &[f64], s: &mut [f64]| -> f64 {
            let mut mx = f64::NEG_INFINITY;
            for ((si, ui), mi) in s.iter_mut().zip(u).zip(mean) {
                *si = mi + ui * inv_z;
                mx = mx.max(*si);
            }
            mx + s.iter().map(|v| (v - mx).exp()).sum::<f64>().ln() - ln_b
        };
        let per_chunk: Vec<[Vec<f64>; 2]> = (0..chunks)
            .into_par_iter()
            .map(|ch| {
                let mut rng = ChaCha20Rng::seed_from_u64(self.seed);
                rng.set_stream((round << 40) | ch as u64);
                let (start, end) = (ch * CHUNK, ((ch + 1) * CHUNK).min(m));
                let mut w = vec![0.0f64; b];
                let mut u = vec![0.0f64; b];
                let mut s = vec![0.0f64; b];
                let mut out = [Vec::new(), Vec::new()];
                for j in start..end {
                    for wi in w.iter_mut() {
                        *wi = StandardNormal.sample(&mut rng);
                    }
                    // u = R w, column by column (axpy; columns cut at their last non-zero).
                    u.fill(0.0);
                    for (c, &wc) in w.iter().enumerate() {
                        let col = &self.chol_cols[c * b + c..c * b + self.col_end[c]];
                        for (ui, r) in u[c..self.col_end[c]].iter_mut().zip(col) {
                            *ui += r * wc;
                        }
                    }
                    let istar = j % b;
                    let l_remove = lse(&u, &remove[istar * b..(istar + 1) * b], &mut s);
                    let l_add = -lse(&u, &add, &mut s);
                    for (d, loss) in [l_remove, l_add].into_iter().enumerate() {
                        if loss > 0.0 || loss.is_nan() {
                            out[d].push(loss);
                        }
                    }
                }
                out
            })
            .collect();
        let mut result = [Vec::new(), Vec::new()];
        for [r, a] in per_chunk {
            result[0].extend(r);
            result[1].extend(a);
        }
        let [mut r, mut a] = result;
        for v in [&mut r, &mut a] {
            if v.iter().any(|x| x.is_nan()) {
                return Err(AccountingError::Unreachable(format!(
                    "the privacy loss is NaN at --noise-multiplier {z}"
                )));
            }
            v.sort_by(|x, y| y.total_cmp(x));
        }
        Ok([Losses { positive: r, m }, Losses { positive: a, m }])
    }

    /// V̄(ε) = (1/m) Σ_j (1 − e^{ε − L_j})₊. O(#{L_j > ε}).
    fn mean(l: &Losses, epsilon: f64) -> f64 {
        let mut s = 0.0;
        for &v in &l.positive {
            if v <= epsilon {
                break;
            }
            s += -(epsilon - v).exp_m1();
        }
        s / l.m as f64
    }

    fn ucb(l: &Losses, epsilon: f64, alpha: f64) -> f64 {
        kl_upper_bound(Self::mean(l, epsilon), l.m, alpha)
    }

    fn epsilon_at_level(&self, z: f64, delta: f64, alpha: f64, round: u64) -> Result<f64> {
        let floor = kl_upper_bound(0.0, self.samples, alpha);
        if floor > delta {
            let need = ((1.0 / alpha).ln() / delta).ceil();
            return Err(AccountingError::Unreachable(format!(
                "--delta {delta} is below what {} Monte Carlo samples can certify at this confidence (at best {floor:.3e}); use --mc-samples ≥ {need:e}",
                self.samples
            )));
        }
        let mut eps = 0.0f64;
        for l in self.losses(z, round)? {
            eps = eps.max(bisect_epsilon(
                |e| Ok(Self::ucb(&l, e, alpha)),
                delta,
                1e-10,
            )?);
        }
        Ok(eps)
    }

    fn delta_at_level(&self, z: f64, epsilon: f64, alpha: f64, round: u64) -> Result<f64> {
        let mut d = 0.0f64;
        for l in self.losses(z, round)? {
            d = d.max(Self::ucb(&l, epsilon, alpha));
        }
        Ok(d)
    }

    /// Point estimate of δ(ε) (no confidence bound) per direction, `[remove, add]`, for
    /// diagnostics and tests — **not** a privacy guarantee.
    pub fn delta_point_estimate(&self, noise_multiplier: f64, epsilon: f64) -> Result<[f64; 2]> {
        check_noise_multiplier(noise_multiplier)?;
        check_epsilon_arg(epsilon)?;
        let [r, a] = self.losses(noise_multiplier, 0)?;
        Ok([Self::mean(&r, epsilon), Self::mean(&a, epsilon)])
    }

    /// Point estimate of ε(δ) (smallest ε with both directions' sample means ≤ δ, same samples
    /// as [`Accountant::epsilon`]), for diagnostics and tests — **not** a privacy guarantee:
    /// it can fall below the true ε. O(m·b²).
    pub fn epsilon_point_estimate(&self, noise_multiplier: f64, delta: f64) -> Result<f64> {
        check_noise_multiplier(noise_multiplier)?;
        check_delta(delta)?;
        let mut eps = 0.0f64;
        for l in self.losses(noise_multiplier, 0)? {
            eps = eps.max(bisect_epsilon(|e| Ok(Self::mean(&l, e)), delta, 1e-10)?);
        }
        Ok(eps)
    }
}

/// Refuses strategies with a negative entry (beyond rounding: −1e-12 of the largest entry).
fn check_non_negative(c: &LowerTriangular) -> Result<()> {
    let n = c.n();
    let (min, max) = match c {
        LowerTriangular::Dense(d) => {
            let m = d.as_mat();
            let mut lo = f64::INFINITY;
            let mut hi = 0.0f64;
            for j in 0..n {
                for i in j..n {
                    lo = lo.min(m[(i, j)]);
                    hi = hi.max(m[(i, j)].abs());
                }
            }
            (lo, hi)
        }
        LowerTriangular::Banded(b) => {
            let lo = b.cols().iter().copied().fold(f64::INFINITY, f64::min);
            let hi = b.cols().iter().fold(0.0f64, |a, v| a.max(v.abs()));
            (lo, hi)
        }
        _ => {
            let coeffs = c.toeplitz_coeffs(n).ok_or_else(|| {
                AccountingError::Strategy("cannot read the strategy's Toeplitz coefficients".into())
            })?;
            let lo = coeffs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = coeffs.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            (lo, hi)
        }
    };
    if min < -1e-12 * max {
        return Err(AccountingError::Strategy(format!(
            "the Monte Carlo balls-in-bins accountant needs a non-negative C (the scalar worst case is proved for that setting); this C has an entry {min:e}"
        )));
    }
    Ok(())
}

/// Lower Cholesky factor of the b×b row-major matrix `a`; `None` if not positive definite. O(b³).
fn cholesky(a: &[f64], b: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; b * b];
    for i in 0..b {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * b + k] * l[j * b + k]).sum();
            if i == j {
                let d = a[i * b + i] - s;
                if d.is_nan() || d <= 0.0 {
                    return None;
                }
                l[i * b + i] = d.sqrt();
            } else {
                l[i * b + j] = (a[i * b + j] - s) / l[j * b + j];
            }
        }
    }
    Some(l)
}

impl Accountant for MonteCarloBnb {
    fn name(&self) -> &'static str {
        "mc-bnb"
    }

    fn sampling(&self) -> Sampling {
        Sampling::BallsInBins { bins: self.bins }
    }

    /// # Privacy contract
    /// An upper confidence bound: with probability ≥ `confidence` over the sampler, the true
    /// ε(δ) of the balls-in-bins mechanism is ≤ the returned value (see the module doc).
    /// Complexity O(m·b²) per direction.
    fn epsilon(&self, noise_multiplier: f64, delta: f64) -> Result<f64> {
        check_noise_multiplier(noise_multiplier)?;
        check_delta(delta)?;
        self.epsilon_at_level(noise_multiplier, delta, self.alpha(), 0)
    }

    /// # Privacy contract
    /// An upper confidence bound on δ(ε) at level `confidence`, maximised over add/remove.
    fn delta(&self, noise_multiplier: f64, epsilon: f64) -> Result<f64> {
        check_noise_multiplier(noise_multiplier)?;
        check_epsilon_arg(epsilon)?;
        self.delta_at_level(noise_multiplier, epsilon, self.alpha(), 0)
    }

    /// Search, then verify on fresh samples.
    ///
    /// 1. Bisection in z (relative width 1e-3) on the UCB of δ(ε) at level α/R (R =
    ///    [`VERIFY_ROUNDS`]), one common sample stream, started at the unamplified Gaussian z.
    /// 2. Verification: the ε at the found z from an independent stream, at level α/R; if it
    ///    exceeds the target, z grows by 0.5 % and is verified on the next fresh stream, at most
    ///    R times (else an error).
    ///
    /// # Privacy contract
    /// Each verified z is fixed before its stream is drawn, so by the union bound the returned z
    /// meets (ε, δ) with probability ≥ 1 − α (= `confidence`). `AccountingPlan::calibrate` then
    /// reports the ε of stream 0 at the level α.
    fn calibrate(&self, epsilon: f64, delta: f64) -> Result<f64> {
        check_epsilon(epsilon)?;
        check_delta(delta)?;
        let alpha = self.alpha() / VERIFY_ROUNDS as f64;
        let ok =
            |z: f64| -> Result<bool> { Ok(self.delta_at_level(z, epsilon, alpha, 0)? <= delta) };
        let floor = kl_upper_bound(0.0, self.samples, alpha);
        if floor > delta {
            return Err(AccountingError::Unreachable(format!(
                "--delta {delta} is below what {} Monte Carlo samples can certify (at best {floor:.3e}); raise --mc-samples",
                self.samples
            )));
        }
        let start = super::AnalyticGaussian.calibrate(epsilon, delta)?;
        let mut hi = start;
        let mut tries = 0;
        while !ok(hi)? {
            hi *= 1.25;
            tries += 1;
            if tries > 60 {
                return Err(AccountingError::Unreachable(format!(
                    "no --noise-multiplier ≤ {hi:e} reaches --epsilon {epsilon} at --delta {delta}"
                )));
            }
        }
        let mut lo = hi / 1.25;
        while ok(lo)? {
            hi = lo;
            lo /= 1.25;
            if lo < 1e-6 {
                break;
            }
        }
        while hi / lo - 1.0 > 1e-3 {
            let mid = (lo * hi).sqrt();
            if ok(mid)? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let mut z = hi;
        for round in 1..=VERIFY_ROUNDS {
            if self.epsilon_at_level(z, delta, alpha, round)? <= epsilon {
                return Ok(z);
            }
            z *= 1.005;
        }
        Err(AccountingError::Unreachable(format!(
            "the calibrated noise multiplier failed verification {VERIFY_ROUNDS} times; raise --mc-samples"
        )))
    }

    fn rounding(&self) -> String {
        format!(
            "Monte Carlo upper confidence bound (Chernoff-Hoeffding KL bound) at confidence {}, {} samples per direction, max over add/remove",
            self.confidence, self.samples
        )
    }

    fn confidence(&self) -> Option<f64> {
        Some(self.confidence)
    }

    fn samples(&self) -> Option<usize> {
        Some(self.samples)
    }

    fn seed(&self) -> Option<u64> {
        Some(self.seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrmf_linalg::ToeplitzLower;
    use lrmf_linalg::series;

    fn check(cond: bool, what: &str) {
        assert!(cond, "{what}");
    }

    fn opts(samples: usize, seed: u64) -> McOptions {
        McOptions {
            samples,
            confidence: 0.95,
            seed: Some(seed),
        }
    }

    #[test]
    fn kl_bound_matches_the_zero_count_closed_form() {
        // V̄ = 0: kl(0‖μ) = −ln(1 − μ) ⇒ μ = 1 − α^{1/m}.
        let (m, a) = (1000, 0.05f64);
        let want = -(a.ln() / m as f64).exp_m1();
        let got = kl_upper_bound(0.0, m, a);
        check((got - want).abs() < 1e-12 * want, "zero-count bound");
        // Monotone in the mean and shrinking with m.
        check(
            kl_upper_bound(1e-3, m, a) < kl_upper_bound(2e-3, m, a),
            "monotone in mean",
        );
        check(
            kl_upper_bound(1e-3, 10 * m, a) < kl_upper_bound(1e-3, m, a),
            "shrinks with m",
        );
    }

    #[test]
    fn cholesky_reconstructs() {
        let a = [4.0, 2.0, 0.4, 2.0, 5.0, 1.0, 0.4, 1.0, 3.0];
        let l = cholesky(&a, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| l[i * 3 + k] * l[j * 3 + k]).sum();
                check((s - a[i * 3 + j]).abs() < 1e-14, "L Lᵀ = A");
            }
        }
        check(
            cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none(),
            "indefinite refused",
        );
    }

    #[test]
    fn gram_of_identity_is_diagonal() {
        let c = LowerTriangular::Identity { n: 12 };
        let a = MonteCarloBnb::new(&c, 4, 3f64.sqrt(), opts(100, 1)).unwrap();
        for i in 0..4 {
            for j in 0..4 {
                let want = if i == j { 1.0 } else { 0.0 };
                check(
                    (a.gram()[i * 4 + j] - want).abs() < 1e-14,
                    "G = I after normalisation",
                );
            }
        }
    }

    #[test]
    fn bad_inputs() {
        let c = LowerTriangular::Identity { n: 10 };
        let e = |r: Result<MonteCarloBnb>| r.unwrap_err().to_string();
        check(
            e(MonteCarloBnb::new(&c, 0, 1.0, opts(10, 1))).contains("--bins"),
            "bins 0",
        );
        check(
            e(MonteCarloBnb::new(&c, 11, 1.0, opts(10, 1))).contains("[1, n = 10]"),
            "bins > n",
        );
        check(
            e(MonteCarloBnb::new(&c, 2, 1.0, opts(0, 1))).contains("--mc-samples"),
            "samples",
        );
        let bad = McOptions {
            confidence: 1.0,
            ..opts(10, 1)
        };
        check(
            e(MonteCarloBnb::new(&c, 2, 1.0, bad)).contains("--confidence"),
            "confidence",
        );
        let neg = LowerTriangular::Toeplitz(ToeplitzLower::new(10, vec![1.0, -0.5]).unwrap());
        check(
            e(MonteCarloBnb::new(&neg, 2, 1.0, opts(10, 1))).contains("non-negative"),
            "negative C",
        );
        let cols = vec![1.0, -0.5, 1.0, 0.5, 1.0, 0.0];
        let neg = LowerTriangular::Banded(lrmf_linalg::BandedLower::new(3, 2, cols).unwrap());
        check(
            e(MonteCarloBnb::new(&neg, 1, 1.0, opts(10, 1))).contains("non-negative"),
            "negative banded C",
        );
        let pos = LowerTriangular::Banded(
            lrmf_linalg::BandedLower::new(3, 2, vec![1.0, 0.5, 1.0, 0.5, 1.0, 0.0]).unwrap(),
        );
        check(
            MonteCarloBnb::new(&pos, 1, 1.0, opts(10, 1)).is_ok(),
            "non-negative banded C",
        );
        let a = MonteCarloBnb::new(&c, 2, 1.0, opts(100, 1)).unwrap();
        // 100 samples cannot certify δ = 1e-5.
        check(
            matches!(a.epsilon(1.0, 1e-5), Err(AccountingError::Unreachable(_))),
            "floor",
        );
    }

    #[test]
    fn identical_seeds_identical_answers() {
        let c = LowerTriangular::Identity { n: 20 };
        let a = MonteCarloBnb::new(&c, 5, 2.0, opts(20_000, 7)).unwrap();
        let b = MonteCarloBnb::new(&c, 5, 2.0, opts(20_000, 7)).unwrap();
        let (x, y) = (a.epsilon(0.6, 1e-3).unwrap(), b.epsilon(0.6, 1e-3).unwrap());
        check(x == y, "same seed, same ε");
        // Thread count does not matter: a one-thread pool gives the same bits.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let w = pool.install(|| a.epsilon(0.6, 1e-3).unwrap());
        check(w == x, "thread count independent");
        let c2 = MonteCarloBnb::new(&c, 5, 2.0, opts(20_000, 8)).unwrap();
        check(
            c2.epsilon(0.6, 1e-3).unwrap() != x,
            "different seed, different draw",
        );
    }

    #[test]
    fn amplification_beats_the_unamplified_gaussian_for_bsr_and_bisr() {
        let (n, b, p) = (120, 12, 4);
        let k = n / b;
        let bsr =
            LowerTriangular::Toeplitz(ToeplitzLower::new(n, series::r(n)[..p].to_vec()).unwrap());
        let bisr = LowerTriangular::InverseToeplitz(
            ToeplitzLower::new(n, series::r_tilde(n)[..p].to_vec()).unwrap(),
        );
        for c in [bsr, bisr] {
            let part = crate::sensitivity::Participation::new(n, Some(b), k).unwrap();
            let sens = crate::sensitivity::sensitivity(&c, part).unwrap().value;
            let a = MonteCarloBnb::new(&c, b, sens, opts(100_000, 3)).unwrap();
            let z = 1.0;
            let mc = a.epsilon(z, 1e-3).unwrap();
            let g = super::super::AnalyticGaussian.epsilon(z, 1e-3).unwrap();
            check(mc < g, &format!("mc {mc} < gaussian {g}"));
        }
    }

    #[test]
    fn calibration_meets_the_target_and_is_conservative() {
        let c = LowerTriangular::Identity { n: 24 };
        let a = MonteCarloBnb::new(&c, 6, 2.0, opts(60_000, 11)).unwrap();
        let z = a.calibrate(2.0, 1e-3).unwrap();
        check(
            a.epsilon(z, 1e-3).unwrap() <= 2.0 * 1.01,
            "calibrated z meets ε",
        );
        check(
            z <= super::super::AnalyticGaussian.calibrate(2.0, 1e-3).unwrap() * 1.05,
            "amplified z",
        );
    }

    #[test]
    fn plan_reports_balls_in_bins() {
        let c = LowerTriangular::Identity { n: 20 };
        let plan = crate::accounting::AccountingPlan::mc_bnb(&c, 5, 2.0, opts(20_000, 5)).unwrap();
        let r = plan.epsilon(0.6, 1e-3).unwrap();
        check(r.sampling.starts_with("balls-in-bins"), "sampling named");
        check(
            r.confidence == Some(0.95) && r.samples == Some(20_000) && r.seed == Some(5),
            "MC fields",
        );
        check((r.noise_std - 1.2).abs() < 1e-15, "σ = z·sens");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
        #[test]
        fn delta_is_monotone_in_epsilon(z in 0.3f64..2.0, e in 0.0f64..6.0, s in 1e-3f64..2.0) {
            // Common random numbers make the bound monotone sample by sample.
            let c = LowerTriangular::Toeplitz(ToeplitzLower::new(24, series::r(24)[..3].to_vec()).unwrap());
            let a = MonteCarloBnb::new(&c, 6, 1.0, opts(3_000, 9)).unwrap();
            proptest::prop_assert!(a.delta(z, e + s).unwrap() <= a.delta(z, e).unwrap());
        }

        #[test]
        fn epsilon_decreases_in_z_beyond_mc_noise(z in 0.4f64..1.5) {
            // Doubling z moves ε far more than the Monte Carlo error at 20 000 samples.
            let c = LowerTriangular::Identity { n: 24 };
            let a = MonteCarloBnb::new(&c, 6, 2.0, opts(20_000, 4)).unwrap();
            proptest::prop_assert!(a.epsilon(2.0 * z, 1e-2).unwrap() < a.epsilon(z, 1e-2).unwrap());
        }
    }
}
