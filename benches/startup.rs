//! What a start costs with a long event log, and what remembering events costs.
//!
//! `cargo bench --bench startup -- LINES [--binary PATH]` (default 1,000,000 lines) writes an
//! event log of LINES lines spread over the last 20 hours (per auction a bid line; half of them
//! won and shown, a user's impression of one of 40 campaigns, a quarter frequency-capped and a
//! quarter budgeted; 1% clicked, a tenth of those converted), then starts `precis serve` on it
//! (the binary of this build, or PATH: an earlier build, for the "before") three times and
//! prints, each time, how long it took to answer `ready` and its resident memory:
//! 1. no snapshot: the whole log replayed; stopped with SIGTERM (which writes the state snapshot);
//! 2. after that snapshot;
//! 3. after it, with 1% more lines appended to the log meanwhile.
//!
//! Then, in this process, what remembering one event costs: resident bytes per event of the
//! dedup digests ([`Seen`]) against a map of the events' identities as strings (how precis
//! remembered them before), for as many events as the log's.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use precis::eventlog::{Event, Kind};
use precis::measure::seen::{self, Seen};
use precis_generate::Rng;

const SECRET: &str = "a start-up bench secret, 32 byte";
const CAMPAIGNS: usize = 40;
const USERS: usize = 200_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let lines: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let binary = args
        .iter()
        .position(|a| a == "--binary")
        .and_then(|at| args.get(at + 1))
        .map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_precis")),
            PathBuf::from,
        );
    let root = tempfile::tempdir().expect("a temporary directory");
    write_campaigns(&root.path().join("campaigns"));
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).expect("the log directory");
    let now = Utc::now();
    let started = Instant::now();
    let (written, events) = write_log(&logs, lines, now, 1);
    println!(
        "{written} lines ({events} events, the rest bid lines) written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("binary: {}", binary.display());

    let run = |what: &str| {
        let (took, resident, replayed) = start(&binary, root.path());
        println!(
            "{what}: ready in {:.2} s, {replayed} events replayed, {} MB resident",
            took.as_secs_f64(),
            resident >> 20
        );
    };
    run("no snapshot (whole log)");
    run("after the snapshot");
    let (more, _) = write_log(&logs, lines / 100, now, 2);
    run(&format!("after the snapshot, {more} lines appended since"));

    dedup_bytes(events);
}

/// 40 banner campaigns `c00` … `c39`: every fourth with a frequency cap, every fourth (offset)
/// with a budget too large to run out.
fn write_campaigns(dir: &Path) {
    std::fs::create_dir_all(dir).expect("the campaign directory");
    for n in 0..CAMPAIGNS {
        let mut text = format!(
            "adomain = [\"a{n}.example\"]\n[pricing]\nmodel = \"cpm\"\ncpm = 2.0\n\n\
             [[creative]]\nid = \"c\"\nformat = \"banner\"\nw = 300\nh = 250\nadm = \"x\"\n\
             landing = \"https://a{n}.example/\"\n"
        );
        if n % 4 == 0 {
            text += "\n[frequency]\nimpressions = 100\nper = \"day\"\n";
        }
        if n % 4 == 1 {
            text += "\n[budget]\ntotal = 1000000.0\npacing = \"asap\"\n";
        }
        std::fs::write(dir.join(format!("c{n:02}.toml")), text).expect("a campaign file");
    }
}

/// Appends about `lines` lines to the hour files of the 20 hours before `now`: the lines
/// written and the events among them. `seed` draws them (another seed: other bids).
fn write_log(dir: &Path, lines: usize, now: DateTime<Utc>, seed: u64) -> (usize, usize) {
    let mut rng = Rng::new(seed);
    let hours = 20;
    let per_hour = lines.div_ceil(hours);
    let (mut written, mut events) = (0, 0);
    for hour in 0..hours {
        let start = now - chrono::Duration::hours((hours - hour) as i64);
        let name = start.format("events-%Y%m%dT%H.jsonl").to_string();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .expect("a log file");
        let mut out = std::io::BufWriter::new(file);
        let mut in_hour = 0;
        let mut auction = 0;
        while in_hour < per_hour && written < lines {
            auction += 1;
            let ts = start
                + chrono::Duration::milliseconds((in_hour as i64 * 3_600_000) / per_hour as i64);
            let campaign = rng.below(CAMPAIGNS);
            let user = format!("{:016x}", rng.below(USERS) as u64 * 0x9E37_79B9);
            let bid = format!("s{seed}-h{hour}-{auction}");
            let mut line = |kind: Kind, spend: f64, order: Option<String>| {
                let event = Event {
                    ts,
                    event: kind,
                    bid: bid.clone(),
                    request: format!("r{auction}"),
                    imp: "1".into(),
                    campaign: format!("c{campaign:02}"),
                    creative: "c".into(),
                    bid_price: 2.0,
                    cur: "USD".into(),
                    price: (kind == Kind::Win).then_some(1.5),
                    value: order.as_ref().map(|_| 50.0),
                    value_usd: order.as_ref().map(|_| 50.0),
                    order,
                    spend_usd: spend,
                    revenue_usd: 0.0,
                    user: Some(user.clone()),
                    country: Some("US".into()),
                    device: Some(2),
                    os: Some("ios".into()),
                    weight: 1,
                };
                serde_json::to_writer(&mut out, &event).expect("a line");
                out.write_all(b"\n").expect("a line");
            };
            line(Kind::Bid, 0.0, None);
            let mut made = 1;
            if rng.below(2) == 0 {
                line(Kind::Win, 0.0015, None);
                line(Kind::Imp, 0.0, None);
                made += 2;
                if rng.below(100) == 0 {
                    line(Kind::Click, 0.0, None);
                    made += 1;
                    if rng.below(10) == 0 {
                        line(Kind::Conv, 0.0, Some(format!("o{auction}")));
                        made += 1;
                    }
                }
            }
            written += made;
            events += made - 1;
            in_hour += made;
        }
        out.flush().expect("flushed");
    }
    (written, events)
}

