//! The HTTP server: hyper on tokio, its routes, and the limits that keep bad clients harmless.
//!
//! Two listeners. The bid port serves exchanges: `POST /openrtb2/bid` and the event routes
//! `GET /win`, `GET /imp`, `GET /click`, `GET|POST /conv`. The admin port (loopback by default,
//! behind a bearer token when one is configured) serves operators: `GET /status`,
//! `POST /admin/reload`, `POST /admin/clock` (moves a simulated clock) and the profile API under
//! `/users/` ([`crate::audience::profiles::api`]); the bid port never does.
//! Both serve `GET /healthz` (liveness), `GET /readyz` (503 until campaigns are loaded) and
//! `GET /metrics`. The bid route decodes, normalises, runs the auction and
//! encodes inline: it is microseconds of CPU with nothing to wait on; event routes hand events to
//! the log's queue and never wait for disk. Reloads run on blocking threads. Every request gets an
//! answer (never a panic, never a hang): oversized bodies 413 (gzip and deflate bodies too, once
//! decompressed), other codings 415, slow bodies 408, slow, oversized or malformed heads a closed
//! connection; past `max_connections` a new bid-port connection is closed at once, past
//! `max_in_flight` or its deadline a bid request gets 204 (see `admission`). Bid outcomes, event
//! rejections and closed connections are counted.

pub mod admission;
pub mod cores;
pub mod encoding;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    EXPIRES, HeaderValue, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::auction::{self, Auctioned, Env, Urls};
use crate::audience::profiles::{self, Profiles};
use crate::book::frequency::Exposures;
use crate::book::learning;
use crate::book::ranking::Ranked;
use crate::book::store::{Snapshot, Store};
use crate::campaign::pricing::Currency;
use crate::campaign::{Campaign, Pacing};
use crate::clock::Clock;
use crate::config::Limits;
use crate::eventlog::{Event, Kind};
use crate::measure::recorder::{Recorded, Recorder, Refusal, revenue_usd, spend_usd};
use crate::metrics::{Closed, Metrics, Outcome, Rejection, Sources};
use crate::request::facts::Facts;
use crate::request::openrtb;
use crate::serve::admission::{Deadline, Gate};
use crate::serve::cores::Cores;
use crate::serve::encoding::{Coding, CodingError};
use crate::token::{Claims, Purpose, TokenError};

/// Everything a request handler reads.
pub struct App {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub urls: Urls,
    pub limits: Limits,
    pub recorder: Arc<Recorder>,
    pub exposures: Arc<Exposures>,
    pub clock: Arc<Clock>,
    /// What precis knows of users: their tags join their requests' own.
    pub profiles: Arc<Profiles>,
    /// The bulk profile files that feed `profiles`.
    pub profile_files: Arc<profiles::bulk::Feed>,
    /// The body limit of the profile API (`[profiles] max_batch_bytes`).
    pub max_batch_bytes: usize,
}

type Answer = Response<Full<Bytes>>;

/// How long in-flight requests get to finish after shutdown is asked for.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest request head (431 past it), and a connection's read buffer at most: bounds what
/// a client that floods headers holds per connection.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Headers in one request at most (431 past it).
const MAX_HEADERS: usize = 100;

/// The two listeners and who may use the admin one.
pub struct Ports {
    /// Exchanges: bids, event notices, health, readiness, metrics.
    pub bid: TcpListener,
    /// Operators: reloads, the simulated clock, detailed status (and health, readiness, metrics).
    pub admin: TcpListener,
    /// When set, every admin request must carry `Authorization: Bearer TOKEN`.
    pub admin_token: Option<String>,
    /// Header timeout, open connections and bid requests in flight at most.
    pub limits: Limits,
    /// Where accepted connections are served.
    pub cores: Cores,
}

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    Bid,
    Admin,
}

/// The application once campaigns are loaded; empty while they load (`/readyz` answers 503).
pub type Ready = Arc<std::sync::OnceLock<Arc<App>>>;

