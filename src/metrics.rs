//! Metrics: counters operators scrape from `GET /metrics` (Prometheus text format).
//!
//! Counting is one relaxed atomic add on the request path, and bid-path latency one record into a
//! striped histogram ([`latency`]); rendering reads the counters and the current snapshot. Nothing
//! here allocates per request or takes a lock that requests wait on.

pub mod latency;

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::audience::profiles::Profiles;
use crate::book::frequency::Exposures;
use crate::book::learning::Learned;
use crate::book::pacing::Pacer;
use crate::book::store::Snapshot;
use crate::eventlog::Kind;
use crate::eventlog::Stats;

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

/// Bids, wins and spend of each live campaign. Ids are letters, digits, `.`, `_` and `-`: they
/// need no escaping as label values.
fn render_campaigns(out: &mut String, snapshot: &Snapshot, learned: &Learned) {
    type Value = fn(&crate::book::ranking::Ranked, &Learned) -> f64;
    let families: [(&str, &str, Value); 3] = [
        (
            "precis_campaign_bids_total",
            "Bids made, per live campaign, since start.",
            |r, _| r.bids.load(Ordering::Relaxed) as f64,
        ),
        (
            "precis_campaign_wins_total",
            "Win notices logged, per live campaign (replayed from the event log at start).",
            |r, l| l.counts(&r.campaign.id).wins as f64,
        ),
        (
            "precis_campaign_spend_usd_total",
            "Clearing prices won, USD, per live campaign (replayed from the event log at start).",
            |r, l| l.counts(&r.campaign.id).spend_usd,
        ),
    ];
    for (name, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for ranked in &snapshot.ranked {
            let id = &ranked.campaign.id;
            let _ = writeln!(
                out,
                "{name}{{campaign=\"{id}\"}} {}",
                value(ranked, learned)
            );
        }
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
    /// How long bid requests that were answered with a bid or a no-bid took.
    latency: latency::Latency,
    connections_accepted: AtomicU64,
    connections_open: AtomicU64,
}

/// An accepted connection, counted open until dropped.
pub struct OpenConnection(Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Upper bounds of the latency histogram's Prometheus buckets, seconds.
const BUCKETS: [f64; 13] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Quantiles of the latency summary.
const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// What `/metrics` reports besides the metrics' own counters.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub snapshot: &'a Snapshot,
    /// Wins and spend per campaign.
    pub learned: &'a Learned,
    pub log: &'a Stats,
    pub bid_lines_dropped: u64,
    /// Bid requests being read or bid on now.
    pub bids_in_flight: usize,
    pub pacer: &'a Pacer,
    pub exposures: &'a Exposures,
    pub profiles: &'a Profiles,
}

impl Metrics {
    pub fn count(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A bid request answered with a bid or a no-bid, `took` from its arrival.
    pub fn answered(&self, outcome: Outcome, took: Duration) {
        self.count(outcome);
        self.latency.record(took);
    }

    /// A connection was accepted; it counts as open until the guard is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
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
            learned,
            log,
            bid_lines_dropped,
            bids_in_flight,
            pacer,
            exposures,
            profiles,
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
            (
                "precis_audience_files_refused",
                "Audience package files refused by the last reload.",
                snapshot.audiences.refused.len() as u64,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP precis_audience_users Users in each loaded audience package.\n# TYPE precis_audience_users gauge"
        );
        for package in snapshot.audiences.packages() {
            let _ = writeln!(
                out,
                "precis_audience_users{{package=\"{}\"}} {}",
                package.name,
                package.users()
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
                "precis_profile_users",
                "Users the profile store holds tags for.",
                profiles.users(),
            ),
            (
                "precis_profile_tags",
                "Distinct tag names the profile store has interned.",
                profiles.distinct_tags(),
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
        let _ = writeln!(
            out,
            "# HELP precis_event_log_sync_age_seconds Time since the event log was last flushed and fsynced.\n# TYPE precis_event_log_sync_age_seconds gauge\nprecis_event_log_sync_age_seconds {}",
            log.sync_age_secs()
        );
        let _ = writeln!(
            out,
            "# HELP precis_connections_accepted_total Connections accepted on both ports.\n# TYPE precis_connections_accepted_total counter\nprecis_connections_accepted_total {}\n# HELP precis_connections_open Connections accepted and not yet closed.\n# TYPE precis_connections_open gauge\nprecis_connections_open {}",
            self.connections_accepted.load(Ordering::Relaxed),
            self.connections_open.load(Ordering::Relaxed)
        );
        self.render_latency(&mut out);
        render_campaigns(&mut out, snapshot, learned);
        out
    }

    /// The bid-path latency as a Prometheus histogram, and a summary of quantiles since start.
    fn render_latency(&self, out: &mut String) {
        let latency::Merged { histogram, sum } = self.latency.merged();
        let name = "precis_bid_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a bid request's arrival to its bid or no-bid, since start.\n# TYPE {name} histogram"
        );
        for le in BUCKETS {
            let micros = (le * 1e6) as u64;
            let count = histogram.count_between(0, micros);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {count}");
        }
        let count = histogram.len();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", sum.as_secs_f64());
        let _ = writeln!(out, "{name}_count {count}");
        let seconds = |micros: u64| micros as f64 / 1e6;
        let name = "precis_bid_duration_quantile_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Quantiles of the bid-path latency since start (HDR histogram, 3 significant digits).\n# TYPE {name} gauge"
        );
        for q in QUANTILES {
            let value = seconds(histogram.value_at_quantile(q));
            let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP precis_bid_duration_max_seconds The slowest bid-path latency since start.\n# TYPE precis_bid_duration_max_seconds gauge\nprecis_bid_duration_max_seconds {}",
            seconds(histogram.max())
        );
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
