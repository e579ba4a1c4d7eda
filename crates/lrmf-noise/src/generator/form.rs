//! The exact streaming form of `C⁻¹Z` for each shape of `C` (the table in the module docs of
//! [`super`]), its taps for regeneration, and the state size a strategy needs.

use crate::NoiseError;
use lrmf_linalg::series::{self, Algorithm};
use lrmf_linalg::{BandedLower, LowerTriangular};
use std::borrow::Cow;

/// The exact streaming form of `C⁻¹Z`.
#[derive(Debug, Clone)]
pub(super) enum Form {
    /// `y_t = z_t`.
    Identity,
    /// `y_t = Σ_{k ≤ min(t, q−1)} h_k z_{t−k}`.
    Fir { h: Vec<f64> },
    /// `y_t = (z_t − Σ_{j=1}^{p−1} c_j y_{t−j}) / c_0`; `h` = the n coefficients of `1/c` for
    /// regeneration.
    Recursion { c: Vec<f64>, h: Vec<f64> },
    /// `y_t = (z_t − Σ_{j=1}^{p−1} C[t, t−j] y_{t−j}) / C[t, t]` for a general banded C; the
    /// regeneration taps are row t of `C⁻¹`, O(t·p) each.
    Banded { c: BandedLower },
    /// `y_t = z_t − Σ_i ω_i s_{i,t}`, `s_{i,t+1} = θ_i s_{i,t} + y_t` (the BLT solve, d buffers);
    /// `h` = the n coefficients of `C⁻¹` for regeneration.
    Blt {
        theta: Vec<f64>,
        omega: Vec<f64>,
        h: Vec<f64>,
    },
    /// `y_t = Σ_{j≤t} M[t, j] z_j`, `M = C⁻¹` packed by rows (row t starts at t(t+1)/2).
    Dense { m: Vec<f64> },
}

impl Form {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Form::Identity => "identity",
            Form::Fir { .. } => "fir",
            Form::Recursion { .. } => "recursion",
            Form::Banded { .. } => "banded",
            Form::Blt { .. } => "blt",
            Form::Dense { .. } => "dense",
        }
    }

    pub(super) fn band(&self, n: usize) -> usize {
        match self {
            Form::Identity => 1,
            Form::Fir { h } => h.len(),
            Form::Recursion { c, .. } => c.len(),
            Form::Banded { c } => c.band(),
            Form::Blt { theta, .. } => theta.len(),
            Form::Dense { .. } => n,
        }
    }

    /// Rows of history the streaming form keeps.
    pub(super) fn slots(&self, n: usize) -> usize {
        match self {
            Form::Identity => 0,
            Form::Fir { h } => h.len(),
            Form::Recursion { c, .. } => c.len() - 1,
            Form::Banded { c } => c.band() - 1,
            Form::Blt { theta, .. } => theta.len(),
            Form::Dense { .. } => n,
        }
    }

    pub(super) fn coeffs_hash(&self) -> u64 {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let mut eat = |v: f64| {
            for b in v.to_bits().to_le_bytes() {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        };
        match self {
            Form::Identity => eat(1.0),
            Form::Fir { h } => h.iter().for_each(|&v| eat(v)),
            Form::Recursion { c, .. } => c.iter().for_each(|&v| eat(v)),
            Form::Banded { c } => c.cols().iter().for_each(|&v| eat(v)),
            Form::Blt { theta, omega, .. } => theta.iter().chain(omega).for_each(|&v| eat(v)),
            Form::Dense { m } => m.iter().for_each(|&v| eat(v)),
        }
        hash
    }

    /// The coefficients of `z_{t−k}`, k = 0, 1, …, in the exact expansion of `y_t`.
    pub(super) fn taps(&self, t: usize) -> Cow<'_, [f64]> {
        match self {
            Form::Identity => Cow::Owned(vec![1.0]),
            Form::Fir { h } | Form::Recursion { h, .. } | Form::Blt { h, .. } => {
                Cow::Borrowed(&h[..h.len().min(t + 1)])
            }
            Form::Banded { c } => Cow::Owned(c.inverse_row(t).into_iter().rev().collect()),
            Form::Dense { m } => {
                let row = &m[t * (t + 1) / 2..(t + 1) * (t + 2) / 2];
                Cow::Owned(row.iter().rev().copied().collect())
            }
        }
    }

    /// For the recursions: the divisor `C[t, t]` and `−C[t, t−1−j]` for the live history
    /// j = 0..min(t, p − 1) (the coefficient of `y_{t−1−j}`).
    pub(super) fn recursion_row(&self, t: usize, slots: usize) -> (f64, Vec<f64>) {
        match self {
            Form::Recursion { c, .. } => (c[0], c[1..=t.min(slots)].iter().map(|&v| -v).collect()),
            Form::Banded { c } => (
                c.get(t, t),
                (1..=t.min(slots)).map(|j| -c.get(t, t - j)).collect(),
            ),
            _ => (1.0, Vec::new()),
        }
    }
}

