//! `report.html`: the summary with two inline SVG charts, latency by percentile (on
//! HdrHistogram's log-scaled "1/(1 − p)" axis) and per-second p50/p99/max over time, in one file
//! that opens in a browser without a network.

use std::fmt::Write;

use hdrhistogram::Histogram;

use crate::report::Summary;

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 360.0;
/// Room for the axis labels: left, right, top, bottom.
const MARGIN: (f64, f64, f64, f64) = (70.0, 40.0, 30.0, 50.0);

/// One axis: the range it shows (in its own, possibly logarithmic, units) and labelled ticks.
struct Axis {
    min: f64,
    max: f64,
    ticks: Vec<(f64, String)>,
    label: &'static str,
}

struct Series {
    name: &'static str,
    color: &'static str,
    points: Vec<(f64, f64)>,
}

/// The whole page.
pub fn page(summary: &Summary, latency: &Histogram<u64>) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>precis-load report</title>\n\
         <style>body{font-family:sans-serif;margin:2em;color:#222}pre{background:#f6f6f6;padding:1em;\
         white-space:pre-wrap}svg{display:block;margin:1em 0}td,th{padding:2px 10px;text-align:right}</style>\n\
         </head><body>\n",
    );
    // `write!` to a String cannot fail: its results are ignored below.
    let _ = writeln!(
        out,
        "<h1>precis-load</h1>\n<pre>{}</pre>",
        escape(&summary.text())
    );
    if let Some(find_max) = &summary.find_max {
        out.push_str("<h2>Find max: the steps</h2>\n<table><tr><th>target req/s</th><th>achieved req/s</th><th>p99 ms</th><th>errors</th><th>within SLO</th></tr>\n");
        for step in &find_max.steps {
            let _ = writeln!(
                out,
                "<tr><td>{:.0}</td><td>{:.0}</td><td>{:.3}</td><td>{:.3}%</td><td>{}</td></tr>",
                step.target_rate,
                step.achieved_rate,
                step.p99_ms,
                step.error_rate * 100.0,
                if step.pass { "yes" } else { "no" }
            );
        }
        out.push_str("</table>\n<p>The charts below are of the highest rate within the SLO.</p>\n");
    }
    out.push_str("<h2>Latency by percentile</h2>\n");
    out.push_str(&percentile_chart(latency));
    out.push_str("<h2>Latency over time</h2>\n");
    out.push_str(&timeline_chart(summary));
    out.push_str("</body></html>\n");
    out
}

/// Latency (linear, ms) against percentile on a log axis of 1/(1 − p): 0%, 90%, 99%, 99.9%, …
fn percentile_chart(latency: &Histogram<u64>) -> String {
    if latency.is_empty() {
        return "<p>No latencies were recorded.</p>\n".to_owned();
    }
    // Enough nines to show the rarest recorded request, at least 99.9%, at most 99.9999%.
    let nines = (latency.len() as f64).log10().ceil().clamp(3.0, 6.0);
    let mut points: Vec<(f64, f64)> = latency
        .iter_quantiles(5)
        .filter(|v| v.quantile_iterated_to() < 1.0)
        .map(|v| {
            let x = (1.0 / (1.0 - v.quantile_iterated_to())).log10();
            (x.min(nines), v.value_iterated_to() as f64 / 1000.0)
        })
        .collect();
    points.push((nines, latency.max() as f64 / 1000.0));
    let top = nice_ceiling(latency.max() as f64 / 1000.0);
    let x = Axis {
        min: 0.0,
        max: nines,
        ticks: (0..=nines as i32)
            .map(|n| (f64::from(n), percentile_label(n)))
            .collect(),
        label: "percentile",
    };
    let y = Axis {
        min: 0.0,
        max: top,
        ticks: (0..=5)
            .map(|i| {
                let v = top * f64::from(i) / 5.0;
                (v, format_ms(v))
            })
            .collect(),
        label: "latency (ms)",
    };
    chart(
        &x,
        &y,
        &[Series {
            name: "latency",
            color: "#1f77b4",
            points,
        }],
    )
}

