//! The event log: an append-only directory of JSON Lines files, written by one dedicated thread
//! ([`writer`]) with group commit. Nothing is acknowledged before it is on disk.
//!
//! Request handlers hand lines over through a bounded queue and never block on the disk. An event
//! ([`EventLog::submit`]) gets a [`Receipt`], its place in the log; [`EventLog::durable`] is a
//! future that completes once that line is written and fsynced, and event routes answer only
//! then. The writer drains whatever is queued, appends it, and fsyncs once for the whole batch, no
//! sooner than `sync_every` after its previous fsync; that releases every waiter of the batch at
//! once (group commit): an acknowledged line waits `sync_every` at most, plus the write and the
//! fsync. A full queue is [`Busy`] at once (the caller answers 503; exchanges and pixels retry).
//! Sampled bid lines ([`EventLog::offer`]) are best-effort: they take no receipt and no lock, nobody
//! waits for them, and they never cost an fsync of their own: they go to disk with the next batch
//! of events, or after `max(sync_every, 1 s)` without one.
//!
//! Nothing accepted is lost, or written twice, when the disk fails. A write or fsync that fails cuts
//! the file back to its length at the last fsync (no half line, no line twice), keeps the lines in
//! order and tries them again with backoff (10 ms doubling to 1 s) in the file opened afresh, while
//! it takes nothing new off the queue (memory stays bounded by the queue: past it, submissions are
//! `Busy`). Meanwhile waiters fail at once with [`Unwritten`] (the answer is 503); their lines stay
//! queued and are written when the disk recovers, and a retry of the same event waits on the same
//! receipt, so it is acknowledged once the first copy is on disk: counted once, never twice, never
//! lost. [`Health`] says why the log is not recording (`/readyz`; budgeted campaigns stop bidding
//! on it); each failed attempt is counted, and logged once a second at most. The first batch that
//! goes through ends it, by itself. A writer stuck in a disk call that does not return (a hung
//! disk) is a stall: after [`STALL`] its waiters give up (503) and `Health` reports it. A crash loses
//! only lines not yet fsynced, which nobody was told were logged.
//!
//! Files: `events-YYYYMMDDTHH.jsonl` (the UTC hour of the event), then `.1`, `.2`, … when a file
//! passes the size limit. [`read`] is the other side of the same format: it streams the lines back.
//! [`EventLog::positions`] says how far each file is whole and on disk: what a state snapshot may
//! take in while the writer appends.

pub mod read;
pub mod record;
pub mod retention;
mod writer;

pub use record::{Event, Kind};
pub use writer::{STALL, Settings, Stats};

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::metrics::Exposition;
use read::Positions;
use writer::{Durability, Message, Shared, Writer};

/// A line's place in the log, handed out by [`EventLog::submit`]: what [`EventLog::durable`]
/// waits for. Receipts grow in queue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Receipt(u64);

impl Receipt {
    /// The receipt of a line already on disk (read back from the log).
    pub const DURABLE: Receipt = Receipt(0);
}

/// Whether the log records what it accepts. Cheap to clone and to ask.
#[derive(Debug, Clone)]
pub struct Health(Arc<Shared>);

impl Health {
    /// False while writes fail or the writer has been seen stalled: what is accepted now may
    /// not reach the disk. One atomic load: the bid path may ask.
    pub fn recording(&self) -> bool {
        !self.0.trouble.load(Ordering::Relaxed)
    }

    /// Why the log is not recording, if it is not. Also notices a stall (a disk call stuck past
    /// [`STALL`]), which then holds [`Health::recording`] false until a batch goes through.
    pub fn trouble(&self) -> Option<String> {
        if let Some(reason) = self.0.durable.borrow().failing.clone() {
            return Some(format!("event log cannot write: {reason}"));
        }
        let stalled = self.0.stalled_for()?;
        self.0.trouble.store(true, Ordering::Relaxed);
        Some(format!(
            "event log stalled: a write or fsync has not returned for {stalled:.1} s"
        ))
    }
}

/// The handle request handlers use. Cheap to share; [`EventLog::close`] once at shutdown.
pub struct EventLog {
    dir: std::path::PathBuf,
    sender: SyncSender<Message>,
    capacity: usize,
    /// The last receipt handed out, held while its line is queued: receipts follow queue order.
    last: Mutex<u64>,
    writer: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
    pub stats: Arc<Stats>,
}

