//! The generator's tests: every form and mode against the dense reference, state round trips,
//! thread-count independence, the Gaussian model, rounding, bad input.

use super::*;
use crate::base_noise_row;
use lrmf_linalg::{BandedLower, BltMatrix, DenseLower, LinearOperator, Mat, ToeplitzLower, series};

const EPS32: f64 = f32::EPSILON as f64;

/// The eight methods of the paper, built directly from the series of MATH.md §4
/// (T = 1/(1 − x), lr- variants with T^α, α = 0.97; dense-sqrt of a decaying-rate workload),
/// and a three-buffer BLT.
fn methods(n: usize, p: usize) -> Vec<(&'static str, LowerTriangular)> {
    let alpha = 0.97;
    let r = series::r(n);
    let ra = series::scale_powers(&r, alpha);
    let rt = series::r_tilde(n);
    let rta = series::scale_powers(&rt, alpha);
    let toep = |c: &[f64]| ToeplitzLower::new(n, c.to_vec()).unwrap();
    let w = Mat::from_fn(n, n, |t, j| {
        if j <= t {
            1.0 - 0.5 * j as f64 / n as f64
        } else {
            0.0
        }
    });
    let dense = DenseLower::new(w).unwrap().sqrt().unwrap();
    vec![
        ("identity", LowerTriangular::Identity { n }),
        ("sqrt", LowerTriangular::Toeplitz(toep(&r))),
        ("lr-sqrt", LowerTriangular::Toeplitz(toep(&ra))),
        ("bsr", LowerTriangular::Toeplitz(toep(&r[..p]))),
        ("lr-bsr", LowerTriangular::Toeplitz(toep(&ra[..p]))),
        ("bisr", LowerTriangular::InverseToeplitz(toep(&rt[..p]))),
        ("lr-bisr", LowerTriangular::InverseToeplitz(toep(&rta[..p]))),
        ("dense-sqrt", LowerTriangular::Dense(dense)),
        ("bandmf", LowerTriangular::Banded(banded(n, p))),
        (
            "blt",
            LowerTriangular::Blt(
                BltMatrix::new(n, vec![0.95, 0.6, 0.2], vec![0.25, 0.15, 0.1]).unwrap(),
            ),
        ),
    ]
}

/// A column-normalized banded C whose columns vary (not Toeplitz): column j is
/// `(1, 0.3·(1 + j/n), 0.2/2, 0.2/3, …)` normalized, truncated at row n − 1 (positive and
/// decaying, like the optimized BandMF strategies; the f32 feedback of the recursion is
/// within the dense-reference tolerance for such stable filters, as for BSR).
fn banded(n: usize, p: usize) -> BandedLower {
    let mut cols = vec![0.0; n * p];
    for j in 0..n {
        let len = p.min(n - j);
        let col = &mut cols[j * p..j * p + len];
        for (i, v) in col.iter_mut().enumerate() {
            *v = match i {
                0 => 1.0,
                1 => 0.3 * (1.0 + j as f64 / n as f64),
                _ => 0.2 / i as f64,
            };
        }
        let norm = col.iter().map(|v| v * v).sum::<f64>().sqrt();
        col.iter_mut().for_each(|v| *v /= norm);
    }
    BandedLower::new(n, p, cols).unwrap()
}

fn run(g: &mut CorrelatedNoise) -> Vec<Vec<f32>> {
    (0..g.n())
        .map(|_| {
            let mut out = vec![0f32; g.dim()];
            g.fill_next(&mut out).unwrap();
            out
        })
        .collect()
}

