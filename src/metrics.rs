//! Metrics: counters operators scrape from `GET /metrics` (Prometheus text format).
//!
//! Counting is one relaxed atomic add on the request path; rendering reads the counters and the
//! current snapshot. Nothing here allocates per request or takes a lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::eventlog::Stats;
use crate::events::Kind;
use crate::frequency::Exposures;
use crate::pacing::Pacer;
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
    /// 204 at once: too many bid requests in flight.
    Shed,
    /// 204: the request's deadline (`tmax`) passed before its answer was ready.
    Late,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Bid,
        Outcome::NoBid,
        Outcome::BadRequest,
        Outcome::TooLarge,
        Outcome::Timeout,
        Outcome::Shed,
        Outcome::Late,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Bid => "bid",
            Outcome::NoBid => "no_bid",
            Outcome::BadRequest => "bad_request",
            Outcome::TooLarge => "too_large",
            Outcome::Timeout => "timeout",
            Outcome::Shed => "shed",
            Outcome::Late => "late",
        }
    }
}

/// Why an event request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Malformed, forged or of the wrong purpose.
    BadToken,
    Expired,
    /// A price or value that is not an amount.
    BadAmount,
    /// The campaign or creative no longer exists.
    Gone,
    /// The event log's queue was full (503).
    Busy,
    /// A click already converted as often as allowed.
    TooManyOrders,
    /// A conversion body too large, too slow or unreadable.
    BadBody,
}

impl Rejection {
    const ALL: [Rejection; 7] = [
        Rejection::BadToken,
        Rejection::Expired,
        Rejection::BadAmount,
        Rejection::Gone,
        Rejection::Busy,
        Rejection::TooManyOrders,
        Rejection::BadBody,
    ];

    fn label(self) -> &'static str {
        match self {
            Rejection::BadToken => "bad_token",
            Rejection::Expired => "expired",
            Rejection::BadAmount => "bad_amount",
            Rejection::Gone => "gone",
            Rejection::Busy => "busy",
            Rejection::TooManyOrders => "too_many_orders",
            Rejection::BadBody => "bad_body",
        }
    }
}

const KINDS: [Kind; 5] = [Kind::Bid, Kind::Win, Kind::Imp, Kind::Click, Kind::Conv];

fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Bid => "bid",
        Kind::Win => "win",
        Kind::Imp => "imp",
        Kind::Click => "click",
        Kind::Conv => "conv",
    }
}

/// Why the server closed a connection in the middle of a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Headers not received within `header_timeout_ms`.
    HeaderTimeout,
    /// Headers over the size or count limit (431).
    HeadersTooLarge,
    /// Not HTTP/1.x (400).
    Malformed,
}

impl Closed {
    const ALL: [Closed; 3] = [
        Closed::HeaderTimeout,
        Closed::HeadersTooLarge,
        Closed::Malformed,
    ];

    fn label(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::HeadersTooLarge => "headers_too_large",
            Closed::Malformed => "malformed",
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    outcomes: [AtomicU64; 7],
    /// Connections over `max_connections`, closed as soon as accepted.
    refused: AtomicU64,
    closed: [AtomicU64; 3],
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    /// Events logged, by kind (bids: see the bid lines below).
    events: [AtomicU64; 5],
    /// Events that arrived again and were counted once.
    repeats: [AtomicU64; 5],
    rejections: [AtomicU64; 7],
}

/// What `/metrics` reports besides the metrics' own counters.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub snapshot: &'a Snapshot,
    pub log: &'a Stats,
    pub bid_lines_dropped: u64,
    /// Bid requests being read or bid on now.
    pub bids_in_flight: usize,
    pub pacer: &'a Pacer,
    pub exposures: &'a Exposures,
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

    /// An event of `kind` was logged (`again`: it had been before, and was not logged twice).
    pub fn event(&self, kind: Kind, again: bool) {
        let counters = if again { &self.repeats } else { &self.events };
        counters[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self, why: Rejection) {
        self.rejections[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self, why: Closed) {
        self.closed[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, sources: &Sources) -> String {
        let Sources {
            snapshot,
            log,
            bid_lines_dropped,
            bids_in_flight,
            pacer,
            exposures,
        } = *sources;
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
        labelled_counter(
            &mut out,
            "precis_connections_closed_total",
            "Connections closed in the middle of a request head, by reason.",
            Closed::ALL.map(|why| (why.label(), &self.closed[why as usize])),
        );
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
            (
                "precis_connections_refused_total",
                "Connections closed as soon as accepted: max_connections were open.",
                &self.refused,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let labelled = [
            (
                "precis_events_total",
                "Events logged, by kind.",
                &self.events,
            ),
            (
                "precis_event_repeats_total",
                "Events received again and counted once.",
                &self.repeats,
            ),
        ];
        for (name, help, values) in labelled {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for kind in &KINDS[1..] {
                let _ = writeln!(
                    out,
                    "{name}{{kind=\"{}\"}} {}",
                    kind_label(*kind),
                    values[*kind as usize].load(Ordering::Relaxed)
                );
            }
        }
        labelled_counter(
            &mut out,
            "precis_event_rejections_total",
            "Event requests turned away, by reason.",
            Rejection::ALL.map(|why| (why.label(), &self.rejections[why as usize])),
        );
        let log_counters = [
            (
                "precis_event_log_written_total",
                "Lines written to the event log.",
                log.written.load(Ordering::Relaxed),
            ),
            (
                "precis_event_log_refused_total",
                "Lines the event log's full queue turned away.",
                log.refused.load(Ordering::Relaxed),
            ),
            (
                "precis_event_log_write_errors_total",
                "Lines or syncs that failed.",
                log.write_errors.load(Ordering::Relaxed),
            ),
            (
                "precis_bid_lines_dropped_total",
                "Sampled bid lines not logged because the log was busy.",
                bid_lines_dropped,
            ),
        ];
        for (name, help, value) in log_counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        labelled_counter(
            &mut out,
            "precis_candidates_stepped_aside_total",
            "Campaigns that matched but let the next one bid, by reason.",
            [
                ("out_of_budget", &pacer.out_of_budget),
                ("throttled", &pacer.throttled),
                ("frequency_capped", &exposures.capped),
            ],
        );
        let _ = writeln!(
            out,
            "# HELP precis_frequency_anonymous_total Frequency-capped campaigns that met a request without a user key (not capped).\n# TYPE precis_frequency_anonymous_total counter\nprecis_frequency_anonymous_total {}",
            exposures.anonymous.load(Ordering::Relaxed)
        );
        for (name, help, value) in [
            (
                "precis_frequency_users",
                "Users whose exposures frequency caps remember.",
                exposures.users(),
            ),
            (
                "precis_budget_holds",
                "Bids whose price is reserved, waiting for their win notice.",
                pacer.holds(),
            ),
            (
                "precis_bids_in_flight",
                "Bid requests being read or bid on (at most [limits] max_in_flight).",
                bids_in_flight,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let queued = log.queued.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP precis_event_log_queued Events waiting for the writer (lag).\n# TYPE precis_event_log_queued gauge\nprecis_event_log_queued {queued}"
        );
        out
    }
}

/// A counter with one series per `reason`.
fn labelled_counter<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    reasons: impl IntoIterator<Item = (&'a str, &'a AtomicU64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (reason, count) in reasons {
        let _ = writeln!(
            out,
            "{name}{{reason=\"{reason}\"}} {}",
            count.load(Ordering::Relaxed)
        );
    }
}
