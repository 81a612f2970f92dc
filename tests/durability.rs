//! Nothing acknowledged is ever lost: an event notice is answered 2xx only once its line is on
//! disk. A full disk turns notices away (503) and is said in `/readyz`, stops budgeted campaigns
//! and is recovered from by itself, every event counted once; `kill -9` in the middle of a burst
//! loses none of what was acknowledged, and the spend rebuilt at the next start is the spend logged.

#[allow(dead_code)]
mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyper::{Method, StatusCode};
use serde_json::Value;

use common::{
    Campaign, Server, advance, at, banner_request, bids, notice_path, parse_json, str_of,
};

const SECRET: &str = "a durability test secret of 32 b";

/// When the simulated clock stands: every event goes to this hour's file.
const SIMULATED: &str = "2030-01-01T10:00:00Z";
const LOG_FILE: &str = "logs/events-20300101T10.jsonl";

/// The clearing price of every win (CPM, USD): each costs this / 1000.
const PRICE: f64 = 1.5;
const PRICE_TEXT: &str = "1.5";

/// `budgeted`: 2.0 CPM for 300x250 with a total budget of `total` USD, spent as fast as it goes.
fn budgeted(total: f64) -> String {
    format!(
        "{}\n[budget]\ntotal = {total:?}\npacing = \"asap\"\n",
        Campaign::cpm(2.0).banner(300, 250).toml()
    )
}

