//! Overload end to end: more at once than the bidder takes. 10,000 held connections, connections
//! over `max_connections` (closed at once), bid requests over `max_in_flight` (shed with 204) and
//! a flood past that limit, and requests that cannot be answered within their `tmax` (204, counted
//! late). The bidder sheds or refuses what it cannot take, each counted in /metrics, never fails
//! or hangs, serves new clients throughout, and afterwards bids correctly with its memory back
//! near where it was.

#[allow(dead_code)]
mod common;

use std::net::SocketAddr;

use common::hostile::{assert_recovered, rect, warm_baseline};
use common::wire::{Raw, bid_bytes, bid_head};
use common::{Server, banner_request};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Opens `count` connections to `addr`, 100 at a time, and sends each a request line without its
/// end, so each is held open by a client slow to finish its head. Fails past 2 minutes.
async fn hold_connections(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let open = async {
        let mut held = Vec::with_capacity(count);
        while held.len() < count {
            let mut batch = tokio::task::JoinSet::new();
            for _ in 0..(count - held.len()).min(100) {
                batch.spawn(async move {
                    let mut stream = TcpStream::connect(addr).await.expect("connect");
                    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\n").await;
                    stream
                });
            }
            held.extend(batch.join_all().await);
        }
        held
    };
    let budget = std::time::Duration::from_secs(120);
    tokio::time::timeout(budget, open)
        .await
        .unwrap_or_else(|_| panic!("{count} connections not opened in {budget:?}"))
}

/// The server's open file descriptors: its connections, listener, log files and the like.
fn open_files(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("read /proc/PID/fd")
        .count()
}

#[tokio::test]
async fn ten_thousand_held_connections_do_not_stop_the_bidder() {
    let held_count = 10_000;
    // The test's own side of the connections; precis raises its own limit at start.
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("raise the open files limit");
    assert!(
        limit > held_count as u64 + 100,
        "open files limit {limit}: too low for this test"
    );
    // Freed memory is handed back at each maintenance pass: every second here.
    let server = Server::start_configured(
        "[limits]\nheader_timeout_ms = 120000\n[learning]\nreprice_secs = 1\n",
        rect(),
    );
    let baseline = warm_baseline(&server).await;
    let files = open_files(&server);
    let held = hold_connections(server.addr, held_count).await;
    // While they are held: a new client is served.
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
    eprintln!(
        "{held_count} held connections: resident {} MiB (baseline {} MiB)",
        server.rss() >> 20,
        baseline >> 20
    );
    drop(held);
    server
        .eventually("the held connections closed", async || {
            let open = open_files(&server);
            if open <= files + 10 {
                Ok(())
            } else {
                Err(format!("{open} open files, {files} before"))
            }
        })
        .await;
    assert_eq!(server.metric("precis_connections_refused_total").await, 0.0);
    assert_recovered(&server, baseline, "10,000 held connections").await;
}

