//! The measurement loop end to end: the real bidder bids, the test plays the exchange, the browser
//! and the advertiser (win and billing notices, the pixel, the click, the conversion), stops the
//! bidder with SIGTERM and reads its event log back with `precis report`. What the report says must
//! be exactly what was sent and accepted: each event once however often it arrives, refused ones
//! never, and nothing lost on the way to disk. Every wait is a poll to a deadline.

#[allow(dead_code)]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{
    Server, Setup, banner_imp, banner_request, bids, fifo, local, markup_link, parse_json, request,
    str_of, with,
};
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

/// The macro an exchange replaces with the clearing price.
const AUCTION_PRICE: &str = "${AUCTION_PRICE}";
const SECRET: &str = "measurement-secret-number-one";
const OTHER_SECRET: &str = "measurement-secret-number-two";

/// How an advertiser pays, and how much.
#[derive(Debug, Clone, Copy)]
enum Pay {
    /// Per thousand impressions.
    Cpm(f64),
    /// Per click.
    Cpc(f64),
    /// A commission on each order's value.
    Cps(f64),
}

/// A campaign of these tests: it pays `pay` and bids only on `w`x`h` banners (each campaign its
/// own size, so the test decides who wins), whose clicks land on `landing`.
#[derive(Debug)]
struct Offer {
    id: &'static str,
    pay: Pay,
    w: u32,
    h: u32,
    landing: &'static str,
}

/// CPM, landing without a query: the click adds `?pclid=`.
const BRAND: Offer = Offer {
    id: "brand",
    pay: Pay::Cpm(2.5),
    w: 300,
    h: 250,
    landing: "https://brand.example/welcome",
};

/// CPC, landing with a query: the click adds `&pclid=`.
const CLICKS: Offer = Offer {
    id: "clicks",
    pay: Pay::Cpc(0.4),
    w: 728,
    h: 90,
    landing: "https://clicks.example/go?src=precis",
};

/// CPS, landing with a query and a fragment: `&pclid=` goes before the fragment.
const SHOP: Offer = Offer {
    id: "shop",
    pay: Pay::Cps(0.08),
    w: 320,
    h: 50,
    landing: "https://shop.example/cart?step=1#basket",
};

const OFFERS: [&Offer; 3] = [&BRAND, &CLICKS, &SHOP];

impl Offer {
    /// The campaign file.
    fn toml(&self) -> String {
        // Priors that make each eCPM a few dollars, under a cap that never binds.
        let pricing = match self.pay {
            Pay::Cpm(cpm) => format!("model = \"cpm\"\ncpm = {cpm:?}"),
            Pay::Cpc(cpc) => format!("model = \"cpc\"\ncpc = {cpc:?}\nctr = 0.01\nmax_cpm = 50.0"),
            Pay::Cps(commission) => format!(
                "model = \"cps\"\ncommission = {commission:?}\norder_value = 50.0\ncvr = 0.05\nctr = 0.01\nmax_cpm = 50.0"
            ),
        };
        common::Campaign::priced(&pricing)
            .banner_to(self.w, self.h, self.landing)
            .toml()
    }

    fn creative(&self) -> String {
        format!("b{}x{}", self.w, self.h)
    }

    /// A bid request for one banner of this offer's size, from `user` when there is one.
    fn request(&self, user: Option<&str>) -> Value {
        let request = banner_request(self.w, self.h);
        match user {
            Some(user) => with(request, json!({ "user": { "id": user } })),
            None => request,
        }
    }

    /// What the advertiser owes for an impression, USD (campaigns here are priced in USD).
    fn owed_per_imp(&self) -> f64 {
        match self.pay {
            Pay::Cpm(cpm) => cpm / 1000.0,
            _ => 0.0,
        }
    }

    /// What the advertiser owes for a click, USD.
    fn owed_per_click(&self) -> f64 {
        match self.pay {
            Pay::Cpc(cpc) => cpc,
            _ => 0.0,
        }
    }

    /// What the advertiser owes for an order of `value`, USD.
    fn owed_per_order(&self, value: f64) -> f64 {
        match self.pay {
            Pay::Cps(commission) => commission * value,
            _ => 0.0,
        }
    }
}

/// A server with these campaigns, and `setup`'s configuration and environment.
fn serving(setup: Setup, offers: &[&Offer]) -> Server {
    offers
        .iter()
        .fold(setup, |setup, offer| {
            setup.campaign(&format!("{}.toml", offer.id), offer.toml())
        })
        .start()
}

/// One bid precis made: who it was for, and the event URLs in it.
struct Bid {
    id: String,
    offer: &'static Offer,
    user: Option<String>,
    /// `nurl` and `burl`, with the price macro still in them.
    nurl: String,
    burl: String,
    /// The click URL the `adm` carries.
    click: String,
}

impl Bid {
    /// The bid of `offer` in a bid response.
    fn of(bid: &Value, offer: &'static Offer, user: Option<&str>) -> Bid {
        assert_eq!(str_of(bid, "cid"), offer.id, "{bid}");
        let adm = str_of(bid, "adm");
        let click = markup_link(adm);
        assert!(!click.contains("${CLICK_URL}"), "unexpanded: {adm}");
        Bid {
            id: str_of(bid, "id").to_owned(),
            offer,
            user: user.map(str::to_owned),
            nurl: str_of(bid, "nurl").to_owned(),
            burl: str_of(bid, "burl").to_owned(),
            click: click.to_owned(),
        }
    }

