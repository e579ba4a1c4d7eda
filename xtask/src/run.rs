//! The run folder `results/<timestamp>/`: its metadata (command, seed, versions, machine),
//! atomic CSV writes with done-markers, and finding the latest unfinished run to resume.

use crate::table::Table;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// File name of the run's metadata.
pub const META_FILE: &str = "run.json";

/// What the report states about how and where a run was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// The command line, as typed (`cargo xtask repro …`).
    pub command: String,
    /// `quick` or `full`.
    pub mode: String,
    /// The experiments selected (`errors`, `bands`, `memory`, `accuracy`).
    pub parts: Vec<String>,
    /// Seed of the training runs (fixed seeds: reproducible, not a private release).
    pub seed: u64,
    /// UTC start time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub started: String,
    /// `git rev-parse HEAD` (with `-dirty` when the tree had changes), or `unknown`.
    pub git_commit: String,
    /// `rustc --version`, or `unknown`.
    pub rustc: String,
    /// Version of the xtask crate (the workspace version).
    pub lrmf_version: String,
    /// Logical CPUs available.
    pub nproc: usize,
    /// Total memory from /proc/meminfo, in GiB (0 when unknown).
    pub memory_gib: f64,
    /// CPU model name from /proc/cpuinfo, or `unknown`.
    pub cpu: String,
    /// UTC times this run was resumed.
    #[serde(default)]
    pub resumed: Vec<String>,
}

impl Meta {
    /// Metadata of a new run, probing git, rustc and the machine now.
    pub fn probe(command: String, mode: &str, parts: &[String], seed: u64) -> Self {
        let started = iso_utc(SystemTime::now());
        Meta {
            command,
            mode: mode.to_string(),
            parts: parts.to_vec(),
            seed,
            started,
            git_commit: git_commit(),
            rustc: output_line("rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
            lrmf_version: env!("CARGO_PKG_VERSION").to_string(),
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_gib: mem_total_gib().unwrap_or(0.0),
            cpu: cpu_model().unwrap_or_else(|| "unknown".into()),
            resumed: Vec::new(),
        }
    }
}

fn output_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn git_commit() -> String {
    let root = workspace_root();
    let root = root.to_string_lossy();
    match output_line("git", &["-C", &root, "rev-parse", "HEAD"]) {
        Some(head) => {
            let dirty = output_line("git", &["-C", &root, "status", "--porcelain"]).is_some();
            if dirty { format!("{head}-dirty") } else { head }
        }
        None => "unknown".into(),
    }
}

fn mem_total_gib() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / (1024.0 * 1024.0))
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().replace(',', ";"))
}

/// The workspace root: the checkout `cargo xtask` runs from (found at run time, see
/// [`lrmf_data::setup::run_time_workspace_root`]), else the parent of `xtask/` fixed at compile
/// time (a binary started directly). Results and `docs/` are written under it, so it must be
/// the checkout being run, not the one that last compiled a shared target directory.
pub fn workspace_root() -> PathBuf {
    lrmf_data::setup::run_time_workspace_root().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives inside the workspace")
            .to_path_buf()
    })
}

