//! Restarts from the state snapshot, against the real binary: a start after a snapshot replays
//! only the log written after it and ends where a replay of the whole log ends (spend, learned
//! counts, frequency caps, events remembered); a damaged snapshot or holds file is set aside and
//! the bidder starts from the log; past `max_dedup_keys` the events whose tokens expire first
//! are forgotten early and their tokens refused, never counted twice; with `keep_days`, log files
//! the snapshot has read go once they are old enough, never before.

#[allow(dead_code)]
mod common;

use chrono::{DateTime, Duration, Utc};
use hyper::StatusCode;
use serde_json::{Value, json};

use common::{
    Campaign, Server, Setup, advance, banner_request, bids, local, markup_link, notice_path,
    rfc3339, str_of,
};

const SECRET: &str = "a restart test secret of 32 byte";

/// The clearing price of every win (CPM, USD): each costs this / 1000.
const PRICE: f64 = 0.8;
const PRICE_TEXT: &str = "0.8";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 time")
}

/// A bidder on a simulated clock standing at `start`, with a fixed secret (tokens outlive
/// restarts) and the state snapshot brought up to the log every `snapshot_secs`.
fn simulated(start: DateTime<Utc>, snapshot_secs: u64) -> Setup {
    Server::setup()
        .env("PRECIS_SECRET", SECRET)
        .arg("--simulate-from")
        .arg(&rfc3339(start))
        .arg("--events-snapshot-secs")
        .arg(&snapshot_secs.to_string())
}

/// Far longer than a test runs: no periodic snapshot but the one at start.
const NEVER: u64 = 3600;

/// `capped` (2.00 CPM, a total budget, at most 2 impressions a user a day) and `free` (1.00 CPM,
/// no budget, no cap), both 300x250: a capped user's requests go to `free`.
fn two_campaigns(setup: Setup) -> Server {
    let capped = format!(
        "{}\n[budget]\ntotal = 1000.0\npacing = \"asap\"\n\n[frequency]\nimpressions = 2\nper = \"day\"\n",
        Campaign::cpm(2.0).banner(300, 250).toml()
    );
    setup
        .campaign("capped.toml", capped)
        .campaign("free.toml", Campaign::cpm(1.0).banner(300, 250))
        .start()
}

/// What the test sent and was acknowledged, per campaign: wins (each at [`PRICE`]), impressions
/// and clicks, and every bid won (its retry must count once).
#[derive(Default, Debug, Clone, PartialEq)]
struct Sent {
    wins: [u64; 2],
    impressions: [u64; 2],
    clicks: [u64; 2],
    won: Vec<Value>,
}

const CAMPAIGNS: [&str; 2] = ["capped", "free"];

impl Sent {
    fn events(&self) -> u64 {
        (0..2)
            .map(|c| self.wins[c] + self.impressions[c] + self.clicks[c])
            .sum()
    }
}

/// A bid request for one 300x250 banner from `user`.
fn request(user: &str) -> Value {
    json!({ "id": "r", "imp": [{ "id": "1", "banner": { "w": 300, "h": 250 } }], "user": { "id": user } })
}

/// One request from `user`, whose bid is won, shown and, when `click`, clicked: the campaign
/// that got it.
async fn serve(server: &Server, sent: &mut Sent, user: &str, click: bool) -> &'static str {
    let response = server.bid(&request(user)).await.expect("a bid");
    let bid = bids(&response)[0].clone();
    let campaign = CAMPAIGNS
        .iter()
        .position(|c| *c == str_of(&bid, "cid"))
        .unwrap_or_else(|| panic!("an unknown campaign: {bid}"));
    for (key, counted) in [("nurl", &mut sent.wins), ("burl", &mut sent.impressions)] {
        let (status, _, body) = server.get(&notice_path(&bid, key, PRICE_TEXT)).await;
        assert!(status.is_success(), "{key}: {status} {body:?}");
        counted[campaign] += 1;
    }
    if click {
        let (status, _, _) = server.get(&local(markup_link(str_of(&bid, "adm")))).await;
        assert_eq!(status, StatusCode::FOUND);
        sent.clicks[campaign] += 1;
    }
    sent.won.push(bid);
    CAMPAIGNS[campaign]
}

