//! The log's writer thread: takes lines off the queue, appends them to their hour's file, fsyncs
//! each batch once (group commit) and publishes how far the log is durable; when the disk
//! refuses, it cuts the file back to what was fsynced, keeps the lines and tries again. Also what
//! it shares with the handle: its settings, its counters, and what it publishes ([`Shared`]).
//!
//! Every line taken off the queue stays in `pending`, in queue order, until an fsync covers it:
//! only then is it released (its receipt honoured, counted as written). A failed write or fsync
//! therefore loses nothing and, because the file is cut back to its last fsynced length before
//! the lines are written again, never leaves half a line or a line twice.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::DateTime;
use tokio::sync::watch;

use super::record::Event;

/// How the log is written.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: PathBuf,
    /// Events the queue holds before submitters are turned away.
    pub queue: usize,
    /// A file that reaches this size is closed and the next one started.
    pub max_file_bytes: u64,
    /// The group commit window: the least time between two fsyncs, and so the longest a line
    /// someone waits for waits for its fsync to start.
    pub sync_every: Duration,
}

/// How long a waiter waits for its line, and a disk call may take, before the log is said to have
/// stalled.
pub const STALL: Duration = Duration::from_secs(5);

/// Counters the writer keeps, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Lines in the queue, not yet taken by the writer.
    pub queued: AtomicU64,
    /// Lines taken by the writer and not yet fsynced (written, or kept while the disk fails).
    pub unsynced: AtomicU64,
    /// Lines written and fsynced.
    pub written: AtomicU64,
    /// Fsyncs that went through: `written / syncs` is the group commit's batch.
    pub syncs: AtomicU64,
    /// Lines turned away because the queue was full.
    pub refused: AtomicU64,
    /// Writes, fsyncs and opens that failed (each attempt; the lines are kept and retried).
    pub write_errors: AtomicU64,
    /// When the oldest line not yet fsynced was taken, unix milliseconds; 0 when none is.
    pub unsynced_since_ms: AtomicU64,
}