/// Starts `binary` in `root` and waits for its `ready` line: how long that took, its resident
/// memory then, and how many events it says it replayed. Then stops it with SIGTERM.
fn start(binary: &Path, root: &Path) -> (Duration, u64, u64) {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["serve", "--campaigns", "campaigns", "--events-dir", "logs"])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--workers", "1"])
        .env("PRECIS_SECRET", SECRET)
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("precis starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let (mut replayed, mut admin) = (0, String::new());
    for line in lines.by_ref() {
        let line = line.expect("a log line");
        if let Some((_, n)) = line.split_once("replayed=") {
            replayed = n
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
        if let Some((_, addr)) = line.split_once("admin listening on ") {
            admin = addr.trim().to_owned();
        }
        if line.contains("ready: answering bids") {
            break;
        }
    }
    let took = started.elapsed();
    let resident = resident_of(&child);
    if let Some(dedup) = dedup_metrics(&admin) {
        println!("  {dedup}");
    }
    stop(&mut child, lines);
    (took, resident, replayed)
}

/// The dedup figures `/metrics` gives (a build that has them).
fn dedup_metrics(admin: &str) -> Option<String> {
    let mut stream = TcpStream::connect(admin).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let value = |name: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} ")))?;
        line.split(' ').nth(1)?.parse().ok()
    };
    let (keys, bytes) = (
        value("precis_dedup_keys")?,
        value("precis_dedup_table_bytes")?,
    );
    Some(format!(
        "dedup: {keys} events remembered in {:.1} MB of tables, {:.1} B each",
        bytes / 1e6,
        bytes / keys.max(1.0)
    ))
}

fn resident_of(child: &Child) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb << 10)
}

/// SIGTERM, then waits for the exit, reading what it logs meanwhile (the pipe must not fill).
fn stop(child: &mut Child, lines: std::io::Lines<BufReader<std::process::ChildStderr>>) {
    let stopping = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -TERM");
    for line in lines.map_while(Result::ok) {
        if line.contains("ERROR") {
            println!("  {line}");
        }
    }
    let status = child.wait().expect("precis exits");
    println!(
        "  stopped in {:.2} s ({status})",
        stopping.elapsed().as_secs_f64()
    );
}

/// Resident bytes per event remembered: digests in [`Seen`], against the events' identities as
/// strings in a map (kind, bid id, order id → expiry and receipt), for `events` events.
fn dedup_bytes(events: usize) {
    let bid = |n: usize| format!("{:013x}-{:x}", 0x6621_4a88_68cbu64 + n as u64, n % 256);
    let expiry = 2_000_000_000u32;
    let before = common::resident();
    let digests = Seen::new(86_400, usize::MAX);
    for n in 0..events {
        digests.logged(seen::digest(Kind::Win, &bid(n), None), expiry, None);
    }
    let compact = common::resident().saturating_sub(before);
    // Both kept: memory freed by one would be reused by the other and not show.
    let before = common::resident();
    let strings: DashMap<(Kind, String, Option<String>), (u32, u64)> = DashMap::new();
    for n in 0..events {
        strings.insert((Kind::Win, bid(n), None), (expiry, n as u64));
    }
    let wide = common::resident().saturating_sub(before);
    println!(
        "dedup, {events} events: digests {:.1} B each ({} MB), strings {:.1} B each ({} MB)",
        compact as f64 / events as f64,
        compact >> 20,
        wide as f64 / events as f64,
        wide >> 20
    );
    assert_eq!((digests.len().0, strings.len()), (events, events));
}
