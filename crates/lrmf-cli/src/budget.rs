//! Memory a command needs, estimated from its flags before anything is allocated, so that a
//! size the machine cannot hold is a one-line error naming the flag (exit 2), never an
//! allocation abort or a capacity-overflow panic.
//!
//! The estimates are upper bounds of the working set of each path (documented per function);
//! what the machine has is the smaller of `MemAvailable` (`/proc/meminfo`) and the address
//! space left under `ulimit -v` (`/proc/self/limits` minus `/proc/self/status`'s `VmSize`).
//! Where `/proc` is missing nothing is refused up front.

use crate::strategy::StrategyArgs;
use crate::usage;
use anyhow::Result;
use lrmf_factor::Method;

/// f64 vectors of length n alive at once on the structured paths (schedule, workload,
/// series and their FFT buffers, row norms, sensitivity sums), with margin.
const VECTORS_OF_N: u64 = 24;

/// Bytes the machine can still give this process (`u64::MAX` when unknown).
pub fn available_bytes() -> u64 {
    let mem = read_kib("/proc/meminfo", "MemAvailable:").map(|k| k.saturating_mul(1024));
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max address space"))?;
            let soft = line.split_whitespace().nth(3)?;
            soft.parse::<u64>().ok()
        });
    let used = read_kib("/proc/self/status", "VmSize:").map(|k| k.saturating_mul(1024));
    let space = match (limit, used) {
        (Some(l), Some(u)) => Some(l.saturating_sub(u)),
        (Some(l), None) => Some(l),
        _ => None,
    };
    [mem, space].into_iter().flatten().min().unwrap_or(u64::MAX)
}

fn read_kib(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Human bytes: `640 GB`, `1.2 MB`.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match b {
        b if b >= 1e12 => format!("{:.1} TB", b / 1e12),
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        _ => format!("{bytes} B"),
    }
}

/// Refuses an estimate over what is available (`None`: the size overflows 64 bits).
pub fn check(flag: &str, what: &str, need: Option<u64>) -> Result<()> {
    check_against(flag, what, need, available_bytes())
}

fn check_against(flag: &str, what: &str, need: Option<u64>, have: u64) -> Result<()> {
    match need {
        None => Err(usage(format!(
            "invalid {flag}: {what} would need more memory than 64-bit addresses can name"
        ))),
        Some(need) if need > have => Err(usage(format!(
            "invalid {flag}: {what} needs about {} of memory, more than the {} available here",
            human(need),
            human(have)
        ))),
        Some(_) => Ok(()),
    }
}

/// Working set of factorizing and evaluating the strategy flags: O(n) f64 vectors on the
/// structured paths; dense methods O(n²) (a few n×n f64 matrices).
pub fn strategy_bytes(s: &StrategyArgs) -> Option<u64> {
    let n = s.n.unwrap_or(1) as u64;
    let linear = n.checked_mul(8 * VECTORS_OF_N)?;
    // The dense methods within their size limit (beyond it they refuse before allocating).
    let dense = Some(s.method)
        .filter(Method::is_dense)
        .and_then(|m| m.size_limit())
        .is_some_and(|(max, _)| n <= max as u64);
    if dense {
        return linear.checked_add(n.checked_mul(n)?.checked_mul(8 * 4)?);
    }
    Some(linear)
}

/// Refuses strategy flags whose working set does not fit (names `--n`).
pub fn check_strategy(s: &StrategyArgs) -> Result<()> {
    let n = s.n.unwrap_or(1);
    check("--n", &format!("n = {n} steps"), strategy_bytes(s))
}

/// `lrmf noise`: the strategy's working set, plus the generator's history (rows × d f32; the
/// generator regenerates instead of streaming once that passes
/// [`lrmf_noise::AUTO_MEMORY_BUDGET`]) and four rows of d f32 (the step being written, its
/// Gaussians, the regeneration scratch).
pub fn check_noise(s: &StrategyArgs, dim: usize, state_rows: usize) -> Result<()> {
    let d = dim as u64;
    let history = (state_rows as u64)
        .checked_mul(d)
        .and_then(|v| v.checked_mul(4))
        .map(|b| b.min(lrmf_noise::AUTO_MEMORY_BUDGET as u64));
    let rows = d.checked_mul(4 * 4);
    let need = history
        .zip(rows)
        .and_then(|(h, r)| h.checked_add(r)?.checked_add(strategy_bytes(s)?));
    check(
        "--dim",
        &format!(
            "d = {dim} coordinates × {} rows of noise state",
            state_rows + 2
        ),
        need,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(need: Option<u64>, have: u64) -> Option<String> {
        check_against("--n", "n = 4", need, have)
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn refuses_what_does_not_fit_and_overflows() {
        assert_eq!(check(Some(10), 100), None);
        let e = check(Some(640_000_000_000), 8_000_000_000).unwrap();
        assert!(
            e.starts_with("invalid --n: n = 4 needs about 640.0 GB"),
            "{e}"
        );
        assert!(check(None, u64::MAX).unwrap().contains("64-bit"));
        assert!(available_bytes() > 0);
        assert_eq!(human(1_500_000), "1.5 MB");
    }
}
