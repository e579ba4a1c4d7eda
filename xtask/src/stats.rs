//! The statistics of the accuracy study, in one place so the report states exactly what it
//! computed: sample mean and standard deviation over seeds, and Student's t confidence
//! intervals of a mean (of paired differences: same seed, same bins, two methods).

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Arithmetic mean; `None` for no values.
pub fn mean(x: &[f64]) -> Option<f64> {
    (!x.is_empty()).then(|| x.iter().sum::<f64>() / x.len() as f64)
}

/// Sample standard deviation (divisor n − 1); `None` for fewer than two values.
pub fn std_dev(x: &[f64]) -> Option<f64> {
    let m = mean(x)?;
    (x.len() >= 2)
        .then(|| (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt())
}

/// A mean with its two-sided Student's t confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TInterval {
    /// Number of values.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation.
    pub sd: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

impl TInterval {
    /// Whether the interval lies entirely above 0 (`Some(true)`), entirely below (`Some(false)`),
    /// or contains 0 (`None`).
    pub fn sign(&self) -> Option<bool> {
        if self.low > 0.0 {
            Some(true)
        } else if self.high < 0.0 {
            Some(false)
        } else {
            None
        }
    }
}

/// The `level` (e.g. 0.95) confidence interval of the mean of `x`: mean ± t_{(1+level)/2, n−1} ·
/// sd/√n. Needs n ≥ 2; identical values give a zero-width interval.
pub fn t_interval(x: &[f64], level: f64) -> Option<TInterval> {
    let (m, sd) = (mean(x)?, std_dev(x)?);
    let n = x.len();
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
        .ok()?
        .inverse_cdf(0.5 + level / 2.0);
    let half = t * sd / (n as f64).sqrt();
    Some(TInterval {
        n,
        mean: m,
        sd,
        low: m - half,
        high: m + half,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(got: f64, want: f64) {
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn mean_std_and_t_interval_match_hand_computed_values() {
        // x = 1, 2, 3, 4: mean 2.5, sd = √(5/3) = 1.290994, se = 0.645497,
        // t_{0.975, 3} = 3.182446 → half-width 2.054260.
        let x = [1.0, 2.0, 3.0, 4.0];
        check(mean(&x).unwrap(), 2.5);
        check(std_dev(&x).unwrap(), 1.290994);
        let i = t_interval(&x, 0.95).unwrap();
        check(i.low, 0.445740);
        check(i.high, 4.554260);
        assert_eq!((i.n, i.sign()), (4, Some(true)));
        // Paired differences of two seeds: d = 0.01, 0.03 → mean 0.02, sd 0.0141421,
        // t_{0.975, 1} = 12.706205 → half-width 0.127062: the interval includes 0.
        let d = t_interval(&[0.01, 0.03], 0.95).unwrap();
        check(d.high - d.mean, 0.127062);
        assert_eq!(d.sign(), None);
        assert_eq!(
            t_interval(&[-3.0, -2.9, -3.1], 0.95).unwrap().sign(),
            Some(false)
        );
        assert_eq!(
            (mean(&[]), std_dev(&[1.0]), t_interval(&[1.0], 0.95)),
            (None, None, None)
        );
        let same = t_interval(&[0.5, 0.5, 0.5], 0.95).unwrap();
        assert_eq!((same.low, same.high), (0.5, 0.5));
    }
}
