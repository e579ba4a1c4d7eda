//! Prepares the real shared archives once and prints timings, file sizes and sanity statistics
//! (developer tool for measuring the set-up; `cargo xtask data` is the user-facing command).
//!
//! Usage: `cargo run --release -p lrmf-data --example prepare_real -- <archive dir> <data root>`

use std::path::PathBuf;
use std::time::Instant;

use lrmf_data::setup::{CIFAR10_ARCHIVE_NAME, IMDB_ARCHIVE_NAME};
use lrmf_data::{
    Cifar10, Imdb, Normalization, Source, Split, Tokenizer, setup_cifar10, setup_imdb,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        return Err("usage: prepare_real <archive dir> <data root>".into());
    }
    let (src, dest) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));

    let t = Instant::now();
    let files = setup_cifar10(
        &Source::SharedArchive(src.join(CIFAR10_ARCHIVE_NAME)),
        &dest,
    )?;
    println!("setup_cifar10: {:.2} s", t.elapsed().as_secs_f64());
    for p in files.train.iter().chain(std::iter::once(&files.test)) {
        println!("  {} {} bytes", p.display(), std::fs::metadata(p)?.len());
    }
    let t = Instant::now();
    let again = setup_cifar10(
        &Source::SharedArchive(src.join(CIFAR10_ARCHIVE_NAME)),
        &dest,
    )?;
    println!(
        "setup_cifar10 again: {:.4} s (same: {})",
        t.elapsed().as_secs_f64(),
        again == files
    );

    for split in [Split::Train, Split::Test] {
        let t = Instant::now();
        let ds = Cifar10::load_with(&dest, split, Normalization::UnitRange)?;
        println!(
            "load {split:?} (unit range): n = {}, {:.2} s, channel means = {:?}, class counts = {:?}",
            ds.n,
            t.elapsed().as_secs_f64(),
            ds.channel_means(),
            ds.class_counts()
        );
        let first: Vec<u8> = ds.labels[..20].to_vec();
        println!("  first 20 labels: {first:?}");
    }
    let ds = Cifar10::load(&dest, Split::Train)?;
    let mut sq = [0f64; 3];
    for img in ds.images.chunks_exact(3072) {
        for (c, plane) in img.chunks_exact(1024).enumerate() {
            sq[c] += plane.iter().map(|&v| (v as f64).powi(2)).sum::<f64>();
        }
    }
    let means = ds.channel_means();
    let stds: Vec<f64> = (0..3)
        .map(|c| (sq[c] / (ds.n * 1024) as f64 - means[c].powi(2)).sqrt())
        .collect();
    println!("load Train (standard): channel means = {means:?}, stds = {stds:?}");

    let t = Instant::now();
    let imdb = setup_imdb(&Source::SharedArchive(src.join(IMDB_ARCHIVE_NAME)), &dest)?;
    println!("setup_imdb: {:.2} s, {:?}", t.elapsed().as_secs_f64(), imdb);
    let t = Instant::now();
    setup_imdb(&Source::SharedArchive(src.join(IMDB_ARCHIVE_NAME)), &dest)?;
    println!("setup_imdb again: {:.4} s", t.elapsed().as_secs_f64());

    for split in [Split::Train, Split::Test] {
        let t = Instant::now();
        let ds = Imdb::load(&dest, split, 10_000, 256)?;
        let unk = ds.tokens.iter().filter(|&&id| id == 1).count();
        let used: usize = ds.lengths.iter().map(|&l| l as usize).sum();
        let pos = ds.labels.iter().filter(|&&l| l == 1).count();
        println!(
            "Imdb::load {split:?} K=10000 L=256: n = {}, pos = {pos}, {:.2} s, unk rate = {:.4}, mean length = {:.1}, truncated = {}",
            ds.n,
            t.elapsed().as_secs_f64(),
            unk as f64 / used as f64,
            used as f64 / ds.n as f64,
            ds.lengths
                .iter()
                .filter(|&&l| l as usize == ds.max_len)
                .count()
        );
    }
    let t = Instant::now();
    let bytes = Imdb::load_with(&dest, Split::Train, &Tokenizer::Bytes, 1024)?;
    println!(
        "Imdb bytes L=1024: n = {}, {:.2} s",
        bytes.n,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
