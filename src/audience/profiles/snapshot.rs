//! The profile snapshot: the store written to one binary file (at shutdown and periodically) and
//! read back at start, so a restart keeps profiles.
//!
//! Layout (little-endian): the magic `PRECISPF`, a u32 version, the tag table (a u32 count, then
//! each name as a u16 length and its bytes), the users (each a u16 tag count, a u64 id and that
//! many (u32 tag, u32 expiry) pairs, the tag being its index in the table times two, plus one if
//! a bulk file gave it; a count of 0 ends them), then the CRC-32 (`crc32fast`, a few GB/s) of
//! everything before it, as a u32. Written to a temporary file, fsynced and renamed over the old one, so a
//! crash leaves the last good snapshot. A file that is not a valid snapshot is refused with an
//! error, never half-loaded. Never runs on the bid path: it walks the map shard by shard on a
//! blocking thread.

use std::io::{BufReader, Read, Write};
use std::path::Path;

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use super::{Held, Origin, Profiles, stamp};
use crate::request::user::UserId;

const MAGIC: &[u8; 8] = b"PRECISPF";
/// 2: the origin bit in each tag, and CRC-32 instead of a byte-at-a-time FNV-1a checksum.
const VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a precis profile snapshot (bad magic)")]
    Magic,
    #[error("snapshot version {0}; this precis reads version {VERSION}")]
    Version(u32),
    #[error("the snapshot is corrupt: {0}")]
    Corrupt(&'static str),
}

/// The CRC-32 of everything written or read through it. Bytes are gathered into blocks before
/// they are summed: the snapshot is written and read a few bytes at a time.
struct Summed<T> {
    inner: T,
    hasher: crc32fast::Hasher,
    block: Vec<u8>,
}

/// Bytes summed at a time.
const BLOCK: usize = 1 << 16;

impl<T> Summed<T> {
    fn new(inner: T) -> Summed<T> {
        Summed {
            inner,
            hasher: crc32fast::Hasher::new(),
            block: Vec::with_capacity(BLOCK),
        }
    }

    fn add(&mut self, bytes: &[u8]) {
        if self.block.len() + bytes.len() > BLOCK {
            self.hasher.update(&self.block);
            self.block.clear();
        }
        if bytes.len() >= BLOCK {
            self.hasher.update(bytes);
        } else {
            self.block.extend_from_slice(bytes);
        }
    }

    /// The sum so far, and what it was summed over.
    fn finish(mut self) -> (T, u32) {
        self.hasher.update(&self.block);
        (self.inner, self.hasher.finalize())
    }
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.add(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Summed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.add(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// Writes the live tags of every user to `path` atomically ([`crate::files::replace`]).
/// Returns the users written.
pub fn save(store: &Profiles, path: &Path, now: DateTime<Utc>) -> Result<usize, SnapshotError> {
    let _one_at_a_time = store.saving.lock().unwrap_or_else(|p| p.into_inner());
    crate::files::replace(path, |file| {
        let mut out = Summed::new(file);
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        // The table as of now: tags interned later are left to the next snapshot.
        let names = store.tags.names.load_full();
        out.write_all(&(names.len() as u32).to_le_bytes())?;
        for name in names.iter() {
            // Tags are short; one that is not (over 64 KiB) is cut at a character boundary.
            let mut len = name.len().min(usize::from(u16::MAX));
            while !name.is_char_boundary(len) {
                len -= 1;
            }
            out.write_all(&(len as u16).to_le_bytes())?;
            out.write_all(&name.as_bytes()[..len])?;
        }
        let now = stamp(now);
        let mut users = 0;
        // One write per user: the writer's per-call overhead, not the disk, is what costs.
        let mut record: Vec<u8> = Vec::new();
        for entry in store.users.iter() {
            record.clear();
            record.extend_from_slice(&[0; 2]);
            record.extend_from_slice(&entry.key().0.to_le_bytes());
            let live = entry
                .value()
                .iter()
                .filter(|h| h.until > now && (h.id() as usize) < names.len());
            let mut count: u16 = 0;
            for held in live {
                let tag = held.id() << 1 | u32::from(held.is_from_file());
                record.extend_from_slice(&tag.to_le_bytes());
                record.extend_from_slice(&held.until.to_le_bytes());
                count += 1;
            }
            if count == 0 {
                continue;
            }
            record[..2].copy_from_slice(&count.to_le_bytes());
            out.write_all(&record)?;
            users += 1;
        }
        out.write_all(&0u16.to_le_bytes())?;
        let (file, sum) = out.finish();
        file.write_all(&sum.to_le_bytes())?;
        Ok(users)
    })
}

fn read_array<const N: usize>(input: &mut impl Read) -> Result<[u8; N], SnapshotError> {
    let mut buf = [0; N];
    read_exact(input, &mut buf)?;
    Ok(buf)
}

fn read_exact(input: &mut impl Read, buf: &mut [u8]) -> Result<(), SnapshotError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => SnapshotError::Corrupt("it ends too early"),
        _ => SnapshotError::Io(e),
    })
}

