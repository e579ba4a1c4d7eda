//! The release artifact of a completed run: what a user may publish or hand over, kept apart
//! from the run's secrets.
//!
//! * `model.safetensors`: the final parameters θ_n as named f32 tensors (PyTorch-style names and
//!   shapes from [`DpModel::param_shapes`]; candle, PyTorch and Hugging Face read the format).
//! * `release.json`: the privacy guarantee the parameters carry — ε, δ, the accountant and the
//!   sampling it assumes, method, band, sensitivity with its kind, noise multiplier, steps, clip
//!   norm — plus the config hash, the lrmf version and the seed policy.
//!
//! Both are a post-processing of the DP release (the noisy trajectory), so they carry the
//! run's (ε, δ) guarantee. Neither holds a secret: the noise key and the sampler seed live only
//! in `checkpoint.bin`, which a completed run deletes unless asked to keep it.
//! [`evaluate_release`] scores the artifact on the test split its config names, without the
//! checkpoint (`lrmf eval --model DIR`).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::TrainData;
use crate::metrics::Summary;
use crate::model::DpModel;
use crate::{CONFIG_FILE, Result, TrainError};

/// File name of the released parameters.
pub const MODEL_FILE: &str = "model.safetensors";
/// File name of the release's privacy description.
pub const RELEASE_FILE: &str = "release.json";

/// What `release.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// `lrmf` version that trained the model.
    pub lrmf_version: String,
    /// The parameter file beside this one.
    pub model_file: String,
    /// Data set and model architecture.
    pub dataset: String,
    /// Model architecture (`cnn`, `text`, …).
    pub model: String,
    /// `private` or `non-private` (then every privacy field is `null`: no guarantee).
    pub mode: String,
    /// ε of the (ε, δ) guarantee.
    pub epsilon: Option<f64>,
    /// δ.
    pub delta: Option<f64>,
    /// Accountant that certified ε.
    pub accountant: Option<String>,
    /// The batch sampler the guarantee assumes.
    pub sampling: String,
    /// Factorization method.
    pub method: String,
    /// Band p (banded methods).
    pub band: Option<usize>,
    /// sens(C) under the run's participation pattern.
    pub sensitivity: Option<f64>,
    /// `closed-form`, `exact` or `upper-bound`.
    pub sensitivity_kind: Option<String>,
    /// Noise multiplier z.
    pub noise_multiplier: Option<f64>,
    /// Steps n.
    pub steps: usize,
    /// Epochs k (participations per example).
    pub epochs: usize,
    /// Per-example clip norm.
    pub clip_norm: Option<f64>,
    /// SHA-256 of the run's config (and the files it reads).
    pub config_hash: String,
    /// Where the noise key and the sampler seed came from.
    pub seed_policy: String,
    /// Test accuracy measured at the end of the run (test split, outside the training data).
    pub test_accuracy: Option<f64>,
}

impl Release {
    /// The release description of a completed run.
    pub fn from_summary(s: &Summary) -> Self {
        Self {
            lrmf_version: env!("CARGO_PKG_VERSION").into(),
            model_file: MODEL_FILE.into(),
            dataset: s.dataset.clone(),
            model: s.model.clone(),
            mode: s.mode.clone(),
            epsilon: s.epsilon,
            delta: s.delta,
            accountant: s.accountant.clone(),
            sampling: s.sampling.clone(),
            method: s.method.clone(),
            band: s.band,
            sensitivity: s.sensitivity,
            sensitivity_kind: s.sensitivity_kind.clone(),
            noise_multiplier: s.noise_multiplier,
            steps: s.total_steps,
            epochs: s.epochs,
            clip_norm: s.clip_norm,
            config_hash: s.config_hash.clone(),
            seed_policy: s.seed_policy.clone(),
            test_accuracy: s.test_accuracy,
        }
    }
}

fn other(what: &str, e: impl std::fmt::Display) -> TrainError {
    TrainError::Other(format!("{what}: {e}"))
}