/// Per-second p50, p99 and max (log-scaled ms) over the measured window.
fn timeline_chart(summary: &Summary) -> String {
    let seconds = &summary.timeline;
    if seconds.is_empty() {
        return "<p>The run was shorter than a second.</p>\n".to_owned();
    }
    let positive = |v: f64| v > 0.0;
    let values = seconds.iter().flat_map(|s| [s.p50_ms, s.p99_ms, s.max_ms]);
    let lowest = values
        .clone()
        .filter(|v| positive(*v))
        .fold(f64::MAX, f64::min);
    let highest = values.fold(0.0, f64::max);
    if !positive(highest) {
        return "<p>No latencies were recorded.</p>\n".to_owned();
    }
    let (low, high) = (
        lowest.log10().floor(),
        highest.log10().ceil().max(lowest.log10().floor() + 1.0),
    );
    let last = seconds.last().map_or(1, |s| s.t) as f64;
    let step = (last / 10.0).ceil().max(1.0);
    let x = Axis {
        min: 0.0,
        max: last,
        ticks: (0..=(last / step) as u32)
            .map(|i| {
                let t = f64::from(i) * step;
                (t, format!("{t:.0}"))
            })
            .collect(),
        label: "seconds into the measured window",
    };
    let y = Axis {
        min: low,
        max: high,
        ticks: (low as i32..=high as i32)
            .map(|p| (f64::from(p), format_ms(10f64.powi(p))))
            .collect(),
        label: "latency (ms, log scale)",
    };
    let line = |name, color, value: fn(&crate::recording::Second) -> f64| Series {
        name,
        color,
        points: seconds
            .iter()
            .map(|s| (s.t as f64, value(s).max(10f64.powf(low)).log10()))
            .collect(),
    };
    chart(
        &x,
        &y,
        &[
            line("p50", "#2ca02c", |s| s.p50_ms),
            line("p99", "#ff7f0e", |s| s.p99_ms),
            line("max", "#d62728", |s| s.max_ms),
        ],
    )
}

/// An SVG line chart.
fn chart(x: &Axis, y: &Axis, series: &[Series]) -> String {
    let (left, right, top, bottom) = MARGIN;
    let (plot_w, plot_h) = (WIDTH - left - right, HEIGHT - top - bottom);
    let px = |v: f64| left + (v - x.min) / (x.max - x.min).max(f64::EPSILON) * plot_w;
    let py = |v: f64| top + plot_h - (v - y.min) / (y.max - y.min).max(f64::EPSILON) * plot_h;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-size=\"12\">\n\
         <rect x=\"{left}\" y=\"{top}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#999\"/>\n"
    );
    for (v, label) in &x.ticks {
        let at = px(*v);
        let _ = writeln!(
            svg,
            "<line x1=\"{at:.1}\" y1=\"{top}\" x2=\"{at:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{at:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            top + plot_h,
            top + plot_h + 16.0,
            escape(label)
        );
    }
    for (v, label) in &y.ticks {
        let at = py(*v);
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{at:.1}\" x2=\"{:.1}\" y2=\"{at:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            at + 4.0,
            escape(label)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        left + plot_w / 2.0,
        HEIGHT - 10.0,
        x.label,
        top + plot_h / 2.0,
        y.label
    );
    for (n, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(vx, vy)| format!("{:.1},{:.1}", px(*vx), py(*vy)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{}\">{}</text>",
            s.color,
            points.join(" "),
            s.name,
            left + 10.0 + 60.0 * n as f64,
            top - 10.0,
            s.color,
            s.name
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// `0%`, `90%`, `99%`, `99.9%`, … for 0, 1, 2, 3, … nines.
fn percentile_label(nines: i32) -> String {
    match nines {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        n => format!("99.{}%", "9".repeat((n - 2) as usize)).replace(".%", "%"),
    }
}

/// A round number at or above `v`: 1, 2 or 5 times a power of ten.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|n| *n >= v)
        .unwrap_or(10.0 * power)
}

/// Milliseconds with as many decimals as a tick needs.
fn format_ms(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels() {
        let labels: Vec<String> = (0..=5).map(percentile_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        assert_eq!(nice_ceiling(0.84), 1.0);
        assert_eq!(nice_ceiling(1.2), 2.0);
        assert_eq!(nice_ceiling(101.0), 200.0);
        assert_eq!(nice_ceiling(5.0), 5.0);
        assert_eq!(format_ms(0.5), "0.5");
        assert_eq!(format_ms(100.0), "100");
        assert_eq!(format_ms(0.001), "0.001");
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_percentile_chart_runs_from_0_percent_to_the_max() {
        let mut h = crate::recording::histogram();
        for us in 1..=10_000 {
            h.record(us).expect("in range");
        }
        let svg = percentile_chart(&h);
        assert!(
            svg.starts_with("<svg") && svg.ends_with("</svg>\n"),
            "{svg}"
        );
        // The max (10 ms, to 3 significant digits) rounds the latency axis up to 20 ms.
        for label in ["0%", "99.99%", "latency (ms)", "percentile", "20"] {
            assert!(svg.contains(&format!(">{label}<")), "{label} in {svg}");
        }
        // One polyline, from the left edge to the max at the right edge, halfway up.
        let points = svg
            .split("points=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a polyline");
        let first = points.split(' ').next().expect("a point");
        let last = points.split(' ').next_back().expect("a point");
        assert!(first.starts_with("70.0,"), "{first}");
        assert_eq!(last, "820.0,169.9");
    }
}
