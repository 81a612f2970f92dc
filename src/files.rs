//! Files in directories people and precis both write: listing them one way, telling whether one
//! changed ([`Stamp`]) or leads out of its directory ([`outside`]), reading one within a size
//! limit ([`read_at_most`]), and replacing one whole, durably.
//!
//! What precis writes for itself or for a watching bidder to read (budget reservations, the
//! profile snapshot, audience packages it builds) is written beside its target as a hidden
//! temporary file, fsynced, renamed over it and the directory fsynced ([`replace`]): a reader sees
//! the old file or the new one, never half of one, and a crash leaves at worst a stray temporary
//! file, which [`list`] never lists (nor an editor's hidden swap files). Keys precis makes for
//! itself are made the same way, once, readable by their owner only ([`create_private`]). What
//! precis cannot read back is set aside ([`set_aside`]), never deleted. Never call these on the bid
//! path: they wait for the disk.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What says whether a file changed without reading it: its length, its modification and
/// status-change times and which inode it is. Any write changes the times (and a file replaced by
/// a rename is another inode), so the same stamp means the same contents, as long as the file was
/// not written within the filesystem's clock tick of being read (see [`Stamp::settled_before`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    /// When its contents last changed: `None` where the filesystem does not say.
    pub modified: Option<SystemTime>,
    /// Status change time (seconds, nanoseconds): moves on every write, rename and `touch`, and
    /// unlike the modification time, no tool can set it back.
    changed: (i64, i64),
    inode: (u64, u64),
}

impl Stamp {
    pub fn of(metadata: &Metadata) -> Stamp {
        Stamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
            inode: (metadata.dev(), metadata.ino()),
        }
    }

    /// How long ago, as of `now`, the contents last changed: `None` when that is unknown or in
    /// the future (a clock set back, a file copied with a date to come).
    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        now.duration_since(self.modified?).ok()
    }

    /// Whether the file was last written at least `tick` before `read`: a file written in the
    /// same clock tick as it was read may change again without its stamp changing, so what was
    /// read then must be read again rather than trusted.
    pub fn settled_before(&self, read: SystemTime, tick: Duration) -> bool {
        self.modified
            .and_then(|m| read.duration_since(m).ok())
            .is_some_and(|age| age >= tick)
    }
}

/// What [`read_at_most`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Bounded {
    /// The whole file.
    Whole(Vec<u8>),
    /// More than the limit: at least this many bytes (its size, when it said so).
    TooLarge(u64),
}

/// Reads `path` whole when it holds at most `limit` bytes, never more than `limit` + 1 of them:
/// a file over the limit is refused by its size before anything is read, and one that grows (or
/// says it is smaller than it is, as some special files do) is cut short at `limit` + 1.
pub fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Bounded> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    if size > limit {
        return Ok(Bounded::TooLarge(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    match bytes.len() as u64 {
        read if read > limit => Ok(Bounded::TooLarge(read)),
        _ => Ok(Bounded::Whole(bytes)),
    }
}

/// Where `path`, a symbolic link listed in `dir`, leads when that is outside `dir` (or cannot be
/// told); `None` for a plain file, or a link to a file inside `dir`.
pub fn outside(dir: &Path, path: &Path) -> Option<PathBuf> {
    let link = std::fs::symlink_metadata(path).ok()?;
    if !link.file_type().is_symlink() {
        return None;
    }
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    match std::fs::canonicalize(dir) {
        Ok(dir) if target.starts_with(&dir) => None,
        _ => Some(target),
    }
}

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
    // By bytes: the same order as by path for the files of one directory, without taking each
    // path apart into components at every comparison (a directory of 10,000 files is sorted at
    // every reload).
    files.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
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
    fn reads_a_file_within_its_limit_and_refuses_one_over_it_by_its_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.toml");
        std::fs::write(&path, b"12345").expect("write");
        assert_eq!(
            read_at_most(&path, 5).expect("read"),
            Bounded::Whole(b"12345".to_vec())
        );
        assert_eq!(read_at_most(&path, 4).expect("read"), Bounded::TooLarge(5));
        // A sparse file of 100 GiB is refused by its size: nothing is read, nothing allocated.
        let sparse = dir.path().join("sparse.toml");
        File::create(&sparse)
            .and_then(|f| f.set_len(100 << 30))
            .expect("sparse file");
        assert_eq!(
            read_at_most(&sparse, 1 << 20).expect("read"),
            Bounded::TooLarge(100 << 30)
        );
    }

    #[test]
    fn a_file_that_says_it_is_empty_is_still_read_only_up_to_the_limit() {
        // /proc files report a length of 0 whatever they hold: the stat alone is not trusted.
        let status = Path::new("/proc/self/status");
        match read_at_most(status, 16).expect("read") {
            Bounded::TooLarge(read) => assert_eq!(read, 17),
            Bounded::Whole(bytes) => panic!("read {} bytes past a 16-byte limit", bytes.len()),
        }
    }

    #[test]
    fn a_link_is_outside_only_when_its_target_is() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("campaigns");
        std::fs::create_dir(&dir).expect("dir");
        std::fs::write(dir.join("a.toml"), "").expect("write");
        std::fs::write(root.path().join("secret.toml"), "").expect("write");
        std::os::unix::fs::symlink(dir.join("a.toml"), dir.join("b.toml")).expect("link");
        std::os::unix::fs::symlink("../secret.toml", dir.join("c.toml")).expect("link");
        assert_eq!(outside(&dir, &dir.join("a.toml")), None);
        assert_eq!(outside(&dir, &dir.join("b.toml")), None);
        let secret = std::fs::canonicalize(root.path().join("secret.toml")).expect("canonical");
        assert_eq!(outside(&dir, &dir.join("c.toml")), Some(secret));
    }

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
