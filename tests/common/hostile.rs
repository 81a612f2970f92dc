//! What the tests of hostile traffic (`bad_clients`, `hostile_payloads`, `overload`) share: the
//! bidder they attack, the JSON error a refusal must carry, and the check that after an attack
//! the bidder still bids correctly and its memory is back near where it was. A check here must
//! never be loosened to suit one caller: a case that expects less says so where it runs.

use bytes::Bytes;
use hyper::{HeaderMap, StatusCode};

use super::{Campaign, Server, assert_price, banner_request, bids, parse_json, price_of};

/// The one campaign every bidder here has: 2.0 CPM for 300x250.
pub fn rect() -> [(&'static str, Campaign); 1] {
    [("rect.toml", Campaign::cpm(2.0).banner(300, 250))]
}

pub fn bidder() -> Server {
    Server::start(rect())
}

/// Asserts that `body` is a JSON `{"error": "..."}` with a message; `what` names the case.
pub fn assert_error_body(what: &str, body: &[u8]) {
    let error = parse_json(body);
    assert!(
        error["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {error}"
    );
}

/// Asserts a `{"error": "..."}` JSON answer with this status.
pub fn assert_error(what: &str, answer: (StatusCode, HeaderMap, Bytes), expected: StatusCode) {
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

/// What a hostile case may leave behind in resident memory once it is over: generous, so that the
/// allocator keeping freed pages does not make the test flaky, and far below a leak per request.
const MEMORY_SLACK: u64 = 64 << 20;

/// The bidder's resident memory once it has bid once (so that what is made on first use is in).
pub async fn warm_baseline(server: &Server) -> u64 {
    assert!(server.bid(&banner_request(300, 250)).await.is_some());
    server.rss()
}

/// After a hostile case (`what`): the bidder still bids correctly, and its resident memory comes
/// back to within [`MEMORY_SLACK`] of `baseline`.
pub async fn assert_recovered(server: &Server, baseline: u64, what: &str) {
    let response = server
        .bid(&banner_request(300, 250))
        .await
        .unwrap_or_else(|| panic!("after {what}: no bid for the request the campaign targets"));
    let bids = bids(&response);
    assert_eq!(bids.len(), 1, "after {what}: {response}");
    assert_eq!(bids[0]["impid"], "1", "after {what}: {response}");
    assert_price(price_of(&bids[0]), 2.0);
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