/// Serves both listeners until `shutdown` completes, then stops accepting and lets open requests
/// finish (up to [`DRAIN`]). Requests that arrive before `app` is set get 503, except `/healthz`.
pub async fn serve(
    ports: Ports,
    metrics: Arc<Metrics>,
    app: Ready,
    shutdown: impl Future<Output = ()>,
) {
    let Ports {
        bid,
        admin,
        admin_token,
        limits,
        cores,
    } = ports;
    let admin_token: Option<Arc<str>> = admin_token.map(Into::into);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout())
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true)
        .pipeline_flush(true);
    let connections = Gate::new(limits.max_connections);
    let in_flight = Gate::new(limits.max_in_flight);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (accepted, port) = tokio::select! {
            accepted = bid.accept() => (accepted, Port::Bid),
            accepted = admin.accept() => (accepted, Port::Admin),
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Exchanges' connections past the limit are closed at once, so the client learns now (and
        // tries another connection or server) instead of waiting in a backlog while its deadline
        // runs out. The admin port is not limited: an operator can always look in.
        let slot = match port {
            Port::Bid => match connections.enter() {
                Some(slot) => Some(slot),
                None => {
                    metrics.refused();
                    continue;
                }
            },
            Port::Admin => None,
        };
        let _ = stream.set_nodelay(true);
        let open = metrics.connection_opened();
        let (app, token, in_flight) = (app.clone(), admin_token.clone(), in_flight.clone());
        let service = service_fn(move |request| {
            // The head has just been read: a bid request's deadline counts from here.
            let start = Instant::now();
            let app = app.get().cloned();
            let (token, in_flight) = (token.clone(), in_flight.clone());
            async move {
                let (port, token) = (port, token.as_deref());
                let answer = handle(app.as_deref(), port, token, &in_flight, start, request);
                Ok::<_, Infallible>(answer.await)
            }
        });
        let watcher = graceful.watcher();
        let http = http.clone();
        let counted = metrics.clone();
        let serve = move |stream| async move {
            let connection = http.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                if let Some(why) = closed(&e) {
                    counted.closed(why);
                }
                tracing::debug!("connection from {peer}: {e}");
            }
            drop((open, slot));
        };
        match port {
            // Exchanges' connections run on the per-core runtimes, one thread each.
            Port::Bid => cores.deal(stream, serve),
            // Operators' stay on this multi-threaded runtime: admin work may take seconds (a
            // sweep of millions of profiles, `block_in_place`), which must never stall a core.
            Port::Admin => {
                tokio::spawn(serve(stream));
            }
        }
    }
    drop((bid, admin));
    tracing::info!(
        "shutting down: finishing {} open connections",
        graceful.count()
    );
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
}

/// Why hyper gave up on a connection mid-head, when it did.
fn closed(e: &hyper::Error) -> Option<Closed> {
    if e.is_timeout() {
        Some(Closed::HeaderTimeout)
    } else if e.is_parse_too_large() {
        Some(Closed::HeadersTooLarge)
    } else if e.is_parse() {
        Some(Closed::Malformed)
    } else {
        None
    }
}

/// Routes a request by listener: `/healthz`, `/readyz` and `/metrics` on both, the exchange's
/// routes on the bid port, [`admin`] routes on the admin port (behind the token when one is set).
async fn handle(
    app: Option<&App>,
    port: Port,
    token: Option<&str>,
    in_flight: &Arc<Gate>,
    start: Instant,
    request: Request<Incoming>,
) -> Answer {
    if port == Port::Admin && !authorized(token, request.headers()) {
        let mut answer = error(
            StatusCode::UNAUTHORIZED,
            "admin routes need the admin token",
        );
        answer
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return answer;
    }
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => return text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => return ready(app.is_some()),
        _ => {}
    }
    let Some(app) = app else {
        let mut answer = error(StatusCode::SERVICE_UNAVAILABLE, "loading campaigns");
        answer
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return answer;
    };
    let routed = match port {
        Port::Bid => exchange(app, in_flight, start, request).await,
        Port::Admin => admin(app, request).await,
    };
    routed.unwrap_or_else(|(method, path)| match (method, path.as_str()) {
        (Method::GET, "/metrics") => text(StatusCode::OK, metrics(app, in_flight)),
        (_, "/healthz" | "/readyz" | "/metrics") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    })
}

