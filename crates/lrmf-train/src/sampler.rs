//! Batch sampling that matches the accounting: every example joins at most one batch per epoch,
//! and its participations are exactly `b` steps apart (b-min-separation with `b` = steps per
//! epoch), because the example → bin assignment is drawn once and kept for the whole run.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// How examples are assigned to the `b` bins (batches) of an epoch: what the trainer does (the
/// TOML key `privacy.sampling`). Not to be confused with [`lrmf_privacy::accounting::Sampling`],
/// the assumption an accountant's number holds for: `BallsInBins` realises its
/// `BallsInBins { bins: b }`, and both batchings satisfy its `None` (b-min-separation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Batching {
    /// Balls in bins: each example independently picks one of `b` bins uniformly at random
    /// (batch sizes are Binomial(N, 1/b)); the setting of the Monte Carlo balls-in-bins accountant.
    BallsInBins,
    /// A uniformly random permutation cut into `b` contiguous bins of sizes ⌊N/b⌋ or ⌈N/b⌉.
    /// Valid for the Gaussian accountant (no amplification), not for the balls-in-bins one.
    FixedPartition,
}

impl Batching {
    /// The name used in configs and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Batching::BallsInBins => "balls-in-bins",
            Batching::FixedPartition => "fixed-partition",
        }
    }
}

/// A uniformly distributed integer in `0..bound` (`bound ≥ 1`) from 64-bit words, by rejection
/// (no modulo bias). Written out here so that the stream of bins for a seed never changes with
/// the `rand` version. Expected O(1) words.
pub(crate) fn uniform_below(rng: &mut ChaCha20Rng, bound: u64) -> u64 {
    debug_assert!(bound >= 1);
    // Accept x < zone, where zone is the largest multiple of `bound` that fits in 2^64.
    let zone = u64::MAX - (u64::MAX - bound + 1) % bound;
    loop {
        let x = rng.next_u64();
        if x <= zone {
            return x % bound;
        }
    }
}

/// The bins of a run: a fixed assignment of the `N` training examples to `b` bins; step `t`
/// (0-based) uses bin `t mod b`.
///
/// # Privacy contract
/// What the sensitivity of the factorization assumes, and this sampler guarantees: within
/// steps `e·b .. (e+1)·b` (epoch `e`) every example appears in exactly one batch, and two
/// participations of one example are exactly a multiple of `b` steps apart (so ≥ b), at most
/// k times in k epochs. [`Batching::BallsInBins`] additionally draws each bin uniformly and
/// independently, the model of the Monte Carlo balls-in-bins accountant; amplification holds
/// only while the seed stays secret (it is OS-drawn unless the config fixes it).
///
/// The assignment is a deterministic function of `(N, b, sampling, seed)`: resuming a run needs
/// only the seed, which the checkpoint stores.
#[derive(Debug, Clone)]
pub struct BinSampler {
    bins: Vec<Vec<u32>>,
    sampling: Batching,
    num_examples: usize,
}

impl BinSampler {
    /// Assigns `num_examples` examples to `num_bins` bins with a ChaCha20 stream seeded by `seed`.
    /// Errors unless `1 ≤ num_bins ≤ num_examples ≤ u32::MAX`. O(N) time and memory.
    pub fn new(
        num_examples: usize,
        num_bins: usize,
        sampling: Batching,
        seed: [u8; 32],
    ) -> Result<Self> {
        if num_examples == 0 || num_examples > u32::MAX as usize {
            return Err(TrainError::Config {
                key: "data.train_examples".into(),
                message: format!("must be in 1..={}, got {num_examples}", u32::MAX),
            });
        }
        if num_bins == 0 || num_bins > num_examples {
            return Err(TrainError::Config {
                key: "training.batch_size".into(),
                message: format!(
                    "gives {num_bins} steps per epoch; must be in 1..={num_examples} (the number of examples)"
                ),
            });
        }
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut bins = vec![Vec::new(); num_bins];
        match sampling {
            Batching::BallsInBins => {
                for i in 0..num_examples {
                    let j = uniform_below(&mut rng, num_bins as u64) as usize;
                    bins[j].push(i as u32);
                }
            }
            Batching::FixedPartition => {
                // Fisher–Yates shuffle, then contiguous bins; bin j gets ⌊N/b⌋ or ⌈N/b⌉.
                let mut perm: Vec<u32> = (0..num_examples as u32).collect();
                for i in (1..num_examples).rev() {
                    let k = uniform_below(&mut rng, i as u64 + 1) as usize;
                    perm.swap(i, k);
                }
                let (q, r) = (num_examples / num_bins, num_examples % num_bins);
                let mut start = 0;
                for (j, bin) in bins.iter_mut().enumerate() {
                    let len = q + usize::from(j < r);
                    bin.extend_from_slice(&perm[start..start + len]);
                    start += len;
                }
            }
        }
        Ok(Self {
            bins,
            sampling,
            num_examples,
        })
    }

