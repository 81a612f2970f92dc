//! Files in directories people and precis both write: listing them one way, and replacing one
//! whole, durably.
//!
//! What precis writes for itself or for a watching bidder to read (budget reservations, the
//! profile snapshot, audience packages it builds) is written beside its target as a hidden
//! temporary file, fsynced, renamed over it and the directory fsynced ([`replace`]): a reader sees
//! the old file or the new one, never half of one, and a crash leaves at worst a stray temporary
//! file, which [`list`] never lists (nor an editor's hidden swap files). What precis cannot read
//! back is set aside ([`set_aside`]), never deleted. Never call this on the bid path: it waits
//! for the disk.

use std::fs::File;
use std::io::{BufWriter, Write};
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
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = temporary(path);
    let mut out = BufWriter::with_capacity(1 << 16, File::create(&temporary)?);
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
    drop(out);
    std::fs::rename(&temporary, path)?;
    // The rename itself is durable once the directory is synced.
    File::open(parent.unwrap_or(Path::new(".")))?.sync_all()?;
    Ok(written)
}

/// Moves a file precis cannot read (a damaged snapshot) to `NAME.bad` beside it, where the next
/// start does not meet it and an operator finds it: what became of it, for the error line.
pub fn set_aside(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let aside = path.with_file_name(format!("{name}.bad"));
    match std::fs::rename(path, &aside) {
        Ok(()) => format!("the file was moved to {}", aside.display()),
        Err(e) => format!("and cannot move it aside: {e}"),
    }
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
