//! Validation of a [`TrainConfig`], split by table, run once per run: [`TrainConfig::validate`]
//! returns what it established (the run's shape and the validated mechanism) so the trainer
//! builds nothing twice.
//!
//! The mechanism's own ranges (schedule, momentum, weight decay, method, band, participation)
//! are not checked here but by [`MechanismSpec::validate`], the one place every front end goes
//! through; its typed [`Field`] is named here by its TOML key ([`field_key`]).

use lrmf_factor::{FactorError, Field, Mechanism, MechanismSpec, Method};

use super::{AccountantKind, ModelKind, PrivacyMode, RunShape, TrainConfig, cfg_err};
use crate::Result;
use crate::sampler::Batching;

/// What validating a config establishes.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Sizes and steps of the run.
    pub shape: RunShape,
    /// The run's mechanism: n = k·b steps, b-min-separation with k = epochs participations.
    pub mechanism: Mechanism,
}

/// The TOML key of a mechanism field: the trainer's name for what the CLI calls `--flag`.
/// `schedule_file`: the schedule comes from `[schedule] file` (its rates are that key's).
pub fn field_key(field: Field, schedule_file: bool) -> &'static str {
    match field {
        Field::Steps | Field::Participations => "training.epochs",
        Field::MinSep => "training.batch_size",
        Field::Schedule if schedule_file => "schedule.file",
        Field::Schedule => "schedule.kind",
        Field::LrDecay => "schedule.lr_decay",
        Field::Warmup => "schedule.warmup_steps",
        Field::Momentum => "training.momentum",
        Field::WeightDecay => "training.weight_decay",
        Field::Method => "privacy.method",
        Field::Band => "privacy.band",
        Field::Objective => "privacy.objective",
        Field::Buffers => "privacy.buffers",
    }
}

/// A workload range error (μ, λ, the rates) under its TOML key: what the optimizer reports when
/// built with an [`UpdateRule`](crate::optimizer::UpdateRule) the config did not check.
pub(crate) fn workload_error(e: lrmf_workload::WorkloadError) -> crate::TrainError {
    let lrmf_workload::WorkloadError::Invalid { flag, message } = e;
    let field = Field::of_name(flag).unwrap_or(Field::Schedule);
    cfg_err(field_key(field, false), message)
}

impl TrainConfig {
    /// Every check but the data files: ranges, combinations, band ≤ steps, the schedule file.
    /// One error, naming the key and the allowed range. O(n) (the schedule and the workload;
    /// nothing is factorized).
    pub fn validate(&self) -> Result<Validated> {
        self.validate_data()?;
        self.validate_model()?;
        self.validate_training()?;
        self.validate_privacy()?;
        let shape = self.shape();
        let mechanism = self
            .mechanism_spec(&shape)?
            .validate()
            .map_err(|e| self.field_error(e))?;
        Ok(Validated { shape, mechanism })
    }

    /// The mechanism the config describes: n = epochs × steps per epoch, min-separation b =
    /// steps per epoch, k = epochs participations (what the balls-in-bins sampler guarantees).
    fn mechanism_spec(&self, shape: &RunShape) -> Result<MechanismSpec> {
        let p = &self.privacy;
        Ok(MechanismSpec {
            steps: shape.total_steps,
            schedule: self.schedule.kind()?,
            lr_decay: self.schedule.lr_decay,
            warmup: self.schedule.warmup_steps,
            momentum: self.training.momentum,
            weight_decay: self.training.weight_decay,
            method: p.method,
            band: p.band,
            objective: p.objective.unwrap_or_default(),
            buffers: p.buffers,
            min_sep: Some(shape.steps_per_epoch),
            participations: shape.epochs,
        })
    }

    /// A mechanism error under its TOML key (a numerical failure under `privacy.method`).
    pub(crate) fn field_error(&self, e: FactorError) -> crate::TrainError {
        match e.field() {
            Some(f) => cfg_err(field_key(f, self.schedule.file.is_some()), e.message()),
            None => cfg_err("privacy.method", e.to_string()),
        }
    }

