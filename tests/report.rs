//! `precis report`: the real binary reads a log directory written as the event log writer writes it
//! (one JSON line per event, one file per hour) and prints figures that match the events exactly.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Server, bids, local, str_of};
use precis::eventlog::{Event, Kind};
use serde_json::Value;

const PRECIS: &str = env!("CARGO_BIN_EXE_precis");

fn event(kind: Kind, bid: &str, ts: &str) -> Event {
    Event {
        ts: ts.parse().expect("timestamp"),
        event: kind,
        bid: bid.to_owned(),
        request: format!("r-{bid}"),
        imp: "1".to_owned(),
        campaign: "shoes".to_owned(),
        creative: "run-300x250".to_owned(),
        bid_price: 3.0,
        cur: "USD".to_owned(),
        price: None,
        value: None,
        value_usd: None,
        order: None,
        spend_usd: 0.0,
        revenue_usd: 0.0,
        user: None,
        country: Some("USA".to_owned()),
        device: Some(2),
        os: Some("windows".to_owned()),
        weight: 1,
    }
}

/// A CPC campaign (0.35 per click): 4 bids, 2 wins at CPM 1.5 and 2.5, 3 impressions (user u1
/// twice, then u2), 1 click, 1 order of 120.00; then a line cut short by a crash.
fn log_dir() -> tempfile::TempDir {
    let win = |bid, ts, price: f64| Event {
        price: Some(price),
        spend_usd: price / 1000.0,
        ..event(Kind::Win, bid, ts)
    };
    let imp = |bid, ts, user: &str| Event {
        user: Some(user.to_owned()),
        ..event(Kind::Imp, bid, ts)
    };
    let hour10 = [
        event(Kind::Bid, "b1", "2026-03-01T10:00:00Z"),
        event(Kind::Bid, "b2", "2026-03-01T10:00:00Z"),
        event(Kind::Bid, "b3", "2026-03-01T10:00:01Z"),
        event(Kind::Bid, "b4", "2026-03-01T10:00:01Z"),
        win("b1", "2026-03-01T10:00:02Z", 1.5),
        win("b2", "2026-03-01T10:00:02Z", 2.5),
        imp("b1", "2026-03-01T10:00:03Z", "u1"),
        imp("b2", "2026-03-01T10:00:03Z", "u1"),
    ];
    let hour11 = [
        imp("b3", "2026-03-01T11:00:00Z", "u2"),
        Event {
            revenue_usd: 0.35,
            ..event(Kind::Click, "b1", "2026-03-01T11:00:05Z")
        },
        Event {
            value: Some(120.0),
            value_usd: Some(120.0),
            order: Some("o-1".to_owned()),
            ..event(Kind::Conv, "b1", "2026-03-01T11:30:00Z")
        },
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "events-20260301T10.jsonl", &hour10, "");
    let cut = serde_json::to_string(&event(Kind::Bid, "b5", "2026-03-01T11:40:00Z")).expect("json");
    write(
        dir.path(),
        "events-20260301T11.jsonl",
        &hour11,
        &cut[..cut.len() / 2],
    );
    dir
}

fn write(dir: &Path, name: &str, events: &[Event], tail: &str) {
    let mut text = String::new();
    for event in events {
        text.push_str(&serde_json::to_string(event).expect("json"));
        text.push('\n');
    }
    text.push_str(tail);
    std::fs::write(dir.join(name), text).expect("write");
}

fn report(args: &[&str]) -> Output {
    Command::new(PRECIS)
        .arg("report")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run precis report")
}

#[test]
fn json_report_matches_the_events() {
    let dir = log_dir();
    let logs = dir.path().to_str().expect("utf-8 path");
    let output = report(&["--logs", logs, "--format", "json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped 1 line that is not an event"),
        "{stderr}"
    );
    let rows: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let rows = rows.as_array().expect("a list");
    assert_eq!(rows.len(), 1);
    let shoes = &rows[0];
    let expected = serde_json::json!({
        "campaign": "shoes",
        "bids": 4,
        "wins": 2,
        "win_rate": 0.5,
        "impressions": 3,
        "reach": 2,
        "frequency": 1.5,
        "clicks": 1,
        "unique_clickers": 0,
        "ctr": 1.0 / 3.0,
        "orders": 1,
        "cvr": 1.0,
        "gmv": 120.0,
        "advertiser_cost": 0.35,
        "roas": 120.0 / 0.35,
        "media_cost": 0.004,
        "margin": 0.35 / 0.004,
        "cost_per_click": 0.004,
        "cost_per_order": 0.004,
    });
    assert_eq!(shoes, &expected);
}

