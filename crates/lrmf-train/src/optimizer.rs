//! The DP-MF optimizer: noisy clipped gradient sums, heavy-ball momentum, multiplicative weight
//! decay and the learning-rate schedule, in exactly the form whose workload MATH.md §1 factorizes.

use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// A stream of per-step noise vectors: step t's vector is `σ_eff · (C⁻¹Z)_t` (one row of the
/// correlated noise of the factorization, already scaled), `d` entries per step.
pub trait NoiseSource: Send {
    /// Writes the next step's noise into `out` (length d).
    fn fill_next(&mut self, out: &mut [f32]) -> Result<()>;
    /// An opaque snapshot of the generator state (for checkpoints); whoever builds the source
    /// for a resumed run restores it.
    fn save_state(&self) -> Result<Vec<u8>>;
}

/// The hyper-parameters of the update (MATH.md §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRule {
    /// Base learning rate η > 0.
    pub learning_rate: f64,
    /// Heavy-ball momentum μ ∈ [0, 1).
    pub momentum: f64,
    /// Multiplicative weight decay λ ∈ (0, 1] (1 = none).
    pub weight_decay: f64,
    /// The schedule χ_t, one rate per step (0-based), χ_0 normally 1.
    pub rates: Vec<f64>,
    /// The divisor of the (noisy) gradient sum: the expected batch size N/b.
    pub divisor: f64,
}

/// Checks the base learning rate: η finite and > 0 (the one place this rule lives; the config
/// calls it too).
pub fn check_learning_rate(learning_rate: f64) -> Result<()> {
    if learning_rate.is_finite() && learning_rate > 0.0 {
        Ok(())
    } else {
        Err(TrainError::Config {
            key: "training.learning_rate".into(),
            message: format!("must be finite and > 0, got {learning_rate}"),
        })
    }
}

/// The optimizer state and update.
///
/// Step t (0-based, 1-based t+1 in MATH.md), with G_t the clipped gradient sum and ξ_t the noise:
///
/// ```text
/// g_t = (G_t + ξ_t) / B
/// m_t = μ · m_{t−1} + g_t                 (m_{−1} = 0)
/// θ_t = λ · θ_{t−1} − η · χ_t · m_t
/// ```
///
/// so θ_n − λ^n θ_0 = −(η/B) · (W (G + ξ))_n with the workload W of MATH.md §1: the factorized
/// workload is the real trajectory. The arithmetic is f64 per coordinate (momentum stored in f64,
/// parameters rounded to f32 once per step). O(d) time per step.
pub struct DpMfOptimizer {
    rule: UpdateRule,
    noise: Option<Box<dyn NoiseSource>>,
    momentum: Vec<f64>,
    noise_buf: Vec<f32>,
    step: usize,
}

impl std::fmt::Debug for DpMfOptimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpMfOptimizer")
            .field("rule", &self.rule)
            .field("private", &self.noise.is_some())
            .field("step", &self.step)
            .finish()
    }
}

impl DpMfOptimizer {
    /// A fresh optimizer for `d` parameters; `noise = None` is the non-private mode. Errors on
    /// a hyper-parameter out of range (naming it).
    pub fn new(rule: UpdateRule, d: usize, noise: Option<Box<dyn NoiseSource>>) -> Result<Self> {
        check_learning_rate(rule.learning_rate)?;
        use crate::config::workload_error;
        lrmf_workload::check_momentum(rule.momentum).map_err(workload_error)?;
        lrmf_workload::check_weight_decay(rule.weight_decay).map_err(workload_error)?;
        lrmf_workload::check_rates(&rule.rates).map_err(workload_error)?;
        if !(rule.divisor.is_finite() && rule.divisor > 0.0) {
            return Err(TrainError::Config {
                key: "training.batch_size".into(),
                message: format!("expected batch size must be > 0, got {}", rule.divisor),
            });
        }
        Ok(Self {
            rule,
            noise,
            momentum: vec![0.0; d],
            noise_buf: vec![0.0; d],
            step: 0,
        })
    }

    /// The next step index (0-based) = number of steps taken.
    pub fn step_index(&self) -> usize {
        self.step
    }

    /// The effective learning rate η·χ_t of step `t`.
    pub fn lr_at(&self, t: usize) -> f64 {
        self.rule.learning_rate * self.rule.rates.get(t).copied().unwrap_or(0.0)
    }

