//! Metrics: counters operators scrape from `GET /metrics` (Prometheus text format).
//!
//! Counting is one relaxed atomic add on the request path; rendering reads the counters and the
//! current snapshot. Nothing here allocates per request or takes a lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::reload::Snapshot;

/// What became of one request to the bid endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with at least one bid.
    Bid,
    /// 204: nothing to bid.
    NoBid,
    /// 400: not a bid request.
    BadRequest,
    /// 413: body over the limit.
    TooLarge,
    /// 408: body not received in time.
    Timeout,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Bid,
        Outcome::NoBid,
        Outcome::BadRequest,
        Outcome::TooLarge,
        Outcome::Timeout,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Bid => "bid",
            Outcome::NoBid => "no_bid",
            Outcome::BadRequest => "bad_request",
            Outcome::TooLarge => "too_large",
            Outcome::Timeout => "timeout",
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    outcomes: [AtomicU64; 5],
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl Metrics {
    pub fn count(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn outcomes(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome as usize].load(Ordering::Relaxed)
    }

    /// A reload ran; `ok` is false when the campaign directory could not be read at all.
    pub fn reloaded(&self, ok: bool) {
        let counter = if ok {
            &self.reloads
        } else {
            &self.reload_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::with_capacity(1024);
        out.push_str(
            "# HELP precis_bid_requests_total Requests to the bid endpoint, by outcome.\n",
        );
        out.push_str("# TYPE precis_bid_requests_total counter\n");
        for outcome in Outcome::ALL {
            let _ = writeln!(
                out,
                "precis_bid_requests_total{{outcome=\"{}\"}} {}",
                outcome.label(),
                self.outcomes(outcome)
            );
        }
        let gauges = [
            (
                "precis_campaigns_live",
                "Active campaigns in the auction.",
                snapshot.ranked.len() as u64,
            ),
            (
                "precis_campaign_files_refused",
                "Campaign files refused by the last reload.",
                snapshot.refused.len() as u64,
            ),
            (
                "precis_reload_generation",
                "Reloads applied since start.",
                snapshot.generation,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let counters = [
            (
                "precis_reloads_total",
                "Campaign reloads run after a change, SIGHUP or /admin/reload.",
                &self.reloads,
            ),
            (
                "precis_reload_failures_total",
                "Reloads that could not read the campaign directory.",
                &self.reload_failures,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}
