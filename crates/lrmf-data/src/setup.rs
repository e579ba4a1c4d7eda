//! Data set-up: verify an archive's sha256, unpack it, convert CIFAR-10 JPEGs to the standard
//! binary layout, and locate prepared data — idempotently and atomically.
//!
//! # Layout produced under a data root (default `data/` of the repository)
//!
//! ```text
//! <root>/cifar-10-batches-bin/data_batch_1.bin … data_batch_5.bin, test_batch.bin, .lrmf-prepared
//! <root>/aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt, imdb.vocab, README, .lrmf-prepared
//! ```
//!
//! # Record order of the converted CIFAR-10 files
//!
//! Within one split, the images of class `c` are sorted by the number in their file name
//! (`train/<class>/NNNN.jpg`), giving each a rank `r` (0, 1, 2, … within its class). All images
//! of the split are then ordered by the pair `(r, c)`: record `10·r + c` is the `r`-th image of
//! class `c` when every class has the same count. For the 50,000 training images (5,000 per
//! class) record `i` is image `i / 10` of class `i % 10`; the records are cut into 5 consecutive
//! batches of 10,000, so every batch holds exactly 1,000 images of each class, and so does any
//! prefix of length `10·k`. The test split uses the same rule (1,000 per class).
//!
//! # Idempotence and atomicity
//!
//! Each prepared folder is first built under a temporary name in the same parent
//! (`.<name>.partial-<pid>`), then a marker file `.lrmf-prepared` (holding the archive's sha256
//! and, for CIFAR-10, the size of every `.bin` file; for IMDB, the size of `imdb.vocab` and the
//! number of reviews in each folder) is written inside it, and only then is the folder renamed
//! to its final name. A folder with a marker that matches the expected sha256, sizes and counts
//! is therefore complete; a second call returns at once (about 10–20 ms) without hashing the
//! archive again. (Unpacked review files are not fsynced one by one; the rename is the commit
//! point against interruption of the process, not against a power cut.) An interrupted
//! set-up leaves at most a `.partial-*` folder, which never counts as done and is removed by the
//! next call from the same process id (or by hand). A final folder *without* a marker is never
//! deleted (it may be a user's own copy); the set-up stops with an error instead.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use crate::cifar10::{BATCH_FILES, IMAGE_BYTES, RECORD_BYTES, TEST_FILE};
use crate::error::{DataError, Result};

/// sha256 of `cifar10_jpg_q75.tar.gz` (CIFAR-10, every image re-encoded as JPEG quality 75).
pub const CIFAR10_JPG_Q75_SHA256: &str =
    "f7d59730c39bfca9471e346976c47e8b75c45eebbebfc33b0fd6c5375a75d551";

/// sha256 of `aclImdb_labeled.tar.gz` (IMDB Large Movie Review Dataset v1.0, labelled part).
pub const IMDB_LABELED_SHA256: &str =
    "6024e59e7bcfce6237e75b4f4ae330305331ef1045335b079120e697a1d40353";

/// File name of the CIFAR-10 JPEG archive in the shared data folder.
pub const CIFAR10_ARCHIVE_NAME: &str = "cifar10_jpg_q75.tar.gz";

/// File name of the IMDB archive in the shared data folder.
pub const IMDB_ARCHIVE_NAME: &str = "aclImdb_labeled.tar.gz";

/// Folder name of the converted CIFAR-10 binary files (the official archive's name).
pub const CIFAR10_DIR_NAME: &str = "cifar-10-batches-bin";

/// Folder name of the unpacked IMDB reviews (the official archive's name).
pub const IMDB_DIR_NAME: &str = "aclImdb";

/// Name of the marker file written last inside a prepared folder.
pub const MARKER_NAME: &str = ".lrmf-prepared";

/// The CIFAR-10 class names; the label id is the index (airplane = 0, …, truck = 9).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Size in bytes of each official CIFAR-10 binary file: 10,000 records of 3,073 bytes.
pub const OFFICIAL_BATCH_BYTES: u64 = 10_000 * RECORD_BYTES as u64;

/// The shared archive folder next to the repository (`<workspace root>/../shared/data`, the root
/// from [`workspace_root`]). It may not exist on a user's machine; use [`Source::Directory`] then.
pub fn default_shared_dir() -> PathBuf {
    workspace_root().join("../shared/data")
}

/// The workspace root of the program being run by `cargo run` or `cargo test`, found at run time.
///
/// Cargo sets `CARGO_MANIFEST_DIR` in the environment of the program it starts; the nearest of
/// its ancestors holding a `Cargo.lock` is the root of the checkout being run. `None` when the
/// program was started directly (no such variable, or no `Cargo.lock` above it).
///
/// Why not only `env!("CARGO_MANIFEST_DIR")`: when two checkouts share one target directory,
/// cargo does not rebuild a path crate merely because its folder moved, so a compile-time path
/// can name the *other* checkout (seen here: a binary built in `/work/main` looking for data
/// under `/check/work/main`).
pub fn run_time_workspace_root() -> Option<PathBuf> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    manifest
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .map(Path::to_path_buf)
}