#[tokio::test]
async fn connections_over_max_connections_are_closed_at_once_and_counted() {
    let server = Server::start_configured(
        "[limits]\nmax_connections = 8\nheader_timeout_ms = 120000\n",
        rect(),
    );
    let held = hold_connections(server.addr, 8).await;
    for _ in 0..5 {
        let mut over = Raw::sending(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            over.answer().await.is_none(),
            "a ninth connection is closed unanswered"
        );
    }
    drop(held);
    // Their places come back once the server sees them closed.
    let healthy = server
        .eventually("a connection served again", async || {
            let answer = Raw::sending(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .answer()
                .await;
            answer.map(|a| a.status).ok_or_else(|| "closed".to_owned())
        })
        .await;
    assert_eq!(healthy, 200);
    let refused = server.metric("precis_connections_refused_total").await;
    assert!(refused >= 5.0, "{refused}");
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
}

#[tokio::test]
async fn a_request_that_cannot_be_answered_within_its_tmax_gets_204_and_is_counted_late() {
    let server = Server::start_configured("[limits]\ntmax_margin_ms = 1\n", rect());
    let with_tmax = |tmax: u64| common::with(banner_request(300, 250), json!({ "tmax": tmax }));
    // 1 ms less a 1 ms margin leaves nothing: never a bid, whatever the machine's speed.
    for _ in 0..3 {
        assert!(server.bid(&with_tmax(1)).await.is_none());
    }
    assert_eq!(server.outcome_count("late").await, 3.0);
    assert!(server.bid(&with_tmax(1_000)).await.is_some());
    assert!(
        server.bid(&banner_request(300, 250)).await.is_some(),
        "no tmax: the ceiling"
    );
    assert_eq!(server.outcome_count("bid").await, 2.0);
}

/// Starts as many stalled bodies as `[limits] max_in_flight` and waits until the bidder has them
/// all in flight: from then on, until they are dropped (or the body timeout), every place is
/// held, and a bid request is shed.
async fn fill_in_flight(server: &Server, slots: usize) -> Vec<Raw> {
    let mut stalled = Vec::new();
    for _ in 0..slots {
        stalled.push(Raw::sending(server, format!("{}{{", bid_head(100)).as_bytes()).await);
    }
    server
        .eventually("the stalled bodies in flight", async || {
            let in_flight = server.metric("precis_bids_in_flight").await;
            if in_flight == slots as f64 {
                Ok(())
            } else {
                Err(format!("{in_flight} in flight"))
            }
        })
        .await;
    assert!(
        server.bid(&banner_request(300, 250)).await.is_none(),
        "shed"
    );
    stalled
}

#[tokio::test]
async fn bid_requests_over_max_in_flight_are_shed_with_204_and_counted() {
    let server = Server::start_configured(
        "[limits]\nmax_in_flight = 1\nbody_timeout_ms = 60000\n",
        rect(),
    );
    let stalled = fill_in_flight(&server, 1).await;
    assert!(server.outcome_count("shed").await >= 1.0);
    drop(stalled);
    bidding_again(&server).await;
}

/// Waits until the bidder bids again: its in-flight places are given back.
async fn bidding_again(server: &Server) {
    server
        .eventually("bidding again", async || {
            match server.bid(&banner_request(300, 250)).await {
                Some(_) => Ok(()),
                None => Err("no bid".to_owned()),
            }
        })
        .await;
}

#[tokio::test]
async fn a_flood_over_the_in_flight_limit_gets_200_or_204_never_an_error_or_a_hang() {
    let server = Server::start_configured(
        "[limits]\nmax_in_flight = 2\nbody_timeout_ms = 60000\n",
        rect(),
    );
    let baseline = warm_baseline(&server).await;
    let stalled = fill_in_flight(&server, 2).await;
    let shed_before = server.outcome_count("shed").await;
    let bid = bid_bytes("", banner_request(300, 250).to_string().as_bytes());
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (addr, bid) = (server.addr, bid.clone());
        flood.spawn(async move {
            let mut raw = Raw::connect_to(addr).await;
            let mut statuses = Vec::new();
            for _ in 0..50 {
                raw.send(&bid).await;
                statuses.push(raw.answer().await.expect("an answer").status);
            }
            statuses
        });
    }
    let mut counts = std::collections::BTreeMap::new();
    while let Some(statuses) = flood.join_next().await {
        for status in statuses.expect("flood task") {
            *counts.entry(status).or_insert(0) += 1;
        }
    }
    eprintln!("flood answers by status: {counts:?}");
    assert!(counts.keys().all(|s| [200, 204].contains(s)), "{counts:?}");
    assert_eq!(counts.values().sum::<i32>(), 32 * 50);
    assert!(server.outcome_count("shed").await > shed_before);
    drop(stalled);
    bidding_again(&server).await;
    assert_recovered(&server, baseline, "a flood over the in-flight limit").await;
}
