//! The training configs of the accuracy experiments (quick mode and the full study), built as
//! typed TOML tables — no text formatting, so paths and names are escaped by the serializer —
//! and read through the trainer's own parser, so defaults and validation are those of a user's
//! config file and the config hashes those of the equivalent file.

use anyhow::{Context, Result};
use lrmf_factor::Method;
use lrmf_train::TrainConfig;
use lrmf_train::config::AccountantKind;
use lrmf_train::model::Precision;
use std::path::Path;
use toml::{Table, Value};

/// Everything that varies between the experiments' runs.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    /// The run's name (also its folder).
    pub name: String,
    /// The run's fixed seed (experiments are reproducible, not private releases).
    pub seed: u64,
    /// `cifar10` (the CNN with group norm) or `imdb` (the text model).
    pub dataset: &'a str,
    /// Prepared data folder.
    pub data_dir: &'a Path,
    /// Training examples: a prefix of the split (`None`: all).
    pub train_examples: Option<usize>,
    /// Test examples: a prefix of the split (`None`: all).
    pub test_examples: Option<usize>,
    /// Validation examples held out of the training set, and their seed.
    pub validation: Option<(usize, u64)>,
    /// Epochs.
    pub epochs: usize,
    /// Expected batch size.
    pub batch: usize,
    /// Initial learning rate.
    pub lr: f64,
    /// Test accuracy after every epoch (for the curves), else at the end only.
    pub eval_each_epoch: bool,
    /// Schedule kind and its decay β.
    pub schedule: (&'a str, f64),
    /// The private mechanism (method, band of the banded methods, accountant); `None` for a
    /// non-private baseline.
    pub private: Option<(Method, usize, AccountantKind)>,
    /// Input precision of the CNN's convolution products (`[model] matmul`; f32 is left out
    /// of the config, so its hash is that of a config without the key).
    pub matmul: Precision,
}

/// Privacy target of every private run.
pub const EPSILON: f64 = 9.0;
/// δ of every private run.
pub const DELTA: f64 = 1e-5;

/// The [`TrainConfig`] of `spec`: momentum 0.9, weight decay 1, clip norm 1, ε = 9, δ = 1e-5,
/// balls-in-bins batches, evaluation batches of 1000.
pub fn build(spec: &RunSpec<'_>) -> Result<TrainConfig> {
    let mut data = table([
        ("dataset", spec.dataset.into()),
        ("dir", spec.data_dir.display().to_string().into()),
    ]);
    if let Some((n, seed)) = spec.validation {
        data.insert("validation".into(), int(n));
        data.insert("validation_seed".into(), int(seed));
    }
    if let Some(n) = spec.train_examples {
        data.insert("train_examples".into(), int(n));
    }
    if let Some(n) = spec.test_examples {
        data.insert("test_examples".into(), int(n));
    }
    let model = if spec.dataset == "cifar10" {
        let mut m = table([("kind", "cnn".into()), ("group_norm", true.into())]);
        if spec.matmul == Precision::Bf16 {
            m.insert("matmul".into(), "bf16".into());
        }
        m
    } else {
        data.insert("max_len".into(), int(256));
        data.insert("vocab_size".into(), int(10_000));
        table([("kind", "text".into()), ("embed_dim", int(64))])
    };
    let training = table([
        ("epochs", int(spec.epochs)),
        ("batch_size", int(spec.batch)),
        ("learning_rate", spec.lr.into()),
        ("momentum", 0.9.into()),
        ("weight_decay", 1.0.into()),
        ("eval_batch_size", int(1000)),
        ("eval_each_epoch", spec.eval_each_epoch.into()),
    ]);
    let schedule = table([
        ("kind", spec.schedule.0.into()),
        ("lr_decay", spec.schedule.1.into()),
    ]);
    let privacy = match spec.private {
        None => table([("mode", "non-private".into())]),
        Some((method, band, accountant)) => {
            let mut p = table([
                ("clip_norm", 1.0.into()),
                ("method", method.name().into()),
                ("epsilon", EPSILON.into()),
                ("delta", DELTA.into()),
                ("accountant", accountant.name().into()),
                ("sampling", "balls-in-bins".into()),
            ]);
            if method.is_banded() {
                p.insert("band".into(), int(band));
            }
            p
        }
    };
    let config = table([
        ("name", spec.name.clone().into()),
        ("seed", int(spec.seed)),
        ("data", data.into()),
        ("model", model.into()),
        ("training", training.into()),
        ("schedule", schedule.into()),
        ("privacy", privacy.into()),
    ]);
    let text = toml::to_string(&config).context("serialising a training config")?;
    TrainConfig::from_toml_str(&text)
        .with_context(|| format!("training config of {}:\n{text}", spec.name))
}

/// A TOML table of `pairs`.
fn table<const N: usize>(pairs: [(&str, Value); N]) -> Table {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A TOML integer (the counts and seeds here are far below 2^63).
fn int(x: impl TryInto<i64>) -> Value {
    Value::Integer(x.try_into().unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &RunSpec<'_>, band: Option<usize>) {
        let c = build(spec).unwrap();
        assert_eq!(c.name.as_deref(), Some(spec.name.as_str()));
        assert_eq!(c.privacy.band, band);
    }

    #[test]
    fn paths_with_quotes_and_backslashes_survive_and_bands_go_to_banded_methods() {
        let dir = Path::new("/tmp/a \"quoted\" \\ dir/ü");
        let mut spec = RunSpec {
            name: "x\"y".into(),
            seed: 3,
            dataset: "imdb",
            data_dir: dir,
            train_examples: Some(100),
            test_examples: Some(50),
            validation: Some((20, 0)),
            epochs: 2,
            batch: 10,
            lr: 0.5,
            eval_each_epoch: true,
            schedule: ("exponential", 0.1),
            private: Some((Method::Bisr, 4, AccountantKind::Gaussian)),
            matmul: Precision::F32,
        };
        check(&spec, Some(4));
        assert_eq!(build(&spec).unwrap().data.dir.as_deref(), Some(dir));
        spec.private = Some((Method::Identity, 4, AccountantKind::McBnb));
        check(&spec, None);
        spec.private = None;
        check(&spec, None);
        // bf16 reaches the CNN's config; f32 leaves the key out.
        spec.dataset = "cifar10";
        assert_eq!(build(&spec).unwrap().model.matmul, Precision::F32);
        spec.matmul = Precision::Bf16;
        assert_eq!(build(&spec).unwrap().model.matmul, Precision::Bf16);
    }
}
