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
//! # Estimator and confidence bound (privacy contract)
//! Samples are drawn in fixed chunks of [`CHUNK`] with a ChaCha8 stream per chunk, so the
//! answer does not depend on the number of threads. Both directions use the same normal
//! draws w; each direction's samples are i.i.d. on their own, and only per-direction bounds are
//! used.
//!
//! **Remove: importance sampling.** Plain sampling from P needs ≫ 1/δ samples to see the tail
//! event L > ε at all. Instead the samples come from the mixture proposal
//! Prop = (1/b) Σ_i N((1+λ)v_i, z²I) (component i* uniform, then y = (1+λ)v_{i*} + z·g), which
//! shifts every bin's signal further into the tail, and are weighted by the likelihood ratio
//! W = dP/dProp = e^L / (dProp/dQ), dProp/dQ = (1/b) Σ_i exp((1+λ)a_i − λ(1+λ)n_i), with
//! a_i = (⟨v_i, y⟩ − ‖v_i‖²/2)/z² and n_i = ‖v_i‖²/(2z²) (the same b inner products). Then
//! X = W·(1 − e^{ε−L})₊ has E_Prop\[X\] = δ_remove(ε) exactly. **Range:** by the power-mean
//! inequality (1/b)Σ e^{(1+λ)a_i} ≥ ((1/b)Σ e^{a_i})^{1+λ} = e^{(1+λ)L}, so with
//! κ = λ(1+λ)·max_i n_i, W ≤ e^{κ − λL}; maximising e^{κ−λL}(1 − e^{ε−L}) over L > ε gives
//! 0 ≤ X ≤ M(ε) = e^{κ−λε}·λ^λ/(1+λ)^{1+λ}, a proved bound for every y (not just the samples
//! seen). **Bound:** M is attained only where every bin is large at once, far from where
//! the samples fall, so the summands are split at T = M(ε_lo)/16: X = min(X, T) + (X − T)₊,
//! each part bounded at level α/2. The first, in [0, T], gets the empirical-Bernstein
//! inequality for i.i.d. bounded variables (Maurer & Pontil 2009, Thm. 4, scaled by the
//! range): E ≤ mean + √(2V·ln(4/α)/m) + 7T·ln(4/α)/(3(m−1)), V the sample variance, here
//! replaced by the larger m/(m−1)·(1/m)Σ min(X_j, T)², which keeps the bound valid and makes it
//! non-increasing in ε (each X_j is). The second, in [0, M(ε_lo) − T] for every ε ≥ ε_lo
//! (usually zero on every sample), gets the Chernoff–Hoeffding KL bound on the rescaled
//! variables. ε_lo is the search floor, fixed before the draw: the target ε for `delta` and
//! calibration; 0.97 × a pilot's point estimate for `epsilon` (below the floor the bound
//! reports 1, so the returned ε is at least the floor — conservative). The tilt λ minimises M
//! at the target ε (for `epsilon`: the pilot's estimate; the pilot runs on its own stream
//! family, so the main samples are independent of λ and of the floor). λ = 0 is plain
//! sampling (W = 1, M = 1).
//!
//! **Add: importance sampling along the mean signal.** The add loss is L' = −L (y ~ Q), and
//! its tail L' > ε lies where y points against every bin's signal at once. The samples come
//! from Prop = N(−τv̄, z²I), v̄ = (1/b) Σ_i v_i, weighted by W = dQ/dProp =
//! exp((⟨τv̄, y⟩ + τ²‖v̄‖²/2)/z²), and X = W·(1 − e^{ε−L'})₊ has E_Prop\[X\] = δ_add(ε) exactly.
//! **Range:** by Jensen, L ≥ (1/b) Σ_i a_i = ⟨v̄, y⟩/z² − n̄ with n̄ = (1/b) Σ_i ‖v_i‖²/(2z²),
//! so on the tail ⟨v̄, y⟩/z² ≤ n̄ − L' and W ≤ e^{κ' − τL'}, κ' = τn̄ + τ²‖v̄‖²/(2z²); the same
//! maximisation over L' > ε as above gives 0 ≤ X ≤ M'(ε) = e^{κ'−τε}·τ^τ/(1+τ)^{1+τ}, proved
//! for every y. Both directions are therefore one family (κ = λn₀ + λ²c: remove n₀ = c =
//! max_i ‖v_i‖²/(2z²); add n₀ = n̄, c = ‖v̄‖²/(2z²)) with the same tilt rule, pilot, floor,
//! split and bound. (Until 2026-12 the add direction was plain sampling with the
//! Chernoff–Hoeffding bound, whose zero-count floor ln(1/α)/m alone is half of δ = 1e-5 at
//! 10⁶ samples: for correlated strategies it was the binding, noisy direction, and
//! calibration could fail verification.)
//!
//! The same samples (common random numbers) serve every ε of a search. Because both bounds are
//! non-increasing in ε, the smallest ε with UCB(ε) ≤ δ is below the true ε* only if the bound
//! fails at the single, fixed point ε*: the returned ε is an upper bound with confidence
//! 1 − α, no union bound needed. The maximum over the two directions keeps that confidence (only
//! the direction attaining the true maximum matters).
//!
//! The seed must be fixed before the draw (e.g. [`super::mechanism_seed`]); re-drawing seeds to
//! keep a smaller ε voids the confidence.
//!
//! # Cost
//! Building: b products with C plus O(b²n + b³) (≈ 25 ms for BISR n = 980, b = 98, band 64).
//! Each ε or δ: O(m·b²) for m samples (O(m·b) when the Cholesky factor is diagonal, as for
//! C = I), parallel over chunks; `epsilon` adds a pilot of m/8 samples. Measured at the
//! default 10⁶ samples on the 2-core reference machine beside a training run (load ≈ 3):
//! C = I, σ = 1, b = 100, k = 10, δ = 1e-5: ε = 13.26 (exact 13.25) in ≈ 3 s; σ = 1.5, b = 50,
//! k = 4: ε = 2.347 (exact 2.30) in ≈ 1.6 s (`LRMF_SLOW_TESTS=1 cargo test --release -p
//! lrmf-privacy --test mc_bnb_identity_oracle -- --nocapture`). Calibration costs ≈ 10–15
//! δ evaluations (no pilot): ≈ 12 s for lr-bisr at n = 500, b = 25, band 5.

