//! Human-readable numbers: 6 significant digits (JSON output keeps full precision).

/// `v` with 6 significant digits, no exponent for ordinary magnitudes, trailing zeros trimmed:
/// `3.1892763185523307 → 3.18928`, `1e-5 → 1e-5`, `980 → 980`.
pub fn sig(v: f64) -> String {
    sig_n(v, 6)
}

/// `v` with `digits` significant digits (1 ≤ digits ≤ 17).
pub fn sig_n(v: f64, digits: usize) -> String {
    if !v.is_finite() || v == 0.0 {
        return format!("{v}");
    }
    let digits = digits.clamp(1, 17);
    let exp = v.abs().log10().floor() as i32;
    if !(-4..=9).contains(&exp) {
        let s = format!("{:.*e}", digits - 1, v);
        // 1.23000e-5 → 1.23e-5
        return match s.split_once('e') {
            Some((m, e)) => format!("{}e{e}", trim(m)),
            None => s,
        };
    }
    if exp >= digits as i32 {
        // Round the integer part itself: 123456789 → 123457000.
        let unit = 10f64.powi(exp - digits as i32 + 1);
        return format!("{:.0}", (v / unit).round() * unit);
    }
    let decimals = (digits as i32 - 1 - exp).max(0) as usize;
    trim(&format!("{v:.decimals$}"))
}

fn trim(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Seconds as `12.3 s`, `4 min 05 s` or `2 h 03 min`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "?".into();
    }
    let s = secs.max(0.0);
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {:02} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: f64, want: &str) {
        assert_eq!(sig(v), want, "{v}");
        let digits = want
            .split('e')
            .next()
            .unwrap()
            .chars()
            .filter(|c| c.is_ascii_digit())
            .collect::<String>();
        let significant = digits.trim_start_matches('0').trim_end_matches('0');
        assert!(significant.len() <= 6, "{want}");
    }

    #[test]
    fn six_significant_digits() {
        check(3.1892763185523307, "3.18928");
        check(0.5447457898187997, "0.544746");
        check(980.0, "980");
        check(1e-5, "1e-5");
        check(1.264438e-7, "1.26444e-7");
        check(-2.5, "-2.5");
        check(123456789.0, "123457000");
        check(2.0, "2");
        assert_eq!(sig(f64::INFINITY), "inf");
        assert_eq!(duration(75.0), "1 min 15 s");
        assert_eq!(duration(7500.0), "2 h 05 min");
    }
}
