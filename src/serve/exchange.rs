//! The exchange's routes, on the bid port: `POST /openrtb2/bid`, the exchange's notices `GET /win`
//! (`nurl`) and `GET /bill` (`burl`), the page's `GET /imp` (pixel) and `GET /click`, and the
//! advertiser's `GET|POST /conv`.
//!
//! The bid route decodes, normalises, runs the auction and encodes inline: microseconds of CPU
//! with nothing to wait on. No bid is 204 (or, with `no_bid = "nbr"`, 200 with the reason); over
//! `max_in_flight` a bid request gets 204 at once, its body unread; past its deadline, 204
//! whatever the auction found. Event routes only read their parameters and
//! answer: what a notice means is the recorder's ([`crate::measure::recorder`]). They answer 2xx
//! only once the event's line is on disk ([`acknowledged`]: an await, never a blocked thread),
//! 503 with `Retry-After` while the log cannot write; a click redirects the user either way.

use std::collections::HashMap;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};

use super::admission::Deadline;
use super::answer::{Answer, error, json, no_content, pixel, redirect, with_body};
use super::body;
use super::layer::{Http, Unrouted};
use super::metrics::Outcome;
use crate::app::App;
use crate::auction::{self, Auctioned, NoBid};
use crate::config::NoBidAnswer;
use crate::measure::recorder::{Recorded, Refusal};
use crate::request::openrtb::{self, BidRequest};
use crate::token::TokenError;

/// The paths this port serves (with the shared `/healthz`, `/readyz` and `/metrics`).
pub(super) const ROUTES: [&str; 6] = ["/openrtb2/bid", "/win", "/bill", "/imp", "/click", "/conv"];

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
            match notice {
                "/win" => {
                    let recorded = recorder.win(store, token, price, now);
                    acknowledged(app, recorded, no_content).await
                }
                "/bill" => {
                    let recorded = recorder.billing(store, token, price, now);
                    acknowledged(app, recorded, pixel).await
                }
                // The page's pixel: a price on it is never read.
                _ => {
                    let recorded = recorder.impression(store, token, now);
                    acknowledged(app, recorded, pixel).await
                }
            }
        }
        (&Method::GET, "/click") => {
            match recorder.click(store, token(&params(), "t"), app.clock.now()) {
                Ok(click) => {
                    let logged = match click.logged {
                        Ok(recorded) => recorder.durable(recorded).await,
                        Err(refusal) => Err(refusal),
                    };
                    if let Err(refusal) = logged {
                        tracing::warn!("click not logged: {refusal}");
                    }
                    redirect(&click.landing)
                }
                Err(refusal) => refused(&refusal),
            }
        }
        (&Method::GET | &Method::POST, "/conv") => conversion(http, app, request).await,
        (_, path) if ROUTES.contains(&path) => {
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
    let facts = app.facts(&request, app.clock.now());
    let env = app.env(&snapshot);
    let index = Some(&*snapshot.index);
    match auction::run(&snapshot.ranked, index, &request, &facts, &env) {
        Ok(_) if deadline.passed() => (Outcome::Late, no_content()),
        Ok(Auctioned { response, claims }) => {
            app.recorder.bids(claims, facts.now);
            (
                Outcome::Bid,
                with_body(StatusCode::OK, "application/json", response.to_json()),
            )
        }
        Err(reason) => (Outcome::NoBid, no_bid(http.no_bid, &request, reason)),
    }
}

/// The answer to a request without a bid: 204, or (`no_bid = "nbr"`) a BidResponse that says
/// why, with OpenRTB's closest reason code and precis' own.
fn no_bid(answer: NoBidAnswer, request: &BidRequest, reason: NoBid) -> Answer {
    match answer {
        NoBidAnswer::Empty => no_content(),
        NoBidAnswer::Nbr => json(
            StatusCode::OK,
            &serde_json::json!({
                "id": request.id.as_deref().unwrap_or_default(),
                "nbr": reason.nbr(),
                "ext": { "reason": reason.label() },
            }),
        ),
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
    let recorded =
        (app.recorder).conversion(&app.store, token(&params, "pclid"), value, order, now);
    acknowledged(app, recorded, no_content).await
}

/// The answer to an event request: `answer` once its line (a repeat's: the first copy's) is on
/// disk; the refusal's answer when it was refused or cannot be written now.
async fn acknowledged(
    app: &App,
    recorded: Result<Recorded, Refusal>,
    answer: fn() -> Answer,
) -> Answer {
    let written = match recorded {
        Ok(recorded) => app.recorder.durable(recorded).await,
        Err(refusal) => Err(refusal),
    };
    written.map_or_else(|refusal| refused(&refusal), |()| answer())
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
        Refusal::Busy(_) | Refusal::Unwritten(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut answer = error(status, &refusal.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        answer
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    answer
}