use super::{
    Accountant, AccountingError, Result, Sampling, bisect_epsilon, check_delta, check_epsilon,
    check_epsilon_arg, check_noise_multiplier, invalid,
};
use lrmf_linalg::{LinearOperator, LowerTriangular};
use rand_chacha::ChaCha8Rng;
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
/// Stream families of pilot runs (which choose the tilt) are `PILOT_FAMILY | round`, apart
/// from every main round's family.
const PILOT_FAMILY: u64 = 1 << 20;
/// The ε search of `epsilon()` starts at this fraction of the pilot's point estimate.
const PILOT_FLOOR: f64 = 0.97;

/// Options of the Monte Carlo accountant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct McOptions {
    /// Samples per direction (≥ 1).
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
    /// Samples drawn so far, for a caller's progress display (never read here).
    progress: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

/// One importance-sampled direction: the samples with privacy loss above the search floor,
/// drawn from the direction's tilted proposal, as (L_j, ln W_j) sorted by L descending, the
/// sample count, the range bound's parameters and the split of the summands (see the module
/// doc). L is the loss of the direction (remove: ln dP/dQ; add: ln dQ/dP).
#[derive(Debug, Clone)]
struct Weighted {
    /// (privacy loss L_j, log likelihood ratio ln W_j = ln dTarget/dProp), L descending.
    samples: Vec<(f64, f64)>,
    m: usize,
    /// Tilt λ ≥ 0 of the proposal.
    lambda: f64,
    /// κ = λ·n₀ + λ²·c of the direction's [`Proposal`].
    kappa: f64,
    /// The bound is only evaluated for ε ≥ `eps_lo` (below: 1, "not certified").
    eps_lo: f64,
    /// The split point T: X = min(X, T) + (X − T)₊.
    cap: f64,
    /// The range of (X − T)₊ for every ε ≥ `eps_lo`: M(eps_lo) − T.
    range_high: f64,
}

/// Sums over the samples at one ε: X∧T (mean, second moment, largest) and (X − T)₊ (mean).
struct Moments {
    low_mean: f64,
    low_second: f64,
    low_largest: f64,
    high_mean: f64,
    high_largest: f64,
}

/// T = M(eps_lo) / CAP_DIVISOR: the empirical-Bernstein part sees a range 16× smaller; the
/// rare values above T (none in typical runs) go to a KL bound.
const CAP_DIVISOR: f64 = 16.0;

impl Weighted {
    /// The proved range bound: for L > ε, W·(1 − e^{ε−L}) ≤ M(ε) =
    /// e^{κ − λε} · λ^λ / (1 + λ)^{1+λ} (= 1 at λ = 0). Non-increasing in ε.
    fn range(&self, epsilon: f64) -> f64 {
        let l = self.lambda;
        if l <= 0.0 {
            return 1.0;
        }
        (self.kappa - l * epsilon + l * l.ln() - (1.0 + l) * (1.0 + l).ln()).exp()
    }

