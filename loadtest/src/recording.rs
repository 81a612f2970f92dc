//! What a run measures: the bid latency histogram (from each request's due time), answers by
//! kind, the per-second timeline and the live progress line.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, from 1 µs to an hour, to 3 significant digits.
const HIGHEST_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// A new, empty latency histogram in microseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// How one bid request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP answer with this status.
    Status(u16),
    /// No complete answer within `--timeout`.
    Timeout,
    /// The connection could not be made, or broke before the answer.
    ConnectionError,
}

/// Bid requests by how they ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// 200: a bid.
    pub status_200: u64,
    /// 204: no bid.
    pub status_204: u64,
    /// Any other 1xx, 2xx or 3xx status.
    pub status_other: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub timeouts: u64,
    pub connection_errors: u64,
    /// Due but never sent by the end of the run, every connection being busy until then.
    pub unsent: u64,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        let count = match outcome {
            Outcome::Status(200) => &mut self.status_200,
            Outcome::Status(204) => &mut self.status_204,
            Outcome::Status(400..=499) => &mut self.status_4xx,
            Outcome::Status(500..) => &mut self.status_5xx,
            Outcome::Status(_) => &mut self.status_other,
            Outcome::Timeout => &mut self.timeouts,
            Outcome::ConnectionError => &mut self.connection_errors,
        };
        *count += 1;
    }

    /// Every request due in the window.
    pub fn total(&self) -> u64 {
        self.answered() + self.timeouts + self.connection_errors + self.unsent
    }

    /// Requests that got an HTTP answer.
    pub fn answered(&self) -> u64 {
        self.status_200 + self.status_204 + self.status_other + self.status_4xx + self.status_5xx
    }

    /// Requests that did not get a 2xx or 3xx answer.
    pub fn errors(&self) -> u64 {
        self.status_4xx + self.status_5xx + self.timeouts + self.connection_errors + self.unsent
    }
}

/// The usual percentiles of a latency histogram, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        let at = |q: f64| ms(histogram.value_at_quantile(q));
        Percentiles {
            count: histogram.len(),
            mean: histogram.mean() / 1000.0,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p99_9: at(0.999),
            p99_99: at(0.9999),
            max: ms(histogram.max()),
        }
    }
}

/// Microseconds as milliseconds.
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// One second of the measured window.
#[derive(Clone, Debug, Serialize)]
pub struct Second {
    /// Seconds since the window began, at the end of this second.
    pub t: u64,
    /// Requests that ended in this second.
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Everything recorded so far. Requests due before `window` (the warmup) are only counted in
/// `sent`.
pub struct Recording {
    window: Instant,
    /// Bid requests sent or attempted over the whole run, warmup included.
    pub sent: u64,
    /// Due time to complete answer (or timeout, or the end for unsent requests), in µs.
    pub latency: Histogram<u64>,
    /// Due time to sending, in µs: the generator's own delay plus the wait for a free connection.
    pub send_delay: Histogram<u64>,
    pub counts: Counts,
    second: Histogram<u64>,
    second_counts: Counts,
    pub timeline: Vec<Second>,
}

impl Recording {
    /// A recording whose measured window begins at `window`.
    pub fn new(window: Instant) -> Recording {
        Recording {
            window,
            sent: 0,
            latency: histogram(),
            send_delay: histogram(),
            counts: Counts::default(),
            second: histogram(),
            second_counts: Counts::default(),
            timeline: Vec::new(),
        }
    }

    /// A request due at `due`, sent at `sent`, that ended at `done` with `outcome`. Connection
    /// errors have no latency; timeouts count with the time they were given.
    pub fn record(&mut self, due: Instant, sent: Instant, done: Instant, outcome: Outcome) {
        self.sent += 1;
        if due < self.window {
            return;
        }
        self.counts.add(outcome);
        self.second_counts.add(outcome);
        if outcome != Outcome::ConnectionError {
            let latency = micros(done - due);
            self.latency.saturating_record(latency);
            self.second.saturating_record(latency);
            self.send_delay.saturating_record(micros(sent - due));
        }
    }