    /// The event token (`t=`) of the bid's URLs.
    fn token(&self) -> &str {
        let (_, query) = self.nurl.split_once("t=").expect("a token in nurl");
        query.split('&').next().unwrap_or_default()
    }

    /// The win notice as the exchange sends it: the clearing price in place of the macro.
    fn win(&self, price: &str) -> String {
        local(&self.nurl.replace(AUCTION_PRICE, price))
    }

    /// The billing notice (`burl`) with the clearing price in place of the macro.
    fn imp(&self, price: &str) -> String {
        local(&self.burl.replace(AUCTION_PRICE, price))
    }

    /// The click URL as the browser follows it.
    fn click(&self) -> String {
        local(&self.click)
    }
}

/// `text` with the character at `at` changed.
fn tampered(text: &str, at: usize) -> String {
    let changed = if text.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    format!("{}{changed}{}", &text[..at], &text[at + 1..])
}

/// Bids once for `offer` and returns the only bid.
async fn bid_on(server: &Server, offer: &'static Offer, user: Option<&str>) -> Bid {
    let response = server
        .bid(&offer.request(user))
        .await
        .unwrap_or_else(|| panic!("{} did not bid", offer.id));
    let bids = bids(&response);
    assert_eq!(bids.len(), 1, "{response}");
    Bid::of(&bids[0], offer, user)
}

/// How a conversion is reported.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// `GET /conv?pclid=..&value=..`.
    Query,
    /// `POST /conv` with the same parameters as a form body.
    Form,
}

/// A conversion: the click it follows, the order amount and the order id, each optional.
struct Order<'a> {
    pclid: &'a str,
    value: Option<&'a str>,
    id: Option<&'a str>,
}

impl Order<'_> {
    /// The request that reports it.
    fn request(&self, via: Via) -> (Method, String, Bytes) {
        let mut params = format!("pclid={}", self.pclid);
        if let Some(value) = self.value {
            params += &format!("&value={value}");
        }
        if let Some(id) = self.id {
            params += &format!("&order={id}");
        }
        match via {
            Via::Query => (Method::GET, format!("/conv?{params}"), Bytes::new()),
            Via::Form => (Method::POST, "/conv".to_owned(), Bytes::from(params)),
        }
    }
}

// The events as the exchange, the browser and the advertiser send them, each asserted accepted.

/// Fires the win notice at `price` and checks it is accepted.
async fn send_win(server: &Server, bid: &Bid, price: &str) {
    let (status, _, body) = server.get(&bid.win(price)).await;
    assert!(status.is_success(), "win answered {status}: {body:?}");
}

/// Fires the billing notice and checks it answers the pixel, uncached.
async fn send_imp(server: &Server, bid: &Bid, price: &str) {
    let (status, headers, body) = server.get(&bid.imp(price)).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(headers["content-type"], "image/gif");
    assert!(body.starts_with(b"GIF89a"), "not a GIF: {body:?}");
    let cache = headers["cache-control"].to_str().expect("ascii");
    assert!(
        cache.contains("no-cache") && cache.contains("no-store"),
        "cache-control: {cache}"
    );
}

/// Follows the click URL: a 302 to the campaign's landing page with `pclid` added. Returns it.
async fn send_click(server: &Server, bid: &Bid) -> String {
    let (status, headers, body) = server.get(&bid.click()).await;
    assert_eq!(status, StatusCode::FOUND, "click answered {body:?}");
    let location = headers["location"].to_str().expect("ascii location");
    let landing = bid.offer.landing;
    let (base, fragment) = landing.split_once('#').unwrap_or((landing, ""));
    let separator = if base.contains('?') { '&' } else { '?' };
    let pclid = location
        .strip_prefix(&format!("{base}{separator}pclid="))
        .and_then(|rest| match fragment {
            "" => Some(rest),
            _ => rest.strip_suffix(&format!("#{fragment}")),
        })
        .unwrap_or_else(|| panic!("click to {location}, expected {landing} with a pclid"));
    assert!(
        !pclid.is_empty()
            && pclid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "pclid {pclid:?}"
    );
    pclid.to_owned()
}

/// Reports the order, by query or by form, and checks it is accepted.
async fn send_order(server: &Server, order: &Order<'_>, via: Via) {
    let (method, path, body) = order.request(via);
    let (status, _, body) = server
        .send(method, &path, "application/x-www-form-urlencoded", body)
        .await;
    assert!(
        status.is_success(),
        "conversion answered {status}: {body:?}"
    );
}

/// What the report must say of one group: counted from what the test sent and saw accepted.
#[derive(Debug, Default)]
struct Tally {
    bids: u64,
    wins: u64,
    impressions: u64,
    users: HashSet<String>,
    clicks: u64,
    conversions: u64,
    spend: f64,
    revenue: f64,
    /// The orders' value (the test campaigns are priced in USD).
    gmv: f64,
}

