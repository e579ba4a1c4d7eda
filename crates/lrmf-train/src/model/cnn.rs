//! The CIFAR-10 convolutional network of the DP-SGD / learning-rate-schedule papers: three
//! blocks of two 3×3 convolutions (padding 1) with ReLU and a 2×2 max pool, then a linear
//! classifier; optional group norm after every convolution and an optional hidden dense layer.
//!
//! Layers (widths c₁, c₂, c₃ = 32, 64, 128 for CIFAR-10):
//! conv(C_in→c₁) [GN] ReLU conv(c₁→c₁) [GN] ReLU pool · conv(c₁→c₂) [GN] ReLU conv(c₂→c₂) [GN]
//! ReLU pool · conv(c₂→c₃) [GN] ReLU conv(c₃→c₃) [GN] ReLU pool · flatten (h, w, c) ·
//! [linear(→hidden) ReLU] · linear(→classes).
//! Parameter order: layer by layer in that order; each conv is its weight
//! (C_out × 3 × 3 × C_in) then bias, each group norm γ then β, each linear weight (out × in) then
//! bias. With CIFAR-10 shapes and no hidden layer: 307 498 parameters (GN adds 960).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Batch;
use super::classifier::{Head, SequentialClassifier};
use super::conv::Conv2d;
use super::driver::DEFAULT_CHUNK;
use super::grad::NormStrategy;
use super::group_norm::GroupNorm;
use super::linear::Linear;
use super::native::gemm::Precision;
use super::sequential::{Act, Sequential, Stage};
use crate::{Result, TrainError};

/// Shape of a [`Cnn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnnConfig {
    /// Input channels (3 for CIFAR-10).
    pub in_channels: usize,
    /// Image height, a positive multiple of 8.
    pub height: usize,
    /// Image width, a positive multiple of 8.
    pub width: usize,
    /// Number of classes (≥ 2).
    pub classes: usize,
    /// Convolution widths of the three blocks (all ≥ 1).
    pub channels: [usize; 3],
    /// Group norm after every convolution.
    pub group_norm: bool,
    /// Number of group-norm groups (must divide every width; used only with `group_norm`).
    pub groups: usize,
    /// Width of an optional hidden dense layer (with ReLU) before the classifier.
    pub hidden: Option<usize>,
}

