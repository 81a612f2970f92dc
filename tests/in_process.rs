//! The serving process as a library value: a [`Bidder`] started inside the test's own process
//! bids on loopback ports it picked, records the win of its bid, and on [`Bidder::shutdown`] has
//! put everything it acknowledged on disk, so that a second bidder started on the same
//! directories takes the spend and the win over. What `precis serve` does, without the binary.

#[allow(dead_code)]
mod common;

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use precis::bidder::Bidder;
use precis::clock::Clock;
use precis::config::Config;
use serde_json::Value;

use common::{Campaign, banner_request, bids, local, parse_json, parse_prometheus, str_of};

/// A bidder on free loopback ports serving the campaign files of `root/campaigns`, keeping its
/// log, reservations and profiles under `root`, with a fixed events secret (so that a bidder
/// started again accepts the first one's event URLs).
async fn start(root: &Path) -> Bidder {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        admin_listen: "127.0.0.1:0".parse().expect("an address"),
        campaigns: root.join("campaigns"),
        workers: 1,
        ..Config::default()
    };
    config.events.dir = root.join("logs");
    config.events.secret = Some("an in-process test secret of 32 b".into());
    config.profiles.dir = root.join("profiles");
    Bidder::start(config, Clock::System)
        .await
        .expect("the bidder starts")
}

/// One request; its status and body.
async fn send(method: Method, url: String, body: String) -> (StatusCode, Bytes) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body)))
        .expect("a request");
    let response = client.request(request).await.expect("an answer");
    let status = response.status();
    let body = response.into_body().collect().await.expect("a body");
    (status, body.to_bytes())
}

/// The admin port's metrics.
async fn metrics(bidder: &Bidder) -> std::collections::HashMap<String, f64> {
    let url = format!("http://{}/metrics", bidder.admin_addr());
    let (status, body) = send(Method::GET, url, String::new()).await;
    assert_eq!(status, StatusCode::OK);
    parse_prometheus(&String::from_utf8_lossy(&body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidder_started_in_process_serves_and_on_shutdown_keeps_what_it_acknowledged() {
    let root = tempfile::tempdir().expect("a temporary directory");
    let campaigns = root.path().join("campaigns");
    std::fs::create_dir(&campaigns).expect("campaigns/");
    let budget = Campaign::cpm(2.0)
        .banner(300, 250)
        .top("id = \"shoes\"")
        .toml()
        + "\n[budget]\ntotal = 10.0\npacing = \"asap\"\n";
    std::fs::write(campaigns.join("shoes.toml"), budget).expect("a campaign file");

    let bidder = start(root.path()).await;
    let url = |path: &str| format!("http://{}{path}", bidder.addr());
    let (status, body) = send(
        Method::POST,
        url("/openrtb2/bid"),
        banner_request(300, 250).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let response: Value = parse_json(&body);
    let bid = &bids(&response)[0];
    assert_eq!(str_of(bid, "cid"), "shoes");
    let win = local(str_of(bid, "nurl")).replace("${AUCTION_PRICE}", "1.5");
    let (status, _) = send(Method::GET, url(&win), String::new()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // A second bid, never won: its reservation waits for its win notice.
    let (status, _) = send(
        Method::POST,
        url("/openrtb2/bid"),
        banner_request(300, 250).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let seen = metrics(&bidder).await;
    assert_eq!(seen["precis_events_total{kind=\"win\"}"], 1.0);
    assert_eq!(seen["precis_budget_holds"], 1.0);
    let (bid_addr, admin_addr) = (bidder.addr(), bidder.admin_addr());

    bidder.shutdown().await.expect("a clean shutdown");
    for addr in [bid_addr, admin_addr] {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} still accepts after shutdown"
        );
    }
    let logged: Vec<Value> = std::fs::read_dir(root.path().join("logs"))
        .expect("the log directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .flat_map(|p| {
            let text = std::fs::read_to_string(&p).expect("a log file");
            text.lines()
                .map(|l| parse_json(l.as_bytes()))
                .collect::<Vec<_>>()
        })
        .collect();
    let wins: Vec<&Value> = logged.iter().filter(|e| e["event"] == "win").collect();
    assert_eq!(wins.len(), 1, "{logged:?}");
    assert_eq!(wins[0]["price"], 1.5);
    assert!(root.path().join("logs/state.snapshot").is_file());

    // Started again on the same directories: the win's spend and the open reservation are back.
    let again = start(root.path()).await;
    let seen = metrics(&again).await;
    assert_eq!(seen["precis_campaign_wins_total{campaign=\"shoes\"}"], 1.0);
    assert_eq!(
        seen["precis_campaign_spend_usd_total{campaign=\"shoes\"}"],
        0.0015
    );
    assert_eq!(seen["precis_budget_holds"], 1.0);
    let retried = format!("http://{}{win}", again.addr());
    let (status, _) = send(Method::GET, retried, String::new()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "a retried win is accepted");
    let seen = metrics(&again).await;
    assert_eq!(
        seen["precis_event_repeats_total{kind=\"win\"}"], 1.0,
        "and counted once"
    );
    again.shutdown().await.expect("a clean shutdown");
}
