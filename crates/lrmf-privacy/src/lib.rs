//! Sensitivity under b-min-separation and privacy accounting (analytic Gaussian, RDP, PLD,
//! Monte Carlo balls-in-bins), each with a privacy contract.
//!
//! ```
//! use lrmf_linalg::LowerTriangular;
//! use lrmf_privacy::accounting::AccountingPlan;
//! use lrmf_privacy::{Participation, sensitivity};
//!
//! // DP-SGD (C = I) over 100 steps, every example in at most 4 steps at least 25 apart.
//! let p = Participation::new(100, Some(25), 4)?;
//! let sens = sensitivity(&LowerTriangular::Identity { n: 100 }, p)?;
//! assert!((sens.value - 2.0).abs() < 1e-12); // √k
//! // The noise multiplier for (ε, δ) = (8, 1e-5) without amplification.
//! let plan = AccountingPlan::gaussian(sens.value)?;
//! let report = plan.calibrate(8.0, 1e-5)?;
//! assert!(report.epsilon <= 8.0 && report.noise_multiplier > 0.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Sensitivity is the maximum over participation sets **and** over the example's gradients
//! (one unit vector per participation): summing C's columns (aligned gradients) is the worst
//! case only when CᵀC ≥ 0 on the columns that can share a set, so [`sensitivity()`] claims
//! "exact" only where that is certified (or k ≤ 2, where G₁₁ + G₂₂ + 2|G₁₂| is exact) and
//! otherwise returns a bound that holds for signed CᵀC, labelled `upper-bound` (MATH.md §5,
//! last bullet; see the [`sensitivity`](mod@sensitivity) module doc).

pub mod accounting;
pub mod sensitivity;

pub use sensitivity::{Participation, Sensitivity, SensitivityError, SensitivityKind, sensitivity};
