//! Reading the event log back: every line of its files, in order, one line in memory at a time.
//!
//! The writer (the parent module) and this reader are the two sides of one file format, so both
//! live here; `precis report` reads through [`events_in`], the bidder's start-up replay and state
//! snapshot through [`events_between`] (the log past the [`Positions`] a snapshot reached). A line
//! that is not an event (cut short by a crash, or being written as it is read) is skipped and
//! counted, never fatal; a file that cannot be read ends the stream with [`ReadError`].

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Take};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::record::Event;

/// A log file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    /// The error's source, not part of its message: the binary prints the chain.
    pub source: io::Error,
}

/// Lines that are not events: a line cut short by a crash, or one being written while we read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Skipped {
    pub lines: u64,
    /// The file and 1-based line number of the first one.
    pub first: Option<(PathBuf, u64)>,
}

impl Skipped {
    pub(crate) fn note(&mut self, path: &Path, line: u64) {
        self.lines += 1;
        if self.first.is_none() {
            self.first = Some((path.to_owned(), line));
        }
    }

    pub(crate) fn merge(&mut self, other: Skipped) {
        self.lines += other.lines;
        self.first = match (self.first.take(), other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.lines {
            1 => write!(f, "skipped 1 line that is not an event")?,
            n => write!(f, "skipped {n} lines that are not events")?,
        }
        if let Some((path, line)) = &self.first {
            write!(f, " (first at {}:{line})", path.display())?;
        }
        Ok(())
    }
}

/// The event log files in `dir`: every `*.jsonl` file (not hidden ones), sorted by name.
pub fn log_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    crate::files::list(dir, &[".jsonl"])
}

/// The hour a log file holds, from its name `events-YYYYMMDDTHH[.N].jsonl`. The writer names a file
/// after the hour of the events in it (see the writer), so a file of an hour outside a window need not be
/// opened. `None` for any other name: such a file is read.
pub(crate) fn file_hour(path: &Path) -> Option<DateTime<Utc>> {
    let name = path.file_name()?.to_str()?.strip_prefix("events-")?;
    let (day, rest) = name.split_at_checked(8)?;
    let (hour, rest) = rest.strip_prefix('T')?.split_at_checked(2)?;
    if !rest.starts_with('.') || !hour.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let day = NaiveDate::parse_from_str(day, "%Y%m%d").ok()?;
    Some(day.and_hms_opt(hour.parse().ok()?, 0, 0)?.and_utc())
}

/// Whether any instant of the hour starting at `hour` is in `range`.
fn hour_overlaps(hour: DateTime<Utc>, range: &impl RangeBounds<DateTime<Utc>>) -> bool {
    let after_start = match range.start_bound() {
        Bound::Included(from) | Bound::Excluded(from) => hour + TimeDelta::hours(1) > *from,
        Bound::Unbounded => true,
    };
    let before_end = match range.end_bound() {
        Bound::Included(to) => hour <= *to,
        Bound::Excluded(to) => hour < *to,
        Bound::Unbounded => true,
    };
    after_start && before_end
}

/// The log files in `dir` that may hold events in `range`.
pub fn files_for(dir: &Path, range: &impl RangeBounds<DateTime<Utc>>) -> io::Result<Vec<PathBuf>> {
    let mut files = log_files(dir)?;
    files.retain(|path| file_hour(path).is_none_or(|hour| hour_overlaps(hour, range)));
    Ok(files)
}

/// How far into each log file (by file name) something reaches, in bytes: what a state snapshot
/// has taken in, what is on disk.
pub type Positions = BTreeMap<String, u64>;

/// The length of every log file in `dir` now, by name.
pub fn lengths(dir: &Path) -> io::Result<Positions> {
    let mut lengths = Positions::new();
    for path in log_files(dir)? {
        let length = std::fs::metadata(&path)?.len();
        lengths.insert(name_of(&path), length);
    }
    Ok(lengths)
}

