//! Loader of the standard CIFAR-10 binary layout into normalised `f32` tensors, with validation.
//!
//! A binary file is a sequence of 3,073-byte records: 1 label byte (0..=9), then the 1,024 red,
//! 1,024 green and 1,024 blue bytes of a 32×32 image, each plane row-major. The training split is
//! `data_batch_1.bin` … `data_batch_5.bin` concatenated in that order, the test split is
//! `test_batch.bin`. The same loader reads the official lossless files and the files converted
//! from the JPEG copy by [`crate::setup::setup_cifar10`].

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::setup::{CIFAR10_DIR_NAME, Corpus, missing_data_message};

/// Bytes per image: 3 channels × 32 × 32.
pub const IMAGE_BYTES: usize = CHANNELS * HEIGHT * WIDTH;
/// Bytes per record: 1 label byte + [`IMAGE_BYTES`].
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Colour channels (R, G, B, in that order).
pub const CHANNELS: usize = 3;
/// Image height in pixels.
pub const HEIGHT: usize = 32;
/// Image width in pixels.
pub const WIDTH: usize = 32;
/// Number of classes; labels are `0..NUM_CLASSES`.
pub const NUM_CLASSES: usize = 10;
/// The training files, in load order.
pub const BATCH_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test file.
pub const TEST_FILE: &str = "test_batch.bin";

/// Per-channel (R, G, B) mean of the CIFAR-10 training pixels scaled to [0, 1], as published for
/// the original (lossless) training set: `mean_c = Σ x / (50,000 · 1,024)`.
///
/// Used for both splits and for every copy of the data (so the official files and the JPEG copy
/// are normalised by the same affine map; the JPEG copy's own means differ by less than 0.003).
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel (R, G, B) standard deviation of the CIFAR-10 training pixels scaled to [0, 1]
/// (population standard deviation over all pixels of the original training set).
pub const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// Which part of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split (CIFAR-10: 50,000 images; IMDB: 25,000 reviews).
    Train,
    /// The test split (CIFAR-10: 10,000 images; IMDB: 25,000 reviews).
    Test,
}

/// How pixel bytes `x ∈ 0..=255` become `f32` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Normalization {
    /// `(x / 255 − MEAN[c]) / STD[c]` with the constants [`MEAN`], [`STD`] (the default).
    #[default]
    Standard,
    /// `x / 255`, in [0, 1].
    UnitRange,
}

impl Normalization {
    /// The 256-entry lookup table of channel `c`: `table[x]` is the value of byte `x`.
    fn table(self, c: usize) -> [f32; 256] {
        let mut t = [0f32; 256];
        for (x, v) in t.iter_mut().enumerate() {
            let u = x as f32 / 255.0;
            *v = match self {
                Normalization::Standard => (u - MEAN[c]) / STD[c],
                Normalization::UnitRange => u,
            };
        }
        t
    }
}

/// An image data set in memory: `n` images of shape 3×32×32 (channel-major, then row-major),
/// stored contiguously, and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `n × 3 × 32 × 32` values; image `i` is `images[i·3072 .. (i+1)·3072]`, channel `c`, row
    /// `y`, column `x` at offset `c·1024 + y·32 + x` within it.
    pub images: Vec<f32>,
    /// `n` labels in `0..10`.
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// The normalisation applied to the pixel values.
    pub normalization: Normalization,
}

