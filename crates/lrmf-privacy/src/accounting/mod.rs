//! Privacy accounting: from a noise multiplier to (ε, δ) and back, for the batch sampler the
//! training run really uses.
//!
//! # Conventions
//! * `z` ("noise multiplier") is the standard deviation of the Gaussian noise **per unit
//!   sensitivity**. The noise added per unit clip norm is `σ = z · sens(C)`, where `sens(C)` is
//!   the sensitivity of the strategy under the participation pattern. This scaling happens in
//!   exactly one place: [`AccountingPlan::noise_std`]; every accountant's ε depends on `z` only
//!   (the Monte Carlo accountant normalises `C` by `sens(C)` once, at construction).
//! * The accountant, the batch sampler it assumes and the sensitivity travel together in one
//!   [`AccountingPlan`], so Poisson accounting cannot be paired with fixed batches by mistake,
//!   and every [`PrivacyReport`] names the [`Sampling`] scheme its number holds for.
//!
//! | accountant | sampling it assumes | strategy | why |
//! |---|---|---|---|
//! | [`gaussian`] | [`Sampling::None`]: every example in every epoch, fixed order | any C, sensitivity under b-min-separation | one Gaussian release of `CG`; no randomness in batching, so no amplification |
//! | [`rdp`] | [`Sampling::Poisson`] at rate q | C = I (DP-SGD) | the subsampled-Gaussian RDP bound needs independent inclusion per step |
//! | [`pld`] | [`Sampling::Poisson`] at rate q | C = I (DP-SGD) | same mechanism, tight numerical composition |
//! | [`mc_bnb`] | [`Sampling::BallsInBins`] with b bins | banded / Toeplitz / any non-negative C | each example sits in one uniformly random bin, fixed across epochs |
//!
//! # Privacy contract
//! Every number leaving this module is rounded in the conservative direction: a calibrated
//! noise multiplier is never below the exact solution (the upper end of the bisection bracket
//! is returned), an ε is never below the exact ε of the accountant's model (upper end of the
//! bracket), a δ never below the exact δ. The Monte Carlo accountant reports an upper
//! confidence bound at a stated confidence level, not a point estimate.

pub mod gaussian;
pub mod mc_bnb;
pub mod pld;
pub mod rdp;

pub use gaussian::AnalyticGaussian;
pub use mc_bnb::{McOptions, MonteCarloBnb};
pub use pld::PldPoisson;
pub use rdp::RdpPoisson;

use std::fmt;

/// Errors of the accounting module. Messages name the quantity with its CLI flag spelling
/// and the allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountingError {
    /// An argument outside its allowed range (or NaN).
    #[error("invalid {flag} = {value}: must be {allowed}")]
    Invalid {
        /// The CLI flag that sets the quantity, e.g. `--delta`.
        flag: &'static str,
        /// The value given, as text.
        value: String,
        /// The allowed range, in words.
        allowed: String,
    },
    /// The target cannot be met by this accountant (e.g. δ below what the Monte Carlo sample
    /// count can certify, or a noise multiplier beyond the search range).
    #[error("unreachable target: {0}")]
    Unreachable(String),
    /// The strategy matrix is outside what an accountant supports.
    #[error("unsupported strategy: {0}")]
    Strategy(String),
}

/// Shorthand for results of this module.
pub type Result<T> = std::result::Result<T, AccountingError>;

