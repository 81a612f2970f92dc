//! Privacy signals, end to end against the real binary: a request that allows no personal data
//! (GDPR without consent for precis' vendor, COPPA, limit ad tracking) is bid on only by campaigns
//! that need none, and leaves no user key in the log, the click id or a conversion; a TCF v2
//! consent string that grants precis' vendor its purposes restores audience targeting.

#[allow(dead_code)]
mod common;

use common::{Campaign, Server, Setup, bids, local, str_of};
use hyper::StatusCode;
use serde_json::{Value, json};

/// precis' vendor id in these tests.
const VENDOR: &str = "755";

/// A TCF v2 core segment consenting purposes 1, 3 and 4 and vendor 755 (by range), written from
/// the IAB's published field layout (`request::privacy`'s unit tests build it bit by bit).
const GRANTED: &str = "CO5rKAAO5rKAAAHABBENCWEAALAAAAAAAAogF5wAQF5gAAAA";

/// A 5.00 CPM campaign for the `fans` package (`fan-1`).
fn for_fans() -> Setup {
    Setup::default()
        .campaign(
            "fans.toml",
            Campaign::cpm(5.0)
                .target(r#"audiences_any = ["fans"]"#)
                .banner(300, 250)
                .toml(),
        )
        .audience("fans.txt", "# keys: raw\nfan-1\n")
}

/// [`for_fans`] with precis' vendor id, a 4.00 CPM campaign capped at 3 a day, and a contextual
/// 1.00 CPM one that needs nothing of the user.
fn server() -> Server {
    for_fans()
        .arg("--privacy-vendor-id")
        .arg(VENDOR)
        .campaign(
            "capped.toml",
            format!(
                "{}\n[frequency]\nimpressions = 3\n",
                Campaign::cpm(4.0).banner(300, 250).toml()
            ),
        )
        .campaign(
            "contextual.toml",
            Campaign::cpm(1.0).banner(300, 250).toml(),
        )
        .audience("fans.txt", "# keys: raw\nfan-1\n")
        .start()
}

/// A 300x250 request from `fan-1` with these extra top-level fields.
fn from_fan(extra: Value) -> Value {
    let mut request = json!({
        "id": "r",
        "imp": [{ "id": "1", "banner": { "w": 300, "h": 250 } }],
        "user": { "id": "fan-1" },
        "device": { "geo": { "country": "FRA" } }
    });
    for (key, value) in extra.as_object().into_iter().flatten() {
        match (request.get_mut(key), value) {
            (Some(Value::Object(have)), Value::Object(more)) => {
                have.extend(more.clone());
            }
            _ => {
                request[key] = value.clone();
            }
        }
    }
    request
}

/// The winning campaign and its bid.
async fn winner(server: &Server, request: &Value) -> (String, Value) {
    let answer = server.bid(request).await.expect("a bid");
    let bid = bids(&answer)[0].clone();
    (str_of(&bid, "cid").to_owned(), bid)
}

/// Clicks the bid's link and reports an order with its `pclid`.
async fn click_and_order(server: &Server, bid: &Value, order: &str) {
    let click = common::markup_link(str_of(bid, "adm"));
    let (status, headers, _) = server.get(&local(click)).await;
    assert_eq!(status, StatusCode::FOUND);
    let location = headers["location"].to_str().expect("a location");
    let pclid = location.split_once("pclid=").expect("a pclid").1;
    let (status, _, body) = server
        .get(&format!("/conv?pclid={pclid}&value=10&order={order}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body:?}");
}

/// The `user` of each logged event of `kind` about campaign `campaign`.
async fn logged_users(server: &Server, kind: &str, campaign: &str) -> Vec<Value> {
    let what = format!("{kind} lines of {campaign} in the log");
    server
        .eventually(&what, async || {
            let users: Vec<Value> = server
                .logged_events()
                .into_iter()
                .filter(|e| e["event"] == kind && e["campaign"] == campaign)
                .map(|e| e["user"].clone())
                .collect();
            match users.is_empty() {
                true => Err("none yet".to_owned()),
                false => Ok(users),
            }
        })
        .await
}

#[tokio::test]
async fn without_a_basis_for_personal_data_only_contextual_campaigns_bid_and_no_user_is_kept() {
    let server = server();
    let (won, _) = winner(&server, &from_fan(json!({}))).await;
    assert_eq!(won, "fans", "a fan with nothing withheld");

    for (why, extra) in [
        (
            "gdpr",
            json!({ "regs": { "gdpr": 1 }, "user": { "consent": "" } }),
        ),
        ("coppa", json!({ "regs": { "coppa": 1 } })),
        ("lmt", json!({ "device": { "lmt": 1 } })),
        ("us_privacy", json!({ "regs": { "us_privacy": "1YYN" } })),
    ] {
        let (won, _) = winner(&server, &from_fan(extra)).await;
        assert_eq!(
            won, "contextual",
            "{why}: the package and the cap need the user"
        );
    }
    let metric = r#"precis_no_bid_imps_total{reason="consent"}"#;
    assert_eq!(
        server.metric(metric).await,
        0.0,
        "the contextual campaign bid each time"
    );

    // Consent for precis' vendor and purposes 1, 3 and 4 restores the package.
    let consented = json!({ "regs": { "gdpr": 1 }, "user": { "consent": GRANTED } });
    let (won, bid) = winner(&server, &from_fan(consented)).await;
    assert_eq!(won, "fans");
    click_and_order(&server, &bid, "with-consent").await;
    let users = logged_users(&server, "conv", "fans").await;
    assert!(users.iter().all(Value::is_string), "{users:?}");

    // Without it, nothing the contextual bid leaves holds the user: not the bid line, the click,
    // nor the conversion reported with the click's pclid.
    let refused = json!({ "regs": { "gdpr": 1 }, "user": { "consent": "" } });
    let (_, bid) = winner(&server, &from_fan(refused)).await;
    click_and_order(&server, &bid, "without-consent").await;
    for kind in ["bid", "click", "conv"] {
        let users = logged_users(&server, kind, "contextual").await;
        assert!(users.iter().all(Value::is_null), "{kind}: {users:?}");
    }
}

#[tokio::test]
async fn a_campaign_that_needs_the_user_and_alone_fits_is_counted_as_stepping_aside() {
    let server = for_fans().start();
    // No vendor id is configured: under GDPR, no consent string can be enough.
    let consented = json!({ "regs": { "gdpr": 1 }, "user": { "consent": GRANTED } });
    assert!(server.bid(&from_fan(consented)).await.is_none());
    let metric = r#"precis_no_bid_imps_total{reason="consent"}"#;
    assert_eq!(server.metric(metric).await, 1.0);
}

#[tokio::test]
async fn a_forgotten_user_loses_their_cap_and_tags_also_after_a_restart() {
    let capped = format!(
        "{}\n[frequency]\nimpressions = 1\n",
        Campaign::cpm(2.0).banner(300, 250).toml()
    );
    let mut server = Setup::default().campaign("capped.toml", capped).start();
    let request = |user: &str| json!({ "id": "r", "imp": [{ "id": "1", "banner": { "w": 300, "h": 250 } }], "user": { "id": user } });
    // One impression caps `reader`; `other` is capped too, and stays so.
    for user in ["reader", "other"] {
        let answer = server.bid(&request(user)).await.expect("a first bid");
        let bill = common::notice_path(&bids(&answer)[0], "burl", "1.0");
        let (status, _, _) = server.get(&bill).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            server.bid(&request(user)).await.is_none(),
            "{user} is capped"
        );
    }
    let tags = json!({ "tags": ["sports/running"] }).to_string();
    let (status, _, _) = server
        .admin_send(hyper::Method::PUT, "/users/reader/tags", None, tags)
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, body) = server
        .admin_send(hyper::Method::DELETE, "/users/reader", None, "")
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer = common::parse_json(&body);
    assert_eq!(
        (
            answer["had_tags"].as_bool(),
            answer["had_exposures"].as_bool()
        ),
        (Some(true), Some(true))
    );
    let (status, _, _) = server.admin_get("/users/reader").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no tags left");
    // Asked again: nothing left, still 200.
    let (status, _, body) = server
        .admin_send(hyper::Method::DELETE, "/users/reader", None, "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(common::parse_json(&body)["had_exposures"], false);

    // The snapshot written at shutdown no longer holds them: after a restart too, `reader` is
    // new to the campaign and `other` is still capped.
    server.restart(&[]).await;
    assert!(
        server.bid(&request("reader")).await.is_some(),
        "forgotten, uncapped"
    );
    assert!(
        server.bid(&request("other")).await.is_none(),
        "not forgotten"
    );

    // The batch form.
    let batch = json!({ "users": ["other", "nobody"] }).to_string();
    let (status, _, body) = server
        .admin_send(hyper::Method::POST, "/users/forget", None, batch)
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer = common::parse_json(&body);
    assert_eq!(
        (
            answer["forgotten"].as_u64(),
            answer["had_exposures"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert!(server.bid(&request("other")).await.is_some());
}
