//! Differentially private training with candle: models with fast per-example clipping, the DP-MF
//! optimizer (correlated noise from `lrmf-noise`), sampling that matches the accounting, and
//! atomic checkpoints.
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
