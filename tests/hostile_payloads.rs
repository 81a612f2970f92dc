//! Hostile payloads end to end: well-framed requests whose bodies are not bid requests
//! (malformed, truncated, deeply nested, not UTF-8, a wrong type in every field the decoder
//! reads), are compressed (gzip and deflate are bid on as if sent plain, other codings refused) or
//! are heavy (1,000 imps). Each gets a 400 with a JSON error or an answer, never a server error;
//! each outcome is counted in /metrics; after each the bidder still bids correctly and its memory
//! is back near where it was.

#[allow(dead_code)]
mod common;

use std::io::Write;

use common::hostile::{assert_error, assert_error_body, assert_recovered, bidder, warm_baseline};
use common::wire::{Answer, Raw, bid_bytes, gzip};
use common::{Campaign, Server, banner_imp, banner_request, bids, parse_json, request};
use hyper::StatusCode;
use serde_json::{Value, json};

/// The real request the compression and truncation cases use.
const SIMPLE_BANNER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openrtb-corpus/iab26__spec-6.2.1-simple-banner.json"
);

/// One request on a new connection, and its answer.
async fn exchange(server: &Server, bytes: &[u8]) -> Option<Answer> {
    Raw::sending(server, bytes).await.answer().await
}

#[tokio::test]
async fn requests_that_are_not_bid_requests_get_400_with_a_json_error_and_are_counted() {
    let server = bidder();
    assert_eq!(server.outcome_count("bad_request").await, 0.0);
    let bodies: &[(&str, &str)] = &[
        ("malformed JSON", "{\"id\": \"r\", \"imp\": [{\"id\": \"1\""),
        ("not JSON", "hello"),
        ("a JSON array", "[{\"id\": \"r\"}]"),
        ("an empty body", ""),
        (
            "no id",
            r#"{"imp": [{"id": "1", "banner": {"w": 300, "h": 250}}]}"#,
        ),
        ("a blank id", r#"{"id": "  ", "imp": [{"id": "1"}]}"#),
        ("no imp", r#"{"id": "r"}"#),
        ("an empty imp", r#"{"id": "r", "imp": []}"#),
    ];
    for (what, body) in bodies {
        assert_error(
            what,
            server.post("/openrtb2/bid", *body).await,
            StatusCode::BAD_REQUEST,
        );
    }
    // Raw bytes that are not UTF-8 at all.
    assert_error(
        "binary junk",
        server
            .post("/openrtb2/bid", vec![b'{', 0xff, 0xfe, b'}'])
            .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(
        server.outcome_count("bad_request").await,
        bodies.len() as f64 + 1.0
    );
    // An imp without an id cannot be bid on (a bid names its imp): refused or no bid, never a bid.
    let (status, _, body) = server
        .post(
            "/openrtb2/bid",
            r#"{"id": "r", "imp": [{"banner": {"w": 300, "h": 250}}]}"#,
        )
        .await;
    assert!(
        [StatusCode::BAD_REQUEST, StatusCode::NO_CONTENT].contains(&status),
        "an imp without id: {status} {body:?}"
    );
    // Still bidding.
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
    assert_eq!(server.outcome_count("bid").await, 1.0);
}

#[tokio::test]
async fn outcomes_are_counted_separately() {
    let server = bidder();
    server.post("/openrtb2/bid", "nope").await;
    server.bid(&banner_request(300, 250)).await.expect("a bid");
    server.bid(&banner_request(300, 250)).await.expect("a bid");
    assert!(server.bid(&banner_request(320, 50)).await.is_none());
    let metrics = server.metrics().await;
    let count =
        |outcome: &str| metrics[&format!("precis_bid_requests_total{{outcome=\"{outcome}\"}}")];
    assert_eq!(
        [
            count("bid"),
            count("no_bid"),
            count("bad_request"),
            count("too_large"),
            count("timeout")
        ],
        [2.0, 1.0, 1.0, 0.0, 0.0],
        "{metrics:?}"
    );
    assert_eq!(metrics["precis_campaigns_live"], 1.0);
}

#[tokio::test]
async fn truncated_deeply_nested_and_invalid_utf8_bodies_get_400_and_the_bidder_recovers() {
    let server = bidder();
    let baseline = warm_baseline(&server).await;

    let real = std::fs::read_to_string(SIMPLE_BANNER).expect("the corpus request");
    let real = real.trim_end();
    let cuts: Vec<usize> = (1..real.len())
        .step_by(real.len() / 97 + 1)
        .filter(|&cut| real.is_char_boundary(cut))
        .collect();
    for &cut in &cuts {
        let (status, _, body) = server.post("/openrtb2/bid", real[..cut].to_owned()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "cut at {cut}");
        assert_error_body(&format!("cut at {cut}"), &body);
    }

    // 100,000 levels of nesting never overflow the stack: serde_json skips fields precis does not
    // read without recursing, and stops at 128 levels in the rest.
    let head = r#"{"id": "r", "imp": [{"id": "1", "banner": {"w": 300, "h": 250"#;
    let arrays = |n| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let cases = [
        (
            "in a field precis skips",
            format!("{head}}}}}], \"ext\": {}}}", arrays(100_000)),
            &[200][..],
        ),
        (
            "in a list precis reads",
            format!("{head}, \"format\": {}}}}}]}}", arrays(100_000)),
            &[200, 400],
        ),
        (
            "in a privacy signal",
            format!("{head}}}}}], \"regs\": {{\"gdpr\": {}}}}}", arrays(100_000)),
            &[400],
        ),
    ];
    for (what, body, expected) in cases {
        assert!(body.len() < 256 * 1024, "{what}: within the body limit");
        let (status, _, body) = server.post("/openrtb2/bid", body).await;
        assert!(
            expected.contains(&status.as_u16()),
            "{what}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let nested_bad = server.outcome_count("bad_request").await - cuts.len() as f64;

    // Bytes that are not UTF-8 inside a string of an otherwise good request.
    let mut bad_string = br#"{"id": "r", "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}], "site": {"domain": ""#.to_vec();
    bad_string.extend_from_slice(b"\xff\xfe\xc3");
    bad_string.extend_from_slice(br#""}}"#);
    assert_error(
        "invalid UTF-8 in a string",
        server.post("/openrtb2/bid", bad_string).await,
        StatusCode::BAD_REQUEST,
    );
    // ... and in a header nobody reads: the request is still bid on.
    let answer = exchange(
        &server,
        &bid_bytes(
            b"X-Junk: \xff\xfe\xc3\r\n",
            banner_request(300, 250).to_string().as_bytes(),
        ),
    )
    .await
    .expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        server.outcome_count("bad_request").await,
        cuts.len() as f64 + nested_bad + 1.0
    );
    assert_recovered(
        &server,
        baseline,
        "truncated, nested and invalid UTF-8 bodies",
    )
    .await;
}

/// Every field the decoder reads (`src/openrtb/mod.rs`), as a JSON pointer into [`full_request`].
const READ_FIELDS: &[&str] = &[
    "/id",
    "/tmax",
    "/cur",
    "/bcat",
    "/badv",
    "/dooh",
    "/imp",
    "/imp/0",
    "/imp/0/id",
    "/imp/0/bidfloor",
    "/imp/0/bidfloorcur",
    "/imp/0/banner",
    "/imp/0/banner/w",
    "/imp/0/banner/h",
    "/imp/0/banner/format",
    "/imp/0/banner/format/0",
    "/imp/0/banner/format/0/w",
    "/imp/0/banner/format/0/h",
    "/imp/0/pmp",
    "/imp/0/pmp/private_auction",
    "/imp/1/video",
    "/imp/1/video/w",
    "/imp/1/video/h",
    "/imp/1/video/mimes",
    "/imp/1/video/minduration",
    "/imp/1/video/maxduration",
    "/imp/1/video/protocols",
    "/imp/1/video/protocol",
    "/imp/2/native",
    "/site",
    "/site/domain",
    "/site/page",
    "/site/cat",
    "/site/sectioncat",
    "/site/pagecat",
    "/site/content",
    "/site/content/cat",
    "/app",
    "/app/bundle",
    "/device",
    "/device/devicetype",
    "/device/os",
    "/device/connectiontype",
    "/device/ifa",
    "/device/geo",
    "/device/geo/country",
    "/device/geo/region",
    "/device/geo/city",
    "/device/geo/lat",
    "/device/geo/lon",
    "/user",
    "/user/id",
    "/user/buyeruid",
    "/user/yob",
    "/user/gender",
    "/user/keywords",
    "/user/kwarray",
    "/user/data",
    "/user/data/0/segment",
    "/user/data/0/segment/0/id",
    "/user/data/0/segment/0/name",
    "/user/geo",
    "/user/geo/country",
    "/user/consent",
    "/user/ext",
    "/user/ext/consent",
    "/regs",
    "/regs/gdpr",
    "/regs/ext",
    "/regs/ext/gdpr",
];

/// A request with every field of [`READ_FIELDS`] (but `/dooh`) set to a value of the right type.
fn full_request() -> Value {
    json!({
        "id": "full", "tmax": 500, "cur": ["USD"], "bcat": ["IAB25"], "badv": ["bad.example"],
        "imp": [
            {"id": "1", "bidfloor": 0.5, "bidfloorcur": "USD",
             "banner": {"w": 300, "h": 250, "format": [{"w": 300, "h": 250}]},
             "pmp": {"private_auction": 0}},
            {"id": "2", "video": {"w": 640, "h": 360, "mimes": ["video/mp4"], "minduration": 5,
             "maxduration": 30, "protocols": [2, 3], "protocol": 2}},
            {"id": "3", "native": {"request": "{}"}},
        ],
        "site": {"domain": "news.example", "page": "https://news.example/a", "cat": ["IAB12"],
                 "sectioncat": ["IAB12-1"], "pagecat": ["IAB12-2"], "content": {"cat": ["IAB12"]}},
        "app": {"bundle": "com.example.reader"},
        "device": {"devicetype": 4, "os": "iOS", "connectiontype": 2, "ifa": "ifa-1",
                   "geo": {"country": "USA", "region": "CA", "city": "Los Angeles",
                           "lat": 34.05, "lon": -118.24}},
        "user": {"id": "u-1", "buyeruid": "b-1", "yob": 1990, "gender": "F",
                 "keywords": "running,shoes", "kwarray": ["sports"],
                 "data": [{"segment": [{"id": "s-1", "name": "sports/outdoor"}]}],
                 "geo": {"country": "USA"}, "consent": "CO-consent", "ext": {"consent": "CO"}},
        "regs": {"gdpr": 0, "ext": {"gdpr": 0}},
    })
}

/// `value` with the field at `pointer` set to `to` (added when its parent object lacks it).
fn set(value: &mut Value, pointer: &str, to: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(key.to_owned(), to);
        }
        Some(Value::Array(items)) => {
            let at: usize = key.parse().expect("an array index");
            items[at] = to;
        }
        _ => panic!("{pointer}: no parent in the full request"),
    }
}

#[tokio::test]
async fn wrong_types_in_every_field_the_bidder_reads_give_400_or_an_answer_never_a_server_error() {
    let server = Server::start([("rect.toml", Campaign::cpm(2.0).banner(300, 250).video())]);
    let baseline = warm_baseline(&server).await;
    let full = full_request();
    assert!(
        server.bid(&full).await.is_some(),
        "the full request is bid on"
    );
    let wrong = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5),
        json!(1e300),
        json!(4_294_967_296u64),
        json!(""),
        json!("x"),
        json!([]),
        json!([[1]]),
        json!({}),
        json!({"a": [1]}),
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for pointer in READ_FIELDS {
        for value in &wrong {
            let mut request = full.clone();
            set(&mut request, pointer, value.clone());
            let what = format!("{pointer} = {value}");
            let (status, _, body) = server.post("/openrtb2/bid", request.to_string()).await;
            *statuses.entry(status.as_u16()).or_insert(0) += 1;
            match status {
                StatusCode::OK => {
                    let response = parse_json(&body);
                    let bids = bids(&response);
                    assert!(bids.len() <= 3, "{what}: {response}");
                    for bid in bids {
                        let impid = bid["impid"].as_str();
                        assert!(impid.is_some_and(|id| !id.is_empty()), "{what}: {response}");
                    }
                }
                StatusCode::NO_CONTENT => assert!(body.is_empty(), "{what}"),
                StatusCode::BAD_REQUEST => assert_error_body(&what, &body),
                other => panic!(
                    "{what}: answered {other}: {}",
                    String::from_utf8_lossy(&body)
                ),
            }
        }
    }
    eprintln!(
        "{} mistyped requests: {statuses:?}",
        READ_FIELDS.len() * wrong.len()
    );
    assert_recovered(&server, baseline, "mistyped fields").await;
}

#[tokio::test]
async fn gzip_and_deflate_bodies_are_bid_on_as_if_sent_plain() {
    let server = bidder();
    // Real requests: compressed, each gets what it gets plain.
    let corpus = std::path::Path::new(SIMPLE_BANNER)
        .parent()
        .expect("corpus dir");
    let mut compared = 0;
    for entry in std::fs::read_dir(corpus).expect("read the corpus") {
        let path = entry.expect("corpus entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let plain = std::fs::read(&path).expect("read a corpus request");
        let (status, _, body) = server.post("/openrtb2/bid", plain.clone()).await;
        let answer = exchange(
            &server,
            &bid_bytes("Content-Encoding: gzip\r\n", &gzip(&plain)),
        )
        .await
        .expect("an answer");
        let what = path.display();
        assert_eq!(answer.status, status.as_u16(), "{what}: {}", answer.body);
        if status == StatusCode::OK {
            let (plain, zipped) = (parse_json(&body), parse_json(answer.body.as_bytes()));
            assert_eq!(bids(&plain).len(), bids(&zipped).len(), "{what}");
        }
        compared += 1;
    }
    assert!(compared >= 50, "corpus missing? {compared} requests");

    let request = banner_request(300, 250).to_string();
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    zlib.write_all(request.as_bytes()).expect("deflate");
    let deflated = zlib.finish().expect("deflate");
    for (what, coding, body, status) in [
        ("gzip", "gzip", gzip(request.as_bytes()), 200),
        ("deflate", "deflate", deflated, 200),
        (
            "plain bytes said to be gzip",
            "gzip",
            request.clone().into_bytes(),
            400,
        ),
        ("brotli", "br", request.clone().into_bytes(), 415),
    ] {
        let answer = exchange(
            &server,
            &bid_bytes(format!("Content-Encoding: {coding}\r\n"), &body),
        )
        .await
        .expect("an answer");
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        if status == 200 {
            assert_eq!(bids(&parse_json(answer.body.as_bytes())).len(), 1, "{what}");
        } else {
            assert_error_body(what, answer.body.as_bytes());
        }
    }
}

#[tokio::test]
async fn a_request_with_1000_imps_gets_bids_for_the_first_64_only() {
    let server = bidder();
    let baseline = warm_baseline(&server).await;
    let imps: Vec<Value> = (0..1_000)
        .map(|i| banner_imp(&i.to_string(), 300, 250))
        .collect();
    for _ in 0..20 {
        let response = server.bid(&request(imps.clone())).await.expect("bids");
        let ids: std::collections::BTreeSet<&str> = bids(&response)
            .iter()
            .map(|b| b["impid"].as_str().expect("impid"))
            .collect();
        assert_eq!(ids.len(), 64, "one bid per imp, up to precis' imp bound");
        assert!(
            ids.iter()
                .all(|id| id.parse::<usize>().is_ok_and(|i| i < 64)),
            "{ids:?}"
        );
    }
    assert_recovered(&server, baseline, "1,000 imps").await;
}