/// Every row of `got` equals `σ·Σ_j (C⁻¹)[t, j]·z_j` (dense `C⁻¹`, the same `z_j`) to f32
/// rounding: `|got − want| ≤ 2·ε₃₂·σ·Σ_j |(C⁻¹)[t, j]·z_j|` per coordinate.
fn check(name: &str, c: &LowerTriangular, key: &Key, std: f64, got: &[Vec<f32>]) {
    let n = c.n();
    let d = got[0].len();
    let minv = c.inverse_to_dense().unwrap();
    let z: Vec<Vec<f32>> = (0..n).map(|j| base_noise_row(key, j, d)).collect();
    for t in 0..n {
        for i in 0..d {
            let (mut want, mut scale) = (0.0, 0.0);
            for j in 0..=t {
                let v = minv[(t, j)] * f64::from(z[j][i]);
                want += v;
                scale += v.abs();
            }
            let (want, scale) = (std * want, std * scale);
            let err = (f64::from(got[t][i]) - want).abs();
            assert!(
                err <= 2.0 * EPS32 * scale + f64::from(f32::MIN_POSITIVE),
                "{name}: step {t} coord {i}: {} vs {want} (scale {scale})",
                got[t][i]
            );
        }
    }
}

#[test]
fn every_method_and_mode_matches_the_dense_reference() {
    let (n, p, d, std) = (12, 4, CHUNK + 37, 1.7);
    for (name, c) in methods(n, p) {
        for mode in [Mode::Streaming, Mode::Regenerate] {
            let mut g = CorrelatedNoise::new(&c, d, std, Seed::Fixed(11), mode).unwrap();
            let got = run(&mut g);
            check(name, &c, g.key(), std, &got);
            // Any (step, slice) regenerated alone: bit-identical except for the recursion.
            for (t, start, len) in [
                (0, 0, d),
                (n - 1, 5, 100),
                (7, CHUNK - 3, 40),
                (3, d - 1, 1),
            ] {
                let mut part = vec![0f32; len];
                g.regenerate(t, start, &mut part).unwrap();
                if matches!(g.form(), "recursion" | "banded" | "blt") {
                    let want = &got[t][start..start + len];
                    for (a, b) in part.iter().zip(want) {
                        assert!((a - b).abs() <= 8.0 * f32::EPSILON * (1.0 + b.abs()));
                    }
                } else {
                    assert_eq!(part, got[t][start..start + len], "{name} {mode:?} step {t}");
                }
            }
        }
    }
}

#[test]
fn forms_and_memory_follow_the_shape_of_c() {
    let (n, p, d) = (12, 4, 10);
    let want = [
        ("identity", "identity", 0),
        ("sqrt", "fir", n),
        ("lr-sqrt", "fir", n),
        ("bsr", "recursion", p - 1),
        ("lr-bsr", "recursion", p - 1),
        ("bisr", "fir", p),
        ("lr-bisr", "fir", p),
        ("dense-sqrt", "dense", n),
        ("bandmf", "banded", p - 1),
        ("blt", "blt", 3),
    ];
    for ((name, c), (wname, form, slots)) in methods(n, p).into_iter().zip(want) {
        assert_eq!(name, wname);
        let g = CorrelatedNoise::new(&c, d, 1.0, Seed::Fixed(1), Mode::Streaming).unwrap();
        assert_eq!((g.form(), g.state_bytes()), (form, slots * d * 4), "{name}");
        assert_eq!(state_rows(&c), slots, "{name}");
        let g = CorrelatedNoise::new(&c, d, 1.0, Seed::Fixed(1), Mode::Regenerate).unwrap();
        assert_eq!(g.state_bytes(), 0, "{name}");
    }
    // Auto: stream when the history fits in the budget, regenerate otherwise.
    let c = LowerTriangular::Toeplitz(ToeplitzLower::new(300, series::r(300)).unwrap());
    let g = CorrelatedNoise::new(&c, 1_000_000, 1.0, Seed::Fixed(1), Mode::Auto).unwrap();
    assert_eq!((g.mode(), g.state_bytes()), (Mode::Regenerate, 0));
    let g = CorrelatedNoise::new(&c, 1000, 1.0, Seed::Fixed(1), Mode::Auto).unwrap();
    assert_eq!(g.mode(), Mode::Streaming);
    assert_eq!(g.taps(0), 1);
    assert_eq!(g.taps(299), 300);
}

