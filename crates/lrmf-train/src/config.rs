//! The run configuration: one readable TOML file, parsed strictly (`deny_unknown_fields`) and
//! validated completely before any training starts, so a typo or an impossible value costs
//! nothing but a clear message naming the key and the allowed range.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use lrmf_factor::{Method, Objective};
use lrmf_schedule::{Kind, Source};

use crate::model::Precision;
use crate::sampler::Batching;
use crate::{Result, TrainError};

mod validate;
pub(crate) use validate::workload_error;
pub use validate::{Validated, field_key};

/// The whole configuration of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// A label for the run (free text, shown in the summary).
    #[serde(default)]
    pub name: Option<String>,
    /// A fixed seed for every random choice (init, bins, noise). Omit it for a real private
    /// release: then the seeds come from the OS. A fixed seed is reported as not for release.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Which data.
    pub data: DataConfig,
    /// Which model.
    pub model: ModelConfig,
    /// Epochs, batch size, learning rate, momentum, weight decay.
    pub training: TrainingConfig,
    /// The learning-rate schedule χ.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Clipping, noise, factorization, accounting, sampling.
    pub privacy: PrivacyConfig,
    /// Where outputs go.
    #[serde(default)]
    pub output: OutputConfig,
}

/// The data sets a run can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// CIFAR-10 (prepared by `cargo xtask data`): 50,000 train / 10,000 test images.
    Cifar10,
    /// IMDB reviews (prepared by `cargo xtask data`): 25,000 train / 25,000 test reviews.
    Imdb,
    /// Generated CIFAR-shaped images (no files; for smoke tests).
    SyntheticImages,
    /// Generated token sequences (no files; for smoke tests).
    SyntheticText,
}

impl DatasetKind {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Imdb => "imdb",
            DatasetKind::SyntheticImages => "synthetic-images",
            DatasetKind::SyntheticText => "synthetic-text",
        }
    }

    /// Whether the examples are token sequences.
    pub fn is_text(self) -> bool {
        matches!(self, DatasetKind::Imdb | DatasetKind::SyntheticText)
    }

    /// Full (train, test) sizes of the real data sets; `None` for generated ones.
    pub fn full_sizes(self) -> Option<(usize, usize)> {
        match self {
            DatasetKind::Cifar10 => Some((50_000, 10_000)),
            DatasetKind::Imdb => Some((25_000, 25_000)),
            _ => None,
        }
    }
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `cifar10`, `imdb`, `synthetic-images` or `synthetic-text`.
    pub dataset: DatasetKind,
    /// Data root holding the prepared folders (default: `$LRMF_DATA_DIR`, else `data/`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Training examples: a prefix of the real training split, or the size of a generated one
    /// (default: all; generated: 2,000).
    #[serde(default)]
    pub train_examples: Option<usize>,
    /// Test examples (prefix / generated size; default: all; generated: 500).
    #[serde(default)]
    pub test_examples: Option<usize>,
    /// Text only: tokens per example (default 256 for IMDB, 64 generated).
    #[serde(default)]
    pub max_len: Option<usize>,
    /// Text only: vocabulary size K of the word tokenizer (default 10,000 IMDB, 1,000 generated).
    #[serde(default)]
    pub vocab_size: Option<usize>,
    /// Examples held out of the training examples as a validation split (default: none). They
    /// are never trained on: the run trains, samples its batches and accounts its privacy on
    /// the remaining `train_examples − validation` examples, and scores the final model on the
    /// held-out ones (`validation_accuracy` in the summary, outside the DP guarantee). Never
    /// taken from the test split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<usize>,
    /// Seed of the validation split: which examples are held out (default 0). Independent of
    /// the run's `seed`, so every run of a study holds out the same examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_seed: Option<u64>,
}

/// Default generated training-set size.
pub const SYNTHETIC_TRAIN: usize = 2_000;
/// Default generated test-set size.
pub const SYNTHETIC_TEST: usize = 500;

