//! Sensitivity of a strategy matrix C under single participation and b-min-separation
//! (MATH.md §5), with the regime of each formula checked, never assumed.
//!
//! # Privacy contract
//! [`sensitivity`] returns a value that is **never below** the true sensitivity
//!
//! ```text
//! sens(C)² = max_π max_{‖g_j‖ ≤ 1} ‖Σ_{j∈π} C[:, j] g_jᵀ‖_F² = max_π max_{g} Σ_{i,j∈π} G_ij ⟨g_i, g_j⟩
//! ```
//!
//! over index sets π with |π| ≤ k and pairwise gaps ≥ b and over the example's gradients g_j
//! (one unit vector per participation, any dimension), G = CᵀC, up to the f64 rounding of C's
//! own coefficients:
//! - the sum of columns `‖Σ_{j∈π} C[:, j]‖` (all gradients aligned) is the worst case **only when
//!   G_ij ≥ 0 on the pairs i, j of a valid π** (then ⟨g_i, g_j⟩ ≤ 1 cannot beat alignment).
//!   With a negative G_ij, opposite gradients give more: C = Toep([1, −1]), n = 4, b = 1,
//!   k = 2 has column sums ≤ 2 but sens = √6 (g₁ = −g₀);
//! - the O(n·k) closed form (BSR, Theorem 2) is used **only** after checking its precondition:
//!   C lower-triangular Toeplitz with coefficients `c ≥ 0` and non-increasing (so G ≥ 0);
//! - brute force is [`SensitivityKind::Exact`] only where it is proved: over column sums when
//!   every b-separated pair has G_ij ≥ 0 (certified in floating point, see
//!   [`gram_non_negative_on_separated_pairs`]); over column sums with signs (g_j = ±g) when
//!   k ≤ 2, where max G₁₁ + G₂₂ + 2|G₁₂| is the exact value for any signs of G;
//! - otherwise the minimum of upper bounds that each hold for signed G too
//!   ([`SensitivityKind::UpperBound`]): the triangle inequality, the non-increasing majorant
//!   of |c|, and max_π Σ_{i,j∈π} |G_ij| by dynamic program;
//! - every value is multiplied by `1 + 2(n + k + 2)·u` (u = 2⁻⁵³), which covers the rounding of
//!   the sums of squares and the square root (Higham, Accuracy and Stability, §4.2), so the
//!   floating-point evaluation cannot round the guarantee down.

use lrmf_linalg::{LinearOperator, LowerTriangular, Mat};
use std::fmt;
use thiserror::Error;

/// Invalid participation parameters, naming the flag and the allowed range.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SensitivityError {
    /// A parameter is out of range.
    #[error("invalid --{flag}: {message}")]
    Invalid {
        /// The CLI flag.
        flag: &'static str,
        /// What is allowed.
        message: String,
    },
}

fn invalid(flag: &'static str, message: impl Into<String>) -> SensitivityError {
    SensitivityError::Invalid {
        flag,
        message: message.into(),
    }
}

/// How an example may participate: at most `k` times, any two participations at least
/// `min_sep` steps apart (b-min-separation). `k = 1` is single participation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Participation {
    min_sep: usize,
    k: usize,
}

impl Participation {
    /// Single participation (every example contributes to at most one step).
    pub fn single() -> Self {
        Self { min_sep: 1, k: 1 }
    }

    /// b-min-separation with at most k participations, validated against the number of steps n:
    /// `k ≥ 1`, `b ≥ 1` when `k > 1`, and `k ≤ ⌈n/b⌉`.
    pub fn new(n: usize, min_sep: Option<usize>, k: usize) -> Result<Self, SensitivityError> {
        if k == 0 {
            return Err(invalid("participations", "must be ≥ 1"));
        }
        let b = match (min_sep, k) {
            (Some(0), _) => return Err(invalid("min-sep", "must be ≥ 1")),
            (Some(b), _) => b,
            (None, 1) => 1,
            (None, _) => {
                return Err(invalid(
                    "min-sep",
                    format!(
                        "--participations {k} > 1 needs --min-sep b (the minimum gap between participations)"
                    ),
                ));
            }
        };
        let max_k = n.div_ceil(b);
        if k > max_k {
            return Err(invalid(
                "participations",
                format!("{k} exceeds ⌈n/min-sep⌉ = ⌈{n}/{b}⌉ = {max_k}"),
            ));
        }
        Ok(Self { min_sep: b, k })
    }

    /// The minimum separation b.
    pub fn min_sep(&self) -> usize {
        self.min_sep
    }

