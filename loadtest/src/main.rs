//! `precis-load`: the command line. Reads the flags, sets up the target, the traffic and the
//! simulated exchange, runs a fixed-rate, closed-loop or find-max test, prints the summary and
//! writes the files of `--out`. The only place errors become an exit status.

mod client;
mod cpu;
mod dispatch;
mod exchange;
mod findmax;
mod html;
mod metrics;
mod recording;
mod report;
mod run;
mod schedule;
mod timer;
mod traffic;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use clap::{ArgGroup, Parser};
use hdrhistogram::Histogram;

use crate::client::Target;
use crate::exchange::{BASE_CTR, Behaviour, Exchange};
use crate::findmax::{FindMax, Search};
use crate::report::{ExchangeReport, Summary};
use crate::run::{Finished, Load, Plan};
use crate::schedule::Arrival;
use crate::traffic::Traffic;
use precis_generate::{Crowd, Generator};

/// The returning users of `--synthetic` traffic: enough that frequency caps meet many users, few
/// enough that the most active come back hundreds of times in a short run.
const RETURNING_USERS: u64 = 100_000;

/// Open-loop load generator for OpenRTB bidders: latency from each request's due time, so a
/// stalled server shows in p99.
#[derive(Parser, Debug)]
#[command(
    name = "precis-load",
    version,
    group(ArgGroup::new("traffic").required(true).args(["requests", "synthetic", "generated"]))
)]
struct Args {
    /// The bid endpoint, plain HTTP, e.g. http://127.0.0.1:8080/openrtb2/bid.
    #[arg(long)]
    url: String,

    /// Bid requests per second (open loop). With --find-max, the first step's rate.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,

    /// How long to measure, after the warmup (with --find-max: each step), e.g. 30s, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,

    /// How long to send before measuring (with --find-max: before each step).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,

    /// HTTP/1.1 keep-alive connections for bid requests. When all are busy, due requests wait
    /// for one, and the wait counts in their latency.
    #[arg(long, default_value_t = 64)]
    connections: usize,

    /// How requests arrive in open loop.
    #[arg(long, value_enum, default_value_t = Arrival::Constant)]
    arrival: Arrival,

    /// Each connection sends its next request as soon as the previous one is answered (as wrk
    /// does); latency is then from the send time, which hides queueing.
    #[arg(long, conflicts_with_all = ["arrival", "find_max", "rate"])]
    closed_loop: bool,

    /// Replay the *.json bid requests at the top of this directory, each with a new id.
    #[arg(long, value_name = "DIR")]
    requests: Option<PathBuf>,

    /// Send synthetic OpenRTB 2.6 requests (decided by --seed): the visitors of `precis
    /// gen-campaigns`' generator, 60% of them from 100,000 returning users who keep their
    /// profile, 30% of impressions without a floor.
    #[arg(long)]
    synthetic: bool,

    /// Send the visitors of `precis gen-campaigns`' generator as the benchmarks see them (decided
    /// by --seed): each someone new, every impression with a floor. Both kinds are drawn from the
    /// places and tag taxonomy generated campaigns target, so they match at realistic rates.
    #[arg(long)]
    generated: bool,

    /// Seed of the synthetic traffic, Poisson arrivals and the exchange's draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// A request not answered in this time counts as a timeout (with that latency).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    timeout: Duration,

    /// Simulated exchange: share of bids won (0 turns the exchange off).
    #[arg(long, default_value_t = 0.0)]
    win_rate: f64,

    /// Clearing price as a share of the bid price, sent as ${AUCTION_PRICE}.
    #[arg(long, default_value_t = 0.8)]
    clearing: f64,

    /// Click-through rate of won impressions, as a multiple of 0.2%.
    #[arg(long, default_value_t = 1.0)]
    ctr_scale: f64,

    /// Conversions per click.
    #[arg(long, default_value_t = 0.05)]
    cvr: f64,