impl DataConfig {
    /// (train, test) sizes the run will use; train is what is left after the validation split
    /// (the N of sampling and accounting).
    pub fn sizes(&self) -> (usize, usize) {
        let te = self
            .dataset
            .full_sizes()
            .map_or(SYNTHETIC_TEST, |(_, te)| te);
        (
            self.pool_size()
                .saturating_sub(self.validation.unwrap_or(0)),
            self.test_examples.unwrap_or(te),
        )
    }

    /// Training examples before the validation split is held out: `train_examples`, else the
    /// whole training split (generated: 2,000).
    pub fn pool_size(&self) -> usize {
        let tr = self
            .dataset
            .full_sizes()
            .map_or(SYNTHETIC_TRAIN, |(tr, _)| tr);
        self.train_examples.unwrap_or(tr)
    }

    /// The checks of `validation` and `validation_seed` (after `train_examples` is checked).
    pub(crate) fn validate_validation(&self) -> Result<()> {
        let pool = self.pool_size();
        match (self.validation, self.validation_seed) {
            (Some(v), _) if !(1..pool).contains(&v) => Err(cfg_err(
                "data.validation",
                format!(
                    "must be in 1..={} (fewer than the {pool} training examples), got {v}",
                    pool.saturating_sub(1)
                ),
            )),
            (None, Some(_)) => Err(cfg_err(
                "data.validation_seed",
                "only applies with data.validation (the number of held-out examples)",
            )),
            _ => Ok(()),
        }
    }

    /// Tokens per text example.
    pub fn max_len(&self) -> usize {
        self.max_len.unwrap_or(match self.dataset {
            DatasetKind::Imdb => 256,
            _ => 64,
        })
    }

    /// Vocabulary size of the word tokenizer.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size.unwrap_or(match self.dataset {
            DatasetKind::Imdb => 10_000,
            _ => 1_000,
        })
    }

    /// The data root: `dir`, else `$LRMF_DATA_DIR`, else `data/`.
    pub fn root(&self) -> PathBuf {
        match &self.dir {
            Some(d) => d.clone(),
            None => lrmf_data::DataDir::from_env().root().to_path_buf(),
        }
    }
}

/// The model architectures (see [`crate::model`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The CIFAR convolutional network ([`crate::model::Cnn`]); image data.
    Cnn,
    /// A multi-layer perceptron on flattened images ([`crate::model::Mlp`]).
    Mlp,
    /// Logistic regression on flattened images (an MLP without hidden layer).
    Logistic,
    /// Embedding + mean pooling + linear ([`crate::model::TextClassifier`]); text data.
    Text,
}

impl ModelKind {
    /// Config spelling.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Cnn => "cnn",
            ModelKind::Mlp => "mlp",
            ModelKind::Logistic => "logistic",
            ModelKind::Text => "text",
        }
    }
}

/// `[model]`: the architecture and its size knobs (each only where it applies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `cnn`, `mlp`, `logistic` (image data) or `text` (text data).
    pub kind: ModelKind,
    /// cnn: widths of the three convolution blocks (default [32, 64, 128]).
    #[serde(default)]
    pub channels: Option<[usize; 3]>,
    /// cnn: group norm after every convolution (default true).
    #[serde(default)]
    pub group_norm: Option<bool>,
    /// cnn: group-norm groups, dividing every width (default 16, or 1 if 16 does not divide).
    #[serde(default)]
    pub groups: Option<usize>,
    /// mlp: hidden widths (default `[256]`); cnn: at most one hidden dense width (default none).
    #[serde(default)]
    pub hidden: Option<Vec<usize>>,
    /// text: embedding width (default 64).
    #[serde(default)]
    pub embed_dim: Option<usize>,
    /// cnn: input precision of the convolutions' products, `f32` (default) or `bf16` (inputs
    /// rounded to bf16, f32 sums, on every machine; on Intel AMX tiles where the machine has
    /// them, several times faster per product, else on the f32 kernels).
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub matmul: Precision,
}

