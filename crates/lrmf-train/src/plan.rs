//! The privacy side of a run, decided once before training: the strategy C factorizing the
//! run's own workload, its sensitivity under the run's participation pattern, the noise
//! multiplier from the accountant, and the correlated-noise generator.

use lrmf_factor::Mechanism;
use lrmf_linalg::LowerTriangular;
use lrmf_noise::{CorrelatedNoise, Mode, NoiseGenerator, NoiseState, Seed};
use lrmf_privacy::accounting::{AccountingPlan, McOptions};
use lrmf_privacy::sensitivity;

use crate::config::{AccountantKind, TrainConfig};
use crate::optimizer::NoiseSource;
use crate::{Result, TrainError};

/// Where the noise key of a run comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseSeed {
    /// Fresh from the operating system (a real private release).
    Os,
    /// Derived from the config's fixed seed (reproducible; not for release).
    Fixed([u8; 32]),
    /// Restored from a checkpoint's noise state.
    FromCheckpoint,
}

/// Everything privacy-related that is fixed for a run.
///
/// # Privacy contract
/// The noise added to the gradient sum of step t is `σ_eff · (C⁻¹Z)_t` with
/// `σ_eff = z · sens(C) · clip_norm` (MATH.md §7), where
/// * C factorizes the run's workload W(χ, μ, λ) of n = k·b steps,
/// * sens(C) is computed for b-min-separation with k participations (b = steps per epoch,
///   k = epochs) by `lrmf_privacy::sensitivity`, never below the true value, and the sampler
///   guarantees exactly this participation pattern,
/// * z comes from the accountant: calibrated for (ε, δ) (never below the exact solution) or
///   given, in which case ε is computed (never below the exact value).
#[derive(Debug, Clone)]
pub struct PrivacyPlan {
    /// The strategy C.
    pub c: LowerTriangular,
    /// sens(C) under b-min-separation with k participations.
    pub sensitivity: f64,
    /// `closed-form`, `exact` or `upper-bound`.
    pub sensitivity_kind: String,
    /// z, the noise multiplier of the sensitivity-1 Gaussian.
    pub noise_multiplier: f64,
    /// ε guaranteed.
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
    /// Accountant name.
    pub accountant: String,
    /// Per-example clip norm.
    pub clip_norm: f64,
    /// Caveats to report.
    pub warnings: Vec<String>,
}

fn cfg(key: &str, message: impl Into<String>) -> TrainError {
    TrainError::Config {
        key: key.into(),
        message: message.into(),
    }
}

impl PrivacyPlan {
    /// Builds the plan of a validated private config from its validated mechanism
    /// ([`TrainConfig::validate`]). Cost: the factorization (O(n·p) … O(n³) for dense-sqrt),
    /// the sensitivity (O(n·k) closed form up to O(n²k)), the calibration (O(log) accountant
    /// calls).
    pub fn build(config: &TrainConfig, mechanism: &Mechanism) -> Result<Self> {
        let p = &config.privacy;
        let participation = mechanism.participation();
        let b = participation.min_sep();
        let clip_norm = p
            .clip_norm
            .ok_or_else(|| cfg("privacy.clip_norm", "is required in private mode"))?;
        let delta = p
            .delta
            .ok_or_else(|| cfg("privacy.delta", "is required in private mode"))?;
        let c = mechanism.factorize().map_err(|e| config.field_error(e))?.c;
        let sens =
            sensitivity(&c, participation).map_err(|e| cfg("privacy.method", e.to_string()))?;
        let mut warnings = Vec::new();
        if sens.kind == lrmf_privacy::SensitivityKind::UpperBound {
            warnings.push(format!(
                "sensitivity {:.6} is an upper bound ({}): the noise is conservative",
                sens.value, sens.how
            ));
        }
        let accounting = match p.accountant {
            AccountantKind::Gaussian => AccountingPlan::gaussian(sens.value),
            AccountantKind::McBnb => {
                // The accountant's randomness need not be secret, only fixed before looking at
                // the data and by the mechanism alone (C, bins, target, δ): a resumed run gets
                // the same calibration, and renaming a run cannot redraw it.
                let target = p.epsilon.or(p.noise_multiplier).unwrap_or(f64::NAN);
                let seed = lrmf_privacy::accounting::mechanism_seed(&c, b, target, delta);
                let options = McOptions {
                    samples: p.mc_samples.unwrap_or(McOptions::default().samples),
                    confidence: p.mc_confidence.unwrap_or(McOptions::default().confidence),
                    seed: Some(seed),
                };
                AccountingPlan::mc_bnb(&c, b, sens.value, options)
            }
            // Refused by validation; kept as an error, not a panic.
            k @ (AccountantKind::RdpPoisson | AccountantKind::PldPoisson) => {
                return Err(cfg(
                    "privacy.accountant",
                    format!("{k} is not for the trainer"),
                ));
            }
        }
        .map_err(|e| cfg("privacy.accountant", e.to_string()))?;
        let report = match (p.epsilon, p.noise_multiplier) {
            (Some(eps), None) => accounting
                .calibrate(eps, delta)
                .map_err(|e| cfg("privacy.epsilon", e.to_string()))?,
            (None, Some(z)) => accounting
                .epsilon(z, delta)
                .map_err(|e| cfg("privacy.noise_multiplier", e.to_string()))?,
            _ => {
                return Err(cfg(
                    "privacy.epsilon",
                    "give exactly one of epsilon and noise_multiplier",
                ));
            }
        };
        if let Some(conf) = report.confidence {
            warnings.push(format!(
                "epsilon is a Monte Carlo upper bound at confidence {conf} ({} samples)",
                report.samples.unwrap_or(0)
            ));
        }
        Ok(Self {
            c,
            sensitivity: sens.value,
            sensitivity_kind: sens.kind.as_str().into(),
            noise_multiplier: report.noise_multiplier,
            epsilon: report.epsilon,
            delta,
            accountant: report.accountant,
            clip_norm,
            warnings,
        })
    }