impl Tally {
    /// Asserts that a report row holds exactly these figures.
    fn assert_row(&self, row: &Value) {
        let count = |key: &str| {
            row[key]
                .as_u64()
                .unwrap_or_else(|| panic!("no count `{key}` in {row}"))
        };
        let counts = [
            ("bids", self.bids),
            ("wins", self.wins),
            ("impressions", self.impressions),
            ("reach", self.users.len() as u64),
            ("clicks", self.clicks),
            ("orders", self.conversions),
        ];
        for (key, expected) in counts {
            assert_eq!(count(key), expected, "{key} in {row}\nexpected {self:?}");
        }
        let amounts = [
            ("media_cost", self.spend),
            ("advertiser_cost", self.revenue),
            ("gmv", self.gmv),
        ];
        for (key, expected) in amounts {
            let amount = row[key]
                .as_f64()
                .unwrap_or_else(|| panic!("no amount `{key}` in {row}"));
            assert!(
                (amount - expected).abs() < 1e-9,
                "{key} {amount}, expected {expected}, in {row}"
            );
        }
    }
}

/// Plays the loop against a server, fires each event once and keeps the books: what the report
/// must say per campaign.
struct Books<'a> {
    server: &'a Server,
    campaigns: BTreeMap<&'static str, Tally>,
}