/// `[training]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Epochs k ≥ 1 (= participations per example).
    pub epochs: usize,
    /// Expected batch size; steps per epoch b = ⌊N / batch_size⌋ (≥ 1), and the gradient sum is
    /// divided by N/b.
    pub batch_size: usize,
    /// Base learning rate η > 0.
    pub learning_rate: f64,
    /// Heavy-ball momentum μ ∈ [0, 1) (default 0).
    #[serde(default)]
    pub momentum: f64,
    /// Multiplicative weight decay λ ∈ (0, 1]: θ ← λ·θ − η·χ_t·m_t (default 1 = none; e.g.
    /// 0.9995 for a mild decay).
    #[serde(default = "one")]
    pub weight_decay: f64,
    /// Examples per evaluation forward pass (default 500).
    #[serde(default = "default_eval_batch")]
    pub eval_batch_size: usize,
    /// Evaluate on the test split after every epoch (default true; always at the end).
    #[serde(default = "yes")]
    pub eval_each_epoch: bool,
    /// Checkpoint every this many steps (0 = at the end of each epoch only; default 0).
    #[serde(default)]
    pub checkpoint_every: usize,
}

fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn default_eval_batch() -> usize {
    500
}

/// `[schedule]`: the learning-rate schedule χ (MATH.md §2, built by `lrmf-schedule`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `constant` (default), `exponential`, `polynomial`, `linear`, `cosine`, `step`, `step:K`,
    /// or `file:PATH` as on the CLI; `file` with the key `file` is the same as `file:PATH`.
    #[serde(default = "constant")]
    pub kind: String,
    /// Final rate β = χ_n / χ_1 ∈ (0, 1] of the decaying schedules (default 1).
    #[serde(default = "one")]
    pub lr_decay: f64,
    /// Linear warm-up steps w before the schedule (default 0; increasing rates are outside the
    /// paper's theory, which the run reports as a warning).
    #[serde(default)]
    pub warmup_steps: usize,
    /// With `kind = "file"`: a file of n − w rates, one per line (`#` comments allowed); the
    /// same as `kind = "file:PATH"`.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

fn constant() -> String {
    "constant".into()
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: constant(),
            lr_decay: 1.0,
            warmup_steps: 0,
            file: None,
        }
    }
}

impl ScheduleConfig {
    /// The shape of the schedule: a built-in kind, or the rates of the schedule file
    /// ([`ScheduleConfig::file_path`], read here). Ranges (β, warm-up, the file's length) are
    /// the mechanism's to check.
    pub fn kind(&self) -> Result<Kind> {
        if let Some(path) = self.file_path() {
            let key = self.file_key();
            let text = std::fs::read_to_string(path)
                .map_err(|e| cfg_err(key, format!("cannot read {}: {e}", path.display())))?;
            return Kind::parse_file_text(&text).map_err(|e| cfg_err(key, e.to_string()));
        }
        match (self.kind.as_str(), &self.file) {
            ("file", None) => Err(cfg_err(
                "schedule.file",
                "kind = \"file\" needs file = \"PATH\" (one rate per line)",
            )),
            (_, Some(_)) => Err(cfg_err(
                "schedule.file",
                format!("only applies to kind = \"file\", not {:?}", self.kind),
            )),
            (k, None) => {
                Kind::parse_builtin(k).map_err(|e| cfg_err("schedule.kind", e.to_string()))
            }
        }
    }

