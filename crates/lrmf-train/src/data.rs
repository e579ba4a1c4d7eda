//! The examples a run trains and evaluates on, loaded as the config says (with an optional
//! validation split held out of the training examples), and cut into the model's [`Batch`]
//! layout by index.

use lrmf_data::{Dataset, Split, TextDataset};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

use crate::config::{DataConfig, DatasetKind};
use crate::model::Batch;
use crate::{Result, TrainError};

/// Seed of the generated data sets (they are public by construction, so a fixed seed is fine).
pub const SYNTHETIC_DATA_SEED: u64 = 0x5eed_da7a;

/// One split's examples: images or token rows.
#[derive(Debug, Clone)]
pub enum Examples {
    /// CIFAR-shaped images (3×32×32).
    Images(Dataset),
    /// Token rows of fixed length.
    Tokens(TextDataset),
}

impl Examples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Examples::Images(d) => d.len(),
            Examples::Tokens(d) => d.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch of the examples `idx` (in that order). O(|idx| · example size).
    pub fn batch(&self, idx: &[u32]) -> Batch {
        match self {
            Examples::Images(d) => {
                let size = lrmf_data::cifar10::IMAGE_BYTES;
                let mut pixels = Vec::with_capacity(idx.len() * size);
                let mut labels = Vec::with_capacity(idx.len());
                for &i in idx {
                    let i = i as usize;
                    pixels.extend_from_slice(&d.images[i * size..(i + 1) * size]);
                    labels.push(d.labels[i] as u32);
                }
                Batch::Images {
                    pixels,
                    shape: (
                        lrmf_data::cifar10::CHANNELS,
                        lrmf_data::cifar10::HEIGHT,
                        lrmf_data::cifar10::WIDTH,
                    ),
                    labels,
                }
            }
            Examples::Tokens(d) => {
                let len = d.max_len;
                let mut tokens = Vec::with_capacity(idx.len() * len);
                let mut labels = Vec::with_capacity(idx.len());
                for &i in idx {
                    let i = i as usize;
                    tokens.extend_from_slice(&d.tokens[i * len..(i + 1) * len]);
                    labels.push(d.labels[i] as u32);
                }
                Batch::Tokens {
                    tokens,
                    len,
                    labels,
                }
            }
        }
    }

    /// The batch of the contiguous examples `start..end`.
    pub fn range(&self, start: usize, end: usize) -> Batch {
        let idx: Vec<u32> = (start as u32..end as u32).collect();
        self.batch(&idx)
    }

    /// The examples `idx` (in that order) as a data set of their own. O(|idx| · example size).
    pub fn select(&self, idx: &[u32]) -> Examples {
        match self {
            Examples::Images(d) => {
                let size = lrmf_data::cifar10::IMAGE_BYTES;
                let mut images = Vec::with_capacity(idx.len() * size);
                for &i in idx {
                    let i = i as usize;
                    images.extend_from_slice(&d.images[i * size..(i + 1) * size]);
                }
                Examples::Images(Dataset {
                    images,
                    labels: idx.iter().map(|&i| d.labels[i as usize]).collect(),
                    n: idx.len(),
                    normalization: d.normalization,
                })
            }
            Examples::Tokens(d) => {
                let len = d.max_len;
                let mut tokens = Vec::with_capacity(idx.len() * len);
                for &i in idx {
                    let i = i as usize;
                    tokens.extend_from_slice(&d.tokens[i * len..(i + 1) * len]);
                }
                let pick = |v: &[u8]| idx.iter().map(|&i| v[i as usize]).collect();
                Examples::Tokens(TextDataset {
                    tokens,
                    labels: pick(&d.labels),
                    lengths: idx.iter().map(|&i| d.lengths[i as usize]).collect(),
                    ratings: pick(&d.ratings),
                    n: idx.len(),
                    max_len: len,
                    num_ids: d.num_ids,
                })
            }
        }
    }

    /// Number of classes (max label + 1, at least 2).
    pub fn num_classes(&self) -> usize {
        let labels: Box<dyn Iterator<Item = u8>> = match self {
            Examples::Images(d) => Box::new(d.labels.iter().copied()),
            Examples::Tokens(d) => Box::new(d.labels.iter().copied()),
        };
        labels.max().map_or(2, |m| (m as usize + 1).max(2))
    }
}

