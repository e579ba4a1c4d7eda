//! The batch-level driver shared by the models: validates a batch, splits it into chunks (the
//! clipped sum Σ_i w_i·g_i is a sum over examples, so chunking is exact and bounds memory), runs
//! a model's forward/backward on each chunk — chunks spread over the threads — and reduces the
//! layer gradients in chunk order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use super::grad::{self, GradMode, ParamGrad};
use super::ops;
use super::{Batch, GradientStats};
use crate::{Result, TrainError};

/// Default number of examples per forward/backward chunk of the CNN. Chunks are the unit of work
/// spread over the threads, and small chunks keep a chunk's buffers (activations, per-example
/// gradients: ≈ 1.2 MB per CIFAR example) close to the caches and below the allocator's mmap
/// threshold. Measured on the 2-core build machine (`cargo xtask bench-train`, batch 256):
/// chunks of 8 ran the CNN step in 0.68 s against 0.70 s for 16 and 4, with half the resident
/// memory of 16.
pub const DEFAULT_CHUNK: usize = 8;

/// Default chunk of the dense models (text classifier, MLP): an example costs little there and
/// every chunk carries an O(d) reduction, so chunks are large (two chunks of a batch of 256
/// still keep two threads busy).
pub const DENSE_CHUNK: usize = 128;

/// Validates `chunk` (≥ 1).
pub(crate) fn check_chunk(chunk: usize) -> Result<()> {
    if chunk == 0 {
        return Err(TrainError::Config {
            key: "chunk".into(),
            message: "chunk size must be ≥ 1".into(),
        });
    }
    Ok(())
}

/// Checks that the buffers of `batch` agree with its label count and that pixels are finite.
pub(crate) fn check_batch(batch: &Batch) -> Result<()> {
    match batch {
        Batch::Images {
            pixels,
            shape: (c, h, w),
            labels,
        } => {
            if pixels.len() != labels.len() * c * h * w {
                return Err(TrainError::Shape(format!(
                    "image batch: {} pixel values for {} labels of shape {c}×{h}×{w}",
                    pixels.len(),
                    labels.len()
                )));
            }
            if let Some(i) = pixels.iter().position(|p| !p.is_finite()) {
                return Err(TrainError::Shape(format!(
                    "image batch: pixel value {i} is {}",
                    pixels[i]
                )));
            }
        }
        Batch::Tokens {
            tokens,
            len,
            labels,
        } => {
            if tokens.len() != labels.len() * len {
                return Err(TrainError::Shape(format!(
                    "token batch: {} tokens for {} labels of length {len}",
                    tokens.len(),
                    labels.len()
                )));
            }
        }
    }
    Ok(())
}

/// Examples `start..end` of a (checked) batch, copied.
pub(crate) fn slice_batch(batch: &Batch, start: usize, end: usize) -> Batch {
    match batch {
        Batch::Images {
            pixels,
            shape,
            labels,
        } => {
            let s = shape.0 * shape.1 * shape.2;
            Batch::Images {
                pixels: pixels[start * s..end * s].to_vec(),
                shape: *shape,
                labels: labels[start..end].to_vec(),
            }
        }
        Batch::Tokens {
            tokens,
            len,
            labels,
        } => Batch::Tokens {
            tokens: tokens[start * len..end * len].to_vec(),
            len: *len,
            labels: labels[start..end].to_vec(),
        },
    }
}

/// Examples per unit of work of [`clipped_sum`] (at least one chunk): each unit sums its chunks'
/// clipped gradients into one vector of d values, so small chunks do not each pay an O(d)
/// zero-fill and addition.
const BLOCK_EXAMPLES: usize = 32;