    /// The schedule file: `file` with `kind = "file"`, or PATH of `kind = "file:PATH"`.
    pub fn file_path(&self) -> Option<&Path> {
        match (self.kind.as_str(), &self.file) {
            ("file", Some(path)) => Some(path),
            (k, None) => match Kind::parse_source(k) {
                Ok(Source::File(path)) => Some(Path::new(path)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The TOML key that names the schedule file in errors: `schedule.file`, or
    /// `schedule.kind` for `kind = "file:PATH"`.
    pub(crate) fn file_key(&self) -> &'static str {
        if self.file.is_some() {
            "schedule.file"
        } else {
            "schedule.kind"
        }
    }
}

/// Private (clipping + correlated noise) or a non-private baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrivacyMode {
    /// Clipped gradients and correlated Gaussian noise.
    Private,
    /// No clipping, no noise (baselines only; no privacy guarantee).
    NonPrivate,
}

/// Which accountant turns the noise multiplier into (ε, δ): `gaussian` (no amplification, any
/// b-min-separated sampling) or `mc-bnb` (Monte Carlo balls-in-bins, requires
/// `sampling = "balls-in-bins"`; reports an upper confidence bound). The Poisson accountants of
/// the table hold for Poisson-sampled DP-SGD, which the trainer does not run: validation refuses
/// them.
pub use lrmf_privacy::accounting::AccountantKind;

/// `[privacy]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// `private` (default) or `non-private`.
    #[serde(default = "private")]
    pub mode: PrivacyMode,
    /// Per-example clip norm (private mode; > 0).
    #[serde(default)]
    pub clip_norm: Option<f64>,
    /// Factorization method, by its command-line name (`lrmf_factor::Method::ALL`; default
    /// identity = DP-SGD).
    #[serde(default = "dp_sgd", with = "by_name")]
    pub method: Method,
    /// Band p of the banded methods ([`Method::is_banded`]), 1 ≤ p ≤ total steps.
    #[serde(default)]
    pub band: Option<usize>,
    /// What the optimized methods minimize: `mean-se` (default) or `max-se`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_by_name")]
    pub objective: Option<Objective>,
    /// BLT buffers d of blt / lr-blt, 1..=10 (default: chosen by the optimizer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffers: Option<usize>,
    /// Target ε > 0 (with `delta`); exclusive with `noise_multiplier`.
    #[serde(default)]
    pub epsilon: Option<f64>,
    /// Target δ ∈ (0, 1).
    #[serde(default)]
    pub delta: Option<f64>,
    /// Noise multiplier z > 0 (sensitivity-1 Gaussian), instead of a target ε.
    #[serde(default)]
    pub noise_multiplier: Option<f64>,
    /// Accountant (default `gaussian`), by its name in [`AccountantKind`]'s table.
    #[serde(default = "gaussian", with = "accountant_by_name")]
    pub accountant: AccountantKind,
    /// How batches are drawn (default `balls-in-bins`).
    #[serde(default = "balls_in_bins")]
    pub sampling: Batching,
    /// mc-bnb: Monte Carlo samples per direction (default: the accountant's).
    #[serde(default)]
    pub mc_samples: Option<usize>,
    /// mc-bnb: confidence level of the ε bound, in (0, 1) (default: the accountant's).
    #[serde(default)]
    pub mc_confidence: Option<f64>,
}

fn private() -> PrivacyMode {
    PrivacyMode::Private
}
fn dp_sgd() -> Method {
    Method::Identity
}

/// Serde of a [`Method`] as its command-line name (the JSON and TOML spelling of before).
mod by_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(m: &lrmf_factor::Method, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(m)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<lrmf_factor::Method, D::Error> {
        let name = String::deserialize(d)?;
        name.parse::<lrmf_factor::Method>()
            .map_err(|e| D::Error::custom(e.message()))
    }
}

/// Serde of an [`AccountantKind`] as its name.
mod accountant_by_name {
    use lrmf_privacy::accounting::AccountantKind;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(k: &AccountantKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(k.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AccountantKind, D::Error> {
        let name = String::deserialize(d)?;
        name.parse::<AccountantKind>().map_err(|_| {
            D::Error::custom(format!(
                "unknown accountant `{name}`, expected `gaussian` or `mc-bnb`"
            ))
        })
    }
}

/// Serde of an optional [`Objective`] as its command-line name.
mod opt_by_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(
        o: &Option<lrmf_factor::Objective>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match o {
            Some(o) => s.collect_str(o),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<lrmf_factor::Objective>, D::Error> {
        let name = String::deserialize(d)?;
        name.parse()
            .map(Some)
            .map_err(|e: lrmf_factor::FactorError| D::Error::custom(e.message()))
    }
}
fn gaussian() -> AccountantKind {
    AccountantKind::Gaussian
}
fn balls_in_bins() -> Batching {
    Batching::BallsInBins
}

/// `[output]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Run folder (default `runs/<name>`); the CLI's `--out` overrides it.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Keep `checkpoint.bin` (it holds the noise key and the sampler seed: secret) after a
    /// completed run. Default `false`: the completed run deletes it and keeps only the release.
    #[serde(default)]
    pub keep_checkpoint: bool,
    /// Write the diagnostics computed from the private training data *without noise* (per-step
    /// loss, accuracy, batch size, clipped fraction; the last epoch's training loss). They are
    /// outside the (ε, δ) guarantee and labelled so (`outside_dp`). Default `true`.
    #[serde(default = "yes")]
    pub diagnostics: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            dir: None,
            keep_checkpoint: false,
            diagnostics: true,
        }
    }
}

/// The shape of a run, derived from a validated config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunShape {
    /// Training examples N.
    pub num_train: usize,
    /// Test examples.
    pub num_test: usize,
    /// Steps per epoch b = ⌊N / batch_size⌋ (the min-separation).
    pub steps_per_epoch: usize,
    /// Epochs k.
    pub epochs: usize,
    /// Total steps n = k·b.
    pub total_steps: usize,
}

