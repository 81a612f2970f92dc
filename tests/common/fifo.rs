//! Named pipes, for tests that hold the bidder at a chosen point without timing anything: a file
//! it reads (the taxonomy, at start-up) or appends to (an event log file) that is a pipe makes
//! the bidder wait on the test's end of it. `mkfifo` makes them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::{Campaign, DEADLINE, Server, banner_imp, notice_path, str_of};

/// Makes a named pipe at `path`.
pub fn make(path: &Path) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create the pipe's directory");
    }
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {} failed", path.display());
}

/// Writes `text` into the pipe at `path` once the bidder opens it to read, then closes it: the
/// bidder reads `text` and the end of the file. Blocks until then: call it off the runtime.
pub fn feed(path: &Path, text: &str) {
    let mut pipe = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} to write: {e}", path.display()));
    pipe.write_all(text.as_bytes())
        .expect("write into the pipe");
}

/// The reading end of a pipe the bidder writes to, not read until [`Held::release`]: once the
/// pipe's buffer is full, the bidder's writes wait for the test.
pub struct Held {
    path: PathBuf,
    release: mpsc::Sender<()>,
    read: mpsc::Receiver<Vec<u8>>,
}

impl Held {
    /// Opens the pipe at `path` to read (on a thread of its own: the open waits for a writer)
    /// and reads nothing until released.
    pub fn open(path: &Path) -> Held {
        let (release, released) = mpsc::channel::<()>();
        let (send, read) = mpsc::channel();
        let opened = path.to_owned();
        std::thread::spawn(move || {
            let mut pipe = std::fs::File::open(&opened).expect("open the pipe to read");
            if released.recv().is_err() {
                return;
            }
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = send.send(bytes);
        });
        Held {
            path: path.to_owned(),
            release,
            read,
        }
    }

    /// Starts reading: everything written so far, and from now on, goes through.
    pub fn release(&self) {
        let _ = self.release.send(());
    }

    /// Releases the pipe and returns everything the bidder wrote to it, once its writer closed
    /// it (its writing thread finished, or the process exited).
    pub fn everything(self) -> Vec<u8> {
        self.release();
        self.read.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!(
                "{} was not closed by its writer within {DEADLINE:?}",
                self.path.display()
            )
        })
    }
}

/// When the simulated clock of [`held_event_log`] stands, and so the hour of its event log file.
pub const SIMULATED: &str = "2030-01-01T10:00:00Z";

/// The event log file of [`SIMULATED`]'s hour, relative to the server's directory.
const LOG_FILE: &str = "logs/events-20300101T10.jsonl";

/// A bidder on a clock standing at [`SIMULATED`], with one campaign (`a`: 2.0
/// CPM for 300x250), an event queue of `queue` and an event log file that is a pipe the test
/// holds: once the pipe's buffer is full, the log's writer waits for [`Held::release`].
pub fn held_event_log(queue: usize) -> (Server, Held) {
    let server = Server::setup()
        .arg("--simulate-from")
        .arg(SIMULATED)
        .config(&format!("[events]\nqueue = {queue}\n"))
        .fifo(LOG_FILE)
        .campaign("a.toml", Campaign::cpm(2.0).banner(300, 250))
        .start();
    let held = Held::open(&server.root().join(LOG_FILE));
    (server, held)
}

/// Bids with 64-imp requests (a bid line each) until the held log's writer is stuck on the full
/// pipe (the kernel says so) and its queue of `queue` holds all the bid lines it takes (half of
/// it). Returns every bid made.
pub async fn back_up(server: &Server, queue: usize) -> Vec<Value> {
    let imps = (0..64)
        .map(|i| banner_imp(&i.to_string(), 300, 250))
        .collect();
    let request = super::request(imps);
    let mut made = Vec::new();
    // A 64 KiB pipe, a 64 KiB buffer and the queue: a few hundred lines of a few hundred bytes.
    for _ in 0..1_000 {
        let response = server.bid(&request).await.expect("a bid per imp");
        made.extend(super::bids(&response).iter().cloned());
        let queued = server.metric("precis_event_log_queued").await;
        if queued >= (queue / 2) as f64 && writer_stuck(server.pid()) {
            return made;
        }
    }
    panic!(
        "{} bids and the log's writer still writes: the log is not held",
        made.len()
    );
}

/// Whether the event log's writer thread of process `pid` waits to write into a full pipe.
fn writer_stuck(pid: u32) -> bool {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("list the threads");
    for task in tasks {
        let task = task.expect("a thread").path();
        let read = |name: &str| std::fs::read_to_string(task.join(name)).unwrap_or_default();
        if read("comm").trim() == "event-log" {
            return read("wchan").contains("pipe_write");
        }
    }
    panic!("no event-log thread in process {pid}");
}

/// A win notice the event log turned away: its bid's id, its path, and the answer.
pub struct TurnedAway {
    pub bid: String,
    pub path: String,
    pub answer: Answer,
}

/// An answer: status, headers, body.
pub type Answer = (StatusCode, HeaderMap, Bytes);

/// Fires the win notice (at 1.0) of each bid in `made`, one after the other, each without
/// waiting for its answer (it comes once its line is on disk, and the held log writes nothing),
/// until the log turns one away. Returns the wins it queued, by bid id, with their answers to
/// come, and the first turned away (503), if any.
pub async fn win_until_busy(
    server: &Server,
    made: &[Value],
) -> (HashMap<String, JoinHandle<Answer>>, Option<TurnedAway>) {
    let mut queued = HashMap::new();
    for bid in made {
        let path = win_path(bid);
        let id = str_of(bid, "id").to_owned();
        let before = server.metric("precis_event_log_queued").await;
        let request = Request::get(server.url(&path))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let client = server.client.clone();
        let answer = tokio::spawn(async move {
            let response = client.request(request).await.expect("an answer");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("a body").to_bytes();
            (parts.status, parts.headers, body)
        });
        let answered = server
            .eventually("the win queued, or answered", async || {
                if answer.is_finished() {
                    return Ok(true);
                }
                let now = server.metric("precis_event_log_queued").await;
                (now > before).then_some(false).ok_or(now.to_string())
            })
            .await;
        if answered {
            let answer = answer.await.expect("the win's answer");
            let bid = id;
            return (queued, Some(TurnedAway { bid, path, answer }));
        }
        queued.insert(id, answer);
    }
    (queued, None)
}

/// The path of `bid`'s win notice at 1.0, as [`win_until_busy`] sends it.
pub fn win_path(bid: &Value) -> String {
    notice_path(bid, "nurl", "1.0")
}
