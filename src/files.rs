//! Files in directories people and precis both write: listing them one way, and replacing one
//! whole, durably.
//!
//! What precis writes for itself or for a watching bidder to read (budget reservations, the
//! profile snapshot, audience packages it builds) is written beside its target as a hidden
//! temporary file, fsynced, renamed over it and the directory fsynced ([`replace`]): a reader sees
//! the old file or the new one, never half of one, and a crash leaves at worst a stray temporary
//! file, which [`list`] never lists (nor an editor's hidden swap files). Keys precis makes for
//! itself are made the same way, once, readable by their owner only ([`create_private`]). Never
//! call these on the bid path: they wait for the disk.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The regular files of `dir` whose name ends with one of `endings` (`".toml"`), sorted by path
/// (so that whatever depends on their order, such as which of two files claiming one id wins, is
/// decided the same way every time); hidden files are never listed.
pub fn list(dir: &Path, endings: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.starts_with('.') && endings.iter().any(|e| name.ends_with(e)) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Writes `path` anew with `write`, which gets a buffered writer on a temporary file beside it.
/// When `write` fails, the target is left as it was.
pub fn replace<T, E: From<std::io::Error>>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T, E>,
) -> Result<T, E> {
    let (temporary, written) = write_beside(path, &OpenOptions::new(), write)?;
    std::fs::rename(&temporary, path)?;
    sync_parent(path)?;
    Ok(written)
}

/// Makes `path` holding `bytes`, readable and writable by its owner only (mode 0600), whole or
/// not at all, and never over a file already there: the temporary file is linked to `path`, which
/// fails with [`std::io::ErrorKind::AlreadyExists`] when another writer made it first.
pub fn create_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut private = OpenOptions::new();
    private.mode(0o600);
    let (temporary, ()) = write_beside(path, &private, |out| out.write_all(bytes))?;
    let linked = std::fs::hard_link(&temporary, path);
    std::fs::remove_file(&temporary)?;
    linked?;
    sync_parent(path)
}

/// A temporary file beside `path` (its directory made first), opened anew with `options` and
/// written with `write`, flushed and fsynced: its path and what `write` gave. When `write` fails
/// the temporary file is removed.
fn write_beside<T, E: From<std::io::Error>>(
    path: &Path,
    options: &OpenOptions,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T, E>,
) -> Result<(PathBuf, T), E> {
    if let Some(parent) = parent(path) {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = temporary(path);
    let file = options
        .clone()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let written = match write(&mut out) {
        Ok(written) => written,
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(&temporary);
            return Err(e);
        }
    };
    out.flush()?;
    out.get_ref().sync_all()?;
    Ok((temporary, written))
}

/// Makes what was renamed or linked into `path`'s directory durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    File::open(parent(path).unwrap_or(Path::new(".")))?.sync_all()
}

fn parent(path: &Path) -> Option<&Path> {
    path.parent().filter(|p| !p.as_os_str().is_empty())
}

/// `.NAME.tmp` beside `path`: hidden, so directory watchers and loaders that skip dot files
/// (campaigns, packages) never take it for the real thing.
fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub").join("holds.json");
        replace(&path, |out| out.write_all(b"old")).expect("first");
        replace(&path, |out| out.write_all(b"new")).expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["holds.json"]);
    }

    #[test]
    fn a_private_file_is_made_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state").join("events.secret");
        create_private(&path, b"first").expect("made");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = create_private(&path, b"second").expect_err("already there");
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["events.secret"], "no temporary file left");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("package.txt");
        replace(&path, |out| out.write_all(b"good")).expect("first");
        let failed: std::io::Result<()> = replace(&path, |out| {
            out.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"good");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }
}
