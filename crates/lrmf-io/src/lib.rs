//! Atomic, durable file writes at one durability level, private folders, and hex — the small
//! file utilities every lrmf crate that touches files shares (data set-up, the trainer's run
//! folder, the CLI's strategy and noise files, the reproduction suite's tables).
//!
//! Why a crate of its own: the math crates must not touch files, and the crates that do
//! (`lrmf-data`, `lrmf-train`, `lrmf-cli`, `xtask`) have no lower crate in common that owns
//! files; before it, each wrote its own atomic write, at five different durability levels.
//!
//! Every whole-file write here is: a temporary file beside the target (`.<name>.tmp-<pid>`, so a
//! crash never leaves a half-written target and two processes never share a temporary), the
//! bytes, `fsync` of the file, `rename` over the target, `fsync` of the folder (so the rename
//! itself survives a power loss). The `private` variants create the temporary file `0600` (on
//! Unix) before a byte is written, for files that hold secrets (noise keys, sampler seeds) or
//! numbers computed from private data without noise.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("table.csv");
//! lrmf_io::atomic_write(&path, b"n,max_se\n16,1.5\n")?;
//! assert_eq!(std::fs::read(&path)?, b"n,max_se\n16,1.5\n");
//! assert_eq!(lrmf_io::to_hex(&[0xde, 0xad]), "dead");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Permission bits of a private file.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits of a private folder.
pub const DIR_MODE: u32 = 0o700;

/// A file written through a temporary beside its target and renamed over it by
/// [`AtomicFile::commit`] (fsync of the file, rename, fsync of the folder). Dropped without a
/// commit, it removes the temporary and leaves the target as it was.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path` (its folder is created if missing), with the platform's default
    /// permissions.
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::open(path, false)
    }

    /// Starts writing `path` as a private file (`0600` from the first byte on Unix).
    pub fn create_private(path: &Path) -> io::Result<Self> {
        Self::open(path, true)
    }

    fn open(path: &Path, private: bool) -> io::Result<Self> {
        let dir = parent(path);
        fs::create_dir_all(dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let mut opts = OpenOptions::new();
        opts.create(true).write(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(FILE_MODE);
        }
        let file = opts.open(&tmp)?;
        if private {
            // A temporary left by an older run with wider permissions is narrowed too.
            set_mode(&tmp, FILE_MODE)?;
        }
        Ok(Self {
            target: path.to_path_buf(),
            tmp,
            out: Some(BufWriter::new(file)),
        })
    }

    /// Flushes, fsyncs the file, renames it over the target and fsyncs the folder.
    pub fn commit(mut self) -> io::Result<()> {
        let out = self
            .out
            .take()
            .expect("an uncommitted AtomicFile holds its writer");
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.target)?;
        sync_dir(parent(&self.target))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

impl AtomicFile {
    fn writer(&mut self) -> &mut BufWriter<File> {
        self.out
            .as_mut()
            .expect("an uncommitted AtomicFile holds its writer")
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically and durably ([`AtomicFile`]), default permissions.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

/// [`atomic_write`] of a private file (`0600`).
pub fn atomic_write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create_private(path)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Creates `dir` (and missing parents) and makes `dir` itself private (`0700`).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    set_mode(dir, DIR_MODE)
}

/// Opens (creating if needed) a file for writing without truncation, private (`0600`; a file
/// created earlier with wider permissions is narrowed).
pub fn open_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).write(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    let f = opts.open(path)?;
    set_mode(path, FILE_MODE)?;
    Ok(f)
}

/// Removes a file durably (fsync of its folder); a missing file is not an error.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Fsyncs a folder, so that renames and removals in it survive a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Lower-case hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a lower-case or upper-case hex string (`None` when malformed).
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The folder of `path` (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permission bits of `path` (0 off Unix).
    fn check(path: &Path) -> u32 {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(path).unwrap().permissions().mode() & 0o777
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            0
        }
    }

    #[test]
    fn writes_are_atomic_private_when_asked_and_leave_no_temporary() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a").join("run");
        create_private_dir(&dir).unwrap();
        let f = dir.join("x.bin");
        atomic_write_private(&f, b"first").unwrap();
        atomic_write_private(&f, b"2nd").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"2nd");
        if cfg!(unix) {
            assert_eq!(check(&dir), DIR_MODE);
            assert_eq!(check(&f), FILE_MODE);
        }
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["x.bin"]);
        // A file left world-readable is narrowed when opened privately.
        let g = dir.join("old.txt");
        atomic_write(&g, b"x").unwrap();
        open_private(&g).unwrap();
        if cfg!(unix) {
            assert_eq!(check(&g), FILE_MODE);
        }
        remove(&f).unwrap();
        remove(&f).unwrap();
        assert!(!f.exists());
    }

    #[test]
    fn an_uncommitted_file_leaves_the_target_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.npy");
        atomic_write(&f, b"old").unwrap();
        {
            let mut w = AtomicFile::create(&f).unwrap();
            w.write_all(b"new, but never committed").unwrap();
        }
        assert_eq!(fs::read(&f).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 254, 255])).unwrap(),
            [0, 1, 254, 255]
        );
        assert_eq!(from_hex("abc"), None);
    }
}
