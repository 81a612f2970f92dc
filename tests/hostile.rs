//! Bad clients end to end: malformed, oversized and slow requests each get their answer (and are
//! counted in /metrics), unknown routes and methods are refused, and SIGTERM stops the bidder cleanly.
//! Hostile and heavy traffic: truncated, deeply nested and mistyped JSON, 10 MB bodies and zip
//! bombs, header floods, slowloris, 10,000 held connections, 1,000 imps, pipelining, deadlines and
//! shedding. After each, the bidder still bids correctly and its memory is back near where it was.

#[allow(dead_code)]
mod common;

use std::io::Write;
use std::net::SocketAddr;

use common::{Campaign, DEADLINE, Server, banner_imp, banner_request, bids, parse_json, request};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Limits short enough for a test to outwait.
const SHORT_LIMITS: &str = "[limits]\nbody_timeout_ms = 300\nheader_timeout_ms = 300\n";

/// The one campaign every bidder here has: 2.0 CPM for 300x250.
fn rect() -> [(&'static str, Campaign); 1] {
    [("rect.toml", Campaign::cpm(2.0).banner(300, 250))]
}

fn bidder() -> Server {
    Server::start(rect())
}

/// A bidder with [`SHORT_LIMITS`].
fn impatient_bidder() -> Server {
    Server::start_configured(SHORT_LIMITS, rect())
}

/// Asserts that `body` is a JSON `{"error": "..."}` with a message; `what` names the case.
fn assert_error_body(what: &str, body: &[u8]) {
    let error = parse_json(body);
    assert!(
        error["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {error}"
    );
}

/// Asserts a `{"error": "..."}` JSON answer with this status.
fn assert_error(
    what: &str,
    answer: (StatusCode, hyper::HeaderMap, bytes::Bytes),
    expected: StatusCode,
) {
    let (status, headers, body) = answer;
    assert_eq!(
        status,
        expected,
        "{what}: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(headers["content-type"], "application/json", "{what}");
    assert_error_body(what, &body);
}

/// One HTTP/1.1 connection driven by hand, to send what a polite client never would.
struct Raw {
    read: OwnedReadHalf,
    /// `None` once handed to a writer task ([`Raw::streaming`]).
    write: Option<OwnedWriteHalf>,
    buffer: Vec<u8>,
}

/// One response as read off the wire; `head` is lower-cased.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    async fn connect(server: &Server) -> Raw {
        Raw::connect_to(server.addr).await
    }

    async fn connect_to(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (read, write) = stream.into_split();
        Raw {
            read,
            write: Some(write),
            buffer: Vec::new(),
        }
    }

    /// A new connection with `bytes` written on it by a task of their own, so that the answer
    /// can be read while they are still being sent (a server may answer a huge body early).
    async fn streaming(server: &Server, bytes: Vec<u8>) -> Raw {
        let mut raw = Raw::connect(server).await;
        if let Some(mut write) = raw.write.take() {
            tokio::spawn(async move {
                let _ = write.write_all(&bytes).await;
                write
            });
        }
        raw
    }

    /// A new connection with `bytes` sent on it.
    async fn sending(server: &Server, bytes: &[u8]) -> Raw {
        let mut raw = Raw::connect(server).await;
        raw.send(bytes).await;
        raw
    }

    /// Writes `bytes`. A server that has already answered may stop reading, so a failed write is
    /// not an error here: the answer (or the closed connection) is what the tests look at.
    async fn send(&mut self, bytes: &[u8]) {
        if let Some(write) = &mut self.write {
            let _ = write.write_all(bytes).await;
        }
    }

    /// Reads one response; `None` when the server closes the connection before a whole response
    /// head. Fails the test when the server does neither within [`DEADLINE`].
    async fn answer(&mut self) -> Option<Answer> {
        let read = tokio::time::timeout(DEADLINE, self.read_answer()).await;
        read.unwrap_or_else(|_| {
            panic!(
                "the server neither answered nor closed the connection; read: {:?}",
                String::from_utf8_lossy(&self.buffer)
            )
        })
    }

    async fn read_answer(&mut self) -> Option<Answer> {
        let end = loop {
            if let Some(at) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..end]).to_ascii_lowercase();
        let status = head
            .strip_prefix("http/1.1 ")
            .and_then(|s| s.get(..3)?.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP/1.1 response: {head:?}"));
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |n| n.trim().parse().expect("content-length"));
        while self.buffer.len() < end + length {
            assert!(self.fill().await, "response body cut short: {head:?}");
        }
        let body = String::from_utf8_lossy(&self.buffer[end..end + length]).into_owned();
        self.buffer.drain(..end + length);
        Some(Answer { status, head, body })
    }

    /// Reads more; false at the end of the stream (or a reset).
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.read.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }
}

