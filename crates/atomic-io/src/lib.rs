//! Crash-safe writes for everything meta-bert puts on disk.
//!
//! A file or directory written through this crate is either complete or absent after a crash:
//! the content goes to a temporary sibling first, is flushed to disk, and is then renamed over
//! the destination (a rename within one directory is atomic on POSIX file systems). Every crate
//! of the workspace writes results, metadata and checkpoints through here, so there is one place
//! that gets this right.
//!
//! # Example
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("results.json");
//! atomic_io::write_file(&path, b"{\"accuracy\": 0.9}").unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"{\"accuracy\": 0.9}");
//!
//! let checkpoint = dir.path().join("ckpt");
//! atomic_io::write_dir(&checkpoint, |staging| {
//!     std::fs::write(staging.join("config.json"), b"{}")
//! })
//! .unwrap();
//! assert!(checkpoint.join("config.json").is_file());
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A write that did not happen; the destination is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    /// The destination has no parent directory or no file name.
    #[error("cannot write to `{path}`: not a path to a file or directory")]
    InvalidDestination {
        /// The destination as given.
        path: PathBuf,
    },
    /// An I/O operation failed.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done, e.g. "create" or "rename into place".
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The caller's closure failed while filling a staging directory.
    #[error("cannot fill `{path}`: {source}")]
    Fill {
        /// The staging directory.
        path: PathBuf,
        /// The closure's error.
        #[source]
        source: io::Error,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AtomicWriteError {
    let path = path.to_path_buf();
    move |source| AtomicWriteError::Io {
        action,
        path,
        source,
    }
}

/// A sibling of `destination` that no other writer uses: same directory (so the final rename
/// stays on one file system), hidden, and unique to this process and call.
fn staging_path(destination: &Path) -> Result<PathBuf, AtomicWriteError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let invalid = || AtomicWriteError::InvalidDestination {
        path: destination.to_path_buf(),
    };
    let name = destination.file_name().ok_or_else(invalid)?;
    let parent = destination.parent().ok_or_else(invalid)?;
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(parent.join(format!(
        ".{}.tmp-{}-{unique}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Flushes a directory entry so that a rename inside it survives power loss.
fn sync_dir(dir: &Path) -> Result<(), AtomicWriteError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error("flush directory", dir))
}

/// Writes `contents` to `path` atomically: readers see the old file or the new one, never a mix.
pub fn write_file(path: &Path, contents: &[u8]) -> Result<(), AtomicWriteError> {
    let staging = staging_path(path)?;
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)
            .map_err(io_error("create", &staging))?;
        file.write_all(contents)
            .map_err(io_error("write", &staging))?;
        file.sync_all().map_err(io_error("flush", &staging))?;
        fs::rename(&staging, path).map_err(io_error("rename into place", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&staging);
        return result;
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Builds a directory atomically: `fill` writes into an empty staging directory, which then
/// replaces `destination` in one rename. If `fill` fails or the process dies, `destination` is
/// untouched and the staging directory is removed (or, after a crash, left as a hidden
/// `.NAME.tmp-*` sibling that no reader mistakes for a result).
pub fn write_dir(
    destination: &Path,
    fill: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<(), AtomicWriteError> {
    let staging = staging_path(destination)?;
    fs::create_dir(&staging).map_err(io_error("create", &staging))?;
    let result = (|| {
        fill(&staging).map_err(|source| AtomicWriteError::Fill {
            path: staging.clone(),
            source,
        })?;
        for entry in fs::read_dir(&staging).map_err(io_error("list", &staging))? {
            let entry = entry.map_err(io_error("list", &staging))?;
            if entry
                .file_type()
                .map(|kind| kind.is_file())
                .unwrap_or(false)
            {
                File::open(entry.path())
                    .and_then(|file| file.sync_all())
                    .map_err(io_error("flush", &entry.path()))?;
            }
        }
        sync_dir(&staging)?;
        if destination.exists() {
            // A rename cannot replace a non-empty directory: move the old one aside first, so
            // that a crash between the two renames leaves the old copy under a hidden name.
            let retired = staging_path(destination)?;
            fs::rename(destination, &retired).map_err(io_error("move aside", destination))?;
            fs::rename(&staging, destination)
                .map_err(io_error("rename into place", destination))?;
            fs::remove_dir_all(&retired).map_err(io_error("remove", &retired))
        } else {
            fs::rename(&staging, destination).map_err(io_error("rename into place", destination))
        }
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
        return result;
    }
    sync_dir(destination.parent().unwrap_or(Path::new(".")))
}

/// Appends one line to a log-like file (e.g. `metrics.jsonl`) and flushes it, so that after a
/// crash at most the last line is torn; readers skip a torn last line.
pub fn append_line(path: &Path, line: &str) -> Result<(), AtomicWriteError> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_error("open for appending", path))?;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    file.write_all(&bytes)
        .map_err(io_error("append to", path))?;
    file.sync_data().map_err(io_error("flush", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_an_existing_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_file(&path, b"old").unwrap();
        write_file(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no staging file left"
        );
    }

    #[test]
    fn failed_fill_leaves_the_old_directory_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ckpt");
        write_dir(&target, |d| fs::write(d.join("weights"), b"good")).unwrap();
        let err = write_dir(&target, |d| {
            fs::write(d.join("weights"), b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(fs::read(target.join("weights")).unwrap(), b"good");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "staging removed"
        );
    }

    #[test]
    fn replacing_a_directory_leaves_only_the_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ckpt");
        write_dir(&target, |d| fs::write(d.join("old-only"), b"1")).unwrap();
        write_dir(&target, |d| fs::write(d.join("new-only"), b"2")).unwrap();
        assert!(!target.join("old-only").exists());
        assert!(target.join("new-only").is_file());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn writing_into_a_missing_directory_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("results.json");
        let err = write_file(&path, b"x").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn appended_lines_accumulate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        append_line(&path, "{\"step\":1}").unwrap();
        append_line(&path, "{\"step\":2}").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\"step\":1}\n{\"step\":2}\n"
        );
    }
}
