//! End to end against the real bidder: `precis serve` with the sample campaigns, synthetic
//! traffic at a low rate and the exchange simulation on. precis must bid, accept every win,
//! billing, click and conversion precis-load sends, and count as many wins as precis-load says
//! were accepted.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use common::{Program, Server, build, number, precis_load, workspace};
use serde_json::Value;

/// `GET path` over a fresh connection: the body.
fn get(server: &Server, path: &str) -> String {
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// Waits until `GET /readyz` answers 200: precis listens before its campaigns are loaded.
fn wait_ready(server: &Server) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut answer = String::new();
        let asked = TcpStream::connect(server.addr).and_then(|mut stream| {
            write!(
                stream,
                "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )?;
            stream.read_to_string(&mut answer)
        });
        if asked.is_ok() && answer.starts_with("HTTP/1.1 200") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "precis not ready: {answer}\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Answers by status of one kind of follow-up in the summary's exchange section.
fn statuses(summary: &Value, kind: &str) -> (f64, Vec<(String, f64)>) {
    let notices = &summary["exchange"][kind];
    let by_status = notices["status"]
        .as_object()
        .unwrap_or_else(|| panic!("no {kind} statuses in {summary:#}"))
        .iter()
        .map(|(status, n)| (status.clone(), n.as_f64().expect("a count")))
        .collect();
    (number(notices, &["sent"]), by_status)
}

#[test]
fn synthetic_traffic_and_the_simulated_exchange_against_the_bidder() {
    let root = workspace();
    let cwd = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(build(Program::Bin("precis")));
    command
        .current_dir(cwd.path())
        .env("RUST_LOG", "info")
        .env_remove("PRECIS_SECRET")
        .env_remove("PRECIS_SECRET_PREVIOUS")
        .arg("serve")
        .arg("--config")
        .arg(root.join("precis.toml"))
        .arg("--campaigns")
        .arg(root.join("campaigns"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    let precis = Server::start(command);
    wait_ready(&precis);
    let out = tempfile::tempdir().expect("temp dir");
    let url = precis.url("/openrtb2/bid");
    // A CTR of 20% and a CVR of 50%, so that a short run clicks and converts.
    let summary = precis_load(
        &[
            "--url",
            &url,
            "--rate",
            "200",
            "--warmup",
            "1s",
            "--duration",
            "2s",
            "--synthetic",
            "--seed",
            "7",
            "--win-rate",
            "0.5",
            "--ctr-scale",
            "100",
            "--cvr",
            "0.5",
        ],
        out.path(),
    );
    let log = precis.log();

    assert_eq!(number(&summary, &["errors"]), 0.0, "{summary:#}\n{log}");
    assert!(
        number(&summary, &["counts", "status_200"]) > 0.0,
        "bids: {summary:#}"
    );
    assert!(number(&summary, &["exchange", "bids"]) > 0.0, "{summary:#}");
    // Every follow-up was accepted: wins 204, impressions 200 (the pixel), clicks 302 to the
    // landing page, conversions 204.
    for (kind, accepted) in [
        ("win", "204"),
        ("imp", "200"),
        ("click", "302"),
        ("conv", "204"),
    ] {
        let (sent, by_status) = statuses(&summary, kind);
        assert!(sent > 0.0, "no {kind} sent: {summary:#}");
        assert_eq!(
            by_status,
            [(accepted.to_owned(), sent)],
            "{kind}: {summary:#}\n{log}"
        );
    }
    assert_eq!(
        statuses(&summary, "imp").0,
        statuses(&summary, "win").0,
        "an impression per win"
    );

    // The bidder counted the same wins.
    let metrics = get(&precis, "/metrics");
    let wins = metrics
        .lines()
        .find_map(|line| line.strip_prefix("precis_events_total{kind=\"win\"} "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no win count in /metrics:\n{metrics}"));
    assert_eq!(wins, statuses(&summary, "win").0, "{metrics}");
    // precis' own bid-path histogram, read over the run.
    let server = &summary["server_latency"];
    assert_eq!(
        server["metric"], "precis_bid_duration_seconds",
        "{summary:#}"
    );
    assert_eq!(server["kind"], "histogram", "{summary:#}");
    assert!(number(server, &["p50_ms"]) > 0.0, "{summary:#}");
}

#[test]
fn replayed_corpus_files_in_closed_loop() {
    // The real requests the repository carries (tests/fixtures, with their sources).
    let corpus = workspace().join("tests/fixtures/openrtb-corpus");
    assert!(corpus.is_dir(), "no corpus at {}", corpus.display());
    let mut command = Command::new(build(Program::Example("stall-server")));
    command.args(["--listen", "127.0.0.1:0", "--stall-ms", "0"]);
    let server = Server::start(command);
    let out = tempfile::tempdir().expect("temp dir");
    let url = server.url("/openrtb2/bid");
    let summary = precis_load(
        &[
            "--url",
            &url,
            "--closed-loop",
            "--connections",
            "4",
            "--warmup",
            "0s",
            "--duration",
            "1s",
            "--requests",
            corpus.to_str().expect("a UTF-8 path"),
        ],
        out.path(),
    );
    assert_eq!(summary["mode"], "closed");
    let answered = number(&summary, &["counts", "status_204"]);
    assert!(
        answered > 0.0 && answered == number(&summary, &["requests"]),
        "{summary:#}"
    );
    assert!(number(&summary, &["achieved_rate"]) > 0.0);
}