#[test]
fn json_report_by_hour_with_a_window() {
    let dir = log_dir();
    let logs = dir.path().to_str().expect("utf-8 path");
    let output = report(&[
        "--logs",
        logs,
        "--by",
        "hour",
        "--from",
        "2026-03-01T10:00:01Z",
        "--to",
        "2026-03-01",
    ]);
    assert_eq!(output.status.code(), Some(1), "an empty window is an error");

    let output = report(&[
        "--logs",
        logs,
        "--format",
        "json",
        "--by",
        "hour",
        "--from",
        "2026-03-01T10:00:01Z",
        "--to",
        "2026-03-01T11:00:00Z",
    ]);
    assert!(output.status.success());
    let rows: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
    let hour = &rows[0];
    assert_eq!(hour["hour"], "2026-03-01T10");
    assert_eq!(hour["bids"], 2);
    assert_eq!(hour["wins"], 2);
    assert_eq!(hour["impressions"], 2);
    assert_eq!(hour["reach"], 1);
    assert!(hour["cvr"].is_null() && hour["cost_per_click"].is_null());
    assert!(output.stderr.is_empty(), "the cut line's hour is not read");
}

#[test]
fn a_missing_log_directory_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("logs");
    let output = report(&["--logs", missing.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot list the event log directory"),
        "{stderr}"
    );
}

/// A campaign file for `shoes` with KPIs: at least 1% CTR, at most 10.00 per order.
const SHOES_WITH_KPIS: &str = r#"adomain = ["shoes.example"]
[pricing]
model = "cpc"
cpc = 0.35
ctr = 0.01
max_cpm = 5.0
[kpi]
min_ctr = 0.01
max_cost_per_order = 10.0
[[creative]]
id = "run-300x250"
format = "banner"
w = 300
h = 250
adm = "<a href='${CLICK_URL}'>run</a>"
landing = "https://shoes.example/"
"#;

#[test]
fn campaigns_short_of_their_kpis_are_flagged_once_there_is_enough_data() {
    let logs = tempfile::tempdir().expect("temp dir");
    let campaigns = tempfile::tempdir().expect("temp dir");
    std::fs::write(campaigns.path().join("shoes.toml"), SHOES_WITH_KPIS).expect("write");
    let run = |args: &[&str]| {
        let mut all = vec![
            "--logs",
            logs.path().to_str().expect("utf-8"),
            "--campaigns",
        ];
        all.push(campaigns.path().to_str().expect("utf-8"));
        all.extend(args);
        let out = report(&all);
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // 999 impressions and no click: too little data to judge the CTR.
    let imps: Vec<Event> = (0..999)
        .map(|i| event(Kind::Imp, &format!("b{i}"), "2026-03-01T10:00:00Z"))
        .collect();
    write(logs.path(), "events-20260301T10.jsonl", &imps, "");
    assert!(!run(&[]).0.contains("KPI alerts"));
    // The 1,000th impression makes it judgeable: 0% CTR is short of 1%.
    let more = [
        event(Kind::Imp, "b999", "2026-03-01T11:00:00Z"),
        Event {
            price: Some(20_000.0),
            spend_usd: 20.0,
            ..event(Kind::Win, "b999", "2026-03-01T11:00:00Z")
        },
    ];
    write(logs.path(), "events-20260301T11.jsonl", &more, "");
    let (table, _) = run(&[]);
    assert!(
        table.contains(
            "KPI alerts:\n  shoes: ctr 0.000% is below min_ctr 1.000% after 1000 impressions"
        ),
        "{table}"
    );
    // 20.00 spent without an order is already over 10.00 per order.
    assert!(
        table.contains("shoes: cost per order 20.00 USD is above max_cost_per_order 10.00"),
        "{table}"
    );
    // JSON stays exactly its fields; the flags go to stderr.
    let (json, stderr) = run(&["--format", "json"]);
    let rows: Value = serde_json::from_str(&json).expect("json");
    assert!(rows[0].get("kpi_alerts").is_none());
    assert!(stderr.contains("shoes: ctr 0.000% is below"), "{stderr}");
}

/// Close to `expected`: sums are kept in whole nano-dollars, so a figure derived from a
/// conversion at a rate is within a nano-dollar of the hand computation.
fn assert_near(actual: &Value, expected: f64, what: &str) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {actual}"));
    assert!(
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{what}: {actual}, expected {expected}"
    );
}

