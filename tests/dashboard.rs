//! The live dashboard (`GET /` on the admin port) in a real headless browser: the page loads with
//! no error, no console message and nothing fetched from elsewhere, and shows the figures of the
//! bidder that served it.
//!
//! Needs Chromium (Debian: `apt-get install chromium`); `.ci/run` installs it when missing.

#[allow(dead_code)]
mod common;

use common::browser::browse;
use common::{Setup, bids, local, str_of};
use hyper::StatusCode;
use serde_json::Value;

const REQUEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openrtb-corpus/iab26__spec-6.2.1-simple-banner.json"
);

/// The text of the element with `id` in `dom` (no nested elements).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let start = at + dom[at..].find('>').expect("the tag's end") + 1;
    let end = start + dom[start..].find('<').expect("a closing tag");
    &dom[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_live_figures_in_a_browser_without_an_error() {
    let server = Setup::sample().start();
    let request: Value =
        serde_json::from_slice(&std::fs::read(REQUEST).expect("fixture")).expect("JSON");
    let sent = 5;
    let mut nurl = None;
    for _ in 0..sent {
        let response = server.bid(&request).await.expect("the sample bids");
        nurl = Some(str_of(&bids(&response)[0], "nurl").to_owned());
    }
    let win = local(&nurl.expect("a bid").replace("${AUCTION_PRICE}", "1.00"));
    let (status, _, body) = server.get(&win).await;
    assert!(status.is_success(), "{win}: {status} {body:?}");

    let (dom, console) = browse(&format!("http://{}/", server.admin), 5000);
    assert!(console.is_empty(), "the page logged: {console:#?}");
    assert!(dom.contains("<body data-state=\"live\">"), "{dom}");
    assert_eq!(text_of(&dom, "errors"), "", "{dom}");
    assert_eq!(text_of(&dom, "state"), "live");
    assert_eq!(text_of(&dom, "requests"), sent.to_string());
    assert!(text_of(&dom, "events").starts_with("1 / "), "{dom}");
    // Every live campaign has its row; the sample refuses no file.
    let status = server.status().await;
    let live = status["live"].as_array().expect("live");
    assert!(live.len() >= 6, "{status}");
    for id in live {
        let id = id.as_str().expect("an id");
        assert!(
            dom.contains(&format!("data-campaign=\"{id}\"")),
            "{id}: {dom}"
        );
    }
    assert!(
        dom.contains("<tbody id=\"refused\"><tr><td>none</td></tr></tbody>"),
        "{dom}"
    );
}

#[tokio::test]
async fn the_page_needs_no_token_but_its_figures_do() {
    let token = "dashboard-test-admin-token";
    let server = Setup::sample().env("PRECIS_ADMIN_TOKEN", token).start();
    let (status, headers, body) = server.admin_get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().expect("ascii");
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    // The page is the same for everyone: no figure in it.
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("<title>precis</title>"));
    assert!(!page.contains("northwind"), "the page carries no campaign");
    for route in ["/status", "/metrics"] {
        let (status, _, _) = server.admin_get(route).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{route} without the token"
        );
    }
}