    /// The momentum buffer m.
    pub fn momentum(&self) -> &[f64] {
        &self.momentum
    }

    /// The noise added at the last step (zeros before the first or in non-private mode).
    pub fn last_noise(&self) -> &[f32] {
        &self.noise_buf
    }

    /// Whether noise is added.
    pub fn is_private(&self) -> bool {
        self.noise.is_some()
    }

    /// Applies one update to `params` with the gradient sum `grad_sum` (both length d).
    /// Errors on a length mismatch, past the last scheduled step, or on a non-finite result
    /// (then `params` and the state are left unchanged).
    pub fn step(&mut self, params: &mut [f32], grad_sum: &[f32]) -> Result<()> {
        let d = self.momentum.len();
        if params.len() != d || grad_sum.len() != d {
            return Err(TrainError::Shape(format!(
                "optimizer has d = {d}, got {} parameters and a gradient of {}",
                params.len(),
                grad_sum.len()
            )));
        }
        let t = self.step;
        let Some(&chi) = self.rule.rates.get(t) else {
            return Err(TrainError::Other(format!(
                "step {t} is past the schedule's {} steps",
                self.rule.rates.len()
            )));
        };
        match &mut self.noise {
            Some(src) => src.fill_next(&mut self.noise_buf)?,
            None => self.noise_buf.iter_mut().for_each(|x| *x = 0.0),
        }
        let (mu, lambda, eta, inv_b) = (
            self.rule.momentum,
            self.rule.weight_decay,
            self.rule.learning_rate,
            1.0 / self.rule.divisor,
        );
        let lr = eta * chi;
        let mut new_m = Vec::with_capacity(d);
        let mut new_p = Vec::with_capacity(d);
        for i in 0..d {
            let g = (grad_sum[i] as f64 + self.noise_buf[i] as f64) * inv_b;
            let m = mu * self.momentum[i] + g;
            let p = (lambda * params[i] as f64 - lr * m) as f32;
            if !(m.is_finite() && p.is_finite()) {
                return Err(TrainError::Diverged(format!(
                    "non-finite update at step {t} (parameter {i})"
                )));
            }
            new_m.push(m);
            new_p.push(p);
        }
        self.momentum = new_m;
        params.copy_from_slice(&new_p);
        self.step += 1;
        Ok(())
    }

    /// Snapshot for a checkpoint: (step, momentum, noise state).
    pub fn save_state(&self) -> Result<(usize, Vec<f64>, Option<Vec<u8>>)> {
        let noise = match &self.noise {
            Some(src) => Some(src.save_state()?),
            None => None,
        };
        Ok((self.step, self.momentum.clone(), noise))
    }