    /// Step the rate up to find the highest one whose p99 is within --slo-p99 with < 0.1% errors.
    #[arg(long)]
    find_max: bool,

    /// The p99 latency --find-max holds to.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    slo_p99: Duration,

    /// Write summary.json, latency.hgrm and report.html here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Runtime threads of the generator (1: a single-threaded runtime, the cheapest).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

impl Args {
    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.rate.is_finite() && self.rate > 0.0,
            "--rate must be above 0"
        );
        ensure!(!self.duration.is_zero(), "--duration must be above 0");
        ensure!(!self.timeout.is_zero(), "--timeout must be above 0");
        ensure!(self.connections > 0, "--connections must be at least 1");
        ensure!(self.threads > 0, "--threads must be at least 1");
        for (name, p) in [("--win-rate", self.win_rate), ("--cvr", self.cvr)] {
            ensure!((0.0..=1.0).contains(&p), "{name} must be between 0 and 1");
        }
        ensure!(
            self.clearing > 0.0 && self.clearing <= 1.0,
            "--clearing must be above 0 and at most 1 (first price: never above the bid)"
        );
        ensure!(
            self.ctr_scale >= 0.0 && BASE_CTR * self.ctr_scale <= 1.0,
            "--ctr-scale must be between 0 and {}",
            1.0 / BASE_CTR
        );
        Ok(())
    }
}

/// `30s`, `1.5s`, `250ms`, `500us`, `2m`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (e.g. 30s, 250ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" | "µs" => number / 1e6,
        "m" | "min" => number * 60.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use us, ms, s, m)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.check()?;
    let mut runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if args.threads > 1 {
        runtime.worker_threads(args.threads);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(load_test(args))
}

async fn load_test(args: Args) -> anyhow::Result<()> {
    // A run can take minutes: find out now, not after it, that its results cannot be kept.
    if let Some(dir) = &args.out {
        writable(dir)?;
    }
    let target = Arc::new(Target::resolve(&args.url, args.timeout).await?);
    let traffic = match &args.requests {
        Some(dir) => {
            let (traffic, notes) = Traffic::replay(dir)?;
            for note in notes {
                eprintln!("note: {note}");
            }
            traffic
        }
        None if args.generated => Traffic::Visitors(Generator::new(args.seed), Crowd::Strangers),
        None => Traffic::Visitors(
            Generator::new(args.seed),
            Crowd::Returning {
                users: RETURNING_USERS,
            },
        ),
    };
    let behaviour = Behaviour {
        win_rate: args.win_rate,
        clearing: args.clearing,
        ctr: BASE_CTR * args.ctr_scale,
        cvr: args.cvr,
    };
    let exchange = (args.win_rate > 0.0).then(|| {
        Arc::new(Exchange::new(
            behaviour,
            args.seed,
            u32::try_from(args.connections).unwrap_or(u32::MAX),
            args.timeout,
        ))
    });
    let plan = Plan {
        target: target.clone(),
        traffic: Arc::new(traffic),
        exchange: exchange.clone(),
        connections: args.connections,
        warmup: args.warmup,
        duration: args.duration,
        timeout: args.timeout,
    };

    let metrics_before = scrape_metrics(&target).await;
    let (finished, load, find_max) = if args.find_max {
        find_max(&plan, &args).await?
    } else {
        let load = if args.closed_loop {
            Load::Closed
        } else {
            Load::Open {
                rate: args.rate,
                arrival: args.arrival,
                seed: args.seed,
            }
        };
        (run::run(&plan, &load).await?, load, None)
    };
    let mut summary = Summary::new(&args.url, &load, &finished);
    if let Some(exchange) = &exchange {
        summary.exchange = Some(ExchangeReport {
            behaviour,
            counts: exchange.finish(args.timeout).await,
        });
    }
    summary.server_latency = scrape_metrics(&target)
        .await
        .and_then(|after| metrics::server_latency(metrics_before.as_deref(), &after));
    summary.find_max = find_max;

    print!("{}", summary.text());
    if let Some(dir) = &args.out {
        write_out(dir, &summary, &finished.recording.latency)?;
        eprintln!(
            "wrote summary.json, latency.hgrm and report.html in {}",
            dir.display()
        );
    }
    // A run in which nothing got an answer measured nothing: its percentiles are empty.
    ensure!(
        summary.requests > summary.errors,
        "no request got an answer ({} of {} failed): is a bidder listening on {}?",
        summary.errors,
        summary.requests,
        args.url
    );
    Ok(())
}

