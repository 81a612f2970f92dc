//! The event log: an append-only directory of JSON Lines files, written by one dedicated thread.
//!
//! Request handlers hand events over through a bounded queue and never wait for the disk: when the
//! queue is full, [`EventLog::submit`] says so at once and the caller answers 503 (exchanges and
//! pixels retry). While events keep coming the writer drains the queue in batches a millisecond
//! apart, so queueing one never wakes a thread. The writer appends to `events-YYYYMMDDTHH.jsonl` (UTC hour), starts
//! `events-YYYYMMDDTHH.1.jsonl`, `.2`, … when a file passes the size limit, and flushes and fsyncs
//! on a timer and when the log is closed: a graceful shutdown loses nothing it accepted. A line the
//! disk refuses is counted in [`Stats::write_errors`] and logged, never dropped unseen.
//! [`read`] is the other side of the same file format: it streams the lines back.

pub mod read;
pub mod record;

pub use record::{Event, Kind};

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::metrics::Exposition;

/// How the log is written.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: PathBuf,
    /// Events the queue holds before submitters are turned away.
    pub queue: usize,
    /// A file that reaches this size is closed and the next one started.
    pub max_file_bytes: u64,
    /// How often buffered lines are flushed and fsynced.
    pub sync_every: Duration,
}

/// Counters the writer keeps, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events in the queue, not yet written.
    pub queued: AtomicU64,
    pub written: AtomicU64,
    /// Events turned away because the queue was full.
    pub refused: AtomicU64,
    /// Lines that could not be written or files that could not be synced.
    pub write_errors: AtomicU64,
    /// When the writer last flushed and fsynced everything it had written: unix milliseconds.
    pub synced_at_ms: AtomicU64,
}

impl Stats {
    /// Seconds since the last successful flush and fsync: the most a crash now could lose.
    pub fn sync_age_secs(&self) -> f64 {
        let synced = self.synced_at_ms.load(Ordering::Relaxed);
        unix_ms().saturating_sub(synced) as f64 / 1000.0
    }

