//! Streaming correlated noise `σ·C⁻¹Z` over a secure, seekable ChaCha20 stream, with
//! checkpointable state — the piece that turns any SGD loop into a matrix-factorization mechanism.
//!
//! ```
//! use lrmf_linalg::{LowerTriangular, ToeplitzLower};
//! use lrmf_noise::{CorrelatedNoise, Mode, NoiseGenerator, Seed};
//!
//! // BSR with band 2 (C = Toep(1, 0.5)): y_t = z_t − 0.5·y_{t−1}, for 3 coordinates.
//! let c = LowerTriangular::Toeplitz(ToeplitzLower::new(16, vec![1.0, 0.5])?);
//! let mut g = CorrelatedNoise::new(&c, 3, 1.0, Seed::Fixed(7), Mode::Auto)?;
//! let mut row = [0f32; 3];
//! g.fill_next(&mut row)?;
//! assert_eq!(g.step(), 1);
//! assert!(!g.is_private_release_safe()); // a fixed seed is reproducible, not private
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`gaussian`]: the base noise `Z` — key ([`Seed`], [`Key`]), the fixed key-stream layout of
//!   (step, coordinate), and the Box–Muller transform; [`base_noise`] exposes any slice of `Z`.
//! - [`CorrelatedNoise`] (trait [`NoiseGenerator`]): `σ·(C⁻¹Z)_t` step by step, streaming (ring
//!   buffers) or regenerating (O(d) memory), parallel over fixed coordinate chunks,
//!   bit-identical for any thread count, with [`NoiseState`] save/restore.
//! - [`Rounding`], [`snap_release`]: mitigations of floating-point attacks (Mironov 2012).
//! - [`write_npy`], [`generate_matrix`]: the whole noise matrix as a NumPy file (CLI).

mod error;
pub mod gaussian;
mod generator;
mod npy;
mod snap;

pub use error::NoiseError;
pub use gaussian::{Key, Seed, base_noise, base_noise_row};
pub use generator::{
    AUTO_MEMORY_BUDGET, CHUNK, CorrelatedNoise, Mode, NoiseGenerator, NoiseState, Rounding,
    STATE_VERSION, generate_matrix, state_rows,
};
pub use npy::{write_npy, write_npy_header, write_npy_header_typed, write_npy_rows};
pub use snap::snap_release;
