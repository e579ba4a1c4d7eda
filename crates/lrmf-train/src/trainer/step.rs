//! One step of private training, in the order of MATH.md §1: sample the batch of step t, the
//! per-example clipped gradient sum `G_t`, then the optimizer adds the correlated noise `ξ_t`
//! and updates `m_t = μ·m_{t−1} + (G_t + ξ_t)/B`, `θ_t = λ·θ_{t−1} − η·χ_t·m_t`. Returns the
//! step's metrics (the diagnostics computed without noise labelled `outside_dp`).

use super::setup::Session;
use crate::config::PrivacyMode;
use crate::data::TrainData;
use crate::metrics::{STEP_DIAGNOSTICS, StepMetrics};
use crate::model::{DpModel, GradientStats};
use crate::{Result, TrainError};

impl Session<'_> {
    /// Takes step `step` (0-based) of the run and returns its metrics (no test evaluation).
    /// Errors: a non-finite loss or update ([`TrainError::Diverged`]; the last good checkpoint
    /// stays intact), a gradient of the wrong length.
    pub(super) fn step(
        &mut self,
        model: &mut dyn DpModel,
        data: &TrainData,
        step: usize,
    ) -> Result<StepMetrics> {
        let stats = self.clipped_sum(model, data, step)?;
        let bs = self.sampler.batch(step).len();
        let loss = (bs > 0).then(|| stats.loss_sum / bs as f64);
        let (b, out_dir) = (self.shape.steps_per_epoch, self.out_dir);
        let intact = |what: String| {
            TrainError::Diverged(format!(
                "{what}; lower the learning rate. The last good checkpoint in {} is intact",
                out_dir.display()
            ))
        };
        if let Some(l) = loss
            && !l.is_finite()
        {
            self.metrics.sync()?;
            return Err(intact(format!(
                "loss is {l} at step {} (epoch {})",
                step + 1,
                step / b + 1
            )));
        }
        let lr = self.opt.lr_at(step);
        self.opt
            .step(&mut self.params, &stats.grad_sum)
            .map_err(|e| match e {
                TrainError::Diverged(m) => intact(m),
                other => other,
            })?;
        model.set_params(&self.params)?;
        Ok(self.metrics_of(step + 1, lr, bs, loss, &stats))
    }

    /// The clipped gradient sum of step `step`'s batch; zero for an empty bin (possible with
    /// balls in bins: no gradient, but the step's noise is still added, as the mechanism
    /// requires).
    fn clipped_sum(
        &self,
        model: &dyn DpModel,
        data: &TrainData,
        step: usize,
    ) -> Result<GradientStats> {
        let d = self.params.len();
        let idx = self.sampler.batch(step);
        let stats = if idx.is_empty() {
            GradientStats {
                grad_sum: vec![0.0; d],
                loss_sum: 0.0,
                correct: 0,
                clipped: 0,
            }
        } else {
            let clip = self.plan.as_ref().map(|p| p.clip_norm as f32);
            model.clipped_gradient_sum(&data.train.batch(idx), clip)?
        };
        if stats.grad_sum.len() != d {
            return Err(TrainError::Shape(format!(
                "model returned a gradient of {} entries for {d} parameters",
                stats.grad_sum.len()
            )));
        }
        Ok(stats)
    }

    /// The metrics line of the step that brought the run to `done` steps.
    fn metrics_of(
        &self,
        done: usize,
        lr: f64,
        bs: usize,
        loss: Option<f64>,
        stats: &GradientStats,
    ) -> StepMetrics {
        let diag = self.config.output.diagnostics;
        let private = self.config.privacy.mode == PrivacyMode::Private;
        StepMetrics {
            step: done,
            epoch: (done - 1) / self.shape.steps_per_epoch + 1,
            lr,
            loss: loss.filter(|_| diag),
            accuracy: (bs > 0 && diag).then(|| stats.correct as f64 / bs as f64),
            batch_size: diag.then_some(bs),
            clipped_fraction: diag.then(|| {
                if bs > 0 && private {
                    stats.clipped as f64 / bs as f64
                } else {
                    0.0
                }
            }),
            outside_dp: if diag {
                STEP_DIAGNOSTICS.iter().map(|s| s.to_string()).collect()
            } else {
                Vec::new()
            },
            epsilon_spent: self.plan.as_ref().map(|p| p.epsilon),
            test_loss: None,
            test_accuracy: None,
        }
    }
}