/// A bidder on the simulated clock with a fixed secret (tokens outlive restarts).
fn bidder(campaigns: &[(&'static str, String)]) -> Server {
    Server::setup()
        .env("PRECIS_SECRET", SECRET)
        .arg("--simulate-from")
        .arg(SIMULATED)
        .campaigns(campaigns.iter().cloned())
        .start()
}

/// Bids `n` times for one 300x250 imp: the bids, each from `budgeted`.
async fn bids_of_budgeted(server: &Server, n: usize) -> Vec<Value> {
    let mut made = Vec::new();
    for _ in 0..n {
        let response = server.bid(&banner_request(300, 250)).await.expect("a bid");
        let bid = bids(&response)[0].clone();
        assert_eq!(str_of(&bid, "cid"), "budgeted");
        made.push(bid);
    }
    made
}

/// Sends the win notice of `bid` at [`PRICE`]: the answer.
async fn win(server: &Server, bid: &Value) -> (StatusCode, hyper::HeaderMap, bytes::Bytes) {
    server.get(&notice_path(bid, "nurl", PRICE_TEXT)).await
}

/// `spent_total` of the budgeted campaign in `/status`.
async fn spent_total(server: &Server) -> f64 {
    let status = server.status().await;
    let campaigns = status["campaigns"].as_array().expect("campaigns");
    let budgeted = campaigns
        .iter()
        .find(|c| c["id"] == "budgeted")
        .unwrap_or_else(|| panic!("no budgeted campaign in {status}"));
    budgeted["budget"]["spent_total"]
        .as_f64()
        .unwrap_or_else(|| panic!("no spent_total in {budgeted}"))
}

#[tokio::test]
async fn a_full_disk_answers_503_loses_no_acknowledged_event_and_recovers_by_itself() {
    let mut server = bidder(&[
        ("budgeted.toml", budgeted(1000.0)),
        ("free.toml", Campaign::cpm(2.0).banner(728, 90).toml()),
    ]);
    let made = bids_of_budgeted(&server, 30).await;
    for bid in &made[..10] {
        let (status, _, body) = win(&server, bid).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body:?}");
    }

    // The disk fills up in the middle of the next line: a file may grow 100 bytes more.
    let file = server.root().join(LOG_FILE);
    let size = std::fs::metadata(&file).expect("the hour's log file").len();
    let full_since = Instant::now();
    server.limit_file_size(Some(size + 100));
    for bid in &made[10..20] {
        let (status, headers, body) = win(&server, bid).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
        assert_eq!(headers["retry-after"], "1");
        let error = parse_json(&body);
        assert!(str_of(&error, "error").contains("event log"), "{error}");
    }
    // The exchange retries while the disk is still full: the first copy is not on disk yet.
    let (status, _, _) = win(&server, &made[10]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, reason) = server.readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reason}");
    assert!(reason.contains("event log cannot write"), "{reason}");
    assert!(reason.contains("File too large"), "{reason}");
    assert!(server.metric("precis_event_log_write_errors_total").await >= 1.0);
    assert_eq!(server.metric("precis_event_log_failing").await, 1.0);
    let unwritten = "precis_event_rejections_total{reason=\"unwritten\"}";
    assert_eq!(server.metric(unwritten).await, 11.0);
    // Spend that cannot be recorded is not spent: the budgeted campaign steps aside, the one
    // without a budget bids on.
    assert_eq!(server.bid(&banner_request(300, 250)).await, None);
    let stepped_aside = "precis_candidates_stepped_aside_total{reason=\"spend_unrecorded\"}";
    assert_eq!(server.metric(stepped_aside).await, 1.0);
    assert!(server.bid(&banner_request(728, 90)).await.is_some());
    assert_eq!(
        std::fs::metadata(&file).expect("the log file").len(),
        size,
        "a line half written is cut back"
    );

    // The writer tries again and again, 10 ms after the first failure, then doubling the wait:
    // by its 8th attempt 10 + 20 + ... + 640 ms = 1.27 s have passed since it took the lines it
    // keeps, and that is how old `sync_age` says the oldest line not on disk is.
    server
        .eventually("8 failed attempts", async || {
            let failed = server.metric("precis_event_log_write_errors_total").await;
            (failed >= 8.0).then_some(()).ok_or(failed.to_string())
        })
        .await;
    assert!(server.metric("precis_event_log_unsynced").await >= 1.0);
    let age = server.metric("precis_event_log_sync_age_seconds").await;
    assert!(age >= 1.26, "sync_age {age} s after 8 attempts");
    // Every attempt failed, and each was not logged: one error line a second at most.
    server.until_logged("cannot write the event log").await;
    let error_lines = server.log().matches("cannot write the event log").count() as u64;
    let most = 1 + full_since.elapsed().as_secs();
    assert!(
        error_lines <= most,
        "{error_lines} error lines in at most {most} s:\n{}",
        server.log()
    );

    // Room again: the log writes by itself, and every retry is acknowledged.
    server.limit_file_size(None);
    server
        .eventually("/readyz to turn 200", async || {
            let (status, body) = server.readyz().await;
            (status == StatusCode::OK).then_some(()).ok_or(body)
        })
        .await;
    assert_eq!(server.metric("precis_event_log_failing").await, 0.0);
    for bid in &made[10..] {
        let (status, _, body) = win(&server, bid).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body:?}");
    }
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
    let wins = |series: &str| format!("{series}{{kind=\"win\"}}");
    assert_eq!(server.metric(&wins("precis_events_total")).await, 30.0);
    assert_eq!(
        server.metric(&wins("precis_event_repeats_total")).await,
        11.0
    );

    // Each win is in the log once, whole, and counted once: also after a restart.
    server.stop().await;
    let logged: Vec<String> = server
        .logged_events()
        .iter()
        .filter(|e| e["event"] == "win")
        .map(|e| str_of(e, "bid").to_owned())
        .collect();
    let sent: HashSet<String> = made.iter().map(|b| str_of(b, "id").to_owned()).collect();
    assert_eq!(logged.len(), sent.len(), "{logged:?}");
    assert_eq!(logged.into_iter().collect::<HashSet<_>>(), sent);
    let spent = 30.0 * PRICE / 1000.0;
    let reported = server.report("campaign");
    let row = reported
        .iter()
        .find(|r| r["campaign"] == "budgeted")
        .unwrap_or_else(|| panic!("no budgeted row in {reported:?}"));
    let spend = row["media_cost"].as_f64().expect("media_cost");
    assert!(
        (spend - spent).abs() < 1e-9,
        "reported {spend}, sent {spent}"
    );
    server.restart(&[]).await;
    let rebuilt = spent_total(&server).await;
    assert!(
        (rebuilt - spent).abs() < 1e-9,
        "rebuilt {rebuilt}, sent {spent}"
    );
}

/// What one round of traffic saw, over every connection.
#[derive(Default)]
struct Seen {
    /// Events answered 2xx: (kind, bid id).
    acknowledged: HashSet<(String, String)>,
    /// The bids whose win was sent and not answered (the process died first): the exchange
    /// retries them.
    unanswered: Vec<Value>,
}

