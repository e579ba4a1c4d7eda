//! Building the strategy matrix C of each method (MATH.md §4).

use crate::error::{FactorError, Field, invalid};
use crate::optimize;
use crate::optimize::blt::{BltFit, check_buffers, optimize_blt};
use crate::optimize::dense::optimize_dense;
use crate::{Method, Objective, OptimizeInfo};
use lrmf_linalg::series::{self, Algorithm};
use lrmf_linalg::{BltMatrix, DenseLower, LinearOperator, LowerTriangular, ToeplitzLower};
use lrmf_privacy::Participation;
use lrmf_schedule::LrSchedule;
use lrmf_workload::Workload;
use std::time::Instant;

/// Largest n for the O(n³) dense methods (`dense-sqrt`, the SVD lower bound).
pub const MAX_DENSE_N: usize = 4096;

/// Largest n for `dense-opt` / `lr-dense-opt`: each of its (typically 10–60) iterations is an
/// O(n³) eigendecomposition.
pub const MAX_DENSE_OPT_N: usize = 2048;

/// Anything that factorizes a workload `W = B·C`: the seam for user-supplied strategies.
pub trait Factorizer {
    /// A short name for reports.
    fn name(&self) -> String;
    /// The factorization of `w` for participation `p` (B is implied: `B = W·C⁻¹` with the true
    /// W). Closed forms ignore `p`; optimized methods minimize their objective under it.
    fn factorize(&self, w: &Workload, p: Participation) -> Result<Factorization, FactorError>;
}

/// A factorization: the strategy C; B is always `W·C⁻¹` with the true workload.
#[derive(Debug, Clone)]
pub struct Factorization {
    /// The method's name.
    pub name: String,
    /// The band p, for banded methods.
    pub band: Option<usize>,
    /// The strategy matrix C.
    pub c: LowerTriangular,
    /// For optimized methods: the objective, its value, iterations and time.
    pub info: Option<OptimizeInfo>,
    /// For BLT methods: the number of buffers d used (given or chosen automatically).
    pub buffers: Option<usize>,
}

/// A built-in method with its parameters: band p and geometric rate α.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactorSpec {
    /// The method.
    pub method: Method,
    /// The band p (required by banded methods, ignored by the others).
    pub band: Option<usize>,
    /// The geometric rate α used by the lr- methods (`T^α_k = α^k T_k`).
    pub alpha: f64,
    /// What the optimized methods minimize (ignored by the closed forms).
    pub objective: Objective,
    /// The number of BLT buffers d (`None`: chosen automatically; ignored by other methods).
    pub buffers: Option<usize>,
}

