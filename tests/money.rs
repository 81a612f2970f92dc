//! Money end to end, against the real binary: what a bid is charged whatever the exchange sends,
//! which URL may say so, and budgets that hold across a crash.
//!
//! - Each URL of a bid carries its own token: the page's pixel and click tokens are refused by the
//!   exchange's routes (`/win`, `/bill`), so a page cannot zero a bid's spend.
//! - A bid is charged once, from its first win or billing notice: an exchange that sends only
//!   `burl` is charged and its budget holds; a price that cannot be read (missing, macro left,
//!   encrypted under keys precis does not hold, garbage, above the bid) is charged at the bid price;
//!   an encrypted price (the DoubleClick scheme) is decrypted with the exchange's keys.
//! - Orders: a value above the campaign's largest is refused; a click's order cap holds across a
//!   restart.
//! - `kill -9` with reservations held: after the restart spend stays within the budget and one bid;
//!   a damaged `holds.json` never stops the bidder.
//!
//! Figures are worked out from what each test sends; time moves only on the simulated clock.

#[allow(dead_code)]
mod common;

use chrono::{DateTime, Duration, Utc};
use common::{Campaign, Server, Setup, advance, at, bids, local, rfc3339, str_of};
use hyper::StatusCode;
use serde_json::json;

/// The macro an exchange replaces with the clearing price.
const AUCTION_PRICE: &str = "${AUCTION_PRICE}";

/// Signs event tokens, so that notices of bids made before a restart verify after it.
const SECRET: &str = "money-test-secret-0123456789abcdef";

/// Keys `other encryption key` / `other integrity key` in base64, and 1.234567 CPM encrypted under
/// them with the iv `0123456789abcdef`: a vector computed apart (Python's hmac and base64) with
/// the scheme of Google's "Decrypt price confirmations".
const E_KEY: &str = "b3RoZXIgZW5jcnlwdGlvbiBrZXk=";
const I_KEY: &str = "b3RoZXIgaW50ZWdyaXR5IGtleQ==";
const SEALED_1_234567: &str = "MDEyMzQ1Njc4OWFiY2RlZpQKMWPqPbTcHyAfIQ";

/// Google's published example keys and price (100 micros: 0.0001 CPM).
const GOOGLE_E_KEY: &str = "skU7Ax_NL5pPAFyKdkfZjZz2-VhIN8bjj1rVFOaJ_5o=";
const GOOGLE_I_KEY: &str = "arO23ykdNqUQ5LEoQ0FVmPkBd7xB5CO89PDZlSjpFxo=";
const GOOGLE_SEALED_100_MICROS: &str = "YWJjMTIzZGVmNDU2Z2hpN7fhCuPemCce_6msaw";

/// A 2.00 CPM campaign `shop` whose banner has both a click link and an impression pixel.
fn shop() -> Campaign {
    Campaign::cpm(2.0).creative(
        "id = \"mrec\"\nformat = \"banner\"\nw = 300\nh = 250\n\
         adm = '<a href=\"${CLICK_URL}\"><img src=\"https://cdn.example/a.png\"></a><img src=\"${IMP_URL}\">'\n\
         landing = \"https://shop.example/\"",
    )
}

/// A bidder on a simulated clock standing at `start`, serving `shop` with a `total` budget spent
/// as fast as traffic allows.
fn shop_spending(start: DateTime<Utc>, total: f64) -> Setup {
    let budget = format!("[budget]\ntotal = {total:?}\npacing = \"asap\"");
    simulated(start).campaign("shop.toml", format!("{}\n{budget}\n", shop().toml()))
}

/// A bidder with a fixed secret on a simulated clock standing at `start`.
fn simulated(start: DateTime<Utc>) -> Setup {
    Server::setup()
        .env("PRECIS_SECRET", SECRET)
        .arg("--simulate-from")
        .arg(&rfc3339(start))
}

/// One bid's URLs as the exchange and the page get them (made local, macros still in).
#[derive(Debug, Clone)]
struct Bid {
    price: f64,
    nurl: String,
    burl: String,
    /// The markup's click link and pixel.
    click: String,
    pixel: String,
    adm: String,
}

impl Bid {
    /// The win notice with `price` for the macro.
    fn win(&self, price: &str) -> String {
        self.nurl.replace(AUCTION_PRICE, price)
    }

    /// The billing notice with `price` for the macro.
    fn bill(&self, price: &str) -> String {
        self.burl.replace(AUCTION_PRICE, price)
    }
}