    fn validate_data(&self) -> Result<()> {
        let d = &self.data;
        let (max_train, max_test) = d.dataset.full_sizes().unwrap_or((10_000_000, 10_000_000));
        for (key, v, max) in [
            ("data.train_examples", d.train_examples, max_train),
            ("data.test_examples", d.test_examples, max_test),
        ] {
            if let Some(v) = v
                && !(1..=max).contains(&v)
            {
                return Err(cfg_err(key, format!("must be in 1..={max}, got {v}")));
            }
        }
        d.validate_validation()?;
        if !d.dataset.is_text() {
            for (key, v) in [
                ("data.max_len", d.max_len),
                ("data.vocab_size", d.vocab_size),
            ] {
                if v.is_some() {
                    return Err(cfg_err(
                        key,
                        format!("only applies to text data sets, not {}", d.dataset.name()),
                    ));
                }
            }
            return Ok(());
        }
        if !(1..=100_000).contains(&d.max_len()) {
            return Err(cfg_err(
                "data.max_len",
                format!("must be in 1..=100000, got {}", d.max_len()),
            ));
        }
        if !(4..=1_000_000).contains(&d.vocab_size()) {
            return Err(cfg_err(
                "data.vocab_size",
                format!("must be in 4..=1000000, got {}", d.vocab_size()),
            ));
        }
        Ok(())
    }

    /// `[training]` beyond the workload (μ and λ are the mechanism's).
    fn validate_training(&self) -> Result<()> {
        let t = &self.training;
        let (num_train, _) = self.data.sizes();
        if !(1..=10_000).contains(&t.epochs) {
            return Err(cfg_err(
                "training.epochs",
                format!("must be in 1..=10000, got {}", t.epochs),
            ));
        }
        if !(1..=num_train).contains(&t.batch_size) {
            return Err(cfg_err(
                "training.batch_size",
                format!(
                    "must be in 1..={num_train} (the number of training examples), got {}",
                    t.batch_size
                ),
            ));
        }
        crate::optimizer::check_learning_rate(t.learning_rate)?;
        if t.eval_batch_size == 0 {
            return Err(cfg_err("training.eval_batch_size", "must be ≥ 1, got 0"));
        }
        let total = self.shape().total_steps;
        if t.checkpoint_every > total {
            return Err(cfg_err(
                "training.checkpoint_every",
                format!(
                    "must be in 0..={total} (total steps), got {}",
                    t.checkpoint_every
                ),
            ));
        }
        Ok(())
    }

    /// `[privacy]` beyond the mechanism: the band only with a banded method, and the keys of
    /// each mode.
    fn validate_privacy(&self) -> Result<()> {
        let p = &self.privacy;
        if p.band.is_some() && !p.method.is_banded() {
            let banded: Vec<&str> = Method::ALL
                .iter()
                .filter(|m| m.is_banded())
                .map(|m| m.name())
                .collect();
            return Err(cfg_err(
                "privacy.band",
                format!("only applies to {}, not {}", banded.join(", "), p.method),
            ));
        }
        match p.mode {
            PrivacyMode::NonPrivate => {
                for (key, set) in [
                    ("privacy.clip_norm", p.clip_norm.is_some()),
                    ("privacy.epsilon", p.epsilon.is_some()),
                    ("privacy.delta", p.delta.is_some()),
                    ("privacy.noise_multiplier", p.noise_multiplier.is_some()),
                ] {
                    if set {
                        return Err(cfg_err(
                            key,
                            "must be absent with mode = \"non-private\" (no clipping, no noise)",
                        ));
                    }
                }
                Ok(())
            }
            PrivacyMode::Private => {
                self.validate_clip_and_delta()?;
                self.validate_accountant()?;
                self.validate_target()
            }
        }
    }

    fn validate_clip_and_delta(&self) -> Result<()> {
        let p = &self.privacy;
        match p.clip_norm {
            Some(c) if c.is_finite() && c > 0.0 => {}
            Some(c) => {
                return Err(cfg_err(
                    "privacy.clip_norm",
                    format!("must be finite and > 0, got {c}"),
                ));
            }
            None => {
                return Err(cfg_err(
                    "privacy.clip_norm",
                    "is required in private mode (> 0)",
                ));
            }
        }
        match p.delta {
            Some(delta) if delta > 0.0 && delta < 1.0 => Ok(()),
            Some(delta) => Err(cfg_err(
                "privacy.delta",
                format!("must be in (0, 1), got {delta}"),
            )),
            None => Err(cfg_err(
                "privacy.delta",
                "is required in private mode, in (0, 1)",
            )),
        }
    }

