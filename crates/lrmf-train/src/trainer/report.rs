//! What a run says: its warnings and start info (before the first step), and its summary and
//! release (after the last): `summary.json`, and for a completed run `model.safetensors` +
//! `release.json`, then the secret checkpoint deleted unless kept.

use lrmf_schedule::Schedule;

use super::FIXED_SEED_WARNING;
use super::setup::Session;
use crate::Result;
use crate::config::{PrivacyMode, TrainConfig};
use crate::metrics::{RunInfo, Summary, mean_epoch_loss, write_summary};
use crate::model::DpModel;

impl Session<'_> {
    /// The run's warnings: fixed seed, a schedule outside the theory, the plan's caveats, no
    /// privacy at all.
    pub(super) fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.config.seed.is_some() {
            warnings.push(FIXED_SEED_WARNING.to_string());
        }
        if !self.checked.mechanism.schedule().is_non_increasing() {
            warnings.push(
                "the learning-rate schedule increases somewhere (warm-up): outside the theory of \
                 the paper; the privacy guarantee is unaffected, the error analysis does not apply"
                    .into(),
            );
        }
        match &self.plan {
            Some(p) => warnings.extend(p.warnings.iter().cloned()),
            None => {
                warnings.push("non-private run: no clipping, no noise, NO privacy guarantee".into())
            }
        }
        warnings
    }

    /// What [`Progress::start`](crate::Progress::start) receives.
    pub(super) fn run_info(&self, warnings: &[String]) -> RunInfo {
        RunInfo {
            total_steps: self.shape.total_steps,
            steps_per_epoch: self.shape.steps_per_epoch,
            epochs: self.shape.epochs,
            start_step: self.first_step,
            num_params: self.params.len(),
            epsilon: self.plan.as_ref().map(|p| p.epsilon),
            noise_multiplier: self.plan.as_ref().map(|p| p.noise_multiplier),
            warnings: warnings.to_vec(),
        }
    }

    /// The summary after `steps_done` steps, with the last test evaluation.
    pub(super) fn summary(
        &self,
        steps_done: usize,
        last_eval: Option<(f64, f64)>,
        warnings: Vec<String>,
    ) -> Summary {
        let (config, shape, plan) = (self.config, self.shape, self.plan.as_ref());
        let (t, p) = (&config.training, &config.privacy);
        let private = p.mode == PrivacyMode::Private;
        let diagnostics = config.output.diagnostics;
        let b = shape.steps_per_epoch;
        Summary {
            name: config.name.clone(),
            dataset: config.data.dataset.name().into(),
            model: config.model.kind.name().into(),
            num_params: self.params.len(),
            num_train: shape.num_train,
            num_test: shape.num_test,
            epochs: shape.epochs,
            steps_per_epoch: b,
            total_steps: shape.total_steps,
            steps_done,
            completed: steps_done == shape.total_steps,
            expected_batch_size: self.sampler.expected_batch_size(),
            learning_rate: t.learning_rate,
            momentum: t.momentum,
            weight_decay: t.weight_decay,
            schedule: self.checked.mechanism.schedule().to_string(),
            mode: if private { "private" } else { "non-private" }.into(),
            method: if private { p.method.name() } else { "none" }.into(),
            band: if private { p.band } else { None },
            clip_norm: plan.map(|q| q.clip_norm),
            noise_multiplier: plan.map(|q| q.noise_multiplier),
            sensitivity: plan.map(|q| q.sensitivity),
            sensitivity_kind: plan.map(|q| q.sensitivity_kind.clone()),
            noise_std: plan.map(|q| q.noise_std()),
            epsilon: plan.map(|q| q.epsilon),
            delta: plan.map(|q| q.delta),
            accountant: plan.map(|q| q.accountant.clone()),
            sampling: p.sampling.name().into(),
            seed_policy: match (config.seed, private, self.release_safe) {
                (Some(_), _, _) => "fixed (NOT for private releases)".into(),
                (None, true, false) => "os-random sampler; noise key NOT release-safe".into(),
                (None, _, _) => "os-random".into(),
            },
            test_loss: last_eval.map(|(l, _)| l),
            test_accuracy: last_eval.map(|(_, a)| a),
            num_validation: config.data.validation,
            validation_accuracy: None,
            train_loss_last_epoch: mean_epoch_loss(self.out_dir, (steps_done.max(1) - 1) / b + 1)
                .filter(|_| diagnostics),
            outside_dp: if diagnostics {
                vec!["train_loss_last_epoch".into()]
            } else {
                Vec::new()
            },
            checkpoint: String::new(),
            release_files: Vec::new(),
            wall_time_s: self.elapsed(),
            config_hash: self.config_hash.clone(),
            warnings,
        }
    }
}

/// Writes the summary and, for a completed run, the release artifact; then deletes the secret
/// checkpoint unless `[output] keep_checkpoint` (the order keeps a resumable state until the
/// release is on disk).
pub(super) fn finish(
    config: &TrainConfig,
    out_dir: &std::path::Path,
    model: &dyn DpModel,
    mut summary: Summary,
) -> Result<Summary> {
    let ck = out_dir.join(crate::checkpoint::CHECKPOINT_FILE);
    summary.checkpoint = if !summary.completed {
        "kept: the run is incomplete (resume with --resume); it holds the noise key and the \
         sampler seed — never share it"
            .into()
    } else if config.output.keep_checkpoint {
        "kept ([output] keep_checkpoint = true): it holds the noise key and the sampler seed — \
         never share it; delete it once the run is final"
            .into()
    } else {
        "deleted after completion (it held the noise key and the sampler seed)".into()
    };
    if summary.completed {
        summary.release_files = vec![
            crate::release::MODEL_FILE.into(),
            crate::release::RELEASE_FILE.into(),
        ];
        crate::release::write_release(out_dir, model, &summary)?;
    }
    write_summary(out_dir, &summary)?;
    if summary.completed && !config.output.keep_checkpoint {
        crate::store::remove(&ck)?;
    }
    Ok(summary)
}
