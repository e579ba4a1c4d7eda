//! The streaming step of each form: the next row of `σ·C⁻¹Z` from a ring buffer of past rows
//! (of `Z` for the FIR and dense forms, of the outputs for the recursions, the BLT buffers),
//! parallel over fixed [`CHUNK`]-coordinate tasks.

use super::kernel::{Scratch, accumulate};
use super::{CHUNK, CorrelatedNoise, Form};
use crate::gaussian::{fill_even, fill_even_map};
use rayon::prelude::*;

impl CorrelatedNoise {
    /// Step `self.step` into `out` from the ring buffer, which it advances. O(p·d) (O(t·d) for
    /// the full-history forms).
    pub(super) fn fill_streaming(&mut self, out: &mut [f32]) {
        let t = self.step;
        let slots = self.form.slots(self.n);
        let mut history = std::mem::take(&mut self.history);
        let this = &*self;
        match &this.form {
            Form::Identity => this.stream_identity(t, out),
            Form::Fir { .. } | Form::Dense { .. } => this.stream_fir(t, slots, out, &mut history),
            Form::Recursion { .. } | Form::Banded { .. } => {
                this.stream_recursion(t, slots, out, &mut history)
            }
            Form::Blt { theta, omega, .. } => {
                let neg: Vec<f64> = omega.iter().map(|&w| -w).collect();
                out.par_chunks_mut(CHUNK)
                    .zip(history.par_chunks_mut(CHUNK * slots))
                    .enumerate()
                    .for_each_init(Scratch::new, |s, (ci, (o, hist))| {
                        blt_step(this, theta, &neg, t, ci, o, hist, s);
                    });
            }
        }
        self.history = history;
    }

    /// `y_t = z_t`.
    fn stream_identity(&self, t: usize, out: &mut [f32]) {
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each_init(Scratch::new, |s, (ci, o)| {
                fill_even_map(&self.key, t, ci * CHUNK, o, &mut s.words, |z| {
                    self.finish(f64::from(z))
                });
            });
    }

    /// `y_t = Σ_k h_k z_{t−k}` over a ring of the last `slots` rows of `Z` (row t written first).
    fn stream_fir(&self, t: usize, slots: usize, out: &mut [f32], history: &mut [f32]) {
        let taps = self.form.taps(t);
        out.par_chunks_mut(CHUNK)
            .zip(history.par_chunks_mut(CHUNK * slots))
            .enumerate()
            .for_each_init(Scratch::new, |s, (ci, (o, hist))| {
                let len = o.len();
                let slot = t % slots;
                fill_even(
                    &self.key,
                    t,
                    ci * CHUNK,
                    &mut hist[slot * len..(slot + 1) * len],
                    &mut s.words,
                );
                let acc = &mut s.acc[..len];
                acc.fill(0.0);
                let hist = &*hist;
                accumulate(acc, &taps, |k| {
                    let r = (t - k) % slots;
                    &hist[r * len..(r + 1) * len]
                });
                for (o, &a) in o.iter_mut().zip(acc.iter()) {
                    *o = self.finish(a);
                }
            });
    }

    /// `y_t = (z_t − Σ_{j≥1} C[t, t−j] y_{t−j}) / C[t, t]` over a ring of the last `slots`
    /// outputs (stored in f32).
    fn stream_recursion(&self, t: usize, slots: usize, out: &mut [f32], history: &mut [f32]) {
        let (c0, neg) = self.form.recursion_row(t, slots);
        let run = |s: &mut Scratch, ci: usize, o: &mut [f32], hist: &mut [f32]| {
            let len = o.len();
            let z = &mut s.z[..len];
            fill_even(&self.key, t, ci * CHUNK, z, &mut s.words);
            let acc = &mut s.acc[..len];
            for (a, &zi) in acc.iter_mut().zip(z.iter()) {
                *a = f64::from(zi);
            }
            let past = &*hist;
            accumulate(acc, &neg, |j| {
                let r = (t - 1 - j) % slots;
                &past[r * len..(r + 1) * len]
            });
            for a in acc.iter_mut() {
                *a /= c0;
            }
            if slots > 0 {
                let w = t % slots;
                for (h, &a) in hist[w * len..(w + 1) * len].iter_mut().zip(acc.iter()) {
                    *h = a as f32;
                }
            }
            for (o, &a) in o.iter_mut().zip(acc.iter()) {
                *o = self.finish(a);
            }
        };
        if slots == 0 {
            out.par_chunks_mut(CHUNK)
                .enumerate()
                .for_each_init(Scratch::new, |s, (ci, o)| run(s, ci, o, &mut []));
        } else {
            out.par_chunks_mut(CHUNK)
                .zip(history.par_chunks_mut(CHUNK * slots))
                .enumerate()
                .for_each_init(Scratch::new, |s, (ci, (o, hist))| run(s, ci, o, hist));
        }
    }
}

/// One chunk of one BLT step: `y = z_t − Σ_i ω_i s_i` (f64, the shared tap order), then
/// `s_i ← θ_i s_i + y` stored in f32, and the output `finish(y)`. O(d·len).
#[allow(clippy::too_many_arguments)]
fn blt_step(
    g: &CorrelatedNoise,
    theta: &[f64],
    neg_omega: &[f64],
    t: usize,
    ci: usize,
    o: &mut [f32],
    hist: &mut [f32],
    s: &mut Scratch,
) {
    let len = o.len();
    let z = &mut s.z[..len];
    fill_even(&g.key, t, ci * CHUNK, z, &mut s.words);
    let acc = &mut s.acc[..len];
    for (a, &zi) in acc.iter_mut().zip(z.iter()) {
        *a = f64::from(zi);
    }
    let past = &*hist;
    accumulate(acc, neg_omega, |i| &past[i * len..(i + 1) * len]);
    for (i, &th) in theta.iter().enumerate() {
        for (h, &a) in hist[i * len..(i + 1) * len].iter_mut().zip(acc.iter()) {
            *h = (th * f64::from(*h) + a) as f32;
        }
    }
    for (o, &a) in o.iter_mut().zip(acc.iter()) {
        *o = g.finish(a);
    }
}
