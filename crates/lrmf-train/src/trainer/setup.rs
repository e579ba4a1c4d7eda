//! Setting up a run: its seeds (fixed or from the OS), the folder check (fresh run or resume),
//! and the [`Session`] every step advances — sampler, privacy plan, noise, optimizer — restored
//! from the checkpoint on resume.

use std::path::Path;
use std::time::Instant;

use lrmf_schedule::Schedule;
use sha2::{Digest, Sha256};

use super::CONFIG_FILE;
use crate::checkpoint::{Checkpoint, CheckpointHeader, RunSeeds, to_hex};
use crate::config::{PrivacyMode, RunShape, TrainConfig, Validated};
use crate::metrics::MetricsWriter;
use crate::model::DpModel;
use crate::optimizer::{DpMfOptimizer, NoiseSource, UpdateRule};
use crate::plan::{NoiseSeed, PrivacyPlan};
use crate::sampler::BinSampler;
use crate::{Result, TrainError};

/// 32 bytes derived from a fixed seed and a purpose tag: SHA-256(tag ‖ seed LE).
pub(super) fn derive(seed: u64, tag: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    h.update(seed.to_le_bytes());
    h.finalize().into()
}

/// 32 bytes from the operating system's secure generator.
fn os_bytes() -> Result<[u8; 32]> {
    use rand::TryRng;
    let mut k = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut k)
        .map_err(|e| TrainError::Other(format!("no entropy from the operating system: {e}")))?;
    Ok(k)
}

/// The seeds of a fresh run: derived from `seed` when fixed, else drawn from the OS.
fn fresh_seeds(seed: Option<u64>) -> Result<(RunSeeds, NoiseSeed)> {
    Ok(match seed {
        Some(s) => (
            RunSeeds {
                sampler: derive(s, "lrmf-train sampler v1"),
                init: derive(s, "lrmf-train init v1"),
            },
            NoiseSeed::Fixed(derive(s, "lrmf-train noise v1")),
        ),
        None => (
            RunSeeds {
                sampler: os_bytes()?,
                init: os_bytes()?,
            },
            NoiseSeed::Os,
        ),
    })
}

/// What [`prepare`] decided about the run folder.
pub(super) struct Start {
    pub(super) checkpoint: Option<Checkpoint>,
    pub(super) seeds: RunSeeds,
    pub(super) noise_seed: NoiseSeed,
}

fn folder_error(key: &str, out_dir: &Path, what: &str) -> TrainError {
    TrainError::Config {
        key: key.into(),
        message: format!("{} {what}", out_dir.display()),
    }
}

/// Checks the folder of a validated config: a fresh run refuses a folder that already holds a
/// checkpoint or a release; a resume needs a checkpoint made with the same config hash.
pub(super) fn prepare(config: &TrainConfig, out_dir: &Path, resume: bool) -> Result<Start> {
    crate::store::create_private_dir(out_dir)?;
    let released = crate::release::is_released(out_dir);
    match (resume, Checkpoint::load(out_dir)?) {
        (false, Some(_)) => Err(folder_error(
            "--out",
            out_dir,
            "already holds a checkpoint; continue it with --resume or choose another folder",
        )),
        (true, None) if released => Err(TrainError::Config {
            key: "--resume".into(),
            message: format!(
                "the run in {} is complete (release.json) and its checkpoint was deleted; \
                 nothing to resume",
                out_dir.display()
            ),
        }),
        (true, None) => Err(folder_error(
            "--resume",
            out_dir,
            "holds no checkpoint to resume",
        )),
        (true, Some(ck)) => {
            let hash = config.hash();
            if ck.header.config_hash != hash {
                return Err(TrainError::Config {
                    key: "--config".into(),
                    message: format!(
                        "differs from the config the checkpoint in {} was made with (hash {} vs {hash}); \
                         resume with the same config",
                        out_dir.display(),
                        ck.header.config_hash,
                    ),
                });
            }
            let seeds = ck.header.seeds()?;
            Ok(Start {
                checkpoint: Some(ck),
                seeds,
                noise_seed: NoiseSeed::FromCheckpoint,
            })
        }
        (false, None) if released => Err(folder_error(
            "--out",
            out_dir,
            "already holds a completed run (release.json); choose another folder",
        )),
        (false, None) => {
            let (seeds, noise_seed) = fresh_seeds(config.seed)?;
            Ok(Start {
                checkpoint: None,
                seeds,
                noise_seed,
            })
        }
    }
}

/// Everything a run holds while it steps: built once by [`Session::open`], advanced by
/// [`Session::step`](super::step), reported by [`Session::summary`](super::report).
pub(super) struct Session<'a> {
    pub(super) config: &'a TrainConfig,
    pub(super) checked: &'a Validated,
    pub(super) shape: RunShape,
    pub(super) out_dir: &'a Path,
    pub(super) seeds: RunSeeds,
    pub(super) sampler: BinSampler,
    pub(super) plan: Option<PrivacyPlan>,
    pub(super) opt: DpMfOptimizer,
    pub(super) params: Vec<f32>,
    pub(super) metrics: MetricsWriter,
    pub(super) config_hash: String,
    pub(super) first_step: usize,
    /// Whether the noise key may be used for a real release (OS-drawn).
    pub(super) release_safe: bool,
    elapsed_before: f64,
    clock: Instant,
}