fn finite_series(h: Vec<f64>, what: &str) -> Result<Vec<f64>, NoiseError> {
    if let Some(k) = h.iter().position(|v| !v.is_finite()) {
        return Err(NoiseError::invalid(
            "c",
            format!("{what}: coefficient {k} is {} (C⁻¹ overflows)", h[k]),
        ));
    }
    Ok(h)
}

/// Rows of d-vectors the streaming generator of `C` keeps (its memory is this × d × 4 bytes):
/// identity 0; banded `C` with p coefficients (BSR family) or p bands (bandmf): p − 1; banded
/// `C⁻¹` with p coefficients (BISR family, bandinv): p; BLT with d buffers: d; full Toeplitz or
/// dense: n. O(1), without building the
/// generator — what memory reports ask; [`CorrelatedNoise::state_bytes`](super::CorrelatedNoise::state_bytes) agrees (tested).
pub fn state_rows(c: &LowerTriangular) -> usize {
    let n = c.n();
    match c {
        LowerTriangular::Identity { .. } => 0,
        LowerTriangular::InverseToeplitz(t) => t.coeffs().len(),
        LowerTriangular::Toeplitz(t) if t.coeffs().len() < n => t.coeffs().len() - 1,
        LowerTriangular::Banded(b) => b.band() - 1,
        LowerTriangular::Blt(b) => b.buffers(),
        LowerTriangular::Toeplitz(_) | LowerTriangular::Dense(_) => n,
    }
}

pub(super) fn form_of(c: &LowerTriangular) -> Result<Form, NoiseError> {
    let n = c.n();
    Ok(match c {
        LowerTriangular::Identity { .. } => Form::Identity,
        LowerTriangular::InverseToeplitz(t) => {
            let h = t.coeffs().to_vec();
            if h[0] == 0.0 {
                return Err(NoiseError::invalid(
                    "c",
                    "InverseToeplitz: the band of C⁻¹ has d_0 = 0, so C does not exist",
                ));
            }
            Form::Fir { h }
        }
        LowerTriangular::Toeplitz(t) => {
            let c = t.coeffs().to_vec();
            if c[0] == 0.0 {
                return Err(NoiseError::invalid(
                    "c",
                    "Toeplitz: c_0 = 0, so C is singular",
                ));
            }
            let h = finite_series(series::inverse(&c, n, Algorithm::Auto)?, "inverse series")?;
            if c.len() < n {
                Form::Recursion { c, h }
            } else {
                Form::Fir { h }
            }
        }
        // The diagonal is non-zero by construction of `BandedLower`.
        LowerTriangular::Banded(b) => Form::Banded { c: b.clone() },
        LowerTriangular::Blt(b) => Form::Blt {
            theta: b.theta().to_vec(),
            omega: b.omega().to_vec(),
            h: finite_series(b.inverse_coeffs(n), "BLT inverse series")?,
        },
        LowerTriangular::Dense(d) => {
            let a = d.as_mat();
            if let Some(i) = (0..n).find(|&i| a[(i, i)] == 0.0) {
                return Err(NoiseError::invalid(
                    "c",
                    format!("Dense: diagonal entry {i} is 0, so C is singular"),
                ));
            }
            let inv = c.inverse_to_dense()?;
            let mut m = Vec::with_capacity(n * (n + 1) / 2);
            for t in 0..n {
                for j in 0..=t {
                    m.push(inv[(t, j)]);
                }
            }
            Form::Dense {
                m: finite_series(m, "Dense C⁻¹")?,
            }
        }
    })
}