/// A log file's name, as [`Positions`] key it.
pub(crate) fn name_of(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Streams the events of the log files in `dir` that lie past `from` and up to `to`: each file
/// `to` names, from where `from` says (its start, when `from` does not name it) to where `to`
/// says, in file-name order. A file shorter than `from` says (replaced since) is read from its
/// start. Lines that are not events are skipped and counted, as with [`events_in`].
pub fn events_between(dir: &Path, from: &Positions, to: &Positions) -> EventStream {
    let segments = to
        .iter()
        .map(|(name, &end)| {
            let start = from.get(name).copied().unwrap_or(0);
            Segment {
                path: dir.join(name),
                from: if start > end { 0 } else { start },
                to: Some(end),
            }
        })
        .collect();
    EventStream::of(segments, (Bound::Unbounded, Bound::Unbounded))
}

/// A stretch of a log file to read: from byte `from` to byte `to` (its end when `None`).
struct Segment {
    path: PathBuf,
    from: u64,
    to: Option<u64>,
}

/// Streams the events of the log files in `dir` (sorted by name) whose timestamp is in `range`,
/// one line in memory at a time. Files whose name says they hold another hour are not opened.
/// Lines that are not events are skipped and counted; a read error ends the stream: see
/// [`EventStream::finish`].
pub fn events_in(dir: &Path, range: impl RangeBounds<DateTime<Utc>>) -> io::Result<EventStream> {
    let range = (range.start_bound().cloned(), range.end_bound().cloned());
    Ok(EventStream::new(files_for(dir, &range)?, range))
}

/// The events of some log files, as [`events_in`] streams them.
pub struct EventStream {
    files: std::vec::IntoIter<Segment>,
    range: (Bound<DateTime<Utc>>, Bound<DateTime<Utc>>),
    /// The file being read and the number of the last line read from it (counted from where the
    /// stream started reading it).
    open: Option<(PathBuf, BufReader<Take<File>>, u64)>,
    line: Vec<u8>,
    skipped: Skipped,
    error: Option<(PathBuf, io::Error)>,
}

impl EventStream {
    /// The events of `files`, in that order, whose timestamp is in `range`.
    pub fn new(
        files: Vec<PathBuf>,
        range: (Bound<DateTime<Utc>>, Bound<DateTime<Utc>>),
    ) -> EventStream {
        let whole = |path| Segment {
            path,
            from: 0,
            to: None,
        };
        EventStream::of(files.into_iter().map(whole).collect(), range)
    }

    fn of(
        segments: Vec<Segment>,
        range: (Bound<DateTime<Utc>>, Bound<DateTime<Utc>>),
    ) -> EventStream {
        EventStream {
            files: segments.into_iter(),
            range,
            open: None,
            line: Vec::with_capacity(1024),
            skipped: Skipped::default(),
            error: None,
        }
    }

    /// The lines skipped so far.
    pub fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    /// The lines skipped, or the read error that ended the stream early.
    pub fn finish(self) -> Result<Skipped, ReadError> {
        match self.error {
            Some((path, source)) => Err(ReadError { path, source }),
            None => Ok(self.skipped),
        }
    }

    fn fail(&mut self, path: PathBuf, error: io::Error) -> Option<Event> {
        self.error = Some((path, error));
        self.open = None;
        self.files = Vec::new().into_iter();
        None
    }
}

impl Iterator for EventStream {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            let Some((path, reader, number)) = &mut self.open else {
                let Segment { path, from, to } = self.files.next()?;
                let opened = File::open(&path).and_then(|mut file| {
                    file.seek(SeekFrom::Start(from))?;
                    Ok(file.take(to.map_or(u64::MAX, |to| to.saturating_sub(from))))
                });
                match opened {
                    Ok(file) => {
                        self.open = Some((path, BufReader::with_capacity(1 << 16, file), 0))
                    }
                    Err(e) => return self.fail(path, e),
                }
                continue;
            };
            // Bytes, not a String: a line cut short may end inside a UTF-8 sequence, and that is a
            // skipped line, not an error.
            self.line.clear();
            match reader.read_until(b'\n', &mut self.line) {
                Ok(0) => {
                    self.open = None;
                    continue;
                }
                Ok(_) => *number += 1,
                Err(e) => {
                    let path = path.clone();
                    return self.fail(path, e);
                }
            }
            let text = self.line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Event>(text) {
                Ok(event) if self.range.contains(&event.ts) => return Some(event),
                Ok(_) => {}
                Err(_) => self.skipped.note(path, *number),
            }
        }
    }
}