/// The training and test splits of a run.
#[derive(Debug, Clone)]
pub struct TrainData {
    /// Training examples (without the validation split).
    pub train: Examples,
    /// Test examples.
    pub test: Examples,
    /// Examples held out of the training split (`[data] validation`): never trained on.
    pub validation: Option<Examples>,
}

/// The validation split of `n` training examples: (training indices, validation indices),
/// disjoint, together `0..n`, each ascending; `v` validation indices drawn uniformly without
/// replacement by a partial Fisher–Yates shuffle on a ChaCha20 stream keyed by SHA-256 of a tag
/// and `seed` (so the split for a seed never changes with the `rand` version). Errors unless
/// `1 ≤ v < n ≤ u32::MAX`. O(n).
pub fn validation_split(n: usize, v: usize, seed: u64) -> Result<(Vec<u32>, Vec<u32>)> {
    if n > u32::MAX as usize || !(1..n).contains(&v) {
        return Err(TrainError::Config {
            key: "data.validation".into(),
            message: format!(
                "must be in 1..={} (fewer than the {n} training examples), got {v}",
                n.saturating_sub(1)
            ),
        });
    }
    let mut h = Sha256::new();
    h.update(b"lrmf-train validation split v1");
    h.update(seed.to_le_bytes());
    let mut rng = ChaCha20Rng::from_seed(h.finalize().into());
    let mut perm: Vec<u32> = (0..n as u32).collect();
    for i in 0..v {
        let j = i + crate::sampler::uniform_below(&mut rng, (n - i) as u64) as usize;
        perm.swap(i, j);
    }
    let mut val = perm[..v].to_vec();
    let mut train = perm[v..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    Ok((train, val))
}

fn data_err(e: lrmf_data::DataError) -> TrainError {
    TrainError::Config {
        key: "data".into(),
        message: e.to_string(),
    }
}

impl TrainData {
    /// Loads (or generates) the data of a validated config. Real data sets that are not
    /// prepared give a config error naming `cargo xtask data`. O(data size).
    pub fn load(cfg: &DataConfig) -> Result<Self> {
        let (n_train, n_test) = (cfg.pool_size(), cfg.sizes().1);
        let root = cfg.root();
        let (train, test) = match cfg.dataset {
            DatasetKind::Cifar10 => {
                // Checks all six files first, with the `cargo xtask data` message.
                lrmf_data::DataDir::new(&root).cifar10().map_err(data_err)?;
                let tr = lrmf_data::Cifar10::load(&root, Split::Train).map_err(data_err)?;
                let te = lrmf_data::Cifar10::load(&root, Split::Test).map_err(data_err)?;
                (
                    Examples::Images(subset_images(tr, n_train)?),
                    Examples::Images(subset_images(te, n_test)?),
                )
            }
            DatasetKind::Imdb => {
                lrmf_data::DataDir::new(&root).imdb().map_err(data_err)?;
                let (k, len) = (cfg.vocab_size(), cfg.max_len());
                let tr = lrmf_data::Imdb::load(&root, Split::Train, k, len).map_err(data_err)?;
                let te = lrmf_data::Imdb::load(&root, Split::Test, k, len).map_err(data_err)?;
                (
                    Examples::Tokens(subset_text(tr, n_train)?),
                    Examples::Tokens(subset_text(te, n_test)?),
                )
            }
            DatasetKind::SyntheticImages => (
                Examples::Images(
                    lrmf_data::synthetic::cifar_like(n_train, SYNTHETIC_DATA_SEED)
                        .map_err(data_err)?,
                ),
                Examples::Images(
                    lrmf_data::synthetic::cifar_like(n_test, SYNTHETIC_DATA_SEED + 1)
                        .map_err(data_err)?,
                ),
            ),
            DatasetKind::SyntheticText => {
                let (k, len) = (cfg.vocab_size(), cfg.max_len());
                (
                    Examples::Tokens(
                        lrmf_data::synthetic::text_like(n_train, len, k, SYNTHETIC_DATA_SEED)
                            .map_err(data_err)?,
                    ),
                    Examples::Tokens(
                        lrmf_data::synthetic::text_like(n_test, len, k, SYNTHETIC_DATA_SEED + 1)
                            .map_err(data_err)?,
                    ),
                )
            }
        };
        let (train, validation) = match cfg.validation {
            Some(v) => {
                let (tr, va) = validation_split(train.len(), v, cfg.validation_seed.unwrap_or(0))?;
                (train.select(&tr), Some(train.select(&va)))
            }
            None => (train, None),
        };
        Ok(Self {
            train,
            test,
            validation,
        })
    }
}

fn subset_images(d: Dataset, k: usize) -> Result<Dataset> {
    if k == d.len() {
        Ok(d)
    } else {
        d.subset(k).map_err(data_err)
    }
}

fn subset_text(d: TextDataset, k: usize) -> Result<TextDataset> {
    if k == d.len() {
        Ok(d)
    } else {
        d.subset(k).map_err(data_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cfg: &str) -> TrainData {
        let cfg: DataConfig = toml::from_str(cfg).unwrap();
        TrainData::load(&cfg).unwrap()
    }

    #[test]
    fn synthetic_splits_and_batches() {
        let d = check("dataset = \"synthetic-images\"\ntrain_examples = 30\ntest_examples = 10");
        assert_eq!(
            (d.train.len(), d.test.len(), d.train.num_classes()),
            (30, 10, 10)
        );
        let Batch::Images { pixels, labels, .. } = d.train.batch(&[3, 1]) else {
            panic!("images expected")
        };
        let Examples::Images(ds) = &d.train else {
            unreachable!()
        };
        assert_eq!(labels, vec![ds.labels[3] as u32, ds.labels[1] as u32]);
        assert_eq!(&pixels[..3072], ds.image(3).unwrap());
        let t = check(
            "dataset = \"synthetic-text\"\ntrain_examples = 20\ntest_examples = 4\nmax_len = 8\nvocab_size = 50",
        );
        let Batch::Tokens {
            tokens,
            len,
            labels,
        } = t.train.range(2, 5)
        else {
            panic!("tokens expected")
        };
        assert_eq!((tokens.len(), len, labels.len()), (24, 8, 3));
        assert_eq!(t.train.num_classes(), 2);
        assert!(t.validation.is_none());
    }

    #[test]
    fn validation_split_is_disjoint_complete_and_fixed_by_its_seed() {
        for (n, v, seed) in [(10, 1, 0), (10, 9, 1), (1000, 137, 2), (2, 1, 3)] {
            let (tr, va) = validation_split(n, v, seed).unwrap();
            assert_eq!((tr.len(), va.len()), (n - v, v));
            let mut all: Vec<u32> = tr.iter().chain(&va).copied().collect();
            all.sort_unstable();
            assert_eq!(
                all,
                (0..n as u32).collect::<Vec<_>>(),
                "disjoint and complete"
            );
            assert!(va.windows(2).all(|w| w[0] < w[1]) && tr.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(validation_split(n, v, seed).unwrap().1, va, "deterministic");
        }
        assert_ne!(
            validation_split(1000, 100, 0).unwrap().1,
            validation_split(1000, 100, 1).unwrap().1
        );
        for (n, v) in [(10, 0), (10, 10), (1, 1)] {
            assert!(validation_split(n, v, 0).is_err(), "{n} {v}");
        }
        // Loaded data: the held-out examples are exactly the split's, never trained on.
        let d = check(
            "dataset = \"synthetic-images\"\ntrain_examples = 50\ntest_examples = 10\nvalidation = 12\nvalidation_seed = 5",
        );
        let pool = check("dataset = \"synthetic-images\"\ntrain_examples = 50\ntest_examples = 10");
        let (tr, va) = validation_split(50, 12, 5).unwrap();
        let (Examples::Images(t), Some(Examples::Images(v)), Examples::Images(p)) =
            (&d.train, &d.validation, &pool.train)
        else {
            panic!("images expected")
        };
        assert_eq!((t.len(), v.len()), (38, 12));
        assert_eq!(v.image(3).unwrap(), p.image(va[3] as usize).unwrap());
        assert_eq!(t.labels[7], p.labels[tr[7] as usize]);
        let txt = check(
            "dataset = \"synthetic-text\"\ntrain_examples = 20\ntest_examples = 4\nmax_len = 8\nvocab_size = 50\nvalidation = 5",
        );
        assert_eq!(
            (txt.train.len(), txt.validation.as_ref().map(Examples::len)),
            (15, Some(5))
        );
    }
}
