//! The training loop: one entry point from a validated config to a run folder holding
//! `metrics.jsonl`, `summary.json` and an atomic checkpoint, with exact resume and a stop flag.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use lrmf_schedule::Schedule;
use sha2::{Digest, Sha256};

use crate::checkpoint::{Checkpoint, CheckpointHeader, RunSeeds, to_hex};
use crate::config::{PrivacyMode, TrainConfig, Validated};
use crate::data::{Examples, TrainData};
use crate::metrics::{
    METRICS_FILE, MetricsWriter, Progress, RunInfo, STEP_DIAGNOSTICS, StepMetrics, Summary,
    write_summary,
};
use crate::model::{DpModel, GradientStats};
use crate::optimizer::{DpMfOptimizer, UpdateRule};
use crate::plan::{NoiseSeed, PrivacyPlan};
use crate::sampler::BinSampler;
use crate::{Result, TrainError};

/// File name of the resolved config written into a run folder.
pub const CONFIG_FILE: &str = "config.toml";

/// Warning attached to runs with a fixed `seed`.
pub const FIXED_SEED_WARNING: &str = "seed is fixed in the config: the run is reproducible, but \
     anyone who knows the seed can recompute the batches and remove the noise — NOT for a real \
     private release";

/// 32 bytes derived from a fixed seed and a purpose tag: SHA-256(tag ‖ seed LE).
fn derive(seed: u64, tag: &str) -> [u8; 32] {
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
struct Start {
    checkpoint: Option<Checkpoint>,
    seeds: RunSeeds,
    noise_seed: NoiseSeed,
}

/// Validates the config and the folder: a fresh run refuses a folder that already holds a
/// checkpoint; a resume needs one, made with the same config hash.
fn prepare(config: &TrainConfig, out_dir: &Path, resume: bool) -> Result<Start> {
    crate::store::create_private_dir(out_dir)?;
    let existing = Checkpoint::load(out_dir)?;
    match (resume, existing) {
        (false, Some(_)) => Err(TrainError::Config {
            key: "--out".into(),
            message: format!(
                "{} already holds a checkpoint; continue it with --resume or choose another folder",
                out_dir.display()
            ),
        }),
        (true, None) if out_dir.join(crate::release::RELEASE_FILE).exists() => {
            Err(TrainError::Config {
                key: "--resume".into(),
                message: format!(
                    "the run in {} is complete (release.json) and its checkpoint was deleted; \
                     nothing to resume",
                    out_dir.display()
                ),
            })
        }
        (true, None) => Err(TrainError::Config {
            key: "--resume".into(),
            message: format!("{} holds no checkpoint to resume", out_dir.display()),
        }),
        (true, Some(ck)) => {
            if ck.header.config_hash != config.hash() {
                return Err(TrainError::Config {
                    key: "--config".into(),
                    message: format!(
                        "differs from the config the checkpoint in {} was made with (hash {} vs {}); \
                         resume with the same config",
                        out_dir.display(),
                        ck.header.config_hash,
                        config.hash()
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
        (false, None) if out_dir.join(crate::release::RELEASE_FILE).exists() => {
            Err(TrainError::Config {
                key: "--out".into(),
                message: format!(
                    "{} already holds a completed run (release.json); choose another folder",
                    out_dir.display()
                ),
            })
        }
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

/// Trains the model the config names on the data it names, writing into `out_dir`.
///
/// * `resume = false`: a fresh run (the folder must not hold a checkpoint).
/// * `resume = true`: continues from `out_dir/checkpoint.bin` bit-for-bit (same config required).
/// * `stop`: checked before every step; when set, the run checkpoints and returns
///   `Ok(summary)` with `completed = false` (the CLI sets it from its SIGINT handler).
/// * `progress`: receives start/step/epoch events.
///
/// Errors: a config error (before anything is trained), missing data (naming
/// `cargo xtask data`), a non-finite loss or update ([`TrainError::Diverged`]; the last good
/// checkpoint stays intact), IO.
pub fn train(
    config: &TrainConfig,
    out_dir: &Path,
    resume: bool,
    stop: Arc<AtomicBool>,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    // Every check, data included, before the run folder is touched.
    let checked = config.validate()?;
    config.check_data()?;
    let start = prepare(config, out_dir, resume)?;
    let data = TrainData::load(&config.data)?;
    let mut model = build_model(config, &data, start.seeds.init)?;
    run(
        config,
        &checked,
        model.as_mut(),
        &data,
        out_dir,
        start,
        stop,
        progress,
    )
}

/// The model the config names, for the data's shape, initialised from `init_seed` (its first 8
/// bytes, little-endian, seed the model's ChaCha8 initialiser).
pub fn build_model(
    config: &TrainConfig,
    data: &TrainData,
    init_seed: [u8; 32],
) -> Result<Box<dyn DpModel>> {
    use crate::config::ModelKind;
    use crate::model::{Cnn, CnnConfig, Mlp, MlpConfig, TextClassifier, TextConfig};
    let seed = u64::from_le_bytes(init_seed[..8].try_into().expect("8 bytes"));
    let classes = data.train.num_classes().max(data.test.num_classes());
    let m = &config.model;
    let image_inputs = || match &data.train {
        Examples::Images(_) => Ok(lrmf_data::cifar10::IMAGE_BYTES),
        Examples::Tokens(_) => Err(TrainError::Config {
            key: "model.kind".into(),
            message: format!("{} needs image data", m.kind.name()),
        }),
    };
    Ok(match m.kind {
        ModelKind::Cnn => {
            image_inputs()?;
            let cfg = CnnConfig {
                classes,
                channels: config.cnn_channels(),
                group_norm: m.group_norm.unwrap_or(true),
                groups: config.cnn_groups(),
                hidden: m.hidden.as_ref().and_then(|h| h.first().copied()),
                ..CnnConfig::cifar10(true)
            };
            Box::new(Cnn::new(cfg, seed)?)
        }
        ModelKind::Mlp => Box::new(Mlp::new(
            MlpConfig {
                inputs: image_inputs()?,
                hidden: m.hidden.clone().unwrap_or_else(|| vec![256]),
                classes,
            },
            seed,
        )?),
        ModelKind::Logistic => Box::new(Mlp::logistic(image_inputs()?, classes, seed)?),
        ModelKind::Text => {
            let Examples::Tokens(t) = &data.train else {
                return Err(TrainError::Config {
                    key: "model.kind".into(),
                    message: "text needs text data".into(),
                });
            };
            Box::new(TextClassifier::new(
                TextConfig {
                    vocab: t.num_ids,
                    embed_dim: m.embed_dim.unwrap_or(64),
                    classes,
                },
                seed,
            )?)
        }
    })
}

/// [`train`] with a caller-built model and data (tests, experiments with custom models). The
/// config's `[model]` section is only recorded; `[data]` must describe `data` (sizes).
pub fn train_model(
    config: &TrainConfig,
    model: &mut dyn DpModel,
    data: &TrainData,
    out_dir: &Path,
    resume: bool,
    stop: Arc<AtomicBool>,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    let checked = config.validate()?;
    let start = prepare(config, out_dir, resume)?;
    run(
        config, &checked, model, data, out_dir, start, stop, progress,
    )
}

/// (mean loss, accuracy) over a whole split, in chunks of `chunk` examples. O(split · forward).
pub fn evaluate(model: &dyn DpModel, examples: &Examples, chunk: usize) -> Result<(f64, f64)> {
    let n = examples.len();
    if n == 0 {
        return Err(TrainError::Other("evaluation split is empty".into()));
    }
    let (mut loss, mut correct) = (0.0, 0usize);
    let mut start = 0;
    while start < n {
        let end = (start + chunk.max(1)).min(n);
        let (l, c) = model.evaluate(&examples.range(start, end))?;
        loss += l;
        correct += c;
        start = end;
    }
    Ok((loss / n as f64, correct as f64 / n as f64))
}

/// Mean loss of the steps of `epoch` recorded in `metrics.jsonl` (all sessions of a run).
fn last_epoch_loss(dir: &Path, epoch: usize) -> Option<f64> {
    let text = fs::read_to_string(dir.join(METRICS_FILE)).ok()?;
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

#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    config_hash: &str,
    out_dir: &Path,
    seeds: &RunSeeds,
    opt: &DpMfOptimizer,
    params: &[f32],
    metrics: &mut MetricsWriter,
    elapsed_s: f64,
) -> Result<()> {
    let offset = metrics.sync()?;
    let (step, momentum, noise_state) = opt.save_state()?;
    Checkpoint {
        header: CheckpointHeader {
            config_hash: config_hash.to_string(),
            step,
            metrics_offset: offset,
            sampler_seed: to_hex(&seeds.sampler),
            init_seed: to_hex(&seeds.init),
            noise_state_len: noise_state.as_ref().map(|s| s.len() as u64),
            num_params: params.len(),
            elapsed_s,
        },
        params: params.to_vec(),
        momentum,
        noise_state,
    }
    .save(out_dir)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run(
    config: &TrainConfig,
    checked: &Validated,
    model: &mut dyn DpModel,
    data: &TrainData,
    out_dir: &Path,
    start: Start,
    stop: Arc<AtomicBool>,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    let clock = Instant::now();
    let shape = checked.shape;
    if data.train.len() != shape.num_train || data.test.len() != shape.num_test {
        return Err(TrainError::Config {
            key: "data".into(),
            message: format!(
                "config says {} train / {} test examples, the data has {} / {}",
                shape.num_train,
                shape.num_test,
                data.train.len(),
                data.test.len()
            ),
        });
    }
    let (b, n) = (shape.steps_per_epoch, shape.total_steps);
    let schedule = checked.mechanism.schedule();
    let rates = schedule.rates();
    let t = &config.training;
    let sampler = BinSampler::new(
        shape.num_train,
        b,
        config.privacy.sampling,
        start.seeds.sampler,
    )?;
    let d = model.num_params();
    let private = config.privacy.mode == PrivacyMode::Private;
    let plan = if private {
        Some(PrivacyPlan::build(config, &checked.mechanism)?)
    } else {
        None
    };
    let noise_state_bytes = start
        .checkpoint
        .as_ref()
        .and_then(|c| c.noise_state.as_deref());
    let (noise, release_safe) = match &plan {
        Some(p) => {
            let (src, safe) = p.noise_source(d, start.noise_seed, noise_state_bytes)?;
            (Some(src), safe)
        }
        None => (None, false),
    };
    let rule = UpdateRule {
        learning_rate: t.learning_rate,
        momentum: t.momentum,
        weight_decay: t.weight_decay,
        rates: rates.clone(),
        divisor: sampler.expected_batch_size(),
    };
    let mut opt = DpMfOptimizer::new(rule, d, noise)?;
    let config_hash = config.hash();
    let (first_step, offset, elapsed_before) = match &start.checkpoint {
        Some(ck) => {
            if ck.header.num_params != d {
                return Err(TrainError::Shape(format!(
                    "checkpoint has {} parameters, the model {d}",
                    ck.header.num_params
                )));
            }
            model.set_params(&ck.params)?;
            opt.restore_state(ck.header.step, ck.momentum.clone())?;
            (
                ck.header.step,
                ck.header.metrics_offset,
                ck.header.elapsed_s,
            )
        }
        None => {
            crate::store::atomic_write(
                &out_dir.join(CONFIG_FILE),
                config.to_toml_string()?.as_bytes(),
            )?;
            (0, 0, 0.0)
        }
    };
    let mut params = model.params();
    let mut metrics = MetricsWriter::open(out_dir, offset)?;
    let elapsed = |clock: &Instant| elapsed_before + clock.elapsed().as_secs_f64();
    if start.checkpoint.is_none() {
        // Step-0 checkpoint: a run killed in its first epoch can be resumed too.
        save_checkpoint(
            &config_hash,
            out_dir,
            &start.seeds,
            &opt,
            &params,
            &mut metrics,
            0.0,
        )?;
    }

    let mut warnings = Vec::new();
    if config.seed.is_some() {
        warnings.push(FIXED_SEED_WARNING.to_string());
    }
    if !schedule.is_non_increasing() {
        warnings.push(
            "the learning-rate schedule increases somewhere (warm-up): outside the theory of \
             the paper; the privacy guarantee is unaffected, the error analysis does not apply"
                .into(),
        );
    }
    if let Some(p) = &plan {
        warnings.extend(p.warnings.iter().cloned());
    }
    if !private {
        warnings.push("non-private run: no clipping, no noise, NO privacy guarantee".into());
    }
    let epsilon = plan.as_ref().map(|p| p.epsilon);
    progress.start(&RunInfo {
        total_steps: n,
        steps_per_epoch: b,
        epochs: shape.epochs,
        start_step: first_step,
        num_params: d,
        epsilon,
        noise_multiplier: plan.as_ref().map(|p| p.noise_multiplier),
        warnings: warnings.clone(),
    });
    if first_step > 0 {
        progress.message(&format!("resumed at step {first_step} of {n}"));
    }

    let clip = plan.as_ref().map(|p| p.clip_norm as f32);
    let mut last_eval: Option<(f64, f64)> = None;
    let mut step = first_step;
    while step < n {
        if stop.load(Ordering::SeqCst) {
            save_checkpoint(
                &config_hash,
                out_dir,
                &start.seeds,
                &opt,
                &params,
                &mut metrics,
                elapsed(&clock),
            )?;
            progress.message(&format!(
                "stopped at step {step} of {n}; checkpoint written"
            ));
            break;
        }
        let idx = sampler.batch(step);
        let stats = if idx.is_empty() {
            // An empty bin (possible with balls in bins): no gradient, but the noise of the
            // step is still added, as the mechanism requires.
            GradientStats {
                grad_sum: vec![0.0; d],
                loss_sum: 0.0,
                correct: 0,
                clipped: 0,
            }
        } else {
            model.clipped_gradient_sum(&data.train.batch(idx), clip)?
        };
        if stats.grad_sum.len() != d {
            return Err(TrainError::Shape(format!(
                "model returned a gradient of {} entries for {d} parameters",
                stats.grad_sum.len()
            )));
        }
        let bs = idx.len();
        let loss = (bs > 0).then(|| stats.loss_sum / bs as f64);
        if let Some(l) = loss
            && !l.is_finite()
        {
            metrics.sync()?;
            return Err(TrainError::Diverged(format!(
                "loss is {l} at step {} (epoch {}); lower the learning rate. The last good \
                 checkpoint in {} is intact",
                step + 1,
                step / b + 1,
                out_dir.display()
            )));
        }
        let lr = opt.lr_at(step);
        opt.step(&mut params, &stats.grad_sum)
            .map_err(|e| match e {
                TrainError::Diverged(m) => TrainError::Diverged(format!(
                    "{m}; lower the learning rate. The last good checkpoint in {} is intact",
                    out_dir.display()
                )),
                other => other,
            })?;
        model.set_params(&params)?;
        step += 1;
        let epoch = (step - 1) / b + 1;
        let epoch_end = step % b == 0;
        let diag = config.output.diagnostics;
        let mut m = StepMetrics {
            step,
            epoch,
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
            epsilon_spent: epsilon,
            test_loss: None,
            test_accuracy: None,
        };
        if epoch_end && (t.eval_each_epoch || step == n) {
            let (tl, ta) = evaluate(&*model, &data.test, t.eval_batch_size)?;
            m.test_loss = Some(tl);
            m.test_accuracy = Some(ta);
            last_eval = Some((tl, ta));
            progress.epoch(epoch, tl, ta);
        }
        metrics.write(&m)?;
        progress.step(&m);
        if epoch_end || (t.checkpoint_every > 0 && step % t.checkpoint_every == 0) {
            save_checkpoint(
                &config_hash,
                out_dir,
                &start.seeds,
                &opt,
                &params,
                &mut metrics,
                elapsed(&clock),
            )?;
        }
    }
    let completed = step == n;
    if completed && last_eval.is_none() {
        // Resumed after the final step's evaluation, or n not at an epoch end (never: n = k·b).
        last_eval = Some(evaluate(&*model, &data.test, t.eval_batch_size)?);
    }
    metrics.sync()?;

    let (test_loss, test_accuracy) = match last_eval {
        Some((l, a)) => (Some(l), Some(a)),
        None => (None, None),
    };
    let p = &config.privacy;
    let summary = Summary {
        name: config.name.clone(),
        dataset: config.data.dataset.name().into(),
        model: config.model.kind.name().into(),
        num_params: d,
        num_train: shape.num_train,
        num_test: shape.num_test,
        epochs: shape.epochs,
        steps_per_epoch: b,
        total_steps: n,
        steps_done: step,
        completed,
        expected_batch_size: sampler.expected_batch_size(),
        learning_rate: t.learning_rate,
        momentum: t.momentum,
        weight_decay: t.weight_decay,
        schedule: schedule.to_string(),
        mode: if private { "private" } else { "non-private" }.into(),
        method: if private {
            p.method.name().into()
        } else {
            "none".into()
        },
        band: if private { p.band } else { None },
        clip_norm: plan.as_ref().map(|q| q.clip_norm),
        noise_multiplier: plan.as_ref().map(|q| q.noise_multiplier),
        sensitivity: plan.as_ref().map(|q| q.sensitivity),
        sensitivity_kind: plan.as_ref().map(|q| q.sensitivity_kind.clone()),
        noise_std: plan.as_ref().map(|q| q.noise_std()),
        epsilon,
        delta: plan.as_ref().map(|q| q.delta),
        accountant: plan.as_ref().map(|q| q.accountant.clone()),
        sampling: p.sampling.name().into(),
        seed_policy: match (config.seed, private, release_safe) {
            (Some(_), _, _) => "fixed (NOT for private releases)".into(),
            (None, true, false) => "os-random sampler; noise key NOT release-safe".into(),
            (None, _, _) => "os-random".into(),
        },
        test_loss,
        test_accuracy,
        train_loss_last_epoch: last_epoch_loss(out_dir, (step.max(1) - 1) / b + 1)
            .filter(|_| config.output.diagnostics),
        outside_dp: if config.output.diagnostics {
            vec!["train_loss_last_epoch".into()]
        } else {
            Vec::new()
        },
        checkpoint: String::new(),
        release_files: Vec::new(),
        wall_time_s: elapsed(&clock),
        config_hash,
        warnings,
    };
    finish(config, out_dir, &*model, summary)
}

/// Writes the summary and, for a completed run, the release artifact; then deletes the secret
/// checkpoint unless `[output] keep_checkpoint` (the order keeps a resumable state until the
/// release is on disk).
fn finish(
    config: &TrainConfig,
    out_dir: &Path,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Batch;
    use crate::sampler::Sampling;
    use lrmf_data::{Dataset, Normalization};
    use lrmf_linalg::LinearOperator;

    /// Least squares on the first min(d, 3072) pixels: loss_i = ½(θ·x_i − y_i)², y_i = label;
    /// the per-example gradient is (θ·x_i − y_i)·x_i. `zero_grad` makes every gradient 0.
    struct LeastSquares {
        theta: Vec<f32>,
        zero_grad: bool,
    }

    fn features(batch: &Batch, d: usize) -> Vec<(Vec<f64>, f64)> {
        let Batch::Images { pixels, labels, .. } = batch else {
            panic!("images expected")
        };
        labels
            .iter()
            .enumerate()
            .map(|(i, &y)| {
                let x = pixels[i * 3072..i * 3072 + d]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                (x, y as f64)
            })
            .collect()
    }

    impl DpModel for LeastSquares {
        fn num_params(&self) -> usize {
            self.theta.len()
        }
        fn params(&self) -> Vec<f32> {
            self.theta.clone()
        }
        fn set_params(&mut self, params: &[f32]) -> Result<()> {
            self.theta.copy_from_slice(params);
            Ok(())
        }
        fn clipped_gradient_sum(&self, batch: &Batch, clip: Option<f32>) -> Result<GradientStats> {
            let d = self.theta.len();
            let mut grad = vec![0f64; d];
            let (mut loss, mut correct, mut clipped) = (0.0, 0, 0);
            for (x, y) in features(batch, d.min(3072)) {
                let pred: f64 = x.iter().zip(&self.theta).map(|(a, b)| a * *b as f64).sum();
                let r = pred - y;
                loss += 0.5 * r * r;
                correct += usize::from(r.abs() < 0.5);
                let g: Vec<f64> = if self.zero_grad {
                    vec![0.0; d]
                } else {
                    x.iter()
                        .map(|v| r * v)
                        .chain(std::iter::repeat(0.0))
                        .take(d)
                        .collect()
                };
                let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
                let scale = match clip {
                    Some(c) if norm > c as f64 => {
                        clipped += 1;
                        c as f64 / norm
                    }
                    _ => 1.0,
                };
                for (a, v) in grad.iter_mut().zip(&g) {
                    *a += scale * v;
                }
            }
            Ok(GradientStats {
                grad_sum: grad.iter().map(|&v| v as f32).collect(),
                loss_sum: loss,
                correct,
                clipped,
            })
        }
        fn evaluate(&self, batch: &Batch) -> Result<(f64, usize)> {
            let s = self.clipped_gradient_sum(batch, None)?;
            Ok((s.loss_sum, s.correct))
        }
    }

    /// Small random images with labels 0..3 (pixels ~ U(−1, 1) from a ChaCha stream).
    fn images(n: usize, seed: u64) -> Dataset {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let images = (0..n * 3072)
            .map(|_| (rand::Rng::next_u32(&mut rng) as f64 / u32::MAX as f64 * 2.0 - 1.0) as f32)
            .collect();
        Dataset {
            images,
            labels: (0..n).map(|i| (i % 3) as u8).collect(),
            n,
            normalization: Normalization::UnitRange,
        }
    }

    fn data(n_train: usize, n_test: usize) -> TrainData {
        TrainData {
            train: Examples::Images(images(n_train, 1)),
            test: Examples::Images(images(n_test, 2)),
        }
    }

    /// A config for `n` synthetic training images with the given `[privacy]` body.
    fn config(n: usize, extra_training: &str, privacy: &str) -> TrainConfig {
        TrainConfig::from_toml_str(&format!(
            r#"
seed = 11
[data]
dataset = "synthetic-images"
train_examples = {n}
test_examples = 10
[model]
kind = "logistic"
[training]
epochs = 3
batch_size = 8
learning_rate = 0.05
momentum = 0.8
weight_decay = 0.99
{extra_training}
[schedule]
kind = "cosine"
lr_decay = 0.2
[privacy]
{privacy}
"#
        ))
        .unwrap()
    }

    /// Runs `train_model` into a fresh temp folder; returns (summary, final params, folder).
    fn check(
        cfg: &TrainConfig,
        model: &mut dyn DpModel,
        data: &TrainData,
    ) -> (Summary, Vec<f32>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let s = train_model(
            cfg,
            model,
            data,
            dir.path(),
            false,
            Arc::new(AtomicBool::new(false)),
            &mut crate::NoProgress,
        )
        .unwrap();
        (s, model.params(), dir)
    }

    #[test]
    fn non_private_equals_sgd_with_momentum_and_weight_decay() {
        let (n, d) = (40, 5);
        let cfg = config(
            n,
            "",
            "mode = \"non-private\"\nsampling = \"fixed-partition\"",
        );
        let data = data(n, 10);
        let mut model = LeastSquares {
            theta: vec![0.1; d],
            zero_grad: false,
        };
        let (summary, params, dir) = check(&cfg, &mut model, &data);
        assert!(summary.completed);

        // Oracle: the same batches, plain f64 SGD with heavy-ball momentum and weight decay.
        let b = n / 8;
        let total = 3 * b;
        let sampler = BinSampler::new(
            n,
            b,
            Sampling::FixedPartition,
            derive(11, "lrmf-train sampler v1"),
        )
        .unwrap();
        let Examples::Images(train) = &data.train else {
            unreachable!()
        };
        let mut theta = vec![0.1f64; d];
        let mut m = vec![0f64; d];
        let mut losses = Vec::new();
        for t in 0..total {
            let chi = 0.2
                + 0.8 / 2.0 * (1.0 + (std::f64::consts::PI * t as f64 / (total - 1) as f64).cos());
            let mut g = vec![0f64; d];
            let mut loss = 0.0;
            for &i in sampler.batch(t) {
                let x = &train.images[i as usize * 3072..i as usize * 3072 + d];
                let r: f64 = x
                    .iter()
                    .zip(&theta)
                    .map(|(a, b)| *a as f64 * b)
                    .sum::<f64>()
                    - train.labels[i as usize] as f64;
                loss += 0.5 * r * r;
                for k in 0..d {
                    g[k] += r * x[k] as f64;
                }
            }
            losses.push(loss / sampler.batch(t).len() as f64);
            for k in 0..d {
                m[k] = 0.8 * m[k] + g[k] / (n as f64 / b as f64);
                theta[k] = 0.99 * theta[k] - 0.05 * chi * m[k];
            }
        }
        for k in 0..d {
            assert!(
                (params[k] as f64 - theta[k]).abs() < 1e-4,
                "{k}: {} vs {}",
                params[k],
                theta[k]
            );
        }
        let text = fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
        let lines: Vec<StepMetrics> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), total);
        for (t, l) in lines.iter().enumerate() {
            assert_eq!(l.step, t + 1);
            assert!((l.loss.unwrap() - losses[t]).abs() < 1e-4 * (1.0 + losses[t]));
        }
        assert_eq!(summary.noise_std, None);
        assert!(dir.path().join("summary.json").is_file());
    }

    #[test]
    fn added_noise_has_the_covariance_of_the_factorization() {
        // Zero gradients, μ = 0, λ = 1, χ ≡ 1, η = 1: θ_t − θ_{t+1} = ξ_t / B exactly, so the
        // noise of each step is read back from the parameters; over d coordinates its empirical
        // covariance must be σ_eff² · C⁻¹C⁻ᵀ (σ_eff = z · sens · clip).
        let (n, d) = (16, 40_000);
        for (method, band) in [("identity", ""), ("bisr", "band = 2"), ("bsr", "band = 3")] {
            let cfg = TrainConfig::from_toml_str(&format!(
                r#"
seed = 5
[data]
dataset = "synthetic-images"
train_examples = {n}
test_examples = 4
[model]
kind = "logistic"
[training]
epochs = 2
batch_size = 4
learning_rate = 1.0
eval_each_epoch = false
[privacy]
clip_norm = 0.5
method = "{method}"
{band}
epsilon = 4.0
delta = 1e-5
"#
            ))
            .unwrap();
            let data = data(n, 4);
            let mut model = LeastSquares {
                theta: vec![0.0; d],
                zero_grad: true,
            };
            let dir = tempfile::tempdir().unwrap();
            let steps = 8;
            let bsz = n as f64 / 4.0;
            let mut noise = vec![vec![0f64; d]; steps];
            // Read θ after every step through the progress callback's checkpoints: run one
            // step at a time with the stop flag.
            struct StopEach(Arc<AtomicBool>);
            impl Progress for StopEach {
                fn step(&mut self, _: &StepMetrics) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let mut prev = vec![0f32; d];
            let mut summary = None;
            for t in 0..steps {
                let stop = Arc::new(AtomicBool::new(false));
                let mut p = StopEach(stop.clone());
                let s =
                    train_model(&cfg, &mut model, &data, dir.path(), t > 0, stop, &mut p).unwrap();
                let now = model.params();
                for i in 0..d {
                    noise[t][i] = (prev[i] as f64 - now[i] as f64) * bsz;
                }
                prev = now;
                summary = Some(s);
            }
            let s = summary.unwrap();
            assert!(s.completed);
            let sigma = s.noise_std.unwrap();
            assert!(
                (sigma - s.noise_multiplier.unwrap() * s.sensitivity.unwrap() * 0.5).abs() < 1e-12
            );
            // Expected covariance from the strategy, computed densely.
            let plan = PrivacyPlan::build(&cfg, &cfg.validate().unwrap().mechanism).unwrap();
            assert_eq!(plan.sensitivity, s.sensitivity.unwrap());
            let cinv = plan.c.inverse_to_dense().unwrap();
            let scale = sigma * sigma;
            for a in 0..steps {
                for b2 in 0..=a {
                    let emp: f64 =
                        (0..d).map(|i| noise[a][i] * noise[b2][i]).sum::<f64>() / d as f64;
                    let exp: f64 = (0..steps)
                        .map(|j| cinv[(a, j)] * cinv[(b2, j)])
                        .sum::<f64>()
                        * scale;
                    // Standard error of the estimate ≤ scale·√(2/d)·max diag ≈ 0.007·scale·diag.
                    let diag = (0..steps)
                        .map(|j| cinv[(a, j)].powi(2))
                        .sum::<f64>()
                        .max(1.0);
                    assert!(
                        (emp - exp).abs() < 0.05 * scale * diag,
                        "{method} [{a},{b2}]: {emp} vs {exp}"
                    );
                }
            }
            // Sanity: the dense C of the plan is lower-triangular and C·C⁻¹ = I.
            let c = plan.c.to_dense();
            assert!((c[(1, 1)] * cinv[(1, 1)] - 1.0).abs() < 1e-12);
        }
    }

    /// Sets the stop flag once `at` steps have completed.
    struct StopAt(usize, Arc<AtomicBool>);
    impl Progress for StopAt {
        fn step(&mut self, m: &StepMetrics) {
            if m.step == self.0 {
                self.1.store(true, Ordering::SeqCst);
            }
        }
    }

    const PRIVATE: &str =
        "clip_norm = 0.7\nmethod = \"bisr\"\nband = 3\nepsilon = 3.0\ndelta = 1e-5";

    #[test]
    fn stopped_and_resumed_run_equals_uninterrupted_run() {
        let n = 48;
        let cfg = config(n, "checkpoint_every = 4", PRIVATE);
        let data = data(n, 10);
        let fresh = || LeastSquares {
            theta: vec![0.2; 6],
            zero_grad: false,
        };
        let (full, full_params, full_dir) = check(&cfg, &mut fresh(), &data);
        assert!(full.completed && full.total_steps == 18);

        // Stop mid-epoch (step 8 of b = 6 per epoch), resume in a new "process".
        let dir = tempfile::tempdir().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut model = fresh();
        let part = train_model(
            &cfg,
            &mut model,
            &data,
            dir.path(),
            false,
            stop.clone(),
            &mut StopAt(8, stop),
        )
        .unwrap();
        assert!(!part.completed);
        assert_eq!(part.steps_done, 8);
        assert_eq!(
            Checkpoint::load(dir.path()).unwrap().unwrap().header.step,
            8
        );
        // A killed process may have written metrics past the checkpoint: resume drops them.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(METRICS_FILE))
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"step\": 9, \"torn").unwrap();
        drop(f);
        let mut model = fresh();
        let done = train_model(
            &cfg,
            &mut model,
            &data,
            dir.path(),
            true,
            Arc::new(AtomicBool::new(false)),
            &mut crate::NoProgress,
        )
        .unwrap();
        assert!(done.completed);
        assert_eq!(model.params(), full_params, "bit-identical parameters");
        assert_eq!(
            fs::read(dir.path().join(METRICS_FILE)).unwrap(),
            fs::read(full_dir.path().join(METRICS_FILE)).unwrap(),
            "identical metrics"
        );
        assert_eq!(done.test_accuracy, full.test_accuracy);
        assert_eq!(done.epsilon, full.epsilon);
        // The completed run deleted its secret checkpoint; the release holds θ_n.
        assert!(Checkpoint::load(dir.path()).unwrap().is_none());
        assert_eq!(
            crate::release::load_params(dir.path(), &model).unwrap(),
            full_params
        );

        // A crash (the process dies mid-epoch, here a panic after step 11 with the last
        // checkpoint at step 8 and metrics of steps 9..11 written): resume from step 8.
        struct CrashAt(usize);
        impl Progress for CrashAt {
            fn step(&mut self, m: &StepMetrics) {
                if m.step == self.0 {
                    panic!("simulated crash at step {}", m.step);
                }
            }
        }
        let crash_dir = tempfile::tempdir().unwrap();
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut model = fresh();
            train_model(
                &cfg,
                &mut model,
                &data,
                crash_dir.path(),
                false,
                Arc::new(AtomicBool::new(false)),
                &mut CrashAt(11),
            )
        }));
        assert!(crashed.is_err());
        assert_eq!(
            Checkpoint::load(crash_dir.path())
                .unwrap()
                .unwrap()
                .header
                .step,
            8
        );
        let mut model = fresh();
        train_model(
            &cfg,
            &mut model,
            &data,
            crash_dir.path(),
            true,
            Arc::new(AtomicBool::new(false)),
            &mut crate::NoProgress,
        )
        .unwrap();
        assert_eq!(model.params(), full_params, "bit-identical after a crash");
        assert_eq!(
            fs::read(crash_dir.path().join(METRICS_FILE)).unwrap(),
            fs::read(full_dir.path().join(METRICS_FILE)).unwrap(),
            "identical metrics after a crash"
        );

        // A finished run deleted its checkpoint: resuming it is refused, naming --resume.
        let again = train_model(
            &cfg,
            &mut fresh(),
            &data,
            dir.path(),
            true,
            Arc::new(AtomicBool::new(false)),
            &mut crate::NoProgress,
        );
        assert!(
            matches!(&again, Err(TrainError::Config { key, message }) if key == "--resume" && message.contains("complete")),
            "{again:?}"
        );
    }

    #[test]
    fn folder_and_config_mismatches_are_errors() {
        let n = 24;
        let mut cfg = config(n, "", PRIVATE);
        // Kept on request, so that resuming with another config can be tried.
        cfg.output.keep_checkpoint = true;
        let data = data(n, 10);
        let mut model = LeastSquares {
            theta: vec![0.0; 3],
            zero_grad: false,
        };
        let (s, _, dir) = check(&cfg, &mut model, &data);
        assert!(s.checkpoint.starts_with("kept"), "{}", s.checkpoint);
        assert!(dir.path().join("checkpoint.bin").is_file());
        let go = |c: &TrainConfig, resume: bool, dir: &Path| {
            let mut m = LeastSquares {
                theta: vec![0.0; 3],
                zero_grad: false,
            };
            train_model(
                c,
                &mut m,
                &data,
                dir,
                resume,
                Arc::new(AtomicBool::new(false)),
                &mut crate::NoProgress,
            )
        };
        let key = |r: Result<Summary>| match r {
            Err(TrainError::Config { key, .. }) => key,
            other => panic!("expected a config error, got {other:?}"),
        };
        assert_eq!(key(go(&cfg, false, dir.path())), "--out");
        let mut other = cfg.clone();
        other.training.learning_rate = 0.01;
        assert_eq!(key(go(&other, true, dir.path())), "--config");
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(key(go(&cfg, true, empty.path())), "--resume");
        // Data that does not match the config's sizes.
        let small = TrainData {
            train: Examples::Images(images(n - 1, 1)),
            test: Examples::Images(images(10, 2)),
        };
        let mut m = LeastSquares {
            theta: vec![0.0; 3],
            zero_grad: false,
        };
        let e = train_model(
            &cfg,
            &mut m,
            &small,
            empty.path(),
            false,
            Arc::new(AtomicBool::new(false)),
            &mut crate::NoProgress,
        );
        assert_eq!(key(e), "data");
    }

    #[test]
    fn divergence_stops_with_the_last_good_checkpoint_intact() {
        let n = 24;
        let cfg = config(n, "", "mode = \"non-private\"").clone();
        let mut cfg = cfg;
        cfg.training.learning_rate = 1e6;
        cfg.training.momentum = 0.0;
        let data = data(n, 10);
        let dir = tempfile::tempdir().unwrap();
        let mut model = LeastSquares {
            theta: vec![1.0; 50],
            zero_grad: false,
        };
        let r = train_model(
            &cfg,
            &mut model,
            &data,
            dir.path(),
            false,
            Arc::new(AtomicBool::new(false)),
            &mut crate::NoProgress,
        );
        assert!(matches!(r, Err(TrainError::Diverged(_))), "{r:?}");
        let ck = Checkpoint::load(dir.path()).unwrap().unwrap();
        assert!(ck.params.iter().all(|p| p.is_finite()));
        assert_eq!(ck.header.step % 3, 0, "an epoch-end (or step-0) checkpoint");
    }

    #[test]
    fn smoke_run_with_a_real_model_learns() {
        let cfg = TrainConfig::from_toml_str(
            r#"
seed = 3
[data]
dataset = "synthetic-images"
train_examples = 300
test_examples = 100
[model]
kind = "logistic"
[training]
epochs = 2
batch_size = 30
learning_rate = 0.5
momentum = 0.5
[privacy]
clip_norm = 1.0
method = "bisr"
band = 2
epsilon = 8.0
delta = 1e-5
"#,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = train(
            &cfg,
            dir.path(),
            false,
            Arc::new(AtomicBool::new(false)),
            &mut crate::NoProgress,
        )
        .unwrap();
        assert!(s.completed);
        assert!(s.test_accuracy.unwrap() > 0.3, "{s:?}");
        assert_eq!(s.accountant.as_deref(), Some("gaussian"));
        assert!(s.epsilon.unwrap() <= 8.0 && s.epsilon.unwrap() > 7.9);
        assert!(s.warnings.iter().any(|w| w.contains("NOT for a real")));
        for f in [
            METRICS_FILE,
            "summary.json",
            CONFIG_FILE,
            "model.safetensors",
            "release.json",
        ] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        // No secret is left behind, and nothing in the folder is readable by others.
        assert!(!dir.path().join("checkpoint.bin").exists());
        assert!(s.checkpoint.starts_with("deleted"), "{}", s.checkpoint);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(dir.path()), 0o700);
            for e in fs::read_dir(dir.path()).unwrap() {
                let p = e.unwrap().path();
                assert_eq!(mode(&p), 0o600, "{}", p.display());
            }
        }
        // Every diagnostic computed from private data without noise is labelled.
        let first = fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
        let m: StepMetrics = serde_json::from_str(first.lines().next().unwrap()).unwrap();
        assert_eq!(m.outside_dp, STEP_DIAGNOSTICS);
        assert_eq!(s.outside_dp, ["train_loss_last_epoch"]);
        // The release scores the same test accuracy without the checkpoint.
        let e = crate::release::evaluate_release(dir.path()).unwrap();
        assert_eq!(Some(e.test_accuracy), s.test_accuracy);
        // A second fresh run into the completed folder is refused.
        let again = train(
            &cfg,
            dir.path(),
            false,
            Arc::new(AtomicBool::new(false)),
            &mut crate::NoProgress,
        );
        assert!(matches!(again, Err(TrainError::Config { .. })));
    }

    #[test]
    fn mc_bnb_accountant_calibrates_reproducibly_across_resume() {
        let n = 24;
        let cfg = config(
            n,
            "",
            "clip_norm = 1.0\nmethod = \"bisr\"\nband = 2\nepsilon = 4.0\ndelta = 0.01\naccountant = \"mc-bnb\"\nmc_samples = 4000",
        );
        let data = data(n, 10);
        let dir = tempfile::tempdir().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut m = LeastSquares {
            theta: vec![0.0; 4],
            zero_grad: false,
        };
        let part = train_model(
            &cfg,
            &mut m,
            &data,
            dir.path(),
            false,
            stop.clone(),
            &mut StopAt(2, stop),
        )
        .unwrap();
        assert!(!part.completed);
        let mut m = LeastSquares {
            theta: vec![0.0; 4],
            zero_grad: false,
        };
        let done = train_model(
            &cfg,
            &mut m,
            &data,
            dir.path(),
            true,
            Arc::new(AtomicBool::new(false)),
            &mut crate::NoProgress,
        )
        .unwrap();
        assert!(done.completed);
        assert_eq!(done.accountant.as_deref(), Some("mc-bnb"));
        assert_eq!(done.noise_multiplier, part.noise_multiplier);
        assert!(done.epsilon.unwrap() <= 4.0);
        assert!(done.warnings.iter().any(|w| w.contains("Monte Carlo")));
    }

    #[test]
    fn noise_state_round_trips_through_the_compact_encoding() {
        let cfg = config(24, "", PRIVATE);
        let plan = PrivacyPlan::build(&cfg, &cfg.validate().unwrap().mechanism).unwrap();
        let (mut a, _) = plan
            .noise_source(7, NoiseSeed::Fixed([4; 32]), None)
            .unwrap();
        let mut buf = vec![0f32; 7];
        for _ in 0..4 {
            a.fill_next(&mut buf).unwrap();
        }
        let state = a.save_state().unwrap();
        let (mut b, safe) = plan
            .noise_source(7, NoiseSeed::FromCheckpoint, Some(&state))
            .unwrap();
        assert!(!safe, "a fixed key is not release-safe");
        let mut other = vec![0f32; 7];
        a.fill_next(&mut buf).unwrap();
        b.fill_next(&mut other).unwrap();
        assert_eq!(buf, other);
        assert!(
            plan.noise_source(7, NoiseSeed::FromCheckpoint, Some(&state[..5]))
                .is_err()
        );
        let (_, safe) = plan.noise_source(7, NoiseSeed::Os, None).unwrap();
        assert!(safe, "an OS key is release-safe");
    }

    #[test]
    fn shipped_smoke_config_runs_and_leaves_metrics_and_summary() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/smoke.toml");
        let cfg = TrainConfig::from_toml_file(&path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = train(
            &cfg,
            dir.path(),
            false,
            Arc::new(AtomicBool::new(false)),
            &mut crate::NoProgress,
        )
        .unwrap();
        assert!(s.completed && s.test_accuracy.unwrap() > 0.5, "{s:?}");
        let lines = fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
        assert_eq!(lines.lines().count(), s.total_steps);
        let back: Summary =
            serde_json::from_str(&fs::read_to_string(dir.path().join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(back, s);
    }
}