/// The advertiser's truth end to end: a CPS campaign priced in CNY (5% commission), one bid won
/// at a 1.00 USD CPM, shown, clicked, and a 1,200 CNY order at 7.10 CNY to the dollar.
#[tokio::test]
async fn a_cps_order_in_cny_gives_the_advertisers_roas_and_precis_margin() {
    let campaign = common::Campaign::priced(
        "model = \"cps\"\ncurrency = \"CNY\"\ncommission = 0.05\norder_value = 500.0\ncvr = 0.05\n\
         ctr = 0.01\nmax_cpm = 50.0",
    )
    .banner_to(300, 250, "https://shop.example/");
    let mut server = Server::setup()
        .config("[currencies]\nCNY = 7.10\n")
        .campaign("cny-shop.toml", campaign.toml())
        .start();
    let response = server
        .bid(&common::banner_request(300, 250))
        .await
        .expect("a bid");
    let bid = &bids(&response)[0];
    let price = |url: &str| local(&url.replace("${AUCTION_PRICE}", "1.00"));
    for url in [price(str_of(bid, "nurl")), price(str_of(bid, "burl"))] {
        let (status, _, body) = server.get(&url).await;
        assert!(status.is_success(), "{url}: {status} {body:?}");
    }
    let adm = str_of(bid, "adm");
    let click = adm
        .split_once("href=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(url, _)| local(url))
        .expect("a click URL in the markup");
    let (status, headers, _) = server.get(&click).await;
    assert_eq!(status.as_u16(), 302);
    let location = headers["location"].to_str().expect("ascii");
    let pclid = location.split_once("pclid=").expect("a pclid").1;
    let (status, _, body) = server
        .get(&format!("/conv?pclid={pclid}&value=1200&order=o-1"))
        .await;
    assert!(status.is_success(), "conversion: {status} {body:?}");

    // By hand: 1,200 CNY is 169.0141 USD of orders; the advertiser is billed 5% of it, 60 CNY
    // (8.4507 USD); the media cost 1.00 / 1000 USD.
    let gmv = 1200.0 / 7.10;
    let billed = 0.05 * 1200.0 / 7.10;
    let media = 1.00 / 1000.0;
    let status = server.status().await;
    let live = &status["campaigns"][0];
    assert_near(&live["gmv_usd"], gmv, "/status gmv_usd");
    assert_near(&live["roas"], gmv / billed, "/status roas");

    server.stop().await;
    let rows = server.report("campaign");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["orders"], 1);
    assert_near(&row["gmv"], gmv, "gmv");
    assert_near(&row["advertiser_cost"], billed, "advertiser_cost");
    assert_near(&row["media_cost"], media, "media_cost");
    assert_near(
        &row["roas"],
        20.0,
        "roas: orders over what the advertiser paid",
    );
    assert_near(
        &row["margin"],
        billed / media,
        "margin: billed over media cost",
    );
}

/// A log of two campaigns' users: on `shoes`, ann saw 1 impression and clicked, bob 2 and clicked
/// and bought, cid 12 and never clicked, and 3 impressions had no user; on `boots`, ann saw 2.
fn frequency_log() -> tempfile::TempDir {
    let on = |campaign: &str, kind, user: Option<&str>, n: usize| -> Vec<Event> {
        (0..n)
            .map(|i| Event {
                campaign: campaign.to_owned(),
                user: user.map(str::to_owned),
                ..event(
                    kind,
                    &format!("{campaign}-{user:?}-{i}"),
                    "2026-03-01T10:00:00Z",
                )
            })
            .collect()
    };
    let events: Vec<Event> = [
        on("shoes", Kind::Imp, Some("ann"), 1),
        on("shoes", Kind::Click, Some("ann"), 1),
        on("shoes", Kind::Imp, Some("bob"), 2),
        on("shoes", Kind::Click, Some("bob"), 1),
        on("shoes", Kind::Conv, Some("bob"), 1),
        on("shoes", Kind::Imp, Some("cid"), 12),
        on("shoes", Kind::Imp, None, 3),
        on("boots", Kind::Imp, Some("ann"), 2),
    ]
    .concat();
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "events-20260301T10.jsonl", &events, "");
    dir
}

