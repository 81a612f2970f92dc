//! Bad clients end to end: malformed, oversized and slow requests each get their answer (and are
//! counted in /metrics), unknown routes and methods are refused, and SIGTERM stops the bidder cleanly.

#[allow(dead_code)]
mod common;

use common::{Campaign, DEADLINE, Server, banner_request, parse_json};
use hyper::{Method, StatusCode};
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
    write: OwnedWriteHalf,
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
        let stream = TcpStream::connect(server.addr).await.expect("connect");
        let (read, write) = stream.into_split();
        Raw {
            read,
            write,
            buffer: Vec::new(),
        }
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
        let _ = self.write.write_all(bytes).await;
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
