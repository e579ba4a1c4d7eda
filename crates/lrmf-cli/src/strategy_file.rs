//! Strategy files: a factorization written by `lrmf factorize --out FILE.json` (or by the user,
//! or by another tool) and read back by every command through `--strategy FILE.json|FILE.npy`.
//!
//! A file says what C is and, optionally, which problem it was made for; a file whose `n`,
//! workload or participation disagrees with the command is refused, naming the field. A
//! user-written C goes through the same checks as a built-in one: square, lower-triangular,
//! finite, invertible (non-zero diagonal), n matching `--n`. Its sensitivity is computed by
//! `lrmf_privacy::sensitivity` like any other C (exact only where proved, else an upper bound);
//! the numbers stored in a file are reports, never trusted as inputs.
//!
//! JSON (`format = "lrmf-strategy/1"`), C in one of four shapes:
//! `{"kind": "identity"}`, `{"kind": "toeplitz", "coeffs": [c0, c1, …]}` (C = Toep(c)),
//! `{"kind": "inverse-toeplitz", "coeffs": [d0, …]}` (C⁻¹ = Toep(d)), `{"kind": "dense",
//! "rows": [[c00], [c10, c11], …]}` (row t: its t + 1 lower-triangular entries, or all n).
//! NumPy: a float64 n × n array in C order (`.npy` v1/v2, `<f8`).

use crate::strategy::{Problem, StrategyArgs};
use crate::usage;
use anyhow::Result;
use lrmf_factor::{Factorization, MAX_DENSE_N};
use lrmf_linalg::{DenseLower, LinearOperator, LowerTriangular, Mat, ToeplitzLower};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The format tag of version 1.
pub const FORMAT: &str = "lrmf-strategy/1";

/// The strategy matrix C in a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CSpec {
    /// C = I.
    Identity,
    /// C = Toep(c) (first column c, length ≤ n; missing coefficients are 0).
    Toeplitz {
        /// c.
        coeffs: Vec<f64>,
    },
    /// C⁻¹ = Toep(d) (the BISR shape).
    InverseToeplitz {
        /// d.
        coeffs: Vec<f64>,
    },
    /// A dense lower-triangular C (n ≤ 4096).
    Dense {
        /// Row t: its t + 1 lower-triangular entries (or all n, the upper ones 0).
        rows: Vec<Vec<f64>>,
    },
}

/// The workload a strategy was made for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadDesc {
    /// `--schedule` as given.
    pub schedule: String,
    /// `--lr-decay`.
    pub lr_decay: f64,
    /// `--warmup`.
    pub warmup: usize,
    /// `--momentum`.
    pub momentum: f64,
    /// `--weight-decay`.
    pub weight_decay: f64,
}

/// The participation a strategy was made for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipationDesc {
    /// `--min-sep` (absent: single participation).
    pub min_sep: Option<usize>,
    /// `--participations`.
    pub participations: usize,
}

/// A strategy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyFile {
    /// `lrmf-strategy/1`.
    pub format: String,
    /// The method that made it (`user` when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Steps n.
    pub n: usize,
    /// Band p, for banded methods.
    #[serde(default)]
    pub band: Option<usize>,
    /// The workload it was made for; checked against the command's when present.
    #[serde(default)]
    pub workload: Option<WorkloadDesc>,
    /// The participation it was made for; checked against the command's when present.
    #[serde(default)]
    pub participation: Option<ParticipationDesc>,
    /// C.
    pub c: CSpec,
    /// What `lrmf errors --json` reported for it when written (informational, never read back
    /// as an input).
    #[serde(default)]
    pub errors: Option<serde_json::Value>,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> anyhow::Error {
    usage(format!("invalid --strategy: {}: {why}", path.display()))
}

impl CSpec {
    /// The file form of C. Shapes without a file form of their own are written dense
    /// (n ≤ 4096).
    pub fn of(c: &LowerTriangular) -> Result<Self> {
        Ok(match c {
            LowerTriangular::Identity { .. } => Self::Identity,
            LowerTriangular::Toeplitz(t) => Self::Toeplitz {
                coeffs: t.coeffs().to_vec(),
            },
            LowerTriangular::InverseToeplitz(t) => Self::InverseToeplitz {
                coeffs: t.coeffs().to_vec(),
            },
            other => {
                let n = other.n();
                if n > MAX_DENSE_N {
                    return Err(usage(format!(
                        "invalid --n: this strategy is written as a dense matrix, which is limited to n ≤ {MAX_DENSE_N}"
                    )));
                }
                let d = other.to_dense();
                Self::Dense {
                    rows: (0..n)
                        .map(|t| (0..=t).map(|j| d[(t, j)]).collect())
                        .collect(),
                }
            }
        })
    }

