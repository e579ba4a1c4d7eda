//! Differentially private training with candle: models with fast per-example clipping, the DP-MF
//! optimizer (correlated noise from `lrmf-noise`), sampling that matches the accounting, and
//! atomic checkpoints.
//!
//! ```
//! use lrmf_train::{NoProgress, TrainConfig, TrainError};
//! use std::sync::{Arc, atomic::AtomicBool};
//!
//! let text = r#"
//!     seed = 7
//!     [data]
//!     dataset = "synthetic-images"
//!     train_examples = 200
//!     test_examples = 50
//!     [model]
//!     kind = "logistic"
//!     [training]
//!     epochs = 2
//!     batch_size = 20
//!     learning_rate = 0.05
//!     [privacy]
//!     clip_norm = 1.0
//!     method = "lr-bisr"
//!     band = 4
//!     epsilon = 8.0
//!     delta = 1e-5
//! "#;
//! let config = TrainConfig::from_toml_str(text)?;
//! let out = tempfile::tempdir()?;
//! let stop = Arc::new(AtomicBool::new(false));
//! let summary = lrmf_train::train(&config, out.path(), false, stop, &mut NoProgress)?;
//! assert!(summary.completed && summary.epsilon.unwrap() <= 8.0);
//!
//! // A value out of range names its key.
//! match TrainConfig::from_toml_str(&text.replace("band = 4", "band = 21")) {
//!     Err(TrainError::Config { key, .. }) => assert_eq!(key, "privacy.band"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Entry points: [`TrainConfig::from_toml_file`] then [`train`] (or [`train_model`] with a
//! caller-built [`model::DpModel`]).

pub mod checkpoint;
pub mod config;
pub mod data;
mod error;
pub mod metrics;
pub mod model;
pub mod optimizer;
pub mod plan;
pub mod release;
pub mod sampler;
pub mod store;
mod trainer;

pub use config::TrainConfig;
pub use data::{Examples, TrainData};
pub use error::{Result, TrainError};
pub use metrics::{NoProgress, Progress, RunInfo, StepMetrics, Summary};
pub use trainer::{CONFIG_FILE, FIXED_SEED_WARNING, build_model, evaluate, train, train_model};
