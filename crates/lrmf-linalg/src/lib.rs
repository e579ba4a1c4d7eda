//! Lower-triangular structured linear algebra for matrix-factorization mechanisms.
//!
//! ```
//! use lrmf_linalg::series::{self, Algorithm};
//!
//! // The square root of the prefix-sum series 1/(1 − x): coefficients C(2k, k)/4^k.
//! let s = series::sqrt(&[1.0; 4], 4, Algorithm::Auto)?;
//! assert!((s[1] - 0.5).abs() < 1e-15 && (s[2] - 0.375).abs() < 1e-15);
//! // Squared again, it gives back the series.
//! let back = series::mul(&s, &s, 4);
//! assert!(back.iter().all(|v| (v - 1.0).abs() < 1e-14));
//! # Ok::<(), lrmf_linalg::LinalgError>(())
//! ```
//!
//! Every matrix in this project is lower-triangular (causal): a step's noise or output may depend
//! only on earlier steps. Three structures cover all the factorizations of the paper:
//!
//! - [`ToeplitzLower`]: `Toep(c)`, the lower-triangular Toeplitz matrix with first column `c`
//!   (a *banded* one when `c` has fewer than `n` entries). Products, inverses and square roots of
//!   such matrices are products, inverses and square roots of truncated power series ([`series`]).
//! - [`BandedLower`]: a general banded lower-triangular matrix (n·p free entries), for BandMF.
//! - [`DenseLower`]: a general lower-triangular matrix (faer), for `dense-sqrt` and for oracles.
//! - [`BltMatrix`]: a buffered linear Toeplitz matrix (rational generating function, d buffers).
//! - [`LowerTriangular`]: the closed set of shapes a factor `C` takes (identity, Toeplitz,
//!   inverse of a Toeplitz, BLT, dense), with `apply`, `apply_transpose`, `solve` and `to_dense`.
//!
//! Everything here is pure, deterministic f64 arithmetic with no IO.

mod banded;
mod blt;
mod dense;
mod error;
pub mod fft;
mod lower;
pub mod series;
mod toeplitz;

pub use banded::BandedLower;
pub use blt::BltMatrix;
pub use dense::DenseLower;
pub use error::LinalgError;
pub use lower::{LinearOperator, LowerTriangular};
pub use toeplitz::ToeplitzLower;

/// Re-export of the dense matrix type used in `to_dense` results.
pub use faer::Mat;
