//! Bidding behaviour end to end: crafted requests against crafted campaigns, through the real binary.

#[allow(dead_code)]
mod common;

use chrono::Datelike;
use common::{
    Campaign, Server, assert_price, banner_imp, banner_request, bids, native_imp, price_of,
    request, str_of, video_imp, with, with_imp,
};
use serde_json::{Value, json};

/// `precis.toml` with one euro worth two dollars.
const EURO_AT_HALF: &str = "[currencies]\nEUR = 0.5\n";

/// A request with these top-level fields added to a 300x250 banner request.
fn banner_with(extra: Value) -> Value {
    with(banner_request(300, 250), extra)
}

fn geo(geo: Value) -> Value {
    banner_with(json!({ "device": { "geo": geo } }))
}

fn device(device: Value) -> Value {
    banner_with(json!({ "device": device }))
}

fn user(user: Value) -> Value {
    banner_with(json!({ "user": user }))
}

/// A 300x250 CPM campaign with these `[targeting]` lines.
fn targeted(cpm: f64, lines: &[&str]) -> Campaign {
    lines
        .iter()
        .fold(Campaign::cpm(cpm).banner(300, 250), |c, l| c.target(l))
}

/// The bid for imp `impid` in `response`.
fn bid_for<'a>(response: &'a Value, impid: &str) -> &'a Value {
    let matching: Vec<&Value> = bids(response)
        .iter()
        .filter(|b| b["impid"] == impid)
        .collect();
    assert_eq!(matching.len(), 1, "one bid for imp {impid}: {response}");
    matching[0]
}

/// The campaign id of the bid for imp `impid` in `response`.
fn cid_for<'a>(response: &'a Value, impid: &str) -> &'a str {
    str_of(bid_for(response, impid), "cid")
}

/// Asserts that each imp `(impid, cid, price)` is won by campaign `cid` at `price`.
fn assert_winners(response: &Value, expect: &[(&str, &str, f64)]) {
    for &(impid, cid, price) in expect {
        assert_eq!(cid_for(response, impid), cid, "imp {impid}: {response}");
        assert_price(price_of(bid_for(response, impid)), price);
    }
}

/// Asserts which campaign wins each one-imp request: `Some(cid)`, or `None` for no bid.
async fn assert_each_winner(
    server: &Server,
    cases: impl IntoIterator<Item = (Value, Option<&str>)>,
) {
    for (request, want) in cases {
        assert_eq!(
            server.winner(&request).await.as_deref(),
            want,
            "request: {request}"
        );
    }
}

/// Three banner imps: `a` 300x250, `b` 728x90 and `c` 320x50.
fn three_slots() -> Value {
    request(vec![
        banner_imp("a", 300, 250),
        banner_imp("b", 728, 90),
        banner_imp("c", 320, 50),
    ])
}

/// A bidder with `EURO_AT_HALF` and one 3.0 USD CPM campaign, `three`, for 300x250.
fn three_dollars_with_euros() -> Server {
    Server::start_configured(
        EURO_AT_HALF,
        [("three.toml", Campaign::cpm(3.0).banner(300, 250))],
    )
}

#[tokio::test]
async fn highest_ecpm_wins_across_cpm_cpc_and_cps_at_its_exact_price() {
    // eCPMs: cps 0.08 × 300 × 0.03 × 0.01 × 1000 = 7.2; cpc 0.35 × 0.01 × 1000 = 3.5; cpm 3.0.
    // Each size is offered by a different set of campaigns, so each imp shows another model winning.
    let cps = Campaign::priced(
        "model = \"cps\"\ncommission = 0.08\norder_value = 300.0\ncvr = 0.03\nctr = 0.01\nmax_cpm = 10.0",
    )
    .banner(300, 250);
    let cpc = Campaign::priced("model = \"cpc\"\ncpc = 0.35\nctr = 0.01\nmax_cpm = 10.0")
        .banner(300, 250)
        .banner(728, 90);
    let cpm = Campaign::cpm(3.0)
        .banner(300, 250)
        .banner(728, 90)
        .banner(320, 50);
    let server = Server::start([
        ("sales.toml", cps),
        ("clicks.toml", cpc),
        ("views.toml", cpm),
    ]);

    let response = server.bid(&three_slots()).await.expect("a bid");
    assert_eq!(bids(&response).len(), 3, "{response}");
    assert_winners(
        &response,
        &[
            ("a", "sales", 7.2),
            ("b", "clicks", 3.5),
            ("c", "views", 3.0),
        ],
    );
}