impl FactorSpec {
    /// A spec with an explicit α (finite, > 0). A banded method without a band is an error.
    pub fn new(method: Method, band: Option<usize>, alpha: f64) -> Result<Self, FactorError> {
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(invalid(
                Field::LrDecay,
                format!("the geometric rate α = {alpha} must be finite and > 0"),
            ));
        }
        let spec = Self {
            method,
            band: if method.is_banded() { band } else { None },
            alpha,
            objective: Objective::default(),
            buffers: None,
        };
        spec.required_band()?;
        Ok(spec)
    }

    /// The same spec minimizing `objective` (for the optimized methods).
    pub fn with_objective(mut self, objective: Objective) -> Self {
        self.objective = objective;
        self
    }

    /// The same spec with `d` BLT buffers.
    pub fn with_buffers(mut self, buffers: Option<usize>) -> Self {
        self.buffers = buffers;
        self
    }

    /// A spec whose α is the schedule's geometric surrogate `β^{1/(n−1)}` (exact for the
    /// exponential schedule).
    pub fn for_schedule(
        method: Method,
        band: Option<usize>,
        schedule: &LrSchedule,
    ) -> Result<Self, FactorError> {
        Self::new(method, band, schedule.geometric_rate())
    }

    /// The band of a banded method (`None` for the others); a banded method without one is an
    /// error.
    fn required_band(&self) -> Result<Option<usize>, FactorError> {
        match (self.method.is_banded(), self.band) {
            (true, None) => Err(invalid(
                Field::Band,
                format!("method {} needs --band p (1 ≤ p ≤ n)", self.method),
            )),
            (true, band) => Ok(band),
            (false, _) => Ok(None),
        }
    }

    /// Every rule on the method's parameters for `n` steps under participation `part`, in this
    /// one place (checked by [`Factorizer::factorize`] and, before any work, by
    /// [`MechanismSpec::validate`](crate::MechanismSpec::validate)): a banded method's band
    /// `1 ≤ p ≤ n` (bandmf: `p ≤ b` when `k > 1`, where its exact sensitivity √k holds), the
    /// method's size limit ([`Method::size_limit`]), BLT buffers in `1..=`[`MAX_BUFFERS`](crate::MAX_BUFFERS),
    /// the dense optimum only for single participation and mean-se. Returns the band.
    pub fn check(&self, n: usize, part: Participation) -> Result<Option<usize>, FactorError> {
        let m = self.method;
        let band = self.required_band()?;
        if let Some(p) = band {
            if p == 0 || p > n {
                return Err(invalid(Field::Band, format!("{p} is outside 1..=n = {n}")));
            }
            if matches!(m, Method::Bandmf | Method::LrBandmf) && part.k() > 1 && p > part.min_sep()
            {
                return Err(invalid(
                    Field::Band,
                    format!(
                        "{m} needs band p ≤ min-sep b when k > 1 (its exact sensitivity √k holds only then); got p = {p} > b = {}",
                        part.min_sep()
                    ),
                ));
            }
        }
        if let Some((max, cost)) = m.size_limit()
            && n > max
        {
            return Err(invalid(
                Field::Steps,
                format!("{m} is {cost}: n = {n} exceeds its limit {max}"),
            ));
        }
        if matches!(m, Method::Blt | Method::LrBlt) {
            check_buffers(self.buffers)?;
        }
        if matches!(m, Method::DenseOpt | Method::LrDenseOpt) {
            if part.k() > 1 {
                return Err(invalid(
                    Field::Participations,
                    format!(
                        "{m} is the optimum for single participation (sensitivity = max column norm, exact); multi-participation ({} participations) is not supported, use --participations 1",
                        part.k()
                    ),
                ));
            }
            if self.objective != Objective::MeanSe {
                return Err(invalid(
                    Field::Objective,
                    format!("{m} optimizes mean-se only, got {}", self.objective),
                ));
            }
        }
        Ok(band)
    }
}

impl Factorizer for FactorSpec {
    fn name(&self) -> String {
        self.method.name().to_string()
    }

