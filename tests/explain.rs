//! "Why did it not bid?", as a campaign manager asks it: `precis explain` offline on a campaign
//! directory, `POST /admin/explain` on the running bidder (with its spend, reservations and caps),
//! and the no-bid reasons counted in `/metrics`.
//!
//! Each expected outcome follows from the campaign files and the request the test writes.

#[allow(dead_code)]
mod common;

use std::process::Command;

use common::{Campaign, PRECIS, Server, Setup, bids, parse_json, str_of};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

/// A Wednesday, 10:30 UTC.
const AT: &str = "2026-03-04T10:30:00Z";

/// One 300x250 banner with a floor of 1.00 USD, from a US desktop that blocks `blocked.example`.
fn request() -> Value {
    json!({
        "id": "why",
        "imp": [{ "id": "1", "banner": { "w": 300, "h": 250 }, "bidfloor": 1.0 }],
        "site": { "domain": "news.example" },
        "device": { "devicetype": 2, "geo": { "country": "USA" } },
        "user": { "id": "reader-1" },
        "badv": ["blocked.example"]
    })
}

/// Campaigns that each fail one check for [`request`], in auction order, and two that pass.
fn campaigns() -> Vec<(&'static str, String)> {
    let banner = |cpm| Campaign::cpm(cpm).banner(300, 250);
    vec![
        ("france", banner(5.0).target("countries = [\"FR\"]").toml()),
        ("nights", banner(4.5).target("hours = [[22, 24]]").toml()),
        ("video", Campaign::cpm(4.0).video().toml()),
        (
            "blocked",
            banner(3.0).adomain(&["shop.blocked.example"]).toml(),
        ),
        ("winner", banner(2.0).toml()),
        ("second", banner(1.5).toml()),
        ("cheap", banner(0.5).toml()),
        ("paused", banner(9.0).top("status = \"paused\"").toml()),
    ]
}

/// Each campaign's outcome and detail for the first imp, in the order given.
fn outcomes(explained: &Value) -> Vec<(String, String, String)> {
    explained["imps"][0]["campaigns"]
        .as_array()
        .expect("a list of campaigns")
        .iter()
        .map(|v| {
            let s = |key| str_of(v, key).to_owned();
            (s("campaign"), s("outcome"), s("detail"))
        })
        .collect()
}

/// Asserts the outcome of `campaign` and that its detail names each of `values`.
fn assert_outcome(
    found: &[(String, String, String)],
    campaign: &str,
    outcome: &str,
    values: &[&str],
) {
    let (_, got, detail) = found
        .iter()
        .find(|(c, ..)| c == campaign)
        .unwrap_or_else(|| panic!("{campaign} is not explained: {found:?}"));
    assert_eq!(got, outcome, "{campaign}: {detail}");
    for value in values {
        assert!(detail.contains(value), "{campaign}: {detail} lacks {value}");
    }
}

/// Runs `precis explain` in a directory holding [`campaigns`] and the request.
fn explain_offline(args: &[&str]) -> std::process::Output {
    let root = tempfile::tempdir().expect("a temporary directory");
    let dir = root.path().join("campaigns");
    std::fs::create_dir(&dir).expect("a campaign directory");
    for (name, text) in campaigns() {
        std::fs::write(dir.join(format!("{name}.toml")), text).expect("a campaign file");
    }
    std::fs::write(root.path().join("request.json"), request().to_string()).expect("a request");
    Command::new(PRECIS)
        .arg("explain")
        .arg("request.json")
        .args(["--at", AT])
        .args(args)
        .current_dir(root.path())
        .env_remove("PRECIS_SECRET")
        .output()
        .expect("precis runs")
}

