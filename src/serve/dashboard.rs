//! The live dashboard: `GET /` on the admin port. One self-contained page (`dashboard.html`:
//! inline style and script, no external fetch, which its Content-Security-Policy enforces) that
//! refreshes itself every two seconds from this port's `/status` (JSON) and `/metrics`: bid
//! requests per second, bid rate, p50 and p99 over the last interval, and each campaign's
//! delivery, rates, ROAS, spend against budget and KPI shortfalls, and the refused files.
//!
//! The page holds no figure itself, so it is served without the admin token; its script sends
//! the token (asked once, kept for the tab) with the routes that need it. Never add data to it.

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{CACHE_CONTROL, HeaderName, HeaderValue};

use super::answer::{Answer, with_body};

const PAGE: &str = include_str!("dashboard.html");

/// Only this page's own inline style and script, and requests back to the port that served it.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

/// `GET /` on the admin port.
pub(super) fn page() -> Answer {
    let mut answer = with_body(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from_static(PAGE.as_bytes()),
    );
    let headers = answer.headers_mut();
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    answer
}