/// Three requests from each of `users`: the first two are `capped`'s (its price is higher), the
/// third `free`'s (the user has had their 2 impressions of `capped` today). One click each.
async fn traffic(server: &Server, sent: &mut Sent, users: &[&str]) {
    for user in users {
        let got = [
            serve(server, sent, user, true).await,
            serve(server, sent, user, false).await,
            serve(server, sent, user, false).await,
        ];
        assert_eq!(got, ["capped", "capped", "free"], "{user}");
    }
}

/// What `/status` says each campaign measured and spent: (impressions, clicks, spend_usd) and
/// `capped`'s budget `spent_total`.
async fn measured(server: &Server) -> (Vec<(u64, u64, f64)>, f64) {
    let status = server.status().await;
    let campaign = |id: &str| {
        status["campaigns"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["id"] == id))
            .unwrap_or_else(|| panic!("no {id} in {status}"))
            .clone()
    };
    let figures = CAMPAIGNS
        .iter()
        .map(|id| {
            let c = campaign(id);
            let n = |key: &str| c[key].as_u64().unwrap_or_else(|| panic!("{key} in {c}"));
            let spend = c["spend_usd"].as_f64().expect("spend_usd");
            (n("impressions"), n("clicks"), nanos(spend))
        })
        .collect();
    let spent = campaign("capped")["budget"]["spent_total"]
        .as_f64()
        .expect("spent_total");
    (figures, nanos(spent))
}

/// `usd` rounded to the nano-dollar, as precis counts money: sums of the same wins compare equal.
fn nanos(usd: f64) -> f64 {
    (usd * 1e9).round() / 1e9
}

/// What the test expects `/status` to say of what it sent.
fn expected(sent: &Sent) -> (Vec<(u64, u64, f64)>, f64) {
    let spend = |c: usize| nanos(sent.wins[c] as f64 * PRICE / 1000.0);
    let figures = (0..2)
        .map(|c| (sent.impressions[c], sent.clicks[c], spend(c)))
        .collect();
    (figures, spend(0))
}

/// The number of events the start's `event log open` line says it replayed (the last start's).
fn replayed(server: &Server) -> u64 {
    let log = server.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("event log open"))
        .unwrap_or_else(|| panic!("no `event log open` line:\n{log}"));
    let (_, rest) = line.split_once("replayed=").expect("replayed=");
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a count")
}

/// What a started bidder must hold of what the test sent: the figures, the caps of `capped`
/// users (their next request is `free`'s), every win known (a retry is a repeat).
async fn holds_everything_sent(server: &Server, sent: &mut Sent, capped_users: &[&str]) {
    assert_eq!(measured(server).await, expected(sent));
    for user in capped_users {
        assert_eq!(serve(server, sent, user, false).await, "free", "{user}");
    }
    retry_wins(server, sent).await;
}

/// Sends each bid's win again (the exchange retries): every one a repeat, nothing counted again.
async fn retry_wins(server: &Server, sent: &Sent) {
    let before = measured(server).await;
    for bid in &sent.won {
        let (status, _, body) = server.get(&notice_path(bid, "nurl", PRICE_TEXT)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body:?}");
    }
    assert_eq!(
        measured(server).await,
        before,
        "a retried win counted again"
    );
}

