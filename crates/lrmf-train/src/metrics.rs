//! What a run reports: per-step metrics (JSON lines, truncated back to the checkpoint on
//! resume so a resumed run's file equals an uninterrupted one), the final summary, and the
//! `Progress` callback the CLI wraps its progress bar around.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Result;

/// File name of the per-step metrics in a run folder.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File name of the final summary in a run folder.
pub const SUMMARY_FILE: &str = "summary.json";

/// The per-step fields computed from private data without noise (see [`StepMetrics`]).
pub const STEP_DIAGNOSTICS: [&str; 4] = ["loss", "accuracy", "batch_size", "clipped_fraction"];

/// One line of `metrics.jsonl`: one optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Steps completed, 1-based (this line describes step `step`).
    pub step: usize,
    /// Epoch of this step, 1-based.
    pub epoch: usize,
    /// Effective learning rate η·χ_t.
    pub lr: f64,
    /// Mean training loss of the batch (before the update; `null` for an empty batch or with
    /// diagnostics off). Computed from private data without noise: outside the DP guarantee.
    pub loss: Option<f64>,
    /// Training accuracy of the batch (before the update; `null` for an empty batch or with
    /// diagnostics off). Outside the DP guarantee.
    pub accuracy: Option<f64>,
    /// Examples in the batch (absent with diagnostics off). Outside the DP guarantee: the
    /// exact bin sizes are part of what balls-in-bins amplification keeps secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Fraction of the batch whose gradient norm exceeded the clip norm (0 when non-private;
    /// absent with diagnostics off). Outside the DP guarantee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clipped_fraction: Option<f64>,
    /// The fields of this line computed from the private training data without noise, i.e.
    /// not covered by the run's (ε, δ) guarantee (empty with diagnostics off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outside_dp: Vec<String>,
    /// The run's whole privacy budget ε (`null` in non-private mode). Named `epsilon_spent`
    /// for compatibility: the releases of steps 1..t are a post-processing of the whole run's
    /// release, so the run's ε bounds them from step 1 on; it is the budget, not a running
    /// total (the matrix mechanism's ε is certified for the whole run only).
    pub epsilon_spent: Option<f64>,
    /// Test loss, on the last step of an epoch when evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    /// Test accuracy, on the last step of an epoch when evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
}

/// Static facts of a run, given to [`Progress::start`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// Total steps n.
    pub total_steps: usize,
    /// Steps per epoch b.
    pub steps_per_epoch: usize,
    /// Epochs k.
    pub epochs: usize,
    /// First step to run (0 unless resumed).
    pub start_step: usize,
    /// Model parameters d.
    pub num_params: usize,
    /// Target/achieved ε (private runs).
    pub epsilon: Option<f64>,
    /// Noise multiplier z (private runs).
    pub noise_multiplier: Option<f64>,
    /// Warnings to show before training (fixed seed, increasing schedule, …).
    pub warnings: Vec<String>,
}

/// Receives progress events; every method has an empty default.
pub trait Progress {
    /// Called once before the first step.
    fn start(&mut self, _info: &RunInfo) {}
    /// Called after every step (step, epoch, loss, accuracy, ε).
    fn step(&mut self, _metrics: &StepMetrics) {}
    /// Called after each epoch's test evaluation: (epoch, test loss, test accuracy).
    fn epoch(&mut self, _epoch: usize, _test_loss: f64, _test_accuracy: f64) {}
    /// A free-text message (checkpoint written, stopped, resumed …).
    fn message(&mut self, _text: &str) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// The final report of a run (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Run label.
    pub name: Option<String>,
    /// Data set.
    pub dataset: String,
    /// Model architecture.
    pub model: String,
    /// Parameters d.
    pub num_params: usize,
    /// Training examples N.
    pub num_train: usize,
    /// Test examples.
    pub num_test: usize,
    /// Epochs k.
    pub epochs: usize,
    /// Steps per epoch b (= min-separation).
    pub steps_per_epoch: usize,
    /// Total steps n.
    pub total_steps: usize,
    /// Steps actually completed (= total_steps when `completed`).
    pub steps_done: usize,
    /// True when the run finished all steps (false: stopped, resume with `--resume`).
    pub completed: bool,
    /// Expected batch size N/b (the gradient divisor).
    pub expected_batch_size: f64,
    /// η.
    pub learning_rate: f64,
    /// μ.
    pub momentum: f64,
    /// λ.
    pub weight_decay: f64,
    /// Schedule description.
    pub schedule: String,
    /// `private` or `non-private`.
    pub mode: String,
    /// Factorization method.
    pub method: String,
    /// Band p (banded methods).
    pub band: Option<usize>,
    /// Clip norm (private).
    pub clip_norm: Option<f64>,
    /// Noise multiplier z of the sensitivity-1 Gaussian (private).
    pub noise_multiplier: Option<f64>,
    /// sens(C) under b-min-separation with k = epochs participations (private).
    pub sensitivity: Option<f64>,
    /// How the sensitivity was computed (closed-form, exact, upper-bound).
    pub sensitivity_kind: Option<String>,
    /// σ_eff = z · sens(C) · clip, the std of the noise added to the gradient sum (private).
    pub noise_std: Option<f64>,
    /// ε reached (private).
    pub epsilon: Option<f64>,
    /// δ (private).
    pub delta: Option<f64>,
    /// Accountant used (private).
    pub accountant: Option<String>,
    /// Sampling used.
    pub sampling: String,
    /// `os-random` or `fixed (NOT for private releases)`.
    pub seed_policy: String,
    /// Final test loss (mean).
    pub test_loss: Option<f64>,
    /// Final test accuracy.
    pub test_accuracy: Option<f64>,
    /// Examples held out as the validation split (`[data] validation`; absent without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_validation: Option<usize>,
    /// Accuracy of the final model on the validation split (absent without one). Computed
    /// from held-out training examples without noise: outside the DP guarantee (`outside_dp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
    /// Mean training loss over the last epoch's steps run in this process or before
    /// (`null` with diagnostics off). Outside the DP guarantee (see `outside_dp`).
    pub train_loss_last_epoch: Option<f64>,
    /// The fields of this summary computed from the private training data without noise, i.e.
    /// not covered by the (ε, δ) guarantee.
    pub outside_dp: Vec<String>,
    /// What became of `checkpoint.bin`, which holds the noise key and the sampler seed.
    pub checkpoint: String,
    /// The release artifact's files in the run folder (a completed run: `model.safetensors`,
    /// `release.json`), safe to hand over: they hold no secret.
    pub release_files: Vec<String>,
    /// Wall-clock seconds of training (all sessions of a resumed run).
    pub wall_time_s: f64,
    /// SHA-256 of the config.
    pub config_hash: String,
    /// Warnings (fixed seed, schedule outside the theory, …).
    pub warnings: Vec<String>,
}