impl Dataset {
    /// Parses concatenated binary records (see the module documentation). Errors when the length
    /// is not a positive multiple of [`RECORD_BYTES`] or a label is not below 10; `origin` names
    /// the source in the error. O(len) time.
    pub fn from_records(bytes: &[u8], normalization: Normalization, origin: &Path) -> Result<Self> {
        let mut ds = Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            n: 0,
            normalization,
        };
        ds.append_records(bytes, origin)?;
        Ok(ds)
    }

    fn append_records(&mut self, bytes: &[u8], origin: &Path) -> Result<()> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_BYTES) {
            return Err(DataError::malformed(
                origin,
                format!(
                    "size {} bytes is not a positive multiple of the record size {RECORD_BYTES} \
                     (truncated or not a CIFAR-10 binary file)",
                    bytes.len()
                ),
            ));
        }
        let tables: [[f32; 256]; 3] = std::array::from_fn(|c| self.normalization.table(c));
        let n = bytes.len() / RECORD_BYTES;
        self.images.reserve(n * IMAGE_BYTES);
        self.labels.reserve(n);
        for (r, rec) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
            let label = rec[0];
            if label as usize >= NUM_CLASSES {
                return Err(DataError::malformed(
                    origin,
                    format!("record {r} has label {label}; labels must be in 0..=9"),
                ));
            }
            self.labels.push(label);
            for (c, plane) in rec[1..].chunks_exact(HEIGHT * WIDTH).enumerate() {
                self.images
                    .extend(plane.iter().map(|&x| tables[c][x as usize]));
            }
        }
        self.n += n;
        Ok(())
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The 3,072 values of image `i` (`None` when `i ≥ n`).
    pub fn image(&self, i: usize) -> Option<&[f32]> {
        (i < self.n).then(|| &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES])
    }

    /// The first `k` images (`1 ≤ k ≤ n`). With the record order of the prepared files, the
    /// first `10·m` training images hold `m` of each class. O(k) time.
    pub fn subset(&self, k: usize) -> Result<Dataset> {
        if k == 0 || k > self.n {
            return Err(DataError::InvalidArgument {
                name: "k",
                reason: format!("must be in 1..={}, got {k}", self.n),
            });
        }
        Ok(Dataset {
            images: self.images[..k * IMAGE_BYTES].to_vec(),
            labels: self.labels[..k].to_vec(),
            n: k,
            normalization: self.normalization,
        })
    }

    /// How many images of each class.
    pub fn class_counts(&self) -> [usize; NUM_CLASSES] {
        let mut counts = [0; NUM_CLASSES];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Mean value of each channel over all pixels of all images (in the stored normalisation).
    /// O(n · 3072).
    pub fn channel_means(&self) -> [f64; CHANNELS] {
        let mut sums = [0f64; CHANNELS];
        for img in self.images.chunks_exact(IMAGE_BYTES) {
            for (c, plane) in img.chunks_exact(HEIGHT * WIDTH).enumerate() {
                sums[c] += plane.iter().map(|&v| v as f64).sum::<f64>();
            }
        }
        let count = (self.n * HEIGHT * WIDTH).max(1) as f64;
        sums.map(|s| s / count)
    }
}

/// The CIFAR-10 binary loader.
#[derive(Debug, Clone, Copy)]
pub struct Cifar10;

impl Cifar10 {
    /// Loads a split with [`Normalization::Standard`]; see [`Cifar10::load_with`].
    pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
        Cifar10::load_with(dir, split, Normalization::Standard)
    }

    /// Loads a split from `dir` (the folder holding the `.bin` files, or its parent holding
    /// `cifar-10-batches-bin/`). Missing files give [`DataError::Missing`] with the
    /// "run `cargo xtask data`" message; a file whose size is not a positive multiple of 3,073
    /// or a label ≥ 10 gives [`DataError::Malformed`]. O(file size) time and memory.
    pub fn load_with(dir: &Path, split: Split, normalization: Normalization) -> Result<Dataset> {
        let dir = batches_dir(dir);
        let names: Vec<&str> = match split {
            Split::Train => BATCH_FILES.to_vec(),
            Split::Test => vec![TEST_FILE],
        };
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(DataError::Missing {
                message: missing_data_message(Corpus::Cifar10, &dir, &missing),
            });
        }
        let mut ds = Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            n: 0,
            normalization,
        };
        for name in names {
            let path = dir.join(name);
            let bytes = fs::read(&path).map_err(|e| DataError::io(&path, e))?;
            ds.append_records(&bytes, &path)?;
        }
        Ok(ds)
    }
}

