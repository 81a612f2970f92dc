//! Bad clients end to end: HTTP misbehaviour, whatever the body holds. Bodies over the size limit
//! (announced, chunked, 10 MB, gzip bombs) get 413 and bodies slower than the body timeout 408,
//! each announced with `connection: close`; heads slower than the header timeout and slowloris get
//! their connection closed; heads past 100 headers or 64 KiB get 431, malformed heads, HTTP/1.1
//! without `Host` and requests with both `Content-Length` and `Transfer-Encoding` 400, each
//! before the close; `HEAD` is answered as `GET` without a body; pipelined requests are answered
//! in order; unknown routes and wrong methods are refused; an idle keep-alive connection does not
//! hold up SIGTERM.
//! Each refusal is counted in /metrics, and after the heavy ones the bidder still bids correctly
//! and its memory is back near where it was.

#[allow(dead_code)]
mod common;

use common::hostile::{
    assert_error, assert_error_body, assert_recovered, bidder, rect, warm_baseline,
};
use common::wire::{Raw, bid_bytes, bid_head, gzip};
use common::{DEADLINE, Server, banner_request, bids, parse_json};
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Limits short enough for a test to outwait.
const SHORT_LIMITS: &str = "[limits]\nbody_timeout_ms = 300\nheader_timeout_ms = 300\n";

/// A bidder with [`SHORT_LIMITS`].
fn impatient_bidder() -> Server {
    Server::start_configured(SHORT_LIMITS, rect())
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

/// The most headers a request may have, and the most bytes its head may take.
const MAX_HEADERS: usize = 100;
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A bid request with exactly `count` headers (its own three among them).
fn bid_with_headers(count: usize) -> Vec<u8> {
    let extra: String = (3..count)
        .map(|i| format!("X-Extra-{i}: {i}\r\n"))
        .collect();
    bid_bytes(extra, banner_request(300, 250).to_string().as_bytes())
}

/// `GET /healthz` with a head of exactly `bytes` bytes, made up by a padding header.
fn healthz_of_length(bytes: usize) -> String {
    let head = |pad: &str| format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n");
    head(&"p".repeat(bytes - head("").len()))
}

/// Asserts the answer on `raw` is `status`, then that the connection is closed after it: the
/// answer.
async fn assert_answered_then_closed(
    what: &str,
    mut raw: Raw,
    status: u16,
) -> common::wire::Answer {
    let answer = raw
        .answer()
        .await
        .unwrap_or_else(|| panic!("{what}: closed without an answer"));
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert!(
        answer.head.contains("connection: close"),
        "{what}: the close is not announced:\n{}",
        answer.head
    );
    assert!(raw.answer().await.is_none(), "{what}: closed after it");
    answer
}

/// Polls until `precis_connections_closed_total{reason}` reads `expected`.
async fn assert_closed_count(server: &Server, reason: &str, expected: f64) {
    let series = format!("precis_connections_closed_total{{reason=\"{reason}\"}}");
    server
        .eventually(&format!("{reason} counted"), async || {
            let counted = server.metric(&series).await;
            (counted == expected)
                .then_some(())
                .ok_or(format!("{counted} of {expected}"))
        })
        .await;
}

#[tokio::test]
async fn heads_past_100_headers_or_64_kib_get_431_and_are_counted() {
    let server = bidder();
    let baseline = warm_baseline(&server).await;
    let ask = async |bytes: &[u8]| Raw::sending(&server, bytes).await.answer().await;

    // At the limits: served.
    let answer = ask(&bid_with_headers(MAX_HEADERS))
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200, "{MAX_HEADERS} headers: {}", answer.body);
    let answer = ask(healthz_of_length(MAX_HEAD_BYTES).as_bytes()).await;
    let answer = answer.expect("an answer");
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok\n"));

    // One header or one byte more, and floods far past them: 431 (RFC 6585: the client learns
    // why, rather than retrying the same head into a closed connection), then the close, and
    // each counted.
    let many: String = (0..1_000)
        .map(|i| format!("X-Flood-{i}: {i}\r\n"))
        .collect();
    let huge = format!("X-Huge: {}\r\n", "a".repeat(100 * 1024));
    let long_uri = format!(
        "GET /healthz?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "q".repeat(100 * 1024)
    );
    let cases = [
        ("one header too many", bid_with_headers(MAX_HEADERS + 1)),
        (
            "a head one byte too long",
            healthz_of_length(MAX_HEAD_BYTES + 1).into_bytes(),
        ),
        ("1,000 headers", bid_bytes(&many, b"{}")),
        ("a 100 KiB header", bid_bytes(&huge, b"{}")),
        ("a 100 KiB request line", long_uri.into_bytes()),
    ];
    const TRIES: usize = 10;
    for (what, bytes) in &cases {
        for _ in 0..TRIES {
            // Streamed: the server answers before all is sent.
            let raw = Raw::streaming(&server, bytes.clone()).await;
            assert_answered_then_closed(what, raw, 431).await;
        }
    }
    assert_closed_count(&server, "headers_too_large", (cases.len() * TRIES) as f64).await;
    assert_recovered(&server, baseline, "header floods").await;
}

