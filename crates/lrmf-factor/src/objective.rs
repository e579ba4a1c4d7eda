//! What the optimized methods minimize (MATH.md §5b), and what an optimization reports.

use crate::error::{FactorError, Field, invalid};
use std::fmt;
use std::str::FromStr;

/// The error aggregate an optimized strategy minimizes: `L = sens(C)²·agg_t ‖B[t, :]‖²`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Objective {
    /// agg = mean over steps: MeanSE².
    #[default]
    MeanSe,
    /// agg = max over steps: MaxSE².
    MaxSe,
}

impl Objective {
    /// Both objectives.
    pub const ALL: [Objective; 2] = [Objective::MeanSe, Objective::MaxSe];

    /// The command-line name (`mean-se`, `max-se`).
    pub fn name(&self) -> &'static str {
        match self {
            Objective::MeanSe => "mean-se",
            Objective::MaxSe => "max-se",
        }
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Objective {
    type Err = FactorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Objective::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                invalid(
                    Field::Objective,
                    format!("unknown objective '{s}'; allowed: mean-se, max-se"),
                )
            })
    }
}

/// What an optimizing factorizer reports beside its C (faer's `Info` of a Params/Info/Error
/// triple).
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizeInfo {
    /// The objective minimized.
    pub objective: Objective,
    /// Its final value `sens(C)²·agg_t ‖B[t, :]‖²` on the workload optimized for.
    pub value: f64,
    /// Optimizer iterations taken.
    pub iterations: usize,
    /// Whether the stopping rule was met (false: the iteration limit was hit).
    pub converged: bool,
    /// Wall time of the optimization, in milliseconds.
    pub millis: f64,
}
