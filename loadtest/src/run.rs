//! One load run: opens the connections, then drives them open loop (requests released on their
//! schedule, each free connection taking the oldest due one) or closed loop (each connection
//! sends again as soon as it is answered) through the warmup and the measured window, with the
//! live progress line on stderr once a second; then drains what is in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinHandle;

use crate::client::{Connection, Target};
use crate::cpu::{self, Cpu};
use crate::dispatch::{Queue, release};
use crate::exchange::Exchange;
use crate::recording::{Outcome, Recording};
use crate::schedule::{Arrival, Schedule};
use crate::timer::Timer;
use crate::traffic::Traffic;

/// How requests are paced.
#[derive(Clone, Debug)]
pub enum Load {
    /// At `rate` per second on a schedule, whatever the answers.
    Open {
        rate: f64,
        arrival: Arrival,
        seed: u64,
    },
    /// Each connection sends its next request when the previous one is answered.
    Closed,
}

/// What every run of an invocation shares.
pub struct Plan {
    pub target: Arc<Target>,
    pub traffic: Arc<Traffic>,
    pub exchange: Option<Arc<Exchange>>,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// How long requests in flight at the end are waited for (the request timeout).
    pub timeout: Duration,
}

/// A run's results.
pub struct Finished {
    pub recording: Recording,
    pub window: Duration,
    pub warmup: Duration,
    pub connections: usize,
    pub cpu: Option<Cpu>,
}

enum Pace {
    Open(Arc<Queue>),
    Closed { end: Instant },
}

struct Shared {
    target: Arc<Target>,
    traffic: Arc<Traffic>,
    exchange: Option<Arc<Exchange>>,
    pace: Pace,
    /// The next request's number: decides its body and id.
    seq: AtomicU64,
    recording: Mutex<Recording>,
}

impl Shared {
    fn recording(&self) -> MutexGuard<'_, Recording> {
        // A panic while holding the lock leaves plain counts behind: keep going with them.
        self.recording.lock().unwrap_or_else(|e| e.into_inner())
    }
}

const SECOND: Duration = Duration::from_secs(1);

/// Runs `load` as `plan` says.
pub async fn run(plan: &Plan, load: &Load) -> anyhow::Result<Finished> {
    let timer = Timer::new().context("cannot make a timer")?;
    let mut connections = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        // One that cannot be made now is tried again for its first request, and counted then.
        connections.push(plan.target.connect().await.ok());
    }
    let cpu_before = cpu::process_seconds();
    let start = Instant::now();
    let window = start + plan.warmup;
    let end = window + plan.duration;
    let (pace, releaser, target_rate) = match load {
        Load::Open {
            rate,
            arrival,
            seed,
        } => {
            let queue = Arc::new(Queue::default());
            let schedule = Schedule::new(*arrival, *rate, plan.warmup + plan.duration, *seed);
            let releasing = queue.clone();
            let releaser =
                tokio::spawn(async move { release(&schedule, start, &releasing, &timer).await });
            (Pace::Open(queue), Some(releaser), Some(*rate))
        }
        Load::Closed => (Pace::Closed { end }, None, None),
    };
    let shared = Arc::new(Shared {
        target: plan.target.clone(),
        traffic: plan.traffic.clone(),
        exchange: plan.exchange.clone(),
        pace,
        seq: AtomicU64::new(0),
        recording: Mutex::new(Recording::new(window)),
    });
    let mut workers: Vec<JoinHandle<()>> = connections
        .into_iter()
        .map(|connection| tokio::spawn(worker(shared.clone(), connection)))
        .collect();

    progress(&shared, start, window, end, target_rate).await;

    if let Some(releaser) = releaser {
        releaser
            .await
            .context("the release task failed")?
            .context("the release timer failed")?;
    }
    // Requests still due or in flight get the request timeout to finish; due requests that no
    // connection took by then are counted as unsent.
    let drain = async {
        for worker in &mut workers {
            let _ = worker.await;
        }
    };
    if tokio::time::timeout(plan.timeout, drain).await.is_err()
        && let Pace::Open(queue) = &shared.pace
    {
        let unsent = queue.abandon();
        shared.recording().record_unsent(&unsent, Instant::now());
    }
    for worker in workers.iter_mut().filter(|w| !w.is_finished()) {
        let _ = worker.await;
    }

    let wall = start.elapsed();
    // Answers that came after the window's last second, to requests due in it, are in the
    // totals but in no second of the timeline.
    let recording = std::mem::replace(&mut *shared.recording(), Recording::new(window));
    let cpu = cpu_before
        .zip(cpu::process_seconds())
        .map(|(before, after)| Cpu::of(after - before, wall, recording.sent));
    Ok(Finished {
        recording,
        window: plan.duration,
        warmup: plan.warmup,
        connections: plan.connections,
        cpu,
    })
}

/// One connection's loop: take the next request (when due, or at once in closed loop), send it,
/// record how it went, hand a bid to the exchange.
async fn worker(shared: Arc<Shared>, mut connection: Connection) {
    loop {
        // The body is made before waiting, so it is ready when the request falls due.
        let seq = shared.seq.fetch_add(1, Ordering::Relaxed);
        let body = shared.traffic.body(seq);
        let due = match &shared.pace {
            Pace::Open(queue) => match queue.next().await {
                Some(due) => due,
                None => return,
            },
            Pace::Closed { end } => {
                let now = Instant::now();
                if now >= *end {
                    return;
                }
                now
            }
        };
        let sent = Instant::now();
        let (outcome, answer) = shared.target.send(&mut connection, body).await;
        shared
            .recording()
            .record(due, sent, Instant::now(), outcome);
        if let (Some(exchange), Outcome::Status(200)) = (&shared.exchange, outcome) {
            exchange.on_bid_response(seq, &answer);
        }
    }
}

/// Prints the progress line once a second until `end`: requests sent during the warmup, then
/// each second of the window as it closes.
async fn progress(
    shared: &Shared,
    start: Instant,
    window: Instant,
    end: Instant,
    target_rate: Option<f64>,
) {
    let mut sent_before = 0;
    let mut tick = start + SECOND;
    while tick < window {
        tokio::time::sleep_until(tick.into()).await;
        let sent = shared.recording().sent;
        eprintln!(
            "{:>4}s  warmup: {} req/s sent",
            (tick - start).as_secs(),
            sent - sent_before
        );
        sent_before = sent;
        tick += SECOND;
    }
    let mut t = 1;
    while window + SECOND * t <= end {
        tokio::time::sleep_until((window + SECOND * t).into()).await;
        let line = {
            let mut recording = shared.recording();
            let second = recording.close_second(u64::from(t)).clone();
            recording.progress(&second, target_rate)
        };
        eprintln!("{line}");
        t += 1;
    }
    tokio::time::sleep_until(end.into()).await;
}