    /// The maximum number of participations k.
    pub fn k(&self) -> usize {
        self.k
    }
}

/// Which formula produced a sensitivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensitivityKind {
    /// The BSR closed form, inside its checked regime (equal to the true value).
    ClosedForm,
    /// Exactly the maximum (identity, single participation, or brute force).
    Exact,
    /// A value provably ≥ the true sensitivity.
    UpperBound,
}

impl SensitivityKind {
    /// `"closed-form"`, `"exact"` or `"upper-bound"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ClosedForm => "closed-form",
            Self::Exact => "exact",
            Self::UpperBound => "upper-bound",
        }
    }
}

impl fmt::Display for SensitivityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sensitivity value, what kind of value it is, and the formula that gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sensitivity {
    /// The value (never below the true sensitivity; see the module's privacy contract).
    pub value: f64,
    /// Closed form, exact or upper bound.
    pub kind: SensitivityKind,
    /// The formula used, in words.
    pub how: &'static str,
}

const U: f64 = f64::EPSILON / 2.0;

fn round_up(value: f64, n: usize, k: usize) -> f64 {
    value * (1.0 + 2.0 * (n + k + 2) as f64 * U)
}

/// Brute force is used while (number of valid sets) × n stays below this.
const BRUTE_FORCE_WORK: f64 = 2e7;
/// The Gram dynamic program is used while n²·k stays below this.
const GRAM_DP_WORK: f64 = 1e9;

/// The sensitivity of C under `p`.
///
/// # Privacy contract
/// Never below the true sensitivity `max_π max_{‖g_j‖ ≤ 1} ‖Σ_{j∈π} C[:, j] g_jᵀ‖_F` (the
/// module's contract): each row of the table below is exact or an upper bound, as its kind
/// says, and every value is rounded up.
///
/// | C | k = 1 | k > 1 |
/// |---|---|---|
/// | identity | 1, exact | √k, exact |
/// | Toeplitz c ≥ 0, non-increasing | ‖c‖, exact | closed form O(n·k) |
/// | other Toeplitz | ‖c‖, exact | small: brute force (exact, see below); else min(majorant O(n·k), Gram DP O(n²k)) |
/// | banded, p bands | max column norm O(n·p), exact | p ≤ b: disjoint columns O(n·(p + k)), exact (any signs); else as dense |
/// | dense | max column norm O(n²), exact | small: brute force (exact, see below); else min(triangle O(n²), Gram DP O(n³ + n²k)) |
///
/// Brute force (while the number of valid sets × n is small) is exact only where proved:
/// column sums when CᵀC ≥ 0 on every b-separated pair, column sums with signs when k ≤ 2;
/// a signed CᵀC with k ≥ 3 gets the upper bounds.
pub fn sensitivity(c: &LowerTriangular, p: Participation) -> Result<Sensitivity, SensitivityError> {
    let n = c.n();
    // Re-validate against this n (the participation may have been built for another size).
    let p = Participation::new(n, Some(p.min_sep), p.k)?;
    let (b, k) = (p.min_sep, p.k);
    if let LowerTriangular::Identity { .. } = c {
        return Ok(Sensitivity {
            value: round_up((k as f64).sqrt(), n, k),
            kind: SensitivityKind::Exact,
            how: "identity: √k",
        });
    }
    if let LowerTriangular::Banded(m) = c
        && (k == 1 || m.band() <= b)
    {
        return Ok(Sensitivity {
            value: round_up(banded_disjoint(m, b, k), n, k),
            kind: SensitivityKind::Exact,
            how: "banded C with p ≤ b: disjoint columns, best b-separated sum of squared column norms",
        });
    }
    match c.toeplitz_coeffs(n) {
        Some(coeffs) => Ok(toeplitz_sensitivity(c, &coeffs, b, k)),
        None => Ok(dense_sensitivity(c, b, k)),
    }
}

/// [`sensitivity`] of a Toeplitz C (or the inverse of one) with first column `coeffs`: its
/// norm for k = 1; for k > 1 the BSR closed form where its precondition holds, brute force when
/// small, else the smaller of the majorant bound and the Gram dynamic program.
fn toeplitz_sensitivity(c: &LowerTriangular, coeffs: &[f64], b: usize, k: usize) -> Sensitivity {
    let n = c.n();
    let norm = coeffs.iter().map(|v| v * v).sum::<f64>().sqrt();
    if k == 1 {
        return Sensitivity {
            value: round_up(norm, n, k),
            kind: SensitivityKind::Exact,
            how: "single participation: norm of the first column",
        };
    }
    if let Some(v) = closed_form_toeplitz(coeffs, b, k) {
        return Sensitivity {
            value: round_up(v, n, k),
            kind: SensitivityKind::ClosedForm,
            how: "BSR Theorem 2: ‖Σ_{i<k} shift_{ib}(c)‖ (c ≥ 0, non-increasing checked)",
        };
    }
    if let Some(s) = brute_force_if_small(c, b, k) {
        return s;
    }
    let bound = (
        majorant_bound(coeffs, b, k),
        "closed form on the non-increasing majorant of |c|",
    );
    least_upper_bound(bound, || toeplitz_gram(coeffs), n, b, k)
}