/// The queue is full: answer 503 and let the sender retry.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the event log is not keeping up; retry")]
pub struct Busy;

/// A line that is not on disk yet, and why: answer 503 and let the sender retry. The line stays
/// queued; the retry waits on the same receipt.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Unwritten {
    #[error("the event log cannot write ({0}); retry")]
    Failing(Arc<str>),
    #[error("the event log has not reached the disk for {STALL:?}; retry")]
    Stalled,
    #[error("the event log is closed")]
    Closed,
}

impl EventLog {
    /// Creates the directory if needed and starts the writer thread.
    pub fn open(settings: Settings) -> io::Result<EventLog> {
        std::fs::create_dir_all(&settings.dir)?;
        let capacity = settings.queue.max(1);
        let (sender, receiver) = mpsc::sync_channel(capacity);
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            stats: stats.clone(),
            durable: watch::Sender::new(Durability::default()),
            trouble: AtomicBool::new(false),
            disk_call_since_ms: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            synced: Mutex::default(),
        });
        let dir = settings.dir.clone();
        let writer = Writer::new(settings, shared.clone());
        let handle = std::thread::Builder::new()
            .name("event-log".into())
            .spawn(move || writer.run(receiver))?;
        Ok(EventLog {
            dir,
            sender,
            capacity,
            last: Mutex::new(0),
            writer: Mutex::new(Some(handle)),
            shared,
            stats,
        })
    }

    /// How many events the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the log records what it accepts, and why not.
    pub fn health(&self) -> Health {
        Health(self.shared.clone())
    }

    /// Queues `event` for writing, without waiting; its receipt says when it is on disk
    /// ([`EventLog::durable`]).
    pub fn submit(&self, event: Event) -> Result<Receipt, Busy> {
        if self.shared.closing.load(Ordering::Relaxed) {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Busy);
        }
        let event = Box::new(event);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = *last + 1;
        self.queue(Message::Line(event, seq))?;
        *last = seq;
        Ok(Receipt(seq))
    }

    /// The receipt of the last line queued: once it is on disk, so is every line queued before it.
    pub fn last_receipt(&self) -> Receipt {
        Receipt(*self.last.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// How far each log file is whole and on disk, by name: files this run wrote, as of their
    /// last fsync; the others (written before this run) as they are. Lines past these positions
    /// may still be in flight; a state snapshot takes in the log up to them.
    pub fn positions(&self) -> io::Result<Positions> {
        // Listed first: a file the writer opens after the listing is in `synced`, with what it
        // held then; one it opens after `synced` was read held what the listing saw.
        let mut positions = read::lengths(&self.dir)?;
        let synced = self
            .shared
            .synced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        positions.extend(synced);
        Ok(positions)
    }

    /// Queues a best-effort line (a sampled bid), without waiting: no receipt, no lock.
    pub fn offer(&self, event: Event) -> Result<(), Busy> {
        self.queue(Message::Line(Box::new(event), 0))
    }

    fn queue(&self, message: Message) -> Result<(), Busy> {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match self.sender.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(Busy)
            }
        }
    }

    /// Completes once the line of `receipt` is written and fsynced. Fails at once while the log
    /// cannot write, and after [`STALL`] when the writer does not get there: the line stays
    /// queued, and a later call with the same receipt waits again. Never blocks a thread.
    pub async fn durable(&self, receipt: Receipt) -> Result<(), Unwritten> {
        let mut durability = self.shared.durable.subscribe();
        let settled = durability.wait_for(|d| d.through >= receipt.0 || d.failing.is_some());
        match tokio::time::timeout(STALL, settled).await {
            Ok(Ok(now)) if now.through >= receipt.0 => Ok(()),
            Ok(Ok(now)) => Err(Unwritten::Failing(now.failing.clone().unwrap_or_default())),
            Ok(Err(_)) => Err(Unwritten::Closed),
            Err(_) => {
                // Notices a stuck disk call for those that do not wait (the bid path).
                let _ = self.health().trouble();
                Err(Unwritten::Stalled)
            }
        }
    }

    /// Its metrics: lines written, turned away and failed, the queue, what a crash would lose.
    pub fn report(&self, out: &mut Exposition) {
        let stats = &self.stats;
        let counted = |n: &AtomicU64| n.load(Ordering::Relaxed);
        for (name, help, value) in [
            (
                "precis_event_log_written_total",
                "Lines written and fsynced to the event log.",
                &stats.written,
            ),
            (
                "precis_event_log_syncs_total",
                "Fsyncs of the event log (group commits).",
                &stats.syncs,
            ),
            (
                "precis_event_log_refused_total",
                "Lines the event log's full queue turned away.",
                &stats.refused,
            ),
            (
                "precis_event_log_write_errors_total",
                "Writes, fsyncs and opens of the event log that failed (each attempt; lines are kept and retried).",
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
            "precis_event_log_unsynced",
            "Lines the writer holds that are not fsynced yet (written, or kept while the disk fails).",
            counted(&stats.unsynced),
        );
        out.gauge(
            "precis_event_log_failing",
            "1 while the event log cannot write or has stalled (see /readyz), else 0.",
            u64::from(self.health().trouble().is_some()),
        );
        out.gauge(
            "precis_event_log_sync_age_seconds",
            "How long the oldest line taken by the writer has waited for its fsync; 0 when all are on disk.",
            stats.sync_age_secs(),
        );
    }

    /// Writes everything queued so far, fsyncs and stops the writer; later submissions are refused.
    /// Blocks until done, or until `patience` runs out (a hung or failing disk must not hang
    /// shutdown forever: that is logged as an error). Call it from a blocking context, after the
    /// server stopped taking requests.
    pub fn close(&self, patience: Duration) {
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(handle) = handle else { return };
        self.shared.closing.store(true, Ordering::Release);
        // Wakes an idle writer; a busy one (a full queue) sees the flag anyway.
        let _ = self.sender.try_send(Message::Wake);
        let deadline = Instant::now() + patience;
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                let queued = self.stats.queued.load(Ordering::Relaxed);
                let unsynced = self.stats.unsynced.load(Ordering::Relaxed);
                tracing::error!(
                    "event log writer still busy after {patience:?} ({queued} lines queued, {unsynced} not fsynced): giving up on it"
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::Kind;
    use std::path::Path;

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

    /// Polls `done` every 5 ms until it holds; fails after 10 s saying `what` it waited for.
    fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls `future` once: its output if it is ready now.
    fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A log in `dir` whose group commit window is an hour: after its first batch, the next fsync
    /// is an hour away (or at close).
    fn hour_window(dir: &Path) -> EventLog {
        EventLog::open(Settings {
            sync_every: Duration::from_secs(3600),
            ..settings(dir, 1 << 20)
        })
        .unwrap()
    }

    #[test]
    fn a_waiter_is_released_once_its_line_is_fsynced_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let log = hour_window(dir.path());
        let rt = runtime();
        let _in_runtime = rt.enter();
        // An idle log fsyncs the first line at once.
        let first = log.submit(event("b1", "2026-11-23T10:00:00Z")).unwrap();
        rt.block_on(log.durable(first)).unwrap();
        assert_eq!(log.stats.syncs.load(Ordering::Relaxed), 1);
        let (written, _) = read_back(dir.path());
        assert_eq!(written.len(), 1);

        // The second is taken by the writer but waits for the window: its waiter is not released.
        let second = log.submit(event("b2", "2026-11-23T10:00:00Z")).unwrap();
        assert_ne!(first, second);
        eventually("the writer to take the line", || {
            log.stats.unsynced.load(Ordering::Relaxed) == 1
        });
        assert_eq!(ready_now(log.durable(second)), None);
        // A line already on disk is, at once.
        assert_eq!(ready_now(log.durable(first)), Some(Ok(())));
        assert_eq!(ready_now(log.durable(Receipt::DURABLE)), Some(Ok(())));
        // Closing fsyncs it, and only that releases it.
        log.close(Duration::from_secs(10));
        assert_eq!(ready_now(log.durable(second)), Some(Ok(())));
        assert_eq!(log.stats.syncs.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn bid_lines_wait_for_the_next_batch_of_events_and_cost_no_fsync_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let log = hour_window(dir.path());
        for i in 0..100 {
            let line = Event {
                event: Kind::Bid,
                ..event(&format!("b{i}"), "2026-11-23T10:00:00Z")
            };
            log.offer(line).unwrap();
        }
        eventually("the writer to take the bid lines", || {
            log.stats.unsynced.load(Ordering::Relaxed) == 100
        });
        assert_eq!(log.stats.syncs.load(Ordering::Relaxed), 0);
        assert_eq!(log.stats.written.load(Ordering::Relaxed), 0);
        // An event's batch takes them along: one fsync for all.
        let win = log.submit(event("w", "2026-11-23T10:00:00Z")).unwrap();
        runtime().block_on(log.durable(win)).unwrap();
        assert_eq!(log.stats.syncs.load(Ordering::Relaxed), 1);
        assert_eq!(log.stats.written.load(Ordering::Relaxed), 101);
        assert_eq!(log.stats.sync_age_secs(), 0.0);
        log.close(Duration::from_secs(10));
    }

    #[test]
    fn a_failing_disk_fails_the_waiters_keeps_the_lines_and_writes_them_once_it_recovers() {
        let dir = tempfile::tempdir().unwrap();
        // The hour's file cannot be opened: a directory has its name.
        let blocker = dir.path().join("events-20261123T10.jsonl");
        std::fs::create_dir(&blocker).unwrap();
        let log = EventLog::open(settings(dir.path(), 1 << 20)).unwrap();
        let health = log.health();
        assert!(health.recording());
        let rt = runtime();
        let receipts: Vec<Receipt> = (0..3)
            .map(|i| log.submit(event(&format!("b{i}"), "2026-11-23T10:00:00Z")))
            .collect::<Result<_, _>>()
            .unwrap();
        for receipt in &receipts {
            let failed = rt.block_on(log.durable(*receipt));
            assert!(matches!(failed, Err(Unwritten::Failing(_))), "{failed:?}");
        }
        assert!(!health.recording());
        let trouble = health.trouble().expect("the log says why");
        assert!(trouble.contains("cannot write"), "{trouble}");
        assert!(log.stats.write_errors.load(Ordering::Relaxed) >= 1);
        assert_eq!(log.stats.written.load(Ordering::Relaxed), 0);
        // Kept: taken and written again, or still queued (the writer takes nothing new meanwhile).
        let kept =
            log.stats.unsynced.load(Ordering::Relaxed) + log.stats.queued.load(Ordering::Relaxed);
        assert_eq!(kept, 3);

        // The disk recovers: the kept lines are written, once each, and the waiters released.
        std::fs::remove_dir(&blocker).unwrap();
        eventually("the log to write again", || {
            receipts
                .iter()
                .all(|r| rt.block_on(log.durable(*r)).is_ok())
        });
        assert!(health.recording());
        assert_eq!(health.trouble(), None);
        log.close(Duration::from_secs(10));
        let (written, _) = read_back(dir.path());
        let bids: Vec<&str> = written.iter().map(|e| e.bid.as_str()).collect();
        assert_eq!(bids, ["b0", "b1", "b2"]);
    }

    #[test]
    fn lines_fsynced_before_a_failure_are_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(settings(dir.path(), 1 << 20)).unwrap();
        let rt = runtime();
        let first = log.submit(event("b0", "2026-11-23T10:00:00Z")).unwrap();
        rt.block_on(log.durable(first)).unwrap();
        // The next hour's file cannot be opened: the batch that spans both hours fails after its
        // first line went into this hour's file.
        let blocker = dir.path().join("events-20261123T11.jsonl");
        std::fs::create_dir(&blocker).unwrap();
        // (b1 is fsynced in its own file before the next hour's file is opened.)
        let receipts: Vec<Receipt> = [
            ("b1", "2026-11-23T10:30:00Z"),
            ("b2", "2026-11-23T11:00:00Z"),
        ]
        .iter()
        .map(|(bid, ts)| log.submit(event(bid, ts)).unwrap())
        .collect();
        eventually("the batch to fail", || {
            log.stats.write_errors.load(Ordering::Relaxed) >= 1
        });
        std::fs::remove_dir(&blocker).unwrap();
        eventually("the log to write again", || {
            receipts
                .iter()
                .all(|r| rt.block_on(log.durable(*r)).is_ok())
        });
        log.close(Duration::from_secs(10));
        let (written, names) = read_back(dir.path());
        let bids: Vec<&str> = written.iter().map(|e| e.bid.as_str()).collect();
        assert_eq!(bids, ["b0", "b1", "b2"], "{names:?}");
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
        let left =
            log.stats.queued.load(Ordering::Relaxed) + log.stats.unsynced.load(Ordering::Relaxed);
        assert!(left > 0);
    }
}