pub(crate) fn invalid(
    flag: &'static str,
    value: impl fmt::Display,
    allowed: &str,
) -> AccountingError {
    AccountingError::Invalid {
        flag,
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

/// `--epsilon` must be finite and > 0.
pub fn check_epsilon(epsilon: f64) -> Result<()> {
    if epsilon.is_finite() && epsilon > 0.0 {
        Ok(())
    } else {
        Err(invalid("--epsilon", epsilon, "a finite number > 0"))
    }
}

/// `--delta` must lie in the open interval (0, 1).
pub fn check_delta(delta: f64) -> Result<()> {
    if delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(invalid("--delta", delta, "in the open interval (0, 1)"))
    }
}

/// `--noise-multiplier` must be finite and > 0.
pub fn check_noise_multiplier(z: f64) -> Result<()> {
    if z.is_finite() && z > 0.0 {
        Ok(())
    } else {
        Err(invalid("--noise-multiplier", z, "a finite number > 0"))
    }
}

/// `--sampling-rate` must lie in (0, 1].
pub fn check_sampling_rate(q: f64) -> Result<()> {
    if q > 0.0 && q <= 1.0 {
        Ok(())
    } else {
        Err(invalid(
            "--sampling-rate",
            q,
            "in the half-open interval (0, 1]",
        ))
    }
}

/// `--steps` must be ≥ 1 (and fit the composition routines: ≤ 2³¹).
pub fn check_steps(steps: usize) -> Result<()> {
    if (1..=(1usize << 31)).contains(&steps) {
        Ok(())
    } else {
        Err(invalid("--steps", steps, "an integer in [1, 2^31]"))
    }
}

/// ε as an argument of δ(ε): finite and ≥ 0.
pub(crate) fn check_epsilon_arg(epsilon: f64) -> Result<()> {
    if epsilon.is_finite() && epsilon >= 0.0 {
        Ok(())
    } else {
        Err(invalid("--epsilon", epsilon, "a finite number ≥ 0"))
    }
}

/// The accountants by name: one table for the `--accountant` flag of the CLI and the
/// `privacy.accountant` key of a training config (the trainer takes the two that hold for its
/// b-min-separated sampler, [`AccountantKind::Gaussian`] and [`AccountantKind::McBnb`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountantKind {
    /// Analytic Gaussian mechanism, no amplification.
    Gaussian,
    /// DP-SGD with Poisson sampling, Rényi DP.
    RdpPoisson,
    /// DP-SGD with Poisson sampling, privacy-loss distribution.
    PldPoisson,
    /// Matrix factorization under balls-in-bins batching, Monte Carlo.
    McBnb,
}

impl AccountantKind {
    /// Every accountant, in the order of the CLI's help.
    pub const ALL: [AccountantKind; 4] = [
        AccountantKind::Gaussian,
        AccountantKind::RdpPoisson,
        AccountantKind::PldPoisson,
        AccountantKind::McBnb,
    ];

    /// The flag and config spelling.
    pub const fn name(self) -> &'static str {
        match self {
            AccountantKind::Gaussian => "gaussian",
            AccountantKind::RdpPoisson => "rdp-poisson",
            AccountantKind::PldPoisson => "pld-poisson",
            AccountantKind::McBnb => "mc-bnb",
        }
    }

    /// One line on what the accountant assumes (the CLI's help for the value).
    pub const fn description(self) -> &'static str {
        match self {
            AccountantKind::Gaussian => {
                "Analytic Gaussian mechanism, no amplification (any sampling with b-min-separation)"
            }
            AccountantKind::RdpPoisson => "DP-SGD with Poisson sampling, Rényi DP",
            AccountantKind::PldPoisson => {
                "DP-SGD with Poisson sampling, privacy-loss distribution (tight)"
            }
            AccountantKind::McBnb => {
                "Matrix factorization under balls-in-bins batching, Monte Carlo (upper confidence bound)"
            }
        }
    }

    /// Whether the accountant assumes Poisson sampling (DP-SGD only).
    pub const fn is_poisson(self) -> bool {
        matches!(
            self,
            AccountantKind::RdpPoisson | AccountantKind::PldPoisson
        )
    }
}

impl fmt::Display for AccountantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AccountantKind {
    type Err = AccountingError;

    fn from_str(s: &str) -> Result<Self> {
        AccountantKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = AccountantKind::ALL.iter().map(|k| k.name()).collect();
                invalid("--accountant", s, &format!("one of {}", names.join(", ")))
            })
    }
}

/// The batch sampler an accountant's number holds for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Every example in every epoch, in a fixed order: no amplification by sampling.
    None,
    /// Poisson sampling: every example joins every step independently with probability `q`.
    Poisson {
        /// Sampling rate q ∈ (0, 1].
        q: f64,
    },
    /// Balls in bins: every example is put once into one of `bins` bins uniformly at random;
    /// bin i is the batch at steps i, i + b, i + 2b, … (the bin is fixed across epochs).
    BallsInBins {
        /// Number of bins b (= steps per epoch).
        bins: usize,
    },
}

impl fmt::Display for Sampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => write!(
                f,
                "no amplification (any batching with b-min-separation: balls-in-bins or fixed-partition)"
            ),
            Self::Poisson { q } => write!(f, "poisson (rate q = {q})"),
            Self::BallsInBins { bins } => {
                write!(
                    f,
                    "balls-in-bins (b = {bins} bins, bin fixed across epochs)"
                )
            }
        }
    }
}

