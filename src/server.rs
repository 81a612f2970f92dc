//! The HTTP server: hyper on tokio, its routes, and the limits that keep bad clients harmless.
//!
//! Routes: `POST /openrtb2/bid` (the exchange's), `GET /healthz`, `GET /status`, `GET /metrics`, and
//! `POST /admin/reload` (loopback peers only). The bid route decodes, normalises, runs the auction and
//! encodes inline: it is microseconds of CPU with nothing to wait on. Reloads run on blocking threads.
//! Every request gets an answer (never a panic, never a hang): oversized bodies 413, slow bodies
//! 408, slow headers a closed connection, and each outcome is counted.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::auction::{self, Urls};
use crate::config::Limits;
use crate::metrics::{Metrics, Outcome};
use crate::openrtb;
use crate::reload::{Snapshot, Store};
use crate::targeting::Facts;

/// Everything a request handler reads.
pub struct App {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub urls: Urls,
    pub limits: Limits,
}

type Answer = Response<Full<Bytes>>;

/// How long in-flight requests get to finish after shutdown is asked for.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `listener` until `shutdown` completes, then stops accepting and lets open requests finish.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(app.limits.header_timeout())
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |request| handle(app.clone(), peer, request));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
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

async fn handle(
    app: Arc<App>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let answer = match (request.method(), request.uri().path()) {
        (&Method::POST, "/openrtb2/bid") => bid(&app, request).await,
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/status") => json(StatusCode::OK, status(&app.store.snapshot())),
        (&Method::GET, "/metrics") => {
            text(StatusCode::OK, app.metrics.render(&app.store.snapshot()))
        }
        (&Method::POST, "/admin/reload") if peer.ip().is_loopback() => reload(&app).await,
        (_, "/admin/reload") if !peer.ip().is_loopback() => error(
            StatusCode::FORBIDDEN,
            "admin routes answer loopback clients only",
        ),
        (_, "/openrtb2/bid" | "/healthz" | "/status" | "/metrics" | "/admin/reload") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    };
    Ok(answer)
}

async fn bid(app: &App, request: Request<Incoming>) -> Answer {
    let (outcome, answer) = match read_body(app, request).await {
        Err((outcome, answer)) => (outcome, answer),
        Ok(body) => match openrtb::decode(&body) {
            Err(e) => (
                Outcome::BadRequest,
                error(StatusCode::BAD_REQUEST, &e.to_string()),
            ),
            Ok(request) => {
                let snapshot = app.store.snapshot();
                let facts = Facts::from_request(&request, Utc::now());
                match auction::run(
                    &snapshot.ranked,
                    &request,
                    &facts,
                    app.store.rates(),
                    &app.urls,
                ) {
                    Some(response) => (
                        Outcome::Bid,
                        with_body(StatusCode::OK, "application/json", response.to_json()),
                    ),
                    None => (Outcome::NoBid, no_content()),
                }
            }
        },
    };
    app.metrics.count(outcome);
    answer
}

/// The request body, within the size and time limits. When it cannot be read whole, the answer
/// says `Connection: close`: the rest of the body is still on the wire, so the connection cannot
/// carry another request, and a client that pools connections must know not to reuse it.
async fn read_body(app: &App, request: Request<Incoming>) -> Result<Bytes, (Outcome, Answer)> {
    let limit = app.limits.max_body_bytes;
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
        Ok(Ok(body)) => Ok(body.to_bytes()),
    }
}

async fn reload(app: &App) -> Answer {
    let store = app.store.clone();
    match tokio::task::spawn_blocking(move || store.reload()).await {
        Ok(Ok(snapshot)) => {
            app.metrics.reloaded(true);
            json(StatusCode::OK, status(&snapshot))
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

/// What `/status` shows: which campaigns are live and which files were refused, and why.
pub fn status(snapshot: &Snapshot) -> serde_json::Value {
    let refused: Vec<_> = snapshot
        .refused
        .iter()
        .map(|e| {
            let serving = snapshot.files.contains_key(&e.path);
            serde_json::json!({
                "path": e.path.display().to_string(),
                "errors": e.to_string().lines().collect::<Vec<_>>(),
                "serving_last_good": serving,
            })
        })
        .collect();
    serde_json::json!({
        "generation": snapshot.generation,
        "loaded_at": snapshot.loaded_at.to_rfc3339(),
        "reload_ms": snapshot.took.as_secs_f64() * 1000.0,
        "campaigns_loaded": snapshot.files.len(),
        "campaigns_live": snapshot.ranked.len(),
        "live": snapshot.ranked.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        "refused": refused,
    })
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
