//! The HTTP layer's own metrics: what became of each bid request (and how long it took), and the
//! connections both ports accepted, refused and closed.
//!
//! Counting is one relaxed atomic add on the request path and one record into the striped
//! latency histogram; only a scrape formats them. Nothing here allocates per request or takes a
//! lock a request waits on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::Exposition;
use crate::metrics::latency::{Latency, Merged};

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

/// Why the server closed a connection over a bad request head. Each but the timeout is answered
/// first: hyper answers heads it cannot read, precis those it will not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Headers not received within `header_timeout_ms` (closed without an answer).
    HeaderTimeout,
    /// Headers over the size or count limit: 431.
    HeadersTooLarge,
    /// Not HTTP/1.x: 400.
    Malformed,
    /// An HTTP/1.1 request without `Host`, or any with two: 400 (RFC 9112 §3.2).
    NoHost,
    /// Both `Content-Length` and `Transfer-Encoding`: 400, as a request smuggling attempt
    /// (RFC 9112 §6.1, §6.3).
    LengthAndChunked,
    /// A TLS handshake that failed or did not finish within `header_timeout_ms`.
    Handshake,
}

impl Closed {
    const ALL: [Closed; 6] = [
        Closed::HeaderTimeout,
        Closed::HeadersTooLarge,
        Closed::Malformed,
        Closed::NoHost,
        Closed::LengthAndChunked,
        Closed::Handshake,
    ];

    fn label(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::HeadersTooLarge => "headers_too_large",
            Closed::Malformed => "malformed",
            Closed::NoHost => "no_host",
            Closed::Handshake => "tls_handshake",
            Closed::LengthAndChunked => "length_and_chunked",
        }
    }
}

/// Upper bounds of the latency histogram's Prometheus buckets, seconds.
const BUCKETS: [f64; 13] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Quantiles of the latency summary.
const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// The HTTP layer's counters.
#[derive(Debug, Default)]
pub struct ServeMetrics {
    outcomes: [AtomicU64; 7],
    /// Connections over `max_connections`, closed as soon as accepted.
    refused: AtomicU64,
    closed: [AtomicU64; Closed::ALL.len()],
    /// How long bid requests that were answered with a bid or a no-bid took.
    latency: Latency,
    connections_accepted: AtomicU64,
    connections_open: AtomicU64,
}

/// An accepted connection, counted open until dropped.
pub struct OpenConnection(Arc<ServeMetrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ServeMetrics {
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

    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self, why: Closed) {
        self.closed[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Its metrics; `in_flight` is the bid requests being read or bid on now.
    pub fn report(&self, out: &mut Exposition, in_flight: usize) {
        let counted = |n: &AtomicU64| n.load(Ordering::Relaxed);
        out.counters(
            "precis_bid_requests_total",
            "Requests to the bid endpoint, by outcome.",
            "outcome",
            Outcome::ALL.map(|o| (o.label(), counted(&self.outcomes[o as usize]))),
        );
        out.counters(
            "precis_connections_closed_total",
            "Connections closed over a bad request head, by reason (each answered 400 or 431 first, except a header timeout).",
            "reason",
            Closed::ALL.map(|why| (why.label(), counted(&self.closed[why as usize]))),
        );
        out.counter(
            "precis_connections_refused_total",
            "Connections closed as soon as accepted: max_connections were open.",
            counted(&self.refused),
        );
        out.counter(
            "precis_connections_accepted_total",
            "Connections accepted on both ports.",
            counted(&self.connections_accepted),
        );
        out.gauge(
            "precis_connections_open",
            "Connections accepted and not yet closed.",
            counted(&self.connections_open),
        );
        out.gauge(
            "precis_bids_in_flight",
            "Bid requests being read or bid on (at most [limits] max_in_flight).",
            in_flight,
        );
        self.report_latency(out);
    }

    /// The bid-path latency as a Prometheus histogram, and a summary of quantiles since start.
    fn report_latency(&self, out: &mut Exposition) {
        let Merged { histogram, sum } = self.latency.merged();
        let buckets = BUCKETS.map(|le| (le, histogram.count_between(0, (le * 1e6) as u64)));
        out.histogram(
            "precis_bid_duration_seconds",
            "Time from a bid request's arrival to its bid or no-bid, since start.",
            buckets,
            sum.as_secs_f64(),
            histogram.len(),
        );
        let seconds = |micros: u64| micros as f64 / 1e6;
        out.gauges(
            "precis_bid_duration_quantile_seconds",
            "Quantiles of the bid-path latency since start (HDR histogram, 3 significant digits).",
            "quantile",
            QUANTILES.map(|q| (q, seconds(histogram.value_at_quantile(q)))),
        );
        out.gauge(
            "precis_bid_duration_max_seconds",
            "The slowest bid-path latency since start.",
            seconds(histogram.max()),
        );
    }
}