fn cfg_err(key: &str, message: impl Into<String>) -> TrainError {
    TrainError::Config {
        key: key.into(),
        message: message.into(),
    }
}

impl TrainConfig {
    /// Parses TOML text (strictly: unknown keys are errors) and validates it.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let cfg: TrainConfig = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            // The key: an unknown one named by serde, else the one whose value is at the span.
            let named = unknown_key(&msg);
            let key = match (named, e.span()) {
                (k, Some(span)) => match (
                    k.or_else(|| key_at(text, span.start)),
                    table_at(text, span.start),
                ) {
                    (Some(k), Some(t)) => format!("{t}.{k}"),
                    (Some(k), None) => k,
                    (None, _) => "<config>".into(),
                },
                (Some(k), None) => k,
                (None, None) => "<config>".into(),
            };
            cfg_err(&key, e.to_string().trim_end().to_string())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a TOML file; see [`TrainConfig::from_toml_str`].
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| cfg_err("--config", format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml_str(&text).map_err(|e| match e {
            TrainError::Config { key, message } => TrainError::Config {
                key,
                message: format!("{message} (in {})", path.display()),
            },
            other => other,
        })
    }

    /// The config as TOML text.
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| TrainError::Other(format!("serialising config: {e}")))
    }

    /// SHA-256 (hex) of the config and of the contents of every file it reads besides the
    /// data (today: the schedule file), without `[data].dir`, `[output].dir` and
    /// `keep_checkpoint` (where the data lies, where a run is written and what is kept
    /// afterwards change no number of it, so a result keeps its hash on another machine); a
    /// checkpoint only resumes under the same hash, so a schedule file edited between sessions
    /// is refused. The data itself is pinned by `cargo xtask data`'s archive checksums.
    pub fn hash(&self) -> String {
        let mut c = self.clone();
        c.data.dir = None;
        c.output.dir = None;
        c.output.keep_checkpoint = false;
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&c).expect("config serialises"));
        if let Some(path) = self.schedule.file_path() {
            match std::fs::read(path) {
                Ok(bytes) => {
                    h.update(b"schedule.file contents\0");
                    h.update(Sha256::digest(&bytes));
                }
                Err(e) => h.update(format!("schedule.file unreadable: {e}").as_bytes()),
            }
        }
        lrmf_io::to_hex(&h.finalize())
    }

    /// The run folder: `[output].dir`, else `runs/<name>`, else `runs/<dataset>`.
    pub fn default_out_dir(&self) -> PathBuf {
        self.output.dir.clone().unwrap_or_else(|| {
            PathBuf::from("runs").join(
                self.name
                    .clone()
                    .unwrap_or_else(|| self.data.dataset.name().into()),
            )
        })
    }

    /// The run's shape (sizes, steps). Requires a validated config.
    pub fn shape(&self) -> RunShape {
        let (num_train, num_test) = self.data.sizes();
        let b = (num_train / self.training.batch_size.max(1)).max(1);
        RunShape {
            num_train,
            num_test,
            steps_per_epoch: b,
            epochs: self.training.epochs,
            total_steps: b * self.training.epochs,
        }
    }

    /// cnn widths (default [32, 64, 128]).
    pub fn cnn_channels(&self) -> [usize; 3] {
        self.model.channels.unwrap_or([32, 64, 128])
    }

    /// cnn group-norm groups (default 16 when it divides every width, else 1).
    pub fn cnn_groups(&self) -> usize {
        self.model.groups.unwrap_or_else(|| {
            if self.cnn_channels().iter().all(|c| c % 16 == 0) {
                16
            } else {
                1
            }
        })
    }

    /// The checks that need files: the data of a real data set must be prepared. The error
    /// names the command that fetches it (`cargo xtask data`).
    pub fn check_data(&self) -> Result<()> {
        let root = self.data.root();
        let dir = lrmf_data::DataDir::new(root);
        let res = match self.data.dataset {
            DatasetKind::Cifar10 => dir.cifar10().map(|_| ()),
            DatasetKind::Imdb => dir.imdb().map(|_| ()),
            _ => Ok(()),
        };
        res.map_err(|e| cfg_err("data.dir", e.to_string()))
    }
}