/// The repository root: [`run_time_workspace_root`] when cargo started the program, else the
/// root fixed at compile time (two levels above this crate's manifest).
pub fn workspace_root() -> PathBuf {
    run_time_workspace_root().unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Environment variable that overrides the default data root of [`DataDir::from_env`].
pub const DATA_DIR_ENV: &str = "LRMF_DATA_DIR";

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A checksummed archive (the shared `*.tar.gz`) that is verified, unpacked and converted
    /// into the data root.
    SharedArchive(PathBuf),
    /// Any archive of the same layout, verified against `sha256` instead of the built-in
    /// checksum (another mirror, a test fixture).
    Archive {
        /// The `*.tar.gz`.
        path: PathBuf,
        /// Its expected sha256 (64 hexadecimal digits).
        sha256: String,
    },
    /// A folder the user already holds: for CIFAR-10 the official binary files (the folder
    /// itself or its parent holding `cifar-10-batches-bin/`), for IMDB the `aclImdb/` folder (or
    /// its parent). Nothing is copied; the files are only validated (sizes and layout).
    Directory(PathBuf),
}

/// Which data set a path or message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corpus {
    /// CIFAR-10 (binary layout).
    Cifar10,
    /// IMDB reviews (`aclImdb/`).
    Imdb,
}

/// The prepared CIFAR-10 binary files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cifar10Files {
    /// The folder holding the files.
    pub dir: PathBuf,
    /// `data_batch_1.bin` … `data_batch_5.bin`, in order.
    pub train: Vec<PathBuf>,
    /// `test_batch.bin`.
    pub test: PathBuf,
    /// Number of training records over all batches.
    pub n_train: usize,
    /// Number of test records.
    pub n_test: usize,
}

/// The prepared IMDB folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdbFiles {
    /// The `aclImdb/` folder.
    pub dir: PathBuf,
    /// The shipped vocabulary file `aclImdb/imdb.vocab`.
    pub vocab: PathBuf,
    /// Number of review files in `train/pos` + `train/neg`.
    pub n_train: usize,
    /// Number of review files in `test/pos` + `test/neg`.
    pub n_test: usize,
}

/// A data root and the paths of prepared data under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// A data root at `root` (need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The repository's git-ignored `data/` folder: `<workspace root>/data`, the root from
    /// [`workspace_root`].
    pub fn repo_default() -> Self {
        DataDir::new(workspace_root().join("data"))
    }

    /// `$LRMF_DATA_DIR` when set and non-empty, else [`DataDir::repo_default`].
    pub fn from_env() -> Self {
        match std::env::var_os(DATA_DIR_ENV) {
            Some(v) if !v.is_empty() => DataDir::new(PathBuf::from(v)),
            _ => DataDir::repo_default(),
        }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/cifar-10-batches-bin`.
    pub fn cifar10_dir(&self) -> PathBuf {
        self.root.join(CIFAR10_DIR_NAME)
    }

    /// `<root>/aclImdb`.
    pub fn imdb_dir(&self) -> PathBuf {
        self.root.join(IMDB_DIR_NAME)
    }

    /// The CIFAR-10 files under this root (the root itself or `<root>/cifar-10-batches-bin`),
    /// or [`DataError::Missing`] with the "run `cargo xtask data`" message when any is absent.
    /// Sizes are checked to be whole records; content is checked by the loader.
    pub fn cifar10(&self) -> Result<Cifar10Files> {
        let dir = resolve_cifar10_dir(&self.root);
        let missing: Vec<&str> = BATCH_FILES
            .iter()
            .chain(std::iter::once(&TEST_FILE))
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(DataError::Missing {
                message: missing_data_message(Corpus::Cifar10, &dir, &missing),
            });
        }
        cifar10_files_in(&dir, None)
    }

    /// The IMDB folder under this root (`<root>/aclImdb` or the root itself when it is an
    /// `aclImdb` folder), or [`DataError::Missing`] with the "run `cargo xtask data`" message.
    pub fn imdb(&self) -> Result<ImdbFiles> {
        let dir = resolve_imdb_dir(&self.root);
        let missing: Vec<&str> = IMDB_REQUIRED
            .iter()
            .copied()
            .filter(|p| !dir.join(p).exists())
            .collect();
        if !missing.is_empty() {
            return Err(DataError::Missing {
                message: missing_data_message(Corpus::Imdb, &dir, &missing),
            });
        }
        imdb_files_in(&dir)
    }
}

impl Default for DataDir {
    /// Same as [`DataDir::from_env`].
    fn default() -> Self {
        DataDir::from_env()
    }
}

/// Paths that must exist inside a usable `aclImdb/` folder.
const IMDB_REQUIRED: [&str; 5] = [
    "imdb.vocab",
    "train/pos",
    "train/neg",
    "test/pos",
    "test/neg",
];

/// The exact user-facing text for missing prepared data: what is missing, where it was looked
/// for, and the two ways to fix it (`cargo xtask data`, or pointing at the user's own copy with
/// the config key `[data] dir`, `$LRMF_DATA_DIR` or `cargo xtask data --data-dir`).
pub fn missing_data_message(corpus: Corpus, looked_in: &Path, missing: &[&str]) -> String {
    let list = missing.join(", ");
    match corpus {
        Corpus::Cifar10 => format!(
            "CIFAR-10 binary files not found in {} (missing: {list}). Run `cargo xtask data` to \
             verify and convert the shared archive into the data folder, or point `[data] dir = \"DIR\"` \
             in the config (or the environment variable LRMF_DATA_DIR) at a folder with the official CIFAR-10 \
             binary version (data_batch_1.bin … data_batch_5.bin, test_batch.bin; in the folder \
             itself or its cifar-10-batches-bin/).",
            looked_in.display()
        ),
        Corpus::Imdb => format!(
            "IMDB reviews not found in {} (missing: {list}). Run `cargo xtask data` to verify and \
             unpack the shared archive into the data folder, or point `[data] dir = \"DIR\"` in the \
             config (or the environment variable LRMF_DATA_DIR) at a folder holding an \
             unpacked aclImdb/ (train/, test/, imdb.vocab).",
            looked_in.display()
        ),
    }
}