#[tokio::test]
async fn malformed_heads_get_400_before_the_close_and_are_counted() {
    let server = bidder();
    let cases: [(&str, &[u8]); 5] = [
        ("not HTTP at all", b"GARBAGE\r\n\r\n"),
        ("a bad method", b"G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("HTTP/2 as a version", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"),
        ("a header without a colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"),
        (
            "two different lengths",
            b"POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        ),
    ];
    for (what, bytes) in cases {
        assert_answered_then_closed(what, Raw::sending(&server, bytes).await, 400).await;
    }
    assert_closed_count(&server, "malformed", cases.len() as f64).await;
    let (status, _, _) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_http_1_1_request_without_one_host_gets_400_and_is_counted() {
    let server = bidder();
    let bid = banner_request(300, 250).to_string();
    let no_host = format!(
        "POST /openrtb2/bid HTTP/1.1\r\nContent-Length: {}\r\n\r\n{bid}",
        bid.len()
    );
    let two_hosts = "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    let cases = [
        ("a bid request without Host", no_host.into_bytes()),
        ("two Host headers", two_hosts.as_bytes().to_vec()),
        (
            "no Host on /metrics",
            b"GET /metrics HTTP/1.1\r\n\r\n".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let raw = Raw::sending(&server, &bytes).await;
        let answer = assert_answered_then_closed(what, raw, 400).await;
        assert_error_body(what, answer.body.as_bytes());
    }
    assert_closed_count(&server, "no_host", 3.0).await;
    // None of them reached the bid route.
    assert_eq!(server.outcome_count("bid").await, 0.0);
    // HTTP/1.0 has no Host requirement: served.
    let mut raw = Raw::sending(&server, b"GET /healthz HTTP/1.0\r\n\r\n").await;
    let answer = raw.answer().await.expect("an answer over HTTP/1.0");
    assert_eq!(answer.body, "ok\n");
}

#[tokio::test]
async fn a_request_with_both_lengths_gets_400_and_the_close_whatever_is_pipelined_after_it() {
    let server = bidder();
    let bid = banner_request(300, 250).to_string();
    let chunked = format!("{:x}\r\n{bid}\r\n0\r\n\r\n", bid.len());
    let healthz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    // Content-Length covers the chunked body's first bytes only: a server that went by it would
    // read the rest as the next request (RFC 9112 §11.2).
    let heads = [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "transfer-encoding: chunked\r\ncontent-length: 4\r\n",
    ];
    for framing in heads {
        let smuggled =
            format!("POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\n{framing}\r\n{chunked}{healthz}");
        // Behind a served request on the same connection, as on a pooled one.
        let burst = format!("{healthz}{smuggled}");
        let mut raw = Raw::sending(&server, burst.as_bytes()).await;
        let first = raw
            .answer()
            .await
            .expect("the request before it is answered");
        assert_eq!(first.body, "ok\n");
        let answer = raw.answer().await.expect("an answer, not a bare close");
        assert_eq!(answer.status, 400, "{framing}: {}", answer.body);
        assert_error_body(framing, answer.body.as_bytes());
        assert!(answer.head.contains("connection: close"), "{}", answer.head);
        assert!(
            raw.answer().await.is_none(),
            "{framing}: nothing after it is served"
        );
    }
    assert_closed_count(&server, "length_and_chunked", 2.0).await;
    assert_eq!(server.outcome_count("bid").await, 0.0, "no bid was made");

    // Chunked alone is framing, not smuggling: served, and so is what is pipelined after it.
    let request = format!(
        "POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}{healthz}"
    );
    let mut raw = Raw::sending(&server, request.as_bytes()).await;
    let answer = raw.answer().await.expect("a bid");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(raw.answer().await.expect("the next one").body, "ok\n");
}

#[tokio::test]
async fn head_on_every_get_route_answers_as_get_without_a_body() {
    let server = bidder();
    // Each route's GET answer, then its HEAD answer on one keep-alive connection: a body sent
    // after a HEAD answer would be read as the start of the next answer and break the sequence.
    let mut raw = Raw::connect(&server).await;
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/win?t=forged",
        "/nowhere",
    ] {
        raw.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await;
        let get = raw.answer().await.expect("an answer to GET");
        raw.send(format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await;
        let head = raw.answer_to_head().await.expect("an answer to HEAD");
        assert_eq!(head.status, get.status, "HEAD {path}");
        let header = |answer: &common::wire::Answer, name: &str| {
            let line = answer.head.lines().find(|l| l.starts_with(name));
            line.map(str::to_owned)
        };
        for name in ["content-type:", "content-length:"] {
            if path != "/metrics" || name != "content-length:" {
                assert_eq!(
                    header(&head, name),
                    header(&get, name),
                    "HEAD {path}: {name}"
                );
            }
        }
    }
    raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let last = raw.answer().await.expect("the connection is still in step");
    assert_eq!((last.status, last.body.as_str()), (200, "ok\n"));
    // Not a GET route: HEAD is refused as GET is.
    let (status, _, _) = server.request(Method::HEAD, "/openrtb2/bid", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // On the admin port too.
    let (status, _, body) = server.admin_request(Method::HEAD, "/status", None).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
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
