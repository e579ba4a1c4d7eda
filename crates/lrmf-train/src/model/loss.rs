//! Softmax cross-entropy on logits, summed over the batch: loss_i = log Σ_j e^{z_ij} − z_{i,y_i},
//! with its gradient softmax(z_i) − e_{y_i} and the count of correct argmax predictions.

use crate::{Result, TrainError};

/// Σ_i loss_i, the number of examples with argmax_j z_ij = y_i (first maximum on ties), and
/// dL/dz (N × classes). Labels must lie in 0..classes.
///
/// Complexity: O(N·classes).
pub(crate) fn cross_entropy(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
) -> Result<(f64, usize, Vec<f32>)> {
    if logits.len() != labels.len() * classes {
        return Err(TrainError::Shape(format!(
            "{} logits for {} labels and {classes} classes",
            logits.len(),
            labels.len()
        )));
    }
    let mut loss = 0.0f64;
    let mut correct = 0;
    let mut grad = vec![0.0f32; logits.len()];
    for (i, &y) in labels.iter().enumerate() {
        let y = y as usize;
        if y >= classes {
            return Err(TrainError::Shape(format!(
                "label {y} of example {i} is outside 0..{classes}"
            )));
        }
        let z = &logits[i * classes..(i + 1) * classes];
        let (mut arg, mut max) = (0, z[0]);
        for (j, &v) in z.iter().enumerate() {
            if v > max {
                max = v;
                arg = j;
            }
        }
        if !max.is_finite() {
            return Err(TrainError::Diverged(format!(
                "non-finite logits for example {i}"
            )));
        }
        correct += usize::from(arg == y);
        let s: f64 = z.iter().map(|&v| ((v - max) as f64).exp()).sum();
        loss += s.ln() + (max - z[y]) as f64;
        for (j, g) in grad[i * classes..(i + 1) * classes].iter_mut().enumerate() {
            *g = (((z[j] - max) as f64).exp() / s) as f32 - f32::from(u8::from(j == y));
        }
    }
    Ok((loss, correct, grad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{a} vs {b}");
    }

    #[test]
    fn matches_the_formula_and_finite_differences() {
        let z = [1.0f32, -0.5, 2.0, 0.3, 0.3, -1.0];
        let (loss, correct, grad) = cross_entropy(&z, &[2, 1], 3).unwrap();
        let lse = |v: &[f32]| v.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
        check(loss, lse(&z[..3]) - 2.0 + lse(&z[3..]) - 0.3, 1e-6);
        assert_eq!(correct, 1); // example 1: tie at 0.3, the first maximum (class 0) wins
        for j in 0..6 {
            let h = 1e-3f32;
            let (mut p, mut m) = (z, z);
            p[j] += h;
            m[j] -= h;
            let fd = (cross_entropy(&p, &[2, 1], 3).unwrap().0
                - cross_entropy(&m, &[2, 1], 3).unwrap().0)
                / (2.0 * h as f64);
            check(grad[j] as f64, fd, 1e-3);
        }
        assert!(cross_entropy(&z, &[3, 0], 3).is_err());
        assert!(cross_entropy(&z[..5], &[0, 0], 3).is_err());
    }
}
