//! The names of the built-in factorization methods.

use crate::error::{FactorError, Field, invalid};
use std::fmt;
use std::str::FromStr;

/// A built-in factorization method (MATH.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// C = I: DP-SGD with independent noise.
    Identity,
    /// C = Toep(√T).
    Sqrt,
    /// C = Toep(√T^α), the paper's C_α.
    LrSqrt,
    /// Banded C: the first p coefficients of √T.
    Bsr,
    /// Banded C: the first p coefficients of √T^α.
    LrBsr,
    /// Banded C⁻¹: the first p coefficients of (√T)⁻¹.
    Bisr,
    /// Banded C⁻¹: the first p coefficients of (√T^α)⁻¹.
    LrBisr,
    /// C = W^{1/2}, the principal square root of the true workload (dense, O(n³)).
    DenseSqrt,
    /// Optimized column-normalized banded C (p bands, n·p entries) for the constant-rate workload.
    Bandmf,
    /// Optimized column-normalized banded C for the true workload (schedule, momentum, decay).
    LrBandmf,
    /// Optimized banded C⁻¹ = Toep(d), p coefficients, for the constant-rate workload.
    Bandinv,
    /// Optimized banded C⁻¹ = Toep(d) for the true workload.
    LrBandinv,
    /// BLT C (d buffers) optimized on the constant-rate workload (MATH.md §5b).
    Blt,
    /// BLT C (d buffers) optimized on the true workload (schedule, momentum, weight decay).
    LrBlt,
    /// The optimal dense C for the constant-rate workload (single participation, mean-se).
    DenseOpt,
    /// The optimal dense C for the true workload (single participation, mean-se).
    LrDenseOpt,
}

impl Method {
    /// Every method, in the order of the paper's tables.
    pub const ALL: [Method; 16] = [
        Method::Identity,
        Method::Sqrt,
        Method::LrSqrt,
        Method::Bsr,
        Method::LrBsr,
        Method::Bisr,
        Method::LrBisr,
        Method::DenseSqrt,
        Method::Bandmf,
        Method::LrBandmf,
        Method::Bandinv,
        Method::LrBandinv,
        Method::Blt,
        Method::LrBlt,
        Method::DenseOpt,
        Method::LrDenseOpt,
    ];

    /// The command-line name.
    pub const fn name(&self) -> &'static str {
        match self {
            Method::Identity => "identity",
            Method::Sqrt => "sqrt",
            Method::LrSqrt => "lr-sqrt",
            Method::Bsr => "bsr",
            Method::LrBsr => "lr-bsr",
            Method::Bisr => "bisr",
            Method::LrBisr => "lr-bisr",
            Method::DenseSqrt => "dense-sqrt",
            Method::Bandmf => "bandmf",
            Method::LrBandmf => "lr-bandmf",
            Method::Bandinv => "bandinv",
            Method::LrBandinv => "lr-bandinv",
            Method::Blt => "blt",
            Method::LrBlt => "lr-blt",
            Method::DenseOpt => "dense-opt",
            Method::LrDenseOpt => "lr-dense-opt",
        }
    }

    /// True for the methods that need a band p.
    pub fn is_banded(&self) -> bool {
        matches!(
            self,
            Method::Bsr
                | Method::LrBsr
                | Method::Bisr
                | Method::LrBisr
                | Method::Bandmf
                | Method::LrBandmf
                | Method::Bandinv
                | Method::LrBandinv
        )
    }

    /// True for the O(n³) dense methods, limited to n ≤ their maximum.
    pub fn is_dense(&self) -> bool {
        matches!(
            self,
            Method::DenseSqrt | Method::DenseOpt | Method::LrDenseOpt
        )
    }

    /// True for the learning-rate-aware methods.
    pub fn is_lr_aware(&self) -> bool {
        matches!(
            self,
            Method::LrSqrt
                | Method::LrBsr
                | Method::LrBisr
                | Method::LrBandmf
                | Method::LrBandinv
                | Method::LrBlt
                | Method::LrDenseOpt
        )
    }

    /// True for the methods that run an optimizer (MATH.md §5b; they report an
    /// [`OptimizeInfo`](crate::OptimizeInfo)); the others are closed forms.
    pub fn is_optimized(&self) -> bool {
        matches!(
            self,
            Method::Bandmf
                | Method::LrBandmf
                | Method::Bandinv
                | Method::LrBandinv
                | Method::Blt
                | Method::LrBlt
                | Method::DenseOpt
                | Method::LrDenseOpt
        )
    }

    /// The largest n the method takes, and why (its cost), for the methods with a size limit:
    /// the one place that limit is checked is [`FactorSpec::check`](crate::FactorSpec::check).
    pub fn size_limit(&self) -> Option<(usize, &'static str)> {
        match self {
            Method::DenseSqrt => Some((crate::MAX_DENSE_N, "O(n³)")),
            Method::DenseOpt | Method::LrDenseOpt => {
                Some((crate::MAX_DENSE_OPT_N, "O(n³) per iteration"))
            }
            Method::Bandmf | Method::LrBandmf => Some((
                crate::MAX_DENSE_N,
                "O(n²·p) time and O(n²) memory per iteration (bandinv has no such limit)",
            )),
            Method::Blt | Method::LrBlt => {
                Some((crate::MAX_BLT_N, "O(n·d²) per objective evaluation"))
            }
            _ => None,
        }
    }

    /// The schedule-blind counterpart of an lr- method (itself otherwise).
    pub fn plain(&self) -> Method {
        match self {
            Method::LrSqrt => Method::Sqrt,
            Method::LrBsr => Method::Bsr,
            Method::LrBisr => Method::Bisr,
            Method::LrBandmf => Method::Bandmf,
            Method::LrBandinv => Method::Bandinv,
            Method::LrBlt => Method::Blt,
            Method::LrDenseOpt => Method::DenseOpt,
            m => *m,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Compares with the command-line name (`Method::Bisr == "bisr"`).
impl PartialEq<&str> for Method {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl FromStr for Method {
    type Err = FactorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                invalid(
                    Field::Method,
                    format!(
                        "unknown method '{s}'; allowed: {}",
                        Method::ALL.map(|m| m.name()).join(", ")
                    ),
                )
            })
    }
}