/// Bids, then sends the win and the billing notice of each bid, from `connections` tasks at
/// once, until the server stops answering.
fn burst(
    server: &Arc<Server>,
    seen: &Arc<Mutex<Seen>>,
    connections: usize,
) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (server, seen) = (server.clone(), seen.clone());
        tasks.spawn(async move {
            let request = banner_request(300, 250).to_string();
            // Bounded, whatever happens: the test kills the server long before.
            for _ in 0..100_000 {
                let Some(made) = server.try_bid(&request).await else {
                    return;
                };
                let Some(bid) = made else { continue };
                let id = str_of(&bid, "id").to_owned();
                for (kind, key) in [("win", "nurl"), ("imp", "burl")] {
                    let path = notice_path(&bid, key, PRICE_TEXT);
                    let answer = server.try_request(Method::GET, &path, "").await;
                    let mut seen = seen.lock().unwrap();
                    match answer {
                        Some((status, _)) if status.is_success() => {
                            seen.acknowledged.insert((kind.to_owned(), id.clone()));
                        }
                        Some((status, body)) => panic!("{kind} answered {status}: {body:?}"),
                        None if kind == "win" => {
                            seen.unanswered.push(bid);
                            return;
                        }
                        None => return,
                    }
                }
            }
        });
    }
    tasks
}

#[tokio::test]
async fn kill_9_in_a_burst_loses_no_acknowledged_event_three_times_over() {
    const CONNECTIONS: usize = 8;
    const ROUNDS: usize = 3;
    /// Wins acknowledged in a round before the kill.
    const PER_ROUND: usize = 40;
    let mut server = bidder(&[("budgeted.toml", budgeted(1000.0))]);
    let mut acknowledged: HashSet<(String, String)> = HashSet::new();
    for round in 1..=ROUNDS {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = Arc::new(server);
        let tasks = burst(&shared, &seen, CONNECTIONS);
        let wins = || {
            let seen = seen.lock().unwrap();
            seen.acknowledged.iter().filter(|(k, _)| k == "win").count()
        };
        shared
            .eventually(
                &format!("round {round}: {PER_ROUND} wins acknowledged"),
                async || {
                    let n = wins();
                    (n >= PER_ROUND).then_some(()).ok_or(n.to_string())
                },
            )
            .await;
        shared.signal("KILL");
        tasks.join_all().await;
        server = Arc::into_inner(shared).expect("the traffic is done");
        let status = server.exited().await;
        assert!(!status.success(), "killed: {status}");
        let seen = Arc::into_inner(seen).unwrap().into_inner().unwrap();
        acknowledged.extend(seen.acknowledged);

        server.restart(&[]).await;
        // After a crash, budgets sit out until every bid made before it has been won or has
        // lapsed (hold_secs, 60 s by default): the clock moves past that before the next round.
        advance(&server, at(SIMULATED) + chrono::Duration::seconds(61)).await;
        let (events, _cut_short) = server.logged_events_after_a_crash();
        let mut logged = HashSet::new();
        for event in events.iter().filter(|e| e["event"] != "bid") {
            let key = (
                str_of(event, "event").to_owned(),
                str_of(event, "bid").to_owned(),
            );
            assert!(logged.insert(key), "round {round}: logged twice: {event}");
        }
        let lost: Vec<_> = acknowledged.difference(&logged).collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged, not in the log: {lost:?}"
        );
        // Written but not answered: at most the one notice each connection had in flight.
        let unacknowledged = logged.difference(&acknowledged).count();
        assert!(
            unacknowledged <= CONNECTIONS * round,
            "round {round}: {unacknowledged} events logged that were never acknowledged"
        );
        // The spend rebuilt is the spend logged, win by win.
        let logged_wins = logged.iter().filter(|(kind, _)| kind == "win").count();
        let spent = logged_wins as f64 * PRICE / 1000.0;
        let rebuilt = spent_total(&server).await;
        assert!(
            (rebuilt - spent).abs() < 1e-9,
            "round {round}: rebuilt {rebuilt}, logged {spent}"
        );
        // The exchange retries the wins it got no answer for: each counts once.
        for bid in &seen.unanswered {
            let (status, _, body) = win(&server, bid).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body:?}");
            acknowledged.insert(("win".to_owned(), str_of(bid, "id").to_owned()));
        }
        let retried = acknowledged
            .iter()
            .filter(|(kind, _)| kind == "win")
            .count();
        let rebuilt = spent_total(&server).await;
        let spent = retried as f64 * PRICE / 1000.0;
        assert!(
            (rebuilt - spent).abs() < 1e-9,
            "round {round}: after retries, spent {rebuilt} for {retried} wins"
        );
    }
}