/// A privacy accountant: (ε, δ) of one mechanism as a function of the noise multiplier `z`
/// (noise standard deviation per unit sensitivity).
///
/// # Privacy contract
/// `epsilon` never returns less than the exact ε of the accountant's model, `delta` never less
/// than the exact δ, and `calibrate` never a noise multiplier below the exact solution.
pub trait Accountant: Send + Sync + fmt::Debug {
    /// Short name, as on the CLI (`gaussian`, `rdp-poisson`, `pld-poisson`, `mc-bnb`).
    fn name(&self) -> &'static str;
    /// The batch sampler the numbers hold for.
    fn sampling(&self) -> Sampling;
    /// The smallest ε ≥ 0 with δ(ε) ≤ `delta` at noise multiplier `noise_multiplier`.
    fn epsilon(&self, noise_multiplier: f64, delta: f64) -> Result<f64>;
    /// δ(ε) at noise multiplier `noise_multiplier`.
    fn delta(&self, noise_multiplier: f64, epsilon: f64) -> Result<f64>;
    /// The smallest noise multiplier z whose guarantee meets (ε, δ): the default bisects `delta`
    /// in log z (δ is non-increasing in z) to relative width [`Accountant::z_tolerance`] and
    /// returns the upper end of the bracket.
    fn calibrate(&self, epsilon: f64, delta: f64) -> Result<f64> {
        bisect_noise_multiplier(
            |z| self.delta(z, epsilon),
            epsilon,
            delta,
            self.z_tolerance(),
        )
    }
    /// The calibrated z together with the ε the accountant verified there: `(z, ε)` with ε ≤
    /// `epsilon`. The default recomputes [`Accountant::epsilon`] at z (capped at the target,
    /// which `calibrate` verified at z too: the bisection only returns a z where
    /// `delta(z, epsilon) ≤ delta` was evaluated; the cap only removes the ≤ 1e-13 bracket
    /// width of the ε search); a Monte Carlo accountant returns the bound of its verification
    /// round (the statement it actually checked).
    ///
    /// # Privacy contract
    /// z as [`Accountant::calibrate`]; ε is an upper bound (exact model or at the stated
    /// confidence) on the ε of the mechanism at z that was evaluated at z.
    fn calibrate_verified(&self, epsilon: f64, delta: f64) -> Result<(f64, f64)> {
        let z = self.calibrate(epsilon, delta)?;
        Ok((z, self.epsilon(z, delta)?.min(epsilon)))
    }
    /// Relative width at which calibration stops.
    fn z_tolerance(&self) -> f64 {
        1e-12
    }
    /// One-line statement of how the numbers are rounded, for reports.
    fn rounding(&self) -> String;
    /// Confidence level of the numbers (`None`: deterministic bounds).
    fn confidence(&self) -> Option<f64> {
        None
    }
    /// Monte Carlo sample count per direction (`None`: not a Monte Carlo accountant).
    fn samples(&self) -> Option<usize> {
        None
    }
    /// The random seed used (`None`: deterministic accountant).
    fn seed(&self) -> Option<u64> {
        None
    }
}