/// Streaming sha256 of a file, as lower-case hex. Reads in 1 MiB blocks; O(size) time, O(1) memory.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(lrmf_io::to_hex(&hasher.finalize()))
}

/// Checks that `path` hashes to `expected` (hex, any case); [`DataError::ChecksumMismatch`]
/// names both values otherwise.
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let expected = normalized_sha256(expected)?;
    let actual = sha256_file(path)?;
    if actual == expected {
        Ok(())
    } else {
        Err(DataError::ChecksumMismatch {
            path: path.to_path_buf(),
            expected,
            actual,
        })
    }
}

fn normalized_sha256(expected: &str) -> Result<String> {
    let e = expected.trim().to_ascii_lowercase();
    if e.len() != 64 || !e.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DataError::InvalidArgument {
            name: "expected_sha256",
            reason: format!("must be 64 hexadecimal digits, got {expected:?}"),
        });
    }
    Ok(e)
}

/// CIFAR-10 from a [`Source`] — the one entry point of the CIFAR-10 set-up: an archive is
/// verified and converted into `root/cifar-10-batches-bin/` ([`Source::SharedArchive`] against
/// [`CIFAR10_JPG_Q75_SHA256`], [`Source::Archive`] against its own checksum; see
/// `prepare_cifar10` below); a directory is validated in place (each of the six files must be
/// exactly 30,730,000 bytes, the official size) and returned as is.
pub fn setup_cifar10(source: &Source, root: &Path) -> Result<Cifar10Files> {
    match source {
        Source::SharedArchive(archive) => prepare_cifar10(archive, CIFAR10_JPG_Q75_SHA256, root),
        Source::Archive { path, sha256 } => prepare_cifar10(path, sha256, root),
        Source::Directory(dir) => {
            let dir = resolve_cifar10_dir(dir);
            cifar10_files_in(&dir, Some(OFFICIAL_BATCH_BYTES))
        }
    }
}

/// IMDB from a [`Source`] — the one entry point of the IMDB set-up: an archive is verified and
/// unpacked into `root/aclImdb/` ([`Source::SharedArchive`] against [`IMDB_LABELED_SHA256`],
/// [`Source::Archive`] against its own checksum; see `prepare_imdb` below); a directory is
/// validated in place (`imdb.vocab`, non-empty `{train,test}/{pos,neg}`).
pub fn setup_imdb(source: &Source, root: &Path) -> Result<ImdbFiles> {
    match source {
        Source::SharedArchive(archive) => prepare_imdb(archive, IMDB_LABELED_SHA256, root),
        Source::Archive { path, sha256 } => prepare_imdb(path, sha256, root),
        Source::Directory(dir) => imdb_files_in(&resolve_imdb_dir(dir)),
    }
}

/// Verifies the archive's sha256 (streaming), decodes every `train|test/<class>/NNNN.jpg` with
/// the `image` crate's JPEG decoder (in parallel threads) and writes `data_batch_1..5.bin` +
/// `test_batch.bin` (records: 1 label byte, 1024 R, 1024 G, 1024 B, row-major 32×32) into
/// `dest/cifar-10-batches-bin/`, in the record order documented in this module.
///
/// Idempotent (a matching marker returns at once) and atomic (the folder appears complete or
/// not at all). The training split must have a multiple of 5 images (one fifth per batch).
///
/// Cost: O(archive size) hashing + one JPEG decode per image, split over
/// `available_parallelism()` threads; memory O(archive size + 3073 · n).
fn prepare_cifar10(source: &Path, expected_sha256: &str, dest: &Path) -> Result<Cifar10Files> {
    let expected = normalized_sha256(expected_sha256)?;
    let final_dir = dest.join(CIFAR10_DIR_NAME);
    if let Some(files) = prepared_cifar10(&final_dir, &expected)? {
        return Ok(files);
    }
    verify_sha256(source, &expected)?;
    let (train, test) = read_cifar_archive(source)?;
    if train.is_empty() || !train.len().is_multiple_of(BATCH_FILES.len()) {
        return Err(DataError::malformed(
            source,
            format!(
                "the train split has {} images; it must be a positive multiple of {} \
                 (one equal part per data_batch file)",
                train.len(),
                BATCH_FILES.len()
            ),
        ));
    }
    if test.is_empty() {
        return Err(DataError::malformed(source, "the test split has no images"));
    }
    let train_bytes = decode_records(source, &train)?;
    let test_bytes = decode_records(source, &test)?;

    let per_batch = train_bytes.len() / BATCH_FILES.len();
    let mut outputs: Vec<(&str, &[u8])> = BATCH_FILES
        .iter()
        .enumerate()
        .map(|(b, name)| (*name, &train_bytes[b * per_batch..(b + 1) * per_batch]))
        .collect();
    outputs.push((TEST_FILE, &test_bytes));
    publish_dir(dest, CIFAR10_DIR_NAME, &expected, |tmp| {
        for (name, bytes) in &outputs {
            write_file(&tmp.join(name), bytes)?;
        }
        Ok(outputs
            .iter()
            .map(|(n, b)| (n.to_string(), b.len() as u64))
            .collect())
    })?;
    cifar10_files_in(&final_dir, None)
}

