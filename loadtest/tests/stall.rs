//! The proof of an honest p99: against a server that freezes for 100 ms once a second,
//! precis-load (open loop, latency from each request's due time) reports a p99 of at least 50 ms.
//! About 10% of requests fall due during a stall and wait up to 100 ms, so the true p99 is near
//! 90 ms; a closed-loop tool that waits for each answer before sending again sees only the few
//! requests in flight when the stall began (see `stall-demo.sh` for wrk).

// Shared with precis.rs, which also starts the bidder itself.
#[allow(dead_code)]
mod common;

use std::process::Command;

use common::{Program, Server, build, number, precis_load};

#[test]
fn a_server_stalling_100ms_every_second_shows_in_p99() {
    let mut command = Command::new(build(Program::Example("stall-server")));
    command.args([
        "--listen",
        "127.0.0.1:0",
        "--stall-ms",
        "100",
        "--every-ms",
        "1000",
    ]);
    let server = Server::start(command);
    let out = tempfile::tempdir().expect("temp dir");
    let url = server.url("/openrtb2/bid");
    let summary = precis_load(
        &[
            "--url",
            &url,
            "--rate",
            "500",
            "--warmup",
            "1s",
            "--duration",
            "3s",
            "--connections",
            "16",
            "--synthetic",
        ],
        out.path(),
    );

    let p99 = number(&summary, &["latency_ms", "p99"]);
    assert!(
        p99 >= 50.0,
        "p99 {p99} ms hides the stalls; summary: {summary:#}\nserver: {}",
        server.log()
    );
    // Every request of the window was sent and answered: the latency is the server's stalls,
    // not lost requests.
    assert_eq!(number(&summary, &["requests"]), 1500.0, "{summary:#}");
    assert_eq!(
        number(&summary, &["counts", "status_204"]),
        1500.0,
        "{summary:#}"
    );
    assert_eq!(number(&summary, &["errors"]), 0.0, "{summary:#}");
    assert_eq!(
        summary["server_latency"],
        serde_json::Value::Null,
        "not exposed"
    );

    // The percentile distribution in HdrHistogram's format agrees.
    let hgrm = std::fs::read_to_string(out.path().join("latency.hgrm")).expect("latency.hgrm");
    let row_99 = hgrm
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|row| {
            row.get(1)
                .and_then(|p| p.parse::<f64>().ok())
                .is_some_and(|p| p >= 0.99)
        })
        .expect("a row at or above the 99th percentile");
    assert!(row_99[0].parse::<f64>().expect("a value") >= 50.0, "{hgrm}");
    assert!(hgrm.contains("Total count    =         1500]"), "{hgrm}");

    let html = std::fs::read_to_string(out.path().join("report.html")).expect("report.html");
    assert_eq!(html.matches("<svg").count(), 2, "two charts");
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "works offline"
    );
}