/// Max over steps and coordinates of |(C·Y/σ)_j − z_j|: recovers the base rows from the
/// noise. Zero (to f32 rounding) iff every step used the same z_j.
fn recovered_base_error(c: &LowerTriangular, key: &Key, std: f64, y: &[Vec<f32>]) -> f64 {
    let (n, d) = (y.len(), y[0].len());
    let mut worst = 0f64;
    for i in 0..d {
        let col: Vec<f64> = (0..n).map(|t| f64::from(y[t][i]) / std).collect();
        let zhat = c.apply(&col);
        for j in 0..n {
            let z = base_noise_row(key, j, d)[i];
            worst = worst.max((zhat[j] - f64::from(z)).abs());
        }
    }
    worst
}

/// Regression: a public port re-keyed the base noise per step, so step t used a fresh z_j
/// instead of the z_j of step j, silently destroying the correlation.
#[test]
fn every_step_reuses_the_same_base_rows() {
    let (n, p, d, std) = (10, 3, 50, 2.0);
    for (name, c) in methods(n, p) {
        for mode in [Mode::Streaming, Mode::Regenerate] {
            let mut g = CorrelatedNoise::new(&c, d, std, Seed::Fixed(5), mode).unwrap();
            let y = run(&mut g);
            let err = recovered_base_error(&c, g.key(), std, &y);
            assert!(err < 1e-4, "{name} {mode:?}: C·Y/σ differs from Z by {err}");
        }
    }
    // The check does catch the bug: re-key Z per step (step t draws its own copy of z_j).
    let (_, c) = methods(n, p).swap_remove(5);
    let minv = c.inverse_to_dense().unwrap();
    let key = Key::from_fixed_seed(5);
    let buggy: Vec<Vec<f32>> = (0..n)
        .map(|t| {
            let kt = Key::from_fixed_seed(1000 + t as u64);
            (0..d)
                .map(|i| {
                    let s: f64 = (0..=t)
                        .map(|j| minv[(t, j)] * f64::from(base_noise_row(&kt, j, d)[i]))
                        .sum();
                    (std * s) as f32
                })
                .collect()
        })
        .collect();
    assert!(recovered_base_error(&c, &key, std, &buggy) > 0.5);
}