#[tokio::test]
async fn a_start_after_a_snapshot_replays_only_what_came_after_and_ends_where_a_full_replay_does() {
    let start = at("2030-01-01T10:00:00Z");
    let mut server = two_campaigns(simulated(start, NEVER));
    let mut sent = Sent::default();
    traffic(&server, &mut sent, &["u0", "u1", "u2"]).await;
    let before = sent.clone();

    // A graceful stop writes the snapshot: the next start replays nothing.
    server.restart(&[]).await;
    server.until_logged("state snapshot loaded").await;
    assert_eq!(replayed(&server), 0);
    assert_eq!(measured(&server).await, expected(&sent));

    // More traffic; u0 has had their 2 impressions of `capped` before the snapshot: `free`'s.
    advance(&server, start + Duration::minutes(5)).await;
    traffic(&server, &mut sent, &["u3", "u4"]).await;
    assert_eq!(serve(&server, &mut sent, "u0", false).await, "free");
    // Killed: no snapshot at this stop. The start replays what came after the first.
    server.signal("KILL");
    server.exited().await;
    server.restart(&[]).await;
    let after = sent.events() - before.events();
    assert_eq!(
        replayed(&server),
        after,
        "only the events after the snapshot"
    );
    holds_everything_sent(&server, &mut sent, &["u0", "u3"]).await;

    // The whole log replayed without a snapshot ends at the same figures.
    server.stop().await;
    std::fs::remove_file(server.logs_dir().join("state.snapshot")).expect("a snapshot");
    server.restart(&[]).await;
    assert_eq!(replayed(&server), sent.events());
    holds_everything_sent(&server, &mut sent, &["u1", "u4"]).await;
}