    /// σ_eff = z · sens(C) · clip_norm: the std of the noise added to the gradient sum.
    pub fn noise_std(&self) -> f64 {
        self.noise_multiplier * self.sensitivity * self.clip_norm
    }

    /// The noise generator for `d` coordinates: fresh from `seed`, or resumed from a
    /// checkpoint's `state` (then `seed` is [`NoiseSeed::FromCheckpoint`]). Also returns whether
    /// the noise key may be used for a real release (OS-drawn).
    pub fn noise_source(
        &self,
        d: usize,
        seed: NoiseSeed,
        state: Option<&[u8]>,
    ) -> Result<(Box<dyn NoiseSource>, bool)> {
        let std = self.noise_std();
        let noise_err = |e: lrmf_noise::NoiseError| TrainError::Other(format!("noise: {e}"));
        let generator = match (seed, state) {
            (NoiseSeed::FromCheckpoint, Some(bytes)) => {
                let st = decode_state(bytes)?;
                CorrelatedNoise::resume(&self.c, d, std, Mode::Auto, &st).map_err(noise_err)?
            }
            (NoiseSeed::Os, None) => {
                CorrelatedNoise::new(&self.c, d, std, Seed::FromOs, Mode::Auto)
                    .map_err(noise_err)?
            }
            (NoiseSeed::Fixed(k), None) => {
                CorrelatedNoise::new(&self.c, d, std, Seed::FixedKey(k), Mode::Auto)
                    .map_err(noise_err)?
            }
            _ => {
                return Err(TrainError::Other(
                    "checkpoint and config disagree on private vs non-private mode".into(),
                ));
            }
        };
        let safe = generator.is_private_release_safe();
        Ok((Box::new(Correlated(generator)), safe))
    }
}

/// [`NoiseSource`] over the `lrmf-noise` generator; its state is the JSON of [`NoiseState`].
struct Correlated(CorrelatedNoise);

impl NoiseSource for Correlated {
    fn fill_next(&mut self, out: &mut [f32]) -> Result<()> {
        self.0
            .fill_next(out)
            .map_err(|e| TrainError::Other(format!("noise: {e}")))
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        encode_state(self.0.save_state())
    }
}

/// Noise state bytes: u64 LE length of the JSON of [`NoiseState`] without its ring buffer,
/// that JSON, then the ring buffer as raw f32 LE (it can hold p·d or n·d values: JSON would
/// be ~4× larger and slow). O(history).
fn encode_state(mut st: NoiseState) -> Result<Vec<u8>> {
    let history = std::mem::take(&mut st.history);
    let json =
        serde_json::to_vec(&st).map_err(|e| TrainError::Other(format!("noise state: {e}")))?;
    let mut out = Vec::with_capacity(8 + json.len() + 4 * history.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for v in &history {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Inverse of [`encode_state`].
fn decode_state(bytes: &[u8]) -> Result<NoiseState> {
    let bad = |why: String| TrainError::Other(format!("checkpoint noise state: {why}"));
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(|| bad("too short".into()))?;
    let json = bytes
        .get(8..8usize.saturating_add(len))
        .ok_or_else(|| bad("length past the end".into()))?;
    let mut st: NoiseState = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
    let raw = &bytes[8 + len..];
    if !raw.len().is_multiple_of(4) {
        return Err(bad(format!(
            "{} history bytes are not whole f32s",
            raw.len()
        )));
    }
    st.history = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Ok(st)
}