    /// Number of bins b (= steps per epoch = the min-separation).
    pub fn num_bins(&self) -> usize {
        self.bins.len()
    }

    /// Number of examples N.
    pub fn num_examples(&self) -> usize {
        self.num_examples
    }

    /// The sampling scheme.
    pub fn sampling(&self) -> Batching {
        self.sampling
    }

    /// Expected batch size N / b (the divisor of the noisy gradient sum).
    pub fn expected_batch_size(&self) -> f64 {
        self.num_examples as f64 / self.bins.len() as f64
    }

    /// The example indices of step `t` (0-based): bin `t mod b`. O(1).
    pub fn batch(&self, step: usize) -> &[u32] {
        &self.bins[step % self.bins.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(n: usize, b: usize, sampling: Batching, seed: u8) -> BinSampler {
        let s = BinSampler::new(n, b, sampling, [seed; 32]).unwrap();
        let epochs = 3;
        // Every example: at most once per epoch, participations ≥ b apart.
        let mut last: Vec<Option<usize>> = vec![None; n];
        for e in 0..epochs {
            let mut seen = vec![0usize; n];
            for t in e * b..(e + 1) * b {
                for &i in s.batch(t) {
                    seen[i as usize] += 1;
                    if let Some(prev) = last[i as usize] {
                        assert!(t - prev >= b, "example {i} at {prev} and {t}, b = {b}");
                    }
                    last[i as usize] = Some(t);
                }
            }
            assert!(
                seen.iter().all(|&c| c == 1),
                "each example exactly once per epoch"
            );
        }
        s
    }

    #[test]
    fn each_example_once_per_epoch_and_b_apart() {
        for &(n, b) in &[(1, 1), (10, 3), (100, 7), (257, 16), (50, 50)] {
            for sampling in [Batching::BallsInBins, Batching::FixedPartition] {
                check(n, b, sampling, 3);
            }
        }
    }

    #[test]
    fn deterministic_for_a_seed_and_different_across_seeds() {
        for sampling in [Batching::BallsInBins, Batching::FixedPartition] {
            let a = check(300, 10, sampling, 1);
            let b = check(300, 10, sampling, 1);
            let c = check(300, 10, sampling, 2);
            assert_eq!(a.bins, b.bins);
            assert_ne!(a.bins, c.bins);
        }
    }

    #[test]
    fn fixed_partition_sizes_and_balls_in_bins_is_uniform() {
        let s = check(103, 10, Batching::FixedPartition, 5);
        let sizes: Vec<usize> = (0..10).map(|t| s.batch(t).len()).collect();
        assert_eq!(sizes, vec![11, 11, 11, 10, 10, 10, 10, 10, 10, 10]);
        // Balls in bins: bin counts ~ Binomial(N, 1/b); chi-square over 20 bins, N = 20_000.
        let (n, b) = (20_000, 20);
        let s = BinSampler::new(n, b, Batching::BallsInBins, [9; 32]).unwrap();
        let e = n as f64 / b as f64;
        let chi2: f64 = (0..b)
            .map(|t| (s.batch(t).len() as f64 - e).powi(2) / e)
            .sum();
        // 19 degrees of freedom: P(chi2 > 43.8) ≈ 0.001.
        assert!(chi2 < 43.8, "chi2 = {chi2}");
        assert_eq!(s.expected_batch_size(), 1000.0);
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(BinSampler::new(0, 1, Batching::BallsInBins, [0; 32]).is_err());
        assert!(BinSampler::new(5, 0, Batching::BallsInBins, [0; 32]).is_err());
        assert!(BinSampler::new(5, 6, Batching::FixedPartition, [0; 32]).is_err());
    }
}