/// Smallest z in `[Z_MIN, Z_MAX]` with `delta_of(z) ≤ delta`, by bracketing and bisection in
/// log z; returns the upper (conservative) end of a bracket of relative width `tol`.
///
/// Complexity: O(log(range/tol)) calls of `delta_of`.
///
/// # Privacy contract
/// Assumes `delta_of` is non-increasing in z; the returned z satisfies `delta_of(z) ≤ delta`
/// (it was evaluated there), so the guarantee holds at the returned value exactly.
pub fn bisect_noise_multiplier(
    delta_of: impl Fn(f64) -> Result<f64>,
    epsilon: f64,
    delta: f64,
    tol: f64,
) -> Result<f64> {
    check_epsilon(epsilon)?;
    check_delta(delta)?;
    const Z_MIN: f64 = 1e-6;
    const Z_MAX: f64 = 1e6;
    // A z at which the accountant cannot evaluate (e.g. a PLD grid too large for a tiny z)
    // counts as "not certified": the search never returns an unverified z.
    let ok = |z: f64| -> Result<bool> {
        match delta_of(z) {
            Ok(d) => Ok(d <= delta),
            Err(AccountingError::Unreachable(_)) => Ok(false),
            Err(e) => Err(e),
        }
    };
    let mut hi = 1.0;
    while !ok(hi)? {
        hi *= 2.0;
        if hi > Z_MAX {
            return Err(AccountingError::Unreachable(format!(
                "no --noise-multiplier ≤ {Z_MAX:e} reaches --epsilon {epsilon} at --delta {delta}"
            )));
        }
    }
    let mut lo = hi / 2.0;
    while ok(lo)? {
        hi = lo;
        lo /= 2.0;
        if lo < Z_MIN {
            return Ok(hi);
        }
    }
    while hi / lo - 1.0 > tol {
        let mid = (lo * hi).sqrt();
        if mid <= lo || mid >= hi {
            break;
        }
        if ok(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// Smallest ε in `[0, ∞)` with `delta_of(ε) ≤ delta`, for `delta_of` non-increasing in ε:
/// bracket by doubling, bisect to absolute width `tol·max(1, ε)`, return the upper end.
///
/// # Privacy contract
/// The returned ε satisfies `delta_of(ε) ≤ delta` (it was evaluated there): never below the
/// exact root of the model.
pub(crate) fn bisect_epsilon(
    delta_of: impl Fn(f64) -> Result<f64>,
    delta: f64,
    tol: f64,
) -> Result<f64> {
    if delta_of(0.0)? <= delta {
        return Ok(0.0);
    }
    let mut lo = 0.0;
    let mut hi = 1.0;
    while delta_of(hi)? > delta {
        lo = hi;
        hi *= 2.0;
        if hi > 1e7 {
            return Err(AccountingError::Unreachable(format!(
                "δ(ε) stays above --delta {delta} for every ε ≤ 1e7"
            )));
        }
    }
    while hi - lo > tol * hi.max(1.0) {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if delta_of(mid)? <= delta {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// Relative error of [`libm::erfc`] (the FreeBSD/Sun `s_erf.c` rational approximations) that
/// the error bounds of this module assume: 1e-14, far above the ≲ 1e-16 it is built for and the
/// worst measured against 80-digit mpmath values on the range used here (see the test
/// `ln_ndtr_matches_mpmath`). The asymptotic series of [`ln_ndtr`] below −30 is inside it too
/// (truncation < 3e-16).
pub const ERFC_REL_ERR: f64 = 1e-14;

/// ln Φ(x), the log of the standard normal CDF, accurate in both tails: `ln1p(−Q(x))` for
/// x > 0, `ln(erfc(−x/√2)/2)` down to x = −30, and the asymptotic (Mills ratio) series
/// `−x²/2 − ln(−x) − ½ln(2π) + ln(1 − 1/x² + 3/x⁴ − …)` below (truncation error < 3e-16).
///
/// Accuracy: Φ(x) carries a relative error ≤ [`ERFC_REL_ERR`] (from `erfc`) plus the rounding of
/// x/√2, so the absolute error of ln Φ(x) is bounded by [`ln_ndtr_error`]. O(1).
pub fn ln_ndtr(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x > 0.0 {
        (-0.5 * libm::erfc(x / std::f64::consts::SQRT_2)).ln_1p()
    } else if x > -30.0 {
        (0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)).ln()
    } else {
        let x2 = x * x;
        let inv = 1.0 / x2;
        // 1 − 1/x² + 3/x⁴ − 15/x⁶ + 105/x⁸ − 945/x¹⁰ + 10395/x¹²
        let series = 1.0
            + inv
                * (-1.0
                    + inv * (3.0 + inv * (-15.0 + inv * (105.0 + inv * (-945.0 + inv * 10395.0)))));
        -0.5 * x2 - (-x).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln() + series.ln()
    }
}

/// An upper bound on |ln_ndtr(x̂) − ln Φ(x)| when the computed argument x̂ is within `x_err` of
/// the exact x: the derivative of ln Φ is the inverse Mills ratio φ/Φ, decreasing, and
/// ≤ max(−x, 0) + 1.6 (≤ |x| + 1/|x| for x ≤ −1, ≤ φ(−1)/Φ(−1) ≈ 1.53 above), evaluated at the
/// left end x̂ − x_err; the rounding of x/√2 moves the argument by ≤ 2u|x|; erfc contributes
/// [`ERFC_REL_ERR`] relative (absolute in the log); the final log/log1p and scalings add
/// ≤ 4u(1 + |ln Φ|). O(1).
pub fn ln_ndtr_error(x_hat: f64, x_err: f64) -> f64 {
    const U: f64 = f64::EPSILON / 2.0;
    let left = x_hat - x_err - 2.0 * U * x_hat.abs();
    let mills = (-left).max(0.0) + 1.6;
    mills * (x_err + 2.0 * U * x_hat.abs()) + ERFC_REL_ERR + 4.0 * U * (1.0 + ln_ndtr(x_hat).abs())
}

/// The seed of the Monte Carlo accountant fixed by the mechanism: the first 8 bytes
/// (little-endian) of SHA-256 over a version tag, n, the strategy's entries (the first column
/// for Toeplitz variants — Identity, Toeplitz, inverse Toeplitz —, every lower-triangular entry
/// for dense C, as f64 bit patterns), `bins`, `target` (the noise multiplier or the ε the run
/// fixes) and `delta`. Free text (run names, paths) does not enter, so renaming a run cannot
/// redraw the sample. Stable across platforms and versions of this crate (a change of the
/// hashed content bumps the tag).
///
/// Complexity: O(n·p) for Toeplitz variants (p the band of the stored series), O(n²) for dense.
///
/// # Privacy contract
/// The Monte Carlo bound holds with its stated confidence for a seed fixed **before** the
/// draw. Trying several seeds (or several free-text names that change the seed) and keeping
/// the smallest ε voids that confidence; fixing the seed by the mechanism leaves one draw per
/// mechanism.
pub fn mechanism_seed(
    c: &lrmf_linalg::LowerTriangular,
    bins: usize,
    target: f64,
    delta: f64,
) -> u64 {
    use lrmf_linalg::LinearOperator;
    use sha2::{Digest, Sha256};
    let n = c.n();
    let mut h = Sha256::new();
    h.update(b"lrmf mechanism_seed v1");
    h.update((n as u64).to_le_bytes());
    match c.toeplitz_coeffs(n) {
        Some(coeffs) => {
            h.update(b"toeplitz");
            for v in coeffs {
                h.update(v.to_bits().to_le_bytes());
            }
        }
        None => {
            h.update(b"dense");
            let d = c.to_dense();
            for i in 0..n {
                for j in 0..=i {
                    h.update(d[(i, j)].to_bits().to_le_bytes());
                }
            }
        }
    }
    for v in [bins as u64, target.to_bits(), delta.to_bits()] {
        h.update(v.to_le_bytes());
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// ln(eᵃ + eᵇ) without overflow.
pub(crate) fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + (-(a - b).abs()).exp().ln_1p()
}

/// What a CLI prints: the guarantee, the accountant and sampler it holds for, and the noise.
/// All fields are plain values (ready for JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct PrivacyReport {
    /// Accountant name (`gaussian`, `rdp-poisson`, `pld-poisson`, `mc-bnb`).
    pub accountant: String,
    /// The batch sampler the guarantee holds for, in words.
    pub sampling: String,
    /// Noise multiplier z (noise std per unit sensitivity).
    pub noise_multiplier: f64,
    /// Sensitivity sens(C) of the strategy under the participation pattern (1 for DP-SGD with
    /// Poisson sampling).
    pub sensitivity: f64,
    /// Noise standard deviation per unit clip norm, σ = z · sens(C).
    pub noise_std: f64,
    /// ε of the guarantee. For calibration: the ε the accountant verified at the returned z
    /// (≤ the target): the exact ε for deterministic accountants, the verification round's
    /// upper confidence bound for Monte Carlo.
    pub epsilon: f64,
    /// δ of the guarantee.
    pub delta: f64,
    /// How the numbers were rounded (always towards weaker privacy claims).
    pub rounding: String,
    /// Confidence level of a Monte Carlo bound (`None` for deterministic accountants).
    pub confidence: Option<f64>,
    /// Monte Carlo samples per direction (`None` for deterministic accountants).
    pub samples: Option<usize>,
    /// Seed of the Monte Carlo sampler (`None` for deterministic accountants).
    pub seed: Option<u64>,
}

/// An accountant together with the batch sampler it assumes and the sensitivity it needs.
/// Build one with the constructors; the fields are private so the three cannot be mismatched.
#[derive(Debug)]
pub struct AccountingPlan {
    accountant: Box<dyn Accountant>,
    sensitivity: f64,
}

fn check_sensitivity(s: f64) -> Result<()> {
    if s.is_finite() && s > 0.0 {
        Ok(())
    } else {
        Err(invalid("sensitivity", s, "a finite number > 0"))
    }
}

impl AccountingPlan {
    /// No amplification: one analytic-Gaussian release of `CG` with sensitivity `sensitivity`
    /// (sens(C) under b-min-separation, see [`crate::sensitivity::sensitivity`]); [`Sampling::None`].
    pub fn gaussian(sensitivity: f64) -> Result<Self> {
        check_sensitivity(sensitivity)?;
        Ok(Self {
            accountant: Box::new(AnalyticGaussian),
            sensitivity,
        })
    }

    /// DP-SGD (C = I, sensitivity 1 per step) with Poisson sampling at rate `sampling_rate` for
    /// `steps` steps, Rényi-DP accounting.
    pub fn rdp_poisson(sampling_rate: f64, steps: usize) -> Result<Self> {
        Ok(Self {
            accountant: Box::new(RdpPoisson::new(sampling_rate, steps)?),
            sensitivity: 1.0,
        })
    }

    /// DP-SGD (C = I, sensitivity 1 per step) with Poisson sampling, privacy-loss-distribution
    /// accounting at the default discretization (1e-4).
    pub fn pld_poisson(sampling_rate: f64, steps: usize) -> Result<Self> {
        Ok(Self {
            accountant: Box::new(PldPoisson::new(sampling_rate, steps)?),
            sensitivity: 1.0,
        })
    }

    /// Matrix mechanism with strategy `c` under balls-in-bins batching with `bins` bins; the
    /// Monte Carlo accountant of Choquette-Choo et al. `sensitivity` is sens(C) under
    /// `bins`-min-separation with ⌈n/bins⌉ participations.
    pub fn mc_bnb(
        c: &lrmf_linalg::LowerTriangular,
        bins: usize,
        sensitivity: f64,
        options: McOptions,
    ) -> Result<Self> {
        check_sensitivity(sensitivity)?;
        Ok(Self {
            accountant: Box::new(MonteCarloBnb::new(c, bins, sensitivity, options)?),
            sensitivity,
        })
    }

    /// [`AccountingPlan::mc_bnb`] whose accountant adds the samples it draws to `counter`
    /// (see [`MonteCarloBnb::with_progress`]); the numbers are the same.
    pub fn mc_bnb_with_progress(
        c: &lrmf_linalg::LowerTriangular,
        bins: usize,
        sensitivity: f64,
        options: McOptions,
        counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<Self> {
        check_sensitivity(sensitivity)?;
        Ok(Self {
            accountant: Box::new(
                MonteCarloBnb::new(c, bins, sensitivity, options)?.with_progress(counter),
            ),
            sensitivity,
        })
    }

    /// The accountant.
    pub fn accountant(&self) -> &dyn Accountant {
        self.accountant.as_ref()
    }

    /// The batch sampler the plan's numbers hold for.
    pub fn sampling(&self) -> Sampling {
        self.accountant.sampling()
    }

    /// sens(C).
    ///
    /// # Privacy contract
    /// The value the plan was built with (from [`crate::sensitivity()`], never below the true
    /// sensitivity); every noise std of the plan is `z ·` this.
    pub fn sensitivity(&self) -> f64 {
        self.sensitivity
    }

    /// The noise standard deviation per unit clip norm, σ = z · sens(C) — the one place where
    /// the sensitivity scales the noise.
    pub fn noise_std(&self, noise_multiplier: f64) -> f64 {
        noise_multiplier * self.sensitivity
    }

    fn report(&self, z: f64, epsilon: f64, delta: f64) -> PrivacyReport {
        PrivacyReport {
            accountant: self.accountant.name().to_string(),
            sampling: self.sampling().to_string(),
            noise_multiplier: z,
            sensitivity: self.sensitivity,
            noise_std: self.noise_std(z),
            epsilon,
            delta,
            rounding: self.accountant.rounding(),
            confidence: self.accountant.confidence(),
            samples: self.accountant.samples(),
            seed: self.accountant.seed(),
        }
    }

    /// ε at noise multiplier `noise_multiplier` and `delta`.
    ///
    /// # Privacy contract
    /// ε is never below the accountant's exact value (or, for Monte Carlo, it is an upper
    /// confidence bound).
    pub fn epsilon(&self, noise_multiplier: f64, delta: f64) -> Result<PrivacyReport> {
        let eps = self.accountant.epsilon(noise_multiplier, delta)?;
        Ok(self.report(noise_multiplier, eps, delta))
    }

    /// The smallest noise multiplier meeting (ε, δ), with the ε achieved there.
    ///
    /// # Privacy contract
    /// The returned z is never below the exact solution; the reported ε is the one the
    /// accountant verified at the returned z ([`Accountant::calibrate_verified`]): never above
    /// the target, never below the accountant's bound there (exact ε for deterministic
    /// accountants; the verification round's upper confidence bound for Monte Carlo).
    pub fn calibrate(&self, epsilon: f64, delta: f64) -> Result<PrivacyReport> {
        check_epsilon(epsilon)?;
        check_delta(delta)?;
        let (z, achieved) = self.accountant.calibrate_verified(epsilon, delta)?;
        Ok(self.report(z, achieved, delta))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn accountant_names_round_trip_and_unknown_ones_are_refused() {
        for k in AccountantKind::ALL {
            assert_eq!(k.name().parse::<AccountantKind>(), Ok(k));
            assert_eq!(k.to_string(), k.name());
        }
        let e = "laplace".parse::<AccountantKind>().unwrap_err().to_string();
        assert!(e.contains("--accountant") && e.contains("mc-bnb"), "{e}");
        assert!(AccountantKind::PldPoisson.is_poisson() && !AccountantKind::McBnb.is_poisson());
    }

    use super::*;

    fn check(r: Result<impl fmt::Debug>, flag: &str, range: &str) {
        match r {
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(flag), "{msg} does not name {flag}");
                assert!(msg.contains(range), "{msg} does not state {range}");
            }
            Ok(v) => panic!("expected an error naming {flag}, got {v:?}"),
        }
    }

    #[test]
    fn bad_inputs_name_the_flag_and_range() {
        let g = AccountingPlan::gaussian(1.0).unwrap();
        check(g.calibrate(0.0, 1e-5), "--epsilon", "> 0");
        check(g.calibrate(-1.0, 1e-5), "--epsilon", "> 0");
        check(g.calibrate(f64::NAN, 1e-5), "--epsilon", "> 0");
        check(g.calibrate(1.0, 0.0), "--delta", "(0, 1)");
        check(g.calibrate(1.0, 1.0), "--delta", "(0, 1)");
        check(g.calibrate(1.0, f64::NAN), "--delta", "(0, 1)");
        check(g.epsilon(0.0, 1e-5), "--noise-multiplier", "> 0");
        check(g.epsilon(f64::NAN, 1e-5), "--noise-multiplier", "> 0");
        check(g.epsilon(-1.0, 1e-5), "--noise-multiplier", "> 0");
        check(
            AccountingPlan::rdp_poisson(0.0, 10),
            "--sampling-rate",
            "(0, 1]",
        );
        check(
            AccountingPlan::rdp_poisson(1.5, 10),
            "--sampling-rate",
            "(0, 1]",
        );
        check(
            AccountingPlan::pld_poisson(f64::NAN, 10),
            "--sampling-rate",
            "(0, 1]",
        );
        check(AccountingPlan::rdp_poisson(0.1, 0), "--steps", "[1, 2^31]");
        check(AccountingPlan::pld_poisson(0.1, 0), "--steps", "[1, 2^31]");
        check(AccountingPlan::gaussian(f64::NAN), "sensitivity", "> 0");
        let r = AccountingPlan::rdp_poisson(0.01, 100).unwrap();
        check(r.epsilon(1.0, 1.5), "--delta", "(0, 1)");
        check(r.accountant().delta(1.0, -0.5), "--epsilon", "≥ 0");
    }

    #[test]
    fn unreachable_target_is_an_error() {
        // A noise multiplier above 1e6 would be needed.
        let g = AccountingPlan::gaussian(1.0).unwrap();
        assert!(matches!(
            g.calibrate(1e-9, 1e-12),
            Err(AccountingError::Unreachable(_))
        ));
    }

    #[test]
    fn ln_ndtr_matches_mpmath() {
        // Oracle: ln Φ(x) at 80 digits (tests/data/analytic_gaussian_reference.py). The error
        // must stay inside the bound the analytic-Gaussian upper bound relies on.
        let text = include_str!("../../tests/data/analytic_gaussian_reference.json");
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut worst = 0.0f64;
        for r in json["ln_ndtr"].as_array().unwrap() {
            let x: f64 = r["x"].as_str().unwrap().parse().unwrap();
            let want: f64 = r["ln_ndtr"].as_str().unwrap().parse().unwrap();
            let got = ln_ndtr(x);
            let err = (got - want).abs();
            assert!(
                err <= ln_ndtr_error(x, 0.0),
                "x = {x}: ln Φ = {got}, want {want}, error {err:e} above its bound"
            );
            // x > 0: relative error of 1 − Φ (= of ln Φ ≈ −(1 − Φ)); x ≤ 0: error of ln Φ
            // relative to max(1, |ln Φ|) (below 1 it is the relative error of Φ itself). Less the
            // rounding of the argument x/√2, which moves 1 − Φ by ≈ x²·u relative.
            let rel = if x > 0.0 {
                err / want.abs()
            } else {
                err / want.abs().max(1.0)
            };
            let input = 2.0 * x * x * f64::EPSILON;
            worst = worst.max(rel - input);
        }
        assert!(worst < ERFC_REL_ERR, "worst relative error {worst:e}");
        // Continuity across the asymptotic switch at −30.
        let (a, b) = (ln_ndtr(-30.0 + 1e-9), ln_ndtr(-30.0 - 1e-9));
        assert!((a - b).abs() < 1e-6 * a.abs());
    }

    #[test]
    fn mechanism_seed_depends_on_the_mechanism_only() {
        use lrmf_linalg::{DenseLower, LinearOperator, LowerTriangular, ToeplitzLower};
        let toep = |c: Vec<f64>| LowerTriangular::Toeplitz(ToeplitzLower::new(6, c).unwrap());
        let c = toep(vec![1.0, 0.5, 0.25]);
        let s = mechanism_seed(&c, 3, 1.2, 1e-5);
        // Deterministic, and equal for the same matrix given another way.
        assert_eq!(s, mechanism_seed(&toep(vec![1.0, 0.5, 0.25]), 3, 1.2, 1e-5));
        assert_eq!(
            mechanism_seed(&LowerTriangular::Identity { n: 6 }, 3, 1.2, 1e-5),
            mechanism_seed(&toep(vec![1.0]), 3, 1.2, 1e-5)
        );
        // Every input moves it.
        let dense = LowerTriangular::Dense(DenseLower::new(c.to_dense()).unwrap());
        for other in [
            mechanism_seed(&toep(vec![1.0, 0.5, 0.26]), 3, 1.2, 1e-5),
            mechanism_seed(&c, 2, 1.2, 1e-5),
            mechanism_seed(&c, 3, 1.3, 1e-5),
            mechanism_seed(&c, 3, 1.2, 1e-6),
            mechanism_seed(&dense, 3, 1.2, 1e-5),
        ] {
            assert_ne!(s, other);
        }
        // Pinned: the hash is stable across versions (change the tag when the content changes).
        assert_eq!(
            mechanism_seed(&LowerTriangular::Identity { n: 4 }, 2, 1.0, 1e-5),
            // Python: sha256(b"lrmf mechanism_seed v1" + pack("<Q", 4) + b"toeplitz"
            //   + pack("<4d", 1, 0, 0, 0) + pack("<Q", 2) + pack("<d", 1.0) + pack("<d", 1e-5)).
            0x460f_1e0d_9d4d_bd7b
        );
    }

    #[test]
    fn reports_say_which_sampling_they_hold_for() {
        let g = AccountingPlan::gaussian(2.0).unwrap();
        let r = g.epsilon(1.0, 1e-5).unwrap();
        assert!(r.sampling.starts_with("no amplification"));
        assert_eq!(r.noise_std, 2.0);
        assert_eq!(r.accountant, "gaussian");
        let p = AccountingPlan::rdp_poisson(0.01, 10).unwrap();
        assert_eq!(p.sampling(), Sampling::Poisson { q: 0.01 });
        assert!(p.epsilon(1.0, 1e-5).unwrap().sampling.contains("poisson"));
    }
}