    /// C as an n × n operator, checked: finite, lower-triangular, invertible.
    pub fn to_lower(&self, n: usize, path: &Path) -> Result<LowerTriangular> {
        let toeplitz = |coeffs: &[f64], what: &str| -> Result<ToeplitzLower> {
            if coeffs.is_empty() || coeffs.len() > n {
                return Err(bad(
                    path,
                    format!("c.coeffs has {} entries; 1..=n = {n} allowed", coeffs.len()),
                ));
            }
            if let Some(k) = coeffs.iter().position(|v| !v.is_finite()) {
                return Err(bad(path, format!("c.coeffs[{k}] is {}", coeffs[k])));
            }
            if coeffs[0] == 0.0 {
                return Err(bad(
                    path,
                    format!("{what}: coefficient 0 is 0, so C is singular"),
                ));
            }
            ToeplitzLower::new(n, coeffs.to_vec()).map_err(|e| bad(path, e))
        };
        Ok(match self {
            Self::Identity => LowerTriangular::Identity { n },
            Self::Toeplitz { coeffs } => LowerTriangular::Toeplitz(toeplitz(coeffs, "toeplitz")?),
            Self::InverseToeplitz { coeffs } => {
                LowerTriangular::InverseToeplitz(toeplitz(coeffs, "inverse-toeplitz")?)
            }
            Self::Dense { rows } => {
                if rows.len() != n {
                    return Err(bad(
                        path,
                        format!("c.rows has {} rows, n = {n}", rows.len()),
                    ));
                }
                let mut m = Mat::<f64>::zeros(n, n);
                for (t, row) in rows.iter().enumerate() {
                    if row.len() != t + 1 && row.len() != n {
                        return Err(bad(
                            path,
                            format!(
                                "c.rows[{t}] has {} entries; {} or n = {n} allowed",
                                row.len(),
                                t + 1
                            ),
                        ));
                    }
                    for (j, v) in row.iter().enumerate() {
                        m[(t, j)] = *v;
                    }
                }
                dense(m, path)?
            }
        })
    }
}

/// A dense C checked for size, shape, finiteness and a non-zero diagonal.
fn dense(m: Mat<f64>, path: &Path) -> Result<LowerTriangular> {
    let n = m.nrows();
    if n > MAX_DENSE_N {
        return Err(bad(
            path,
            format!("dense C of n = {n} exceeds {MAX_DENSE_N}"),
        ));
    }
    let d = DenseLower::new(m).map_err(|e| bad(path, format!("C {e}")))?;
    if let Some(t) = (0..n).find(|&t| d.as_mat()[(t, t)] == 0.0) {
        return Err(bad(path, format!("C[{t}, {t}] = 0, so C is singular")));
    }
    Ok(LowerTriangular::Dense(d))
}

impl StrategyFile {
    /// The file of a factorization made for these strategy flags.
    pub fn new(a: &StrategyArgs, f: &Factorization, errors: serde_json::Value) -> Result<Self> {
        Ok(Self {
            format: FORMAT.into(),
            method: Some(f.name.clone()),
            n: f.c.n(),
            band: f.band,
            workload: Some(WorkloadDesc {
                schedule: a.schedule.clone(),
                lr_decay: a.lr_decay,
                warmup: a.warmup,
                momentum: a.momentum,
                weight_decay: a.weight_decay,
            }),
            participation: Some(ParticipationDesc {
                min_sep: a.min_sep,
                participations: a.participations,
            }),
            c: CSpec::of(&f.c)?,
            errors: Some(errors),
        })
    }

