//! The error type of the factorizers, and the [`Field`] each invalid input names.
//!
//! A field is typed, not a flag string: the CLI prints it as its flag (`--band`), the trainer's
//! TOML front end as its key (`privacy.band`), both from the same error.

use thiserror::Error;

/// A parameter of a factorization mechanism ([`MechanismSpec`](crate::MechanismSpec)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The number of steps n.
    Steps,
    /// The learning-rate schedule χ (its kind, or the rates of its file).
    Schedule,
    /// The final rate β of the decaying schedules.
    LrDecay,
    /// Warm-up steps.
    Warmup,
    /// Heavy-ball momentum μ.
    Momentum,
    /// Multiplicative weight decay λ.
    WeightDecay,
    /// The factorization method.
    Method,
    /// The band p of the banded methods.
    Band,
    /// What the optimized methods minimize.
    Objective,
    /// BLT buffers d.
    Buffers,
    /// The minimum separation b between participations.
    MinSep,
    /// The maximum participations k.
    Participations,
}

impl Field {
    /// Every field.
    pub const ALL: [Field; 12] = [
        Field::Steps,
        Field::Schedule,
        Field::LrDecay,
        Field::Warmup,
        Field::Momentum,
        Field::WeightDecay,
        Field::Method,
        Field::Band,
        Field::Objective,
        Field::Buffers,
        Field::MinSep,
        Field::Participations,
    ];

    /// The parameter's name, as the CLI flag spells it without dashes (`lr-decay`) and as the
    /// lower crates (`lrmf-schedule`, `lrmf-workload`, `lrmf-privacy`) name it in their errors.
    pub fn name(self) -> &'static str {
        match self {
            Field::Steps => "n",
            Field::Schedule => "schedule",
            Field::LrDecay => "lr-decay",
            Field::Warmup => "warmup",
            Field::Momentum => "momentum",
            Field::WeightDecay => "weight-decay",
            Field::Method => "method",
            Field::Band => "band",
            Field::Objective => "objective",
            Field::Buffers => "buffers",
            Field::MinSep => "min-sep",
            Field::Participations => "participations",
        }
    }

    /// The field a lower crate's error names (`None` for a name outside the mechanism).
    pub fn of_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Why a factorization or its evaluation failed; every invalid input names its [`Field`].
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FactorError {
    /// A parameter is outside its allowed range.
    #[error("invalid --{}: {message}", field.name())]
    Invalid {
        /// The parameter.
        field: Field,
        /// What is allowed.
        message: String,
    },
    /// A structured-algebra step failed.
    #[error(transparent)]
    Linalg(#[from] lrmf_linalg::LinalgError),
    /// The participation is invalid.
    #[error(transparent)]
    Sensitivity(#[from] lrmf_privacy::SensitivityError),
}

impl FactorError {
    /// The parameter to fix, when the error is the input's.
    pub fn field(&self) -> Option<Field> {
        match self {
            FactorError::Invalid { field, .. } => Some(*field),
            FactorError::Sensitivity(lrmf_privacy::SensitivityError::Invalid { flag, .. }) => {
                Field::of_name(flag)
            }
            FactorError::Linalg(_) => None,
        }
    }

    /// What is wrong and what is allowed, without the field's name.
    pub fn message(&self) -> String {
        match self {
            FactorError::Invalid { message, .. } => message.clone(),
            FactorError::Sensitivity(lrmf_privacy::SensitivityError::Invalid {
                message, ..
            }) => message.clone(),
            FactorError::Linalg(e) => e.to_string(),
        }
    }
}

pub(crate) fn invalid(field: Field, message: impl Into<String>) -> FactorError {
    FactorError::Invalid {
        field,
        message: message.into(),
    }
}

/// A lower crate's `Invalid { flag, message }` as the field it names, `default` when the name
/// is not a mechanism field.
pub(crate) fn lift(flag: &str, message: &str, default: Field) -> FactorError {
    invalid(Field::of_name(flag).unwrap_or(default), message)
}