impl<'a> Books<'a> {
    fn new(server: &'a Server) -> Books<'a> {
        Books {
            server,
            campaigns: BTreeMap::new(),
        }
    }

    fn tally(&mut self, bid: &Bid) -> &mut Tally {
        self.campaigns.entry(bid.offer.id).or_default()
    }

    async fn bid(&mut self, offer: &'static Offer, user: Option<&str>) -> Bid {
        let bid = bid_on(self.server, offer, user).await;
        self.tally(&bid).bids += 1;
        bid
    }

    async fn win(&mut self, bid: &Bid, price: &str) {
        send_win(self.server, bid, price).await;
        let tally = self.tally(bid);
        tally.wins += 1;
        tally.spend += amount(price) / 1000.0;
    }

    async fn imp(&mut self, bid: &Bid, price: &str) {
        send_imp(self.server, bid, price).await;
        let tally = self.tally(bid);
        tally.impressions += 1;
        tally.revenue += bid.offer.owed_per_imp();
        tally.users.extend(bid.user.clone());
    }

    async fn click(&mut self, bid: &Bid) -> String {
        let pclid = send_click(self.server, bid).await;
        let tally = self.tally(bid);
        tally.clicks += 1;
        tally.revenue += bid.offer.owed_per_click();
        pclid
    }

    async fn order(&mut self, bid: &Bid, order: &Order<'_>, via: Via) {
        send_order(self.server, order, via).await;
        let tally = self.tally(bid);
        tally.conversions += 1;
        tally.revenue += bid.offer.owed_per_order(order.value.map_or(0.0, amount));
        tally.gmv += order.value.map_or(0.0, amount);
    }

    /// What the report must say, now that the loop is played.
    fn ledger(self) -> Ledger {
        Ledger(self.campaigns)
    }
}

/// The [`Tally`] of each campaign.
struct Ledger(BTreeMap<&'static str, Tally>);

impl Ledger {
    /// Stops the server and checks `precis report` against the books, by campaign and by creative.
    async fn assert_report(&self, server: &mut Server) {
        server.stop().await;
        let rows = server.report("campaign");
        let campaigns: Vec<&str> = rows.iter().map(|r| str_of(r, "campaign")).collect();
        let expected: Vec<&str> = self.0.keys().copied().collect();
        assert_eq!(campaigns, expected, "{rows:?}");
        for row in &rows {
            self.0[str_of(row, "campaign")].assert_row(row);
        }
        let rows = server.report("creative");
        assert_eq!(rows.len(), self.0.len(), "{rows:?}");
        for row in &rows {
            let offer = OFFERS
                .iter()
                .find(|o| o.id == str_of(row, "campaign"))
                .expect("a campaign of the test");
            assert_eq!(str_of(row, "creative"), offer.creative(), "{row}");
            self.0[offer.id].assert_row(row);
        }
    }
}

fn amount(text: &str) -> f64 {
    text.parse()
        .unwrap_or_else(|_| panic!("not an amount: {text}"))
}

/// `precis_events_total` and `precis_event_repeats_total` of each kind, in that order.
async fn event_counts(server: &Server, kind: &str) -> (f64, f64) {
    let metrics = server.metrics().await;
    let series = |name: &str| {
        let series = format!("{name}{{kind=\"{kind}\"}}");
        *metrics
            .get(&series)
            .unwrap_or_else(|| panic!("no {series} in /metrics"))
    };
    (
        series("precis_events_total"),
        series("precis_event_repeats_total"),
    )
}

/// `precis_event_rejections_total{reason="REASON"}`.
async fn rejections(server: &Server, reason: &str) -> f64 {
    server
        .metric(&format!(
            "precis_event_rejections_total{{reason=\"{reason}\"}}"
        ))
        .await
}

/// Asserts that an event request was turned away with `status` and a JSON `error`.
fn assert_refused(
    what: &str,
    (answered, headers, body): &(StatusCode, HeaderMap, Bytes),
    status: StatusCode,
) {
    assert_eq!(*answered, status, "{what}: {body:?}");
    assert_eq!(headers["content-type"], "application/json", "{what}");
    let error = parse_json(body);
    assert!(
        error["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {error}"
    );
}

#[tokio::test]
async fn the_closed_loop_reconciles_exactly_with_what_was_sent() {
    let mut server = serving(Server::setup(), &OFFERS);
    let mut books = Books::new(&server);
    for offer in OFFERS {
        // Ann is seen twice: reach counts her once. The fourth bid is won but never rendered, the
        // fifth lost.
        let ann = books.bid(offer, Some("ann")).await;
        let bob = books.bid(offer, Some("bob")).await;
        let ann_again = books.bid(offer, Some("ann")).await;
        let unrendered = books.bid(offer, Some("cyd")).await;
        books.bid(offer, None).await;

        // Each rendered bid is clicked and followed by an order: by query, by form, and one
        // without an amount (a conversion that earns no commission).
        let funnel = [
            (&ann, "1.234567", Some("120.50"), Some("A-1"), Via::Query),
            (&bob, "0.98", Some("80"), Some("B-1"), Via::Form),
            (&ann_again, "1.9", None, None, Via::Query),
        ];
        for (bid, price, value, id, via) in funnel {
            books.win(bid, price).await;
            books.imp(bid, price).await;
            let pclid = books.click(bid).await;
            let order = Order {
                pclid: &pclid,
                value,
                id,
            };
            books.order(bid, &order, via).await;
        }
        books.win(&unrendered, "0.000001").await;
    }
    books.ledger().assert_report(&mut server).await;
}

#[tokio::test]
async fn each_event_counts_once_however_often_it_arrives() {
    let mut server = serving(Server::setup(), &OFFERS);
    let mut books = Books::new(&server);
    for offer in OFFERS {
        let bid = books.bid(offer, Some("dee")).await;
        books.win(&bid, "1.5").await;
        send_win(&server, &bid, "1.5").await;
        books.imp(&bid, "1.5").await;
        send_imp(&server, &bid, "1.5").await;
        let pclid = books.click(&bid).await;
        // A second click still takes the user to the landing page, with the same pclid.
        let again = send_click(&server, &bid).await;
        assert_eq!(again, pclid, "a replayed click mints no new pclid");
        let first = Order {
            pclid: &pclid,
            value: Some("40"),
            id: Some("o-1"),
        };
        books.order(&bid, &first, Via::Query).await;
        send_order(&server, &first, Via::Form).await;
        let retried = Order {
            pclid: &again,
            ..first
        };
        send_order(&server, &retried, Via::Query).await;
        // Another order after the same click is another conversion.
        let second = Order {
            pclid: &pclid,
            value: Some("25.5"),
            id: Some("o-2"),
        };
        books.order(&bid, &second, Via::Query).await;
    }
    let n = OFFERS.len() as f64;
    // The billing notice after the win is a repeat of the win (the bid is charged once), and of
    // the impression when it is sent again: three repeated wins per bid.
    for (kind, logged, repeated) in [
        ("win", n, 3.0 * n),
        ("imp", n, n),
        ("click", n, n),
        ("conv", 2.0 * n, 2.0 * n),
    ] {
        assert_eq!(
            event_counts(&server, kind).await,
            (logged, repeated),
            "{kind}: (precis_events_total, precis_event_repeats_total)"
        );
    }
    books.ledger().assert_report(&mut server).await;
}

#[tokio::test]
async fn forged_misused_and_malformed_events_are_refused_and_never_logged() {
    let mut server = serving(Server::setup().env("PRECIS_SECRET", SECRET), &[&BRAND]);
    let other = serving(
        Server::setup().env("PRECIS_SECRET", OTHER_SECRET),
        &[&BRAND],
    );
    let foreign = bid_on(&other, &BRAND, Some("eve")).await;

    let mut books = Books::new(&server);
    // Never gets a valid event: everything sent for it is refused.
    let target = books.bid(&BRAND, Some("eve")).await;
    // Clicked, for a click token to misuse.
    let clicked = books.bid(&BRAND, Some("eve")).await;
    let pclid = books.click(&clicked).await;

    let token = target.token();
    let forged = tampered(token, token.len() / 2);
    let forged_pclid = tampered(&pclid, pclid.len() / 2);
    let get = |path: String| (Method::GET, path, Bytes::new());
    // A token that cannot be read is malformed (400); one that reads but was not signed by this
    // server's secret, or for another route, is forbidden (403).
    let (malformed, forbidden) = (StatusCode::BAD_REQUEST, StatusCode::FORBIDDEN);
    let bad_token = [
        ("no token", get("/win?price=1.5".into()), malformed),
        (
            "not base64",
            get("/win?t=%21%21%21&price=1.5".into()),
            malformed,
        ),
        (
            "too short to sign",
            get("/imp?t=AAAA&price=1.5".into()),
            malformed,
        ),
        (
            "tampered",
            get(format!("/win?t={forged}&price=1.5")),
            forbidden,
        ),
        (
            "tampered imp",
            get(format!("/imp?t={forged}&price=1.5")),
            forbidden,
        ),
        (
            "tampered click",
            get(format!("/click?t={forged}")),
            forbidden,
        ),
        ("another server's token", get(foreign.win("1.5")), forbidden),
        (
            "a pclid on /win",
            get(format!("/win?t={pclid}&price=1.5")),
            forbidden,
        ),
        (
            "a pclid on /click",
            get(format!("/click?t={pclid}")),
            forbidden,
        ),
        (
            "an event token as pclid",
            get(format!("/conv?pclid={token}&value=10")),
            forbidden,
        ),
        (
            "tampered pclid",
            get(format!("/conv?pclid={forged_pclid}&value=10")),
            forbidden,
        ),
    ];
    let form = |body: String| (Method::POST, "/conv".to_owned(), Bytes::from(body));
    // (A price that cannot be read is no reason to refuse a genuine notice: it is charged at the
    // bid price, see tests/money.rs.)
    let bad_amount = [
        (
            "a value above the campaign's largest order",
            get(format!("/conv?pclid={pclid}&value=1e308")),
        ),
        (
            "negative value",
            get(format!("/conv?pclid={pclid}&value=-5")),
        ),
        (
            "non-numeric value",
            get(format!("/conv?pclid={pclid}&value=lots")),
        ),
        (
            "negative value by form",
            form(format!("pclid={pclid}&value=-5&order=x")),
        ),
        (
            "infinite value by form",
            form(format!("pclid={pclid}&value=inf")),
        ),
    ]
    .map(|(what, request)| (what, request, StatusCode::BAD_REQUEST));
    for (reason, cases) in [("bad_token", &bad_token[..]), ("bad_amount", &bad_amount)] {
        for (what, (method, path, body), status) in cases {
            let answer = server
                .send(
                    method.clone(),
                    path,
                    "application/x-www-form-urlencoded",
                    body.clone(),
                )
                .await;
            assert_refused(what, &answer, *status);
        }
        assert_eq!(
            rejections(&server, reason).await,
            cases.len() as f64,
            "{reason}"
        );
    }
    books.ledger().assert_report(&mut server).await;
}

#[tokio::test]
async fn an_expired_token_is_refused_and_never_logged() {
    let mut server = serving(
        Server::setup().config("[events]\ntoken_ttl_secs = 1\n"),
        &[&BRAND],
    );
    let mut books = Books::new(&server);
    let bid = books.bid(&BRAND, Some("fay")).await;
    // Probed with the win of a bid made after it: logged once, then a repeat while its token
    // lives, then 410; by then the first bid's token (signed no later) has expired too.
    let probe = books.bid(&BRAND, Some("gus")).await;
    books.win(&probe, "1.5").await;
    let probe = probe.win("1.5");
    server
        .eventually_every(
            Duration::from_millis(500),
            "the token to expire",
            async || match server.get(&probe).await {
                (StatusCode::GONE, _, _) => Ok(()),
                (status, _, body) => Err(format!("{status} {body:?}")),
            },
        )
        .await;
    for (what, path) in [
        ("win", bid.win("1.5")),
        ("imp", bid.imp("1.5")),
        ("click", bid.click()),
    ] {
        assert_refused(what, &server.get(&path).await, StatusCode::GONE);
    }
    assert_eq!(rejections(&server, "expired").await, 4.0);
    books.ledger().assert_report(&mut server).await;
    let logged: Vec<String> = server
        .logged_events()
        .iter()
        .map(|e| str_of(e, "event").to_owned())
        .filter(|e| e != "bid")
        .collect();
    assert_eq!(logged, ["win"], "only the probe's win is logged");
}

#[tokio::test]
async fn a_burst_of_events_then_sigterm_leaves_every_accepted_one_in_the_log() {
    // Events are on disk once accepted; the bid lines get there through the graceful stop.
    let server = serving(Server::setup(), &[&BRAND]);
    const REQUESTS: usize = 40;
    const IMPS: usize = 50;
    let mut made = Vec::new();
    for r in 0..REQUESTS {
        let imps = (0..IMPS)
            .map(|i| banner_imp(&format!("{r}-{i}"), BRAND.w, BRAND.h))
            .collect();
        let response = server.bid(&request(imps)).await.expect("a bid per imp");
        let bids = bids(&response);
        assert_eq!(bids.len(), IMPS, "{response}");
        made.extend(bids.iter().map(|b| Bid::of(b, &BRAND, None)));
    }

    // A handful of tasks, each firing the win and the impression of its share of the bids.
    let server = Arc::new(server);
    let made = Arc::new(made);
    const TASKS: usize = 8;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (server, made) = (server.clone(), made.clone());
        tasks.spawn(async move {
            let mut accepted = Vec::new();
            for bid in made.iter().skip(task).step_by(TASKS) {
                for (kind, path) in [("win", bid.win("0.75")), ("imp", bid.imp("0.75"))] {
                    let (status, _, body) = server.get(&path).await;
                    match status {
                        s if s.is_success() => accepted.push((kind, bid.id.clone())),
                        // The log could not keep up: the sender would retry. Not logged.
                        StatusCode::SERVICE_UNAVAILABLE => {}
                        other => panic!("{kind} answered {other}: {body:?}"),
                    }
                }
            }
            accepted
        });
    }
    let mut accepted = HashSet::new();
    while let Some(done) = tasks.join_next().await {
        accepted.extend(done.expect("a sender task"));
    }
    assert!(!accepted.is_empty());

    let mut server = Arc::into_inner(server).expect("the tasks are done");
    server.stop().await;
    let mut logged = HashSet::new();
    let mut bid_lines = 0;
    for event in server.logged_events() {
        match str_of(&event, "event") {
            "bid" => bid_lines += 1,
            kind => {
                let key = (kind.to_owned(), str_of(&event, "bid").to_owned());
                assert!(logged.insert(key), "logged twice: {event}");
            }
        }
    }
    let accepted: HashSet<(String, String)> = accepted
        .into_iter()
        .map(|(kind, bid)| (kind.to_owned(), bid))
        .collect();
    assert_eq!(logged.len(), accepted.len(), "events logged vs accepted");
    assert!(logged == accepted, "the log differs from what was accepted");
    assert_eq!(bid_lines, REQUESTS * IMPS);
}

#[tokio::test]
async fn events_replayed_after_a_restart_count_once_and_old_tokens_still_verify() {
    let mut server = serving(Server::setup().env("PRECIS_SECRET", SECRET), &[&SHOP]);
    let bid = bid_on(&server, &SHOP, Some("gus")).await;
    send_win(&server, &bid, "1.75").await;
    let pclid = send_click(&server, &bid).await;
    let order = Order {
        pclid: &pclid,
        value: Some("60"),
        id: Some("o-1"),
    };
    send_order(&server, &order, Via::Query).await;

    server.restart(&[]).await;
    // The exchange, the browser and the advertiser retry what they sent before the restart.
    send_win(&server, &bid, "1.75").await;
    send_click(&server, &bid).await;
    send_order(&server, &order, Via::Query).await;
    for kind in ["win", "click", "conv"] {
        assert_eq!(event_counts(&server, kind).await, (0.0, 1.0), "{kind}");
    }
    // The tokens signed before the restart still verify for new events.
    send_imp(&server, &bid, "1.75").await;
    let another = Order {
        id: Some("o-2"),
        value: Some("20"),
        ..order
    };
    send_order(&server, &another, Via::Form).await;
    assert_eq!(event_counts(&server, "imp").await, (1.0, 0.0));
    assert_eq!(event_counts(&server, "conv").await, (1.0, 1.0));

    let tally = Tally {
        bids: 1,
        wins: 1,
        impressions: 1,
        users: HashSet::from(["gus".to_owned()]),
        clicks: 1,
        conversions: 2,
        spend: 1.75 / 1000.0,
        revenue: SHOP.owed_per_order(60.0 + 20.0),
        gmv: 60.0 + 20.0,
    };
    Ledger(BTreeMap::from([(SHOP.id, tally)]))
        .assert_report(&mut server)
        .await;
}

#[tokio::test]
async fn tokens_signed_with_the_previous_secret_verify_during_a_rotation() {
    let mut server = serving(Server::setup().env("PRECIS_SECRET", SECRET), &[&BRAND]);
    let old = bid_on(&server, &BRAND, None).await;

    server
        .restart(&[
            ("PRECIS_SECRET", OTHER_SECRET),
            ("PRECIS_SECRET_PREVIOUS", SECRET),
        ])
        .await;
    send_win(&server, &old, "1.0").await;
    let new = bid_on(&server, &BRAND, None).await;
    send_win(&server, &new, "1.0").await;

    // Rotation over: the old secret is no longer accepted, the new one is.
    server.restart(&[("PRECIS_SECRET_PREVIOUS", "")]).await;
    let answer = server.get(&old.imp("1.0")).await;
    assert_refused(
        "a token of a retired secret",
        &answer,
        StatusCode::FORBIDDEN,
    );
    assert_eq!(rejections(&server, "bad_token").await, 1.0);
    send_imp(&server, &new, "1.0").await;
    assert_eq!(event_counts(&server, "imp").await, (1.0, 0.0));
}

/// Bids on [`BRAND`] with single- and two-imp requests and one request nobody bids on, wins one
/// bid, stops the server: the ids of the bids made, of the bids logged as `bid` lines, and the
/// report row.
async fn bids_made_and_logged(setup: Setup) -> (Vec<String>, Vec<String>, Value) {
    let mut server = serving(setup, &[&BRAND]);
    let banner = || banner_imp("1", BRAND.w, BRAND.h);
    let mut made = Vec::new();
    for imps in [
        vec![banner()],
        vec![banner(), banner_imp("2", BRAND.w, BRAND.h)],
        vec![banner()],
    ] {
        let response = server.bid(&request(imps)).await.expect("a bid");
        made.extend(bids(&response).iter().map(|b| Bid::of(b, &BRAND, None)));
    }
    assert!(server.bid(&banner_request(1, 1)).await.is_none());
    send_win(&server, &made[0], "1.0").await;
    server.stop().await;

    let logged = server
        .logged_events()
        .into_iter()
        .filter(|e| e["event"] == "bid")
        .map(|e| str_of(&e, "bid").to_owned())
        .collect();
    let mut rows = server.report("campaign");
    assert_eq!(rows.len(), 1, "{rows:?}");
    (
        made.into_iter().map(|b| b.id).collect(),
        logged,
        rows.remove(0),
    )
}

#[tokio::test]
async fn every_bid_is_logged_by_default() {
    let (made, logged, row) = bids_made_and_logged(Server::setup()).await;
    assert_eq!(made.len(), 4);
    assert_eq!(logged, made);
    assert_eq!(
        (row["bids"].as_u64(), row["wins"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(row["win_rate"], 0.25);
}

#[tokio::test]
async fn no_bid_is_logged_when_bid_logging_is_off() {
    let setup = Server::setup().config("[events]\nlog_bids_every = 0\n");
    let (made, logged, row) = bids_made_and_logged(setup).await;
    assert_eq!(made.len(), 4);
    assert_eq!(logged, Vec::<String>::new());
    assert_eq!(
        (row["bids"].as_u64(), row["wins"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(row["win_rate"].is_null(), "{row}");
}

#[tokio::test]
async fn sampled_bid_lines_still_count_every_bid() {
    // One line in two, each standing for two bids: 4 bids, 2 lines, and the report says 4.
    let setup = Server::setup().config("[events]\nlog_bids_every = 2\n");
    let (made, logged, row) = bids_made_and_logged(setup).await;
    assert_eq!(made.len(), 4);
    assert_eq!(logged.len(), 2);
    assert_eq!(
        (row["bids"].as_u64(), row["wins"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(row["win_rate"], 0.25);
}

#[tokio::test]
async fn a_click_converts_at_most_max_orders_per_click_times() {
    let setup = Server::setup().config("[events]\nmax_orders_per_click = 2\n");
    let server = serving(setup, &[&SHOP]);
    let bid = bid_on(&server, &SHOP, None).await;
    let pclid = send_click(&server, &bid).await;
    let order = |id: &str| format!("/conv?pclid={pclid}&value=10&order={id}");
    for id in ["o1", "o2"] {
        assert!(server.get(&order(id)).await.0.is_success());
    }
    // A repeat of a counted order is still just a repeat; a third order is refused.
    assert!(server.get(&order("o1")).await.0.is_success());
    let (status, _, body) = server.get(&order("o3")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body:?}");
    assert_eq!(rejections(&server, "too_many_orders").await, 1.0);
    assert_eq!(event_counts(&server, "conv").await, (2.0, 1.0));
}

/// The price `offer` bids now.
async fn price_now(server: &Server, offer: &Offer) -> f64 {
    let response = server
        .bid(&offer.request(None))
        .await
        .unwrap_or_else(|| panic!("{} did not bid", offer.id));
    common::price_of(&bids(&response)[0])
}

/// Polls until `offer` bids `price` (repricing runs every `reprice_secs`); fails after the deadline.
async fn until_priced(server: &Server, offer: &Offer, price: f64) {
    server
        .eventually(&format!("{} to bid {price}", offer.id), async || {
            let now = price_now(server, offer).await;
            ((now - price).abs() < 1e-6)
                .then_some(())
                .ok_or(format!("price {now}"))
        })
        .await
}

#[tokio::test]
async fn measured_clicks_move_the_price_of_a_cpc_campaign() {
    // The prior (1% CTR) weighs as 10 impressions; repricing every second.
    let setup = Server::setup().config("[learning]\nprior_impressions = 10\nreprice_secs = 1\n");
    let server = serving(setup, &[&CLICKS]);
    // 0.40 per click at the prior 1% CTR: 4.00 per thousand.
    common::assert_price(price_now(&server, &CLICKS).await, 4.0);

    // 30 impressions and no click: CTR (0 + 0.1) / (30 + 10) = 0.25%, so 1.00 per thousand.
    let mut shown = Vec::new();
    for _ in 0..30 {
        let bid = bid_on(&server, &CLICKS, None).await;
        send_imp(&server, &bid, "1.0").await;
        shown.push(bid);
    }
    until_priced(&server, &CLICKS, 1.0).await;

    // 20 of them clicked: CTR (20 + 0.1) / 40 = 50.25%: 201 per thousand, capped at max_cpm 50.
    for bid in &shown[..20] {
        send_click(&server, bid).await;
    }
    let raised = server
        .eventually("the price to rise", async || {
            let price = price_now(&server, &CLICKS).await;
            if price > 4.0 {
                Ok(price)
            } else {
                Err(format!("price {price}"))
            }
        })
        .await;
    common::assert_price(raised, 50.0);
    let status = server.status().await;
    let learned = &status["campaigns"][0];
    assert_eq!(
        (learned["impressions"].as_u64(), learned["clicks"].as_u64()),
        (Some(30), Some(20)),
        "{status}"
    );
}

#[tokio::test]
async fn measured_conversions_move_the_price_of_a_cps_campaign_by_its_formula() {
    // Priors that weigh as 10 impressions and 10 clicks; repricing every second. Every price here
    // stays under max_cpm (50), so each is the formula's: commission × order value × CVR × CTR ×
    // 1000.
    let setup = Server::setup()
        .config("[learning]\nprior_impressions = 10\nprior_clicks = 10\nreprice_secs = 1\n");
    let server = serving(setup, &[&SHOP]);
    // The priors: 0.08 × 50 × 5% × 1% × 1000 = 2.00 per thousand.
    common::assert_price(price_now(&server, &SHOP).await, 2.0);

    // 30 impressions, one clicked: CTR (1 + 0.1) / (30 + 10) = 2.75%, CVR (0 + 0.5) / (1 + 10)
    // = 1/22: 0.08 × 50 × 1/22 × 2.75% × 1000 = 5.00.
    let mut shown = Vec::new();
    for _ in 0..30 {
        let bid = bid_on(&server, &SHOP, None).await;
        send_imp(&server, &bid, "1.0").await;
        shown.push(bid);
    }
    let pclid = send_click(&server, &shown[0]).await;
    until_priced(&server, &SHOP, 5.0).await;

    // The click converts: CVR (1 + 0.5) / (1 + 10) = 3/22, the price three times as high: 15.00.
    let order = Order {
        pclid: &pclid,
        value: Some("50"),
        id: Some("o-1"),
    };
    send_order(&server, &order, Via::Query).await;
    until_priced(&server, &SHOP, 15.0).await;
    let status = server.status().await;
    let learned = &status["campaigns"][0];
    assert_eq!(
        (
            learned["impressions"].as_u64(),
            learned["clicks"].as_u64(),
            learned["conversions"].as_u64()
        ),
        (Some(30), Some(1), Some(1)),
        "{status}"
    );
}

/// Sends `GET path` until it is answered 204; fails, saying `what` it waited for, after the
/// harness's deadline.
async fn until_no_content(server: &Server, path: &str, what: &str) {
    server
        .eventually(what, async || {
            let (status, _, _) = server.get(path).await;
            (status == StatusCode::NO_CONTENT)
                .then_some(())
                .ok_or(status.to_string())
        })
        .await;
}

#[tokio::test]
async fn a_full_event_queue_answers_503_with_retry_after_and_the_retry_is_logged() {
    // The log's file is a pipe the test holds: its writer is stuck, and bid lines fill half the
    // queue; wins take the other half (waiting for their line to be written), and the next one is
    // told to come back.
    const QUEUE: usize = 8;
    let (mut server, held) = fifo::held_event_log(QUEUE);
    let made = fifo::back_up(&server, QUEUE).await;
    let (waiting, busy) = fifo::win_until_busy(&server, &made).await;
    let fifo::TurnedAway {
        bid: busy_bid,
        path: win,
        answer,
    } = busy.expect("a win turned away");
    assert_refused(
        "a win with the queue full",
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
    );
    assert_eq!(answer.1["retry-after"], "1");
    assert_eq!(waiting.len(), QUEUE - QUEUE / 2, "wins the queue took");
    assert_eq!(rejections(&server, "busy").await, 1.0);

    // The log catches up: the wins it queued are answered once written (or, on a machine slow
    // enough that they gave up waiting, on their retry); the turned-away win's retry is accepted
    // and logged like any win.
    held.release();
    let mut won = HashSet::new();
    for (id, answer) in waiting {
        let (status, _, _) = answer.await.expect("a win's answer");
        if status != StatusCode::NO_CONTENT {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            let bid = made.iter().find(|b| str_of(b, "id") == id).expect("a bid");
            let retry = fifo::win_path(bid);
            until_no_content(
                &server,
                &retry,
                "the waiting win's retry to be acknowledged",
            )
            .await;
        }
        won.insert(id);
    }
    until_no_content(&server, &win, "the retried win to be accepted").await;
    assert_eq!(event_counts(&server, "win").await.0, won.len() as f64 + 1.0);
    server.stop().await;
    let written = String::from_utf8_lossy(&held.everything()).into_owned();
    let logged: Vec<String> = written
        .lines()
        .map(|line| parse_json(line.as_bytes()))
        .filter(|e| e["event"] == "win")
        .map(|e| str_of(&e, "bid").to_owned())
        .collect();
    won.insert(busy_bid);
    assert_eq!(logged.len(), won.len(), "{logged:?}");
    assert_eq!(logged.into_iter().collect::<HashSet<_>>(), won);
}

#[tokio::test]
async fn the_log_never_holds_a_raw_user_id_buyeruid_ifa_or_ip() {
    const USER_ID: &str = "raw-user-id-7d1f0c";
    const BUYERUID: &str = "raw-buyeruid-39ab52";
    const IFA: &str = "5e0b9a3c-7d1f-4c2d-9e8f-39ab52e1c0de";
    const IPV4: &str = "203.0.113.77";
    const IPV6: &str = "2001:db8:77::1";
    let mut server = serving(Server::setup(), &[&SHOP]);
    let device = json!({ "ifa": IFA, "ip": IPV4, "ipv6": IPV6 });
    // The user is user.id when there is one, else buyeruid, else the ifa: one request each.
    let users = [
        json!({ "user": { "id": USER_ID, "buyeruid": BUYERUID }, "device": device }),
        json!({ "user": { "buyeruid": BUYERUID }, "device": device }),
        json!({ "device": device }),
    ];
    for user in users {
        let response = server
            .bid(&with(SHOP.request(None), user))
            .await
            .expect("shop bids");
        let bid = Bid::of(&bids(&response)[0], &SHOP, None);
        send_win(&server, &bid, "1.0").await;
        send_imp(&server, &bid, "1.0").await;
        let pclid = send_click(&server, &bid).await;
        let order = Order {
            pclid: &pclid,
            value: Some("10"),
            id: Some("o-1"),
        };
        send_order(&server, &order, Via::Query).await;
    }
    server.stop().await;

    let mut files = 0;
    for entry in std::fs::read_dir(server.logs_dir()).expect("the log directory") {
        let path = entry.expect("a log directory entry").path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned();
        for raw in [USER_ID, BUYERUID, IFA, IPV4, IPV6, "127.0.0.1"] {
            assert!(!text.contains(raw), "{raw} in {}:\n{text}", path.display());
        }
        files += 1;
    }
    assert!(files > 0);
    // The users are there, as keyed hashes: three keys, three users, on every line.
    let events = server.logged_events();
    assert_eq!(
        events.len(),
        3 * 5,
        "a bid, win, imp, click and conv per request"
    );
    let hashes: HashSet<&str> = events.iter().map(|e| str_of(e, "user")).collect();
    assert_eq!(hashes.len(), 3, "{hashes:?}");
}
