//! Regeneration: the noise of any (step, coordinate slice) recomputed from the key alone, with
//! no history — O(d) memory, and what lets data-parallel workers share one stream.

use super::kernel::{GROUP, Scratch, accumulate};
use super::{CHUNK, CorrelatedNoise};
use crate::NoiseError;
use crate::gaussian::{base_noise, fill_even};
use rayon::prelude::*;

impl CorrelatedNoise {
    /// The noise of step `step` for coordinates `start .. start + out.len()`, regenerated from the
    /// key alone — any worker can call this for any (step, slice), at any time, without the
    /// generator's history. O(taps·len) time, O(len) memory.
    ///
    /// For every form except the BSR recursion this is bit-identical to what
    /// [`NoiseGenerator::fill_next`](super::NoiseGenerator::fill_next) produces for that step; for the recursion it is the exact
    /// expansion `Σ_k h_k z_{t−k}` (h = `1/c`), equal to the streamed value up to f32 rounding.
    pub fn regenerate(&self, step: usize, start: usize, out: &mut [f32]) -> Result<(), NoiseError> {
        if step >= self.n {
            return Err(NoiseError::PastEnd { step, n: self.n });
        }
        if start
            .checked_add(out.len())
            .is_none_or(|end| end > self.dim)
        {
            return Err(NoiseError::invalid(
                "out",
                format!(
                    "coordinates {start}..{} are outside 0..{} (dim)",
                    start.saturating_add(out.len()),
                    self.dim
                ),
            ));
        }
        let taps = self.form.taps(step);
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each_init(Scratch::new, |s, (ci, o)| {
                self.regen_chunk(&taps, step, start + ci * CHUNK, o, s);
            });
        Ok(())
    }

    /// `out = finish(Σ_k taps[k]·z_{t−k}[base..])`, rows regenerated.
    fn regen_chunk(&self, taps: &[f64], t: usize, base: usize, out: &mut [f32], s: &mut Scratch) {
        let len = out.len();
        let acc = &mut s.acc[..len];
        acc.fill(0.0);
        // Regenerate the rows of one group of taps, then accumulate them in the shared order.
        for g in (0..taps.len()).step_by(GROUP) {
            let h = &taps[g..(g + GROUP).min(taps.len())];
            for k in 0..h.len() {
                let z = &mut s.z[k * len..(k + 1) * len];
                if base.is_multiple_of(2) {
                    fill_even(&self.key, t - g - k, base, z, &mut s.words);
                } else {
                    base_noise(&self.key, t - g - k, base, z);
                }
            }
            let z = &s.z;
            accumulate(acc, h, |k| &z[k * len..(k + 1) * len]);
        }
        for (o, &a) in out.iter_mut().zip(acc.iter()) {
            *o = self.finish(a);
        }
    }
}