    fn synced(&self) {
        self.synced_at_ms.store(unix_ms(), Ordering::Relaxed);
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long the writer naps between drains while events keep coming: a submitter then finds it
/// asleep rather than waiting on the queue, and queueing a line costs no wake-up.
const BATCH_EVERY: Duration = Duration::from_millis(1);

enum Message {
    Event(Box<Event>),
    /// Flush, fsync and stop.
    Close,
}

/// The handle request handlers use. Cheap to share; [`EventLog::close`] once at shutdown.
pub struct EventLog {
    sender: SyncSender<Message>,
    capacity: usize,
    writer: Mutex<Option<JoinHandle<()>>>,
    pub stats: Arc<Stats>,
}

/// The queue is full: answer 503 and let the sender retry.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the event log is not keeping up; retry")]
pub struct Busy;

impl EventLog {
    /// Creates the directory if needed and starts the writer thread.
    pub fn open(settings: Settings) -> io::Result<EventLog> {
        std::fs::create_dir_all(&settings.dir)?;
        let capacity = settings.queue.max(1);
        let (sender, receiver) = mpsc::sync_channel(capacity);
        let stats = Arc::new(Stats::default());
        stats.synced();
        let writer = Writer {
            settings,
            stats: stats.clone(),
            file: None,
        };
        let handle = std::thread::Builder::new()
            .name("event-log".into())
            .spawn(move || writer.run(receiver))?;
        Ok(EventLog {
            sender,
            capacity,
            writer: Mutex::new(Some(handle)),
            stats,
        })
    }

    /// How many events the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues `event` for writing, without waiting.
    pub fn submit(&self, event: Event) -> Result<(), Busy> {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match self.sender.try_send(Message::Event(Box::new(event))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(Busy)
            }
        }
    }

    /// Its metrics: lines written, turned away and failed, the queue, how long since the last sync.
    pub fn report(&self, out: &mut Exposition) {
        let stats = &self.stats;
        let counted = |n: &AtomicU64| n.load(Ordering::Relaxed);
        for (name, help, value) in [
            (
                "precis_event_log_written_total",
                "Lines written to the event log.",
                &stats.written,
            ),
            (
                "precis_event_log_refused_total",
                "Lines the event log's full queue turned away.",
                &stats.refused,
            ),
            (
                "precis_event_log_write_errors_total",
                "Lines or syncs that failed.",
                &stats.write_errors,
            ),
        ] {
            out.counter(name, help, counted(value));
        }
        out.gauge(
            "precis_event_log_queued",
            "Events waiting for the writer (lag).",
            counted(&stats.queued),
        );
        out.gauge(
            "precis_event_log_sync_age_seconds",
            "Time since the event log was last flushed and fsynced.",
            stats.sync_age_secs(),
        );
    }

    /// Writes everything queued so far, fsyncs and stops the writer; later submissions are refused.
    /// Blocks until done, or until `patience` runs out (a hung disk must not hang shutdown
    /// forever: that is logged as an error). Call it from a blocking context, after the server
    /// stopped taking requests.
    pub fn close(&self, patience: Duration) {
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(handle) = handle else { return };
        // Blocking send: the Close goes behind every event already accepted.
        let _ = self.sender.send(Message::Close);
        let deadline = Instant::now() + patience;
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                let queued = self.stats.queued.load(Ordering::Relaxed);
                tracing::error!(
                    "event log writer still busy after {patience:?} ({queued} events queued): giving up on it"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if handle.join().is_err() {
            tracing::error!("event log writer panicked");
        }
    }
}

struct Writer {
    settings: Settings,
    stats: Arc<Stats>,
    file: Option<Open>,
}

/// The file being appended to.
struct Open {
    /// Hours since the epoch (UTC) of the lines in it.
    hour: i64,
    index: u32,
    bytes: u64,
    out: BufWriter<File>,
}

impl Writer {
    fn run(mut self, receiver: Receiver<Message>) {
        let mut last_sync = Instant::now();
        'writing: loop {
            // Busy: drain what came in, then nap for a batch interval instead of blocking on the
            // queue, so that a submitter never has to wake this thread. Idle: block until an
            // event (or the next sync) comes.
            let mut drained = 0usize;
            loop {
                match receiver.try_recv() {
                    Ok(Message::Event(event)) => {
                        self.take(&event);
                        drained += 1;
                    }
                    Ok(Message::Close) | Err(TryRecvError::Disconnected) => break 'writing,
                    Err(TryRecvError::Empty) => break,
                }
            }
            if drained > 0 {
                std::thread::sleep(BATCH_EVERY);
            } else {
                let wait = self.settings.sync_every.saturating_sub(last_sync.elapsed());
                match receiver.recv_timeout(wait) {
                    Ok(Message::Event(event)) => self.take(&event),
                    Ok(Message::Close) | Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
            if last_sync.elapsed() >= self.settings.sync_every {
                self.sync();
                last_sync = Instant::now();
            }
        }
        // A submission that raced the Close is behind it: it was accepted, so it is written too.
        while let Ok(message) = receiver.try_recv() {
            if let Message::Event(event) = message {
                self.take(&event);
            }
        }
        self.sync();
    }

    fn take(&mut self, event: &Event) {
        self.stats.queued.fetch_sub(1, Ordering::Relaxed);
        self.write(event);
    }

    fn write(&mut self, event: &Event) {
        let mut line = match serde_json::to_vec(event) {
            Ok(line) => line,
            Err(e) => return self.failed("cannot encode event", &e),
        };
        line.push(b'\n');
        let result = self.file_for(event.ts, line.len() as u64).and_then(|open| {
            open.out.write_all(&line)?;
            open.bytes += line.len() as u64;
            Ok(())
        });
        match result {
            Ok(()) => {
                self.stats.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.failed("cannot write event", &e),
        }
    }

    /// The file a line of `len` bytes stamped `ts` goes to: the current one, unless the hour
    /// changed or the line would take it past the size limit.
    fn file_for(&mut self, ts: DateTime<Utc>, len: u64) -> io::Result<&mut Open> {
        // Compared as a number: the file name is only formatted when a file is opened.
        let hour = ts.timestamp().div_euclid(3600);
        let stale = match &self.file {
            None => true,
            Some(open) => {
                open.hour != hour
                    || (open.bytes > 0 && open.bytes + len > self.settings.max_file_bytes)
            }
        };
        if stale {
            let index = match self.file.take() {
                Some(mut old) if old.hour == hour => {
                    finish(&mut old)?;
                    old.index + 1
                }
                Some(mut old) => {
                    finish(&mut old)?;
                    0
                }
                None => 0,
            };
            self.file = Some(open_file(&self.settings, hour, index)?);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("no open event file"))
    }

    fn sync(&mut self) {
        match self.file.as_mut().map(finish) {
            Some(Err(e)) => self.failed("cannot sync event log", &e),
            Some(Ok(())) | None => self.stats.synced(),
        }
    }

    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!("{what}: {error}");
    }
}

/// Flushes buffered lines and fsyncs them.
fn finish(open: &mut Open) -> io::Result<()> {
    open.out.flush()?;
    open.out.get_ref().sync_data()
}

/// Opens the first file of `hour`, from `index` on, that still has room: after a restart the
/// writer appends to the hour's last file instead of starting over.
fn open_file(settings: &Settings, hour: i64, mut index: u32) -> io::Result<Open> {
    let name = DateTime::from_timestamp(hour * 3600, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H")
        .to_string();
    /// Files one hour may take: far beyond any real hour, and a stop to a search that could not end.
    const FILES_PER_HOUR: u32 = 100_000;
    while index < FILES_PER_HOUR {
        let path = path_of(&settings.dir, &name, index);
        let bytes = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if bytes < settings.max_file_bytes {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&path)?;
            let mut out = BufWriter::with_capacity(64 * 1024, file);
            // A crash can leave a last line cut short: start on a line of our own (readers skip
            // the broken one).
            if bytes > 0 && !ends_with_newline(out.get_mut(), bytes)? {
                out.write_all(b"\n")?;
            }
            return Ok(Open {
                hour,
                index,
                bytes,
                out,
            });
        }
        index += 1;
    }
    Err(io::Error::other(format!(
        "{FILES_PER_HOUR} log files for hour {name}: none has room"
    )))
}

fn ends_with_newline(file: &mut File, len: u64) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut last = [0u8];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

fn path_of(dir: &Path, hour: &str, index: u32) -> PathBuf {
    match index {
        0 => dir.join(format!("events-{hour}.jsonl")),
        n => dir.join(format!("events-{hour}.{n}.jsonl")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::Kind;

    fn event(bid: &str, ts: &str) -> Event {
        Event {
            price: Some(1.5),
            spend_usd: 0.0015,
            ..Event::example(Kind::Win, bid, ts)
        }
    }

    fn settings(dir: &Path, max_file_bytes: u64) -> Settings {
        Settings {
            dir: dir.into(),
            queue: 1024,
            max_file_bytes,
            sync_every: Duration::from_millis(50),
        }
    }

    /// Every line of every file, in file-name order, and the file names.
    fn read_back(dir: &Path) -> (Vec<Event>, Vec<String>) {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut events = Vec::new();
        for name in &names {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            events.extend(
                text.lines()
                    .filter_map(|l| serde_json::from_str::<Event>(l).ok()),
            );
        }
        (events, names)
    }

    #[test]
    fn everything_accepted_is_on_disk_after_close() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(settings(dir.path(), 1 << 20)).unwrap();
        let sent: Vec<Event> = (0..500)
            .map(|i| event(&format!("b{i}"), "2026-11-23T10:15:00Z"))
            .collect();
        for e in &sent {
            log.submit(e.clone()).unwrap();
        }
        log.close(Duration::from_secs(10));
        assert_eq!(log.submit(event("late", "2026-11-23T10:16:00Z")), Err(Busy));
        let (written, names) = read_back(dir.path());
        assert_eq!(written, sent);
        assert_eq!(names, ["events-20261123T10.jsonl"]);
        assert_eq!(log.stats.written.load(Ordering::Relaxed), 500);
        assert_eq!(log.stats.queued.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn files_rotate_by_hour_and_by_size_and_a_restart_appends() {
        let dir = tempfile::tempdir().unwrap();
        let line_len = serde_json::to_vec(&event("b00", "2026-11-23T10:00:00Z"))
            .unwrap()
            .len() as u64
            + 1;
        let log = EventLog::open(settings(dir.path(), line_len * 3)).unwrap();
        for i in 0..5 {
            log.submit(event(&format!("b{i:02}"), "2026-11-23T10:00:00Z"))
                .unwrap();
        }
        log.submit(event("b05", "2026-11-23T11:00:00Z")).unwrap();
        log.close(Duration::from_secs(10));
        let log = EventLog::open(settings(dir.path(), line_len * 3)).unwrap();
        log.submit(event("b06", "2026-11-23T11:30:00Z")).unwrap();
        log.close(Duration::from_secs(10));
        let (written, names) = read_back(dir.path());
        assert_eq!(
            names,
            [
                "events-20261123T10.1.jsonl",
                "events-20261123T10.jsonl",
                "events-20261123T11.jsonl"
            ]
        );
        // Appended after the restart as a line of its own, with no blank line before it.
        let text = std::fs::read_to_string(dir.path().join("events-20261123T11.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.lines().all(|l| !l.is_empty()), "{text}");
        let mut bids: Vec<String> = written.into_iter().map(|e| e.bid).collect();
        bids.sort();
        assert_eq!(bids, ["b00", "b01", "b02", "b03", "b04", "b05", "b06"]);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_does_not_swallow_the_next_event() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("events-20261123T10.jsonl"),
            "{\"ts\": \"2026-11-23T10:00",
        )
        .unwrap();
        let log = EventLog::open(settings(dir.path(), 1 << 20)).unwrap();
        log.submit(event("after", "2026-11-23T10:05:00Z")).unwrap();
        log.close(Duration::from_secs(10));
        let (written, _) = read_back(dir.path());
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].bid, "after");
    }

    /// The length of the line [`event`] makes for bid `b00`, newline included.
    fn line_len() -> u64 {
        serde_json::to_vec(&event("b00", "2026-11-23T10:00:00Z"))
            .unwrap()
            .len() as u64
            + 1
    }

    #[test]
    fn a_file_left_full_is_not_appended_to_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let max = line_len() * 3;
        let log = EventLog::open(settings(dir.path(), max)).unwrap();
        for i in 0..3 {
            log.submit(event(&format!("b{i:02}"), "2026-11-23T10:00:00Z"))
                .unwrap();
        }
        log.close(Duration::from_secs(10));
        let log = EventLog::open(settings(dir.path(), max)).unwrap();
        log.submit(event("b03", "2026-11-23T10:30:00Z")).unwrap();
        log.close(Duration::from_secs(10));
        let (_, names) = read_back(dir.path());
        assert_eq!(
            names,
            ["events-20261123T10.1.jsonl", "events-20261123T10.jsonl"]
        );
        let full = std::fs::read(dir.path().join("events-20261123T10.jsonl")).unwrap();
        assert_eq!(full.len() as u64, max);
    }

    #[test]
    fn a_file_closed_with_room_left_is_not_reopened_in_the_same_run() {
        // Two and a half lines fit: the third line starts the next file, and the fourth goes
        // there too, never back into the first file's half line of room.
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(settings(dir.path(), line_len() * 5 / 2)).unwrap();
        for i in 0..4 {
            log.submit(event(&format!("b{i:02}"), "2026-11-23T10:00:00Z"))
                .unwrap();
        }
        log.close(Duration::from_secs(10));
        let lines = |name: &str| {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            text.lines().count()
        };
        assert_eq!(lines("events-20261123T10.jsonl"), 2);
        assert_eq!(lines("events-20261123T10.1.jsonl"), 2);
    }

    #[test]
    fn a_line_that_cannot_be_written_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        // The hour's file cannot be opened: a directory has its name.
        std::fs::create_dir(dir.path().join("events-20261123T10.jsonl")).unwrap();
        let log = EventLog::open(settings(dir.path(), 1 << 20)).unwrap();
        log.submit(event("lost", "2026-11-23T10:00:00Z")).unwrap();
        log.close(Duration::from_secs(10));
        assert_eq!(log.stats.write_errors.load(Ordering::Relaxed), 1);
        assert_eq!(log.stats.written.load(Ordering::Relaxed), 0);
        assert_eq!(log.stats.queued.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn close_gives_up_on_a_stuck_writer_after_its_patience() {
        // The hour's file is a pipe nobody reads: once its buffer and the writer's are full, the
        // writer waits forever.
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("events-20261123T10.jsonl");
        let made = std::process::Command::new("mkfifo").arg(&pipe).status();
        assert!(made.unwrap().success(), "mkfifo");
        let log = Arc::new(
            EventLog::open(Settings {
                queue: 4096,
                ..settings(dir.path(), 1 << 30)
            })
            .unwrap(),
        );
        let lines = (256 << 10) / line_len() + 1;
        for i in 0..lines {
            log.submit(event(&format!("b{i:05}"), "2026-11-23T10:00:00Z"))
                .unwrap();
        }
        let patience = Duration::from_millis(200);
        let (done, closed) = mpsc::channel();
        let closing = log.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            closing.close(patience);
            let _ = done.send(started.elapsed());
        });
        let took = closed
            .recv_timeout(Duration::from_secs(10))
            .expect("close returned");
        assert!(took >= patience, "gave up after {took:?}");
        assert!(log.stats.queued.load(Ordering::Relaxed) > 0);
    }
}
