//! Releasing requests at their due times, and the queue where released requests wait for a free
//! connection.
//!
//! A task on the runtime releases each request when it falls due, woken by a [`Timer`] precise
//! to microseconds. Released requests (their due times) queue here; an idle connection takes the
//! oldest. When every connection is busy they wait, and that wait is part of their latency, as it
//! is for an exchange whose connections to the bidder are all taken.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Mutex;
use std::task::{Poll, Waker};
use std::time::Instant;

use crate::schedule::Schedule;
use crate::timer::Timer;

/// Due requests waiting for a connection, and the connections waiting for a request.
#[derive(Default)]
pub struct Queue {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Due times of released requests no connection has taken yet, oldest first.
    due: VecDeque<Instant>,
    /// Connections waiting for a request, longest waiting first.
    idle: VecDeque<Waker>,
    /// No more requests will be released.
    closed: bool,
}

impl Queue {
    /// Releases requests due at `times`, waking as many idle connections.
    pub fn push(&self, times: &[Instant]) {
        let wake: Vec<Waker> = {
            let mut state = self.lock();
            state.due.extend(times);
            let n = times.len().min(state.idle.len());
            state.idle.drain(..n).collect()
        };
        wake.into_iter().for_each(Waker::wake);
    }

    /// No more requests: connections take what is queued, then [`Queue::next`] ends.
    pub fn close(&self) {
        let wake: Vec<Waker> = {
            let mut state = self.lock();
            state.closed = true;
            state.idle.drain(..).collect()
        };
        wake.into_iter().for_each(Waker::wake);
    }

    /// Closes the queue and takes the due times of the requests no connection took.
    pub fn abandon(&self) -> Vec<Instant> {
        self.close();
        self.lock().due.drain(..).collect()
    }

    /// The due time of the oldest released request, waiting for one when there is none; `None`
    /// once the queue is closed and empty.
    pub async fn next(&self) -> Option<Instant> {
        poll_fn(|cx| {
            let mut state = self.lock();
            if let Some(due) = state.due.pop_front() {
                Poll::Ready(Some(due))
            } else if state.closed {
                Poll::Ready(None)
            } else {
                state.idle.push_back(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep going with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Releases every request of `schedule` into `queue` when it falls due after `start`, then
/// closes the queue.
pub async fn release(
    schedule: &Schedule,
    start: Instant,
    queue: &Queue,
    timer: &Timer,
) -> std::io::Result<()> {
    let mut next = 0;
    let mut batch = Vec::new();
    while let Some(offset) = schedule.at(next) {
        timer.sleep_until(start + offset).await?;
        // Everything due by now goes at once: at high rates, several requests fall due while the
        // runtime is busy elsewhere.
        let now = Instant::now();
        while let Some(offset) = schedule.at(next)
            && start + offset <= now
        {
            batch.push(start + offset);
            next += 1;
        }
        queue.push(&batch);
        batch.clear();
    }
    queue.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Arrival;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn connections_take_released_requests_oldest_first_then_see_the_end() {
        let queue = Queue::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(1);
        queue.push(&[t0, t1]);
        queue.close();
        assert_eq!(queue.next().await, Some(t0));
        assert_eq!(queue.next().await, Some(t1));
        assert_eq!(queue.next().await, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_connections_are_woken_by_releases_and_by_close() {
        let queue = Arc::new(Queue::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let mut taken = 0;
                    while queue.next().await.is_some() {
                        taken += 1;
                    }
                    taken
                })
            })
            .collect();
        let schedule = Schedule::new(Arrival::Constant, 1000.0, Duration::from_millis(50), 1);
        let timer = Timer::new().expect("a timer");
        let start = Instant::now();
        release(&schedule, start, &queue, &timer)
            .await
            .expect("released");
        assert!(
            start.elapsed() >= Duration::from_millis(49),
            "on schedule, not before"
        );
        let mut taken = 0;
        for waiter in waiters {
            taken += waiter.await.expect("waiter");
        }
        assert_eq!(taken, 50, "every released request is taken exactly once");
    }

    #[test]
    fn abandoning_returns_what_no_connection_took() {
        let queue = Queue::default();
        let t0 = Instant::now();
        queue.push(&[t0]);
        assert_eq!(queue.abandon(), vec![t0]);
        assert!(queue.abandon().is_empty());
    }
}