/// The `[table]` header in force at byte `pos` of `text` (`None` at the top level).
fn table_at(text: &str, pos: usize) -> Option<String> {
    text.get(..pos)?
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.contains(']'))
        .map(|l| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
}

/// The key of the `key = value` line holding byte `pos` of `text`, if that line is one.
fn key_at(text: &str, pos: usize) -> Option<String> {
    let line_start = text.get(..pos)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
}

/// The key named in a serde "unknown field `x`" message, if any.
fn unknown_key(msg: &str) -> Option<String> {
    let rest = msg.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
seed = 7
[data]
dataset = "synthetic-images"
train_examples = 200
test_examples = 50
[model]
kind = "mlp"
hidden = [16]
[training]
epochs = 2
batch_size = 20
learning_rate = 0.1
momentum = 0.9
[schedule]
kind = "cosine"
lr_decay = 0.1
[privacy]
clip_norm = 1.0
method = "bisr"
band = 4
epsilon = 8.0
delta = 1e-5
"#;

    /// Parses GOOD with `from` replaced by `to`; returns the error's key when it fails.
    fn check(from: &str, to: &str) -> Option<String> {
        assert!(GOOD.contains(from), "{from}");
        match TrainConfig::from_toml_str(&GOOD.replacen(from, to, 1)) {
            Ok(_) => None,
            Err(TrainError::Config { key, message }) => {
                assert!(!message.is_empty());
                Some(key)
            }
            Err(e) => panic!("not a config error: {e}"),
        }
    }

    #[test]
    fn good_config_parses_and_has_the_right_shape() {
        let c = TrainConfig::from_toml_str(GOOD).unwrap();
        let s = c.shape();
        assert_eq!((s.steps_per_epoch, s.total_steps, s.num_test), (10, 20, 50));
        // Round trip through TOML keeps the config and its hash.
        let back = TrainConfig::from_toml_str(&c.to_toml_string().unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.hash(), c.hash());
        let mut other = c.clone();
        other.output.dir = Some("elsewhere".into());
        other.data.dir = Some("/another/machine/data".into());
        assert_eq!(other.hash(), c.hash());
        other.training.learning_rate = 0.2;
        assert_ne!(other.hash(), c.hash());
    }

    #[test]
    fn bad_configs_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "momentum = 0.9",
                "momentum = 0.9\nmomentom = 1",
                "training.momentom",
            ),
            ("seed = 7", "seed = 7\nsed = 1", "sed"),
            ("epsilon = 8.0", "epsilon = -1.0", "privacy.epsilon"),
            (
                "epsilon = 8.0",
                "epsilon = 8.0\nnoise_multiplier = 1.0",
                "privacy.noise_multiplier",
            ),
            ("delta = 1e-5", "delta = 1.5", "privacy.delta"),
            ("band = 4", "band = 21", "privacy.band"),
            ("band = 4", "", "privacy.band"),
            ("method = \"bisr\"", "method = \"bisr2\"", "privacy.method"),
            ("clip_norm = 1.0", "clip_norm = 0.0", "privacy.clip_norm"),
            ("batch_size = 20", "batch_size = 201", "training.batch_size"),
            ("epochs = 2", "epochs = 0", "training.epochs"),
            ("momentum = 0.9", "momentum = 1.0", "training.momentum"),
            (
                "learning_rate = 0.1",
                "learning_rate = -0.1",
                "training.learning_rate",
            ),
            (
                "momentum = 0.9",
                "weight_decay = 0.0",
                "training.weight_decay",
            ),
            ("lr_decay = 0.1", "lr_decay = 1.5", "schedule.lr_decay"),
            (
                "lr_decay = 0.1",
                "lr_decay = 0.1\nwarmup_steps = 20",
                "schedule.warmup_steps",
            ),
            (
                "lr_decay = 0.1",
                "lr_decay = 0.1\nfile = \"x\"",
                "schedule.file",
            ),
            ("\"cosine\"", "\"cosinus\"", "schedule.kind"),
            (
                "train_examples = 200",
                "train_examples = 0",
                "data.train_examples",
            ),
            (
                "test_examples = 50",
                "test_examples = 50\nmax_len = 3",
                "data.max_len",
            ),
            ("hidden = [16]", "hidden = [0]", "model.hidden"),
            (
                "delta = 1e-5",
                "delta = 1e-5\naccountant = \"mc-bnb\"\nsampling = \"fixed-partition\"",
                "privacy.accountant",
            ),
            (
                "delta = 1e-5",
                "delta = 1e-5\nmc_samples = 10",
                "privacy.mc_samples",
            ),
            (
                "delta = 1e-5",
                "delta = 1e-5\naccountant = \"rdp-poisson\"",
                "privacy.accountant",
            ),
            (
                "delta = 1e-5",
                "delta = 1e-5\naccountant = \"laplace\"",
                "privacy.accountant",
            ),
            ("hidden = [16]", "embed_dim = 8", "model.embed_dim"),
            (
                "band = 4",
                "band = 4\nobjective = \"max\"",
                "privacy.objective",
            ),
            (
                "method = \"bisr\"\nband = 4",
                "method = \"blt\"\nbuffers = 11",
                "privacy.buffers",
            ),
            (
                "method = \"bisr\"\nband = 4",
                "method = \"dense-opt\"",
                "training.epochs",
            ),
            ("kind = \"mlp\"", "kind = \"text\"", "model.kind"),
            (
                "test_examples = 50",
                "test_examples = 50\nvalidation = 200",
                "data.validation",
            ),
            (
                "test_examples = 50",
                "test_examples = 50\nvalidation_seed = 3",
                "data.validation_seed",
            ),
            (
                "test_examples = 50",
                "test_examples = 50\nvalidation = 190",
                "training.batch_size",
            ),
        ];
        for (from, to, key) in cases {
            assert_eq!(check(from, to).as_deref(), Some(*key), "{to}");
        }
        // Unknown enum values are config errors too.
        assert!(check("\"synthetic-images\"", "\"mnist\"").is_some());
        // Non-private mode rejects privacy knobs.
        assert_eq!(
            check("clip_norm = 1.0", "mode = \"non-private\"\nclip_norm = 1.0").as_deref(),
            Some("privacy.clip_norm")
        );
    }

    #[test]
    fn validation_split_shrinks_the_training_set_of_sampling_and_accounting() {
        let c = TrainConfig::from_toml_str(
            &GOOD.replace("test_examples = 50", "test_examples = 50\nvalidation = 40"),
        )
        .unwrap();
        assert_eq!(c.data.pool_size(), 200);
        let s = c.shape();
        assert_eq!(
            (s.num_train, s.steps_per_epoch, s.total_steps),
            (160, 8, 16)
        );
        // Configs without a validation split keep their serialisation, hence their hash.
        let plain = TrainConfig::from_toml_str(GOOD).unwrap();
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("validation"), "{json}");
        assert_ne!(plain.hash(), c.hash());
    }

    #[test]
    fn schedule_files_read_alike_in_both_spellings() {
        let dir = tempfile::tempdir().unwrap();
        let rates = dir.path().join("rates.txt");
        // One rate per step (GOOD has n = 20 steps).
        std::fs::write(&rates, format!("1\n{}", "0.5 # halved\n".repeat(19))).unwrap();
        let path = rates.to_str().unwrap();
        let with = |schedule: &str| {
            TrainConfig::from_toml_str(&GOOD.replace("kind = \"cosine\"", schedule))
        };
        let long = with(&format!("kind = \"file\"\nfile = {path:?}")).unwrap();
        let short = with(&format!("kind = \"file:{path}\"")).unwrap();
        let want = Kind::File([vec![1.0], vec![0.5; 19]].concat());
        assert_eq!(long.schedule.kind().unwrap(), want);
        assert_eq!(short.schedule.kind().unwrap(), want);
        assert_eq!(short.schedule.file_path(), Some(rates.as_path()));
        // Both hash the file's contents: an edited file is a different run.
        let before = (long.hash(), short.hash());
        std::fs::write(&rates, format!("1\n{}", "0.25\n".repeat(19))).unwrap();
        assert!(long.hash() != before.0 && short.hash() != before.1);
        // A missing file is an error under the key that named it.
        let gone = |c: &TrainConfig| {
            let mut c = c.clone();
            c.schedule.kind = c.schedule.kind.replace("rates.txt", "gone.txt");
            c.schedule.file = c.schedule.file.map(|f| f.with_file_name("gone.txt"));
            c.schedule.kind().unwrap_err().to_string()
        };
        assert!(gone(&long).contains("schedule.file"), "{}", gone(&long));
        assert!(gone(&short).contains("schedule.kind"), "{}", gone(&short));
    }

    #[test]
    fn missing_real_data_names_the_fetch_command() {
        let dir = tempfile::tempdir().unwrap();
        let text = GOOD.replace("\"synthetic-images\"", "\"cifar10\"").replace(
            "[data]",
            &format!("[data]\ndir = {:?}", dir.path().to_str().unwrap()),
        );
        let c = TrainConfig::from_toml_str(&text).unwrap();
        let e = c.check_data().unwrap_err().to_string();
        assert!(e.contains("cargo xtask data"), "{e}");
    }

    #[test]
    fn shipped_configs_are_valid() {
        let dir = lrmf_data::setup::workspace_root().join("configs");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let c = TrainConfig::from_toml_file(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(c.shape().total_steps >= 1);
                count += 1;
            }
        }
        assert!(count >= 6, "found {count} configs");
    }
}
