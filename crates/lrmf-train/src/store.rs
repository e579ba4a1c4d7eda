//! The run folder's file IO in one place, at one durability and one permission level.
//!
//! A run folder holds secrets while a run is in progress (the checkpoint carries the noise key
//! and the sampler seed) and numbers computed from the private data without noise
//! (`metrics.jsonl`), so everything here is private to the user who runs the training:
//! folders are created `0700`, files `0600` (on Unix; elsewhere the platform's defaults apply).
//! Every whole-file write is atomic and durable: a temporary file in the same folder (already
//! `0600`, so a crash never leaves a readable copy), `fsync`, rename over the target, `fsync`
//! of the folder.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::Result;

/// Permission bits of every file in a run folder.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits of a run folder.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) and makes `dir` itself private (`0700`).
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    set_mode(dir, DIR_MODE)
}

/// Opens (creating if needed) a file for writing without truncation, private (`0600`).
pub fn open_private(path: &Path) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).write(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    let f = opts.open(path)?;
    // A file created earlier with wider permissions (older lrmf versions) is narrowed too.
    set_mode(path, FILE_MODE)?;
    Ok(f)
}

/// Writes `bytes` to `path` atomically and durably (temporary file `0600`, fsync, rename,
/// fsync of the folder).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!("{name}.tmp"));
    {
        let mut f = open_private(&tmp)?;
        f.set_len(0)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Removes a file durably; a missing file is not an error.
pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn check(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let got = fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, mode, "{}", path.display());
    }

    #[cfg(unix)]
    #[test]
    fn folders_and_files_are_private_and_writes_atomic() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a").join("run");
        create_private_dir(&dir).unwrap();
        check(&dir, DIR_MODE);
        let f = dir.join("x.bin");
        atomic_write(&f, b"first").unwrap();
        atomic_write(&f, b"2nd").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"2nd");
        check(&f, FILE_MODE);
        assert!(!dir.join("x.bin.tmp").exists());
        // A file left world-readable is narrowed when opened.
        let g = dir.join("old.txt");
        fs::write(&g, b"x").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&g, fs::Permissions::from_mode(0o644)).unwrap();
        }
        open_private(&g).unwrap();
        check(&g, FILE_MODE);
        remove(&f).unwrap();
        remove(&f).unwrap();
        assert!(!f.exists());
    }
}