/// Verifies the archive's sha256 (streaming) and unpacks its `aclImdb/` folder into
/// `dest/aclImdb/`, idempotently and atomically (see the module documentation). Members outside
/// `aclImdb/` or with `..` components are rejected. Cost: O(archive size).
fn prepare_imdb(source: &Path, expected_sha256: &str, dest: &Path) -> Result<ImdbFiles> {
    let expected = normalized_sha256(expected_sha256)?;
    let final_dir = dest.join(IMDB_DIR_NAME);
    if let Some(marker) = read_marker(&final_dir)?
        && marker.sha256 == expected
        && imdb_marker_entries(&final_dir).is_ok_and(|now| now == marker.sizes)
        && let Ok(files) = imdb_files_in(&final_dir)
    {
        return Ok(files);
    }
    verify_sha256(source, &expected)?;
    publish_dir(dest, IMDB_DIR_NAME, &expected, |tmp| {
        unpack_imdb(source, tmp)?;
        imdb_marker_entries(tmp)
    })?;
    imdb_files_in(&final_dir)
}

/// Content of a marker file: the archive's sha256 and the sizes of the files it vouches for.
struct Marker {
    sha256: String,
    sizes: Vec<(String, u64)>,
}

fn read_marker(dir: &Path) -> Result<Option<Marker>> {
    let path = dir.join(MARKER_NAME);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DataError::io(&path, e)),
    };
    let mut lines = text.lines();
    let Some(first) = lines.next().and_then(|l| l.strip_prefix("sha256 ")) else {
        return Ok(None);
    };
    let mut sizes = Vec::new();
    for line in lines {
        let Some((name, size)) = line.rsplit_once(' ') else {
            return Ok(None);
        };
        let Ok(size) = size.parse::<u64>() else {
            return Ok(None);
        };
        sizes.push((name.to_string(), size));
    }
    Ok(Some(Marker {
        sha256: first.to_string(),
        sizes,
    }))
}

/// The prepared CIFAR-10 files when the marker matches `expected` and every listed size is right.
fn prepared_cifar10(dir: &Path, expected: &str) -> Result<Option<Cifar10Files>> {
    let Some(marker) = read_marker(dir)? else {
        return Ok(None);
    };
    if marker.sha256 != expected || marker.sizes.len() != BATCH_FILES.len() + 1 {
        return Ok(None);
    }
    for (name, size) in &marker.sizes {
        match fs::metadata(dir.join(name)) {
            Ok(m) if m.len() == *size => {}
            _ => return Ok(None),
        }
    }
    Ok(cifar10_files_in(dir, None).ok())
}

/// Builds `dest/.<name>.partial-<pid>` with `fill` (which returns the marker's `name value`
/// entries), writes the marker, then renames the folder to `dest/<name>`. An existing
/// `dest/<name>` is replaced only when it carries our marker.
fn publish_dir(
    dest: &Path,
    name: &str,
    sha256: &str,
    fill: impl FnOnce(&Path) -> Result<Vec<(String, u64)>>,
) -> Result<()> {
    fs::create_dir_all(dest).map_err(|e| DataError::io(dest, e))?;
    let final_dir = dest.join(name);
    let tmp = dest.join(format!(".{name}.partial-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| DataError::io(&tmp, e))?;
    }
    fs::create_dir(&tmp).map_err(|e| DataError::io(&tmp, e))?;
    let result = fill(&tmp).and_then(|sizes| {
        let mut marker = format!("sha256 {sha256}\n");
        for (file, size) in &sizes {
            marker.push_str(&format!("{file} {size}\n"));
        }
        write_file(&tmp.join(MARKER_NAME), marker.as_bytes())
    });
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if final_dir.exists() {
        if read_marker(&final_dir)?.is_none() {
            let _ = fs::remove_dir_all(&tmp);
            return Err(DataError::malformed(
                &final_dir,
                format!(
                    "the folder exists but was not prepared by this tool (no {MARKER_NAME}); \
                     move it away, or use it directly as a `--data-dir` source"
                ),
            ));
        }
        fs::remove_dir_all(&final_dir).map_err(|e| DataError::io(&final_dir, e))?;
    }
    fs::rename(&tmp, &final_dir).map_err(|e| DataError::io(&final_dir, e))?;
    lrmf_io::sync_dir(dest).map_err(|e| DataError::io(dest, e))
}

/// Writes `bytes` to `path` atomically and durably ([`lrmf_io::atomic_write`]).
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    lrmf_io::atomic_write(path, bytes).map_err(|e| DataError::io(path, e))
}

/// `dir` itself when it holds `data_batch_1.bin`, else `dir/cifar-10-batches-bin`.
fn resolve_cifar10_dir(dir: &Path) -> PathBuf {
    if dir.join(BATCH_FILES[0]).is_file() || !dir.join(CIFAR10_DIR_NAME).is_dir() {
        dir.to_path_buf()
    } else {
        dir.join(CIFAR10_DIR_NAME)
    }
}

/// `dir` itself when it holds `imdb.vocab`, else `dir/aclImdb`.
fn resolve_imdb_dir(dir: &Path) -> PathBuf {
    if dir.join("imdb.vocab").is_file() || !dir.join(IMDB_DIR_NAME).is_dir() {
        dir.to_path_buf()
    } else {
        dir.join(IMDB_DIR_NAME)
    }
}