/// Appends step metrics to `metrics.jsonl`, knowing its byte length (the checkpoint offset).
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    out: BufWriter<File>,
    offset: u64,
}

impl MetricsWriter {
    /// Opens `dir/metrics.jsonl`, truncated to `offset` bytes (0 for a fresh run; the
    /// checkpoint's offset on resume, dropping lines of steps after the checkpoint).
    pub fn open(dir: &Path, offset: u64) -> Result<Self> {
        let path = dir.join(METRICS_FILE);
        let file = crate::store::open_private(&path)?;
        let len = file.metadata()?.len();
        if len < offset {
            return Err(crate::TrainError::Other(format!(
                "{} has {len} bytes, fewer than the checkpoint's {offset}: it was truncated",
                path.display()
            )));
        }
        file.set_len(offset)?;
        let mut out = BufWriter::new(file);
        use std::io::Seek;
        out.seek(std::io::SeekFrom::Start(offset))?;
        Ok(Self { path, out, offset })
    }

    /// Appends one line.
    pub fn write(&mut self, m: &StepMetrics) -> Result<()> {
        let mut line =
            serde_json::to_vec(m).map_err(|e| crate::TrainError::Other(format!("metrics: {e}")))?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        self.offset += line.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs; returns the byte length (to store in a checkpoint).
    pub fn sync(&mut self) -> Result<u64> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(self.offset)
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Mean loss of the steps of `epoch` recorded in `dir/metrics.jsonl` (all sessions of a run);
/// `None` when the file or a loss is missing. O(lines).
pub fn mean_epoch_loss(dir: &Path, epoch: usize) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(METRICS_FILE)).ok()?;
    let (mut sum, mut count) = (0.0, 0usize);
    for line in text.lines() {
        let m: StepMetrics = serde_json::from_str(line).ok()?;
        if m.epoch == epoch
            && let Some(l) = m.loss
        {
            sum += l;
            count += 1;
        }
    }
    (count > 0).then(|| sum / count as f64)
}

/// Writes `summary.json` atomically (temp file, fsync, rename).
pub fn write_summary(dir: &Path, summary: &Summary) -> Result<PathBuf> {
    let path = dir.join(SUMMARY_FILE);
    let mut text = serde_json::to_string_pretty(summary)
        .map_err(|e| crate::TrainError::Other(format!("summary: {e}")))?;
    text.push('\n');
    crate::store::atomic_write(&path, text.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(step: usize) -> StepMetrics {
        StepMetrics {
            step,
            epoch: 1,
            lr: 0.1,
            loss: Some(2.3),
            accuracy: Some(0.1),
            batch_size: Some(8),
            clipped_fraction: Some(0.5),
            outside_dp: vec!["loss".into()],
            epsilon_spent: None,
            test_loss: None,
            test_accuracy: None,
        }
    }

    #[test]
    fn truncates_to_the_offset_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = MetricsWriter::open(dir.path(), 0).unwrap();
        w.write(&check(1)).unwrap();
        let off = w.sync().unwrap();
        w.write(&check(2)).unwrap();
        w.sync().unwrap();
        drop(w);
        let mut w = MetricsWriter::open(dir.path(), off).unwrap();
        w.write(&check(3)).unwrap();
        w.sync().unwrap();
        let text = std::fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
        let steps: Vec<usize> = text
            .lines()
            .map(|l| serde_json::from_str::<StepMetrics>(l).unwrap().step)
            .collect();
        assert_eq!(steps, vec![1, 3]);
        assert!(MetricsWriter::open(dir.path(), 10_000).is_err());
    }
}