/// `/readyz`: 200 once the campaigns are loaded and the event log replayed, 503 before.
fn ready(loaded: bool) -> Answer {
    if loaded {
        text(StatusCode::OK, "ready\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "loading campaigns\n")
    }
}

/// Whether an admin request may pass: always without a token, else with `Bearer TOKEN`
/// (compared in constant time).
fn authorized(token: Option<&str>, headers: &hyper::HeaderMap) -> bool {
    let Some(token) = token else { return true };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// A request a router does not serve: its method and path, for the routes both ports share.
type Unrouted = (Method, String);

/// The exchange's routes, on the bid port.
async fn exchange(
    app: &App,
    in_flight: &Arc<Gate>,
    start: Instant,
    request: Request<Incoming>,
) -> Result<Answer, Unrouted> {
    Ok(match (request.method(), request.uri().path()) {
        (&Method::POST, "/openrtb2/bid") => bid(app, in_flight, start, request).await,
        (&Method::GET, "/win") => notice(app, Kind::Win, request.uri().query()),
        (&Method::GET, "/imp") => notice(app, Kind::Imp, request.uri().query()),
        (&Method::GET, "/click") => click(app, request.uri().query()),
        (&Method::GET | &Method::POST, "/conv") => conversion(app, request).await,
        (_, "/openrtb2/bid" | "/win" | "/imp" | "/click" | "/conv") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        (method, path) => return Err((method.clone(), path.to_owned())),
    })
}

/// The operator's routes, on the admin port only: the one place they are registered.
async fn admin(app: &App, request: Request<Incoming>) -> Result<Answer, Unrouted> {
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET, "/status") => {
            let now = app.clock.now();
            json(StatusCode::OK, status(app, &app.store.snapshot(), now))
        }
        (_, path) if path.starts_with("/users/") => users(app, request).await,
        (&Method::POST, "/admin/reload") => reload(app).await,
        (&Method::POST, "/admin/clock") => clock(app, request.uri().query()),
        (_, "/status" | "/admin/reload" | "/admin/clock") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        (method, path) => return Err((method.clone(), path.to_owned())),
    })
}

/// `/metrics`: the counters and what the rest of the bidder reports.
fn metrics(app: &App, in_flight: &Gate) -> String {
    app.metrics.render(&Sources {
        snapshot: &app.store.snapshot(),
        learned: app.store.learned(),
        log: &app.recorder.log.stats,
        bid_lines_dropped: app.recorder.bid_lines_dropped.load(Ordering::Relaxed),
        bids_in_flight: in_flight.held(),
        pacer: app.store.pacer(),
        exposures: &app.exposures,
        profiles: &app.profiles,
    })
}

/// `POST /openrtb2/bid`, counted by outcome. Over `max_in_flight`, 204 at once, the body unread.
async fn bid(
    app: &App,
    in_flight: &Arc<Gate>,
    start: Instant,
    request: Request<Incoming>,
) -> Answer {
    let (outcome, answer) = match in_flight.enter() {
        None => (Outcome::Shed, no_content()),
        Some(_slot) => bid_on(app, start, request).await,
    };
    match outcome {
        Outcome::Bid | Outcome::NoBid => app.metrics.answered(outcome, start.elapsed()),
        _ => app.metrics.count(outcome),
    }
    answer
}