/// Makes `dir` if needed and checks that files can be written in it.
fn writable(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--out {}: cannot create the directory", dir.display()))?;
    let probe = dir.join(".precis-load-probe");
    std::fs::write(&probe, b"")
        .with_context(|| format!("--out {}: cannot write in the directory", dir.display()))?;
    std::fs::remove_file(&probe).with_context(|| format!("cannot remove {}", probe.display()))
}

/// Writes `summary.json`, `latency.hgrm` and `report.html` into `dir` (made by [`writable`]).
fn write_out(dir: &Path, summary: &Summary, latency: &Histogram<u64>) -> anyhow::Result<()> {
    let files = [
        (
            "summary.json",
            serde_json::to_string_pretty(summary)? + "\n",
        ),
        ("latency.hgrm", report::hgrm(latency)),
        ("report.html", html::page(summary, latency)),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Steps the rate as [`Search`] says; returns the highest passing step's run (else the last).
async fn find_max(plan: &Plan, args: &Args) -> anyhow::Result<(Finished, Load, Option<FindMax>)> {
    let mut search = Search::new(args.rate, args.slo_p99.as_secs_f64() * 1000.0);
    let mut kept = None;
    while let Some(rate) = search.next_rate() {
        eprintln!("find max: {rate:.0} req/s");
        let load = Load::Open {
            rate,
            arrival: args.arrival,
            seed: args.seed,
        };
        let finished = run::run(plan, &load).await?;
        let step = Summary::new(&args.url, &load, &finished);
        let pass = search.record(
            rate,
            step.achieved_rate,
            step.latency_ms.p99,
            step.error_rate,
        );
        eprintln!(
            "find max: {rate:.0} req/s: p99 {:.3} ms, errors {:.3}%: {}",
            step.latency_ms.p99,
            step.error_rate * 100.0,
            if pass { "pass" } else { "fail" }
        );
        if pass || !kept.as_ref().is_some_and(|(_, _, passed)| *passed) {
            kept = Some((finished, load, pass));
        }
    }
    let (finished, load, _) = kept.context("the search ran no step")?;
    Ok((finished, load, Some(search.report())))
}

/// The target's `/metrics` text, if it answers 200 there.
async fn scrape_metrics(target: &Target) -> Option<String> {
    match target.get("/metrics").await {
        Some((200, body)) => Some(String::from_utf8_lossy(&body).into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "s", "1h", "-1s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_are_checked() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["precis-load", "--url", "http://127.0.0.1:1/", "--synthetic"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv)
                .map_err(|e| e.to_string())
                .and_then(|a| a.check().map_err(|e| e.to_string()))
        };
        assert!(parse(&[]).is_ok());
        assert!(parse(&["--win-rate", "1.5"]).is_err());
        assert!(parse(&["--clearing", "1.2"]).is_err());
        assert!(parse(&["--rate", "0"]).is_err());
        assert!(parse(&["--closed-loop", "--find-max"]).is_err());
        assert!(
            Args::try_parse_from(["precis-load", "--url", "http://x/"]).is_err(),
            "traffic is required"
        );
        assert!(
            Args::try_parse_from([
                "precis-load",
                "--url",
                "http://x/",
                "--synthetic",
                "--requests",
                "d"
            ])
            .is_err(),
            "one traffic source"
        );
    }
}