/// Σ_i clip(g_i) over `batch` in chunks of at most `chunk` examples; `step` runs one chunk and
/// returns (Σ loss, #correct, layer gradients in parameter order).
///
/// The batch is cut into blocks of whole chunks (≈ [`BLOCK_EXAMPLES`] examples); a block sums its
/// chunks in order, and the block sums are added in block order, so the result depends on the
/// batch and `chunk` only, never on the number of threads.
///
/// Complexity: the cost of `step` over all chunks, spread over the threads, plus O(d) per block
/// for the reduction.
pub(crate) fn clipped_sum<F>(
    batch: &Batch,
    chunk: usize,
    num_params: usize,
    clip: Option<f32>,
    step: F,
) -> Result<GradientStats>
where
    F: Fn(&Batch, GradMode) -> Result<(f64, usize, Vec<ParamGrad>)> + Sync,
{
    grad::check_clip(clip)?;
    check_batch(batch)?;
    check_chunk(chunk)?;
    super::native::malloc::keep_freed_memory();
    let mode = if clip.is_some() {
        GradMode::PerExample
    } else {
        GradMode::Sum
    };
    let mut stats = GradientStats {
        grad_sum: vec![0.0; num_params],
        loss_sum: 0.0,
        correct: 0,
        clipped: 0,
    };
    let block = chunk * (BLOCK_EXAMPLES / chunk).max(1);
    map_chunks(
        batch,
        block,
        |part| {
            let mut sum = GradientStats {
                grad_sum: vec![0.0; num_params],
                loss_sum: 0.0,
                correct: 0,
                clipped: 0,
            };
            for (start, end) in ranges(part.len(), chunk) {
                let (loss, correct, grads) = step(&sub_batch(part, start, end), mode)?;
                sum.clipped += grad::reduce(grads, end - start, clip, &mut sum.grad_sum)?;
                sum.loss_sum += loss;
                sum.correct += correct;
            }
            Ok(sum)
        },
        |sum| {
            for (total, x) in stats.grad_sum.iter_mut().zip(&sum.grad_sum) {
                *total += x;
            }
            stats.loss_sum += sum.loss_sum;
            stats.correct += sum.correct;
            stats.clipped += sum.clipped;
        },
    )?;
    Ok(stats)
}

/// The ranges start..end of the consecutive chunks of at most `chunk` (≥ 1) of `n` examples.
fn ranges(n: usize, chunk: usize) -> Vec<(usize, usize)> {
    (0..n)
        .step_by(chunk)
        .map(|start| (start, (start + chunk).min(n)))
        .collect()
}

/// Examples `start..end` of `batch` (the batch itself, cloned, when that is all of it).
fn sub_batch(batch: &Batch, start: usize, end: usize) -> Batch {
    if start == 0 && end == batch.len() {
        batch.clone()
    } else {
        slice_batch(batch, start, end)
    }
}

/// (Σ loss, #correct) over `batch` in chunks of at most `chunk` examples.
///
/// Complexity: the cost of `eval` over all chunks, spread over the threads.
pub(crate) fn evaluate<F>(batch: &Batch, chunk: usize, eval: F) -> Result<(f64, usize)>
where
    F: Fn(&Batch) -> Result<(f64, usize)> + Sync,
{
    check_batch(batch)?;
    let (mut loss, mut correct) = (0.0, 0);
    map_chunks(batch, chunk, eval, |(l, c)| {
        loss += l;
        correct += c;
    })?;
    Ok((loss, correct))
}

/// Runs `work` on every chunk of at most `chunk` consecutive examples and hands the results to
/// `merge` in chunk order.
///
/// With several chunks and threads, each thread takes the next chunk until none is left and runs
/// it with single-threaded layers (no barrier inside a chunk, no idle core while one thread
/// finishes a small layer); a single chunk runs on the calling thread with the layers' own
/// threading. A chunk's result does not depend on which of the two ran it. The first error in
/// chunk order is returned, and the threads stop taking chunks.
///
/// Complexity: the cost of `work` over all chunks, divided over the threads.
fn map_chunks<T: Send>(
    batch: &Batch,
    chunk: usize,
    work: impl Fn(&Batch) -> Result<T> + Sync,
    mut merge: impl FnMut(T),
) -> Result<()> {
    check_chunk(chunk)?;
    let chunks = ranges(batch.len(), chunk);
    let part = |i: usize| sub_batch(batch, chunks[i].0, chunks[i].1);
    let threads = ops::total_threads().min(chunks.len());
    if threads <= 1 {
        for i in 0..chunks.len() {
            merge(work(&part(i))?);
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Result<T>)>();
        for _ in 0..threads {
            let (tx, next, stop, work, part) = (tx.clone(), &next, &stop, &work, &part);
            let count = chunks.len();
            scope.spawn(move || {
                ops::serially(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let result = work(&part(i));
                        if result.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        if tx.send((i, result)).is_err() {
                            break;
                        }
                    }
                })
            });
        }
        drop(tx);
        // Results arrive in completion order; merge them in chunk order.
        let mut pending = BTreeMap::new();
        let mut want = 0;
        for (i, result) in rx {
            pending.insert(i, result);
            while let Some(result) = pending.remove(&want) {
                match result {
                    Ok(value) => merge(value),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
                want += 1;
            }
        }
        Ok(())
    })
}