    /// Fixes the search floor `eps_lo` (chosen before the samples were drawn) and with it the
    /// split T and the range of the part above T, which then hold for every ε ≥ `eps_lo`.
    fn split_at(mut self, eps_lo: f64) -> Self {
        self.eps_lo = eps_lo.max(0.0);
        self.cap = self.range(self.eps_lo) / CAP_DIVISOR;
        // Each X_j is non-increasing in ε, so its value at eps_lo bounds it above eps_lo; the
        // max only matters if f64 rounding pushed a value past the proved bound.
        let seen = self.moments(self.eps_lo).high_largest;
        self.range_high = (self.range(self.eps_lo) - self.cap).max(seen);
        self
    }

    /// The sums of [`Moments`] for X_j(ε) = W_j (1 − e^{ε − L_j})₊ over all m samples.
    /// O(#{L_j > ε}).
    fn moments(&self, epsilon: f64) -> Moments {
        let (mut s1, mut s2, mut mx, mut h1, mut hx) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for &(l, ln_w) in &self.samples {
            if l <= epsilon {
                break;
            }
            let x = ln_w.exp() * -(epsilon - l).exp_m1();
            let low = x.min(self.cap);
            s1 += low;
            s2 += low * low;
            mx = mx.max(low);
            h1 += x - low;
            hx = hx.max(x - low);
        }
        let m = self.m as f64;
        Moments {
            low_mean: s1 / m,
            low_second: s2 / m,
            low_largest: mx,
            high_mean: h1 / m,
            high_largest: hx,
        }
    }

    /// The sample mean of X(ε) (the unbiased importance-sampling estimate). O(#{L_j > ε}).
    fn mean(&self, epsilon: f64) -> f64 {
        let mo = self.moments(epsilon);
        mo.low_mean + mo.high_mean
    }