    /// Restores the step and momentum of a snapshot from [`DpMfOptimizer::save_state`] (same
    /// rule and d); the noise source must already be built from the snapshot's noise state.
    pub fn restore_state(&mut self, step: usize, momentum: Vec<f64>) -> Result<()> {
        if momentum.len() != self.momentum.len() {
            return Err(TrainError::Shape(format!(
                "checkpoint momentum has {} entries, the model {}",
                momentum.len(),
                self.momentum.len()
            )));
        }
        if step > self.rule.rates.len() {
            return Err(TrainError::Other(format!(
                "checkpoint step {step} is past the schedule's {} steps",
                self.rule.rates.len()
            )));
        }
        self.step = step;
        self.momentum = momentum;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic "noise": step t, coordinate i gets (t+1)·(i+1)·0.01.
    struct Ramp {
        t: usize,
    }

    impl NoiseSource for Ramp {
        fn fill_next(&mut self, out: &mut [f32]) -> Result<()> {
            self.t += 1;
            for (i, x) in out.iter_mut().enumerate() {
                *x = (self.t * (i + 1)) as f32 * 0.01;
            }
            Ok(())
        }
        fn save_state(&self) -> Result<Vec<u8>> {
            Ok((self.t as u64).to_le_bytes().to_vec())
        }
    }

    fn check(rule: &UpdateRule, grads: &[Vec<f32>], noise: bool) -> Vec<f32> {
        let d = grads[0].len();
        let src: Option<Box<dyn NoiseSource>> = noise.then(|| Box::new(Ramp { t: 0 }) as _);
        let mut opt = DpMfOptimizer::new(rule.clone(), d, src).unwrap();
        let mut p = vec![1.0f32; d];
        for g in grads {
            opt.step(&mut p, g).unwrap();
        }
        p
    }

    #[test]
    fn trajectory_equals_workload_times_gradients() {
        // θ_n − λ^n θ_0 = −(η/B) Σ_j W[n, j] (G_j + ξ_j), W[t,j] = Σ_{m=j}^t λ^{t−m} χ_m μ^{m−j}.
        let (n, d) = (6, 3);
        let rule = UpdateRule {
            learning_rate: 0.3,
            momentum: 0.7,
            weight_decay: 0.95,
            rates: vec![1.0, 0.9, 0.8, 0.5, 0.4, 0.2],
            divisor: 4.0,
        };
        let grads: Vec<Vec<f32>> = (0..n)
            .map(|t| (0..d).map(|i| ((t * 7 + i * 3) % 5) as f32 - 2.0).collect())
            .collect();
        for noise in [false, true] {
            let p = check(&rule, &grads, noise);
            let t = n - 1;
            for i in 0..d {
                let mut acc = 0.0;
                for j in 0..=t {
                    let w: f64 = (j..=t)
                        .map(|m| {
                            rule.weight_decay.powi((t - m) as i32)
                                * rule.rates[m]
                                * rule.momentum.powi((m - j) as i32)
                        })
                        .sum();
                    // the same f32 values the source produced
                    let xi = if noise {
                        (((j + 1) * (i + 1)) as f32 * 0.01) as f64
                    } else {
                        0.0
                    };
                    acc += w * (grads[j][i] as f64 + xi);
                }
                let expect =
                    rule.weight_decay.powi(n as i32) - rule.learning_rate / rule.divisor * acc;
                assert!(
                    (p[i] as f64 - expect).abs() < 1e-5,
                    "i={i} noise={noise}: {} vs {expect}",
                    p[i]
                );
            }
        }
    }

    #[test]
    fn save_restore_continues_identically() {
        let rule = UpdateRule {
            learning_rate: 0.1,
            momentum: 0.5,
            weight_decay: 1.0,
            rates: vec![1.0; 5],
            divisor: 2.0,
        };
        let grads: Vec<Vec<f32>> = (0..5).map(|t| vec![t as f32, -1.0]).collect();
        let full = check(&rule, &grads, true);
        let mut a = DpMfOptimizer::new(rule.clone(), 2, Some(Box::new(Ramp { t: 0 }))).unwrap();
        let mut p = vec![1.0f32; 2];
        for g in &grads[..2] {
            a.step(&mut p, g).unwrap();
        }
        let (s, m, ns) = a.save_state().unwrap();
        let t = u64::from_le_bytes(ns.unwrap().try_into().unwrap()) as usize;
        let mut b = DpMfOptimizer::new(rule, 2, Some(Box::new(Ramp { t }))).unwrap();
        b.restore_state(s, m).unwrap();
        for g in &grads[2..] {
            b.step(&mut p, g).unwrap();
        }
        assert_eq!(p, full);
    }

    #[test]
    fn bad_rules_and_inputs_are_errors() {
        let ok = UpdateRule {
            learning_rate: 0.1,
            momentum: 0.0,
            weight_decay: 1.0,
            rates: vec![1.0],
            divisor: 1.0,
        };
        for (f, key) in [
            (
                &(|r: &mut UpdateRule| r.learning_rate = 0.0) as &dyn Fn(&mut UpdateRule),
                "learning_rate",
            ),
            (&|r: &mut UpdateRule| r.momentum = 1.0, "momentum"),
            (&|r: &mut UpdateRule| r.weight_decay = 0.0, "weight_decay"),
            (&|r: &mut UpdateRule| r.divisor = f64::NAN, "batch_size"),
            (&|r: &mut UpdateRule| r.rates[0] = -1.0, "schedule"),
        ] {
            let mut r = ok.clone();
            f(&mut r);
            let e = DpMfOptimizer::new(r, 1, None).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
        let mut opt = DpMfOptimizer::new(ok, 1, None).unwrap();
        let mut p = vec![0.0];
        assert!(opt.step(&mut p, &[1.0, 2.0]).is_err());
        assert!(opt.step(&mut p, &[f32::INFINITY]).is_err());
        assert_eq!(p, vec![0.0]);
        opt.step(&mut p, &[1.0]).unwrap();
        assert!(opt.step(&mut p, &[1.0]).is_err(), "past the schedule");
    }
}
