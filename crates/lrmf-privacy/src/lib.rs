//! Sensitivity under b-min-separation and privacy accounting (analytic Gaussian, RDP, PLD,
//! Monte Carlo balls-in-bins), each with a privacy contract.
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