    /// Requests due at `due` that no connection took before the run ended at `end`: each counts
    /// as unsent, with the latency it had reached (a lower bound).
    pub fn record_unsent(&mut self, due: &[Instant], end: Instant) {
        for due in due.iter().filter(|due| **due >= self.window) {
            self.counts.unsent += 1;
            self.second_counts.unsent += 1;
            let latency = micros(end.saturating_duration_since(*due));
            self.latency.saturating_record(latency);
            self.second.saturating_record(latency);
        }
    }

    /// Closes the second ending `t` seconds into the window and starts the next.
    pub fn close_second(&mut self, t: u64) -> &Second {
        self.timeline.push(Second {
            t,
            requests: self.second_counts.total(),
            errors: self.second_counts.errors(),
            p50_ms: ms(self.second.value_at_quantile(0.5)),
            p99_ms: ms(self.second.value_at_quantile(0.99)),
            max_ms: ms(self.second.max()),
        });
        self.second.reset();
        self.second_counts = Counts::default();
        self.timeline.last().expect("just pushed")
    }

    /// The live progress line for second `second` (target rate `target`, if open loop).
    pub fn progress(&self, second: &Second, target: Option<f64>) -> String {
        let target = target.map_or(String::new(), |rate| format!(" (target {rate:.0})"));
        format!(
            "{:>4}s  {:>7} req/s{target}  p99 {:.3} ms (this second {:.3} ms)  errors {}",
            second.t,
            second.requests,
            ms(self.latency.value_at_quantile(0.99)),
            second.p99_ms,
            self.counts.errors(),
        )
    }
}

/// A duration in whole microseconds, at least 1 (the histogram's lowest value).
fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_runs_from_the_due_time_and_the_warmup_is_left_out() {
        let window = Instant::now();
        let mut recording = Recording::new(window);
        let after = Duration::from_millis;
        // Warmup: counted as sent only.
        recording.record(
            window - after(5),
            window - after(5),
            window,
            Outcome::Status(200),
        );
        // Due at window, sent 40 ms late (all connections busy), answered 10 ms after sending.
        recording.record(
            window,
            window + after(40),
            window + after(50),
            Outcome::Status(204),
        );
        recording.record(window, window, window + after(1), Outcome::ConnectionError);
        recording.record(window, window, window + after(2000), Outcome::Timeout);
        recording.record_unsent(
            &[window - after(1), window + after(100)],
            window + after(300),
        );

        assert_eq!(recording.sent, 4);
        assert_eq!(
            recording.counts,
            Counts {
                status_204: 1,
                timeouts: 1,
                connection_errors: 1,
                unsent: 1,
                ..Counts::default()
            }
        );
        assert_eq!(recording.counts.total(), 4);
        assert_eq!(recording.counts.errors(), 3);
        let latency = Percentiles::of(&recording.latency);
        // 50 ms for the 204, 2 s for the timeout, 200 ms waited by the unsent request.
        assert_eq!(latency.count, 3);
        assert!(
            (49.9..50.1).contains(&ms(recording.latency.min())),
            "{latency:?}"
        );
        assert!((199.0..201.0).contains(&latency.p50), "{latency:?}");
        assert!((1999.0..2001.0).contains(&latency.max), "{latency:?}");
        assert!((39.9..40.1).contains(&ms(recording.send_delay.max())));
    }

    #[test]
    fn each_second_has_its_own_percentiles() {
        let window = Instant::now();
        let mut recording = Recording::new(window);
        let at = |ms| window + Duration::from_millis(ms);
        recording.record(window, window, at(100), Outcome::Status(200));
        let first = recording.close_second(1).clone();
        recording.record(at(1000), at(1000), at(1002), Outcome::Status(500));
        let second = recording.close_second(2).clone();
        assert_eq!((first.requests, first.errors), (1, 0));
        assert!((99.0..101.0).contains(&first.max_ms));
        assert_eq!((second.requests, second.errors), (1, 1));
        assert!((1.9..2.1).contains(&second.p99_ms));
        let line = recording.progress(&second, Some(1000.0));
        assert!(
            line.contains("(target 1000)") && line.contains("errors 1"),
            "{line}"
        );
    }
}