#[test]
fn frequency_counts_users_by_exposures_per_campaign_and_overall() {
    let dir = frequency_log();
    let logs = dir.path().to_str().expect("utf-8 path");
    let json = |extra: &[&str]| -> Value {
        let mut args = vec!["--logs", logs, "--frequency", "--format", "json"];
        args.extend(extra);
        let output = report(&args);
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice(&output.stdout).expect("JSON")
    };
    let bucket = |f: &Value, n: usize| -> (u64, u64, u64, u64) {
        let b = &f["buckets"][n - 1];
        let count = |k: &str| b[k].as_u64().expect(k);
        (
            count("users"),
            count("impressions"),
            count("clicks"),
            count("orders"),
        )
    };
    let shoes = json(&["--campaign", "shoes"]);
    assert_eq!(shoes["buckets"].as_array().map(Vec::len), Some(10));
    assert_eq!(bucket(&shoes, 1), (1, 1, 1, 0), "ann: {shoes}");
    assert_eq!(bucket(&shoes, 2), (1, 2, 1, 1), "bob: {shoes}");
    assert_eq!(bucket(&shoes, 10), (1, 12, 0, 0), "cid, in 10+: {shoes}");
    assert_eq!(shoes["buckets"][1]["ctr"], 0.5);
    assert_eq!(shoes["buckets"][1]["cvr"], 1.0);
    assert_eq!(shoes["buckets"][9]["exposures"], "10+");
    assert_eq!(shoes["anonymous"]["impressions"], 3);
    // Over every campaign, ann saw 3 (1 of shoes, 2 of boots) and moves to the third bucket.
    let all = json(&[]);
    assert_eq!(bucket(&all, 1), (0, 0, 0, 0));
    assert_eq!(bucket(&all, 2), (1, 2, 1, 1));
    assert_eq!(bucket(&all, 3), (1, 3, 1, 0));
    // --campaign without --frequency, or with --by, is refused.
    assert_eq!(
        report(&["--logs", logs, "--campaign", "shoes"])
            .status
            .code(),
        Some(2)
    );
    let both = report(&["--logs", logs, "--frequency", "--by", "day"]);
    assert_eq!(both.status.code(), Some(2));
}

#[test]
fn the_frequency_chart_renders_offline_in_a_browser() {
    let dir = frequency_log();
    let logs = dir.path().to_str().expect("utf-8 path");
    let output = report(&[
        "--logs",
        logs,
        "--frequency",
        "--campaign",
        "shoes",
        "--format",
        "html",
    ]);
    assert!(output.status.success(), "{output:?}");
    let page = dir.path().join("frequency.html");
    std::fs::write(&page, &output.stdout).expect("write the page");
    let (dom, console) = common::browser::browse(&format!("file://{}", page.display()), 100);
    assert!(console.is_empty(), "the page logged: {console:#?}");
    assert!(dom.contains("<h1>Frequency: shoes</h1>"), "{dom}");
    assert_eq!(dom.matches("<rect class=\"bar\"").count(), 10, "{dom}");
    assert!(dom.contains("<title>2: 1 users</title>"), "{dom}");
    assert!(
        dom.contains("<tr><td>2</td><td>1</td><td>2</td><td>1</td><td>50.00%</td><td>1</td><td>100.00%</td></tr>"),
        "{dom}"
    );
}

#[test]
fn the_report_as_html_is_one_page_with_the_table_and_its_total() {
    let dir = log_dir();
    let logs = dir.path().to_str().expect("utf-8 path");
    let output = report(&["--logs", logs, "--format", "html"]);
    assert!(output.status.success(), "{output:?}");
    let page = dir.path().join("report.html");
    std::fs::write(&page, &output.stdout).expect("write the page");
    let (dom, console) = common::browser::browse(&format!("file://{}", page.display()), 100);
    assert!(console.is_empty(), "the page logged: {console:#?}");
    assert!(dom.contains("<th>campaign</th><th>bids</th>"), "{dom}");
    assert!(
        dom.contains("<tr><td>shoes</td><td>4</td><td>2</td><td>50.00%</td>"),
        "{dom}"
    );
    assert!(dom.contains("<tr><td>TOTAL</td><td>4</td>"), "{dom}");
}
