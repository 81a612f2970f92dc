//! The exchange's routes, on the bid port: `POST /openrtb2/bid`, the exchange's notices `GET /win`
//! (`nurl`) and `GET /bill` (`burl`), the page's `GET /imp` (pixel) and `GET /click`, and the
//! advertiser's `GET|POST /conv`.
//!
//! The bid route decodes, normalises, runs the auction and encodes inline: microseconds of CPU
//! with nothing to wait on. Over `max_in_flight` a bid request gets 204 at once, its body unread;
//! past its deadline, 204 whatever the auction found. Event routes only read their parameters and
//! answer: what a notice means is the recorder's ([`crate::measure::recorder`]), and it never
//! waits for disk.

use std::collections::HashMap;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};

use super::admission::Deadline;
use super::answer::{Answer, error, no_content, pixel, redirect, with_body};
use super::body;
use super::layer::{Http, Unrouted};
use super::metrics::Outcome;
use crate::app::App;
use crate::auction::{self, Auctioned};
use crate::measure::recorder::Refusal;
use crate::request::facts::Facts;
use crate::request::openrtb;
use crate::token::TokenError;

/// Routes a request on the bid port; what is not an exchange route goes back to the caller.
pub(super) async fn route(
    http: &Http,
    app: &App,
    start: Instant,
    request: Request<Incoming>,
) -> Result<Answer, Unrouted> {
    let (recorder, store) = (&app.recorder, &app.store);
    let params = || params(request.uri().query());
    Ok(match (request.method(), request.uri().path()) {
        (&Method::POST, "/openrtb2/bid") => bid(http, app, start, request).await,
        (&Method::GET, notice @ ("/win" | "/bill" | "/imp")) => {
            let p = params();
            let (token, price) = (token(&p, "t"), p.get("price").map(String::as_str));
            let now = app.clock.now();
            let answered = match notice {
                "/win" => recorder.win(store, token, price, now).map(|_| no_content()),
                "/bill" => recorder.billing(store, token, price, now).map(|_| pixel()),
                // The page's pixel: a price on it is never read.
                _ => recorder.impression(store, token, now).map(|_| pixel()),
            };
            answered.unwrap_or_else(|refusal| refused(&refusal))
        }
        (&Method::GET, "/click") => {
            match recorder.click(store, token(&params(), "t"), app.clock.now()) {
                Ok(click) => {
                    if let Err(refusal) = click.logged {
                        tracing::warn!("click not logged: {refusal}");
                    }
                    redirect(&click.landing)
                }
                Err(refusal) => refused(&refusal),
            }
        }
        (&Method::GET | &Method::POST, "/conv") => conversion(http, app, request).await,
        (_, "/openrtb2/bid" | "/win" | "/bill" | "/imp" | "/click" | "/conv") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        (method, path) => return Err((method.clone(), path.to_owned())),
    })
}

/// `POST /openrtb2/bid`, counted by outcome. Over `max_in_flight`, 204 at once, the body unread.
async fn bid(http: &Http, app: &App, start: Instant, request: Request<Incoming>) -> Answer {
    let (outcome, answer) = match http.in_flight.enter() {
        None => (Outcome::Shed, no_content()),
        Some(_slot) => bid_on(http, app, start, request).await,
    };
    match outcome {
        Outcome::Bid | Outcome::NoBid => http.metrics.answered(outcome, start.elapsed()),
        _ => http.metrics.count(outcome),
    }
    answer
}

/// Reads, decodes and bids on one request. Past its deadline the answer is 204, whatever the
/// auction found: a late bid is lost anyway. (Its budget reservations and frequency holds then
/// lapse after `hold_secs`, as those of a bid that did not win.)
async fn bid_on(
    http: &Http,
    app: &App,
    start: Instant,
    request: Request<Incoming>,
) -> (Outcome, Answer) {
    let body = match body::read(request, http.limits.max_body_bytes, &http.limits).await {
        Err(refused) => return refused,
        Ok(body) => body,
    };
    let request = match openrtb::decode(&body) {
        Err(e) => {
            return (
                Outcome::BadRequest,
                error(StatusCode::BAD_REQUEST, &e.to_string()),
            );
        }
        Ok(request) => request,
    };
    let deadline = Deadline::new(start, request.tmax, &http.limits);
    if deadline.passed() {
        return (Outcome::Late, no_content());
    }
    let snapshot = app.store.snapshot();
    let mut facts = Facts::from_request(&request, app.clock.now());
    app.profiles.enrich(&mut facts);
    let env = app.env(&snapshot);
    let index = Some(&*snapshot.index);
    match auction::run(&snapshot.ranked, index, &request, &facts, &env) {
        Some(_) if deadline.passed() => (Outcome::Late, no_content()),
        Some(Auctioned { response, claims }) => {
            app.recorder.bids(claims, facts.now);
            (
                Outcome::Bid,
                with_body(StatusCode::OK, "application/json", response.to_json()),
            )
        }
        None => (Outcome::NoBid, no_content()),
    }
}

/// `/conv`: the advertiser reports an order after a click, by query or form body.
async fn conversion(http: &Http, app: &App, request: Request<Incoming>) -> Answer {
    let mut params = params(request.uri().query());
    if request.method() == Method::POST {
        match body::read(request, http.limits.max_body_bytes, &http.limits).await {
            Ok(body) => params.extend(form_urlencoded::parse(&body).into_owned()),
            Err((_, answer)) => {
                app.recorder.unreadable();
                return answer;
            }
        }
    }
    let param = |name| params.get(name).map(String::as_str);
    let (value, order) = (param("value"), param("order"));
    let now = app.clock.now();
    match (app.recorder).conversion(&app.store, token(&params, "pclid"), value, order, now) {
        Ok(_) => no_content(),
        Err(refusal) => refused(&refusal),
    }
}

/// The parameters of an event URL.
fn params(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The token parameter `name` (empty when missing: refused as malformed).
fn token<'p>(params: &'p HashMap<String, String>, name: &str) -> &'p str {
    params.get(name).map_or("", String::as_str)
}

/// The answer to an event request turned away.
fn refused(refusal: &Refusal) -> Answer {
    let status = match refusal {
        Refusal::Token(TokenError::Expired) => StatusCode::GONE,
        Refusal::Token(TokenError::Malformed) => StatusCode::BAD_REQUEST,
        Refusal::Token(_) => StatusCode::FORBIDDEN,
        Refusal::Value | Refusal::ValueAbove { .. } => StatusCode::BAD_REQUEST,
        Refusal::Gone(..) => StatusCode::NOT_FOUND,
        Refusal::TooManyOrders => StatusCode::CONFLICT,
        Refusal::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut answer = error(status, &refusal.to_string());
    if matches!(refusal, Refusal::Busy(_)) {
        answer
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    answer
}