#[test]
fn explain_gives_each_campaign_its_first_reason_with_the_values_compared() {
    let out = explain_offline(&["--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let explained: Value = parse_json(&out.stdout);
    let imp = &explained["imps"][0];
    assert_eq!(imp["winner"], "winner");
    assert_eq!(imp["floor"], 1.0);
    let found = outcomes(&explained);
    let order: Vec<&str> = found.iter().map(|(c, ..)| c.as_str()).collect();
    assert_eq!(
        order,
        [
            "france", "nights", "video", "blocked", "winner", "second", "cheap", "paused"
        ],
        "auction order, then the paused"
    );
    assert_outcome(&found, "france", "geo", &["USA", "FRA"]);
    assert_outcome(&found, "nights", "schedule", &["Wednesday 10:30"]);
    assert_outcome(
        &found,
        "video",
        "creative",
        &["banner 300x250", "video video/mp4 30 s"],
    );
    assert_outcome(
        &found,
        "blocked",
        "blocked",
        &["badv blocks shop.blocked.example"],
    );
    assert_outcome(&found, "winner", "bid", &["2.000000 USD"]);
    assert_outcome(&found, "second", "outranked", &["winner"]);
    assert_outcome(&found, "cheap", "floor", &["0.500000", "1.000000"]);
    assert_outcome(&found, "paused", "paused", &[]);

    // For people: the same, one line a campaign.
    let out = explain_offline(&[]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("imp 1: banner 300x250; floor 1.000000 USD; bid by winner\n"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("cheap") && l.contains("floor")),
        "{text}"
    );
}

#[test]
fn explain_for_one_campaign_keeps_the_real_winner_and_refuses_an_unknown_id() {
    let out = explain_offline(&["--campaign", "second", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let explained: Value = parse_json(&out.stdout);
    assert_eq!(explained["imps"][0]["winner"], "winner");
    let found = outcomes(&explained);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_outcome(&found, "second", "outranked", &["winner"]);

    let out = explain_offline(&["--campaign", "secnod"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no campaign `secnod`"), "{stderr}");
}

/// `POST /admin/explain` of `body`: its answer as JSON.
async fn explain_live(server: &Server, body: &Value) -> Value {
    let (status, _, answer) = server
        .admin_send(Method::POST, "/admin/explain", None, body.to_string())
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    parse_json(&answer)
}

#[tokio::test]
async fn the_running_bidder_explains_with_its_spend_holds_and_caps() {
    // 20.00 CPM: each bid reserves 0.02 USD; a total of 0.03 USD takes one bid only.
    let budgeted = format!(
        "{}\n[budget]\ntotal = 0.03\npacing = \"asap\"\n",
        Campaign::cpm(20.0).banner(300, 250).toml()
    );
    let capped = format!(
        "{}\n[frequency]\nimpressions = 1\n",
        Campaign::cpm(10.0).banner(728, 90).toml()
    );
    let server = Setup::default()
        .campaign("budgeted.toml", budgeted)
        .campaign("capped.toml", capped)
        .start();
    let mrec = json!({ "id": "a", "imp": [{ "id": "1", "banner": { "w": 300, "h": 250 } }] });
    let answer = server.bid(&mrec).await.expect("the first bid");
    assert_eq!(str_of(&bids(&answer)[0], "cid"), "budgeted");

    // Its reservation is held until the win: the next bid would not fit.
    let found = outcomes(&explain_live(&server, &mrec).await);
    assert_outcome(
        &found,
        "budgeted",
        "budget",
        &[
            "total budget",
            "spent 0.00 USD",
            "0.02 USD held",
            "of 0.03 USD",
        ],
    );
    assert!(server.bid(&mrec).await.is_none(), "the budget holds");
    let metric = r#"precis_no_bid_imps_total{reason="budget"}"#;
    assert_eq!(server.metric(metric).await, 1.0);

    // A user who has a bid pending of a campaign capped at one impression.
    let leaderboard = json!({
        "id": "b",
        "imp": [{ "id": "1", "banner": { "w": 728, "h": 90 } }],
        "user": { "id": "reader-2" }
    });
    assert!(server.bid(&leaderboard).await.is_some());
    let found = outcomes(&explain_live(&server, &leaderboard).await);
    assert_outcome(
        &found,
        "capped",
        "frequency",
        &["1 impressions", "cap of 1"],
    );
    // Explaining reserved nothing and counted nothing: another user still gets the bid.
    let other = json!({
        "id": "c",
        "imp": [{ "id": "1", "banner": { "w": 728, "h": 90 } }],
        "user": { "id": "reader-3" }
    });
    let found = outcomes(&explain_live(&server, &other).await);
    assert_outcome(&found, "capped", "bid", &["10.000000 USD"]);
    assert!(server.bid(&other).await.is_some());
    assert!(server.bid(&leaderboard).await.is_none());
    let metric = r#"precis_no_bid_imps_total{reason="frequency"}"#;
    assert_eq!(server.metric(metric).await, 1.0);
}

#[tokio::test]
async fn no_bids_are_counted_by_how_far_the_best_campaign_got() {
    let server = Setup::default()
        .campaign(
            "us.toml",
            Campaign::cpm(2.0)
                .banner(300, 250)
                .target("countries = [\"US\"]"),
        )
        .start();
    let from = |country: &str, floor: f64| {
        json!({
            "id": "r",
            "imp": [{ "id": "1", "banner": { "w": 300, "h": 250 }, "bidfloor": floor }],
            "device": { "geo": { "country": country } }
        })
    };
    assert!(server.bid(&from("DEU", 0.0)).await.is_none());
    assert!(server.bid(&from("USA", 2.5)).await.is_none());
    assert!(server.bid(&from("USA", 2.5)).await.is_none());
    let private = json!({
        "id": "p",
        "imp": [{ "id": "1", "banner": { "w": 300, "h": 250 }, "pmp": { "private_auction": 1 } }],
        "device": { "geo": { "country": "USA" } }
    });
    assert!(server.bid(&private).await.is_none());
    assert!(server.bid(&from("USA", 1.0)).await.is_some());
    let metrics = server.metrics().await;
    let count = |reason: &str| {
        metrics
            .get(&format!(r#"precis_no_bid_imps_total{{reason="{reason}"}}"#))
            .copied()
    };
    assert_eq!(count("no_campaign"), Some(1.0));
    assert_eq!(count("floor"), Some(2.0));
    assert_eq!(count("deal_only"), Some(1.0));
    assert_eq!(count("budget"), Some(0.0));

    // The live explanation says the same of the floor, with the figures.
    let found = outcomes(&explain_live(&server, &from("USA", 2.5)).await);
    assert_outcome(&found, "us", "floor", &["2.000000 USD", "2.500000 USD"]);
    let found = outcomes(&explain_live(&server, &from("DEU", 0.0)).await);
    assert_outcome(&found, "us", "geo", &["DEU", "USA"]);
}

#[tokio::test]
async fn with_no_bid_nbr_a_request_without_a_bid_hears_why() {
    let capped = format!(
        "{}\n[frequency]\nimpressions = 1\n",
        Campaign::cpm(2.0).banner(300, 250).toml()
    );
    let server = Setup::default()
        .campaign("capped.toml", capped)
        .arg("--no-bid")
        .arg("nbr")
        .start();
    let request = |id: &str, floor: f64| {
        json!({
            "id": id,
            "imp": [{ "id": "1", "banner": { "w": 300, "h": 250 }, "bidfloor": floor }],
            "user": { "id": "reader-4" }
        })
    };
    // The status, then the answer's id, nbr and precis' reason.
    let no_bid = async |id: &str, floor: f64| {
        let (status, _, body) = server
            .post("/openrtb2/bid", request(id, floor).to_string())
            .await;
        let body = parse_json(&body);
        let reason = body["ext"]["reason"].as_str().map(str::to_owned);
        (
            status,
            str_of(&body, "id").to_owned(),
            body["nbr"].as_u64(),
            reason,
        )
    };
    assert_eq!(
        no_bid("high", 5.0).await,
        (StatusCode::OK, "high".into(), Some(0), Some("floor".into()))
    );
    assert!(server.bid(&request("first", 1.0)).await.is_some());
    assert_eq!(
        no_bid("again", 1.0).await,
        (
            StatusCode::OK,
            "again".into(),
            Some(9),
            Some("frequency".into())
        ),
        "a frequency cap is OpenRTB's 'daily reader cap met'"
    );
    assert_eq!(server.outcome_count("no_bid").await, 2.0);
}