/// Statistical tests with fixed seeds (deterministic; the stated false-failure probability is
/// that of a fresh key).
/// - Marginals: each step's d coordinates are i.i.d. N(0, σ²·Σ_j (C⁻¹)[t, j]²); the KS
///   distance D of the standardized sample is checked with the DKW–Massart bound
///   P(D > ε) ≤ 2e^{−2dε²}, ε = √(ln(2n/α)/(2d)): false failure ≤ α = 10⁻⁶ over all n steps.
/// - Covariance: the columns of Y are d i.i.d. N(0, S), S = σ²C⁻¹C⁻ᵀ. With
///   Ŝ_ab = (1/d)Σ_i y_ai y_bi = (s₊χ₊ − s₋χ₋)/(4d), s± = S_aa + S_bb ± 2S_ab, χ± ~ χ²_d, the
///   Laurent–Massart bounds P(|χ/d − 1| > 2√(x/d) + 2x/d) ≤ 2e^{−x} give
///   |Ŝ_ab − S_ab| ≤ (S_aa + S_bb)/2·(2√(x/d) + 2x/d) except with probability 4e^{−x};
///   x = ln(4·n(n+1)/2/α) makes the union over all entries ≤ α = 10⁻⁶.
#[test]
fn marginals_and_covariance_match_the_gaussian_model() {
    use statrs::distribution::{ContinuousCDF, Normal};
    let (n, p, d, std, alpha) = (16, 4, 40_000, 0.8, 1e-6);
    let normal = Normal::new(0.0, 1.0).unwrap();
    for (name, c) in methods(n, p) {
        let mut g = CorrelatedNoise::new(&c, d, std, Seed::Fixed(2024), Mode::Auto).unwrap();
        let y = run(&mut g);
        let minv = c.inverse_to_dense().unwrap();
        let s = Mat::from_fn(n, n, |a, b| {
            std * std * (0..n).map(|j| minv[(a, j)] * minv[(b, j)]).sum::<f64>()
        });
        let eps = ((2.0 * n as f64 / alpha).ln() / (2.0 * d as f64)).sqrt();
        for t in 0..n {
            let sd = s[(t, t)].sqrt();
            let mut v: Vec<f64> = y[t].iter().map(|&x| f64::from(x) / sd).collect();
            v.sort_by(f64::total_cmp);
            let ks = v
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    let f = normal.cdf(x);
                    (f - i as f64 / d as f64).max((i + 1) as f64 / d as f64 - f)
                })
                .fold(0.0, f64::max);
            assert!(ks <= eps, "{name}: step {t}: KS distance {ks} > {eps}");
        }
        let x = (4.0 * (n * (n + 1) / 2) as f64 / alpha).ln();
        let dev = 2.0 * (x / d as f64).sqrt() + 2.0 * x / d as f64;
        for a in 0..n {
            for b in 0..=a {
                let shat: f64 = (0..d)
                    .map(|i| f64::from(y[a][i]) * f64::from(y[b][i]))
                    .sum::<f64>()
                    / d as f64;
                let bound = (s[(a, a)] + s[(b, b)]) / 2.0 * dev;
                assert!(
                    (shat - s[(a, b)]).abs() <= bound,
                    "{name}: covariance ({a}, {b}) = {shat}, model {} ± {bound}",
                    s[(a, b)]
                );
            }
        }
    }
}

#[test]
fn save_restore_continue_is_bit_identical() {
    let (n, p, d, std) = (9, 3, CHUNK + 3, 0.5);
    for (name, c) in methods(n, p) {
        for mode in [Mode::Streaming, Mode::Regenerate] {
            let mut whole = CorrelatedNoise::new(&c, d, std, Seed::Fixed(77), mode).unwrap();
            let want = run(&mut whole);
            for k in [0, 1, 4, n] {
                let mut g = CorrelatedNoise::new(&c, d, std, Seed::Fixed(77), mode).unwrap();
                let mut out = vec![0f32; d];
                for _ in 0..k {
                    g.fill_next(&mut out).unwrap();
                }
                let json = serde_json::to_string(&g.save_state()).unwrap();
                let state: NoiseState = serde_json::from_str(&json).unwrap();
                // Into a fresh generator with the same seed, and via `resume` (key from state).
                let mut a = CorrelatedNoise::new(&c, d, std, Seed::Fixed(77), mode).unwrap();
                a.restore(&state).unwrap();
                let mut b = CorrelatedNoise::resume(&c, d, std, Mode::Auto, &state).unwrap();
                for h in [&mut a, &mut b] {
                    assert_eq!(h.step(), k);
                    for t in k..n {
                        h.fill_next(&mut out).unwrap();
                        let same = out
                            .iter()
                            .zip(&want[t])
                            .all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{name} {mode:?}: step {t} after restore at {k}");
                    }
                    assert!(
                        matches!(h.fill_next(&mut out), Err(NoiseError::PastEnd { step, n: m }) if step == n && m == n)
                    );
                }
            }
        }
    }
    // An OS-seeded run resumes as private with its own key.
    let (_, c) = methods(5, 2).swap_remove(5);
    let mut g = CorrelatedNoise::new(&c, 8, 1.0, Seed::FromOs, Mode::Auto).unwrap();
    assert!(g.is_private_release_safe());
    g.fill_next(&mut [0.0; 8]).unwrap();
    let r = CorrelatedNoise::resume(&c, 8, 1.0, Mode::Auto, &g.save_state()).unwrap();
    assert!(r.is_private_release_safe());
    assert_eq!(r.key(), g.key());
    let f = CorrelatedNoise::new(&c, 8, 1.0, Seed::Fixed(1), Mode::Auto).unwrap();
    assert!(!f.is_private_release_safe());
}

