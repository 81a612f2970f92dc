//! Bid-path latency: an HDR histogram (microseconds, 3 significant digits, up to 60 s) striped
//! over a few mutexes so that concurrent requests rarely meet, merged when `/metrics` is scraped.
//!
//! Recording takes the recording thread's own stripe (`try_lock`, then the next free one); it
//! never allocates and never waits unless every stripe is busy at once. Counts are since start.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;

/// More stripes than the bidder has worker threads on the machines it runs on.
const STRIPES: usize = 8;
/// The largest duration kept apart, in microseconds (60 s); longer ones count as this.
const HIGHEST_US: u64 = 60_000_000;

/// Bid-path durations since start.
#[derive(Debug)]
pub struct Latency {
    stripes: [Mutex<Stripe>; STRIPES],
}

#[derive(Debug, Clone)]
struct Stripe {
    histogram: Histogram<u64>,
    /// Exact sum of the durations recorded, nanoseconds (the histogram only keeps buckets).
    sum_nanos: u64,
}

/// What the stripes hold together.
pub struct Merged {
    pub histogram: Histogram<u64>,
    pub sum: Duration,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            stripes: std::array::from_fn(|_| Mutex::new(Stripe::new())),
        }
    }
}

impl Stripe {
    fn new() -> Stripe {
        Stripe {
            // 1 µs to 60 s at 3 significant digits: bounds that are valid, so this cannot fail.
            histogram: Histogram::new_with_bounds(1, HIGHEST_US, 3)
                .unwrap_or_else(|_| unreachable!("valid histogram bounds")),
            sum_nanos: 0,
        }
    }
}

thread_local! {
    /// The stripe this thread records into first: threads are spread round robin.
    static HOME: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES
    };
}

impl Latency {
    pub fn record(&self, took: Duration) {
        let home = HOME.with(|home| *home);
        let free = (0..STRIPES).find_map(|i| self.stripes[(home + i) % STRIPES].try_lock().ok());
        let mut stripe = free.unwrap_or_else(|| lock(&self.stripes[home]));
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        stripe
            .histogram
            .saturating_record(micros.clamp(1, HIGHEST_US));
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        stripe.sum_nanos = stripe.sum_nanos.saturating_add(nanos);
    }

    /// All stripes added up (off the bid path: a scrape).
    pub fn merged(&self) -> Merged {
        let mut total = Stripe::new();
        for stripe in &self.stripes {
            let stripe = lock(stripe).clone();
            // Same bounds on both sides: adding cannot fail.
            let _ = total.histogram.add(&stripe.histogram);
            total.sum_nanos = total.sum_nanos.saturating_add(stripe.sum_nanos);
        }
        Merged {
            histogram: total.histogram,
            sum: Duration::from_nanos(total.sum_nanos),
        }
    }
}

/// A stripe's lock; a panic elsewhere while it was held leaves counts that are still counts.
fn lock(stripe: &Mutex<Stripe>) -> MutexGuard<'_, Stripe> {
    stripe
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_from_many_threads_all_count() {
        let latency = Latency::default();
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let latency = &latency;
                scope.spawn(move || {
                    for i in 0..1_000u64 {
                        latency.record(Duration::from_micros(10 + t * 1_000 + i % 10));
                    }
                });
            }
        });
        let merged = latency.merged();
        assert_eq!(merged.histogram.len(), 4_000);
        assert_eq!(merged.histogram.count_between(0, 19), 1_000);
        let sum: u64 = (0..4u64)
            .map(|t| (0..1_000u64).map(|i| 10 + t * 1_000 + i % 10).sum::<u64>())
            .sum();
        assert_eq!(merged.sum, Duration::from_micros(sum));
    }

    #[test]
    fn a_duration_past_the_range_counts_at_its_top() {
        let latency = Latency::default();
        latency.record(Duration::from_secs(3_600));
        latency.record(Duration::ZERO);
        let merged = latency.merged();
        assert_eq!(merged.histogram.len(), 2);
        assert!(merged.histogram.max() >= HIGHEST_US * 999 / 1000);
    }
}
