//! Reading a request body within its limits: a size (413, announced by `Content-Length` or found
//! while reading, compressed bodies counted once inflated), a time (408) and a coding (415 for one
//! precis does not read).
//!
//! It never holds more than the limit, never waits past the body timeout, and never looks at what
//! the bytes mean.

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::Request;
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_LENGTH, HeaderValue};

use super::answer::{Answer, closing, error};
use super::encoding::{Coding, CodingError};
use super::metrics::Outcome;
use crate::config::Limits;

/// The request body, within `limit` bytes and the body timeout of `limits`, decompressed when it
/// says it is (within the same size limit). When it cannot be read whole, the answer says
/// `Connection: close`: the rest of the body is still on the wire, so the connection cannot carry
/// another request, and a client that pools connections must know not to reuse it.
pub async fn read(
    request: Request<Incoming>,
    limit: usize,
    limits: &Limits,
) -> Result<Bytes, (Outcome, Answer)> {
    let refuse = |outcome, status, message: &str| (outcome, closing(status, message));
    let too_large = || {
        refuse(
            Outcome::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body over {limit} bytes"),
        )
    };
    let coding = request
        .headers()
        .get(CONTENT_ENCODING)
        .map(HeaderValue::as_bytes);
    let coding = match Coding::parse(coding) {
        Ok(coding) => coding,
        Err(e) => {
            return Err(refuse(
                Outcome::BadRequest,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &e.to_string(),
            ));
        }
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(request.into_body(), limit).collect();
    match tokio::time::timeout(limits.body_timeout(), collect).await {
        Err(_) => Err(refuse(
            Outcome::Timeout,
            StatusCode::REQUEST_TIMEOUT,
            "body not received in time",
        )),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(refuse(
            Outcome::BadRequest,
            StatusCode::BAD_REQUEST,
            &format!("cannot read body: {e}"),
        )),
        Ok(Ok(body)) => match coding.decode(body.to_bytes(), limit) {
            Ok(body) => Ok(body),
            Err(CodingError::TooLarge(_)) => Err(too_large()),
            // Read whole: the connection can carry the next request.
            Err(e) => Err((
                Outcome::BadRequest,
                error(StatusCode::BAD_REQUEST, &e.to_string()),
            )),
        },
    }
}