#[test]
fn restore_rejects_a_different_generator() {
    let (n, p, d) = (8, 3, 20);
    let ms = methods(n, p);
    let c = &ms[5].1; // bisr
    let make = |c: &LowerTriangular, d, std, seed, mode| {
        CorrelatedNoise::new(c, d, std, seed, mode).unwrap()
    };
    let mut g = make(c, d, 1.0, Seed::Fixed(3), Mode::Streaming);
    g.fill_next(&mut vec![0.0; d]).unwrap();
    let state = g.save_state();
    let field = |mut h: CorrelatedNoise| match h.restore(&state) {
        Err(NoiseError::StateMismatch { field, .. }) => field,
        other => panic!("expected a mismatch, got {other:?}"),
    };
    assert_eq!(
        field(make(&ms[3].1, d, 1.0, Seed::Fixed(3), Mode::Streaming)),
        "strategy form"
    );
    assert_eq!(
        field(make(&ms[6].1, d, 1.0, Seed::Fixed(3), Mode::Streaming)),
        "strategy coefficients"
    );
    let (_, c4) = methods(n, p + 1).swap_remove(5);
    assert_eq!(
        field(make(&c4, d, 1.0, Seed::Fixed(3), Mode::Streaming)),
        "band"
    );
    let (_, c9) = methods(n + 1, p).swap_remove(5);
    assert_eq!(
        field(make(&c9, d, 1.0, Seed::Fixed(3), Mode::Streaming)),
        "n (steps of C)"
    );
    assert_eq!(
        field(make(c, d + 1, 1.0, Seed::Fixed(3), Mode::Streaming)),
        "dim"
    );
    assert_eq!(
        field(make(c, d, 2.0, Seed::Fixed(3), Mode::Streaming)),
        "std"
    );
    assert_eq!(
        field(make(c, d, 1.0, Seed::Fixed(4), Mode::Streaming)),
        "seed (noise key)"
    );
    assert_eq!(
        field(make(c, d, 1.0, Seed::Fixed(3), Mode::Regenerate)),
        "mode"
    );
    let rounded = make(c, d, 1.0, Seed::Fixed(3), Mode::Streaming)
        .with_rounding(Rounding::Grid(0.5))
        .unwrap();
    assert_eq!(field(rounded), "rounding");
    assert!(CorrelatedNoise::resume(c, d + 1, 1.0, Mode::Auto, &state).is_err());
    // Corrupt states.
    let mut bad = state.clone();
    bad.history.pop();
    assert!(matches!(
        g.clone().restore(&bad),
        Err(NoiseError::CorruptState(_))
    ));
    let mut bad = state.clone();
    bad.step = n + 1;
    assert!(matches!(
        g.clone().restore(&bad),
        Err(NoiseError::CorruptState(_))
    ));
    // A failed restore leaves the generator unchanged.
    let before = g.save_state();
    assert!(g.restore(&bad).is_err());
    assert_eq!(g.save_state(), before);
}

#[test]
fn thread_count_does_not_change_the_noise() {
    let (n, p, d) = (6, 3, 3 * CHUNK + 11);
    for (name, c) in methods(n, p) {
        for mode in [Mode::Streaming, Mode::Regenerate] {
            let outs: Vec<Vec<Vec<f32>>> = [1, 2, 3]
                .iter()
                .map(|&threads| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    pool.install(|| {
                        run(&mut CorrelatedNoise::new(&c, d, 1.0, Seed::Fixed(8), mode).unwrap())
                    })
                })
                .collect();
            assert!(outs[0] == outs[1] && outs[1] == outs[2], "{name} {mode:?}");
        }
    }
}