    /// Refuses a file made for another problem, naming the field that differs.
    fn check_matches(&self, a: &StrategyArgs, n: usize, path: &Path) -> Result<()> {
        if self.format != FORMAT {
            return Err(bad(
                path,
                format!("format '{}' is not {FORMAT}", self.format),
            ));
        }
        if self.n != n {
            return Err(bad(
                path,
                format!("field n = {} does not match --n {n}", self.n),
            ));
        }
        if let Some(w) = &self.workload {
            let mismatch = [
                (
                    "schedule",
                    w.schedule != a.schedule,
                    format!("{:?} vs --schedule {:?}", w.schedule, a.schedule),
                ),
                (
                    "lr_decay",
                    w.lr_decay != a.lr_decay,
                    format!("{} vs --lr-decay {}", w.lr_decay, a.lr_decay),
                ),
                (
                    "warmup",
                    w.warmup != a.warmup,
                    format!("{} vs --warmup {}", w.warmup, a.warmup),
                ),
                (
                    "momentum",
                    w.momentum != a.momentum,
                    format!("{} vs --momentum {}", w.momentum, a.momentum),
                ),
                (
                    "weight_decay",
                    w.weight_decay != a.weight_decay,
                    format!("{} vs --weight-decay {}", w.weight_decay, a.weight_decay),
                ),
            ];
            if let Some((field, _, what)) = mismatch.iter().find(|m| m.1) {
                return Err(bad(
                    path,
                    format!(
                        "field workload.{field} = {what}: the strategy was made for another workload"
                    ),
                ));
            }
        }
        if let Some(p) = &self.participation {
            if p.participations != a.participations {
                return Err(bad(
                    path,
                    format!(
                        "field participation.participations = {} does not match --participations {}",
                        p.participations, a.participations
                    ),
                ));
            }
            if p.participations > 1 && p.min_sep != a.min_sep {
                return Err(bad(
                    path,
                    format!(
                        "field participation.min_sep = {:?} does not match --min-sep {:?}",
                        p.min_sep, a.min_sep
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The factorization in `path` (`.npy`: a dense C; otherwise JSON), checked against the
/// command's problem. B is `W·C⁻¹` with the command's true W, like every method.
pub fn load(path: &Path, a: &StrategyArgs, problem: &Problem) -> Result<Factorization> {
    let n = problem.n();
    let bytes = std::fs::read(path).map_err(|e| bad(path, e))?;
    if path.extension().is_some_and(|e| e == "npy") {
        let (rows, cols, data) = read_npy_f64(&bytes).map_err(|e| bad(path, e))?;
        if rows != cols {
            return Err(bad(path, format!("C must be square, got {rows} × {cols}")));
        }
        if rows != n {
            return Err(bad(path, format!("C is {rows} × {rows}, --n is {n}")));
        }
        let m = Mat::from_fn(n, n, |i, j| data[i * n + j]);
        return Ok(Factorization {
            name: "user".into(),
            band: None,
            c: dense(m, path)?,
            info: None,
            buffers: None,
        });
    }
    let file: StrategyFile = serde_json::from_slice(&bytes).map_err(|e| bad(path, e))?;
    file.check_matches(a, n, path)?;
    Ok(Factorization {
        name: file.method.clone().unwrap_or_else(|| "user".into()),
        band: file.band,
        c: file.c.to_lower(n, path)?,
        info: None,
        buffers: None,
    })
}

/// `lrmf factorize`: factorizes once, writes the strategy file (and the dense C as `.npy` when
/// asked) and returns what `lrmf errors` reports for it.
pub fn factorize_to(
    a: &StrategyArgs,
    out: &Path,
    npy: Option<&Path>,
) -> Result<crate::ErrorsReport> {
    let (_, f, report) = crate::strategy::evaluate_full(a)?;
    if let Some(path) = npy {
        write_npy(path, &f.c)?;
    }
    let file = StrategyFile::new(a, &f, serde_json::to_value(&report)?)?;
    write_json(out, &file)?;
    Ok(report)
}

/// Writes `file` as pretty JSON, atomically.
pub fn write_json(path: &Path, file: &StrategyFile) -> Result<()> {
    let mut text = serde_json::to_string_pretty(file)?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Writes the dense C (n ≤ 4096) as a float64 `.npy` in C order, atomically.
pub fn write_npy(path: &Path, c: &LowerTriangular) -> Result<()> {
    let n = c.n();
    if n > MAX_DENSE_N {
        return Err(usage(format!(
            "invalid --npy: a dense C is written for n ≤ {MAX_DENSE_N}; n = {n}"
        )));
    }
    let d = c.to_dense();
    let mut out = Vec::with_capacity(128 + 8 * n * n);
    lrmf_noise::write_npy_header_typed(&mut out, "<f8", n, n)?;
    for i in 0..n {
        for j in 0..n {
            out.extend_from_slice(&d[(i, j)].to_le_bytes());
        }
    }
    write_atomic(path, &out)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    lrmf_io::atomic_write(path, bytes)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// (rows, cols, data) of a float64 C-order `.npy` (v1 or v2).
fn read_npy_f64(bytes: &[u8]) -> std::result::Result<(usize, usize, Vec<f64>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated header")?;
    if !header.contains("'descr': '<f8'") {
        return Err(format!(
            "dtype must be float64 ('<f8'), header: {}",
            header.trim()
        ));
    }
    if header.contains("'fortran_order': True") {
        return Err(
            "fortran_order arrays are not supported; save C-order (np.ascontiguousarray)".into(),
        );
    }
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("no shape in header")?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("bad shape '{shape}'")))
        .collect::<std::result::Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(format!("C must be 2-D, shape ({shape})"));
    };
    let count = rows.checked_mul(cols).ok_or("shape overflows")?;
    let data = &bytes[start + hlen..];
    if Some(data.len()) != count.checked_mul(8) {
        return Err(format!(
            "{} data bytes for shape ({rows}, {cols})",
            data.len()
        ));
    }
    Ok((
        rows,
        cols,
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
    ))
}
