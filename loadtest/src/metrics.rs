//! The server's own latency, where its `/metrics` (Prometheus text) exposes one: a metric whose
//! name says `latency` or `duration`, preferring one that also says `bid`, and a histogram to a
//! summary of the same standing (a histogram can be read over the run alone). A histogram
//! (`NAME_bucket{le=…}`) is read before and after the run, and its quantiles computed over the
//! difference; a summary (`NAME{quantile=…}`) is taken as the server reports it at the end.

use serde::Serialize;

/// Server-side latency quantiles, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerLatency {
    pub metric: String,
    /// `histogram` (over the run) or `summary` (the server's own window).
    pub kind: &'static str,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p99_9_ms: Option<f64>,
}

/// One sample line: metric name, labels, value.
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, &'a str)>,
    value: f64,
}

impl Sample<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// The server latency in `after` (the text read after the run), over the run where `before`
/// (read before it) allows; `None` when no latency metric is exposed.
pub fn server_latency(before: Option<&str>, after: &str) -> Option<ServerLatency> {
    let samples: Vec<Sample> = after.lines().filter_map(sample).collect();
    let is_latency = |name: &str| {
        let name = name.to_ascii_lowercase();
        name.contains("latency") || name.contains("duration")
    };
    let mut candidates: Vec<&str> = samples
        .iter()
        .filter(|s| {
            is_latency(s.name)
                && (s.name.ends_with("_bucket") && s.label("le").is_some()
                    || s.label("quantile").is_some())
        })
        .map(|s| s.name)
        .collect();
    candidates.sort_by_key(|name| {
        let bid = name.to_ascii_lowercase().contains("bid");
        (!bid, !name.ends_with("_bucket"), *name)
    });
    let name = *candidates.first()?;
    let scale = ms_per_unit(name);
    if let Some(base) = name.strip_suffix("_bucket") {
        let buckets = |samples: &[Sample]| -> Vec<(f64, f64)> {
            let mut sums: Vec<(f64, f64)> = Vec::new();
            for s in samples.iter().filter(|s| s.name == name) {
                let Some(le) = s.label("le").and_then(parse_value) else {
                    continue;
                };
                match sums.iter_mut().find(|(bound, _)| *bound == le) {
                    Some((_, count)) => *count += s.value,
                    None => sums.push((le, s.value)),
                }
            }
            sums.sort_by(|a, b| a.0.total_cmp(&b.0));
            sums
        };
        let mut run = buckets(&samples);
        if let Some(before) = before {
            let earlier: Vec<Sample> = before.lines().filter_map(sample).collect();
            for (bound, count) in buckets(&earlier) {
                if let Some((_, c)) = run.iter_mut().find(|(b, _)| *b == bound) {
                    *c -= count;
                }
            }
        }
        let at = |q: f64| bucket_quantile(&run, q).map(|v| v * scale);
        return Some(ServerLatency {
            metric: base.to_owned(),
            kind: "histogram",
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            p99_9_ms: at(0.999),
        });
    }
    let at = |q: f64| {
        samples
            .iter()
            .filter(|s| s.name == name)
            .find(|s| s.label("quantile").and_then(parse_value) == Some(q))
            .map(|s| s.value * scale)
            .filter(|v| v.is_finite())
    };
    Some(ServerLatency {
        metric: name.to_owned(),
        kind: "summary",
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        p99_9_ms: at(0.999),
    })
}

/// Milliseconds per unit of a metric, from its name (Prometheus' convention is seconds).
fn ms_per_unit(name: &str) -> f64 {
    let base = name
        .strip_suffix("_bucket")
        .unwrap_or(name)
        .to_ascii_lowercase();
    if base.ends_with("microseconds") || base.ends_with("_us") {
        0.001
    } else if base.ends_with("milliseconds") || base.ends_with("_ms") {
        1.0
    } else {
        1000.0
    }
}

/// The `q` quantile of cumulative `(upper bound, count)` buckets, interpolated linearly within a
/// bucket as Prometheus' `histogram_quantile` does.
fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let share = if count > lower.1 {
                (rank - lower.1) / (count - lower.1)
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * share);
        }
        lower = (bound, count);
    }
    None
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        _ => text.parse().ok(),
    }
}

/// A sample line `name{k="v",…} value [timestamp]`; comments and blank lines are not.
fn sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (series, rest) = if line.contains('{') {
        line.split_at(line.rfind('}')? + 1)
    } else {
        line.split_at(line.find(char::is_whitespace)?)
    };
    let value = parse_value(rest.split_whitespace().next()?)?;
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (name, labels.strip_suffix('}')?),
        None => (series, ""),
    };
    let labels = labels
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim(), v.trim().trim_matches('"')))
        })
        .collect();
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_exposed_says_so() {
        let text =
            "# HELP precis_bid_requests_total x\nprecis_bid_requests_total{outcome=\"bid\"} 10\n";
        assert_eq!(server_latency(None, text), None);
    }

    #[test]
    fn a_histogram_is_read_over_the_run() {
        let before = "\
bid_duration_seconds_bucket{le=\"0.001\"} 100
bid_duration_seconds_bucket{le=\"0.01\"} 100
bid_duration_seconds_bucket{le=\"+Inf\"} 100
";
        // During the run: 90 answers under 1 ms, 9 between 1 and 10 ms, 1 slower.
        let after = "\
# TYPE bid_duration_seconds histogram
bid_duration_seconds_bucket{le=\"0.001\"} 190
bid_duration_seconds_bucket{le=\"0.01\"} 199
bid_duration_seconds_bucket{le=\"+Inf\"} 200
bid_duration_seconds_sum 0.5
bid_duration_seconds_count 200
bid_duration_quantile_seconds{quantile=\"0.5\"} 0.1
other_duration_seconds_bucket{le=\"1\"} 3
";
        let latency = server_latency(Some(before), after).expect("a histogram");
        assert_eq!(latency.metric, "bid_duration_seconds");
        assert_eq!(latency.kind, "histogram");
        let p50 = latency.p50_ms.expect("p50");
        assert!(
            (0.55..0.56).contains(&p50),
            "50 of 90 in the first bucket: {p50}"
        );
        let near = |v: Option<f64>, expected: f64| v.is_some_and(|v| (v - expected).abs() < 1e-9);
        assert!(near(latency.p99_ms, 10.0), "{latency:?}");
        assert!(
            near(latency.p99_9_ms, 10.0),
            "the +Inf bucket reads as the last bound"
        );
    }

    #[test]
    fn a_summary_is_taken_as_reported_in_its_unit() {
        let after = "\
http_request_latency_us{route=\"/openrtb2/bid\",quantile=\"0.5\"} 120
http_request_latency_us{route=\"/openrtb2/bid\",quantile=\"0.99\"} 850
http_request_latency_us_count 5 1700000000000
";
        let latency = server_latency(None, after).expect("a summary");
        assert_eq!(latency.kind, "summary");
        assert_eq!(latency.p50_ms, Some(0.12));
        assert_eq!(latency.p99_ms, Some(0.85));
        assert_eq!(latency.p99_9_ms, None);
    }
}