impl<'a> Session<'a> {
    /// Sets the run up: sampler, privacy plan (factorization, sensitivity, calibration), noise
    /// generator and optimizer; then restores the checkpoint's parameters, momentum and noise
    /// state (resume) or writes `config.toml` and a step-0 checkpoint (fresh run).
    pub(super) fn open(
        config: &'a TrainConfig,
        checked: &'a Validated,
        model: &mut dyn DpModel,
        out_dir: &'a Path,
        start: Start,
    ) -> Result<Self> {
        let clock = Instant::now();
        let shape = checked.shape;
        let sampler = BinSampler::new(
            shape.num_train,
            shape.steps_per_epoch,
            config.privacy.sampling,
            start.seeds.sampler,
        )?;
        let (plan, noise, release_safe) = privacy(config, checked, model.num_params(), &start)?;
        let t = &config.training;
        let rule = UpdateRule {
            learning_rate: t.learning_rate,
            momentum: t.momentum,
            weight_decay: t.weight_decay,
            rates: checked.mechanism.schedule().rates(),
            divisor: sampler.expected_batch_size(),
        };
        let mut opt = DpMfOptimizer::new(rule, model.num_params(), noise)?;
        let (first_step, offset, elapsed_before) = match &start.checkpoint {
            Some(ck) => restore(ck, model, &mut opt)?,
            None => {
                crate::store::atomic_write(
                    &out_dir.join(CONFIG_FILE),
                    config.to_toml_string()?.as_bytes(),
                )?;
                (0, 0, 0.0)
            }
        };
        let mut session = Self {
            config,
            checked,
            shape,
            out_dir,
            seeds: start.seeds,
            sampler,
            plan,
            opt,
            params: model.params(),
            metrics: MetricsWriter::open(out_dir, offset)?,
            config_hash: config.hash(),
            first_step,
            release_safe,
            elapsed_before,
            clock,
        };
        if start.checkpoint.is_none() {
            // Step-0 checkpoint: a run killed in its first epoch can be resumed too.
            session.save_checkpoint(0.0)?;
        }
        Ok(session)
    }

    /// Seconds of training over all sessions of the run.
    pub(super) fn elapsed(&self) -> f64 {
        self.elapsed_before + self.clock.elapsed().as_secs_f64()
    }

    /// Writes the checkpoint of the current state.
    pub(super) fn checkpoint(&mut self) -> Result<()> {
        self.save_checkpoint(self.elapsed())
    }

    /// Writes the checkpoint with `elapsed_s` (metrics flushed first, so its offset is
    /// durable).
    fn save_checkpoint(&mut self, elapsed_s: f64) -> Result<()> {
        let offset = self.metrics.sync()?;
        let (step, momentum, noise_state) = self.opt.save_state()?;
        Checkpoint {
            header: CheckpointHeader {
                config_hash: self.config_hash.clone(),
                step,
                metrics_offset: offset,
                sampler_seed: to_hex(&self.seeds.sampler),
                init_seed: to_hex(&self.seeds.init),
                noise_state_len: noise_state.as_ref().map(|s| s.len() as u64),
                num_params: self.params.len(),
                elapsed_s,
            },
            params: self.params.clone(),
            momentum,
            noise_state,
        }
        .save(self.out_dir)?;
        Ok(())
    }
}

/// The privacy plan of a private run (`None` otherwise), its noise source for `d` coordinates
/// (fresh from the run's noise seed, or resumed from the checkpoint's state) and whether the
/// noise key may be used for a real release.
fn privacy(
    config: &TrainConfig,
    checked: &Validated,
    d: usize,
    start: &Start,
) -> Result<(Option<PrivacyPlan>, Option<Noise>, bool)> {
    if config.privacy.mode == PrivacyMode::NonPrivate {
        return Ok((None, None, false));
    }
    let plan = PrivacyPlan::build(config, &checked.mechanism)?;
    let state = start
        .checkpoint
        .as_ref()
        .and_then(|c| c.noise_state.as_deref());
    let (noise, safe) = plan.noise_source(d, start.noise_seed, state)?;
    Ok((Some(plan), Some(noise), safe))
}

/// The noise stream the optimizer adds.
type Noise = Box<dyn NoiseSource>;

/// Restores the checkpoint's parameters into `model` and its step and momentum into `opt`;
/// returns (first step, metrics offset, seconds trained so far).
fn restore(
    ck: &Checkpoint,
    model: &mut dyn DpModel,
    opt: &mut DpMfOptimizer,
) -> Result<(usize, u64, f64)> {
    if ck.header.num_params != model.num_params() {
        return Err(TrainError::Shape(format!(
            "checkpoint has {} parameters, the model {}",
            ck.header.num_params,
            model.num_params()
        )));
    }
    model.set_params(&ck.params)?;
    opt.restore_state(ck.header.step, ck.momentum.clone())?;
    Ok((
        ck.header.step,
        ck.header.metrics_offset,
        ck.header.elapsed_s,
    ))
}