impl Stats {
    /// How long the oldest line taken but not yet fsynced has waited (0 when every line taken
    /// is on disk): what a crash now would lose.
    pub fn sync_age_secs(&self) -> f64 {
        match self.unsynced_since_ms.load(Ordering::Relaxed) {
            0 => 0.0,
            since => unix_ms().saturating_sub(since) as f64 / 1000.0,
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How far the log is on disk, as the writer publishes it.
#[derive(Debug, Clone, Default)]
pub(super) struct Durability {
    /// Every receipt up to this one is fsynced.
    pub(super) through: u64,
    /// Why the writer's last attempt failed, while it fails.
    pub(super) failing: Option<Arc<str>>,
}

/// What the handle, the writer and [`Health`] share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) stats: Arc<Stats>,
    pub(super) durable: watch::Sender<Durability>,
    /// Failing or stalled: what budgeted campaigns read before each bid.
    pub(super) trouble: AtomicBool,
    /// When the writer's current disk call began, unix milliseconds; 0 outside one.
    pub(super) disk_call_since_ms: AtomicU64,
    pub(super) closing: AtomicBool,
    /// Every file the writer opened in this run, by name, with its length as of its last fsync
    /// (or its opening): what of it is whole and on disk.
    pub(super) synced: Mutex<HashMap<String, u64>>,
}

impl Shared {
    fn disk_call(&self, started: bool) {
        let at = if started { unix_ms() } else { 0 };
        self.disk_call_since_ms.store(at, Ordering::Relaxed);
    }

    fn failing(&self, reason: Arc<str>) {
        self.trouble.store(true, Ordering::Relaxed);
        self.durable.send_if_modified(|durable| {
            let changed = durable.failing.as_ref() != Some(&reason);
            durable.failing = Some(reason);
            changed
        });
    }

    fn synced_to(&self, name: &str, length: u64) {
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        match synced.get_mut(name) {
            Some(known) => *known = length,
            None => {
                synced.insert(name.to_owned(), length);
            }
        }
    }

    fn recording_again(&self) {
        self.trouble.store(false, Ordering::Relaxed);
    }

    /// How long the writer has been in its current disk call, if it has been there past [`STALL`].
    pub(super) fn stalled_for(&self) -> Option<f64> {
        let since = self.disk_call_since_ms.load(Ordering::Relaxed);
        let took = Duration::from_millis(unix_ms().saturating_sub(since));
        (since != 0 && took >= STALL).then_some(took.as_secs_f64())
    }
}

/// How long the writer naps between drains while lines keep coming: a submitter then finds it
/// asleep rather than waiting on the queue, and queueing a line costs no wake-up.
const BATCH_EVERY: Duration = Duration::from_millis(1);

/// Bid lines alone wait at most this long (or `sync_every`, when longer) for an fsync; they go
/// with the next batch of events when one comes first. Nobody waits on them: they never cost an
/// fsync of their own sooner.
pub(super) const BID_SYNC: Duration = Duration::from_secs(1);

/// How long the writer sleeps when it has nothing to do before looking again.
const IDLE: Duration = Duration::from_secs(1);

/// The first retry after a failed write comes this soon; each failure doubles the wait, up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// At most one error line this often while the log fails.
const LOG_EVERY: Duration = Duration::from_secs(1);

pub(super) enum Message {
    /// A line to write, with its receipt's sequence number (0 for a bid line: no receipt).
    Line(Box<Event>, u64),
    /// Look at the flags (the log is closing).
    Wake,
}

pub(super) struct Writer {
    settings: Settings,
    shared: Arc<Shared>,
    file: Option<Open>,
    /// Lines taken off the queue and not yet fsynced, in queue order; the first `in_file` of
    /// them are in `file`, written but not yet fsynced.
    pending: VecDeque<Line>,
    in_file: usize,
    /// The highest receipt taken off the queue.
    taken_through: u64,
    /// The highest receipt fsynced.
    through: u64,
    /// When the last fsync ended (`None`: never, so the first batch is due at once).
    synced_at: Option<Instant>,
    /// When the oldest pending line was taken.
    pending_since: Option<Instant>,
    failure: Option<Failure>,
    /// After a failure: the hour and index of the file that failed, to reopen rather than one
    /// closed earlier with room left.
    resume: Option<(i64, u32)>,
    /// A file that failed and could not be cut back to its fsynced length: cut before anything
    /// more is written.
    uncut: Option<(File, u64)>,
}

/// A line taken off the queue.
struct Line {
    seq: u64,
    /// Hours since the epoch (UTC) of its event: the file it belongs to.
    hour: i64,
    bytes: Vec<u8>,
}

/// The log is failing: since when, how often, and when to try again.
struct Failure {
    since: Instant,
    attempts: u64,
    retry: Duration,
    logged: Option<Instant>,
    /// Failures since the last error line.
    unlogged: u64,
}

/// The file being appended to.
struct Open {
    /// Its file name.
    name: String,
    /// Hours since the epoch (UTC) of the lines in it.
    hour: i64,
    index: u32,
    /// Its length, with what is still in the buffer.
    bytes: u64,
    /// Its length as of the last fsync (or when it was opened): where a failure cuts it back to.
    synced: u64,
    out: BufWriter<File>,
}

impl Writer {
    pub(super) fn new(settings: Settings, shared: Arc<Shared>) -> Writer {
        Writer {
            settings,
            shared,
            file: None,
            pending: VecDeque::new(),
            in_file: 0,
            taken_through: 0,
            through: 0,
            synced_at: None,
            pending_since: None,
            failure: None,
            resume: None,
            uncut: None,
        }
    }

    pub(super) fn run(mut self, queue: Receiver<Message>) {
        loop {
            // While failing, the lines kept come first and nothing new is taken: the queue
            // bounds what waits in memory (past it, submissions are turned away).
            let took = if self.failure.is_none() {
                self.drain(&queue)
            } else {
                0
            };
            self.step();
            let closing = self.shared.closing.load(Ordering::Acquire);
            if closing
                && self.pending.is_empty()
                && self.shared.stats.queued.load(Ordering::Acquire) == 0
            {
                break;
            }
            if let Some(failure) = &self.failure {
                std::thread::sleep(failure.retry);
            } else if took > 0 {
                // Busy: nap instead of blocking on the queue, so a submitter never wakes us.
                std::thread::sleep(BATCH_EVERY);
            } else {
                match queue.recv_timeout(self.idle_wait()) {
                    Ok(message) => self.take(message),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        self.shared.closing.store(true, Ordering::Release);
                    }
                }
            }
        }
    }

    /// Takes everything queued. Returns how many messages it took.
    fn drain(&mut self, queue: &Receiver<Message>) -> usize {
        let mut took = 0;
        loop {
            match queue.try_recv() {
                Ok(message) => {
                    self.take(message);
                    took += 1;
                }
                Err(TryRecvError::Empty) => return took,
                Err(TryRecvError::Disconnected) => {
                    self.shared.closing.store(true, Ordering::Release);
                    return took;
                }
            }
        }
    }

    fn take(&mut self, message: Message) {
        let Message::Line(event, seq) = message else {
            return;
        };
        let stats = &self.shared.stats;
        stats.queued.fetch_sub(1, Ordering::Relaxed);
        // An event is strings, numbers and options: it always encodes. Were it ever not to, its
        // line would be missing, and said so.
        let mut bytes = serde_json::to_vec(&*event).unwrap_or_else(|e| {
            stats.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("cannot encode event of bid {}: {e}", event.bid);
            Vec::new()
        });
        if !bytes.is_empty() {
            bytes.push(b'\n');
        }
        if self.pending.is_empty() {
            self.pending_since = Some(Instant::now());
            stats.unsynced_since_ms.store(unix_ms(), Ordering::Relaxed);
        }
        stats.unsynced.fetch_add(1, Ordering::Relaxed);
        self.taken_through = self.taken_through.max(seq);
        self.pending.push_back(Line {
            seq,
            hour: event.ts.timestamp().div_euclid(3600),
            bytes,
        });
    }

    /// Writes what is pending and fsyncs it when that is due; a failure keeps it for the next try.
    fn step(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.shared.disk_call(true);
        let result = self
            .write()
            .and_then(|()| if self.sync_due() { self.sync() } else { Ok(()) });
        self.shared.disk_call(false);
        if let Err(error) = result {
            self.fail(&error);
        }
    }

    /// Whether the pending lines are to be fsynced now: lines someone waits for once
    /// `sync_every` has passed since the last fsync; bid lines alone after [`BID_SYNC`]; anything
    /// while failing (that is the retry) or closing.
    fn sync_due(&self) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        if self.failure.is_some() || self.shared.closing.load(Ordering::Acquire) {
            return true;
        }
        let since_sync = self.synced_at.map_or(Duration::MAX, |at| at.elapsed());
        let waiting = self.pending_since.map_or(Duration::ZERO, |at| at.elapsed());
        (self.taken_through > self.through && since_sync >= self.settings.sync_every)
            || waiting >= self.settings.sync_every.max(BID_SYNC)
    }

