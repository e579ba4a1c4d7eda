//! Generated, learnable stand-ins for the real data sets, and tiny fixture writers, so tests
//! and smoke runs need no downloaded files.
//!
//! The generators are seeded ChaCha8 streams: the same `seed` gives the same data on every
//! machine. They are deliberately easy: a labelled example carries its class in simple
//! statistics (mean colour, token frequencies), so a tiny model beats chance within a few steps.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use image::{ImageEncoder, RgbImage};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cifar10::{
    BATCH_FILES, Dataset, HEIGHT, IMAGE_BYTES, NUM_CLASSES, Normalization, RECORD_BYTES, Split,
    TEST_FILE, WIDTH,
};
use crate::error::{DataError, Result};
use crate::imdb::{RESERVED_IDS, TextDataset};
use crate::setup::CIFAR10_CLASSES;

/// The mean colour (R, G, B bytes) of class `c` in [`cifar_like`]: ten well separated colours.
pub const CLASS_COLOURS: [[u8; 3]; NUM_CLASSES] = [
    [200, 60, 60],
    [60, 200, 60],
    [60, 60, 200],
    [200, 200, 60],
    [200, 60, 200],
    [60, 200, 200],
    [128, 128, 128],
    [230, 150, 40],
    [40, 120, 230],
    [100, 40, 150],
];

/// Half-width of the uniform pixel noise of [`cifar_like`], in byte units.
pub const PIXEL_NOISE: i32 = 60;

/// `n` CIFAR-like binary records (1 label byte + R, G, B planes): record `i` has label
/// `i mod 10` and pixel bytes `clamp(CLASS_COLOURS[label][c] + u, 0, 255)` with `u` uniform on
/// `−60..=60`, independent per pixel and channel. O(n · 3072).
pub fn cifar_like_records(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * RECORD_BYTES);
    for i in 0..n {
        let label = (i % NUM_CLASSES) as u8;
        out.push(label);
        for c in 0..3 {
            let m = CLASS_COLOURS[label as usize][c] as i32;
            for _ in 0..HEIGHT * WIDTH {
                let u: i32 = rng.random_range(-PIXEL_NOISE..=PIXEL_NOISE);
                out.push((m + u).clamp(0, 255) as u8);
            }
        }
    }
    out
}

/// A learnable CIFAR-shaped data set of `n ≥ 1` images: [`cifar_like_records`] loaded with
/// [`Normalization::Standard`]. A linear model on channel means separates the classes.
pub fn cifar_like(n: usize, seed: u64) -> Result<Dataset> {
    if n == 0 {
        return Err(DataError::InvalidArgument {
            name: "n",
            reason: "must be at least 1, got 0".into(),
        });
    }
    Dataset::from_records(
        &cifar_like_records(n, seed),
        Normalization::Standard,
        Path::new("<synthetic cifar_like>"),
    )
}

/// Probability that a token of [`text_like`] is drawn from its class's half of the vocabulary.
pub const TEXT_SIGNAL: f64 = 0.3;