impl CnnConfig {
    /// The CIFAR-10 network: 3×32×32 inputs, widths 32/64/128, 10 classes, no hidden layer,
    /// 16 group-norm groups when `group_norm`.
    pub fn cifar10(group_norm: bool) -> Self {
        CnnConfig {
            in_channels: 3,
            height: 32,
            width: 32,
            classes: 10,
            channels: [32, 64, 128],
            group_norm,
            groups: 16,
            hidden: None,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |key: &str, message: String| {
            Err(TrainError::Config {
                key: format!("cnn.{key}"),
                message,
            })
        };
        if self.in_channels == 0 {
            return bad("in_channels", "must be ≥ 1".into());
        }
        if self.height == 0 || !self.height.is_multiple_of(8) {
            return bad(
                "height",
                format!("must be a positive multiple of 8, got {}", self.height),
            );
        }
        if self.width == 0 || !self.width.is_multiple_of(8) {
            return bad(
                "width",
                format!("must be a positive multiple of 8, got {}", self.width),
            );
        }
        if self.classes < 2 {
            return bad("classes", format!("must be ≥ 2, got {}", self.classes));
        }
        if self.channels.contains(&0) {
            return bad(
                "channels",
                format!("widths must be ≥ 1, got {:?}", self.channels),
            );
        }
        if self.group_norm
            && (self.groups == 0 || self.channels.iter().any(|c| !c.is_multiple_of(self.groups)))
        {
            return bad(
                "groups",
                format!(
                    "{} groups must divide every width {:?}",
                    self.groups, self.channels
                ),
            );
        }
        if self.hidden == Some(0) {
            return bad("hidden", "a hidden layer needs ≥ 1 unit".into());
        }
        Ok(())
    }
}

impl Default for CnnConfig {
    fn default() -> Self {
        CnnConfig::cifar10(false)
    }
}

/// The CIFAR-10 CNN with fast per-example clipping (see the module doc for the layer list and
/// parameter order).
#[derive(Debug, Clone)]
pub struct Cnn {
    config: CnnConfig,
    head: Head,
}

impl Cnn {
    /// A network with parameters drawn from ChaCha8 seeded by `seed` (PyTorch's default
    /// initialisation: U(±1/√fan_in) for conv and linear weights and biases, γ = 1, β = 0).
    pub fn new(config: CnnConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut stages = Vec::new();
        let mut cin = config.in_channels;
        for &c in &config.channels {
            for _ in 0..2 {
                stages.push(Stage::Conv(Conv2d::new(cin, c, 3, 1, &mut rng)?));
                if config.group_norm {
                    stages.push(Stage::GroupNorm(GroupNorm::new(config.groups, c)?));
                }
                stages.push(Stage::Relu);
                cin = c;
            }
            stages.push(Stage::MaxPool2);
        }
        stages.push(Stage::Flatten);
        let mut features = (config.height / 8) * (config.width / 8) * cin;
        if let Some(h) = config.hidden {
            stages.push(Stage::Linear(Linear::new(features, h, &mut rng)));
            stages.push(Stage::Relu);
            features = h;
        }
        stages.push(Stage::Linear(Linear::new(
            features,
            config.classes,
            &mut rng,
        )));
        let classes = config.classes;
        Ok(Cnn {
            config,
            head: Head {
                net: Sequential { stages },
                classes,
                strategy: NormStrategy::Auto,
                chunk: DEFAULT_CHUNK,
            },
        })
    }

    /// The layers (for the oracle tests).
    #[cfg(test)]
    pub(crate) fn net(&self) -> &Sequential {
        &self.head.net
    }

    /// The configuration.
    pub fn config(&self) -> &CnnConfig {
        &self.config
    }

    /// How convolutions compute per-example norms (default [`NormStrategy::Auto`]).
    pub fn set_norm_strategy(&mut self, strategy: NormStrategy) {
        self.head.strategy = strategy;
    }

    /// Examples per forward/backward chunk (default [`DEFAULT_CHUNK`]; memory grows linearly
    /// with it).
    pub fn set_chunk_size(&mut self, chunk: usize) -> Result<()> {
        self.head.set_chunk(chunk)
    }

    /// Input precision of the convolutions' products (default [`Precision::F32`]).
    pub fn set_matmul(&mut self, precision: Precision) {
        for stage in &mut self.head.net.stages {
            if let Stage::Conv(conv) = stage {
                conv.set_precision(precision);
            }
        }
    }
}

impl SequentialClassifier for Cnn {
    fn head(&self) -> &Head {
        &self.head
    }

    fn head_mut(&mut self) -> &mut Head {
        &mut self.head
    }

    /// NCHW pixels of a checked batch → channels-last activations.
    fn input(&self, batch: &Batch) -> Result<(Act, Vec<u32>)> {
        let Batch::Images {
            pixels,
            shape,
            labels,
        } = batch
        else {
            return Err(TrainError::Shape(
                "the CNN needs an image batch, got tokens".into(),
            ));
        };
        let want = (
            self.config.in_channels,
            self.config.height,
            self.config.width,
        );
        if *shape != want {
            return Err(TrainError::Shape(format!(
                "the CNN expects images of shape {want:?}, got {shape:?}"
            )));
        }
        let (c, h, w) = want;
        let n = labels.len();
        let mut data = vec![0.0f32; pixels.len()];
        for i in 0..n {
            for ch in 0..c {
                for p in 0..h * w {
                    data[(i * h * w + p) * c + ch] = pixels[(i * c + ch) * h * w + p];
                }
            }
        }
        Ok((Act { data, n, h, w, c }, labels.clone()))
    }
}