/// `dir` when it holds the first batch file or no `cifar-10-batches-bin/`, else that subfolder.
fn batches_dir(dir: &Path) -> PathBuf {
    let sub = dir.join(CIFAR10_DIR_NAME);
    if !dir.join(BATCH_FILES[0]).is_file() && !dir.join(TEST_FILE).is_file() && sub.is_dir() {
        sub
    } else {
        dir.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{cifar_like_records, write_cifar_binary_dir};

    /// Parses `bytes` as records and returns the error text (or "ok").
    fn check(bytes: &[u8]) -> String {
        match Dataset::from_records(bytes, Normalization::UnitRange, Path::new("t.bin")) {
            Ok(ds) => format!("ok {}", ds.n),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn layout_and_normalisation_follow_the_format() {
        let mut rec = vec![0u8; RECORD_BYTES];
        rec[0] = 7;
        // channel c, row y, column x at 1 + c·1024 + y·32 + x.
        rec[1 + 3 * 32 + 5] = 255; // R at (3, 5)
        rec[1 + 1024 + 31 * 32] = 51; // G at (31, 0)
        rec[1 + 2048 + 1023] = 102; // B at (31, 31)
        let unit = Dataset::from_records(&rec, Normalization::UnitRange, Path::new("r")).unwrap();
        assert_eq!(unit.labels, vec![7]);
        let img = unit.image(0).unwrap();
        assert_eq!(img[3 * 32 + 5], 1.0);
        assert_eq!(img[1024 + 31 * 32], 0.2);
        assert_eq!(img[2048 + 1023], 0.4);
        assert_eq!(img.iter().filter(|&&v| v != 0.0).count(), 3);
        let std = Dataset::from_records(&rec, Normalization::Standard, Path::new("r")).unwrap();
        for (k, (&u, &s)) in unit.images.iter().zip(&std.images).enumerate() {
            let c = k / 1024;
            let want = ((u as f64 - MEAN[c] as f64) / STD[c] as f64) as f32;
            assert!((s - want).abs() <= 1e-6, "value {k}: {s} vs {want}");
        }
        assert!(unit.image(1).is_none());
    }

    #[test]
    fn truncated_empty_and_bad_label_are_errors() {
        let good = cifar_like_records(3, 0);
        assert_eq!(check(&good), "ok 3");
        for bad in [&good[..good.len() - 1], &good[..10], &[][..]] {
            let text = check(bad);
            assert!(text.contains("multiple of the record size 3073"), "{text}");
        }
        let mut labelled = good.clone();
        labelled[RECORD_BYTES] = 10;
        assert!(check(&labelled).contains("record 1 has label 10"));
    }

    #[test]
    fn load_concatenates_batches_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(CIFAR10_DIR_NAME);
        write_cifar_binary_dir(&dir, 4, 11).unwrap();
        // Parent and folder both work.
        let train = Cifar10::load(tmp.path(), Split::Train).unwrap();
        let test = Cifar10::load(&dir, Split::Test).unwrap();
        assert_eq!((train.n, test.n), (20, 4));
        let mut all = Vec::new();
        for k in 0..5 {
            all.extend(cifar_like_records(4, 11 + k));
        }
        let want = Dataset::from_records(&all, Normalization::Standard, Path::new("x")).unwrap();
        assert_eq!(train, want);
        assert_eq!(test.labels, vec![0, 1, 2, 3]);

        let sub = train.subset(5).unwrap();
        assert_eq!((sub.n, sub.images.len()), (5, 5 * IMAGE_BYTES));
        assert_eq!(sub.image(4), train.image(4));
        assert!(train.subset(0).is_err() && train.subset(21).is_err());
        assert_eq!(train.subset(20).unwrap(), train);

        fs::write(dir.join("data_batch_3.bin"), vec![0u8; RECORD_BYTES + 1]).unwrap();
        let err = Cifar10::load(&dir, Split::Train).unwrap_err();
        assert!(err.to_string().contains("data_batch_3.bin"), "{err}");
        fs::remove_file(dir.join(TEST_FILE)).unwrap();
        let err = Cifar10::load(&dir, Split::Test).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }));
        assert!(err.to_string().contains("cargo xtask data"));
    }

    #[test]
    fn class_counts_and_means() {
        let ds = Dataset::from_records(
            &cifar_like_records(30, 2),
            Normalization::UnitRange,
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(ds.class_counts(), [3; NUM_CLASSES]);
        let direct: f64 = (0..ds.n)
            .map(|i| {
                ds.image(i).unwrap()[..1024]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>()
            })
            .sum::<f64>()
            / (ds.n * 1024) as f64;
        assert!((ds.channel_means()[0] - direct).abs() < 1e-12);
    }
}
