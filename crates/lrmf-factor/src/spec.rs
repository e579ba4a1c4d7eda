//! The mechanism spec: every parameter of a matrix-factorization mechanism — the workload (steps,
//! schedule, momentum, weight decay), the method with its band, objective and buffers, and the
//! participation — in one typed value with one validating constructor.
//!
//! Front ends fill a [`MechanismSpec`] (the CLI from its flags, the trainer from its TOML
//! tables), call [`MechanismSpec::validate`] and name a failing [`Field`] their own way (`--band`,
//! `privacy.band`). Each range rule lives in the crate that owns the quantity and is reached
//! only from here: schedule ranges in `lrmf-schedule`, μ and λ in `lrmf-workload`, the
//! participation in `lrmf-privacy`, the method's band, size limit and options in
//! [`FactorSpec::check`]. Adding a method is one [`Method`] variant and one factorize arm; no
//! front end changes.

use crate::error::{FactorError, Field, lift};
use crate::{FactorSpec, Factorization, Factorizer, Method, Objective};
use lrmf_privacy::{Participation, SensitivityError};
use lrmf_schedule::{Kind, LrSchedule, ScheduleError};
use lrmf_workload::{Workload, WorkloadError};

/// Everything that defines a matrix-factorization mechanism's workload, strategy and
/// participation, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct MechanismSpec {
    /// Number of steps n ≥ 1.
    pub steps: usize,
    /// The shape of the schedule χ (a file's rates already read by the front end).
    pub schedule: Kind,
    /// Final rate β ∈ (0, 1] of the decaying schedules.
    pub lr_decay: f64,
    /// Linear warm-up steps w < n.
    pub warmup: usize,
    /// Heavy-ball momentum μ ∈ [0, 1).
    pub momentum: f64,
    /// Multiplicative weight decay λ ∈ (0, 1].
    pub weight_decay: f64,
    /// The factorization method.
    pub method: Method,
    /// Band p of the banded methods (1 ≤ p ≤ n).
    pub band: Option<usize>,
    /// What the optimized methods minimize.
    pub objective: Objective,
    /// BLT buffers d (`None`: chosen automatically).
    pub buffers: Option<usize>,
    /// Minimum separation b between two participations (needed when k > 1).
    pub min_sep: Option<usize>,
    /// Maximum participations k ≥ 1 of an example.
    pub participations: usize,
}

impl MechanismSpec {
    /// DP-SGD (the identity) over `steps` steps: constant schedule, no momentum, no weight
    /// decay, single participation. Set the other fields to describe another mechanism.
    pub fn new(steps: usize) -> Self {
        Self {
            steps,
            schedule: Kind::Constant,
            lr_decay: 1.0,
            warmup: 0,
            momentum: 0.0,
            weight_decay: 1.0,
            method: Method::Identity,
            band: None,
            objective: Objective::default(),
            buffers: None,
            min_sep: None,
            participations: 1,
        }
    }

    /// The validated mechanism: schedule, workload W (MATH.md §1), participation and the
    /// method's parameters, each checked by its owner; no factorization is computed yet. O(n).
    /// The error names the [`Field`] to fix.
    pub fn validate(&self) -> Result<Mechanism, FactorError> {
        let n = self.steps;
        let schedule = LrSchedule::new(self.schedule.clone(), n, self.lr_decay, self.warmup)
            .map_err(|ScheduleError::Invalid { flag, message }| {
                lift(flag, &message, Field::Schedule)
            })?;
        let workload = Workload::from_schedule(&schedule, self.momentum, self.weight_decay)
            .map_err(|WorkloadError::Invalid { flag, message }| {
                lift(flag, &message, Field::Schedule)
            })?;
        let participation = Participation::new(n, self.min_sep, self.participations).map_err(
            |SensitivityError::Invalid { flag, message }| {
                lift(flag, &message, Field::Participations)
            },
        )?;
        let factor = FactorSpec::for_schedule(self.method, self.band, &schedule)?
            .with_objective(self.objective)
            .with_buffers(self.buffers);
        factor.check(n, participation)?;
        Ok(Mechanism {
            schedule,
            workload,
            participation,
            factor,
        })
    }
}

/// A validated [`MechanismSpec`]: what the factorization, the errors, the sensitivity, the
/// accounting and the noise are built from.
#[derive(Debug, Clone)]
pub struct Mechanism {
    schedule: LrSchedule,
    workload: Workload,
    participation: Participation,
    factor: FactorSpec,
}