/// [`sensitivity`] of a dense C: the largest column norm for k = 1; for k > 1 brute force when
/// small, else the smaller of the triangle inequality and the Gram dynamic program.
fn dense_sensitivity(c: &LowerTriangular, b: usize, k: usize) -> Sensitivity {
    let n = c.n();
    let dense = c.to_dense();
    let col_norms: Vec<f64> = (0..n)
        .map(|j| {
            (j..n)
                .map(|i| dense[(i, j)] * dense[(i, j)])
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let max_col = col_norms.iter().fold(0.0f64, |m, v| m.max(*v));
    if k == 1 {
        return Sensitivity {
            value: round_up(max_col, n, k),
            kind: SensitivityKind::Exact,
            how: "single participation: largest column norm",
        };
    }
    if let Some(s) = brute_force_if_small(c, b, k) {
        return s;
    }
    // Triangle inequality: ‖Σ_{j∈π} C e_j‖ ≤ sum of the k largest column norms.
    let mut sorted = col_norms;
    sorted.sort_by(|a, b| b.total_cmp(a));
    let bound = (
        sorted.iter().take(k).sum::<f64>(),
        "triangle inequality over the k largest columns",
    );
    least_upper_bound(bound, || dense.transpose() * &dense, n, b, k)
}

/// The smaller of `bound` and, while n²·k ≤ [`GRAM_DP_WORK`], the Gram dynamic program over
/// `gram()` = CᵀC; rounded up and labelled an upper bound.
fn least_upper_bound(
    bound: (f64, &'static str),
    gram: impl FnOnce() -> Mat<f64>,
    n: usize,
    b: usize,
    k: usize,
) -> Sensitivity {
    let mut best = bound;
    if (n as f64).powi(2) * k as f64 <= GRAM_DP_WORK {
        let v = gram_dp_bound(&gram(), b, k);
        if v < best.0 {
            best = (v, "dynamic program over |CᵀC|");
        }
    }
    Sensitivity {
        value: round_up(best.0, n, k),
        kind: SensitivityKind::UpperBound,
        how: best.1,
    }
}

/// `‖Σ_{i<k} shift_{i·b}(c)‖₂`, the BSR closed form (Theorem 2), or `None` when its precondition
/// (`c ≥ 0` and non-increasing) fails. O(n·k).
///
/// # Privacy contract
/// Equal to the true b-min-separation sensitivity of `Toep(c)` inside the regime; outside it the
/// closed form can under-state the sensitivity, so it is not evaluated.
pub fn closed_form_toeplitz(c: &[f64], b: usize, k: usize) -> Option<f64> {
    if c.iter().any(|v| *v < 0.0) || c.windows(2).any(|w| w[1] > w[0]) {
        return None;
    }
    Some(shifted_sum_norm(c, b, k))
}

/// The exact sensitivity of a banded C with p ≤ b bands (or k = 1):
/// `√(max_π Σ_{j∈π} ‖C[:, j]‖²)`, the best b-separated sum of squared column norms. O(n·(p + k)).
///
/// # Privacy contract
/// Equal to the true value: columns j < j' with j' − j ≥ b ≥ p occupy the disjoint row ranges
/// `[j, j + p)` and `[j', j' + p)`, so `‖Σ_{j∈π} C[:, j]‖² = Σ_{j∈π} ‖C[:, j]‖²` for every valid π,
/// whatever the signs of the entries; the maximum over π is an exact dynamic program. Callers
/// check p ≤ b (or k = 1) first.
pub fn banded_disjoint(c: &lrmf_linalg::BandedLower, b: usize, k: usize) -> f64 {
    let w: Vec<f64> = (0..c.n())
        .map(|j| c.column(j).iter().map(|v| v * v).sum())
        .collect();
    separated_best(&w, b, k)[k].max(0.0).sqrt()
}

fn shifted_sum_norm(c: &[f64], b: usize, k: usize) -> f64 {
    let n = c.len();
    let mut v = vec![0.0; n];
    for i in 0..k {
        let s = i * b;
        if s >= n {
            break;
        }
        for (o, ci) in v[s..].iter_mut().zip(c) {
            *o += ci;
        }
    }
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// An upper bound for any Toeplitz C: the closed form applied to the least non-increasing
/// majorant `ĉ_k = max_{i≥k} |c_i|`. Valid because `|Σ_j c_{t−j}| ≤ Σ_j ĉ_{t−j}` entrywise and
/// `Toep(ĉ)` is inside the closed form's regime. O(n·k).
///
/// # Privacy contract
/// An upper bound for any signs and any gradients of norm ≤ 1: row t of `Σ_j C[:, j] g_jᵀ` has
/// norm ≤ `Σ_j |c_{t−j}| ≤ Σ_j ĉ_{t−j}` (not rounded up; [`sensitivity`] does that).
pub fn majorant_bound(c: &[f64], b: usize, k: usize) -> f64 {
    let mut hat = vec![0.0; c.len()];
    let mut run = 0.0f64;
    for i in (0..c.len()).rev() {
        run = run.max(c[i].abs());
        hat[i] = run;
    }
    shifted_sum_norm(&hat, b, k)
}

/// `X = CᵀC` for `C = Toep(c)` (n×n) by the recurrence `X[i, j] = X[i+1, j+1] + c_{n−1−i} c_{n−1−j}`. O(n²).
fn toeplitz_gram(c: &[f64]) -> Mat<f64> {
    let n = c.len();
    let mut x = Mat::<f64>::zeros(n, n);
    for d in 0..n {
        // Diagonal j − i = d, walked from the bottom-right corner up.
        let mut acc = 0.0;
        for i in (0..n - d).rev() {
            let j = i + d;
            acc += c[n - 1 - i] * c[n - 1 - j];
            x[(i, j)] = acc;
            x[(j, i)] = acc;
        }
    }
    x
}

/// Best sum of at most `m` weights chosen from `w` with pairwise index gaps ≥ b: returns
/// `best[m']` for every m' ≤ m (non-decreasing in m'). O(len·m).
fn separated_best(w: &[f64], b: usize, m: usize) -> Vec<f64> {
    let len = w.len();
    if len == 0 || m == 0 {
        return vec![0.0; m + 1];
    }
    // f[pos][c]: best with c picks among w[0..=pos].
    let mut f = vec![vec![0.0f64; m + 1]; len];
    for pos in 0..len {
        for cnt in 1..=m {
            let skip = if pos > 0 { f[pos - 1][cnt] } else { 0.0 };
            let take = w[pos] + if pos >= b { f[pos - b][cnt - 1] } else { 0.0 };
            f[pos][cnt] = skip.max(take).max(f[pos][cnt - 1]);
        }
    }
    f[len - 1].clone()
}

/// An upper bound from `X = CᵀC`: `sens² = max_π Σ_{i,j∈π} X_ij ≤ max_π Σ_{i∈π} u_i`, where
/// `u_i = |X_ii| + (best sum of |X_ij| over ≤ k−1 further indices j forming a valid set with i)`.
/// Both maxima are exact dynamic programs over b-separated sets. O(n²·k).
///
/// # Privacy contract
/// An upper bound for any signs of `X` and any gradients of norm ≤ 1:
/// `Σ_{i,j∈π} X_ij ⟨g_i, g_j⟩ ≤ Σ_{i,j∈π} |X_ij|` (not rounded up; [`sensitivity`] does that).
pub fn gram_dp_bound(x: &Mat<f64>, b: usize, k: usize) -> f64 {
    let n = x.nrows();
    let mut u = vec![0.0; n];
    for i in 0..n {
        let row: Vec<f64> = (0..n).map(|j| x[(i, j)].abs()).collect();
        let left = if i >= b {
            separated_best(&row[..=i - b], b, k - 1)
        } else {
            vec![0.0; k]
        };
        let right = if i + b < n {
            separated_best_rev(&row[i + b..], b, k - 1)
        } else {
            vec![0.0; k]
        };
        let mut best = 0.0f64;
        for l in 0..k {
            best = best.max(left[l] + right[k - 1 - l]);
        }
        u[i] = row[i] + best;
    }
    let total = separated_best(&u, b, k);
    total[k].max(0.0).sqrt()
}

fn separated_best_rev(w: &[f64], b: usize, m: usize) -> Vec<f64> {
    let rev: Vec<f64> = w.iter().rev().copied().collect();
    separated_best(&rev, b, m)
}

/// Number of non-empty index sets of size ≤ k in 0..n with gaps ≥ b. O(n·k), saturating.
fn count_sets(n: usize, b: usize, k: usize) -> f64 {
    // g[pos][c]: sets with c elements whose largest element is pos.
    let mut g = vec![vec![0.0f64; k + 1]; n];
    let mut total = 0.0;
    // prefix[pos][c] = Σ_{q ≤ pos} g[q][c]
    let mut prefix = vec![vec![0.0f64; k + 1]; n];
    for pos in 0..n {
        g[pos][1] = 1.0;
        for c in 2..=k {
            g[pos][c] = if pos >= b {
                prefix[pos - b][c - 1]
            } else {
                0.0
            };
        }
        for c in 1..=k {
            prefix[pos][c] = g[pos][c] + if pos > 0 { prefix[pos - 1][c] } else { 0.0 };
            total += g[pos][c];
        }
    }
    total
}

/// Brute force where it is affordable ((number of valid sets) × n ≤ [`BRUTE_FORCE_WORK`]) and
/// exact: column sums when G = CᵀC is certified ≥ 0 on every b-separated pair, signed column
/// sums when k ≤ 2; `None` otherwise (signed G with k ≥ 3, or too many sets).
fn brute_force_if_small(c: &LowerTriangular, b: usize, k: usize) -> Option<Sensitivity> {
    let n = c.n();
    // There are at least n sets (the singletons): skip the count when n² alone is too much.
    if (n as f64) * (n as f64) > BRUTE_FORCE_WORK
        || count_sets(n, b, k) * n as f64 > BRUTE_FORCE_WORK
    {
        return None;
    }
    let dense = c.to_dense();
    let (value, how) = if gram_non_negative_on_separated_pairs(&dense, b) {
        (
            brute_force(&dense, b, k),
            "brute force over all valid participation sets (CᵀC ≥ 0 on them: aligned gradients are the worst case)",
        )
    } else if k <= 2 {
        (
            brute_force_signed(&dense, b, k),
            "brute force over all valid participation sets and gradient signs (k ≤ 2: G₁₁ + G₂₂ + 2|G₁₂| is exact)",
        )
    } else {
        return None;
    };
    Some(Sensitivity {
        value: round_up(value, n, k),
        kind: SensitivityKind::Exact,
        how,
    })
}

/// Whether `G = CᵀC` is certified ≥ 0 on every pair of columns i < j with j − i ≥ b (the pairs
/// that can share a participation set). A computed dot product ŝ = fl(Σ_t c_ti c_tj) is within
/// γ·Σ_t |c_ti c_tj| of the exact one (Higham §3.1, γ = (n+2)u with room to spare at 2(n+2)u),
/// so ŝ ≥ γ·Σ|c_ti c_tj| proves the exact G_ij ≥ 0; sign-matched columns (every product ≥ 0)
/// always pass. Work: O(n) per pair, O(n³) in all (only called on brute-force-sized problems).
pub fn gram_non_negative_on_separated_pairs(c: &Mat<f64>, b: usize) -> bool {
    let n = c.ncols();
    let gamma = 2.0 * (n + 2) as f64 * U;
    for i in 0..n {
        for j in (i + b)..n {
            let (mut s, mut sa) = (0.0f64, 0.0f64);
            for t in j..c.nrows() {
                let p = c[(t, i)] * c[(t, j)];
                s += p;
                sa += p.abs();
            }
            if s < gamma * sa {
                return false;
            }
        }
    }
    true
}

/// `max_π ‖Σ_{j∈π} C[:, j]‖₂` by enumerating every valid π (|π| ≤ k, gaps ≥ b): the sensitivity
/// when all of an example's gradients are **aligned**. It equals the true sensitivity only when
/// `CᵀC ≥ 0` on the pairs of every valid π (see the module doc; MATH.md §5); for signed CᵀC it
/// can under-state it (use [`brute_force_signed`] as a lower bound there). Exponential in n:
/// a test oracle, and used for tiny problems.
pub fn brute_force(c: &Mat<f64>, b: usize, k: usize) -> f64 {
    enumerate_sets(c, b, k, false)
}

/// `max_π max_{s ∈ {±1}^π} ‖Σ_{j∈π} s_j C[:, j]‖₂`: the gradients of one example restricted to
/// ±g for one unit vector g. Always ≤ the true sensitivity; **equal** to it when k ≤ 2 (for two
/// participations max G₁₁ + G₂₂ + 2G₁₂⟨g₁, g₂⟩ is attained at ⟨g₁, g₂⟩ = sign G₁₂) or when
/// CᵀC ≥ 0 on the valid pairs. Exponential in n (2^{k−1} times [`brute_force`]).
pub fn brute_force_signed(c: &Mat<f64>, b: usize, k: usize) -> f64 {
    enumerate_sets(c, b, k, true)
}

fn enumerate_sets(c: &Mat<f64>, b: usize, k: usize, signs: bool) -> f64 {
    let n = c.nrows();
    let cols: Vec<Vec<f64>> = (0..n)
        .map(|j| (0..n).map(|i| c[(i, j)]).collect())
        .collect();
    let mut best = 0.0f64;
    let mut acc = vec![0.0; n];
    struct Walk<'a> {
        cols: &'a [Vec<f64>],
        b: usize,
        k: usize,
        signs: bool,
    }
    fn go(w: &Walk, start: usize, left: usize, acc: &mut [f64], best: &mut f64) {
        for j in start..w.cols.len() {
            // The first column's sign is fixed (a global sign flip changes nothing).
            let flips: &[f64] = if w.signs && left < w.k {
                &[1.0, -1.0]
            } else {
                &[1.0]
            };
            for &sgn in flips {
                for (a, v) in acc.iter_mut().zip(&w.cols[j]) {
                    *a += sgn * v;
                }
                let norm2: f64 = acc.iter().map(|v| v * v).sum();
                *best = best.max(norm2);
                if left > 1 {
                    go(w, j + w.b, left - 1, acc, best);
                }
                for (a, v) in acc.iter_mut().zip(&w.cols[j]) {
                    *a -= sgn * v;
                }
            }
        }
    }
    let walk = Walk {
        cols: &cols,
        b,
        k,
        signs,
    };
    go(&walk, 0, k, &mut acc, &mut best);
    best.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrmf_linalg::{BandedLower, DenseLower, ToeplitzLower};
    use proptest::prelude::*;

    /// The reported sensitivity against brute force over sets and gradient signs (a lower bound
    /// on the truth, exact for k ≤ 2 and for CᵀC ≥ 0) and coordinate ascent over unit-vector
    /// gradients: never below either; equal to the signed brute force when claimed exact.
    fn check(c: &LowerTriangular, b: usize, k: usize) -> Sensitivity {
        let p = Participation::new(c.n(), Some(b), k).unwrap();
        let s = sensitivity(c, p).unwrap();
        let dense = c.to_dense();
        let exact = brute_force_signed(&dense, b, k);
        let ascent = unit_gradient_ascent(&dense, b, k);
        assert!(s.value >= exact, "{s:?} under-states the signed {exact}");
        assert!(
            s.value >= ascent * (1.0 - 1e-12),
            "{s:?} under-states the unit-gradient {ascent}"
        );
        if s.kind != SensitivityKind::UpperBound {
            assert!(
                (s.value - exact).abs() <= 1e-12 * exact.max(1.0),
                "{s:?} claims exact, the truth is {exact}"
            );
        }
        s
    }

    /// Lower bound on sens² = max_π max_{‖g_j‖=1} Σ_{i,j∈π} G_ij ⟨g_i, g_j⟩: for every valid π,
    /// coordinate ascent (g_i ← unit(Σ_{j≠i} G_ij g_j), which never lowers the objective) from
    /// three pseudo-random starts in R^{|π|}. Returns the square root.
    fn unit_gradient_ascent(c: &Mat<f64>, b: usize, k: usize) -> f64 {
        let n = c.nrows();
        let g = c.transpose() * c;
        let mut sets: Vec<Vec<usize>> = Vec::new();
        fn grow(
            cur: &mut Vec<usize>,
            start: usize,
            n: usize,
            b: usize,
            k: usize,
            out: &mut Vec<Vec<usize>>,
        ) {
            for j in start..n {
                cur.push(j);
                out.push(cur.clone());
                if cur.len() < k {
                    grow(cur, j + b, n, b, k, out);
                }
                cur.pop();
            }
        }
        grow(&mut Vec::new(), 0, n, b, k, &mut sets);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let mut best = 0.0f64;
        for pi in &sets {
            let d = pi.len();
            for _ in 0..3 {
                let mut v: Vec<Vec<f64>> = (0..d)
                    .map(|_| (0..d).map(|_| uniform()).collect())
                    .collect();
                for _ in 0..60 {
                    for i in 0..d {
                        let mut w = vec![0.0; d];
                        for j in (0..d).filter(|&j| j != i) {
                            for (wi, vj) in w.iter_mut().zip(&v[j]) {
                                *wi += g[(pi[i], pi[j])] * vj;
                            }
                        }
                        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
                        if norm > 0.0 {
                            v[i] = w.iter().map(|x| x / norm).collect();
                        }
                    }
                }
                let mut obj = 0.0;
                for i in 0..d {
                    for j in 0..d {
                        let dot: f64 = if i == j {
                            1.0
                        } else {
                            v[i].iter().zip(&v[j]).map(|(a, b)| a * b).sum()
                        };
                        obj += g[(pi[i], pi[j])] * dot;
                    }
                }
                best = best.max(obj);
            }
        }
        best.max(0.0).sqrt()
    }

    fn toeplitz(c: Vec<f64>) -> LowerTriangular {
        LowerTriangular::Toeplitz(ToeplitzLower::new(c.len(), c).unwrap())
    }

    #[test]
    fn identity_and_known_values() {
        let s = check(&LowerTriangular::Identity { n: 10 }, 3, 4);
        assert!((s.value - 2.0).abs() < 1e-14);
        // Prefix sum, single participation: ‖ones(n)‖ = √n.
        let s = check(&toeplitz(vec![1.0; 9]), 1, 1);
        assert!((s.value - 3.0).abs() < 1e-14);
        assert_eq!(s.kind, SensitivityKind::Exact);
        let s = sensitivity(
            &toeplitz(lrmf_linalg::series::r(200)),
            Participation::new(200, Some(20), 10).unwrap(),
        )
        .unwrap();
        assert_eq!(s.kind, SensitivityKind::ClosedForm);
    }

    #[test]
    fn increasing_coefficients_are_bounded_not_closed_form() {
        // c increasing: the closed form's precondition fails.
        let c: Vec<f64> = (0..40).map(|k| 1.0 + 0.9f64.powi(k) * -0.5).collect();
        let big = toeplitz(c);
        let s = sensitivity(&big, Participation::new(40, Some(5), 8).unwrap()).unwrap();
        assert_ne!(s.kind, SensitivityKind::ClosedForm);
        // Too many participation sets for brute force: a provable bound, labelled as such.
        let long: Vec<f64> = (0..3000).map(|k| 1.0 - 0.5 * 0.999f64.powi(k)).collect();
        let s = sensitivity(
            &toeplitz(long.clone()),
            Participation::new(3000, Some(100), 30).unwrap(),
        )
        .unwrap();
        assert_eq!(s.kind, SensitivityKind::UpperBound);
        // {0, b, 2b, …} is one valid set, so its norm is a lower bound on the true value.
        assert!(s.value >= shifted_sum_norm(&long, 100, 30));
        let small: Vec<f64> = (0..12).map(|k| 1.0 - 0.5 * 0.9f64.powi(k)).collect();
        check(&toeplitz(small), 3, 4);
    }

    #[test]
    fn signed_gram_is_not_summed_as_aligned() {
        // MATH.md §5: C = Toep([1, −1]), n = 4, b = 1, k = 2: column sums give 2, opposite
        // gradients give √6 (columns 0 and 1: G₀₀ + G₁₁ + 2|G₀₁| = 2 + 2 + 2).
        let c = toeplitz(vec![1.0, -1.0, 0.0, 0.0]);
        assert!((brute_force(&c.to_dense(), 1, 2) - 2.0).abs() < 1e-15);
        let s = check(&c, 1, 2);
        assert!((s.value - 6f64.sqrt()).abs() < 1e-14, "{s:?}");
        assert_eq!(s.kind, SensitivityKind::Exact);
        let d = LowerTriangular::Dense(DenseLower::new(c.to_dense()).unwrap());
        assert!((check(&d, 1, 2).value - 6f64.sqrt()).abs() < 1e-14);
        // k = 3 with a signed Gram: no exact claim, a bound ≥ the signed brute force.
        let s = check(&toeplitz(vec![1.0, -1.0, 0.0, 0.0, 0.0, 0.0]), 1, 3);
        assert_eq!(s.kind, SensitivityKind::UpperBound);
        // A non-negative Gram (sign-matched columns) keeps the exact brute force.
        let s = check(&toeplitz(vec![1.0, 0.5, 0.7, 0.2, 0.1, 0.9]), 2, 3);
        assert_eq!(s.kind, SensitivityKind::Exact);
        assert!(gram_non_negative_on_separated_pairs(
            &LowerTriangular::Identity { n: 5 }.to_dense(),
            1
        ));
    }

    #[test]
    fn bad_participation_is_an_error() {
        assert!(Participation::new(10, Some(0), 2).is_err());
        assert!(Participation::new(10, None, 2).is_err());
        assert!(Participation::new(10, Some(3), 5).is_err());
        assert!(Participation::new(10, Some(3), 0).is_err());
        assert!(Participation::new(10, Some(3), 4).is_ok());
    }

    #[test]
    fn gram_dp_bound_dominates_on_dense() {
        let m = Mat::from_fn(9, 9, |i, j| {
            if j <= i {
                ((i * 7 + j * 3) % 5) as f64 - 2.0
            } else {
                0.0
            }
        });
        let mut m = m;
        for i in 0..9 {
            m[(i, i)] = 1.0 + i as f64;
        }
        let exact = brute_force(&m, 2, 3);
        let c = LowerTriangular::Dense(DenseLower::new(m.clone()).unwrap());
        assert!(gram_dp_bound(&(m.transpose() * &m), 2, 3) >= exact);
        check(&c, 2, 3);
    }

    proptest! {
        #[test]
        fn banded_is_exact_when_the_band_fits_the_separation(raw in prop::collection::vec(-1.0f64..1.0, 1..=60), p in 1usize..5, b in 1usize..6, k in 1usize..5) {
            let n = (raw.len() / p).clamp(1, 14);
            let p = p.min(n);
            let cols: Vec<f64> = (0..n * p).map(|q| if q / p + q % p >= n { 0.0 } else if q % p == 0 { 0.5 + raw[q % raw.len()].abs() } else { raw[q % raw.len()] }).collect();
            let c = LowerTriangular::Banded(BandedLower::new(n, p, cols).unwrap());
            let k = k.min(n.div_ceil(b));
            let s = check(&c, b, k);
            if k == 1 || p <= b {
                prop_assert_eq!(s.kind, SensitivityKind::Exact);
            }
        }

        #[test]
        fn closed_form_equals_brute_force(raw in prop::collection::vec(0.0f64..1.0, 1..=12), b in 1usize..5, k in 1usize..6) {
            let n = raw.len();
            let k = k.min(n.div_ceil(b));
            let mut c = raw;
            c.sort_by(|a, b| b.total_cmp(a));
            let exact = brute_force(&toeplitz(c.clone()).to_dense(), b, k);
            let closed = closed_form_toeplitz(&c, b, k).unwrap();
            prop_assert!((closed - exact).abs() <= 1e-12 * exact.max(1.0));
            check(&toeplitz(c), b, k);
        }

        #[test]
        fn bounds_dominate_brute_force(raw in prop::collection::vec(-1.0f64..1.0, 1..=12), b in 1usize..5, k in 1usize..6) {
            let n = raw.len();
            let k = k.min(n.div_ceil(b));
            let exact = brute_force(&toeplitz(raw.clone()).to_dense(), b, k);
            prop_assert!(majorant_bound(&raw, b, k) >= exact * (1.0 - 1e-12));
            prop_assert!(gram_dp_bound(&toeplitz_gram(&raw), b, k) >= exact * (1.0 - 1e-12));
            let dense = Mat::from_fn(n, n, |i, j| if j <= i { raw[(i * 5 + j) % n] } else { 0.0 });
            let exact = brute_force(&dense, b, k);
            prop_assert!(gram_dp_bound(&(dense.transpose() * &dense), b, k) >= exact * (1.0 - 1e-12));
        }

        #[test]
        fn signed_c_is_never_under_stated(raw in prop::collection::vec(-1.0f64..1.0, 36), n in 2usize..=8, b in 1usize..4, k in 1usize..5) {
            // Random signed dense and Toeplitz C, n ≤ 8: reported ≥ brute force over sets, signs
            // and unit-vector gradients (the `check` oracle), exact only where proved.
            let k = k.min(n.div_ceil(b));
            let dense = Mat::from_fn(n, n, |i, j| if j <= i { raw[i * (i + 1) / 2 + j] } else { 0.0 });
            check(&LowerTriangular::Dense(DenseLower::new(dense).unwrap()), b, k);
            check(&toeplitz(raw[..n].to_vec()), b, k);
        }

        #[test]
        fn non_decreasing_in_k(raw in prop::collection::vec(-1.0f64..1.0, 2..=40), b in 1usize..6) {
            let n = raw.len();
            let c = toeplitz(raw);
            let mut prev = 0.0;
            for k in 1..=n.div_ceil(b) {
                let s = sensitivity(&c, Participation::new(n, Some(b), k).unwrap()).unwrap();
                prop_assert!(s.value >= prev * (1.0 - 1e-12), "k = {k}: {} < {prev}", s.value);
                prev = s.value;
            }
        }
    }
}
