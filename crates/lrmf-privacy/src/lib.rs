//! Sensitivity under b-min-separation and privacy accounting (analytic Gaussian, RDP, PLD,
//! Monte Carlo balls-in-bins), each with a privacy contract.

pub mod accounting;
pub mod sensitivity;

pub use sensitivity::{Participation, Sensitivity, SensitivityError, SensitivityKind, sensitivity};
