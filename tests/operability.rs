//! What operators rely on, against the real binary: the admin port and its token, readiness,
//! the metrics they scrape (latency, per-campaign bids, wins and spend, connections), flags over
//! the configuration file, JSON logs, and a SIGTERM in the middle of traffic losing nothing.

#[allow(dead_code)]
mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::Value;

use common::{Campaign, PRECIS, Server, banner_request, bids, fifo, local, parse_json, str_of};

const AUCTION_PRICE: &str = "${AUCTION_PRICE}";

/// A CPM campaign with one banner of this size.
fn banner_campaign(cpm: f64, w: u32, h: u32) -> String {
    Campaign::cpm(cpm).banner(w, h).toml()
}

/// `a` bids 2.0 on 300×250, `b` 3.0 on 728×90.
fn two_campaigns() -> Server {
    Server::start([
        ("a.toml", banner_campaign(2.0, 300, 250)),
        ("b.toml", banner_campaign(3.0, 728, 90)),
    ])
}

/// The win notice of a bid, as the exchange sends it at `price`.
fn win_path(bid: &Value, price: f64) -> String {
    local(&str_of(bid, "nurl").replace(AUCTION_PRICE, &price.to_string()))
}

#[tokio::test]
async fn admin_routes_answer_on_the_admin_port_and_never_on_the_bid_port() {
    let server = two_campaigns();
    for (method, path) in [
        (Method::GET, "/status"),
        (Method::POST, "/admin/reload"),
        (Method::POST, "/admin/clock?now=2030-01-01T00:00:00Z"),
    ] {
        let (status, _, body) = server.request(method.clone(), path, "").await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{method} {path} on the bid port"
        );
        // The answer says where the route is.
        let error = parse_json(&body)["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            error.contains("admin port (admin_listen)"),
            "{path}: {error}"
        );
    }
    let (status, _, body) = server.admin_get("/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(parse_json(&body)["live"].as_array().map(Vec::len), Some(2));
    let (status, _, _) = server.admin_post("/admin/reload").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server.admin_get("/admin/reload").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // Exchanges' routes are not on the admin port.
    let (status, _, body) = server.admin_post("/openrtb2/bid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error = parse_json(&body)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("bid port (listen)"), "{error}");
    // Health, readiness and metrics are on both.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, _, _) = server.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path} on the bid port");
        let (status, _, _) = server.admin_get(path).await;
        assert_eq!(status, StatusCode::OK, "{path} on the admin port");
    }
    let (_, _, body) = server.get("/readyz").await;
    assert_eq!(&body[..], b"ready\n");
}

#[tokio::test]
async fn an_admin_token_once_set_is_required_on_every_admin_request() {
    // The environment's token wins over the file's.
    let server = Server::setup()
        .config("admin_token = \"from-the-file\"\n")
        .env("PRECIS_ADMIN_TOKEN", "from-the-environment")
        .campaign("a.toml", banner_campaign(2.0, 300, 250))
        .start();
    for token in [None, Some("from-the-file"), Some("wrong")] {
        for (method, path) in [(Method::GET, "/status"), (Method::POST, "/admin/reload")] {
            let (status, headers, _) = server.admin_request(method.clone(), path, token).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}"
            );
            assert_eq!(headers["www-authenticate"], "Bearer");
        }
    }
    let good = Some("from-the-environment");
    let (status, _, _) = server.admin_request(Method::GET, "/status", good).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server
        .admin_request(Method::POST, "/admin/reload", good)
        .await;
    assert_eq!(status, StatusCode::OK);
    // The bid port does not ask exchanges for it.
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
}

#[test]
fn an_admin_address_that_is_not_loopback_needs_a_token_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(PRECIS)
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "0.0.0.0:0"])
        .env_remove("PRECIS_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run precis serve");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("admin_listen 0.0.0.0:0 is not a loopback address")
            && stderr.contains("PRECIS_ADMIN_TOKEN"),
        "{stderr}"
    );
}

