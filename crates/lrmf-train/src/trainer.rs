//! The training loop: one entry point from a validated config to a run folder holding
//! `metrics.jsonl`, `summary.json` and an atomic checkpoint, with exact resume and a stop flag.
//!
//! Split by concern: [`setup`] (seeds, the folder, the session: sampler, privacy plan, noise,
//! optimizer, resume), [`step`] (one private step, MATH.md §1), [`report`] (warnings, summary,
//! release). This file holds the entry points and the short loop that ties them together; it
//! touches no file itself (the run folder is written through `store`, `checkpoint`, `metrics`
//! and `release`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{RunShape, TrainConfig, Validated};
use crate::data::{Examples, TrainData};
use crate::metrics::{Progress, Summary};
use crate::model::DpModel;
use crate::{Result, TrainError};

mod report;
mod setup;
mod step;
#[cfg(test)]
mod tests;

use setup::{Session, prepare};

/// File name of the resolved config written into a run folder.
pub const CONFIG_FILE: &str = "config.toml";

/// Warning attached to runs with a fixed `seed`.
pub const FIXED_SEED_WARNING: &str = "seed is fixed in the config: the run is reproducible, but \
     anyone who knows the seed can recompute the batches and remove the noise — NOT for a real \
     private release";

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
            let mut cnn = Cnn::new(cfg, seed)?;
            cnn.set_matmul(m.matmul);
            Box::new(cnn)
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

/// The loop of a prepared run: set up (or resume) the session, then per step: stop check, one
/// private step, the test evaluation at epoch ends, its metrics line, and a checkpoint at epoch
/// ends and every `checkpoint_every` steps; last the summary and the release.
#[allow(clippy::too_many_arguments)]
fn run(
    config: &TrainConfig,
    checked: &Validated,
    model: &mut dyn DpModel,
    data: &TrainData,
    out_dir: &Path,
    start: setup::Start,
    stop: Arc<AtomicBool>,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    check_sizes(&checked.shape, config.data.validation, data)?;
    let mut s = Session::open(config, checked, model, out_dir, start)?;
    let warnings = s.warnings();
    progress.start(&s.run_info(&warnings));
    let (b, n, t) = (
        s.shape.steps_per_epoch,
        s.shape.total_steps,
        &config.training,
    );
    if s.first_step > 0 {
        progress.message(&format!("resumed at step {} of {n}", s.first_step));
    }
    let mut last_eval: Option<(f64, f64)> = None;
    let mut step = s.first_step;
    while step < n {
        if stop.load(Ordering::SeqCst) {
            s.checkpoint()?;
            progress.message(&format!(
                "stopped at step {step} of {n}; checkpoint written"
            ));
            break;
        }
        let mut m = s.step(model, data, step)?;
        step += 1;
        let epoch_end = step % b == 0;
        if epoch_end && (t.eval_each_epoch || step == n) {
            let (tl, ta) = evaluate(&*model, &data.test, t.eval_batch_size)?;
            (m.test_loss, m.test_accuracy) = (Some(tl), Some(ta));
            last_eval = Some((tl, ta));
            progress.epoch(m.epoch, tl, ta);
        }
        s.metrics.write(&m)?;
        progress.step(&m);
        if epoch_end || (t.checkpoint_every > 0 && step % t.checkpoint_every == 0) {
            s.checkpoint()?;
        }
    }
    if step == n && last_eval.is_none() {
        // Resumed after the final step's evaluation, or n not at an epoch end (never: n = k·b).
        last_eval = Some(evaluate(&*model, &data.test, t.eval_batch_size)?);
    }
    s.metrics.sync()?;
    let mut summary = s.summary(step, last_eval, warnings);
    if let (Some(v), true) = (&data.validation, summary.completed) {
        // Scored on held-out training examples without noise: outside the DP guarantee.
        summary.validation_accuracy = Some(evaluate(&*model, v, t.eval_batch_size)?.1);
        summary.outside_dp.push("validation_accuracy".into());
    }
    report::finish(config, out_dir, &*model, summary)
}

/// The data must have the sizes the config says (the sampler and the accounting use them).
fn check_sizes(shape: &RunShape, validation: Option<usize>, data: &TrainData) -> Result<()> {
    let num_validation = data.validation.as_ref().map(Examples::len);
    if data.train.len() != shape.num_train
        || data.test.len() != shape.num_test
        || num_validation != validation
    {
        return Err(TrainError::Config {
            key: "data".into(),
            message: format!(
                "config says {} train / {} test / {:?} validation examples, the data has {} / {} / {:?}",
                shape.num_train,
                shape.num_test,
                validation,
                data.train.len(),
                data.test.len(),
                num_validation
            ),
        });
    }
    Ok(())
}