    /// How long to wait for more lines before the next fsync is due.
    fn idle_wait(&self) -> Duration {
        if self.pending.is_empty() {
            return IDLE;
        }
        let since_sync = self.synced_at.map_or(Duration::MAX, |at| at.elapsed());
        let waiting = self.pending_since.map_or(Duration::ZERO, |at| at.elapsed());
        let bids_due = self
            .settings
            .sync_every
            .max(BID_SYNC)
            .saturating_sub(waiting);
        let acked_due = if self.taken_through > self.through {
            self.settings.sync_every.saturating_sub(since_sync)
        } else {
            Duration::MAX
        };
        bids_due.min(acked_due).min(IDLE)
    }

    /// Appends the pending lines not yet in a file, each to its hour's file. A file is fsynced
    /// before the next one starts, so what is released is always a prefix of `pending`.
    fn write(&mut self) -> io::Result<()> {
        if let Some((file, len)) = &self.uncut {
            file.set_len(*len)?;
            self.uncut = None;
        }
        while let Some(line) = self.pending.get(self.in_file) {
            let (hour, len) = (line.hour, line.bytes.len() as u64);
            if self.needs_new_file(hour, len) {
                if self.in_file > 0 {
                    self.sync()?;
                }
                self.next_file(hour)?;
            }
            let (Some(open), Some(line)) = (self.file.as_mut(), self.pending.get(self.in_file))
            else {
                return Err(io::Error::other("no open event file"));
            };
            open.out.write_all(&line.bytes)?;
            open.bytes += len;
            self.in_file += 1;
        }
        Ok(())
    }

    /// Whether a line of `len` bytes of `hour` needs another file than the current one: there is
    /// none, the hour changed, or the line would take it past the size limit.
    fn needs_new_file(&self, hour: i64, len: u64) -> bool {
        match &self.file {
            None => true,
            Some(open) => {
                open.hour != hour
                    || (open.bytes > 0 && open.bytes + len > self.settings.max_file_bytes)
            }
        }
    }

    /// Lets go of the current file (fsynced, or holding nothing new) and opens the next for `hour`.
    fn next_file(&mut self, hour: i64) -> io::Result<()> {
        let index = match (&self.file, self.resume) {
            (Some(old), _) if old.hour == hour => old.index + 1,
            (Some(_), _) => 0,
            (None, Some((failed, index))) if failed == hour => index,
            (None, _) => 0,
        };
        if let Some(old) = self.file.take() {
            // Nothing of ours is left in its buffer; dropping it would only try to flush.
            let _ = old.out.into_parts();
        }
        let open = open_file(&self.settings, hour, index)?;
        self.shared.synced_to(&open.name, open.synced);
        self.file = Some(open);
        self.resume = None;
        Ok(())
    }

    /// Flushes and fsyncs the current file, then releases the lines written into it.
    fn sync(&mut self) -> io::Result<()> {
        if let Some(open) = self.file.as_mut() {
            finish(open)?;
            open.synced = open.bytes;
            self.shared.synced_to(&open.name, open.synced);
        }
        self.release();
        Ok(())
    }