#[tokio::test]
async fn the_periodic_snapshot_catches_up_with_the_log_so_a_start_after_a_crash_replays_nothing() {
    let start = at("2030-01-01T10:00:00Z");
    let mut server = two_campaigns(simulated(start, 1));
    let mut sent = Sent::default();
    traffic(&server, &mut sent, &["u0", "u1"]).await;
    // Each refresh logs how many events it folded in: wait until they add up to all of them.
    server
        .eventually("the snapshot to take in every event", async || {
            let folded: u64 = server
                .log()
                .lines()
                .filter(|l| l.contains("state snapshot brought up to the event log"))
                .filter_map(|l| {
                    l.split_once("events=")?
                        .1
                        .split(' ')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum();
            (folded == sent.events())
                .then_some(())
                .ok_or(folded.to_string())
        })
        .await;
    server.signal("KILL");
    server.exited().await;
    server.restart(&[]).await;
    assert_eq!(replayed(&server), 0);
    assert_eq!(measured(&server).await, expected(&sent));
    assert_eq!(serve(&server, &mut sent, "u0", false).await, "free");
    retry_wins(&server, &sent).await;
}

#[tokio::test]
async fn a_damaged_snapshot_or_holds_file_is_set_aside_and_the_bidder_starts_from_the_log() {
    let start = at("2030-01-01T10:00:00Z");
    let mut server = two_campaigns(simulated(start, NEVER));
    let mut sent = Sent::default();
    traffic(&server, &mut sent, &["u0", "u1"]).await;
    server.stop().await;
    let logs = server.logs_dir();
    let snapshot = logs.join("state.snapshot");
    let mut bytes = std::fs::read(&snapshot).expect("a snapshot");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&snapshot, &bytes).expect("damaged");
    std::fs::write(logs.join("holds.json"), "[{\"bid\": ").expect("a damaged holds file");

    server.restart(&[]).await;
    let log = server.log();
    assert!(log.contains("cannot load the state snapshot"), "{log}");
    assert!(log.contains("cannot read the budget reservations"), "{log}");
    assert_eq!(
        std::fs::read(logs.join("state.snapshot.bad")).expect("set aside"),
        bytes
    );
    assert!(logs.join("holds.json.bad").exists());
    assert!(!logs.join("holds.json").exists());
    assert_eq!(replayed(&server), sent.events(), "the whole log");
    assert_eq!(measured(&server).await, expected(&sent));
    assert_eq!(serve(&server, &mut sent, "u1", false).await, "free");
    retry_wins(&server, &sent).await;
}

/// A bid made at the server's clock now.
async fn bid_now(server: &Server) -> Value {
    let response = server
        .bid(&json!({ "id": "r", "imp": [{ "id": "1", "banner": { "w": 300, "h": 250 } }] }))
        .await
        .expect("a bid");
    bids(&response)[0].clone()
}

/// Sends `bid`'s win: the status.
async fn win(server: &Server, bid: &Value) -> StatusCode {
    server.get(&notice_path(bid, "nurl", PRICE_TEXT)).await.0
}

#[tokio::test]
async fn past_max_dedup_keys_the_first_tokens_to_expire_are_forgotten_and_refused_never_counted_twice()
 {
    // Tokens live 3,200 s: events are kept in buckets of 100 s of expiry. Three at most.
    let t0 = at("2030-01-01T10:00:00Z");
    let server = simulated(t0, NEVER)
        .arg("--events-token-ttl-secs")
        .arg("3200")
        .arg("--events-max-dedup-keys")
        .arg("3")
        .campaign("a.toml", Campaign::cpm(2.0).banner(300, 250))
        .start();
    let spend = async || {
        let metric = "precis_campaign_spend_usd_total{campaign=\"a\"}";
        nanos(server.metric(metric).await)
    };
    let early: Vec<Value> = bids_now(&server, 4).await;
    for bid in &early[..3] {
        assert_eq!(win(&server, bid).await, StatusCode::NO_CONTENT);
    }
    assert_eq!(server.metric("precis_dedup_keys").await, 3.0);

    // 100 s later, a fourth event: the bucket of the first three goes, and with it their tokens
    // (and the fourth early bid's, whose win had not come yet).
    let t1 = t0 + Duration::seconds(100);
    advance(&server, t1).await;
    let later: Vec<Value> = bids_now(&server, 4).await;
    assert_eq!(win(&server, &later[0]).await, StatusCode::NO_CONTENT);
    assert_eq!(server.metric("precis_dedup_forgotten_total").await, 3.0);
    assert_eq!(server.metric("precis_dedup_keys").await, 1.0);
    for bid in &early {
        assert_eq!(win(&server, bid).await, StatusCode::GONE, "{bid}");
    }
    let expired = "precis_event_rejections_total{reason=\"expired\"}";
    assert_eq!(server.metric(expired).await, 4.0);

    // The bucket being filled is never dropped: two more fill it, the next is turned away (503)
    // while a repeat is still a repeat.
    for bid in &later[1..3] {
        assert_eq!(win(&server, bid).await, StatusCode::NO_CONTENT);
    }
    assert_eq!(
        win(&server, &later[3]).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(server.metric("precis_dedup_full_total").await, 1.0);
    assert_eq!(win(&server, &later[0]).await, StatusCode::NO_CONTENT);
    // The clock moves on to the next bucket: the retry goes through.
    advance(&server, t1 + Duration::seconds(100)).await;
    assert_eq!(win(&server, &later[3]).await, StatusCode::NO_CONTENT);
    assert_eq!(server.metric("precis_dedup_forgotten_total").await, 6.0);
    // Seven wins counted, each once.
    let wins = "precis_events_total{kind=\"win\"}";
    assert_eq!(server.metric(wins).await, 7.0);
    assert_eq!(spend().await, nanos(7.0 * PRICE / 1000.0));
}

/// `n` bids of `a` made now, one request each.
async fn bids_now(server: &Server, n: usize) -> Vec<Value> {
    let mut made = Vec::new();
    for _ in 0..n {
        made.push(bid_now(server).await);
    }
    made
}

#[tokio::test]
async fn with_keep_days_old_log_files_go_once_the_snapshot_has_read_them() {
    let now = at("2030-01-01T10:00:00Z");
    let old = "logs/events-20291201T10.0.jsonl";
    let server = simulated(now, 1)
        .arg("--events-keep-days")
        .arg("30")
        .file(old, "a line cut short by a crash\n")
        .campaign("free.toml", Campaign::cpm(1.0).banner(300, 250))
        .start();
    let old = server.root().join(old);
    assert!(
        old.exists(),
        "kept while it is the newest file (the one written to)"
    );
    // A bid line starts this hour's file; the checkpointer then reads the old one and lets it go.
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
    server.until_logged("event log files removed").await;
    assert!(!old.exists(), "31 days old and read: removed");
    let kept = server.log_files();
    assert_eq!(kept.len(), 1, "the hour being written stays: {kept:?}");
    let name = kept[0].file_name().unwrap_or_default().to_string_lossy();
    assert!(name.starts_with("events-20300101T10"), "{name}");
}
