//! CIFAR-10 and IMDB loaders, tokenizer and data set-up (checksums, unpacking, JPEG to binary conversion).
//!
//! ```
//! use lrmf_data::synthetic;
//!
//! // A learnable CIFAR-shaped data set for tests and smoke runs (no files).
//! let d = synthetic::cifar_like(20, 7)?;
//! assert_eq!((d.n, d.images.len()), (20, 20 * 3 * 32 * 32));
//! assert!(d.labels.iter().all(|&l| l < 10));
//! # Ok::<(), lrmf_data::DataError>(())
//! ```
//!
//! This crate is the only place below the CLI that touches data files. It has four parts:
//!
//! - [`setup`]: turns the shared archives (`cifar10_jpg_q75.tar.gz`, `aclImdb_labeled.tar.gz`)
//!   into prepared folders under a data root (default `data/` of the repository), verifying
//!   sha256 checksums, idempotently and atomically; also locates prepared data ([`setup::DataDir`])
//!   and words the "run `cargo xtask data`" error.
//! - [`cifar10`]: the loader of the standard CIFAR-10 binary layout (the converted JPEG copy and
//!   the official lossless files read the same way).
//! - [`imdb`]: the review loader and tokenizers (shipped `imdb.vocab` top-K, or byte level); no
//!   statistic of the private split is used to build the tokenizer.
//! - [`synthetic`]: learnable generated data sets and tiny fixture writers for tests and smoke runs.
//!
//! Every fallible function returns [`Result`] with a [`DataError`] that names the file or the
//! argument at fault.

pub mod cifar10;
mod error;
pub mod imdb;
pub mod setup;
pub mod synthetic;

pub use cifar10::{Cifar10, Dataset, Normalization, Split};
pub use error::{DataError, Result};
pub use imdb::{Imdb, TextDataset, Tokenizer, Vocab};
pub use setup::{
    Cifar10Files, Corpus, DataDir, ImdbFiles, Source, missing_data_message, setup_cifar10,
    setup_imdb, sha256_file, verify_sha256,
};