    /// The first `in_file` pending lines are on disk: counts them, honours their receipts and,
    /// if the log was failing, says it writes again.
    fn release(&mut self) {
        let released = self.in_file;
        let through = self
            .pending
            .drain(..released)
            .map(|line| line.seq)
            .fold(self.through, u64::max);
        self.in_file = 0;
        let now = Instant::now();
        self.synced_at = Some(now);
        let stats = &self.shared.stats;
        stats.written.fetch_add(released as u64, Ordering::Relaxed);
        stats.unsynced.fetch_sub(released as u64, Ordering::Relaxed);
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        if self.pending.is_empty() {
            self.pending_since = None;
            stats.unsynced_since_ms.store(0, Ordering::Relaxed);
        } else {
            self.pending_since = Some(now);
            stats.unsynced_since_ms.store(unix_ms(), Ordering::Relaxed);
        }
        let recovered = self.failure.take();
        self.shared.recording_again();
        if through > self.through || recovered.is_some() {
            self.through = through;
            self.shared.durable.send_modify(|durable| {
                durable.through = through;
                durable.failing = None;
            });
        }
        if let Some(failure) = recovered {
            tracing::info!(
                "event log writing again after {} failed attempts over {:.1} s",
                failure.attempts,
                failure.since.elapsed().as_secs_f64()
            );
        }
    }

    /// A write, fsync or open failed: cuts the file back to what was fsynced and lets go of it
    /// (the pending lines are written again, whole, into a file opened afresh), says the log
    /// fails, counts it and logs it (once a second at most), and sets when to try again.
    fn fail(&mut self, error: &io::Error) {
        if let Some(open) = self.file.take() {
            self.resume = Some((open.hour, open.index));
            let synced = open.synced;
            let (file, _unwritten) = open.out.into_parts();
            if file.set_len(synced).is_err() {
                self.uncut = Some((file, synced));
            }
        }
        self.in_file = 0;
        self.shared
            .stats
            .write_errors
            .fetch_add(1, Ordering::Relaxed);
        let reason: Arc<str> = error.to_string().into();
        self.shared.failing(reason);
        let now = Instant::now();
        let failure = self.failure.get_or_insert(Failure {
            since: now,
            attempts: 0,
            retry: RETRY_FIRST / 2,
            logged: None,
            unlogged: 0,
        });
        failure.attempts += 1;
        failure.retry = (failure.retry * 2).min(RETRY_MAX);
        if failure.logged.is_some_and(|at| now - at < LOG_EVERY) {
            failure.unlogged += 1;
            return;
        }
        let more = match failure.unlogged {
            0 => String::new(),
            n => format!(" ({n} more failures since the last report)"),
        };
        tracing::error!(
            lines = self.pending.len(),
            "cannot write the event log: {error}{more}; its lines are kept and retried, event notices answer 503 meanwhile"
        );
        failure.logged = Some(now);
        failure.unlogged = 0;
    }
}

/// Flushes buffered lines and fsyncs them. A file that cannot be fsynced because it is not a
/// regular file (a pipe) has had all it can get once written.
fn finish(open: &mut Open) -> io::Result<()> {
    open.out.flush()?;
    match open.out.get_ref().sync_data() {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        synced => synced,
    }
}

/// Opens the first file of `hour`, from `index` on, that still has room: after a restart the
/// writer appends to the hour's last file instead of starting over. A file it creates has its
/// directory entry fsynced too, so what is fsynced into it can be found after a crash.
fn open_file(settings: &Settings, hour: i64, mut index: u32) -> io::Result<Open> {
    let name = DateTime::from_timestamp(hour * 3600, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H")
        .to_string();
    /// Files one hour may take: far beyond any real hour, and a stop to a search that could not end.
    const FILES_PER_HOUR: u32 = 100_000;
    while index < FILES_PER_HOUR {
        let named = file_name(&name, index);
        let path = settings.dir.join(&named);
        let existing = match std::fs::metadata(&path) {
            Ok(meta) => Some(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let bytes = existing.unwrap_or(0);
        if bytes < settings.max_file_bytes {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&path)?;
            if existing.is_none() {
                File::open(&settings.dir)?.sync_all()?;
            }
            let mut out = BufWriter::with_capacity(64 * 1024, file);
            // A crash can leave a last line cut short: start on a line of our own (readers skip
            // the broken one).
            if bytes > 0 && !ends_with_newline(out.get_mut(), bytes)? {
                out.write_all(b"\n")?;
            }
            return Ok(Open {
                name: named,
                hour,
                index,
                bytes: bytes + out.buffer().len() as u64,
                synced: bytes,
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

/// The name of the hour's file number `index`.
fn file_name(hour: &str, index: u32) -> String {
    match index {
        0 => format!("events-{hour}.jsonl"),
        n => format!("events-{hour}.{n}.jsonl"),
    }
}
