//! The profile snapshot: the store written to one binary file (at shutdown and periodically) and
//! read back at start, so a restart keeps profiles.
//!
//! Layout (a [`crate::binary`] file: little-endian, the magic `PRECISPF` and a u32 version first,
//! the CRC-32 of everything before it last): the tag table (a u32 count, then each name as a u16
//! length and its bytes), the users (each a u16 tag count, a u64 id and that many (u32 tag, u32
//! expiry) pairs, the tag being its index in the table times two, plus one if a bulk file gave it;
//! a count of 0 ends them). Written to a temporary file, fsynced and renamed over the old one, so a
//! crash leaves the last good snapshot. A file that is not a valid snapshot is refused with an
//! error, never half-loaded. Never runs on the bid path: it walks the map shard by shard on a
//! blocking thread.

use std::io::{Read, Write};
use std::path::Path;

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use super::{Held, Origin, Profiles, stamp};
use crate::binary::{self, BinaryError, Kind, Le, get_exact};
use crate::request::user::UserId;

/// 2: the origin bit in each tag, and CRC-32 instead of a byte-at-a-time FNV-1a checksum.
const KIND: Kind = Kind {
    magic: b"PRECISPF",
    version: 2,
    what: "profile snapshot",
};

pub type SnapshotError = BinaryError;

/// Writes the live tags of every user to `path` atomically ([`crate::files::replace`]).
/// Returns the users written.
pub fn save(store: &Profiles, path: &Path, now: DateTime<Utc>) -> Result<usize, SnapshotError> {
    let _one_at_a_time = store.saving.lock().unwrap_or_else(|p| p.into_inner());
    binary::write(path, KIND, |out| {
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
        Ok(users)
    })
}

/// Reads `path` into `store` (meant to be empty), dropping tags expired at `now`. Returns the
/// users loaded. On any error the store is left empty of what was read. A missing file is 0 users.
pub fn load(store: &Profiles, path: &Path, now: DateTime<Utc>) -> Result<usize, SnapshotError> {
    let read = binary::read(path, KIND, |input| read_into(store, input, now));
    if read.is_err() {
        store.users.clear();
        store.count.store(0, Ordering::Relaxed);
    }
    Ok(read?.unwrap_or(0))
}

fn read_into(
    store: &Profiles,
    input: &mut impl Read,
    now: DateTime<Utc>,
) -> Result<usize, SnapshotError> {
    let count = u32::get(input)? as usize;
    if count > super::MAX_DISTINCT_TAGS {
        return Err(SnapshotError::Corrupt("too many tags"));
    }
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(u16::get(input)?);
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
        let count = usize::from(u16::get(input)?);
        if count == 0 {
            break;
        }
        let user = UserId(u64::get(input)?);
        record.resize(count * 8, 0);
        get_exact(input, &mut record)?;
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