#[tokio::test]
async fn per_campaign_bids_wins_and_spend_match_what_was_made_and_won() {
    let server = two_campaigns();
    let mut wins = Vec::new();
    for i in 0..5 {
        let response = server.bid(&banner_request(300, 250)).await.expect("a bids");
        if i < 2 {
            wins.push(win_path(&bids(&response)[0], [1.0, 1.5][i]));
        }
    }
    for i in 0..3 {
        let response = server.bid(&banner_request(728, 90)).await.expect("b bids");
        if i == 0 {
            wins.push(win_path(&bids(&response)[0], 2.5));
        }
    }
    for path in &wins {
        let (status, _, body) = server.get(path).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body:?}");
    }
    let metrics = server.metrics().await;
    let series = |name: &str, id: &str| metrics[&format!("{name}{{campaign=\"{id}\"}}")];
    assert_eq!(series("precis_campaign_bids_total", "a"), 5.0);
    assert_eq!(series("precis_campaign_bids_total", "b"), 3.0);
    assert_eq!(series("precis_campaign_wins_total", "a"), 2.0);
    assert_eq!(series("precis_campaign_wins_total", "b"), 1.0);
    let spend_a = series("precis_campaign_spend_usd_total", "a");
    let spend_b = series("precis_campaign_spend_usd_total", "b");
    assert!((spend_a - 2.5 / 1000.0).abs() < 1e-12, "{spend_a}");
    assert!((spend_b - 2.5 / 1000.0).abs() < 1e-12, "{spend_b}");

    // A reload keeps counting where it was.
    let (status, _, _) = server.admin_post("/admin/reload").await;
    assert_eq!(status, StatusCode::OK);
    server.bid(&banner_request(300, 250)).await.expect("a bids");
    let bids_a = server
        .metric("precis_campaign_bids_total{campaign=\"a\"}")
        .await;
    assert_eq!(bids_a, 6.0);
}