/// `model.safetensors` bytes of `model`'s parameters. O(d).
pub fn model_bytes(model: &dyn DpModel) -> Result<Vec<u8>> {
    use safetensors::tensor::{Dtype, TensorView};
    let params = model.params();
    let shapes = model.param_shapes();
    let total: usize = shapes
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    if total != params.len() {
        return Err(TrainError::Shape(format!(
            "parameter shapes cover {total} values, the model has {}",
            params.len()
        )));
    }
    let mut bytes = Vec::with_capacity(shapes.len());
    let mut offset = 0;
    for (_, shape) in &shapes {
        let len: usize = shape.iter().product();
        let block: Vec<u8> = params[offset..offset + len]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        bytes.push(block);
        offset += len;
    }
    let views = shapes
        .iter()
        .zip(&bytes)
        .map(|((name, shape), b)| {
            TensorView::new(Dtype::F32, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| other("model.safetensors", e))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        (
            "lrmf_layout".to_string(),
            "conv weights [C_out, kH, kW, C_in] (channels-last); linear [out, in]".to_string(),
        ),
    ]);
    safetensors::serialize(views, Some(meta)).map_err(|e| other("model.safetensors", e))
}

/// Whether `dir` holds a completed run's release (`release.json`).
pub fn is_released(dir: &Path) -> bool {
    dir.join(RELEASE_FILE).exists()
}

/// Writes `model.safetensors` and `release.json` into `dir` (private, atomic).
pub fn write_release(dir: &Path, model: &dyn DpModel, summary: &Summary) -> Result<()> {
    crate::store::atomic_write(&dir.join(MODEL_FILE), &model_bytes(model)?)?;
    let mut text = serde_json::to_string_pretty(&Release::from_summary(summary))
        .map_err(|e| other("release.json", e))?;
    text.push('\n');
    crate::store::atomic_write(&dir.join(RELEASE_FILE), text.as_bytes())
}

/// The parameters stored in `dir/model.safetensors`, read with candle, in the order of
/// `model`'s [`DpModel::param_shapes`] (names and shapes must match).
pub fn load_params(dir: &Path, model: &dyn DpModel) -> Result<Vec<f32>> {
    let path = dir.join(MODEL_FILE);
    let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu)
        .map_err(|e| other(&path.display().to_string(), e))?;
    let mut out = Vec::with_capacity(model.num_params());
    for (name, shape) in model.param_shapes() {
        let t = tensors
            .get(&name)
            .ok_or_else(|| TrainError::Shape(format!("{} has no tensor {name}", path.display())))?;
        if t.dims() != shape.as_slice() {
            return Err(TrainError::Shape(format!(
                "{name} has shape {:?} in {}, the model needs {shape:?}",
                t.dims(),
                path.display()
            )));
        }
        let v = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| other(&name, e))?;
        out.extend(v);
    }
    Ok(out)
}

/// What `lrmf eval` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// The run folder evaluated.
    pub model_dir: String,
    /// Data set.
    pub dataset: String,
    /// Model architecture.
    pub model: String,
    /// Test examples scored.
    pub num_test: usize,
    /// Mean test cross-entropy.
    pub test_loss: f64,
    /// Fraction of the test split classified correctly.
    pub test_accuracy: f64,
    /// ε of the release (`null` for a non-private run).
    pub epsilon: Option<f64>,
}

/// Scores the release in `dir` (its `config.toml`, `release.json` and `model.safetensors`) on
/// the test split the config names. Needs no checkpoint. O(test split · forward).
pub fn evaluate_release(dir: &Path) -> Result<EvalReport> {
    let missing = |f: &str| TrainError::Config {
        key: "--model".into(),
        message: format!(
            "{} holds no {f}: pass the folder of a completed `lrmf train` run",
            dir.display()
        ),
    };
    for f in [CONFIG_FILE, RELEASE_FILE, MODEL_FILE] {
        if !dir.join(f).is_file() {
            return Err(missing(f));
        }
    }
    let config = TrainConfig::from_toml_file(&dir.join(CONFIG_FILE))?;
    let release: Release = serde_json::from_slice(&std::fs::read(dir.join(RELEASE_FILE))?)
        .map_err(|e| other(RELEASE_FILE, e))?;
    config.check_data()?;
    let data = TrainData::load(&config.data)?;
    let mut model = crate::trainer::build_model(&config, &data, [0; 32])?;
    let params = load_params(dir, model.as_ref())?;
    model.set_params(&params)?;
    let (test_loss, test_accuracy) =
        crate::evaluate(model.as_ref(), &data.test, config.training.eval_batch_size)?;
    Ok(EvalReport {
        model_dir: dir.display().to_string(),
        dataset: release.dataset,
        model: release.model,
        num_test: data.test.len(),
        test_loss,
        test_accuracy,
        epsilon: release.epsilon,
    })
}