#[tokio::test]
async fn max_cpm_caps_the_bid_and_the_ranking() {
    // Uncapped the cpc campaign is worth 20 and the cpm one 9; capped they are 4.5 and 4.0,
    // and a plain 4.2 campaign sits between them for the 728x90 slot.
    let clicks = Campaign::priced("model = \"cpc\"\ncpc = 2.0\nctr = 0.01\nmax_cpm = 4.5")
        .banner(300, 250)
        .banner(728, 90);
    let views = Campaign::priced("model = \"cpm\"\ncpm = 9.0\nmax_cpm = 4.0").banner(320, 50);
    let steady = Campaign::cpm(5.0).banner(300, 250);
    let middle = Campaign::cpm(4.2).banner(728, 90).banner(320, 50);
    let server = Server::start([
        ("clicks.toml", clicks),
        ("views.toml", views),
        ("steady.toml", steady),
        ("middle.toml", middle),
    ]);

    let response = server.bid(&three_slots()).await.expect("a bid");
    assert_winners(
        &response,
        &[
            ("a", "steady", 5.0),
            ("b", "clicks", 4.5),
            ("c", "middle", 4.2),
        ],
    );
}

#[tokio::test]
async fn equal_ecpm_goes_to_the_higher_max_cpm_then_the_lower_campaign_id() {
    // 300x250: all worth 4.0, but `roomy` may go to 8.0. 728x90: same eCPM and same max_cpm;
    // `kilo` (in z.toml) beats `zulu` (in a.toml): the id decides, not the file order.
    let roomy =
        Campaign::priced("model = \"cpc\"\ncpc = 0.4\nctr = 0.01\nmax_cpm = 8.0").banner(300, 250);
    let tight = Campaign::cpm(4.0)
        .top("id = \"aaa-tight\"")
        .banner(300, 250);
    let zulu = Campaign::cpm(4.0).top("id = \"zulu\"").banner(728, 90);
    let kilo = Campaign::cpm(4.0).top("id = \"kilo\"").banner(728, 90);
    let server = Server::start([
        ("roomy.toml", roomy),
        ("tight.toml", tight),
        ("a.toml", zulu),
        ("z.toml", kilo),
    ]);

    let response = server
        .bid(&request(vec![
            banner_imp("1", 300, 250),
            banner_imp("2", 728, 90),
        ]))
        .await
        .expect("a bid");
    assert_winners(&response, &[("1", "roomy", 4.0)]);
    assert_eq!(cid_for(&response, "2"), "kilo");
}

