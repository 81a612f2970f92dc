//! The answers the routes give: status, headers and body built one way everywhere (errors as
//! `{"error": "..."}`, the impression pixel, the click redirect).
//!
//! Plain constructors: nothing here reads a request or any state.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, EXPIRES, HeaderValue, LOCATION};
use hyper::{Response, StatusCode};

pub type Answer = Response<Full<Bytes>>;

pub fn with_body(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut answer = Response::new(Full::new(body.into()));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
}

pub fn no_content() -> Answer {
    let mut answer = Response::new(Full::new(Bytes::new()));
    *answer.status_mut() = StatusCode::NO_CONTENT;
    answer
}

pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    with_body(status, "text/plain; charset=utf-8", body)
}

pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Answer {
    let body = serde_json::to_vec(value)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot write the answer: {e}\"}}").into_bytes());
    with_body(status, "application/json", body)
}

/// `{"error": "..."}` with `status`.
pub fn error(status: StatusCode, message: &str) -> Answer {
    json(status, &serde_json::json!({ "error": message }))
}

/// `{"error": "..."}` with `status` and `Connection: close`: the last answer on its connection,
/// which cannot carry another request (the rest of a body is still on the wire, or where the next
/// request starts is in doubt), said so that a client that pools connections does not reuse it.
pub fn closing(status: StatusCode, message: &str) -> Answer {
    let mut answer = error(status, message);
    answer
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    answer
}

/// A redirect to `location` (the click's landing page).
pub fn redirect(location: &str) -> Answer {
    let mut answer = no_content();
    *answer.status_mut() = StatusCode::FOUND;
    if let Ok(value) = HeaderValue::from_str(location) {
        answer.headers_mut().insert(LOCATION, value);
    }
    answer
}

/// A 1×1 transparent GIF that no cache keeps: the impression pixel.
pub fn pixel() -> Answer {
    const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let mut answer = with_body(StatusCode::OK, "image/gif", Bytes::from_static(GIF));
    answer.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    answer
        .headers_mut()
        .insert(EXPIRES, HeaderValue::from_static("0"));
    answer
}
