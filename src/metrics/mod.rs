//! Metrics: the Prometheus text format `GET /metrics` answers in, written through one small
//! [`Exposition`] that each subsystem reports its own counters and gauges to, and the
//! [`latency`] histogram the bid route records into.
//!
//! Counting stays where the thing happens, as a relaxed atomic add (or one record into a striped
//! histogram) on the request path; only a scrape walks the counters and formats them. Nothing here
//! allocates per request or takes a lock a request waits on.
//!
//! Hand-written rather than the `prometheus-client` crate (0.24), measured on this machine: an
//! increment through its labelled `Family` (a lock-guarded map lookup per increment) took 26–29 ns
//! against 2.8 ns for our counters, fixed arrays indexed by the reason; its counters resolved
//! ahead of time cost the same as ours (2.3–2.7 ns) but need the same arrays of handles, the
//! per-campaign series read from the live snapshot at scrape time would need a custom collector,
//! and what the crate would replace is this page of text format.

pub mod latency;

use std::fmt::{Display, Write};

/// A scrape being written: families in the text exposition format (version 0.0.4).
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: impl Display) {
        self.head(name, help, "counter");
        let _ = writeln!(self.text, "{name} {value}");
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.head(name, help, "gauge");
        let _ = writeln!(self.text, "{name} {value}");
    }

    /// A counter with one series per value of `label`. Label values must need no escaping (ids,
    /// reasons, kinds: letters, digits, `.`, `_`, `-`).
    pub fn counters<L: Display, V: Display>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: impl IntoIterator<Item = (L, V)>,
    ) {
        self.labelled(name, help, "counter", label, series);
    }

    /// A gauge with one series per value of `label` (see [`Exposition::counters`]).
    pub fn gauges<L: Display, V: Display>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: impl IntoIterator<Item = (L, V)>,
    ) {
        self.labelled(name, help, "gauge", label, series);
    }

    fn labelled<L: Display, V: Display>(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        label: &str,
        series: impl IntoIterator<Item = (L, V)>,
    ) {
        self.head(name, help, kind);
        for (value, count) in series {
            let _ = writeln!(self.text, "{name}{{{label}=\"{value}\"}} {count}");
        }
    }

    /// A histogram: the count at or below each bucket's upper bound (seconds), and the sum and
    /// count of everything recorded.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        buckets: impl IntoIterator<Item = (f64, u64)>,
        sum: f64,
        count: u64,
    ) {
        self.head(name, help, "histogram");
        for (le, below) in buckets {
            let _ = writeln!(self.text, "{name}_bucket{{le=\"{le}\"}} {below}");
        }
        let _ = writeln!(self.text, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(self.text, "{name}_sum {sum}\n{name}_count {count}");
    }

    /// The text of the scrape.
    pub fn finish(self) -> String {
        self.text
    }

    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_in_the_text_format() {
        let mut out = Exposition::default();
        out.counter("a_total", "As seen.", 3);
        out.gauge("b", "Bs now.", 1.5);
        out.counters("c_total", "Cs by reason.", "reason", [("x", 1), ("y", 2)]);
        out.histogram("d_seconds", "Ds.", [(0.5, 1), (1.0, 2)], 1.25, 3);
        assert_eq!(
            out.finish(),
            "# HELP a_total As seen.\n# TYPE a_total counter\na_total 3\n\
             # HELP b Bs now.\n# TYPE b gauge\nb 1.5\n\
             # HELP c_total Cs by reason.\n# TYPE c_total counter\n\
             c_total{reason=\"x\"} 1\nc_total{reason=\"y\"} 2\n\
             # HELP d_seconds Ds.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{le=\"0.5\"} 1\nd_seconds_bucket{le=\"1\"} 2\n\
             d_seconds_bucket{le=\"+Inf\"} 3\nd_seconds_sum 1.25\nd_seconds_count 3\n"
        );
    }
}