/// Validates the six CIFAR-10 files in `dir`: each a non-empty whole number of records, or,
/// with `exact`, exactly that many bytes.
fn cifar10_files_in(dir: &Path, exact: Option<u64>) -> Result<Cifar10Files> {
    let count = |name: &str| -> Result<usize> {
        let path = dir.join(name);
        let len = fs::metadata(&path)
            .map_err(|e| DataError::io(&path, e))?
            .len();
        if let Some(want) = exact
            && len != want
        {
            return Err(DataError::malformed(
                &path,
                format!("size {len} bytes, the official CIFAR-10 binary file has {want}"),
            ));
        }
        if len == 0 || !len.is_multiple_of(RECORD_BYTES as u64) {
            return Err(DataError::malformed(
                &path,
                format!(
                    "size {len} bytes is not a positive multiple of the record size {RECORD_BYTES}"
                ),
            ));
        }
        Ok((len / RECORD_BYTES as u64) as usize)
    };
    let mut n_train = 0;
    for name in BATCH_FILES {
        n_train += count(name)?;
    }
    let n_test = count(TEST_FILE)?;
    Ok(Cifar10Files {
        dir: dir.to_path_buf(),
        train: BATCH_FILES.iter().map(|f| dir.join(f)).collect(),
        test: dir.join(TEST_FILE),
        n_train,
        n_test,
    })
}

/// The review folders of an `aclImdb/` folder, in the order of [`imdb_counts`].
const IMDB_FOLDERS: [&str; 4] = ["train/pos", "train/neg", "test/pos", "test/neg"];

/// The IMDB marker's entries: the size of `imdb.vocab` and the number of reviews per folder.
fn imdb_marker_entries(dir: &Path) -> Result<Vec<(String, u64)>> {
    let vocab = dir.join("imdb.vocab");
    let size = fs::metadata(&vocab)
        .map_err(|e| DataError::io(&vocab, e))?
        .len();
    let counts = imdb_counts(dir)?;
    Ok(std::iter::once(("imdb.vocab".to_string(), size))
        .chain(
            IMDB_FOLDERS
                .iter()
                .zip(counts)
                .map(|(f, c)| (format!("{f}/*.txt"), c as u64)),
        )
        .collect())
}

/// Validates an `aclImdb/` folder and counts its review files.
fn imdb_files_in(dir: &Path) -> Result<ImdbFiles> {
    let vocab = dir.join("imdb.vocab");
    if !vocab.is_file() {
        return Err(DataError::malformed(dir, "no imdb.vocab file"));
    }
    let counts = imdb_counts(dir)?;
    Ok(ImdbFiles {
        dir: dir.to_path_buf(),
        vocab,
        n_train: counts[0] + counts[1],
        n_test: counts[2] + counts[3],
    })
}

/// Number of `*.txt` files in each of [`IMDB_FOLDERS`]; each must be positive.
fn imdb_counts(dir: &Path) -> Result<[usize; 4]> {
    let mut counts = [0usize; 4];
    for (k, sub) in IMDB_FOLDERS.iter().enumerate() {
        let path = dir.join(sub);
        let rd = fs::read_dir(&path).map_err(|e| DataError::io(&path, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| DataError::io(&path, e))?;
            if entry.file_name().to_string_lossy().ends_with(".txt") {
                counts[k] += 1;
            }
        }
        if counts[k] == 0 {
            return Err(DataError::malformed(&path, "no review files (*.txt)"));
        }
    }
    Ok(counts)
}

/// One JPEG of the archive: where it was and its label, rank within class and bytes.
struct JpegEntry {
    path: PathBuf,
    label: u8,
    number: u64,
    bytes: Vec<u8>,
}

/// Reads every `train|test/<class>/<number>.jpg` of the archive into memory and returns each
/// split in record order (sorted by rank within class, then class).
fn read_cifar_archive(source: &Path) -> Result<(Vec<JpegEntry>, Vec<JpegEntry>)> {
    let file = File::open(source).map_err(|e| DataError::io(source, e))?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let mut splits: [Vec<JpegEntry>; 2] = [Vec::new(), Vec::new()];
    let entries = archive.entries().map_err(|e| DataError::io(source, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| DataError::io(source, e))?;
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| DataError::io(source, e))?
            .into_owned();
        let member = source.join(&path);
        let parts: Vec<String> = path
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let bad = |why: &str| {
            DataError::malformed(
                &member,
                format!("{why}; expected train/<class>/NNNN.jpg or test/<class>/NNNN.jpg"),
            )
        };
        if parts.len() != 3 || !entry.header().entry_type().is_file() {
            return Err(bad("unexpected archive member"));
        }
        let split = match parts[0].as_str() {
            "train" => 0,
            "test" => 1,
            _ => return Err(bad("unknown split folder")),
        };
        let label = CIFAR10_CLASSES
            .iter()
            .position(|c| *c == parts[1])
            .ok_or_else(|| bad("unknown class folder"))? as u8;
        let number = parts[2]
            .strip_suffix(".jpg")
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad("file name is not <number>.jpg"))?;
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::io(&member, e))?;
        splits[split].push(JpegEntry {
            path: member,
            label,
            number,
            bytes,
        });
    }
    let [train, test] = splits;
    Ok((record_order(train)?, record_order(test)?))
}

/// Sorts by (rank of the file number within its class, class); duplicates are an error.
fn record_order(mut entries: Vec<JpegEntry>) -> Result<Vec<JpegEntry>> {
    entries.sort_by_key(|e| (e.label, e.number));
    let mut ranks: Vec<usize> = Vec::with_capacity(entries.len());
    for i in 0..entries.len() {
        let same_class = i > 0 && entries[i - 1].label == entries[i].label;
        if same_class && entries[i - 1].number == entries[i].number {
            return Err(DataError::malformed(
                &entries[i].path,
                format!("two members with number {} in one class", entries[i].number),
            ));
        }
        ranks.push(if same_class { ranks[i - 1] + 1 } else { 0 });
    }
    let mut keyed: Vec<(usize, JpegEntry)> = ranks.into_iter().zip(entries).collect();
    keyed.sort_by_key(|(r, e)| (*r, e.label));
    Ok(keyed.into_iter().map(|(_, e)| e).collect())
}