/// A learnable text data set: `n ≥ 1` rows of `len ≥ 1` ids over `vocab ≥ 4` ids (0 = padding,
/// 1 = unknown, words `2..vocab`). Row `i` has label `i mod 2` and a length uniform on
/// `⌈len/2⌉..=len`; each token is, with probability [`TEXT_SIGNAL`], uniform on its class's half
/// of the words (label 0: the lower half `2..2+h`, label 1: the upper half `2+h..vocab`, with
/// `h = (vocab − 2) / 2`), otherwise uniform on all words. A bag-of-words model separates the
/// classes. O(n · len).
pub fn text_like(n: usize, len: usize, vocab: usize, seed: u64) -> Result<TextDataset> {
    let arg = |name, reason: String| Err(DataError::InvalidArgument { name, reason });
    if n == 0 {
        return arg("n", "must be at least 1, got 0".into());
    }
    if len == 0 {
        return arg("len", "must be at least 1, got 0".into());
    }
    if !(4..=u32::MAX as usize).contains(&vocab) {
        return arg("vocab", format!("must be in 4..={}, got {vocab}", u32::MAX));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let first = RESERVED_IDS;
    let last = vocab as u32; // exclusive
    let half = (last - first) / 2;
    let mut ds = TextDataset {
        tokens: Vec::with_capacity(n * len),
        labels: Vec::with_capacity(n),
        lengths: Vec::with_capacity(n),
        ratings: vec![0; n],
        n,
        max_len: len,
        num_ids: vocab,
    };
    for i in 0..n {
        let label = (i % 2) as u8;
        let used = rng.random_range(len.div_ceil(2)..=len);
        let (lo, hi) = if label == 0 {
            (first, first + half)
        } else {
            (first + half, last)
        };
        for _ in 0..used {
            let id = if rng.random_bool(TEXT_SIGNAL) {
                rng.random_range(lo..hi)
            } else {
                rng.random_range(first..last)
            };
            ds.tokens.push(id);
        }
        ds.tokens.resize((i + 1) * len, 0);
        ds.labels.push(label);
        ds.lengths.push(used as u32);
    }
    Ok(ds)
}

/// Writes the six CIFAR-10 binary files into `dir` (created if needed), each with
/// `records_per_file ≥ 1` records from [`cifar_like_records`] (seeds `seed`, `seed + 1`, …).
pub fn write_cifar_binary_dir(dir: &Path, records_per_file: usize, seed: u64) -> Result<()> {
    if records_per_file == 0 {
        return Err(DataError::InvalidArgument {
            name: "records_per_file",
            reason: "must be at least 1, got 0".into(),
        });
    }
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    for (k, name) in BATCH_FILES
        .iter()
        .chain(std::iter::once(&TEST_FILE))
        .enumerate()
    {
        let path = dir.join(name);
        let bytes = cifar_like_records(records_per_file, seed.wrapping_add(k as u64));
        fs::write(&path, bytes).map_err(|e| DataError::io(&path, e))?;
    }
    Ok(())
}

/// The pixel bytes (R plane, G plane, B plane, each row-major 32×32) of fixture image `number`
/// of class `label`: four solid 16×16 quadrants (top-left, top-right, bottom-left,
/// bottom-right) whose colours depend on both, chosen so that R, G and B differ in every
/// quadrant (a swapped channel or a transposed layout is visible). Solid blocks aligned to the
/// JPEG macro-blocks survive high-quality JPEG coding within a few units.
pub fn fixture_image(label: u8, number: u32) -> Vec<u8> {
    let quadrant = |q: usize| -> [u8; 3] {
        let base = 20 + 20 * (label as usize % NUM_CLASSES) + 3 * (number as usize % 5);
        [
            (base + 10 * q) as u8,
            (250 - base / 2 - 30 * q) as u8,
            (40 + 50 * q + 2 * (label as usize % NUM_CLASSES)) as u8,
        ]
    };
    let mut planes = vec![0u8; IMAGE_BYTES];
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let q = 2 * (y / 16) + x / 16;
            let col = quadrant(q);
            for c in 0..3 {
                planes[c * HEIGHT * WIDTH + y * WIDTH + x] = col[c];
            }
        }
    }
    planes
}

