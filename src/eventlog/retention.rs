//! Retention: the oldest log files removed once they are no longer needed, so that a bidder that
//! runs for months does not fill its disk (`[events] keep_days`, `keep_gb`; 0: keep everything).
//!
//! A file is removed only when the state snapshot has read it to its end (a start then never needs
//! it: it replays only what the snapshot has not covered), never the newest file (the one being
//! written), and oldest first: a file is kept while an older one is. What it never does: remove a
//! file the snapshot has not covered, which would lose acknowledged events from the state a start
//! rebuilds. Reports over removed hours see nothing of them, which is what retention means.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

use super::read::{Positions, file_hour, log_files, name_of};

/// How much of the log to keep; 0 means no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    /// Files of hours older than this many days go.
    pub days: u32,
    /// The oldest files go while all of them together are larger than this.
    pub bytes: u64,
}

impl Keep {
    /// Whether it removes anything at all.
    pub fn limits(&self) -> bool {
        self.days > 0 || self.bytes > 0
    }
}

/// Removes the log files of `dir` that `keep` lets go and `covered` (what the state snapshot has
/// read) has read to their end, as of `now`. Returns the files removed.
pub fn prune(
    dir: &Path,
    covered: &Positions,
    keep: Keep,
    now: DateTime<Utc>,
) -> io::Result<Vec<PathBuf>> {
    if !keep.limits() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for path in log_files(dir)? {
        let length = std::fs::metadata(&path)?.len();
        files.push((path, length));
    }
    files.sort();
    let mut total: u64 = files.iter().map(|(_, length)| length).sum();
    let oldest_kept = now - Duration::days(keep.days.into());
    let mut removed = Vec::new();
    // The newest file is the one being written: never a candidate.
    let older = files.len().saturating_sub(1);
    for (path, length) in files.into_iter().take(older) {
        let read_to_its_end = covered.get(&name_of(&path)) == Some(&length);
        let too_old = keep.days > 0
            && file_hour(&path).is_some_and(|hour| hour + Duration::hours(1) <= oldest_kept);
        let too_much = keep.bytes > 0 && total > keep.bytes;
        if !read_to_its_end || !(too_old || too_much) {
            break;
        }
        std::fs::remove_file(&path)?;
        total -= length;
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log directory with files of these hours and sizes, and positions covering `covered` of
    /// them (by index) to their end.
    fn log(hours: &[(&str, usize)], covered: &[usize]) -> (tempfile::TempDir, Positions) {
        let dir = tempfile::tempdir().unwrap();
        let mut positions = Positions::new();
        for (i, (hour, size)) in hours.iter().enumerate() {
            let name = format!("events-{hour}.0.jsonl");
            std::fs::write(dir.path().join(&name), "x".repeat(*size)).unwrap();
            if covered.contains(&i) {
                positions.insert(name, *size as u64);
            }
        }
        (dir, positions)
    }

    fn names(removed: &[PathBuf]) -> Vec<String> {
        removed.iter().map(|p| name_of(p)).collect()
    }

    const HOURS: [(&str, usize); 4] = [
        ("20261101T10", 100),
        ("20261102T10", 100),
        ("20261105T10", 100),
        ("20261107T10", 100),
    ];

    #[test]
    fn files_older_than_keep_days_go_once_the_snapshot_has_read_them() {
        let now = "2026-11-07T12:00:00Z".parse().unwrap();
        let keep = Keep { days: 3, bytes: 0 };
        // Covered to their end: the two older than three days go, the 5th stays.
        let (dir, covered) = log(&HOURS, &[0, 1, 2, 3]);
        let removed = prune(dir.path(), &covered, keep, now).unwrap();
        assert_eq!(
            names(&removed),
            ["events-20261101T10.0.jsonl", "events-20261102T10.0.jsonl"]
        );
        assert_eq!(log_files(dir.path()).unwrap().len(), 2);
        // Not covered (or only part of it): kept, and every newer file with it.
        let (dir, mut covered) = log(&HOURS, &[1, 2, 3]);
        assert!(prune(dir.path(), &covered, keep, now).unwrap().is_empty());
        covered.insert("events-20261101T10.0.jsonl".into(), 99);
        assert!(prune(dir.path(), &covered, keep, now).unwrap().is_empty());
        // No limit: nothing goes.
        let (dir, covered) = log(&HOURS, &[0, 1, 2, 3]);
        assert!(
            prune(dir.path(), &covered, Keep::default(), now)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn past_keep_gb_the_oldest_go_but_never_the_file_being_written() {
        let now = "2026-11-07T12:00:00Z".parse().unwrap();
        let (dir, covered) = log(&HOURS, &[0, 1, 2, 3]);
        let keep = Keep {
            days: 0,
            bytes: 250,
        };
        let removed = prune(dir.path(), &covered, keep, now).unwrap();
        assert_eq!(
            names(&removed),
            ["events-20261101T10.0.jsonl", "events-20261102T10.0.jsonl"]
        );
        // However small the limit, the newest file stays.
        let keep = Keep { days: 0, bytes: 1 };
        let removed = prune(dir.path(), &covered, keep, now).unwrap();
        assert_eq!(names(&removed), ["events-20261105T10.0.jsonl"]);
        assert_eq!(
            names(&log_files(dir.path()).unwrap()),
            ["events-20261107T10.0.jsonl"]
        );
    }
}