impl Mechanism {
    /// The number of steps n.
    pub fn n(&self) -> usize {
        self.workload.n()
    }

    /// The schedule χ.
    pub fn schedule(&self) -> &LrSchedule {
        &self.schedule
    }

    /// The workload `W = Toep(λ^k)·diag(χ)·Toep(μ^k)`.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }

    /// The participation schema (b-min-separation, k participations).
    pub fn participation(&self) -> Participation {
        self.participation
    }

    /// The method with its parameters (band, α, objective, buffers).
    pub fn factor(&self) -> &FactorSpec {
        &self.factor
    }

    /// The same workload and participation with another method and band (objective and
    /// buffers kept), checked by [`FactorSpec::check`]: what `compare` evaluates row by row.
    pub fn with_method(&self, method: Method, band: Option<usize>) -> Result<Self, FactorError> {
        let factor = FactorSpec::for_schedule(method, band, &self.schedule)?
            .with_objective(self.factor.objective)
            .with_buffers(self.factor.buffers);
        factor.check(self.n(), self.participation)?;
        Ok(Self {
            factor,
            ..self.clone()
        })
    }

    /// The strategy C of the method for this workload and participation (MATH.md §4–§5b).
    /// Cost: the method's ([`FactorSpec`]'s `factorize`).
    pub fn factorize(&self) -> Result<Factorization, FactorError> {
        self.factor.factorize(&self.workload, self.participation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field a spec edited by `edit` fails on (`None` when it is valid).
    fn check(edit: impl Fn(&mut MechanismSpec)) -> Option<Field> {
        let mut s = MechanismSpec::new(64);
        edit(&mut s);
        match s.validate() {
            Ok(_) => None,
            Err(e) => {
                assert!(e.to_string().starts_with("invalid --"), "{e}");
                Some(e.field().expect("an input error names its field"))
            }
        }
    }

    #[test]
    fn each_invalid_parameter_names_its_field() {
        assert_eq!(check(|_| {}), None);
        assert_eq!(check(|s| s.steps = 0), Some(Field::Steps));
        assert_eq!(check(|s| s.lr_decay = 1.5), Some(Field::LrDecay));
        assert_eq!(check(|s| s.warmup = 64), Some(Field::Warmup));
        assert_eq!(
            check(|s| s.schedule = Kind::File(vec![1.0; 3])),
            Some(Field::Schedule)
        );
        assert_eq!(check(|s| s.momentum = 1.0), Some(Field::Momentum));
        assert_eq!(check(|s| s.weight_decay = 0.0), Some(Field::WeightDecay));
        assert_eq!(check(|s| s.method = Method::Bisr), Some(Field::Band));
        let banded = |p: usize| {
            move |s: &mut MechanismSpec| {
                s.method = Method::Bsr;
                s.band = Some(p);
            }
        };
        assert_eq!(check(banded(0)), Some(Field::Band));
        assert_eq!(check(banded(65)), Some(Field::Band));
        assert_eq!(check(banded(64)), None);
        assert_eq!(check(|s| s.participations = 2), Some(Field::MinSep));
        assert_eq!(
            check(|s| {
                s.min_sep = Some(16);
                s.participations = 5;
            }),
            Some(Field::Participations)
        );
        assert_eq!(
            check(|s| {
                s.method = Method::Blt;
                s.buffers = Some(0);
            }),
            Some(Field::Buffers)
        );
        assert_eq!(
            check(|s| {
                s.method = Method::DenseOpt;
                s.objective = Objective::MaxSe;
            }),
            Some(Field::Objective)
        );
        assert_eq!(
            check(|s| {
                s.steps = crate::MAX_DENSE_N + 1;
                s.method = Method::DenseSqrt;
            }),
            Some(Field::Steps)
        );
    }

    #[test]
    fn every_field_name_round_trips_and_a_new_method_needs_no_front_end() {
        for f in Field::ALL {
            assert_eq!(Field::of_name(f.name()), Some(f));
        }
        // Every method validates and factorizes through the same two calls.
        for m in Method::ALL {
            let mut s = MechanismSpec::new(16);
            s.method = m;
            s.band = Some(4);
            let mech = s.validate().unwrap();
            let f = mech.factorize().unwrap();
            assert_eq!(f.c.n(), 16, "{m}");
            let other = mech.with_method(Method::Identity, None).unwrap();
            assert_eq!(other.factor().method, Method::Identity);
        }
    }
}