/// Reads `path` into `store` (meant to be empty), dropping tags expired at `now`. Returns the
/// users loaded. On any error the store is left empty of what was read. A missing file is 0 users.
pub fn load(store: &Profiles, path: &Path, now: DateTime<Utc>) -> Result<usize, SnapshotError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut input = Summed::new(BufReader::with_capacity(1 << 20, file));
    let read = read_into(store, &mut input, now).and_then(|users| {
        let (mut input, sum) = input.finish();
        let stored = u32::from_le_bytes(read_array(&mut input)?);
        let mut rest = [0u8; 1];
        if input.read(&mut rest)? != 0 {
            return Err(SnapshotError::Corrupt("bytes after the checksum"));
        }
        if stored != sum {
            return Err(SnapshotError::Corrupt("checksum mismatch"));
        }
        Ok(users)
    });
    if read.is_err() {
        store.users.clear();
        store.count.store(0, Ordering::Relaxed);
    }
    read
}

fn read_into(
    store: &Profiles,
    input: &mut impl Read,
    now: DateTime<Utc>,
) -> Result<usize, SnapshotError> {
    if &read_array::<8>(input)? != MAGIC {
        return Err(SnapshotError::Magic);
    }
    let version = u32::from_le_bytes(read_array(input)?);
    if version != VERSION {
        return Err(SnapshotError::Version(version));
    }
    let count = u32::from_le_bytes(read_array(input)?) as usize;
    if count > super::MAX_DISTINCT_TAGS {
        return Err(SnapshotError::Corrupt("too many tags"));
    }
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(u16::from_le_bytes(read_array(input)?));
        let mut name = vec![0; len];
        input
            .read_exact(&mut name)
            .map_err(|_| SnapshotError::Corrupt("it ends in the tag table"))?;
        names.push(
            String::from_utf8(name).map_err(|_| SnapshotError::Corrupt("a tag is not UTF-8"))?,
        );
    }
    // The ids of this store, which may differ from the file's.
    let ids = store
        .tags
        .intern(names.iter().map(String::as_str))
        .map_err(|_| SnapshotError::Corrupt("too many tags"))?;
    let remap: Vec<u32> = names
        .iter()
        .map(|n| ids.get(n.as_str()).copied().unwrap_or(0))
        .collect();
    let now = stamp(now);
    let mut users = 0;
    let mut held = Vec::new();
    let mut record = Vec::new();
    loop {
        let count = usize::from(u16::from_le_bytes(read_array(input)?));
        if count == 0 {
            break;
        }
        let user = UserId(u64::from_le_bytes(read_array(input)?));
        record.resize(count * 8, 0);
        read_exact(input, &mut record)?;
        held.clear();
        for pair in record.chunks_exact(8) {
            let (tag, until) = pair.split_at(4);
            let tag = u32::from_le_bytes(tag.try_into().unwrap_or_default());
            let until = u32::from_le_bytes(until.try_into().unwrap_or_default());
            let id = *remap
                .get((tag >> 1) as usize)
                .ok_or(SnapshotError::Corrupt(
                    "a user holds a tag not in the table",
                ))?;
            let origin = if tag & 1 == 1 {
                Origin::FILE
            } else {
                Origin::API
            };
            if until > now {
                held.push(Held::new(id, origin, until));
            }
        }
        if held.is_empty() || store.users() >= store.max_users {
            continue;
        }
        let merged = super::merge(&[], held.iter().copied(), now);
        if store.users.insert(user, merged).is_none() {
            store.count.fetch_add(1, Ordering::Relaxed);
            users += 1;
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audience::profiles::Update;
    use crate::audience::profiles::bulk::Feed;
    use std::sync::Arc;

    fn now() -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    fn filled() -> Profiles {
        let store = Profiles::new(100);
        let update = Update::of;
        store
            .apply(
                &[
                    update("u1", &["sports/running", "shoes"], None),
                    update("u1", &["now"], Some(300)),
                    update("u2", &["gone"], Some(1)),
                ],
                now(),
            )
            .unwrap();
        store
    }

    #[test]
    fn a_snapshot_round_trips_live_tags_and_drops_expired_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/profiles.snapshot");
        let store = filled();
        let later = now() + chrono::Duration::seconds(10);
        assert_eq!(save(&store, &path, later).unwrap(), 1, "u2 expired");
        let back = Profiles::new(100);
        assert_eq!(load(&back, &path, later).unwrap(), 1);
        let u1 = UserId::of_key("u1");
        assert_eq!(back.live(u1, later), store.live(u1, later));
        assert_eq!(back.live(u1, later).len(), 3);
        let missing = Profiles::new(100);
        assert_eq!(load(&missing, &dir.path().join("none"), later).unwrap(), 0);
    }

    #[test]
    fn a_damaged_snapshot_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.snapshot");
        save(&filled(), &path, now()).unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        let middle = flipped.len() - 8; // in the last expiry
        flipped[middle] ^= 1;
        for (bytes, says) in [
            (flipped, "checksum"),
            (good[..good.len() - 3].to_vec(), "ends too early"),
            (b"hello world".to_vec(), "magic"),
            ([&good[..], b"x"].concat(), "after the checksum"),
        ] {
            std::fs::write(&path, bytes).unwrap();
            let store = Profiles::new(100);
            let error = load(&store, &path, now()).unwrap_err().to_string();
            assert!(error.contains(says), "{says}: {error}");
            assert_eq!(store.users(), 0);
            assert!(store.live(UserId::of_key("u1"), now()).is_empty());
        }
    }

    #[test]
    fn a_restart_neither_extends_a_files_ttls_nor_keeps_a_file_deleted_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(
            &path,
            "{\"user\": \"u1\", \"tags\": [\"hour\"], \"ttl\": \"1h\"}\n\
             {\"user\": \"u1\", \"tags\": [\"half\"], \"ttl\": \"30m\"}\n\
             {\"user\": \"u2\", \"tags\": [\"file\"]}\n",
        )
        .unwrap();
        let written = now() - chrono::Duration::minutes(50);
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(written.into()).unwrap();
        let (store, feed) = (Profiles::new(100), Feed::new(dir.path().to_owned()));
        store
            .apply(&[Update::of("u2", &["api"], None)], now())
            .unwrap();
        feed.reload(&store, now()).unwrap();
        let u1 = store.live(UserId::of_key("u1"), now());
        assert_eq!(
            u1,
            [(
                Arc::from("hour"),
                Some(written + chrono::Duration::hours(1))
            )],
            "ttls count from the file's modification time: `half` ran out"
        );

        // Stopped (snapshot), the file deleted meanwhile, started again.
        let snapshot = dir.path().join("profiles.snapshot");
        save(&store, &snapshot, now()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (again, feed) = (Profiles::new(100), Feed::new(dir.path().to_owned()));
        load(&again, &snapshot, now()).unwrap();
        assert_eq!(
            again.tag_names("u2", now()),
            ["api", "file"],
            "as it was saved"
        );
        feed.reload(&again, now()).unwrap();
        assert_eq!(
            again.tag_names("u2", now()),
            ["api"],
            "the file is gone, the API's tag stays"
        );
        assert!(again.tag_names("u1", now()).is_empty());
    }
}