/// Civil date (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn utc_parts(t: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    (y, m, d, s / 3600, (s / 60) % 60, s % 60)
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso_utc(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `YYYYMMDD-HHMMSS`, the run folder name (sorts by time).
pub fn stamp_utc(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(t);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// Writes `bytes` to `path` atomically and durably ([`lrmf_io::atomic_write`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    lrmf_io::atomic_write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// One run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// `results/<stamp>`.
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `root/<stamp>` (a suffix `-2`, `-3`… when it exists) and writes `meta` into it.
    pub fn create(root: &Path, meta: &Meta) -> Result<Self> {
        let stamp = stamp_utc(SystemTime::now());
        let mut path = root.join(&stamp);
        let mut i = 2;
        while path.exists() {
            path = root.join(format!("{stamp}-{i}"));
            i += 1;
        }
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let run = RunDir { path };
        run.write_meta(meta)?;
        Ok(run)
    }

    /// Opens an existing run folder (it must hold `run.json`).
    pub fn open(path: &Path) -> Result<(Self, Meta)> {
        let run = RunDir {
            path: path.to_path_buf(),
        };
        let meta = run.meta()?;
        Ok((run, meta))
    }

    /// Reads `run.json`.
    pub fn meta(&self) -> Result<Meta> {
        let p = self.path.join(META_FILE);
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("invalid {}", p.display()))
    }

    /// Writes `run.json` atomically.
    pub fn write_meta(&self, meta: &Meta) -> Result<()> {
        write_atomic(
            &self.path.join(META_FILE),
            serde_json::to_string_pretty(meta)?.as_bytes(),
        )
    }

    /// Path of a file in the run folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// True when experiment `name` wrote its done-marker.
    pub fn is_done(&self, name: &str) -> bool {
        self.file(&format!("{name}.done")).is_file()
    }

    /// Seconds experiment `name` took (from its done-marker).
    pub fn seconds(&self, name: &str) -> Option<f64> {
        std::fs::read_to_string(self.file(&format!("{name}.done")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Writes `<name>.csv` atomically, then the done-marker `<name>.done` holding `seconds`.
    pub fn finish(&self, name: &str, table: &Table, seconds: f64) -> Result<()> {
        write_atomic(
            &self.file(&format!("{name}.csv")),
            table.to_csv().as_bytes(),
        )?;
        write_atomic(
            &self.file(&format!("{name}.done")),
            format!("{seconds}\n").as_bytes(),
        )
    }

    /// The table of a finished experiment, or `None` when it has not finished.
    pub fn table(&self, name: &str) -> Result<Option<Table>> {
        if !self.is_done(name) {
            return Ok(None);
        }
        Table::read(&self.file(&format!("{name}.csv"))).map(Some)
    }
}

/// The most recent run under `root` with this mode and these parts that has not finished every
/// part (folder names sort by time).
pub fn latest_unfinished(root: &Path, mode: &str, parts: &[String]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(META_FILE).is_file())
        .collect();
    dirs.sort();
    dirs.into_iter().rev().find(|p| {
        let Ok((run, meta)) = RunDir::open(p) else {
            return false;
        };
        meta.mode == mode && meta.parts == parts && !parts.iter().all(|x| run.is_done(x))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn check(secs: u64, iso: &str) {
        assert_eq!(iso_utc(UNIX_EPOCH + Duration::from_secs(secs)), iso);
    }

    #[test]
    fn utc_formatting_matches_known_dates() {
        check(0, "1970-01-01T00:00:00Z");
        check(951_782_400, "2000-02-29T00:00:00Z");
        check(1_709_210_096, "2024-02-29T12:34:56Z");
        check(4_102_444_799, "2099-12-31T23:59:59Z");
        assert_eq!(
            stamp_utc(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "20240229-123456"
        );
    }

    #[test]
    fn finish_marks_done_and_resume_finds_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let parts = vec!["errors".to_string(), "bands".to_string()];
        let meta = Meta::probe("cargo xtask repro".into(), "quick", &parts, 1);
        let run = RunDir::create(dir.path(), &meta).unwrap();
        assert!(!run.is_done("errors"));
        assert_eq!(
            latest_unfinished(dir.path(), "quick", &parts),
            Some(run.path.clone())
        );
        assert_eq!(latest_unfinished(dir.path(), "full", &parts), None);
        let mut t = Table::new(&["x"]);
        t.push(vec!["1.5".into()]).unwrap();
        run.finish("errors", &t, 2.5).unwrap();
        run.finish("bands", &t, 0.5).unwrap();
        assert!(run.is_done("errors"));
        assert_eq!(run.seconds("errors"), Some(2.5));
        assert_eq!(run.table("bands").unwrap(), Some(t));
        assert_eq!(latest_unfinished(dir.path(), "quick", &parts), None);
        assert_eq!(RunDir::open(&run.path).unwrap().1, meta);
    }
}