#[test]
fn identity_is_scaled_base_noise_and_rounding_lands_on_the_grid() {
    let (n, d, std) = (4, 1001, 3.0);
    let c = LowerTriangular::Identity { n };
    let mut g = CorrelatedNoise::new(&c, d, std, Seed::Fixed(9), Mode::Auto).unwrap();
    let y = run(&mut g);
    for t in 0..n {
        let z = base_noise_row(g.key(), t, d);
        let want: Vec<f32> = z.iter().map(|&v| (std * f64::from(v)) as f32).collect();
        assert_eq!(y[t], want);
    }
    let m = generate_matrix(&c, d, std, Seed::Fixed(9)).unwrap();
    assert_eq!(m, y.concat());
    let lambda = 1.0 / 64.0;
    let mut r = CorrelatedNoise::new(&c, d, std, Seed::Fixed(9), Mode::Auto)
        .unwrap()
        .with_rounding(Rounding::Grid(lambda))
        .unwrap();
    let yr = run(&mut r);
    for t in 0..n {
        for i in 0..d {
            let v = f64::from(yr[t][i]);
            assert_eq!((v / lambda).fract(), 0.0);
            assert!((v - f64::from(y[t][i])).abs() <= lambda / 2.0 + 1e-6);
        }
    }
}

#[test]
fn bad_input_is_an_error() {
    let (_, c) = methods(6, 2).swap_remove(5);
    let name = |r: Result<CorrelatedNoise, NoiseError>| match r {
        Err(NoiseError::Invalid { name, .. }) => name,
        other => panic!("expected Invalid, got {other:?}"),
    };
    let new =
        |c: &LowerTriangular, d, std| CorrelatedNoise::new(c, d, std, Seed::Fixed(1), Mode::Auto);
    assert_eq!(name(new(&c, 0, 1.0)), "dim");
    assert_eq!(name(new(&c, 3, f64::NAN)), "std");
    assert_eq!(name(new(&c, 3, f64::INFINITY)), "std");
    assert_eq!(name(new(&c, 3, -1.0)), "std");
    let singular = LowerTriangular::Toeplitz(ToeplitzLower::new(6, vec![0.0, 1.0]).unwrap());
    assert_eq!(name(new(&singular, 3, 1.0)), "c");
    let singular = LowerTriangular::InverseToeplitz(ToeplitzLower::new(6, vec![0.0, 1.0]).unwrap());
    assert_eq!(name(new(&singular, 3, 1.0)), "c");
    let m = Mat::from_fn(3, 3, |i, j| if j < i { 1.0 } else { 0.0 });
    let singular = LowerTriangular::Dense(DenseLower::new(m).unwrap());
    assert_eq!(name(new(&singular, 3, 1.0)), "c");
    let g = new(&c, 3, 1.0).unwrap();
    assert_eq!(
        name(g.clone().with_rounding(Rounding::Grid(0.0))),
        "rounding"
    );
    assert_eq!(
        name(g.clone().with_rounding(Rounding::Grid(f64::NAN))),
        "rounding"
    );
    let mut g = g;
    assert!(matches!(
        g.fill_next(&mut [0.0; 4]),
        Err(NoiseError::Invalid { name: "out", .. })
    ));
    assert_eq!(g.step(), 0);
    assert!(matches!(
        g.regenerate(0, 2, &mut [0.0; 2]),
        Err(NoiseError::Invalid { name: "out", .. })
    ));
    assert!(matches!(
        g.regenerate(6, 0, &mut [0.0; 2]),
        Err(NoiseError::PastEnd { step: 6, n: 6 })
    ));
    g.fill_next(&mut [0.0; 3]).unwrap();
    assert_eq!(name(g.with_rounding(Rounding::Grid(0.5))), "rounding");
}