    fn validate_accountant(&self) -> Result<()> {
        let p = &self.privacy;
        if p.accountant.is_poisson() {
            return Err(cfg_err(
                "privacy.accountant",
                format!(
                    "{} holds for DP-SGD with Poisson sampling, which the trainer does not run (its batches are b-min-separated); use \"gaussian\" or \"mc-bnb\"",
                    p.accountant
                ),
            ));
        }
        let mc = p.accountant == AccountantKind::McBnb;
        if mc && p.sampling != Batching::BallsInBins {
            return Err(cfg_err(
                "privacy.accountant",
                "mc-bnb holds only for sampling = \"balls-in-bins\"",
            ));
        }
        if !mc && (p.mc_samples.is_some() || p.mc_confidence.is_some()) {
            return Err(cfg_err(
                "privacy.mc_samples",
                "mc_samples and mc_confidence only apply to accountant = \"mc-bnb\"",
            ));
        }
        if let Some(s) = p.mc_samples
            && !(1..=100_000_000).contains(&s)
        {
            return Err(cfg_err(
                "privacy.mc_samples",
                format!("must be in 1..=100000000, got {s}"),
            ));
        }
        if let Some(c) = p.mc_confidence
            && !(c > 0.0 && c < 1.0)
        {
            return Err(cfg_err(
                "privacy.mc_confidence",
                format!("must be in (0, 1), got {c}"),
            ));
        }
        Ok(())
    }

    /// Exactly one of a target ε (calibrated) and a noise multiplier.
    fn validate_target(&self) -> Result<()> {
        let p = &self.privacy;
        match (p.epsilon, p.noise_multiplier) {
            (Some(_), Some(_)) => Err(cfg_err(
                "privacy.noise_multiplier",
                "give either epsilon (calibrated) or noise_multiplier, not both",
            )),
            (None, None) => Err(cfg_err(
                "privacy.epsilon",
                "private mode needs a target epsilon in (0, 100] or a noise_multiplier > 0",
            )),
            (Some(eps), None) if !(eps > 0.0 && eps <= 100.0) => Err(cfg_err(
                "privacy.epsilon",
                format!("must be in (0, 100], got {eps}"),
            )),
            (None, Some(z)) if !(z.is_finite() && z > 0.0) => Err(cfg_err(
                "privacy.noise_multiplier",
                format!("must be finite and > 0, got {z}"),
            )),
            _ => Ok(()),
        }
    }

    fn validate_model(&self) -> Result<()> {
        let m = &self.model;
        let text = self.data.dataset.is_text();
        let kind = m.kind.name();
        if (m.kind == ModelKind::Text) != text {
            return Err(cfg_err(
                "model.kind",
                format!(
                    "{kind} does not fit the {} data set (text data: text; image data: cnn, mlp, logistic)",
                    self.data.dataset.name()
                ),
            ));
        }
        let not_for = |key: &str, set: bool, allowed: &[ModelKind]| -> Result<()> {
            if set && !allowed.contains(&m.kind) {
                let names: Vec<&str> = allowed.iter().map(|k| k.name()).collect();
                return Err(cfg_err(
                    key,
                    format!("only applies to kind = {}, not {kind}", names.join(" or ")),
                ));
            }
            Ok(())
        };
        not_for("model.channels", m.channels.is_some(), &[ModelKind::Cnn])?;
        not_for(
            "model.group_norm",
            m.group_norm.is_some(),
            &[ModelKind::Cnn],
        )?;
        not_for("model.groups", m.groups.is_some(), &[ModelKind::Cnn])?;
        not_for(
            "model.hidden",
            m.hidden.is_some(),
            &[ModelKind::Cnn, ModelKind::Mlp],
        )?;
        not_for("model.embed_dim", m.embed_dim.is_some(), &[ModelKind::Text])?;
        let in_range = |key: &str, v: usize| -> Result<()> {
            if (1..=65_536).contains(&v) {
                Ok(())
            } else {
                Err(cfg_err(
                    key,
                    format!("widths must be in 1..=65536, got {v}"),
                ))
            }
        };
        for &w in m.channels.iter().flatten() {
            in_range("model.channels", w)?;
        }
        for &w in m.hidden.iter().flatten() {
            in_range("model.hidden", w)?;
        }
        if let Some(e) = m.embed_dim {
            in_range("model.embed_dim", e)?;
        }
        if m.kind == ModelKind::Cnn {
            if m.hidden.as_ref().is_some_and(|h| h.len() > 1) {
                return Err(cfg_err(
                    "model.hidden",
                    "cnn takes at most one hidden width, e.g. [256]",
                ));
            }
            let ch = self.cnn_channels();
            let g = self.cnn_groups();
            if self.model.group_norm.unwrap_or(true) && (g == 0 || ch.iter().any(|c| c % g != 0)) {
                return Err(cfg_err(
                    "model.groups",
                    format!("must be ≥ 1 and divide every width {ch:?}, got {g}"),
                ));
            }
        }
        Ok(())
    }
}