/// The `t=` token of a local event URL.
fn token(url: &str) -> &str {
    let (_, query) = url.split_once("t=").expect("a token");
    query.split('&').next().unwrap_or_default()
}

/// Sends a banner request: the only bid, or `None` for no bid.
async fn offer(server: &Server, n: usize) -> Option<Bid> {
    let request =
        json!({"id": format!("r{n}"), "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}]});
    let response = server.bid(&request).await?;
    let bids = bids(&response);
    assert_eq!(bids.len(), 1, "{response}");
    let bid = &bids[0];
    let adm = str_of(bid, "adm").to_owned();
    let links: Vec<&str> = adm
        .split('"')
        .filter(|part| part.starts_with("http://127.0.0.1:"))
        .collect();
    let find = |route: &str| {
        let link = links.iter().find(|l| l.contains(route));
        local(link.unwrap_or_else(|| panic!("no {route} in {adm}")))
    };
    Some(Bid {
        price: bid["price"].as_f64().expect("a price"),
        nurl: local(str_of(bid, "nurl")),
        burl: local(str_of(bid, "burl")),
        click: find("/click?"),
        pixel: find("/imp?"),
        adm: adm.clone(),
    })
}

/// Sends `path` and checks it is accepted (2xx).
async fn accepted(server: &Server, path: &str) {
    let (status, _, body) = server.get(path).await;
    assert!(
        status.is_success(),
        "{path} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
}

/// `shop`'s spend, USD, from `/status`.
async fn spend(server: &Server) -> f64 {
    let status = server.status().await;
    let campaign = status["campaigns"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "shop"))
        .unwrap_or_else(|| panic!("shop is not live: {status}"));
    campaign["spend_usd"].as_f64().expect("a spend")
}

fn assert_usd(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: {actual}, expected {expected}"
    );
}

/// `precis_price_fallbacks_total{reason="REASON"}`.
async fn fallbacks(server: &Server, reason: &str) -> f64 {
    server
        .metric(&format!(
            "precis_price_fallbacks_total{{reason=\"{reason}\"}}"
        ))
        .await
}

#[tokio::test]
async fn the_pages_urls_are_refused_as_the_exchanges_notices_and_never_set_spend() {
    let server = Server::setup().campaign("shop.toml", shop().toml()).start();
    let bid = offer(&server, 0).await.expect("a bid");
    let (win, bill) = (token(&bid.nurl), token(&bid.burl));
    let (click, pixel) = (token(&bid.click), token(&bid.pixel));
    // The markup, which the page shows, holds neither of the exchange's tokens.
    assert!(
        !bid.adm.contains(win) && !bid.adm.contains(bill),
        "{}",
        bid.adm
    );
    // Each token on another route is forbidden, the page's on the exchange's above all
    // (`/win?price=0` with the click token once made the real win a repeat: spend 0).
    let misused = [
        format!("/win?t={click}&price=0"),
        format!("/win?t={pixel}&price=0"),
        format!("/bill?t={click}&price=0"),
        format!("/bill?t={pixel}&price=0"),
        format!("/imp?t={win}"),
        format!("/click?t={bill}"),
        format!("/conv?pclid={click}&value=1"),
    ];
    for path in &misused {
        let (status, _, body) = server.get(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body:?}");
    }
    // The pixel counts the impression and charges nothing; the real win then charges 1.5 CPM.
    accepted(&server, &format!("{}&price=0", bid.pixel)).await;
    assert_eq!(spend(&server).await, 0.0);
    accepted(&server, &bid.win("1.5")).await;
    assert_usd(spend(&server).await, 0.0015, "spent");
    assert_eq!(
        server
            .metric("precis_event_rejections_total{reason=\"bad_token\"}")
            .await,
        misused.len() as f64
    );
}

#[tokio::test]
async fn an_exchange_that_sends_only_burl_is_charged_and_the_budget_holds() {
    // 0.01 in total; bids of 2.00 CPM (0.002) billed at 1.60 (0.0016): a bid is made while
    // 0.0016 × billed + 0.002 fits, so six bids, 0.0096 spent.
    let start = at("2026-11-23T10:00:00Z");
    let server = shop_spending(start, 0.01).start();
    let mut made = 0;
    while let Some(bid) = offer(&server, made).await {
        made += 1;
        assert!(made <= 20, "still bidding after {made} bids billed");
        let (status, headers, _) = server.get(&bid.bill("1.6")).await;
        assert_eq!(status, StatusCode::OK, "billing notice");
        assert_eq!(headers["content-type"], "image/gif");
    }
    assert_eq!(made, 6, "bids before the budget said no");
    assert_usd(spend(&server).await, 0.0096, "spent");
    // The billing notice stands for the win too: six wins, six impressions.
    let metrics = server.metrics().await;
    assert_eq!(metrics["precis_events_total{kind=\"win\"}"], 6.0);
    assert_eq!(metrics["precis_events_total{kind=\"imp\"}"], 6.0);
}

#[tokio::test]
async fn a_win_and_its_billing_notice_charge_once_in_either_order() {
    let mut server = Server::setup().campaign("shop.toml", shop().toml()).start();
    let first = offer(&server, 0).await.expect("a bid");
    accepted(&server, &first.win("1.5")).await;
    accepted(&server, &first.bill("1.5")).await;
    let second = offer(&server, 1).await.expect("a bid");
    accepted(&server, &second.bill("1.2")).await;
    accepted(&server, &second.win("1.2")).await;
    assert_usd(spend(&server).await, 0.0027, "spent");
    server.stop().await;
    let rows = server.report("campaign");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(
        (row["wins"].as_u64(), row["impressions"].as_u64()),
        (Some(2), Some(2)),
        "{row}"
    );
    assert_usd(
        row["media_cost"].as_f64().expect("media_cost"),
        0.0027,
        "reported",
    );
    // Both notices of each bid are in the log: a win line and an impression line each.
    let logged = server.logged_events();
    let lines = |kind: &str| logged.iter().filter(|e| e["event"] == kind).count();
    assert_eq!((lines("win"), lines("imp")), (2, 2));
}

#[tokio::test]
async fn encrypted_prices_are_decrypted_with_each_exchanges_keys_and_charged() {
    // One exchange's keys in the file, another's in the environment.
    let config = format!(
        "[[exchange]]\nname = \"other\"\ne_key = \"{E_KEY}\"\ni_key = \"{I_KEY}\"\n\n\
         [[exchange]]\nname = \"ad-x\"\n"
    );
    let server = Server::setup()
        .config(&config)
        .env("PRECIS_EXCHANGE_AD_X_E_KEY", GOOGLE_E_KEY)
        .env("PRECIS_EXCHANGE_AD_X_I_KEY", GOOGLE_I_KEY)
        .campaign("shop.toml", shop().toml())
        .start();
    let a = offer(&server, 0).await.expect("a bid");
    accepted(&server, &a.win(SEALED_1_234567)).await;
    assert_usd(spend(&server).await, 0.001234567, "1.234567 CPM");
    let b = offer(&server, 1).await.expect("a bid");
    accepted(&server, &b.bill(GOOGLE_SEALED_100_MICROS)).await;
    assert_usd(
        spend(&server).await,
        0.001234567 + 0.0000001,
        "and 100 micros",
    );
    // The same price altered on the way: no key opens it, so the bid price is charged.
    let mut altered = SEALED_1_234567.as_bytes().to_vec();
    altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    let c = offer(&server, 2).await.expect("a bid");
    accepted(&server, &c.win(&altered)).await;
    assert_usd(
        spend(&server).await,
        0.001234567 + 0.0000001 + c.price / 1000.0,
        "and the bid",
    );
    let metrics = server.metrics().await;
    assert_eq!(
        metrics["precis_prices_decrypted_total{exchange=\"other\"}"],
        1.0
    );
    assert_eq!(
        metrics["precis_prices_decrypted_total{exchange=\"ad-x\"}"],
        1.0
    );
    assert_eq!(
        metrics["precis_price_fallbacks_total{reason=\"undecryptable\"}"],
        1.0
    );
}

#[tokio::test]
async fn prices_that_cannot_be_read_are_charged_at_the_bid_price_and_the_budget_holds() {
    // 0.01 in total, bids of 2.00 CPM (0.002): each notice below is charged the bid, so five bids
    // fill the budget and no sixth is made. (Charged at 0, bidding would never stop.)
    let start = at("2026-11-23T10:00:00Z");
    let server = shop_spending(start, 0.01).start();
    let mut expected = 0.0;
    let cases = [
        // The price parameter left out, the macro left as it was, a price encrypted under keys
        // precis is not given, a number written otherwise, and one above the bid.
        ("missing", "win"),
        ("unexpanded", "bill"),
        ("undecryptable", "win"),
        ("malformed", "bill"),
        ("above_bid", "win"),
    ];
    for (n, (reason, route)) in cases.into_iter().enumerate() {
        let bid = offer(&server, n).await.expect("a bid within the budget");
        let url = match reason {
            "missing" => bid.nurl.replace("&price=${AUCTION_PRICE}", ""),
            "unexpanded" => bid.burl.clone(),
            "undecryptable" => bid.win(SEALED_1_234567),
            "malformed" => bid.bill("1,50"),
            _ => bid.win("1000"),
        };
        assert!(url.contains(&format!("/{route}?")), "{url}");
        accepted(&server, &url).await;
        expected += bid.price / 1000.0;
        assert_usd(spend(&server).await, expected, reason);
        assert_eq!(fallbacks(&server, reason).await, 1.0, "{reason}");
    }
    assert_usd(expected, 0.01, "five bids at 2.00 CPM");
    assert!(offer(&server, 5).await.is_none(), "a bid past the budget");
}

/// A CPS campaign (orders of about 50: at most 5,000 by default) and a CPC one capped at 20 in its
/// file.
fn order_campaigns() -> Setup {
    let cps = Campaign::priced(
        "model = \"cps\"\ncommission = 0.1\norder_value = 50.0\ncvr = 0.05\nctr = 0.01\nmax_cpm = 9.0",
    )
    .banner_to(300, 250, "https://cps.example/");
    let cpc = Campaign::priced(
        "model = \"cpc\"\ncpc = 0.5\nctr = 0.01\nmax_cpm = 9.0\nmax_order_value = 20",
    )
    .banner_to(728, 90, "https://cpc.example/");
    Server::setup()
        .env("PRECIS_SECRET", SECRET)
        .config("[events]\nmax_orders_per_click = 2\n")
        .campaign("cps.toml", cps.toml())
        .campaign("cpc.toml", cpc.toml())
}

/// Bids for a `w`×`h` banner and follows its click: the pclid.
async fn pclid(server: &Server, w: u32, h: u32) -> String {
    let request = json!({"id": "r", "imp": [{"id": "1", "banner": {"w": w, "h": h}}]});
    let response = server.bid(&request).await.expect("a bid");
    let adm = str_of(&bids(&response)[0], "adm");
    let click = adm
        .split('"')
        .find(|part| part.contains("/click?"))
        .unwrap_or_else(|| panic!("{adm}"));
    let (status, headers, _) = server.get(&local(click)).await;
    assert_eq!(status, StatusCode::FOUND);
    let location = headers["location"].to_str().expect("ascii");
    let (_, pclid) = location.split_once("pclid=").expect("a pclid");
    pclid.to_owned()
}

/// Reports an order and checks the answer is `expected`.
async fn order(server: &Server, pclid: &str, value: &str, id: &str, expected: StatusCode) {
    let path = format!("/conv?pclid={pclid}&value={value}&order={id}");
    let (status, _, body) = server.get(&path).await;
    assert_eq!(status, expected, "order {id} of {value}: {body:?}");
}

#[tokio::test]
async fn an_order_above_the_campaigns_largest_is_refused() {
    let server = order_campaigns().start();
    let (cps, cpc) = (
        pclid(&server, 300, 250).await,
        pclid(&server, 728, 90).await,
    );
    // `1e308` once saturated the reports at 9.22 billion USD.
    for (pclid, value) in [(&cps, "1e308"), (&cps, "5000.01"), (&cpc, "20.01")] {
        order(&server, pclid, value, "big", StatusCode::BAD_REQUEST).await;
    }
    order(&server, &cps, "5000", "a", StatusCode::NO_CONTENT).await;
    order(&server, &cpc, "20", "b", StatusCode::NO_CONTENT).await;
    let refused = server
        .metric("precis_event_rejections_total{reason=\"bad_amount\"}")
        .await;
    assert_eq!(refused, 3.0);
}

#[tokio::test]
async fn a_clicks_order_cap_holds_across_a_restart() {
    let mut server = order_campaigns().start();
    let pclid = pclid(&server, 300, 250).await;
    for id in ["o1", "o2"] {
        order(&server, &pclid, "10", id, StatusCode::NO_CONTENT).await;
    }
    server.restart(&[]).await;
    // Two orders is the click's share, restart or not; a repeat of one still counts once.
    order(&server, &pclid, "10", "o3", StatusCode::CONFLICT).await;
    order(&server, &pclid, "10", "o1", StatusCode::NO_CONTENT).await;
    let repeats = server
        .metric("precis_event_repeats_total{kind=\"conv\"}")
        .await;
    assert_eq!(repeats, 1.0);
}

#[tokio::test]
async fn after_kill_9_with_reservations_held_spend_stays_within_the_budget_and_one_bid() {
    // 0.02 in total, bids of 0.002: ten bids reserve it all. Five are made and held (not won
    // yet) when the bidder is killed; their wins arrive after the restart.
    const TOTAL: f64 = 0.02;
    const MAX_BID: f64 = 0.002;
    let start = at("2026-11-23T10:00:00Z");
    let mut server = shop_spending(start, 0.02)
        .config("[pacing]\nhold_secs = 60\n")
        .start();
    let mut held = Vec::new();
    for n in 0..5 {
        held.push(offer(&server, n).await.expect("a bid within the budget"));
    }
    server.signal("KILL");
    server.exited().await;
    server
        .restart_with_flag("--simulate-from", &rfc3339(start))
        .await;
    server
        .until_logged("the last run ended without saving its budget reservations")
        .await;
    // Whatever it reserved is unknown: no budgeted bid until its bids' holds have lapsed. (Before,
    // the budget looked untouched and ten more bids were made: 1.5× the budget once all won.)
    let mut late = Vec::new();
    while let Some(bid) = offer(&server, 100 + late.len()).await {
        late.push(bid);
        if late.len() > 20 {
            break;
        }
    }
    // The wins of the bids made before the crash arrive, at the bid price (and of any made since).
    for bid in held.iter().chain(&late) {
        accepted(&server, &bid.win("2")).await;
    }
    let spent = spend(&server).await;
    let made = late.len();
    assert_eq!(
        made, 0,
        "bids made while the lost reservations could still be won; spent {spent}"
    );
    // Once they have lapsed, the campaign bids what is left of its budget, and no more.
    advance(&server, start + Duration::seconds(60)).await;
    let mut after = 0;
    while let Some(bid) = offer(&server, 200 + after).await {
        after += 1;
        assert!(after <= 20, "still bidding after {after} bids");
        accepted(&server, &bid.win("2")).await;
    }
    let spent = spend(&server).await;
    assert_eq!(after, 5, "bids once the holds lapsed; spent {spent}");
    assert!(spent <= TOTAL + MAX_BID + 1e-12, "spent {spent} of {TOTAL}");
    assert_usd(spent, TOTAL, "spent");
}

#[tokio::test]
async fn a_damaged_or_empty_holds_file_is_set_aside_and_never_stops_the_bidder() {
    for damaged in ["{\"not\": \"a list", ""] {
        let start = at("2026-11-23T10:00:00Z");
        let server = shop_spending(start, 1.0)
            .file("logs/holds.json", damaged)
            .start();
        server
            .until_logged("cannot read the budget reservations")
            .await;
        let aside = server.root().join("logs/holds.json.bad");
        assert_eq!(std::fs::read_to_string(&aside).expect("set aside"), damaged);
        // The holds it had are unknown: the budgeted campaign waits out hold_secs, then bids.
        assert!(
            offer(&server, 0).await.is_none(),
            "a bid right after the start"
        );
        advance(&server, start + Duration::seconds(60)).await;
        assert!(
            offer(&server, 1).await.is_some(),
            "no bid once the holds lapsed"
        );
    }
}

#[tokio::test]
async fn a_graceful_restart_keeps_the_reservations_and_does_not_wait() {
    let start = at("2026-11-23T10:00:00Z");
    let mut server = shop_spending(start, 0.004).start();
    // Two bids reserve the whole budget; a graceful stop saves them.
    let first = offer(&server, 0).await.expect("a bid");
    offer(&server, 1).await.expect("a bid");
    assert!(offer(&server, 2).await.is_none(), "the budget is held");
    server
        .restart_with_flag("--simulate-from", &rfc3339(start))
        .await;
    assert!(
        !server.log().contains("ended without saving"),
        "{}",
        server.log()
    );
    assert!(
        offer(&server, 3).await.is_none(),
        "the saved holds still fill the budget"
    );
    // One is won at 1.00 CPM: its hold settles, and 0.001 is free for a bid... of 0.002: no.
    accepted(&server, &first.win("1")).await;
    assert!(offer(&server, 4).await.is_none());
    // The other lapses: 0.003 free.
    advance(&server, start + Duration::seconds(60)).await;
    assert!(
        offer(&server, 5).await.is_some(),
        "a bid once a hold lapsed"
    );
}