/// Reads, decodes and bids on one request. Past its deadline the answer is 204, whatever the
/// auction found: a late bid is lost anyway. (Its budget reservations and frequency holds then
/// lapse after `hold_secs`, as those of a bid that did not win.)
async fn bid_on(app: &App, start: Instant, request: Request<Incoming>) -> (Outcome, Answer) {
    let body = match read_body(app, request, app.limits.max_body_bytes).await {
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
    let deadline = Deadline::new(start, request.tmax, &app.limits);
    if deadline.passed() {
        return (Outcome::Late, no_content());
    }
    let snapshot = app.store.snapshot();
    let mut facts = Facts::from_request(&request, app.clock.now());
    app.profiles.enrich(&mut facts);
    let env = Env {
        rates: app.store.rates(),
        urls: &app.urls,
        keys: &app.recorder.keys,
        pacer: app.store.pacer(),
        exposures: &app.exposures,
        audiences: &snapshot.audiences,
    };
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

/// The request body, within the size and time limits, decompressed when it says it is (within
/// the same size limit). When it cannot be read whole, the answer says `Connection: close`: the
/// rest of the body is still on the wire, so the connection cannot carry another request, and a
/// client that pools connections must know not to reuse it.
async fn read_body(
    app: &App,
    request: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, (Outcome, Answer)> {
    let refuse = |outcome, status, message: &str| {
        let mut answer = error(status, message);
        answer
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        (outcome, answer)
    };
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
    match tokio::time::timeout(app.limits.body_timeout(), collect).await {
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

/// The parameters of an event URL.
fn params(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// An amount sent as a parameter: a finite number of at least 0. An exchange that did not
/// substitute `${AUCTION_PRICE}` sends the macro itself, which is not one.
fn amount(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// `/win` and `/imp`: the exchange reports a win (price required) or a billable impression.
fn notice(app: &App, kind: Kind, query: Option<&str>) -> Answer {
    let params = params(query);
    let now = app.clock.now();
    let recorded = (|| {
        let claims = app.recorder.verify(
            params.get("t").map_or("", String::as_str),
            Purpose::Event,
            now,
        )?;
        // First price: the exchange cannot clear above what precis bid.
        let price = match params
            .get("price")
            .map(|text| amount(text).filter(|p| *p <= claims.bid_price * (1.0 + 1e-9)))
        {
            Some(Some(price)) => Some(price),
            Some(None) => return Err(Refusal::Price),
            None if kind == Kind::Imp => None,
            None => return Err(Refusal::Price),
        };
        let rates = app.store.rates();
        let mut event = Event::about(kind, &claims, now);
        event.price = price;
        if kind == Kind::Win {
            event.spend_usd = spend_usd(price.unwrap_or(0.0), &claims.cur, rates);
        }
        let snapshot = app.store.snapshot();
        let campaign = snapshot.campaign(&claims.campaign);
        if let Some(campaign) = campaign {
            event.revenue_usd = revenue_usd(kind, campaign, None, rates);
        }
        app.recorder.record(event, campaign.map(|c| &**c))
    })();
    match (kind, recorded) {
        (_, Err(refusal)) => refused(app, &refusal),
        (Kind::Imp, Ok(again)) => {
            app.metrics.event(kind, again == Recorded::Again);
            pixel()
        }
        (_, Ok(again)) => {
            app.metrics.event(kind, again == Recorded::Again);
            no_content()
        }
    }
}

/// `/click`: log the click and send the user on to the creative's landing page, with a click
/// token (`pclid`) the advertiser returns with a conversion. The destination comes from the
/// campaign file, never from the request: no open redirect.
fn click(app: &App, query: Option<&str>) -> Answer {
    let params = params(query);
    let now = app.clock.now();
    let claims = match app.recorder.verify(
        params.get("t").map_or("", String::as_str),
        Purpose::Event,
        now,
    ) {
        Ok(claims) => claims,
        Err(refusal) => return refused(app, &refusal),
    };
    let snapshot = app.store.snapshot();
    let campaign = snapshot.campaign(&claims.campaign);
    let creative = campaign.and_then(|c| c.creatives.iter().find(|k| k.id == claims.creative));
    let (Some(campaign), Some(creative)) = (campaign, creative) else {
        return refused(app, &Refusal::Gone(claims.campaign, claims.creative));
    };
    let mut event = Event::about(Kind::Click, &claims, now);
    event.revenue_usd = revenue_usd(Kind::Click, campaign, None, app.store.rates());
    match app.recorder.record(event, Some(campaign)) {
        Ok(again) => app.metrics.event(Kind::Click, again == Recorded::Again),
        // The user still gets where they clicked; the lost click is counted.
        Err(refusal) => {
            app.metrics.rejected(Rejection::Busy);
            tracing::warn!("click not logged: {refusal}");
        }
    }
    let pclid = app.recorder.keys.sign(&Claims {
        purpose: Purpose::Click,
        issued: u32::try_from(now.timestamp()).unwrap_or(0),
        ..claims
    });
    redirect(&with_param(&creative.landing, "pclid", &pclid))
}

/// `/conv`: the advertiser reports an order after a click, by query or form body.
async fn conversion(app: &App, request: Request<Incoming>) -> Answer {
    let mut params = params(request.uri().query());
    if request.method() == Method::POST {
        match read_body(app, request, app.limits.max_body_bytes).await {
            Ok(body) => params.extend(form_urlencoded::parse(&body).into_owned()),
            Err((_, answer)) => {
                app.metrics.rejected(Rejection::BadBody);
                return answer;
            }
        }
    }
    let now = app.clock.now();
    let recorded = (|| {
        let claims = app.recorder.verify(
            params.get("pclid").map_or("", String::as_str),
            Purpose::Click,
            now,
        )?;
        let value = params
            .get("value")
            .map(|v| amount(v).ok_or(Refusal::Value))
            .transpose()?;
        let mut event = Event::about(Kind::Conv, &claims, now);
        event.value = value;
        event.order = params.get("order").map(|o| o.chars().take(128).collect());
        let snapshot = app.store.snapshot();
        let campaign = snapshot.campaign(&claims.campaign);
        if let Some(campaign) = campaign {
            event.revenue_usd = revenue_usd(Kind::Conv, campaign, value, app.store.rates());
        }
        app.recorder.record(event, campaign.map(|c| &**c))
    })();
    match recorded {
        Ok(again) => {
            app.metrics.event(Kind::Conv, again == Recorded::Again);
            no_content()
        }
        Err(refusal) => refused(app, &refusal),
    }
}

/// The answer to an event request turned away, counted by reason.
fn refused(app: &App, refusal: &Refusal) -> Answer {
    let (why, status) = match refusal {
        Refusal::Token(TokenError::Expired) => (Rejection::Expired, StatusCode::GONE),
        Refusal::Token(TokenError::Malformed) => (Rejection::BadToken, StatusCode::BAD_REQUEST),
        Refusal::Token(_) => (Rejection::BadToken, StatusCode::FORBIDDEN),
        Refusal::Price | Refusal::Value => (Rejection::BadAmount, StatusCode::BAD_REQUEST),
        Refusal::Gone(..) => (Rejection::Gone, StatusCode::NOT_FOUND),
        Refusal::TooManyOrders => (Rejection::TooManyOrders, StatusCode::CONFLICT),
        Refusal::Busy(_) => (Rejection::Busy, StatusCode::SERVICE_UNAVAILABLE),
    };
    app.metrics.rejected(why);
    let mut answer = error(status, &refusal.to_string());
    if why == Rejection::Busy {
        answer
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    answer
}

/// `url` with `name=value` added to its query (before any fragment).
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, fragment) = url
        .split_once('#')
        .map_or((url, None), |(b, f)| (b, Some(f)));
    let separator = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{separator}{name}={value}");
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn redirect(location: &str) -> Answer {
    let mut answer = no_content();
    *answer.status_mut() = StatusCode::FOUND;
    if let Ok(value) = HeaderValue::from_str(location) {
        answer.headers_mut().insert(LOCATION, value);
    }
    answer
}

/// A 1×1 transparent GIF that no cache keeps: the impression pixel.
fn pixel() -> Answer {
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

async fn reload(app: &App) -> Answer {
    let store = app.store.clone();
    match tokio::task::spawn_blocking(move || store.reload()).await {
        Ok(Ok(snapshot)) => {
            app.metrics.reloaded(true);
            json(StatusCode::OK, status(app, &snapshot, app.clock.now()))
        }
        Ok(Err(e)) => {
            app.metrics.reloaded(false);
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot read campaign directory: {e}"),
            )
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("reload failed: {e}"),
        ),
    }
}

/// Forgets what time has expired as of `now`: events whose tokens can no longer arrive, budget
/// reservations no win claimed, frequency windows that are over. Walks maps: off the request path
/// (the periodic maintenance task, and `/admin/clock` after it moves a simulated clock).
pub fn expire(app: &App, now: DateTime<Utc>) {
    app.recorder.sweep(now);
    app.store.pacer().sweep(now);
    app.exposures.sweep(now);
    app.profiles.sweep(now);
}

/// The profile API under `/users/`, on the admin port (it writes what campaigns target).
/// A batch may be larger than a bid request: its body limit is `[profiles] max_batch_bytes`.
async fn users(app: &App, request: Request<Incoming>) -> Answer {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let limit = app.limits.max_body_bytes.max(app.max_batch_bytes);
    let body = match read_body(app, request, limit).await {
        Ok(body) => body,
        Err((_, answer)) => return answer,
    };
    // A batch of thousands of updates is parsed and applied off the runtime's threads, which
    // answer bids meanwhile.
    let (store, now) = (app.profiles.clone(), app.clock.now());
    let handled = tokio::task::spawn_blocking(move || {
        profiles::api::handle(&store, &method, &path, query.as_deref(), &body, now)
    })
    .await;
    match handled {
        Ok((status, answer)) => json(status, answer),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `POST /admin/clock?now=RFC3339`: moves a simulated clock forward, then [`expire`]s what the
/// new time has expired, as the periodic sweep would.
fn clock(app: &App, query: Option<&str>) -> Answer {
    // A `+` of an offset sent unencoded arrives as a space.
    let Some(to) = params(query)
        .get("now")
        .and_then(|t| DateTime::parse_from_rfc3339(&t.replace(' ', "+")).ok())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "give the time to move to as ?now=RFC3339",
        );
    };
    match app.clock.advance_to(to.to_utc()) {
        Ok(now) => {
            // Sweeps walk maps (millions of profiles take seconds): this worker's other tasks
            // move to another meanwhile.
            tokio::task::block_in_place(|| expire(app, now));
            json(
                StatusCode::OK,
                serde_json::json!({ "now": now.to_rfc3339_opts(SecondsFormat::AutoSi, true) }),
            )
        }
        Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
    }
}

/// What `/status` shows: which campaigns are live and which files were refused, and why; and
/// the profile store.
pub fn status(app: &App, snapshot: &Snapshot, now: DateTime<Utc>) -> serde_json::Value {
    let store = &*app.store;
    // Each live campaign's current price, what it measured, and the KPIs it falls short of.
    let campaigns: Vec<_> = snapshot
        .ranked
        .iter()
        .map(
            |Ranked {
                 campaign,
                 ecpm,
                 creatives,
                 ..
             }| {
                let learned = store.learned();
                let counts = learned.counts(&campaign.id);
                // Best first: the order creatives are served in when several fit.
                let creatives: Vec<_> = creatives
                    .iter()
                    .filter_map(|&i| campaign.creatives.get(i))
                    .map(|k| {
                        let c = learned.creative_counts(&campaign.id, &k.id);
                        serde_json::json!({
                            "id": k.id,
                            "impressions": c.impressions,
                            "clicks": c.clicks,
                            "ctr": learned.creative_ctr(campaign, &k.id),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "id": campaign.id,
                    "ecpm": ecpm,
                    "currency": campaign.pricing.currency.to_string(),
                    "impressions": counts.impressions,
                    "clicks": counts.clicks,
                    "conversions": counts.conversions,
                    "spend_usd": counts.spend_usd,
                    "revenue_usd": counts.revenue_usd,
                    "kpi_alerts": learning::shortfalls(campaign, &counts, store.rates()),
                    "budget": budget(store, campaign, now),
                    "creatives": creatives,
                })
            },
        )
        .collect();
    let refused: Vec<_> = snapshot
        .refused
        .iter()
        .map(|e| {
            let taxonomy = e
                .path
                .file_name()
                .is_some_and(|n| n == crate::campaign::taxonomy::FILE);
            let serving =
                snapshot.files.contains_key(&e.path) || (taxonomy && snapshot.taxonomy.is_some());
            serde_json::json!({
                "path": e.path.display().to_string(),
                "errors": e.to_string().lines().collect::<Vec<_>>(),
                "serving_last_good": serving,
            })
        })
        .collect();
    let mut profiles = app.profiles.status();
    profiles["files"] = app.profile_files.status();
    serde_json::json!({
        "generation": snapshot.generation,
        "loaded_at": snapshot.loaded_at.to_rfc3339(),
        "reload_ms": snapshot.took.as_secs_f64() * 1000.0,
        "campaigns_loaded": snapshot.files.len(),
        "campaigns_live": snapshot.ranked.len(),
        "live": snapshot.ranked.iter().map(|r| r.campaign.id.as_str()).collect::<Vec<_>>(),
        "refused": refused,
        "campaigns": campaigns,
        "taxonomy": snapshot.taxonomy.as_ref().map(|t| serde_json::json!({ "tags": t.tags().len() })),
        "audiences": audiences(&snapshot.audiences),
        "profiles": profiles,
    })
}

/// The audience packages in `/status`: each loaded one, and the files refused with why.
fn audiences(library: &crate::audience::Library) -> serde_json::Value {
    let packages: Vec<_> = library
        .packages()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "path": p.path.display().to_string(),
                "keys": p.form.name(),
                "users": p.users(),
                "bytes": p.bytes(),
            })
        })
        .collect();
    let refused: Vec<_> = library
        .refused
        .iter()
        .map(|e| {
            let serving = library.packages().any(|p| p.path == e.path);
            serde_json::json!({
                "path": e.path.display().to_string(),
                "error": e.to_string(),
                "serving_last_good": serving,
            })
        })
        .collect();
    serde_json::json!({ "packages": packages, "refused": refused })
}

/// A campaign's budget in `/status`: its limits, and what it spent and holds, in its currency.
fn budget(store: &Store, campaign: &Campaign, now: DateTime<Utc>) -> Option<serde_json::Value> {
    let budget = campaign.budget.as_ref()?;
    let state = store.pacer().state(campaign, now).unwrap_or_default();
    let local = |usd: f64| {
        store
            .rates()
            .convert(usd, Currency::USD, campaign.pricing.currency)
            .unwrap_or(0.0)
    };
    Some(serde_json::json!({
        "daily": budget.daily,
        "total": budget.total,
        "pacing": match budget.pacing {
            Pacing::Even => "even",
            Pacing::Asap => "asap",
        },
        "spent_today": local(state.spent_today_usd),
        "spent_total": local(state.spent_total_usd),
        "held": local(state.held_usd),
        "pass_rate": state.pass_rate,
    }))
}

fn with_body(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut answer = Response::new(Full::new(body.into()));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
}

fn no_content() -> Answer {
    let mut answer = Response::new(Full::new(Bytes::new()));
    *answer.status_mut() = StatusCode::NO_CONTENT;
    answer
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    with_body(status, "text/plain; charset=utf-8", body)
}

fn json(status: StatusCode, value: serde_json::Value) -> Answer {
    with_body(status, "application/json", value.to_string())
}

/// `{"error": "..."}` with `status`.
fn error(status: StatusCode, message: &str) -> Answer {
    json(status, serde_json::json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_is_503_until_the_campaigns_are_loaded() {
        assert_eq!(ready(false).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ready(true).status(), StatusCode::OK);
    }

    #[test]
    fn admin_requests_need_the_exact_bearer_token_when_one_is_set() {
        let with = |value: &str| {
            let mut headers = hyper::HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            headers
        };
        let none = hyper::HeaderMap::new();
        assert!(authorized(None, &none));
        assert!(authorized(Some("s3cret"), &with("Bearer s3cret")));
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearer ",
        ] {
            assert!(!authorized(Some("s3cret"), &with(wrong)), "{wrong}");
        }
        assert!(!authorized(Some("s3cret"), &none));
    }
}