#[tokio::test]
async fn country_targeting_accepts_alpha2_and_alpha3_on_both_sides() {
    let server = Server::start([
        ("us.toml", targeted(5.0, &[r#"countries = ["US"]"#])),
        ("de.toml", targeted(4.0, &[r#"countries = ["DEU"]"#])),
    ]);
    let cases = [
        (geo(json!({ "country": "USA" })), Some("us")),
        (geo(json!({ "country": "us" })), Some("us")),
        (geo(json!({ "country": "DE" })), Some("de")),
        (geo(json!({ "country": "DEU" })), Some("de")),
        (geo(json!({ "country": "FRA" })), None),
        (geo(json!({ "country": "" })), None),
        (banner_request(300, 250), None),
        // Device geo is missing: the user's home country is used.
        (
            banner_with(json!({ "user": { "geo": { "country": "DEU" } } })),
            Some("de"),
        ),
        // Device geo wins over user geo.
        (
            banner_with(json!({
                "device": { "geo": { "country": "USA" } },
                "user": { "geo": { "country": "DEU" } }
            })),
            Some("us"),
        ),
    ];
    assert_each_winner(&server, cases).await;
}

#[tokio::test]
async fn region_and_city_targeting() {
    let server = Server::start([
        (
            "california.toml",
            targeted(5.0, &[r#"regions = ["US-CA"]"#]),
        ),
        (
            "shanghai.toml",
            targeted(4.0, &[r#"cities = ["Shanghai"]"#]),
        ),
    ]);
    let cases = [
        (
            geo(json!({ "country": "USA", "region": "CA" })),
            Some("california"),
        ),
        (geo(json!({ "region": "US-CA" })), Some("california")),
        (
            geo(json!({ "country": "USA", "region": "ca" })),
            Some("california"),
        ),
        // CA in another country is not California; a bare CA with no country cannot be placed.
        (geo(json!({ "country": "CAN", "region": "CA" })), None),
        (geo(json!({ "region": "CA" })), None),
        (geo(json!({ "country": "USA", "region": "TX" })), None),
        (
            geo(json!({ "country": "CHN", "city": " shanghai " })),
            Some("shanghai"),
        ),
        (geo(json!({ "country": "CHN", "city": "Beijing" })), None),
    ];
    assert_each_winner(&server, cases).await;
}

#[tokio::test]
async fn near_targeting_bids_within_the_radius_only() {
    let near = targeted(
        5.0,
        &["near = [{ lat = 31.2304, lon = 121.4737, km = 10.0 }]"],
    );
    let server = Server::start([("stores.toml", near)]);
    let cases = [
        // About 3 km from the centre.
        (geo(json!({ "lat": 31.25, "lon": 121.50 })), Some("stores")),
        // Beijing, over 1000 km away.
        (geo(json!({ "lat": 39.9042, "lon": 116.4074 })), None),
        // 0/0 is what exchanges send when they do not know: not a place.
        (geo(json!({ "lat": 0.0, "lon": 0.0 })), None),
        (
            banner_with(json!({ "user": { "geo": { "lat": 31.23, "lon": 121.47 } } })),
            Some("stores"),
        ),
    ];
    assert_each_winner(&server, cases).await;
}

#[tokio::test]
async fn device_type_and_os_targeting_understand_exchange_spellings() {
    let server = Server::start([
        (
            "phones.toml",
            targeted(5.0, &[r#"device_types = ["phone"]"#]),
        ),
        ("ios.toml", targeted(4.0, &[r#"os = ["ios"]"#])),
        ("android.toml", targeted(3.0, &[r#"os = ["Android"]"#])),
    ]);
    let cases = [
        (device(json!({ "devicetype": 4 })), Some("phones")),
        // 1 is "mobile/tablet": a phone campaign takes it.
        (device(json!({ "devicetype": 1 })), Some("phones")),
        (device(json!({ "devicetype": 2 })), None),
        (
            device(json!({ "devicetype": 2, "os": "iPhone OS" })),
            Some("ios"),
        ),
        (device(json!({ "os": "iOS" })), Some("ios")),
        (device(json!({ "os": "android" })), Some("android")),
        (device(json!({ "os": "Windows" })), None),
    ];
    assert_each_winner(&server, cases).await;
}

#[tokio::test]
async fn a_parent_tag_matches_descendant_segments_and_keywords() {
    let server = Server::start([("runners.toml", targeted(5.0, &[r#"tags = ["sports"]"#]))]);
    let segment = |id: &str| json!({ "data": [{ "id": "dmp", "segment": [{ "id": id }] }] });
    let cases = [
        (user(segment("sports/outdoor/running")), Some("runners")),
        (user(segment("Sports")), Some("runners")),
        (
            user(json!({ "keywords": "music, Sports/Outdoor" })),
            Some("runners"),
        ),
        (
            user(json!({ "kwarray": ["sports/indoor"] })),
            Some("runners"),
        ),
        (user(segment("sportswear")), None),
        (user(segment("travel/sports")), None),
        (user(json!({ "keywords": "travel" })), None),
        (banner_request(300, 250), None),
    ];
    assert_each_winner(&server, cases).await;
}

#[tokio::test]
async fn a_parent_category_matches_its_subcategories() {
    let server = Server::start([("travel.toml", targeted(5.0, &[r#"categories = ["IAB17"]"#]))]);
    let cases = [
        (
            banner_with(json!({ "site": { "cat": ["IAB17-3"] } })),
            Some("travel"),
        ),
        (
            banner_with(json!({ "app": { "cat": ["iab17"] } })),
            Some("travel"),
        ),
        (
            banner_with(json!({ "site": { "content": { "cat": ["IAB17-44"] } } })),
            Some("travel"),
        ),
        (
            banner_with(json!({ "site": { "cat": ["IAB1", "IAB170"] } })),
            None,
        ),
        (banner_request(300, 250), None),
    ];
    assert_each_winner(&server, cases).await;
}

#[tokio::test]
async fn an_exclude_vetoes_but_an_unknown_fact_does_not() {
    let campaign = targeted(5.0, &[r#"countries = ["USA"]"#]).exclude(r#"os = ["android"]"#);
    let server = Server::start([("no-android.toml", campaign)]);
    let us = |os: Option<&str>| {
        let mut device = json!({ "geo": { "country": "US" } });
        if let Some(os) = os {
            device["os"] = json!(os);
        }
        banner_with(json!({ "device": device }))
    };
    assert_eq!(
        server.winner(&us(Some("iOS"))).await.as_deref(),
        Some("no-android")
    );
    assert_eq!(server.winner(&us(Some("Android"))).await, None);
    assert_eq!(
        server.winner(&us(None)).await.as_deref(),
        Some("no-android")
    );
}

#[tokio::test]
async fn age_from_year_of_birth_and_gender() {
    let year = chrono::Utc::now().year();
    let server = Server::start([
        (
            "women.toml",
            targeted(5.0, &["age = [25, 35]", r#"gender = ["f"]"#]),
        ),
        ("men.toml", targeted(4.0, &[r#"gender = ["male"]"#])),
    ]);
    let cases = [
        (
            user(json!({ "yob": year - 30, "gender": "F" })),
            Some("women"),
        ),
        (
            user(json!({ "yob": (year - 30).to_string(), "gender": "F" })),
            Some("women"),
        ),
        (user(json!({ "yob": year - 50, "gender": "F" })), None),
        (user(json!({ "gender": "F" })), None),
        (
            user(json!({ "yob": year - 30, "gender": "M" })),
            Some("men"),
        ),
        (user(json!({ "yob": year - 30, "gender": "O" })), None),
    ];
    assert_each_winner(&server, cases).await;
}

#[tokio::test]
async fn a_bid_below_the_floor_is_not_made() {
    let server = Server::start([("two.toml", Campaign::cpm(2.0).banner(300, 250))]);
    let floored = |floor: Value| with_imp(banner_request(300, 250), json!({ "bidfloor": floor }));
    assert!(server.bid(&floored(json!(1.5))).await.is_some());
    assert!(
        server.bid(&floored(json!(2.0))).await.is_some(),
        "a bid at the floor"
    );
    assert!(
        server.bid(&floored(json!("1.99"))).await.is_some(),
        "floor as a string"
    );
    assert_eq!(server.bid(&floored(json!(2.01))).await, None);
    assert_eq!(server.bid(&floored(json!("2.5"))).await, None);
}

#[tokio::test]
async fn floors_in_other_currencies_are_converted() {
    let server = three_dollars_with_euros();
    let floored = |floor: f64, currency: &str| {
        with_imp(
            banner_request(300, 250),
            json!({ "bidfloor": floor, "bidfloorcur": currency }),
        )
    };
    // 1.4 EUR is 2.8 USD: under the 3.0 bid. 1.6 EUR is 3.2 USD: over it, though 1.6 < 3.0.
    let response = server
        .bid(&floored(1.4, "EUR"))
        .await
        .expect("a bid over 2.8 USD");
    assert_eq!(response["cur"], "USD");
    assert_price(price_of(&bids(&response)[0]), 3.0);
    assert_eq!(server.bid(&floored(1.6, "EUR")).await, None);
    assert_eq!(server.bid(&floored(1.6, "eur")).await, None);
    // A floor in a currency precis has no rate for cannot be honoured: no bid.
    assert!(server.bid(&floored(0.01, "USD")).await.is_some());
    assert_eq!(server.bid(&floored(0.01, "JPY")).await, None);
    assert_eq!(server.bid(&floored(0.01, "Dollars")).await, None);
}

#[tokio::test]
async fn the_response_is_in_the_first_currency_the_exchange_accepts_that_precis_knows() {
    let server = three_dollars_with_euros();
    let in_currencies = |cur: Value| banner_with(json!({ "cur": cur }));

    for cur in [json!(["EUR"]), json!(["JPY", "EUR", "USD"])] {
        let response = server
            .bid(&in_currencies(cur.clone()))
            .await
            .expect("a bid");
        assert_eq!(response["cur"], "EUR", "cur {cur}: {response}");
        assert_price(price_of(&bids(&response)[0]), 1.5);
    }
    let response = server
        .bid(&in_currencies(json!(["USD", "EUR"])))
        .await
        .expect("a bid");
    assert_eq!(response["cur"], "USD");
    assert_price(price_of(&bids(&response)[0]), 3.0);
    // A floor of 1.6 EUR against a 1.5 EUR bid: no bid.
    let floored = with_imp(
        in_currencies(json!(["EUR"])),
        json!({ "bidfloor": 1.6, "bidfloorcur": "EUR" }),
    );
    assert_eq!(server.bid(&floored).await, None);
    assert_eq!(server.bid(&in_currencies(json!(["JPY"]))).await, None);
}

#[tokio::test]
async fn campaigns_priced_in_euros_are_ranked_and_bid_in_dollars() {
    let euro = Campaign::priced("model = \"cpm\"\ncpm = 2.0\ncurrency = \"EUR\"").banner(300, 250);
    let dollar = Campaign::cpm(3.0).banner(300, 250);
    let server =
        Server::start_configured(EURO_AT_HALF, [("euro.toml", euro), ("dollar.toml", dollar)]);
    // 2 EUR is 4 USD: more than the 3 USD campaign.
    let (cid, price) = server
        .winner_and_price(&banner_request(300, 250))
        .await
        .expect("a bid");
    assert_eq!(cid, "euro");
    assert_price(price, 4.0);
}

#[tokio::test]
async fn blocked_advertisers_and_categories_do_not_bid() {
    let shoes = Campaign::cpm(5.0)
        .adomain(&["shop.shoes.example"])
        .top(r#"cat = ["IAB22-1"]"#)
        .banner(300, 250);
    let fallback = Campaign::cpm(1.0)
        .adomain(&["other.example"])
        .banner(300, 250);
    let server = Server::start([("shoes.toml", shoes), ("fallback.toml", fallback)]);
    let cases = [
        (json!({}), "shoes"),
        (json!({ "badv": ["shop.shoes.example"] }), "fallback"),
        (json!({ "badv": ["SHOES.example"] }), "fallback"),
        (json!({ "badv": ["other-shoes.example"] }), "shoes"),
        (json!({ "bcat": ["IAB22"] }), "fallback"),
        (json!({ "bcat": ["iab22-1"] }), "fallback"),
        (json!({ "bcat": ["IAB2", "IAB22-2"] }), "shoes"),
    ];
    let requests = cases.map(|(extra, want)| (banner_with(extra), Some(want)));
    assert_each_winner(&server, requests).await;
    let everything = banner_with(json!({ "badv": ["shoes.example", "other.example"] }));
    assert_eq!(server.bid(&everything).await, None);
}

#[tokio::test]
async fn private_auctions_get_no_bid() {
    let server = Server::start([("open.toml", Campaign::cpm(5.0).banner(300, 250))]);
    let pmp = |private: u32| {
        with_imp(
            banner_request(300, 250),
            json!({ "pmp": { "private_auction": private, "deals": [{ "id": "deal-1", "bidfloor": 1.0 }] } }),
        )
    };
    assert_eq!(server.bid(&pmp(1)).await, None);
    assert!(server.bid(&pmp(0)).await.is_some());
}

#[tokio::test]
async fn a_paused_campaign_never_bids() {
    let paused = Campaign::cpm(9.0)
        .top(r#"status = "paused""#)
        .banner(300, 250);
    let active = Campaign::cpm(1.0)
        .top(r#"status = "active""#)
        .banner(728, 90);
    let server = Server::start([("paused.toml", paused), ("active.toml", active)]);
    assert_eq!(server.bid(&banner_request(300, 250)).await, None);
    assert_eq!(
        server.winner(&banner_request(728, 90)).await.as_deref(),
        Some("active")
    );
    let status = server.status().await;
    assert_eq!(status["campaigns_loaded"], 2, "{status}");
    assert_eq!(status["live"], json!(["active"]), "{status}");
}

#[tokio::test]
async fn only_campaigns_in_flight_bid() {
    let ended = Campaign::cpm(9.0)
        .top("start = 2020-01-01")
        .top("end = 2020-12-31")
        .banner(300, 250);
    let future = Campaign::cpm(8.0)
        .top("start = 2999-01-01T00:00:00Z")
        .banner(300, 250);
    let running = Campaign::cpm(1.0)
        .top("start = 2020-01-01T00:00:00+08:00")
        .top("end = 2999-12-31")
        .top(r#"timezone = "Asia/Shanghai""#)
        .banner(300, 250);
    let server = Server::start([
        ("ended.toml", ended),
        ("future.toml", future),
        ("running.toml", running),
    ]);
    assert_eq!(
        server.winner(&banner_request(300, 250)).await.as_deref(),
        Some("running")
    );
}

#[tokio::test]
async fn a_banner_fits_only_a_slot_of_its_size() {
    let server = Server::start([("rect.toml", Campaign::cpm(5.0).banner(300, 250))]);
    let formats = request(vec![json!({
        "id": "1",
        "banner": { "format": [{ "w": 728, "h": 90 }, { "w": 300, "h": 250 }] }
    })]);
    let response = server
        .bid(&formats)
        .await
        .expect("a bid through banner.format");
    let bid = &bids(&response)[0];
    assert_eq!(
        (bid["w"].as_u64(), bid["h"].as_u64()),
        (Some(300), Some(250))
    );
    assert_eq!(str_of(bid, "crid"), "b300x250");

    let response = server.bid(&banner_request(300, 250)).await.expect("a bid");
    assert_eq!(bids(&response)[0]["w"], 300);
    for slot in [
        banner_request(250, 300),
        banner_request(320, 50),
        request(vec![json!({ "id": "1", "banner": {} })]),
        request(vec![video_imp("1")]),
        request(vec![native_imp("1")]),
    ] {
        assert_eq!(server.bid(&slot).await, None, "request: {slot}");
    }
}

#[tokio::test]
async fn video_and_native_creatives_fit_only_their_own_slots() {
    let server = Server::start([
        ("video.toml", Campaign::cpm(5.0).video()),
        ("native.toml", Campaign::cpm(4.0).native()),
    ]);
    let response = server
        .bid(&request(vec![video_imp("v")]))
        .await
        .expect("a video bid");
    let bid = &bids(&response)[0];
    assert_eq!(
        (str_of(bid, "cid"), str_of(bid, "crid")),
        ("video", "video")
    );
    assert!(str_of(bid, "adm").starts_with("<VAST"), "{bid}");
    // A video creative without a size takes the player's.
    assert_eq!(
        (bid["w"].as_u64(), bid["h"].as_u64()),
        (Some(640), Some(360))
    );

    let response = server
        .bid(&request(vec![native_imp("n")]))
        .await
        .expect("a native bid");
    let bid = &bids(&response)[0];
    assert_eq!(
        (str_of(bid, "cid"), str_of(bid, "crid")),
        ("native", "native")
    );
    assert!(bid.get("w").is_none() && bid.get("h").is_none(), "{bid}");

    assert_eq!(server.bid(&banner_request(300, 250)).await, None);
}

#[tokio::test]
async fn a_video_creative_bids_only_where_the_player_can_play_it() {
    // The creative is a 30 s video/mp4 in VAST 3.0 (protocol 3).
    let server = Server::start([("video.toml", Campaign::cpm(5.0).video())]);
    let player = |video: Value| request(vec![json!({ "id": "v", "video": video })]);
    let plays = [
        json!({}),
        json!({ "mimes": ["video/MP4", "video/webm"] }),
        json!({ "protocols": [3, 7], "minduration": 15, "maxduration": 30 }),
        json!({ "protocol": 3 }),
        json!({ "maxduration": 0 }),
    ];
    for video in plays {
        assert!(
            server.bid(&player(video.clone())).await.is_some(),
            "{video}"
        );
    }
    let cannot = [
        json!({ "mimes": ["video/webm"] }),
        json!({ "maxduration": 15 }),
        json!({ "minduration": 31 }),
        json!({ "protocols": [7, 8] }),
        json!({ "protocol": 2 }),
    ];
    for video in cannot {
        assert_eq!(server.bid(&player(video.clone())).await, None, "{video}");
    }
}

#[tokio::test]
async fn each_matching_imp_of_a_request_gets_exactly_one_bid() {
    let server = Server::start([
        ("rect.toml", Campaign::cpm(5.0).banner(300, 250)),
        (
            "rect-cheap.toml",
            Campaign::cpm(2.0).banner(300, 250).banner(728, 90),
        ),
        ("video.toml", Campaign::cpm(3.0).video()),
    ]);
    let response = server
        .bid(&request(vec![
            banner_imp("1", 300, 250),
            banner_imp("2", 320, 50),
            video_imp("3"),
            banner_imp("4", 728, 90),
            with(banner_imp("5", 300, 250), json!({ "bidfloor": 6.0 })),
        ]))
        .await
        .expect("a bid");
    assert_eq!(response["id"], "req-1");
    let mut impids: Vec<&str> = bids(&response).iter().map(|b| str_of(b, "impid")).collect();
    impids.sort_unstable();
    assert_eq!(impids, ["1", "3", "4"], "{response}");
    assert_eq!(cid_for(&response, "1"), "rect");
    assert_eq!(cid_for(&response, "3"), "video");
    assert_eq!(cid_for(&response, "4"), "rect-cheap");
    let mut ids: Vec<&str> = bids(&response).iter().map(|b| str_of(b, "id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "bid ids are unique: {response}");
}

#[tokio::test]
async fn bids_carry_notice_urls_on_the_public_url_and_expand_the_click_macro() {
    let server = Server::setup()
        .campaign("rect.toml", Campaign::cpm(5.0).banner(300, 250))
        .arg("--public-url")
        .arg("https://bid.example.com/")
        .start();
    let response = server.bid(&banner_request(300, 250)).await.expect("a bid");
    let bid = &bids(&response)[0];
    // Each URL carries its own signed token (base64url), for its route alone.
    let token = |url: &str, path: &str| {
        let prefix = format!("https://bid.example.com/{path}?t=");
        let rest = url
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{path}: {url}"));
        let token: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-_".contains(*c))
            .collect();
        assert!(token.len() > 40, "{path}: {url}");
        token
    };
    let nurl = str_of(bid, "nurl");
    let burl = str_of(bid, "burl");
    let win = token(nurl, "win");
    assert!(nurl.ends_with("&price=${AUCTION_PRICE}"), "{nurl}");
    assert!(burl.ends_with("&price=${AUCTION_PRICE}"), "{burl}");
    let bill = token(burl, "bill");
    let adm = str_of(bid, "adm");
    assert!(!adm.contains("${CLICK_URL}"), "{adm}");
    let click = adm
        .split('"')
        .find(|part| part.contains("/click?"))
        .unwrap_or_else(|| panic!("{adm}"));
    let click = token(click, "click");
    // The markup, which the page and the user see, holds neither the win nor the billing token.
    assert!(!adm.contains(&win) && !adm.contains(&bill), "{adm}");
    assert!(win != bill && win != click && bill != click);
    assert_eq!(bid["adomain"], json!(["advertiser.example"]));
}