/// A POST to the bid route announcing a body of `length` bytes.
fn bid_head(length: usize) -> String {
    format!(
        "POST /openrtb2/bid HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Sends `request` (`what`) on a new connection and asserts the answer is `status` with a JSON
/// error, and that it is the first request counted as `outcome`.
async fn assert_refused(server: &Server, what: &str, request: &[u8], status: u16, outcome: &str) {
    let mut raw = Raw::sending(server, request).await;
    let answer = raw
        .answer()
        .await
        .unwrap_or_else(|| panic!("no answer to {what}"));
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert_error_body(what, answer.body.as_bytes());
    assert_eq!(server.outcome_count(outcome).await, 1.0, "{what}");
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
async fn a_body_over_the_limit_gets_413_and_is_counted() {
    let server = bidder();
    // A real request padded with 300 KiB of whitespace: only its size is wrong.
    let padded = format!("{}{}", banner_request(300, 250), " ".repeat(300 * 1024));
    let request = format!("{}{padded}", bid_head(padded.len()));
    assert_refused(
        &server,
        "a 300 KiB body",
        request.as_bytes(),
        413,
        "too_large",
    )
    .await;

    // Just under the limit is fine.
    let fits = format!("{}{}", banner_request(300, 250), " ".repeat(200 * 1024));
    let (status, _, _) = server.post("/openrtb2/bid", fits).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.outcome_count("too_large").await, 1.0);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_413() {
    let server = bidder();
    // No Content-Length: the limit must hold while the body streams in.
    let chunk = " ".repeat(64 * 1024);
    let mut request = String::from(
        "POST /openrtb2/bid HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for _ in 0..5 {
        request += &format!("{:x}\r\n{chunk}\r\n", chunk.len());
    }
    request += "0\r\n\r\n";
    assert_refused(
        &server,
        "a 320 KiB body",
        request.as_bytes(),
        413,
        "too_large",
    )
    .await;
}

#[tokio::test]
async fn a_body_slower_than_the_body_timeout_gets_408_and_is_counted() {
    let server = impatient_bidder();
    // Headers promise 100 bytes; one arrives, then nothing.
    let stalled = format!("{}{{", bid_head(100));
    assert_refused(
        &server,
        "a stalled body",
        stalled.as_bytes(),
        408,
        "timeout",
    )
    .await;
    // A prompt client is still served.
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
}

#[tokio::test]
async fn a_connection_dropped_after_413_or_408_is_announced_with_connection_close() {
    // Exchanges keep connections open and reuse them. After a 413 or a 408 the bidder cannot know
    // where the next request would start, so it closes the connection; the answer must say so
    // (`connection: close`, RFC 9110 15.5.9), or the exchange sends its next bid request into a
    // closed connection and loses it.
    let server = impatient_bidder();
    let cases = [
        ("413", bid_head(300 * 1024)),
        ("408", format!("{}{{", bid_head(100))),
    ];
    for (what, request) in cases {
        let mut raw = Raw::sending(&server, request.as_bytes()).await;
        let answer = raw.answer().await.expect("an answer");
        assert_eq!(answer.status.to_string(), what, "{}", answer.body);
        let closed = raw.answer().await.is_none();
        assert!(closed, "{what}: the connection is closed after the answer");
        assert!(
            answer.head.contains("connection: close"),
            "{what} closes the connection without announcing it:\n{}",
            answer.head
        );
    }
    // After an answer to a whole request, even an error, the connection stays usable.
    let mut raw = Raw::sending(&server, format!("{}nope", bid_head(4)).as_bytes()).await;
    assert_eq!(raw.answer().await.expect("an answer").status, 400);
    raw.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let again = raw
        .answer()
        .await
        .expect("the connection is kept alive after a 400");
    assert_eq!((again.status, again.body.as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn headers_slower_than_the_header_timeout_get_the_connection_closed() {
    let server = impatient_bidder();
    let mut raw = Raw::sending(&server, b"POST /openrtb2/bid HTTP/1.1\r\nHost: 127.").await;
    // Closed without an answer, or with an error; never a success for half a request.
    if let Some(answer) = raw.answer().await {
        assert!(answer.status >= 400, "{} {}", answer.status, answer.body);
        assert!(raw.answer().await.is_none(), "closed after the answer");
    }
    let (status, _, _) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
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
async fn unknown_routes_get_404_and_wrong_methods_405() {
    let server = bidder();
    for path in ["/", "/openrtb2/bids", "/openrtb2/bid/extra", "/admin"] {
        assert_error(path, server.get(path).await, StatusCode::NOT_FOUND);
    }
    let wrong: &[(Method, &str)] = &[
        (Method::GET, "/openrtb2/bid"),
        (Method::PUT, "/openrtb2/bid"),
        (Method::POST, "/healthz"),
        (Method::POST, "/metrics"),
    ];
    for (method, path) in wrong {
        assert_error(
            &format!("{method} {path}"),
            server.request(method.clone(), path, "").await,
            StatusCode::METHOD_NOT_ALLOWED,
        );
    }
    // None of these is a bid request.
    let metrics = server.metrics().await;
    let total: f64 = metrics
        .iter()
        .filter(|(k, _)| k.starts_with("precis_bid_requests_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, 0.0, "{metrics:?}");
}

#[tokio::test]
async fn sigterm_stops_the_bidder_with_exit_status_0() {
    let mut server = bidder();
    // An idle keep-alive connection is open (the client's pool) when the signal arrives.
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
    let status = server.terminate().await;
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}; stderr:\n{}",
        server.log()
    );
    let log = server.log();
    assert!(log.contains("SIGTERM received"), "{log}");
}

/// What a hostile case may leave behind in resident memory once it is over: generous, so that the
/// allocator keeping freed pages does not make the test flaky, and far below a leak per request.
const MEMORY_SLACK: u64 = 64 << 20;

/// The real request the compression and truncation cases use.
const SIMPLE_BANNER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/openrtb-corpus/iab26__spec-6.2.1-simple-banner.json"
);

/// The bidder's resident memory once it has bid once (so that what is made on first use is in).
async fn warm_baseline(server: &Server) -> u64 {
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
    server.rss()
}

/// After a hostile case (`what`): the bidder still bids correctly, and its resident memory comes
/// back to within [`MEMORY_SLACK`] of `baseline`.
async fn assert_recovered(server: &Server, baseline: u64, what: &str) {
    let response = server
        .bid(&banner_request(300, 250))
        .await
        .unwrap_or_else(|| panic!("after {what}: no bid for the request the campaign targets"));
    let bids = bids(&response);
    assert_eq!(bids.len(), 1, "after {what}: {response}");
    assert_eq!(bids[0]["impid"], "1", "after {what}: {response}");
    common::assert_price(common::price_of(&bids[0]), 2.0);
    let rss = server
        .eventually(
            &format!("memory back near its baseline after {what}"),
            async || {
                let rss = server.rss();
                if rss < baseline + MEMORY_SLACK {
                    Ok(rss)
                } else {
                    Err(format!(
                        "{} MiB, baseline {} MiB",
                        rss >> 20,
                        baseline >> 20
                    ))
                }
            },
        )
        .await;
    eprintln!(
        "{what}: resident {} MiB after, baseline {} MiB",
        rss >> 20,
        baseline >> 20
    );
}

/// A bid request head with extra header lines (each ending in `\r\n`), then `body`.
fn bid_bytes(extra_headers: impl AsRef<[u8]>, body: &[u8]) -> Vec<u8> {
    let mut bytes =
        b"POST /openrtb2/bid HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            .to_vec();
    bytes.extend_from_slice(extra_headers.as_ref());
    bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// One request on a new connection, and its answer.
async fn exchange(server: &Server, bytes: &[u8]) -> Option<Answer> {
    Raw::sending(server, bytes).await.answer().await
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
async fn ten_megabyte_bodies_and_zip_bombs_get_413_and_leave_no_memory_behind() {
    let server = bidder();
    let baseline = warm_baseline(&server).await;
    let ten_mb = vec![b' '; 10 << 20];
    let mut chunked =
        b"POST /openrtb2/bid HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for chunk in ten_mb.chunks(1 << 20) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let bomb = gzip(&ten_mb);
    assert!(bomb.len() < 64 << 10, "10 MB of spaces gzip small");
    let cases = [
        ("10 MB with its length", bid_bytes("", &ten_mb)),
        ("10 MB chunked", chunked),
        (
            "a gzip bomb of 10 MB",
            bid_bytes("Content-Encoding: gzip\r\n", &bomb),
        ),
    ];
    let mut answered = 0;
    for (what, bytes) in cases {
        for _ in 0..3 {
            // The server answers and closes while the rest is still coming: its close can reset
            // the connection before the client reads the 413, so a closed connection will do.
            if let Some(answer) = Raw::streaming(&server, bytes.clone()).await.answer().await {
                assert_eq!(answer.status, 413, "{what}: {}", answer.body);
                assert_error_body(what, answer.body.as_bytes());
                answered += 1;
            }
        }
    }
    // A request whose connection hyper finds closed before its handler finishes is not counted.
    assert!(server.outcome_count("too_large").await >= answered as f64);
    assert_recovered(&server, baseline, "10 MB bodies").await;
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
async fn header_floods_get_431_or_a_closed_connection_and_are_counted() {
    let server = bidder();
    let baseline = warm_baseline(&server).await;
    let many: String = (0..1_000)
        .map(|i| format!("X-Flood-{i}: {i}\r\n"))
        .collect();
    let huge = format!("X-Huge: {}\r\n", "a".repeat(100 * 1024));
    let long_uri = format!(
        "GET /healthz?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "q".repeat(100 * 1024)
    );
    let cases = [
        ("1,000 headers", bid_bytes(&many, b"{}")),
        ("a 100 KiB header", bid_bytes(&huge, b"{}")),
        ("a 100 KiB request line", long_uri.into_bytes()),
    ];
    for (what, bytes) in &cases {
        for _ in 0..10 {
            let mut raw = Raw::streaming(&server, bytes.clone()).await;
            if let Some(answer) = raw.answer().await {
                assert!(
                    [414, 431].contains(&answer.status),
                    "{what}: {} {}",
                    answer.status,
                    answer.body
                );
                assert!(
                    raw.answer().await.is_none(),
                    "{what}: closed after the answer"
                );
            }
        }
    }
    server
        .eventually("the floods counted", async || {
            let counted = server
                .metric("precis_connections_closed_total{reason=\"headers_too_large\"}")
                .await;
            if counted >= 30.0 {
                Ok(())
            } else {
                Err(format!("{counted}"))
            }
        })
        .await;
    assert_recovered(&server, baseline, "header floods").await;
}

#[tokio::test]
async fn slowloris_connections_are_closed_at_the_header_timeout_and_counted() {
    let server = impatient_bidder();
    let baseline = warm_baseline(&server).await;
    // 200 clients each send a byte of their head every 50 ms: the head timeout runs from its
    // first byte, so dribbling does not keep a connection.
    let mut attackers = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let Raw {
            mut read, write, ..
        } = Raw::connect(&server).await;
        let mut write = write.expect("a write half");
        attackers.spawn(async move {
            let head = b"POST /openrtb2/bid HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
            let _ = write.write_all(head).await;
            let mut every = tokio::time::interval(std::time::Duration::from_millis(50));
            let mut sink = [0u8; 1024];
            let dribble = async {
                loop {
                    tokio::select! {
                        _ = every.tick() => { let _ = write.write_all(b"a").await; }
                        read = read.read(&mut sink) => if matches!(read, Ok(0) | Err(_)) { break },
                    }
                }
            };
            tokio::time::timeout(DEADLINE, dribble).await.is_ok()
        });
    }
    // The attack is on: prompt clients are still served.
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
    while let Some(closed) = attackers.join_next().await {
        assert!(
            closed.expect("attacker task"),
            "a slow head kept its connection"
        );
    }
    let counted = server
        .metric("precis_connections_closed_total{reason=\"header_timeout\"}")
        .await;
    assert!(counted >= 200.0, "{counted}");
    assert_recovered(&server, baseline, "slowloris").await;
}

/// Opens `count` connections to `addr`, 100 at a time, and sends each a request line without its
/// end, so each is held open by a client slow to finish its head. Fails past 2 minutes.
async fn hold_connections(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let open = async {
        let mut held = Vec::with_capacity(count);
        while held.len() < count {
            let mut batch = tokio::task::JoinSet::new();
            for _ in 0..(count - held.len()).min(100) {
                batch.spawn(async move {
                    let mut stream = TcpStream::connect(addr).await.expect("connect");
                    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\n").await;
                    stream
                });
            }
            held.extend(batch.join_all().await);
        }
        held
    };
    let budget = std::time::Duration::from_secs(120);
    tokio::time::timeout(budget, open)
        .await
        .unwrap_or_else(|_| panic!("{count} connections not opened in {budget:?}"))
}

/// The server's open file descriptors: its connections, listener, log files and the like.
fn open_files(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("read /proc/PID/fd")
        .count()
}

#[tokio::test]
async fn ten_thousand_held_connections_do_not_stop_the_bidder() {
    let held_count = 10_000;
    // The test's own side of the connections; precis raises its own limit at start.
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("raise the open files limit");
    assert!(
        limit > held_count as u64 + 100,
        "open files limit {limit}: too low for this test"
    );
    // Freed memory is handed back at each maintenance pass: every second here.
    let server = Server::start_configured(
        "[limits]\nheader_timeout_ms = 120000\n[learning]\nreprice_secs = 1\n",
        rect(),
    );
    let baseline = warm_baseline(&server).await;
    let files = open_files(&server);
    let held = hold_connections(server.addr, held_count).await;
    // While they are held: a new client is served.
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
    eprintln!(
        "{held_count} held connections: resident {} MiB (baseline {} MiB)",
        server.rss() >> 20,
        baseline >> 20
    );
    drop(held);
    server
        .eventually("the held connections closed", async || {
            let open = open_files(&server);
            if open <= files + 10 {
                Ok(())
            } else {
                Err(format!("{open} open files, {files} before"))
            }
        })
        .await;
    assert_eq!(server.metric("precis_connections_refused_total").await, 0.0);
    assert_recovered(&server, baseline, "10,000 held connections").await;
}

#[tokio::test]
async fn connections_over_max_connections_are_closed_at_once_and_counted() {
    let server = Server::start_configured(
        "[limits]\nmax_connections = 8\nheader_timeout_ms = 120000\n",
        rect(),
    );
    let held = hold_connections(server.addr, 8).await;
    for _ in 0..5 {
        let mut over = Raw::sending(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            over.answer().await.is_none(),
            "a ninth connection is closed unanswered"
        );
    }
    drop(held);
    // Their places come back once the server sees them closed.
    let healthy = server
        .eventually("a connection served again", async || {
            let answer = Raw::sending(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .answer()
                .await;
            answer.map(|a| a.status).ok_or_else(|| "closed".to_owned())
        })
        .await;
    assert_eq!(healthy, 200);
    let refused = server.metric("precis_connections_refused_total").await;
    assert!(refused >= 5.0, "{refused}");
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
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

#[tokio::test]
async fn pipelined_requests_on_one_connection_are_answered_in_order() {
    let server = bidder();
    let bid = bid_bytes("", banner_request(300, 250).to_string().as_bytes());
    let unmatched = bid_bytes("", banner_request(320, 50).to_string().as_bytes());
    let mut burst = Vec::new();
    for part in [
        &bid[..],
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        &unmatched,
        &bid_bytes("", b"nope"),
        &bid_bytes(
            "Content-Encoding: gzip\r\n",
            &gzip(banner_request(300, 250).to_string().as_bytes()),
        ),
        &bid,
    ] {
        burst.extend_from_slice(part);
    }
    // All six in one write, before any answer is read.
    let mut raw = Raw::sending(&server, &burst).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let answer = raw.answer().await.expect("an answer per pipelined request");
        if answer.status == 200 && answer.head.contains("application/json") {
            assert_eq!(bids(&parse_json(answer.body.as_bytes())).len(), 1);
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [200, 200, 204, 400, 200, 200]);
    // And the connection is still good for more.
    raw.send(&bid).await;
    assert_eq!(raw.answer().await.expect("kept alive").status, 200);
}

#[tokio::test]
async fn a_request_that_cannot_be_answered_within_its_tmax_gets_204_and_is_counted_late() {
    let server = Server::start_configured("[limits]\ntmax_margin_ms = 1\n", rect());
    let with_tmax = |tmax: u64| common::with(banner_request(300, 250), json!({ "tmax": tmax }));
    // 1 ms less a 1 ms margin leaves nothing: never a bid, whatever the machine's speed.
    for _ in 0..3 {
        assert!(server.bid(&with_tmax(1)).await.is_none());
    }
    assert_eq!(server.outcome_count("late").await, 3.0);
    assert!(server.bid(&with_tmax(1_000)).await.is_some());
    assert!(
        server.bid(&banner_request(300, 250)).await.is_some(),
        "no tmax: the ceiling"
    );
    assert_eq!(server.outcome_count("bid").await, 2.0);
}

/// Starts as many stalled bodies as `[limits] max_in_flight` and waits until the bidder has them
/// all in flight: from then on, until they are dropped (or the body timeout), every place is
/// held, and a bid request is shed.
async fn fill_in_flight(server: &Server, slots: usize) -> Vec<Raw> {
    let mut stalled = Vec::new();
    for _ in 0..slots {
        stalled.push(Raw::sending(server, format!("{}{{", bid_head(100)).as_bytes()).await);
    }
    server
        .eventually("the stalled bodies in flight", async || {
            let in_flight = server.metric("precis_bids_in_flight").await;
            if in_flight == slots as f64 {
                Ok(())
            } else {
                Err(format!("{in_flight} in flight"))
            }
        })
        .await;
    assert!(
        server.bid(&banner_request(300, 250)).await.is_none(),
        "shed"
    );
    stalled
}

#[tokio::test]
async fn bid_requests_over_max_in_flight_are_shed_with_204_and_counted() {
    let server = Server::start_configured(
        "[limits]\nmax_in_flight = 1\nbody_timeout_ms = 60000\n",
        rect(),
    );
    let stalled = fill_in_flight(&server, 1).await;
    assert!(server.outcome_count("shed").await >= 1.0);
    drop(stalled);
    bidding_again(&server).await;
}

/// Waits until the bidder bids again: its in-flight places are given back.
async fn bidding_again(server: &Server) {
    server
        .eventually("bidding again", async || {
            match server.bid(&banner_request(300, 250)).await {
                Some(_) => Ok(()),
                None => Err("no bid".to_owned()),
            }
        })
        .await;
}

#[tokio::test]
async fn a_flood_over_the_in_flight_limit_gets_200_or_204_never_an_error_or_a_hang() {
    let server = Server::start_configured(
        "[limits]\nmax_in_flight = 2\nbody_timeout_ms = 60000\n",
        rect(),
    );
    let baseline = warm_baseline(&server).await;
    let stalled = fill_in_flight(&server, 2).await;
    let shed_before = server.outcome_count("shed").await;
    let bid = bid_bytes("", banner_request(300, 250).to_string().as_bytes());
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (addr, bid) = (server.addr, bid.clone());
        flood.spawn(async move {
            let mut raw = Raw::connect_to(addr).await;
            let mut statuses = Vec::new();
            for _ in 0..50 {
                raw.send(&bid).await;
                statuses.push(raw.answer().await.expect("an answer").status);
            }
            statuses
        });
    }
    let mut counts = std::collections::BTreeMap::new();
    while let Some(statuses) = flood.join_next().await {
        for status in statuses.expect("flood task") {
            *counts.entry(status).or_insert(0) += 1;
        }
    }
    eprintln!("flood answers by status: {counts:?}");
    assert!(counts.keys().all(|s| [200, 204].contains(s)), "{counts:?}");
    assert_eq!(counts.values().sum::<i32>(), 32 * 50);
    assert!(server.outcome_count("shed").await > shed_before);
    drop(stalled);
    bidding_again(&server).await;
    assert_recovered(&server, baseline, "a flood over the in-flight limit").await;
}