    /// Upper confidence bound on the direction's δ(ε) = E[X(ε)] at level α, for ε ≥ `eps_lo` (1 below),
    /// as the sum of two bounds at level α/2 each:
    /// - X∧T ∈ [0, min(T, M(ε))]: empirical Bernstein (Maurer & Pontil 2009, Thm. 4), the
    ///   sample variance replaced by the larger m/(m−1)·(second moment) so that the bound is
    ///   non-increasing in ε: mean + √(2·S₂·ln(4/α)/(m−1)) + 7·range·ln(4/α)/(3(m−1));
    /// - (X − T)₊ ∈ [0, R], R = M(eps_lo) − T fixed: the Chernoff–Hoeffding KL bound on the
    ///   rescaled variables, R · kl_ucb(mean/R).
    ///
    /// Both are non-increasing in ε. O(#{L_j > ε}).
    fn ucb(&self, epsilon: f64, alpha: f64) -> f64 {
        if epsilon < self.eps_lo {
            return 1.0;
        }
        let mo = self.moments(epsilon);
        let m1 = (self.m.max(2) - 1) as f64;
        let log = (4.0 / alpha).ln();
        let range_low = self.cap.min(self.range(epsilon)).max(mo.low_largest);
        let low = mo.low_mean
            + (2.0 * mo.low_second * log / m1).sqrt()
            + 7.0 * range_low * log / (3.0 * m1);
        let high = if self.range_high > 0.0 {
            self.range_high * kl_upper_bound(mo.high_mean / self.range_high, self.m, alpha / 2.0)
        } else {
            0.0
        };
        (low + high).min(1.0)
    }
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
    /// Errors: `--bins` outside [1, n]; `--samples` = 0; `--confidence` outside (0, 1);
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
                "--min-sep",
                bins,
                &format!("an integer in [1, n = {n}]"),
            ));
        }
        if options.samples == 0 || options.samples > (1 << 34) {
            return Err(invalid(
                "--samples",
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
        let gram = bin_gram(c, bins, sensitivity);
        let chol = cholesky(&gram, bins).ok_or_else(|| {
            AccountingError::Strategy(
                "the Gram matrix of the bins' signals is not positive definite".into(),
            )
        })?;
        let (chol_cols, col_end) = by_columns(&chol, bins);
        let seed = match options.seed {
            Some(s) => s,
            None => {
                use rand::RngExt;
                rand::rng().random::<u64>()
            }
        };
        let samples = options.samples;
        Ok(Self {
            n,
            bins,
            gram,
            chol_cols,
            col_end,
            samples,
            confidence: options.confidence,
            seed,
            progress: None,
        })
    }

    /// The same accountant, adding the number of samples it draws to `counter` as it goes
    /// (one ε evaluation draws [`McOptions::samples`] per direction, plus a pilot run), so a
    /// caller can show progress. Results do not depend on it.
    pub fn with_progress(mut self, counter: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.progress = Some(counter);
        self
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

    /// max_i ‖v_i‖² (the largest diagonal entry of the normalised Gram matrix).
    fn max_norm2(&self) -> f64 {
        (0..self.bins)
            .map(|i| self.gram[i * self.bins + i])
            .fold(0.0, f64::max)
    }

    /// The proposals of the two directions at noise multiplier z, `[remove, add]` (module doc):
    /// remove n₀ = c = max_i ‖v_i‖²/(2z²); add n₀ = mean_i ‖v_i‖²/(2z²), c = ‖v̄‖²/(2z²).
    fn proposals(&self, z: f64) -> [Proposal; 2] {
        let b = self.bins as f64;
        let inv = 0.5 / (z * z);
        let mean_norm2 = (0..self.bins)
            .map(|i| self.gram[i * self.bins + i])
            .sum::<f64>()
            / b;
        let vbar2 = self.gram.iter().sum::<f64>() / (b * b);
        let max = self.max_norm2() * inv;
        [
            Proposal { n0: max, c: max },
            Proposal {
                n0: mean_norm2 * inv,
                c: vbar2 * inv,
            },
        ]
    }

    /// Draws `m` samples from stream family `family` at noise multiplier z, with the tilts
    /// `lambda` and search floors `floor` of `[remove, add]`: each direction importance-sampled
    /// from its own proposal ([`Weighted`], samples with L > its floor kept). Both directions
    /// share the draws w; each direction's samples are i.i.d., which is all its bound needs.
    /// O(m·b²) (O(m·b) when the Cholesky factor is diagonal).
    fn draw(
        &self,
        z: f64,
        lambda: [f64; 2],
        m: usize,
        family: u64,
        floor: [f64; 2],
    ) -> Result<[Weighted; 2]> {
        let scores = Scores::new(self, z, lambda, floor);
        let per_chunk: Vec<Chunk> = (0..m.div_ceil(CHUNK))
            .into_par_iter()
            .map(|ch| {
                let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
                rng.set_stream((family << 40) | ch as u64);
                let mut buf = [
                    vec![0.0f64; self.bins],
                    vec![0.0; self.bins],
                    vec![0.0; self.bins],
                ];
                let mut out: Chunk = [Vec::new(), Vec::new()];
                let range = ch * CHUNK..((ch + 1) * CHUNK).min(m);
                let count = range.len() as u64;
                for _ in range {
                    scores.sample(&mut rng, &mut buf, &mut out);
                }
                if let Some(p) = &self.progress {
                    p.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
                }
                out
            })
            .collect();
        let mut dirs: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
        for chunk in per_chunk {
            for (d, samples) in dirs.iter_mut().zip(chunk) {
                d.extend(samples);
            }
        }
        if dirs.iter().flatten().any(|(l, w)| l.is_nan() || w.is_nan()) {
            return Err(AccountingError::Unreachable(format!(
                "the privacy loss is NaN at --noise-multiplier {z}"
            )));
        }
        let props = self.proposals(z);
        let mut out = dirs.into_iter().enumerate().map(|(d, mut samples)| {
            samples.sort_by(|x, y| y.0.total_cmp(&x.0));
            Weighted {
                samples,
                m,
                lambda: lambda[d],
                kappa: props[d].kappa(lambda[d]),
                eps_lo: 0.0,
                cap: f64::INFINITY,
                range_high: 0.0,
            }
            .split_at(floor[d])
        });
        let rem = out.next().expect("two directions");
        let add = out.next().expect("two directions");
        Ok([rem, add])
    }

    /// Both directions' tilts for a target ε, `[remove, add]`.
    fn tilts(&self, z: f64, epsilon: [f64; 2]) -> [f64; 2] {
        let p = self.proposals(z);
        [p[0].tilt(epsilon[0]), p[1].tilt(epsilon[1])]
    }

    /// The tilts and search floors of both directions for `epsilon()` at (z, δ), from a pilot
    /// run on its own stream family (so the main samples stay independent of them): each
    /// direction's point estimate ε̂ with m/8 samples tilted for the unamplified Gaussian ε;
    /// returns (λ for each ε̂, floors 0.97·ε̂). O(m·b²/8).
    ///
    /// Should the pilot find no ε for a direction (an unamplified ε beyond 1e7, or a point
    /// estimate that never reaches δ), that direction keeps the tilt for the guess and floor 0:
    /// still valid, only less tight.
    fn pilot(&self, z: f64, delta: f64, round: u64) -> Result<([f64; 2], [f64; 2])> {
        let guess = super::AnalyticGaussian.epsilon(z, delta).unwrap_or(1e3);
        let m = self.samples.div_ceil(8).max(CHUNK);
        let tilts = self.tilts(z, [guess; 2]);
        let dirs = self.draw(z, tilts, m, PILOT_FAMILY | round, [0.0; 2])?;
        let props = self.proposals(z);
        let (mut lambda, mut floor) = (tilts, [0.0; 2]);
        for d in 0..2 {
            if let Ok(point) = bisect_epsilon(|e| Ok(dirs[d].mean(e)), delta, 1e-6) {
                lambda[d] = props[d].tilt(point);
                floor[d] = PILOT_FLOOR * point;
            }
        }
        Ok((lambda, floor))
    }

    /// ε at (z, δ): pilot, one draw, then the smallest ε ≥ each direction's floor whose bound
    /// is ≤ δ in that direction (below its floor a direction's bound reports 1, so the answer is
    /// at least the floor — conservative if the true ε is lower), the larger of the two.
    fn epsilon_at_level(&self, z: f64, delta: f64, alpha: f64, round: u64) -> Result<f64> {
        let (lambda, floor) = self.pilot(z, delta, round)?;
        let [rem, add] = self.draw(z, lambda, self.samples, round, floor)?;
        let e_rem = bisect_epsilon(|e| Ok(rem.ucb(e, alpha)), delta, 1e-10)?;
        let e_add = bisect_epsilon(|e| Ok(add.ucb(e, alpha)), delta, 1e-10)?;
        Ok(e_rem.max(e_add))
    }

    fn delta_at_level(&self, z: f64, epsilon: f64, alpha: f64, round: u64) -> Result<f64> {
        let [rem, add] = self.delta_bounds_at_level(z, epsilon, alpha, round)?;
        Ok(rem.max(add))
    }

    fn delta_bounds_at_level(
        &self,
        z: f64,
        epsilon: f64,
        alpha: f64,
        round: u64,
    ) -> Result<[f64; 2]> {
        let lambda = self.tilts(z, [epsilon; 2]);
        let [rem, add] = self.draw(z, lambda, self.samples, round, [epsilon; 2])?;
        Ok([rem.ucb(epsilon, alpha), add.ucb(epsilon, alpha)])
    }

    /// Each direction's upper confidence bound on δ(ε), `[remove, add]`, from the same samples
    /// as [`Accountant::delta`] (which reports their maximum): shows which direction binds.
    ///
    /// # Privacy contract
    /// Each entry is an upper bound on its direction's δ(ε) with probability ≥ `confidence`;
    /// only their maximum bounds the mechanism's δ(ε).
    pub fn delta_by_direction(&self, noise_multiplier: f64, epsilon: f64) -> Result<[f64; 2]> {
        check_noise_multiplier(noise_multiplier)?;
        check_epsilon_arg(epsilon)?;
        self.delta_bounds_at_level(noise_multiplier, epsilon, self.alpha(), 0)
    }

    /// Point estimate of δ(ε) (no confidence bound) per direction, `[remove, add]` (remove:
    /// the importance-sampling mean, unbiased), for diagnostics and tests — **not** a privacy
    /// guarantee.
    pub fn delta_point_estimate(&self, noise_multiplier: f64, epsilon: f64) -> Result<[f64; 2]> {
        check_noise_multiplier(noise_multiplier)?;
        check_epsilon_arg(epsilon)?;
        let z = noise_multiplier;
        let [rem, add] = self.draw(z, self.tilts(z, [epsilon; 2]), self.samples, 0, [0.0; 2])?;
        Ok([rem.mean(epsilon), add.mean(epsilon)])
    }

    /// Point estimate of ε(δ) (smallest ε with both directions' sample means ≤ δ, same samples
    /// as [`Accountant::epsilon`]), for diagnostics and tests — **not** a privacy guarantee:
    /// it can fall below the true ε. O(m·b²).
    ///
    /// # Privacy contract
    /// None: this is an estimate, not a bound. Never use it to release; use
    /// [`Accountant::epsilon`], the upper confidence bound.
    pub fn epsilon_point_estimate(&self, noise_multiplier: f64, delta: f64) -> Result<f64> {
        check_noise_multiplier(noise_multiplier)?;
        check_delta(delta)?;
        let z = noise_multiplier;
        let (lambda, _) = self.pilot(z, delta, 0)?;
        let [rem, add] = self.draw(z, lambda, self.samples, 0, [0.0; 2])?;
        let e_rem = bisect_epsilon(|e| Ok(rem.mean(e)), delta, 1e-10)?;
        let e_add = bisect_epsilon(|e| Ok(add.mean(e)), delta, 1e-10)?;
        Ok(e_rem.max(e_add))
    }
}

/// One chunk's output: (L, ln W) of the samples above each direction's floor, `[remove, add]`.
type Chunk = [Vec<(f64, f64)>; 2];

/// The proposal family of one direction (module doc): the tilt λ and the range bound
/// M(ε) = exp(κ − λε)·λ^λ/(1+λ)^{1+λ} with κ = λ·n₀ + λ²·c.
#[derive(Debug, Clone, Copy)]
struct Proposal {
    n0: f64,
    c: f64,
}

impl Proposal {
    /// κ at tilt λ.
    fn kappa(&self, lambda: f64) -> f64 {
        lambda * self.n0 + lambda * lambda * self.c
    }

    /// The tilt for a target ε: the minimiser of M(ε) over λ, i.e. the root of the increasing
    /// n₀ + 2λc − ε + ln(λ/(1+λ)), by bisection in log λ. O(1).
    fn tilt(&self, epsilon: f64) -> f64 {
        let h = |l: f64| self.n0 + 2.0 * l * self.c - epsilon + (l / (1.0 + l)).ln();
        let (mut lo, mut hi) = (1e-12f64, 1e4f64);
        if h(hi) < 0.0 {
            return hi;
        }
        for _ in 0..100 {
            let mid = (lo * hi).sqrt();
            if h(mid) < 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }
}

/// The per-draw constants of the privacy-loss computation at noise multiplier z and tilts
/// `[λ, τ]` (remove, add).
///
/// With q_i = −G[i, i]/(2z²) + u_i/z (the scores at y = z·g) and Δ_i = (1+λ)G[i*, i]/z² ≥ 0
/// (C ≥ 0 ⇒ G ≥ 0), the remove scores under proposal component i* are a_i = q_i + Δ_i, non-zero
/// Δ only where row i* of G is. For a sparse row, writing
/// Σ e^{a_i} = Σ e^{q_i} + Σ_{Δ_i > 0} e^{q_i + Δ_i}(1 − e^{−Δ_i}) (every term ≥ 0, no
/// cancellation) reuses the b exponentials of q: for C = I the remove loss costs two more, not
/// b. A dense row is summed directly. The add scores at y = −τv̄ + z·g are q_i − τḡ_i/z²
/// (ḡ_i = ⟨v_i, v̄⟩ = mean_j G[i, j]), with ln dQ/dProp = −τ²‖v̄‖²/(2z²) + τ·mean(u)/z. A
/// proposal's lse is only computed for samples above the floor (the only ones the bounds read).
struct Scores<'a> {
    acc: &'a MonteCarloBnb,
    inv_z: f64,
    ln_b: f64,
    /// Remove tilt λ.
    lambda: f64,
    /// Add tilt τ.
    tau: f64,
    floor: [f64; 2],
    /// q's offsets −G[i, i]/(2z²).
    add: Vec<f64>,
    /// Row i* of Δ: its non-zero entries (i, Δ_i).
    rows: Vec<Vec<(usize, f64)>>,
    /// λ(1+λ)G[i, i]/(2z²): ln dProp/dQ = lse_i((1+λ)a_i − shift_i) − ln b.
    shift: Vec<f64>,
    /// The add proposal's score shifts τḡ_i/z².
    add_shift: Vec<f64>,
    /// −τ²‖v̄‖²/(2z²), the constant of ln dQ/dProp.
    add_log_w0: f64,
}

impl<'a> Scores<'a> {
    fn new(acc: &'a MonteCarloBnb, z: f64, lambda: [f64; 2], floor: [f64; 2]) -> Self {
        let b = acc.bins;
        let inv_z2 = 1.0 / (z * z);
        let half_norm = |i: usize| 0.5 * acc.gram[i * b + i] * inv_z2;
        let [lambda, tau] = lambda;
        let rows = (0..b)
            .map(|r| {
                (0..b)
                    .filter(|&i| acc.gram[r * b + i] != 0.0)
                    .map(|i| (i, (1.0 + lambda) * acc.gram[r * b + i] * inv_z2))
                    .collect()
            })
            .collect();
        let add_shift = (0..b)
            .map(|i| tau * acc.gram[i * b..(i + 1) * b].iter().sum::<f64>() / b as f64 * inv_z2)
            .collect();
        Self {
            acc,
            inv_z: 1.0 / z,
            ln_b: (b as f64).ln(),
            lambda,
            tau,
            floor: floor.map(|f| f.max(0.0)),
            add: (0..b).map(|i| -half_norm(i)).collect(),
            rows,
            shift: (0..b)
                .map(|i| lambda * (1.0 + lambda) * half_norm(i))
                .collect(),
            add_shift,
            add_log_w0: -tau * tau * acc.proposals(z)[1].c,
        }
    }

    /// ln((1/b) Σ_i e^{s_i}) without overflow. O(b).
    fn lse(&self, s: &[f64]) -> f64 {
        let mx = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        mx + s.iter().map(|v| (v - mx).exp()).sum::<f64>().ln() - self.ln_b
    }

    /// One sample: w ~ N(0, I), i* uniform, u = R w; pushes the remove (L, ln W) and the add
    /// (L, ln W) of the samples above their floors. `buf` = [w, u (then q), scratch].
    /// O(b²) (R dense) or O(b).
    fn sample(&self, rng: &mut ChaCha8Rng, buf: &mut [Vec<f64>; 3], out: &mut Chunk) {
        use rand::RngExt;
        let (b, acc) = (self.acc.bins, self.acc);
        let [w, u, s] = buf;
        for wi in w.iter_mut() {
            *wi = StandardNormal.sample(rng);
        }
        let istar = rng.random_range(0..b);
        // u = R w, column by column (axpy; columns cut at their last non-zero).
        u.fill(0.0);
        for (c, &wc) in w.iter().enumerate() {
            let col = &acc.chol_cols[c * b + c..c * b + acc.col_end[c]];
            for (ui, r) in u[c..acc.col_end[c]].iter_mut().zip(col) {
                *ui += r * wc;
            }
        }
        // q = the scores at y = z·g (in u); Σu for the add direction's weight.
        let mut sum_u = 0.0;
        for (ui, mi) in u.iter_mut().zip(&self.add) {
            sum_u += *ui;
            *ui = mi + *ui * self.inv_z;
        }
        let q = &*u;
        // Add: y = −τv̄ + z·g, L = −lse(q − τḡ/z²). Jensen (lse ≥ mean) skips the b
        // exponentials of the samples that cannot reach the floor: L ≤ −mean(q − τḡ/z²).
        let mut sum_a = 0.0;
        for ((si, qi), d) in s.iter_mut().zip(q).zip(&self.add_shift) {
            *si = qi - d;
            sum_a += *si;
        }
        let l_add_max = -sum_a / b as f64;
        if l_add_max > self.floor[1] || l_add_max.is_nan() {
            let l_add = -self.lse(s);
            if l_add > self.floor[1] || l_add.is_nan() {
                let log_w = self.add_log_w0 + self.tau * sum_u / b as f64 * self.inv_z;
                out[1].push((l_add, log_w));
            }
        }
        // Remove: Σ e^{a_i} = e^{mq + mr}·(sum_q·e^{−mr} + Σ_{Δ_i > 0} e^{x_i + Δ_i}(1 − e^{−Δ_i})),
        // x_i = q_i − mq − mr, mr ≥ 0 chosen so that every x_i + Δ_i ≤ 0.
        // A dense row (e.g. BISR) is cheaper directly: lse of a = q + Δ.
        let row = &self.rows[istar];
        let l_remove = if 2 * row.len() > b {
            s.copy_from_slice(q);
            for &(i, d) in row {
                s[i] += d;
            }
            self.lse(s)
        } else {
            let mq = q.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum_q: f64 = q.iter().map(|qi| (qi - mq).exp()).sum();
            let mr = row
                .iter()
                .map(|&(i, d)| q[i] - mq + d)
                .fold(0.0f64, f64::max);
            let mut sum_a = sum_q * (-mr).exp();
            for &(i, d) in row {
                sum_a += (q[i] - mq - mr + d).exp() * -(-d).exp_m1();
            }
            mq + mr + sum_a.ln() - self.ln_b
        };
        if l_remove > self.floor[0] || l_remove.is_nan() {
            let f = 1.0 + self.lambda;
            for ((si, qi), ci) in s.iter_mut().zip(q).zip(&self.shift) {
                *si = f * qi - ci;
            }
            for &(i, d) in row {
                s[i] += f * d;
            }
            out[0].push((l_remove, l_remove - self.lse(s)));
        }
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
    /// meets (ε, δ) with probability ≥ 1 − α (= `confidence`). `AccountingPlan::calibrate`
    /// reports the ε of the accepting verification round ([`Accountant::calibrate_verified`]).
    fn calibrate(&self, epsilon: f64, delta: f64) -> Result<f64> {
        Ok(self.calibrate_verified(epsilon, delta)?.0)
    }

    /// [`Accountant::calibrate`] with the ε of the verification round that accepted z (≤ the
    /// target): the upper confidence bound actually checked, at level α/R for that round.
    fn calibrate_verified(&self, epsilon: f64, delta: f64) -> Result<(f64, f64)> {
        check_epsilon(epsilon)?;
        check_delta(delta)?;
        let alpha = self.alpha() / VERIFY_ROUNDS as f64;
        let ok =
            |z: f64| -> Result<bool> { Ok(self.delta_at_level(z, epsilon, alpha, 0)? <= delta) };
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
            let verified = self.epsilon_at_level(z, delta, alpha, round)?;
            if verified <= epsilon {
                return Ok((z, verified));
            }
            z *= 1.005;
        }
        Err(AccountingError::Unreachable(format!(
            "the calibrated noise multiplier failed verification {VERIFY_ROUNDS} times; raise --samples (privacy.mc_samples in a training config)"
        )))
    }

    fn rounding(&self) -> String {
        format!(
            "Monte Carlo upper confidence bound at confidence {}, {} samples per direction (each direction importance-sampled: empirical-Bernstein bound below a split, Chernoff-Hoeffding KL bound above it), max over add/remove",
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

/// The Gram matrix G_ij = ⟨C·1_i, C·1_j⟩ / Δ² of the bins' signals, where 1_i marks the steps
/// t ≡ i (mod bins) of bin i and Δ is the sensitivity (row-major, bins × bins).
///
/// Complexity: bins products C·x (in parallel) plus O(bins²·n).
fn bin_gram(c: &LowerTriangular, bins: usize, sensitivity: f64) -> Vec<f64> {
    let n = c.n();
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
    gram
}

/// The lower Cholesky factor L (row-major) stored by columns, and for each column the end of
/// its non-zero part (so the sampler skips the zero tail).
fn by_columns(chol: &[f64], bins: usize) -> (Vec<f64>, Vec<usize>) {
    let mut cols = vec![0.0; bins * bins];
    let mut end = vec![0; bins];
    for c in 0..bins {
        for i in c..bins {
            cols[c * bins + i] = chol[i * bins + c];
            if chol[i * bins + c] != 0.0 {
                end[c] = i + 1;
            }
        }
    }
    (cols, end)
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
            e(MonteCarloBnb::new(&c, 0, 1.0, opts(10, 1))).contains("--min-sep"),
            "bins 0",
        );
        check(
            e(MonteCarloBnb::new(&c, 11, 1.0, opts(10, 1))).contains("[1, n = 10]"),
            "bins > n",
        );
        check(
            e(MonteCarloBnb::new(&c, 2, 1.0, opts(0, 1))).contains("--samples"),
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
    }

    #[test]
    fn few_samples_still_bound_from_above() {
        // Few samples certify δ = 1e-5 only loosely or not at all (a clean error), but never
        // below the true ε (here a 200 000-sample point estimate, accurate to ≈ 1e-3).
        let c = LowerTriangular::Identity { n: 10 };
        let acc = |m| MonteCarloBnb::new(&c, 2, 5f64.sqrt(), opts(m, 1)).unwrap();
        let point = acc(200_000).epsilon_point_estimate(1.0, 1e-5).unwrap();
        match acc(100).epsilon(1.0, 1e-5) {
            Ok(e) => check(e > point, &format!("100 samples: {e} > {point}")),
            Err(e) => check(matches!(e, AccountingError::Unreachable(_)), "clean error"),
        }
        let e = acc(5_000).epsilon(1.0, 1e-5).unwrap();
        check(e > point, &format!("5 000 samples: {e} > {point}"));
    }

    #[test]
    fn every_weighted_sample_is_inside_its_proved_range() {
        // X_j = W_j (1 − e^{ε − L_j})₊ ≤ M(ε) for both directions' proposals, on a correlated
        // strategy where the add direction's range rests on Jensen's inequality alone.
        let (n, b) = (60, 6);
        let c = LowerTriangular::InverseToeplitz(
            ToeplitzLower::new(n, series::r_tilde(n)[..4].to_vec()).unwrap(),
        );
        let part = crate::sensitivity::Participation::new(n, Some(b), n / b).unwrap();
        let sens = crate::sensitivity::sensitivity(&c, part).unwrap().value;
        let a = MonteCarloBnb::new(&c, b, sens, opts(50_000, 2)).unwrap();
        for (z, eps) in [(0.5, 2.0), (1.0, 1.0), (0.3, 8.0)] {
            let tilts = a.tilts(z, [eps; 2]);
            check(tilts.iter().all(|l| *l > 0.0), "both directions tilted");
            let dirs = a.draw(z, tilts, 50_000, 0, [0.0; 2]).unwrap();
            for (d, w) in dirs.iter().enumerate() {
                let m = w.range(eps);
                let seen = w
                    .samples
                    .iter()
                    .filter(|(l, _)| *l > eps)
                    .map(|(l, ln_w)| ln_w.exp() * -(eps - l).exp_m1())
                    .fold(0.0f64, f64::max);
                check(
                    seen <= m * (1.0 + 1e-9),
                    &format!("direction {d}, z {z}, ε {eps}: {seen} > M = {m}"),
                );
                check(
                    w.samples.iter().filter(|(l, _)| *l > eps).count() > 100,
                    &format!("direction {d} sees its tail"),
                );
            }
        }
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