/// Decodes each JPEG to a 3,073-byte record (label, R plane, G plane, B plane), in parallel.
fn decode_records(source: &Path, entries: &[JpegEntry]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; entries.len() * RECORD_BYTES];
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    let chunk = entries.len().div_ceil(threads).max(1);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = out
            .chunks_mut(chunk * RECORD_BYTES)
            .zip(entries.chunks(chunk))
            .map(|(buf, ents)| {
                s.spawn(move || {
                    for (rec, e) in buf.chunks_exact_mut(RECORD_BYTES).zip(ents) {
                        decode_one(e, rec)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(DataError::malformed(source, "a decoding thread panicked"))
                })
            })
            .collect()
    });
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(out)
}

fn decode_one(e: &JpegEntry, rec: &mut [u8]) -> Result<()> {
    let img = image::load_from_memory_with_format(&e.bytes, image::ImageFormat::Jpeg)
        .map_err(|source| DataError::Decode {
            path: e.path.clone(),
            source,
        })?
        .to_rgb8();
    if img.width() != 32 || img.height() != 32 {
        return Err(DataError::malformed(
            &e.path,
            format!(
                "image is {}×{}, CIFAR-10 needs 32×32",
                img.width(),
                img.height()
            ),
        ));
    }
    rec[0] = e.label;
    let planes = &mut rec[1..];
    for (p, px) in img.pixels().enumerate() {
        for c in 0..3 {
            planes[c * (IMAGE_BYTES / 3) + p] = px.0[c];
        }
    }
    Ok(())
}