    /// Cost: identity O(1); sqrt O(n log n); bsr O(p²) (O(p log p) for large p); bisr the same;
    /// dense-sqrt O(n³/6) (n ≤ [`MAX_DENSE_N`]); bandmf O(n²·p) per optimizer iteration, bandinv
    /// O(n·p + n·k) per iteration on geometric schedules (see the modules of `optimize`);
    /// blt O(n·d²) per objective evaluation; dense-opt O(n³) per iteration (n ≤
    /// [`MAX_DENSE_OPT_N`]).
    fn factorize(&self, w: &Workload, part: Participation) -> Result<Factorization, FactorError> {
        // check() guarantees a band p ∈ 1..=n for the banded methods.
        let p = self.check(w.n(), part)?.unwrap_or(1);
        if matches!(
            self.method,
            Method::Blt | Method::LrBlt | Method::DenseOpt | Method::LrDenseOpt
        ) {
            return self.optimized(w, part);
        }
        let n = w.n();
        let alpha = if self.method.is_lr_aware() {
            self.alpha
        } else {
            1.0
        };
        // T (or T^α) truncated to the length the method needs.
        let series_of = |len: usize| series::scale_powers(&w.toeplitz_series(len), alpha);
        let c = match self.method {
            Method::Identity => LowerTriangular::Identity { n },
            Method::Sqrt | Method::LrSqrt => {
                let s = series::sqrt(&series_of(n), n, Algorithm::Auto)?;
                LowerTriangular::Toeplitz(ToeplitzLower::new(n, s)?)
            }
            Method::Bsr | Method::LrBsr => {
                let s = series::sqrt(&series_of(p), p, Algorithm::Auto)?;
                LowerTriangular::Toeplitz(ToeplitzLower::new(n, s)?)
            }
            Method::Bisr | Method::LrBisr => {
                let d = series::inverse_sqrt(&series_of(p), p, Algorithm::Auto)?;
                LowerTriangular::InverseToeplitz(ToeplitzLower::new(n, d)?)
            }
            Method::DenseSqrt => {
                if n > MAX_DENSE_N {
                    return Err(invalid(
                        Field::Steps,
                        format!("dense-sqrt is O(n³): n = {n} exceeds its limit {MAX_DENSE_N}"),
                    ));
                }
                let wd = DenseLower::new(w.to_dense())?;
                LowerTriangular::Dense(wd.sqrt()?)
            }
            Method::Bandmf | Method::LrBandmf => {
                return optimize::bandmf::factorize(self, w, part, p);
            }
            Method::Bandinv | Method::LrBandinv => {
                return optimize::bandinv::factorize(self, w, part, p);
            }
            m => unreachable!("{m} is built by FactorSpec::optimized"),
        };
        Ok(Factorization {
            name: self.name(),
            band: self.band,
            c,
            info: None,
            buffers: None,
        })
    }
}

impl FactorSpec {
    /// The optimized methods (MATH.md §5b): `blt`/`dense-opt` optimize on the constant-rate
    /// workload, their lr- forms on the true W; B is always formed with the true W.
    fn optimized(&self, w: &Workload, p: Participation) -> Result<Factorization, FactorError> {
        let start = Instant::now();
        let n = w.n();
        let (c, value, iterations, converged, buffers) = match self.method {
            Method::Blt | Method::LrBlt => {
                let fit = self.blt_fit(w, p)?;
                let d = fit.theta.len();
                let c = BltMatrix::new(n, fit.theta, fit.omega)?;
                (
                    LowerTriangular::Blt(c),
                    fit.value,
                    fit.iterations,
                    fit.converged,
                    Some(d),
                )
            }
            _ => {
                let target = if self.method == Method::DenseOpt {
                    w.constant_rate()
                } else {
                    w.clone()
                };
                let fit = optimize_dense(&target)?;
                (
                    LowerTriangular::Dense(fit.c),
                    fit.value,
                    fit.iterations,
                    fit.converged,
                    None,
                )
            }
        };
        Ok(Factorization {
            name: self.name(),
            band: None,
            c,
            info: Some(OptimizeInfo {
                objective: self.objective,
                value,
                iterations,
                converged,
                millis: start.elapsed().as_secs_f64() * 1e3,
            }),
            buffers,
        })
    }

    /// blt: optimized on the constant-rate workload from the sqrt coefficients. lr-blt: optimized
    /// on the true W from the lr-sqrt coefficients and from the blt optimum (so it never loses to
    /// blt on its objective); identical to blt when the schedule is constant.
    fn blt_fit(&self, w: &Workload, p: Participation) -> Result<BltFit, FactorError> {
        let n = w.n();
        let plain = w.constant_rate();
        let sqrt_of = |alpha: f64| -> Result<Vec<f64>, FactorError> {
            let t = series::scale_powers(&w.toeplitz_series(n), alpha);
            Ok(series::sqrt(&t, n, Algorithm::Auto)?)
        };
        let blt = optimize_blt(
            &plain,
            p,
            self.objective,
            self.buffers,
            &sqrt_of(1.0)?,
            None,
        )?;
        if self.method == Method::Blt || w.chi().iter().all(|&x| x == 1.0) {
            return Ok(blt);
        }
        let mut lr = optimize_blt(
            w,
            p,
            self.objective,
            self.buffers,
            &sqrt_of(self.alpha)?,
            Some(&blt),
        )?;
        lr.iterations += blt.iterations;
        Ok(lr)
    }
}