/// Encodes planar pixel bytes (as from [`fixture_image`]) as a 32×32 JPEG of `quality`.
pub fn encode_jpeg(planes: &[u8], quality: u8) -> Result<Vec<u8>> {
    if planes.len() != IMAGE_BYTES {
        return Err(DataError::InvalidArgument {
            name: "planes",
            reason: format!("must hold {IMAGE_BYTES} bytes, got {}", planes.len()),
        });
    }
    if !(1..=100).contains(&quality) {
        return Err(DataError::InvalidArgument {
            name: "quality",
            reason: format!("must be in 1..=100, got {quality}"),
        });
    }
    let img = RgbImage::from_fn(WIDTH as u32, HEIGHT as u32, |x, y| {
        let p = y as usize * WIDTH + x as usize;
        image::Rgb([
            planes[p],
            planes[HEIGHT * WIDTH + p],
            planes[2 * HEIGHT * WIDTH + p],
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            img.as_raw(),
            WIDTH as u32,
            HEIGHT as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| {
            DataError::malformed("<fixture jpeg>", format!("JPEG encoding failed: {e}"))
        })?;
    Ok(out)
}

/// Writes a tiny archive shaped like `cifar10_jpg_q75.tar.gz` to `path`: for every class,
/// `train_per_class` images `train/<class>/0000.jpg …` and `test_per_class` images
/// `test/<class>/0000.jpg …`, each [`fixture_image`]`(label, number)` encoded at quality 100.
/// Members are written class by class in reverse file-number order, so a converter that relies
/// on archive order rather than sorting is caught.
pub fn write_cifar_jpeg_archive(
    path: &Path,
    train_per_class: u32,
    test_per_class: u32,
) -> Result<()> {
    let mut members = Vec::new();
    for (split, per_class) in [("train", train_per_class), ("test", test_per_class)] {
        for (label, class) in CIFAR10_CLASSES.iter().enumerate() {
            for number in (0..per_class).rev() {
                let jpeg = encode_jpeg(&fixture_image(label as u8, number), 100)?;
                members.push((format!("{split}/{class}/{number:04}.jpg"), jpeg));
            }
        }
    }
    write_tar_gz(path, &members)
}

/// One review of a fixture IMDB archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureReview {
    /// Which split folder.
    pub split: Split,
    /// `pos` (true) or `neg` (false) folder.
    pub positive: bool,
    /// The id in the file name.
    pub id: u32,
    /// The rating in the file name.
    pub rating: u8,
    /// The review text.
    pub text: String,
}

/// Writes a tiny archive shaped like `aclImdb_labeled.tar.gz` to `path`: `aclImdb/imdb.vocab`
/// (one word per line), `aclImdb/README`, and `aclImdb/{split}/{pos|neg}/<id>_<rating>.txt`.
pub fn write_imdb_archive(path: &Path, vocab: &[&str], reviews: &[FixtureReview]) -> Result<()> {
    let mut members = vec![
        ("aclImdb/README".to_string(), b"fixture\n".to_vec()),
        (
            "aclImdb/imdb.vocab".to_string(),
            vocab
                .iter()
                .flat_map(|w| format!("{w}\n").into_bytes())
                .collect(),
        ),
    ];
    for r in reviews {
        let split = match r.split {
            Split::Train => "train",
            Split::Test => "test",
        };
        let class = if r.positive { "pos" } else { "neg" };
        members.push((
            format!("aclImdb/{split}/{class}/{}_{}.txt", r.id, r.rating),
            r.text.clone().into_bytes(),
        ));
    }
    write_tar_gz(path, &members)
}

/// Writes `(member path, bytes)` pairs as a gzip-compressed tar archive.
pub fn write_tar_gz(path: &Path, members: &[(String, Vec<u8>)]) -> Result<()> {
    let io = |e| DataError::io(path, e);
    let file = File::create(path).map_err(io)?;
    let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .map_err(io)?;
    }
    let mut gz = builder.into_inner().map_err(io)?;
    gz.flush().map_err(io)?;
    gz.finish().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accuracy of a nearest-class-mean classifier on per-image channel means, trained on one
    /// seed and tested on another (an independent, tiny "model").
    fn check(n: usize) -> f64 {
        let mean3 = |ds: &Dataset, i: usize| -> [f64; 3] {
            let img = ds.image(i).unwrap();
            std::array::from_fn(|c| {
                img[c * 1024..(c + 1) * 1024]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>()
                    / 1024.0
            })
        };
        let train = cifar_like(n, 1).unwrap();
        let mut centres = [[0f64; 3]; NUM_CLASSES];
        let mut counts = [0f64; NUM_CLASSES];
        for i in 0..train.n {
            let l = train.labels[i] as usize;
            let m = mean3(&train, i);
            for c in 0..3 {
                centres[l][c] += m[c];
            }
            counts[l] += 1.0;
        }
        for l in 0..NUM_CLASSES {
            for c in 0..3 {
                centres[l][c] /= counts[l];
            }
        }
        let test = cifar_like(n, 2).unwrap();
        let correct = (0..test.n)
            .filter(|&i| {
                let m = mean3(&test, i);
                let dist = |l: usize| (0..3).map(|c| (m[c] - centres[l][c]).powi(2)).sum::<f64>();
                let best = (0..NUM_CLASSES)
                    .min_by(|&a, &b| dist(a).total_cmp(&dist(b)))
                    .unwrap();
                best == test.labels[i] as usize
            })
            .count();
        correct as f64 / test.n as f64
    }

    #[test]
    fn cifar_like_is_learnable_and_deterministic() {
        assert!(check(200) > 0.95);
        let a = cifar_like(20, 5).unwrap();
        assert_eq!(a, cifar_like(20, 5).unwrap());
        assert_ne!(a.images, cifar_like(20, 6).unwrap().images);
        assert_eq!(a.class_counts(), [2; NUM_CLASSES]);
        assert!(matches!(
            cifar_like(0, 1),
            Err(DataError::InvalidArgument { name: "n", .. })
        ));
    }

    #[test]
    fn text_like_is_learnable_and_well_formed() {
        let (len, vocab) = (40, 50);
        let ds = text_like(400, len, vocab, 3).unwrap();
        assert_eq!(ds, text_like(400, len, vocab, 3).unwrap());
        assert_eq!(ds.tokens.len(), 400 * len);
        let half = (vocab as u32 - 2) / 2;
        let mut correct = 0;
        for i in 0..ds.n {
            let row = ds.row(i).unwrap();
            let used = ds.lengths[i] as usize;
            assert!((len / 2..=len).contains(&used));
            assert!(row[..used].iter().all(|&t| (2..vocab as u32).contains(&t)));
            assert!(row[used..].iter().all(|&t| t == 0));
            let upper = row[..used].iter().filter(|&&t| t >= 2 + half).count();
            let guess = u8::from(2 * upper > used);
            correct += usize::from(guess == ds.labels[i]);
        }
        assert!(correct as f64 / ds.n as f64 > 0.8, "accuracy {correct}/400");
        for (n, len, vocab, name) in [(0, 4, 10, "n"), (1, 0, 10, "len"), (1, 4, 3, "vocab")] {
            assert!(matches!(
                text_like(n, len, vocab, 0),
                Err(DataError::InvalidArgument { name: got, .. }) if got == name
            ));
        }
    }

    #[test]
    fn fixture_jpegs_decode_close_to_the_drawing() {
        let planes = fixture_image(9, 4);
        let jpeg = encode_jpeg(&planes, 100).unwrap();
        let img = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        let p = img.get_pixel(20, 3).0; // top-right quadrant
        for c in 0..3 {
            let want = planes[c * 1024 + 3 * 32 + 20] as i32;
            assert!(
                (p[c] as i32 - want).abs() <= 3,
                "channel {c}: {} vs {want}",
                p[c]
            );
        }
        // Every quadrant has three distinct channel values.
        for q in [0usize, 16, 16 * 32, 16 * 32 + 16] {
            let (r, g, b) = (planes[q], planes[1024 + q], planes[2048 + q]);
            assert!(r != g && g != b && r != b, "quadrant at {q}: {r} {g} {b}");
        }
        assert!(encode_jpeg(&planes[1..], 90).is_err() && encode_jpeg(&planes, 0).is_err());
    }
}