#[tokio::test]
async fn the_latency_histogram_counts_every_bid_and_no_bid() {
    let server = two_campaigns();
    for _ in 0..4 {
        server.bid(&banner_request(300, 250)).await.expect("a bids");
    }
    for _ in 0..3 {
        assert!(server.bid(&banner_request(160, 600)).await.is_none());
    }
    // Not a bid request: counted as an outcome, not as bid-path latency.
    let (status, _, _) = server.post("/openrtb2/bid", "not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let metrics = server.metrics().await;
    let name = "precis_bid_duration_seconds";
    assert_eq!(metrics[&format!("{name}_count")], 7.0);
    assert_eq!(metrics[&format!("{name}_bucket{{le=\"+Inf\"}}")], 7.0);
    assert!(metrics[&format!("{name}_sum")] > 0.0);
    let mut buckets: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|(series, count)| {
            let le = series.strip_prefix(&format!("{name}_bucket{{le=\""))?;
            let le = le.strip_suffix("\"}")?.parse().ok()?;
            Some((le, *count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() >= 10, "{buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative buckets never go down: {buckets:?}"
    );
    assert_eq!(buckets.last().map(|b| b.1), Some(7.0), "1 s holds them all");
    let quantile =
        |q: &str| metrics[&format!("precis_bid_duration_quantile_seconds{{quantile=\"{q}\"}}")];
    let max = metrics["precis_bid_duration_max_seconds"];
    assert!(0.0 < quantile("0.5") && quantile("0.5") <= quantile("0.99"));
    assert!(quantile("0.999") <= max, "{metrics:?}");
}

#[tokio::test]
async fn open_connections_are_counted_until_they_close() {
    let server = two_campaigns();
    let before = server.metric("precis_connections_open").await;
    let accepted = server.metric("precis_connections_accepted_total").await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(
            tokio::net::TcpStream::connect(server.addr)
                .await
                .expect("connect"),
        );
    }
    server
        .eventually("three more open connections", async || {
            let open = server.metric("precis_connections_open").await;
            (open >= before + 3.0).then_some(()).ok_or(open.to_string())
        })
        .await;
    assert!(server.metric("precis_connections_accepted_total").await >= accepted + 3.0);
    drop(idle);
    server
        .eventually("the three closed", async || {
            let open = server.metric("precis_connections_open").await;
            (open <= before).then_some(()).ok_or(open.to_string())
        })
        .await;
}

/// `precis_event_log_sync_age_seconds`.
async fn sync_age(server: &Server) -> f64 {
    server.metric("precis_event_log_sync_age_seconds").await
}

#[tokio::test]
async fn event_log_lag_is_reported() {
    // Two bidders log one bid line each: one fsyncs a lone bid line within a second (its window
    // is 100 ms), the other (practically) never.
    let started = Instant::now();
    let log_synced_every = |ms: u64| {
        Server::setup()
            .config(&format!("[events]\nsync_ms = {ms}\n"))
            .campaign("a.toml", banner_campaign(2.0, 300, 250))
            .start()
    };
    let syncing = log_synced_every(100);
    let idle = log_synced_every(3_600_000);
    for server in [&syncing, &idle] {
        server.bid(&banner_request(300, 250)).await.expect("a bids");
        server
            .eventually("the bid line taken by the writer", async || {
                let taken = server.metric("precis_event_log_unsynced").await
                    + server.metric("precis_event_log_written_total").await;
                (taken == 1.0).then_some(()).ok_or(taken.to_string())
            })
            .await;
        assert_eq!(server.metric("precis_event_log_queued").await, 0.0);
    }

    // A bid line alone waits for the next fsync (nobody waits on it): the age is the time since
    // the writer took it, and grows; the line is still in the writer's buffer, which is what a
    // crash now would lose.
    let age = idle
        .eventually("the idle log's sync age to pass a second", async || {
            let age = sync_age(&idle).await;
            (age >= 1.0).then_some(age).ok_or(age.to_string())
        })
        .await;
    assert!(
        age <= started.elapsed().as_secs_f64(),
        "a line waiting {age} s, but the bidder started {:?} ago",
        started.elapsed()
    );
    assert!(idle.logged_events().is_empty(), "on disk before a sync");

    // Synced on its timer: the line is on disk, and nothing waits for the disk any more.
    syncing
        .eventually("the bid line fsynced", async || {
            let written = syncing.metric("precis_event_log_written_total").await;
            let age = sync_age(&syncing).await;
            (written == 1.0 && age == 0.0)
                .then_some(())
                .ok_or(format!("{written} written, sync age {age}"))
        })
        .await;
    assert_eq!(syncing.logged_events().len(), 1);
}

#[tokio::test]
async fn readyz_is_503_while_campaigns_load_and_200_once_they_are() {
    // The taxonomy is a pipe: loading the campaigns waits until the test writes it.
    let server = Server::setup()
        .fifo("campaigns/taxonomy.toml")
        .campaign("a.toml", banner_campaign(2.0, 300, 250))
        .start_loading();
    for (port, (status, _, body)) in [
        ("bid", server.get("/readyz").await),
        ("admin", server.admin_get("/readyz").await),
    ] {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{port} port");
        assert_eq!(&body[..], b"loading campaigns\n", "{port} port");
    }
    // Alive all the same; bid requests are told to come back.
    assert_eq!(server.get("/healthz").await.0, StatusCode::OK);
    let (status, headers, _) = server
        .post("/openrtb2/bid", banner_request(300, 250).to_string())
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");

    let taxonomy = server.campaign_path("taxonomy.toml");
    tokio::task::spawn_blocking(move || fifo::feed(&taxonomy, "roots = [\"sports\"]\n"))
        .await
        .expect("write the taxonomy");
    server
        .eventually("/readyz to answer 200", async || {
            let (status, _, body) = server.get("/readyz").await;
            (status == StatusCode::OK)
                .then_some(body)
                .ok_or(status.to_string())
        })
        .await;
    let (status, _, body) = server.admin_get("/readyz").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ready\n"[..]));
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
}

#[tokio::test]
async fn flags_override_the_configuration_file() {
    let server = Server::setup()
        .config("[events]\ndir = \"file-logs\"\nlog_bids_every = 1\n")
        .arg("--events-dir")
        .arg("flag-logs")
        .campaign("a.toml", banner_campaign(2.0, 300, 250))
        .start();
    server.bid(&banner_request(300, 250)).await.expect("a bids");
    assert!(server.root().join("flag-logs").is_dir());
    assert!(!server.root().join("file-logs").exists());
}

#[tokio::test]
async fn json_logs_are_one_json_object_per_line() {
    let mut server = Server::setup()
        .arg("--log-format")
        .arg("json")
        .campaign("a.toml", banner_campaign(2.0, 300, 250))
        .start();
    server.bid(&banner_request(300, 250)).await.expect("a bids");
    server.stop().await;
    let log = server.log();
    let mut messages = Vec::new();
    for line in log.lines() {
        let line: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(line["level"].is_string(), "{line}");
        messages.push(
            line["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert!(
        messages.iter().any(|m| m.starts_with("admin listening on")),
        "{log}"
    );
    assert!(messages.iter().any(|m| m == "SIGTERM received"), "{log}");
}

#[tokio::test]
async fn sigterm_under_a_burst_of_bids_and_wins_loses_no_acknowledged_win_or_spend() {
    const PRICE: f64 = 1.5;
    const TASKS: usize = 6;
    let campaign = format!(
        "{}\n[budget]\ntotal = 100000.0\npacing = \"asap\"\n",
        banner_campaign(2.0, 300, 250)
    );
    // A win is acknowledged once on disk; bid lines get there through the graceful stop.
    let server = Server::setup()
        .env("PRECIS_SECRET", "a secret of at least sixteen bytes")
        .campaign("a.toml", campaign)
        .start();
    let server = Arc::new(server);
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (server, acknowledged) = (server.clone(), acknowledged.clone());
        tasks.spawn(async move {
            let request = banner_request(300, 250).to_string();
            let mut won = Vec::new();
            // Bid and win until the server stops answering (bounded, whatever happens).
            for _ in 0..2_000 {
                let Some(made) = server.try_bid(&request).await else {
                    break;
                };
                let Some(bid) = &made else { continue };
                match server
                    .try_request(Method::GET, &win_path(bid, PRICE), "")
                    .await
                {
                    Some((status, _)) if status.is_success() => {
                        won.push(str_of(bid, "id").to_owned());
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            won
        });
    }
    server
        .eventually("some wins acknowledged", async || {
            let n = acknowledged.load(Ordering::Relaxed);
            (n >= 30).then_some(()).ok_or(n.to_string())
        })
        .await;
    server.signal("TERM");
    let mut acked = HashSet::new();
    while let Some(won) = tasks.join_next().await {
        acked.extend(won.expect("a traffic task"));
    }
    let mut server = Arc::into_inner(server).expect("the tasks are done");
    let status = server.exited().await;
    assert!(status.success(), "exit {status}; stderr:\n{}", server.log());

    let logged: HashSet<String> = server
        .logged_events()
        .iter()
        .filter(|e| str_of(e, "event") == "win")
        .map(|e| str_of(e, "bid").to_owned())
        .collect();
    let lost: Vec<_> = acked.difference(&logged).collect();
    assert!(
        lost.is_empty(),
        "acknowledged wins not in the log: {lost:?}"
    );
    let spent = logged.len() as f64 * PRICE / 1000.0;

    server.restart(&[]).await;
    let status = server.status().await;
    let budget = &status["campaigns"][0]["budget"];
    let spent_total = budget["spent_total"].as_f64().expect("spent_total");
    assert!(
        (spent_total - spent).abs() < 1e-9,
        "spent {spent_total} after the restart, {} wins logged for {spent}",
        logged.len()
    );
    let wins = server
        .metric("precis_campaign_wins_total{campaign=\"a\"}")
        .await;
    assert_eq!(wins, logged.len() as f64);
}

#[tokio::test]
async fn sigterm_waits_for_the_event_log_to_write_its_backlog() {
    // The log's file is a pipe the test holds: its writer is stuck with a full queue behind it.
    const QUEUE: usize = 64;
    let (mut server, held) = fifo::held_event_log(QUEUE);
    let made = fifo::back_up(&server, QUEUE).await;
    // Wins queued behind them wait for their lines: whatever they are answered, they are kept.
    let (waiting, _) = fifo::win_until_busy(&server, &made).await;
    assert!(!waiting.is_empty(), "no win found room in the queue");
    let queued: HashSet<String> = waiting.into_keys().collect();
    let dropped = server.metric("precis_bid_lines_dropped_total").await;
    let bid_lines = made.len() - dropped as usize;

    server.signal("TERM");
    server.until_logged("SIGTERM received").await;
    // While the log cannot take its lines, the bidder waits for it: it must not stop. (A window
    // in which nothing may happen, not a wait for something: a correct bidder passes it however
    // slow the machine is.)
    let window = Instant::now() + Duration::from_secs(2);
    while Instant::now() < window {
        if let Some(status) = server.exited_yet() {
            panic!(
                "exited ({status}) with its event log's lines unwritten; stderr:\n{}",
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!server.log().contains("stopped;"), "{}", server.log());

    let written = held.everything();
    let status = server.exited().await;
    assert!(status.success(), "exit {status}; stderr:\n{}", server.log());
    let lines: Vec<Value> = String::from_utf8_lossy(&written)
        .lines()
        .map(|line| parse_json(line.as_bytes()))
        .collect();
    let of = |kind: &'static str| lines.iter().filter(move |e| str_of(e, "event") == kind);
    assert_eq!(
        of("bid").count(),
        bid_lines,
        "bid lines accepted and written"
    );
    let logged: HashSet<String> = of("win").map(|e| str_of(e, "bid").to_owned()).collect();
    assert_eq!(logged, queued, "wins queued and written");
}

#[tokio::test]
async fn the_admin_port_refuses_what_a_web_page_could_make_a_browser_send() {
    let server = two_campaigns();
    // The status of `method path` on the admin port with these headers and a `{}` body.
    let admin = async |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut request = format!("{method} {path} HTTP/1.1\r\n");
        for (name, value) in headers {
            request += &format!("{name}: {value}\r\n");
        }
        request += "content-length: 2\r\n\r\n{}";
        let mut raw = common::wire::Raw::connect_to(server.admin).await;
        raw.send(request.as_bytes()).await;
        raw.answer().await.map(|a| a.status)
    };
    let host = format!("127.0.0.1:{}", server.admin.port());
    // A rebound name: 403, whatever the route.
    let rebound = admin("GET", "/status", &[("host", "attacker.example:8081")]).await;
    assert_eq!(rebound, Some(403));
    // A cross-site form or text/plain POST: 415, and nothing reloads.
    let reloads = server.metric("precis_reloads_total").await;
    for kind in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let headers = [("host", host.as_str()), ("content-type", kind)];
        assert_eq!(
            admin("POST", "/admin/reload", &headers).await,
            Some(415),
            "{kind}"
        );
    }
    assert_eq!(server.metric("precis_reloads_total").await, reloads);
    // Its own Host, by address or as localhost, with JSON: served.
    let localhost = format!("localhost:{}", server.admin.port());
    for host in [host.as_str(), localhost.as_str()] {
        let json = [("host", host), ("content-type", "application/json")];
        assert_eq!(
            admin("POST", "/admin/reload", &json).await,
            Some(200),
            "{host}"
        );
    }
}

#[tokio::test]
async fn each_campaigns_figures_are_on_the_admin_port_only() {
    let server = two_campaigns();
    assert!(
        server
            .bid(&common::banner_request(300, 250))
            .await
            .is_some()
    );
    let (_, _, bid_port) = server.get("/metrics").await;
    let bid_port = String::from_utf8_lossy(&bid_port).into_owned();
    assert!(bid_port.contains("precis_bid_requests_total"), "{bid_port}");
    assert!(
        !bid_port.contains("precis_campaign_bids_total"),
        "{bid_port}"
    );
    let (_, _, admin_port) = server.admin_get("/metrics").await;
    assert!(String::from_utf8_lossy(&admin_port).contains("precis_campaign_bids_total{campaign="));
}
