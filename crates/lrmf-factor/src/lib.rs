//! Matrix factorizations `W = B·C` of the training workload, and their errors (MATH.md §4–§6).
//!
//! ```
//! use lrmf_factor::{MechanismSpec, Method, errors};
//! use lrmf_schedule::Kind;
//!
//! // lr-BISR, band 8, for 256 steps of an exponentially decaying schedule, 4 epochs of 64.
//! let mut spec = MechanismSpec::new(256);
//! spec.schedule = Kind::Exponential;
//! spec.lr_decay = 0.1;
//! spec.method = Method::LrBisr;
//! spec.band = Some(8);
//! spec.min_sep = Some(64);
//! spec.participations = 4;
//! let m = spec.validate()?; // every range checked here, naming the field at fault
//! let f = m.factorize()?;
//! let e = errors(m.workload(), &f, m.participation())?;
//! assert!(e.max_se >= e.mean_se);
//!
//! spec.band = Some(300);
//! let err = spec.validate().unwrap_err();
//! assert_eq!(err.field(), Some(lrmf_factor::Field::Band));
//! # Ok::<(), lrmf_factor::FactorError>(())
//! ```
//!
//! A [`Factorizer`] turns a [`Workload`](lrmf_workload::Workload) into a [`Factorization`], whose
//! strategy `C` is a structured [`LowerTriangular`](lrmf_linalg::LowerTriangular); `B = W·C⁻¹` is
//! never stored but evaluated through the structure ([`metrics`]). The built-in methods:
//!
//! | method | C | memory of C |
//! |---|---|---|
//! | identity (DP-SGD) | I | O(1) |
//! | sqrt / lr-sqrt | `Toep(√T)` / `Toep(√T^α)` | O(n) |
//! | bsr / lr-bsr | first p coefficients of `√T` / `√T^α` | O(p) |
//! | bisr / lr-bisr | `Toep(first p coefficients of (√T)⁻¹)⁻¹` (band on C⁻¹) | O(p) |
//! | dense-sqrt | `W^{1/2}` (triangular Schur) | O(n²) |
//! | bandmf / lr-bandmf | optimized column-normalized banded C, p bands (MATH.md §5b) | O(n·p) |
//! | bandinv / lr-bandinv | `Toep(d)⁻¹`, d optimized (p coefficients, MATH.md §5b) | O(p) |
//! | blt / lr-blt | `Toep(c)`, `c(x) = 1 + Σ_i ω_i x/(1 − θ_i x)`, θ, ω optimized (d ≤ 10 buffers) | O(d) |
//! | dense-opt / lr-dense-opt | the optimal dense C for single participation, mean-se | O(n²) |
//!
//! T is the constant-rate Toeplitz series of the workload; `T^α_k = α^k T_k` carries the schedule
//! (exactly for the exponential schedule, as the geometric surrogate α = β^{1/(n−1)} otherwise).
//! The optimized methods ([`Method::is_optimized`]) minimize
//! `sens(C)²·agg_t ‖B[t, :]‖²`: the plain form on the constant-rate workload, the lr- form on
//! the true W (MATH.md §5b).

mod error;
mod factorize;
mod method;
pub mod metrics;
mod objective;
mod optimize;
mod spec;

pub use error::{FactorError, Field};
pub use factorize::{FactorSpec, Factorization, Factorizer, MAX_DENSE_N, MAX_DENSE_OPT_N};
pub use method::Method;
pub use metrics::{Errors, errors, lower_bound};
pub use objective::{Objective, OptimizeInfo};
pub use optimize::blt::{MAX_BLT_N, MAX_BUFFERS};
pub use spec::{Mechanism, MechanismSpec};

/// The README's Rust example, compiled and run as a doctest (so it cannot go stale).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
