//! What a run reports: the summary (as text for people and as `summary.json`) and the
//! HdrHistogram percentile distribution (`latency.hgrm`, the standard text format). It renders;
//! it never writes files (the command line writes those of `--out`).

use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cpu::Cpu;
use crate::exchange;
use crate::findmax::FindMax;
use crate::metrics::ServerLatency;
use crate::recording::{Counts, Percentiles, Second};
use crate::run::{Finished, Load};
use crate::schedule::Arrival;

/// Everything `summary.json` holds.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub url: String,
    /// `open` (requests on a schedule) or `closed` (each connection sends on each answer).
    pub mode: &'static str,
    pub arrival: Option<Arrival>,
    pub target_rate: Option<f64>,
    /// Requests answered (or timed out) in the measured window, per second of it.
    pub achieved_rate: f64,
    pub connections: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub counts: Counts,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// Share of answered requests that got a bid (200).
    pub bid_rate: f64,
    /// From each request's due time (open loop) or send time (closed loop) to its answer.
    pub latency_ms: Percentiles,
    /// From each request's due time to its sending.
    pub send_delay_ms: Percentiles,
    pub timeline: Vec<Second>,
    pub generator_cpu: Option<Cpu>,
    /// `None`: the server does not expose its latency.
    pub server_latency: Option<ServerLatency>,
    pub exchange: Option<ExchangeReport>,
    pub find_max: Option<FindMax>,
}

#[derive(Debug, Serialize)]
pub struct ExchangeReport {
    pub behaviour: exchange::Behaviour,
    #[serde(flatten)]
    pub counts: exchange::Counts,
}

impl Summary {
    /// The summary of run `finished` of `load` against `url`; the exchange, server latency and
    /// find-max parts are left for the caller.
    pub fn new(url: &str, load: &Load, finished: &Finished) -> Summary {
        let recording = &finished.recording;
        let counts = recording.counts.clone();
        let window = finished.window.as_secs_f64();
        let answered = counts.answered();
        let (mode, arrival, target_rate) = match load {
            Load::Open { rate, arrival, .. } => ("open", Some(*arrival), Some(*rate)),
            Load::Closed => ("closed", None, None),
        };
        Summary {
            url: url.to_owned(),
            mode,
            arrival,
            target_rate,
            achieved_rate: (answered + counts.timeouts) as f64 / window,
            connections: finished.connections,
            warmup_s: finished.warmup.as_secs_f64(),
            duration_s: window,
            requests: counts.total(),
            errors: counts.errors(),
            error_rate: ratio(counts.errors(), counts.total()),
            bid_rate: ratio(counts.status_200, answered),
            counts,
            latency_ms: Percentiles::of(&recording.latency),
            send_delay_ms: Percentiles::of(&recording.send_delay),
            timeline: recording.timeline.clone(),
            generator_cpu: finished.cpu.clone(),
            server_latency: None,
            exchange: None,
            find_max: None,
        }
    }

    /// The summary for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        // `write!` to a String cannot fail: its results are ignored below.
        let _ = writeln!(out, "{}", self.headline());
        if let Some(find_max) = &self.find_max {
            let _ = writeln!(out, "{}", find_max.text());
        }
        let target = self
            .target_rate
            .map_or(String::new(), |rate| format!("target {rate:.0} req/s, "));
        let _ = writeln!(
            out,
            "  rate         {target}achieved {:.0} req/s",
            self.achieved_rate
        );
        let c = &self.counts;
        let _ = writeln!(
            out,
            "  requests     {}: 200 {} | 204 {} | other {} | 4xx {} | 5xx {} | timeouts {} | connection errors {} | unsent {}",
            self.requests,
            c.status_200,
            c.status_204,
            c.status_other,
            c.status_4xx,
            c.status_5xx,
            c.timeouts,
            c.connection_errors,
            c.unsent
        );
        let _ = writeln!(
            out,
            "  errors       {} ({:.3}%)   bid rate {:.1}% of answers",
            self.errors,
            self.error_rate * 100.0,
            self.bid_rate * 100.0
        );
        let l = &self.latency_ms;
        let from = if self.mode == "open" {
            "due time"
        } else {
            "send time"
        };
        let _ = writeln!(
            out,
            "  latency ms   p50 {:.3} | p90 {:.3} | p99 {:.3} | p99.9 {:.3} | p99.99 {:.3} | max {:.3}   (from each request's {from})",
            l.p50, l.p90, l.p99, l.p99_9, l.p99_99, l.max
        );
        if self.mode == "open" {
            let d = &self.send_delay_ms;
            let _ = writeln!(
                out,
                "  send delay   p50 {:.3} | p99 {:.3} | max {:.3} ms   (due → sent: the generator's lag plus waiting for a free connection)",
                d.p50, d.p99, d.max
            );
        }
        let _ = writeln!(out, "  {}", server_text(&self.server_latency));
        if let Some(exchange) = &self.exchange {
            let _ = writeln!(out, "  exchange     {}", exchange_text(exchange));
        }
        if let Some(cpu) = &self.generator_cpu {
            let _ = writeln!(
                out,
                "  generator    CPU {:.2} s, {:.2} cores on average: {:.3} cores per 10k req/s",
                cpu.seconds, cpu.cores, cpu.cores_per_10k_rps
            );
        }
        out
    }

    /// The first line: what was run.
    pub fn headline(&self) -> String {
        let load = match (self.arrival, self.target_rate) {
            (Some(arrival), Some(rate)) => {
                format!("open loop, {} arrivals at {rate:.0} req/s", arrival.name())
            }
            _ => "closed loop".to_owned(),
        };
        format!(
            "precis-load: {load} for {:.0} s (after {:.0} s warmup) over {} connections to {}",
            self.duration_s, self.warmup_s, self.connections, self.url
        )
    }
}