/// Unpacks the `aclImdb/` members of the archive into `tmp`'s content (so `tmp` becomes the
/// `aclImdb` folder). Rejects members outside `aclImdb/` and any `..` component.
fn unpack_imdb(source: &Path, tmp: &Path) -> Result<()> {
    let file = File::open(source).map_err(|e| DataError::io(source, e))?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let entries = archive.entries().map_err(|e| DataError::io(source, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| DataError::io(source, e))?;
        let path = entry
            .path()
            .map_err(|e| DataError::io(source, e))?
            .into_owned();
        let member = source.join(&path);
        let mut comps = Vec::new();
        for c in path.components() {
            match c {
                std::path::Component::Normal(s) => comps.push(s.to_os_string()),
                std::path::Component::CurDir => {}
                _ => {
                    return Err(DataError::malformed(
                        &member,
                        "archive member path leaves the extraction folder",
                    ));
                }
            }
        }
        if comps.first().map(|c| c != IMDB_DIR_NAME).unwrap_or(true) {
            return Err(DataError::malformed(
                &member,
                format!("archive member outside {IMDB_DIR_NAME}/"),
            ));
        }
        let rel: PathBuf = comps[1..].iter().collect();
        let target = tmp.join(&rel);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs::create_dir_all(&target).map_err(|e| DataError::io(&target, e))?;
        } else if kind.is_file() {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
            }
            let mut out = File::create(&target).map_err(|e| DataError::io(&target, e))?;
            io::copy(&mut entry, &mut out).map_err(|e| DataError::io(&member, e))?;
        } else {
            return Err(DataError::malformed(
                &member,
                "archive member is neither a file nor a folder",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cifar10::{Cifar10, Normalization, Split};
    use crate::imdb::Imdb;
    use crate::synthetic::{
        FixtureReview, encode_jpeg, fixture_image, write_cifar_jpeg_archive, write_imdb_archive,
        write_tar_gz,
    };

    /// Writes a fixture CIFAR archive (`train`/`test` images per class) in a fresh tempdir,
    /// prepares it with its own checksum, and returns (tempdir, archive path, files).
    fn check(train: u32, test: u32) -> (tempfile::TempDir, PathBuf, Cifar10Files) {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("fixture.tar.gz");
        write_cifar_jpeg_archive(&archive, train, test).unwrap();
        let sha = sha256_file(&archive).unwrap();
        let files = prepare_cifar10(&archive, &sha, &tmp.path().join("data")).unwrap();
        (tmp, archive, files)
    }

    /// The planar bytes that the `image` crate's decoder gives for `planes` encoded at q100.
    fn decoded(planes: &[u8]) -> Vec<u8> {
        let jpeg = encode_jpeg(planes, 100).unwrap();
        let img = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        let mut out = vec![0u8; IMAGE_BYTES];
        for (x, y, p) in img.enumerate_pixels() {
            for c in 0..3 {
                out[c * 1024 + y as usize * 32 + x as usize] = p.0[c];
            }
        }
        out
    }

    #[test]
    fn jpeg_round_trip_keeps_order_channels_and_layout() {
        let (_tmp, _archive, files) = check(3, 2);
        assert_eq!((files.n_train, files.n_test), (30, 20));
        let mut train = Vec::new();
        for p in &files.train {
            let bytes = fs::read(p).unwrap();
            assert_eq!(bytes.len(), 6 * RECORD_BYTES, "{}", p.display());
            train.extend(bytes);
        }
        let test = fs::read(&files.test).unwrap();
        for (records, per_class) in [(&train, 3), (&test, 2)] {
            for (i, rec) in records.chunks_exact(RECORD_BYTES).enumerate() {
                let (label, number) = ((i % 10) as u8, (i / 10) as u32);
                assert!(number < per_class);
                assert_eq!(rec[0], label, "record {i}");
                let truth = fixture_image(label, number);
                // Exactly what the decoder gives, and close to the drawn pixels.
                assert_eq!(&rec[1..], decoded(&truth).as_slice(), "record {i}");
                let worst = rec[1..]
                    .iter()
                    .zip(&truth)
                    .map(|(&a, &b)| (a as i32 - b as i32).abs())
                    .max()
                    .unwrap();
                assert!(worst <= 3, "record {i}: max pixel error {worst}");
            }
        }
        // The loader sees the same bytes: R of the top-right quadrant at channel 0, row 0, col 16.
        let ds = Cifar10::load_with(&files.dir, Split::Train, Normalization::UnitRange).unwrap();
        let v = ds.image(7).unwrap()[16];
        assert_eq!(v, train[7 * RECORD_BYTES + 1 + 16] as f32 / 255.0);
    }

    #[test]
    fn second_call_is_instant_and_damage_is_repaired() {
        let (tmp, archive, files) = check(1, 1);
        let dest = tmp.path().join("data");
        // A matching marker returns without reading the archive at all.
        let gone = tmp.path().join("no-such-archive.tar.gz");
        let sha = sha256_file(&archive).unwrap();
        assert_eq!(prepare_cifar10(&gone, &sha, &dest).unwrap(), files);
        // A truncated file invalidates the marker: the next call converts again.
        let first = fs::read(&files.train[0]).unwrap();
        fs::write(&files.train[0], &first[..100]).unwrap();
        assert!(prepare_cifar10(&gone, &sha, &dest).is_err());
        let again = prepare_cifar10(&archive, &sha, &dest).unwrap();
        assert_eq!(fs::read(&again.train[0]).unwrap(), first);
        // A marker for another archive is not trusted either.
        let other = "0".repeat(64);
        assert!(matches!(
            prepare_cifar10(&archive, &other, &dest),
            Err(DataError::ChecksumMismatch { .. })
        ));
        assert!(!dest.read_dir().unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".partial-")
        }));
    }

    #[test]
    fn checksum_mismatch_is_an_error_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("a.tar.gz");
        write_cifar_jpeg_archive(&archive, 1, 1).unwrap();
        let dest = tmp.path().join("data");
        let err = setup_cifar10(&Source::SharedArchive(archive.clone()), &dest).unwrap_err();
        let DataError::ChecksumMismatch {
            expected, actual, ..
        } = &err
        else {
            panic!("expected a checksum mismatch, got {err}");
        };
        assert_eq!(expected, CIFAR10_JPG_Q75_SHA256);
        assert_eq!(*actual, sha256_file(&archive).unwrap());
        assert!(err.to_string().contains(CIFAR10_JPG_Q75_SHA256));
        assert!(!dest.join(CIFAR10_DIR_NAME).exists());
        assert!(matches!(
            setup_imdb(&Source::SharedArchive(archive.clone()), &dest),
            Err(DataError::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            verify_sha256(&archive, "abc"),
            Err(DataError::InvalidArgument {
                name: "expected_sha256",
                ..
            })
        ));
    }

    #[test]
    fn sha256_matches_known_vectors() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("abc");
        fs::write(&p, b"abc").unwrap();
        // FIPS 180-2 test vector.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&p).unwrap(), abc);
        verify_sha256(&p, &abc.to_uppercase()).unwrap();
    }

    #[test]
    fn unmarked_folder_is_kept_and_partial_folder_does_not_count() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("a.tar.gz");
        write_cifar_jpeg_archive(&archive, 1, 1).unwrap();
        let sha = sha256_file(&archive).unwrap();
        let dest = tmp.path().join("data");
        let user = dest.join(CIFAR10_DIR_NAME);
        fs::create_dir_all(&user).unwrap();
        fs::write(user.join("mine.txt"), b"keep").unwrap();
        assert!(matches!(
            prepare_cifar10(&archive, &sha, &dest),
            Err(DataError::Malformed { .. })
        ));
        assert_eq!(fs::read(user.join("mine.txt")).unwrap(), b"keep");

        let fresh = tmp.path().join("fresh");
        let partial = fresh.join(format!(".{CIFAR10_DIR_NAME}.partial-1"));
        crate::synthetic::write_cifar_binary_dir(&partial, 2, 0).unwrap();
        let err = DataDir::new(&fresh).cifar10().unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }));
        assert!(err.to_string().contains("cargo xtask data"), "{err}");
    }

    #[test]
    fn archive_with_bad_members_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let jpeg = encode_jpeg(&fixture_image(0, 0), 90).unwrap();
        let cases: [(&str, Vec<u8>); 4] = [
            ("train/zebra/0000.jpg", jpeg.clone()),
            ("train/cat/x.jpg", jpeg.clone()),
            ("valid/cat/0000.jpg", jpeg.clone()),
            ("train/cat/0000.jpg", b"not a jpeg".to_vec()),
        ];
        for (k, (name, bytes)) in cases.into_iter().enumerate() {
            let archive = tmp.path().join(format!("bad{k}.tar.gz"));
            write_tar_gz(&archive, &[(name.to_string(), bytes)]).unwrap();
            let sha = sha256_file(&archive).unwrap();
            let err = prepare_cifar10(&archive, &sha, &tmp.path().join("d")).unwrap_err();
            assert!(
                matches!(err, DataError::Malformed { .. } | DataError::Decode { .. }),
                "{name}: {err}"
            );
        }
        // 7 training images cannot be cut into 5 equal batches.
        let members: Vec<(String, Vec<u8>)> = (0..7)
            .map(|i| (format!("train/cat/{i:04}.jpg"), jpeg.clone()))
            .chain(std::iter::once((
                "test/cat/0000.jpg".to_string(),
                jpeg.clone(),
            )))
            .collect();
        let archive = tmp.path().join("seven.tar.gz");
        write_tar_gz(&archive, &members).unwrap();
        let sha = sha256_file(&archive).unwrap();
        let err = prepare_cifar10(&archive, &sha, &tmp.path().join("d")).unwrap_err();
        assert!(err.to_string().contains("multiple of 5"), "{err}");
    }

    #[test]
    fn directory_source_validates_official_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("user").join(CIFAR10_DIR_NAME);
        crate::synthetic::write_cifar_binary_dir(&dir, 3, 1).unwrap();
        let err = setup_cifar10(&Source::Directory(dir.clone()), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("30730000"), "{err}");
        for name in BATCH_FILES.iter().chain(std::iter::once(&TEST_FILE)) {
            File::options()
                .write(true)
                .open(dir.join(name))
                .unwrap()
                .set_len(OFFICIAL_BATCH_BYTES)
                .unwrap();
        }
        // The parent folder is accepted too.
        let files = setup_cifar10(&Source::Directory(tmp.path().join("user")), tmp.path()).unwrap();
        assert_eq!(
            (files.n_train, files.n_test, files.dir),
            (50_000, 10_000, dir)
        );
    }

    fn review(split: Split, positive: bool, id: u32, text: &str) -> FixtureReview {
        FixtureReview {
            split,
            positive,
            id,
            rating: if positive { 8 } else { 2 },
            text: text.to_string(),
        }
    }

    #[test]
    fn imdb_prepare_unpacks_idempotently() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("imdb.tar.gz");
        let reviews = [
            review(Split::Train, true, 3, "Great movie"),
            review(Split::Train, false, 1, "Bad film"),
            review(Split::Test, true, 0, "great"),
            review(Split::Test, false, 7, "bad"),
        ];
        write_imdb_archive(&archive, &["the", "great", "bad"], &reviews).unwrap();
        let sha = sha256_file(&archive).unwrap();
        let dest = tmp.path().join("data");
        let files = prepare_imdb(&archive, &sha, &dest).unwrap();
        assert_eq!((files.n_train, files.n_test), (2, 2));
        assert_eq!(
            fs::read_to_string(dest.join("aclImdb/train/pos/3_8.txt")).unwrap(),
            "Great movie"
        );
        assert!(dest.join(IMDB_DIR_NAME).join(MARKER_NAME).is_file());
        let gone = tmp.path().join("gone.tar.gz");
        assert_eq!(prepare_imdb(&gone, &sha, &dest).unwrap(), files);
        assert_eq!(DataDir::new(&dest).imdb().unwrap(), files);
        // A lost review invalidates the marker: the next call unpacks again.
        fs::remove_file(dest.join("aclImdb/test/neg/7_2.txt")).unwrap();
        assert!(prepare_imdb(&gone, &sha, &dest).is_err());
        assert_eq!(prepare_imdb(&archive, &sha, &dest).unwrap(), files);
        let ds = Imdb::load(&dest, Split::Train, 3, 4).unwrap();
        // ids: the = 2, great = 3, bad = 4, unknown ("film", "movie") = 1.
        assert_eq!(ds.tokens, vec![4, 1, 0, 0, 3, 1, 0, 0]);
        assert_eq!(ds.labels, vec![0, 1]);
    }

    #[test]
    fn imdb_member_escaping_the_folder_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("evil.tar.gz");
        let file = File::create(&archive).unwrap();
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ));
        let mut header = tar::Header::new_old();
        let name = b"aclImdb/../evil.txt";
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_size(4);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, &b"evil"[..]).unwrap();
        builder.into_inner().unwrap().finish().unwrap();
        let sha = sha256_file(&archive).unwrap();
        let dest = tmp.path().join("data");
        let err = prepare_imdb(&archive, &sha, &dest).unwrap_err();
        assert!(matches!(err, DataError::Malformed { .. }), "{err}");
        assert!(!tmp.path().join("evil.txt").exists());
        assert!(!dest.join(IMDB_DIR_NAME).exists());
    }

    #[test]
    fn missing_messages_name_the_fix() {
        let root = Path::new("/nowhere/data");
        let dd = DataDir::new(root);
        assert_eq!(dd.cifar10_dir(), root.join("cifar-10-batches-bin"));
        assert_eq!(dd.imdb_dir(), root.join("aclImdb"));
        for err in [dd.cifar10().unwrap_err(), dd.imdb().unwrap_err()] {
            let text = err.to_string();
            assert!(
                text.contains("`cargo xtask data`") && text.contains("[data] dir"),
                "{text}"
            );
            assert!(text.contains("/nowhere/data"), "{text}");
        }
        assert!(DataDir::repo_default().root().ends_with("data"));
    }

    #[test]
    fn cargo_test_finds_this_checkout_at_run_time() {
        let root = run_time_workspace_root().expect("cargo test sets CARGO_MANIFEST_DIR");
        assert!(
            root.join("crates/lrmf-data/Cargo.toml").is_file(),
            "{}",
            root.display()
        );
        assert_eq!(workspace_root(), root);
        assert_eq!(DataDir::repo_default().root(), root.join("data"));
        assert_eq!(default_shared_dir(), root.join("../shared/data"));
    }
}