/// The server latency line.
pub fn server_text(latency: &Option<ServerLatency>) -> String {
    let Some(latency) = latency else {
        return "server latency: not exposed".to_owned();
    };
    let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    format!(
        "server latency ({} {}): p50 {} | p99 {} | p99.9 {} ms",
        latency.kind,
        latency.metric,
        show(latency.p50_ms),
        show(latency.p99_ms),
        show(latency.p99_9_ms)
    )
}

/// The exchange line: bids, then each follow-up's answers by status.
pub fn exchange_text(report: &ExchangeReport) -> String {
    let c = &report.counts;
    let notices = |name: &str, n: &exchange::Notices| {
        let statuses: Vec<String> = n.status.iter().map(|(s, k)| format!("{s}: {k}")).collect();
        let failed = if n.failed > 0 {
            format!(", failed: {}", n.failed)
        } else {
            String::new()
        };
        format!("{name} {} ({}{failed})", n.sent, statuses.join(", "))
    };
    let mut line = format!(
        "{} bids in {} responses; {}; {}; {}; {}",
        c.bids,
        c.bid_responses,
        notices("wins", &c.win),
        notices("impressions", &c.imp),
        notices("clicks", &c.click),
        notices("conversions", &c.conv)
    );
    for (count, what) in [
        (c.skipped_busy, "wins skipped (follow-up connections busy)"),
        (c.clicks_without_url, "clicks without a click URL"),
        (c.unreadable_responses, "unreadable bid responses"),
    ] {
        if count > 0 {
            let _ = write!(line, "; {count} {what}");
        }
    }
    line
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The percentile distribution of a histogram of microseconds, in milliseconds, in the text
/// format of HdrHistogram's `outputPercentileDistribution` (5 ticks per half distance), which
/// HdrHistogram's plotter and other tools read.
pub fn hgrm(histogram: &Histogram<u64>) -> String {
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0;
    for v in histogram.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / 1000.0;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:>12.3} {q:>2.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:>12.3} {q:>2.12} {total:>10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        histogram.mean() / 1000.0,
        histogram.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        histogram.max() as f64 / 1000.0,
        histogram.len()
    );
    // 3 significant digits: 2048 sub-buckets per bucket.
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        histogram.buckets(),
        2048
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::histogram;

    #[test]
    fn hgrm_is_the_standard_percentile_distribution_in_milliseconds() {
        let mut h = histogram();
        for us in 1..=1000 {
            h.record(us).expect("in range");
        }
        let text = hgrm(&h);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("       Value     Percentile TotalCount 1/(1-Percentile)")
        );
        assert_eq!(lines.next(), Some(""));
        let rows: Vec<Vec<&str>> = lines
            .clone()
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[0], ["0.001", "0.000000000000", "1", "1.00"]);
        let last = rows.last().expect("rows");
        assert_eq!(last, &["1.000", "1.000000000000", "1000"]);
        let values: Vec<f64> = rows.iter().map(|r| r[0].parse().expect("value")).collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "values ascend");
        let median = rows
            .iter()
            .find(|r| r[1] == "0.500000000000")
            .expect("a 50% row");
        assert_eq!(median[0], "0.500");
        assert!(text.contains("#[Mean    =        0.500, StdDeviation   =        0.289]"));
        assert!(text.contains("#[Max     =        1.000, Total count    =         1000]"));
        assert!(text.ends_with("SubBuckets     =         2048]\n"));
    }

    #[test]
    fn the_server_line_says_when_nothing_is_exposed() {
        assert_eq!(server_text(&None), "server latency: not exposed");
        let latency = ServerLatency {
            metric: "bid_seconds".to_owned(),
            kind: "histogram",
            p50_ms: Some(0.25),
            p99_ms: None,
            p99_9_ms: Some(3.0),
        };
        assert_eq!(
            server_text(&Some(latency)),
            "server latency (histogram bid_seconds): p50 0.250 | p99 - | p99.9 3.000 ms"
        );
    }
}
