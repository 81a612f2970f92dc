//! Serving: hyper on tokio, on two listeners, with the limits that keep bad clients harmless.
//!
//! The bid port serves exchanges (`exchange`: `POST /openrtb2/bid` and the event notices); the
//! admin port (loopback by default, behind a bearer token when one is configured) serves operators
//! (`admin`: status, reloads, the simulated clock, explanations, the profile API, the
//! [`dashboard`]). Both serve `GET /healthz` (liveness), `GET /readyz` (503 until campaigns are
//! loaded, and while the event log cannot write) and `GET /metrics`. Exchange
//! connections run on one pinned runtime per core ([`cores`]); admin connections stay on the
//! caller's multi-threaded runtime, where slow admin work cannot stall a core.
//!
//! Every request gets an answer, never a panic or a hang: oversized bodies 413 (gzip and deflate
//! bodies too, once decompressed), other codings 415, slow bodies 408 (`body`); heads over 100
//! headers or 64 KiB 431 and malformed heads 400 (hyper's answers), an HTTP/1.1 request without
//! one `Host` 400, a request with both `Content-Length` and `Transfer-Encoding` 400 (which hyper
//! would serve by the latter: [`framing`] finds them), each then the close; slow heads a closed
//! connection; past `max_connections` a
//! new bid-port connection is closed at once, past `max_in_flight` or its deadline a bid request
//! gets 204 ([`admission`]). `HEAD` is answered as `GET`, without the body. What the layer
//! turned away is counted in its own [`metrics`].

mod admin;
pub mod admission;
pub mod answer;
mod body;
pub mod cores;
mod dashboard;
pub mod encoding;
mod exchange;
pub mod framing;
mod layer;
pub mod metrics;
mod status;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::{Limits, NoBidAnswer};
use crate::metrics::Exposition;
use admission::Gate;
use answer::{Answer, closing, error, text};
use cores::Cores;
use framing::{Conflict, Watched};
use layer::Http;
use metrics::Closed;

/// How long in-flight requests get to finish after shutdown is asked for.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest request head (431 and the close past it), and a connection's read buffer at
/// most: bounds what a client that floods headers holds per connection.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Headers in one request at most (431 and the close past it).
const MAX_HEADERS: usize = 100;

/// The two listeners, and where exchange connections run.
pub struct Ports {
    /// Exchanges: bids, event notices, health, readiness, metrics.
    pub bid: TcpListener,
    /// Operators: reloads, the simulated clock, detailed status (and health, readiness, metrics).
    pub admin: TcpListener,
    /// The per-core runtimes; stopped when serving ends.
    pub cores: Cores,
}

/// How the HTTP layer is configured.
#[derive(Clone)]
pub struct Settings {
    /// When set, every admin request must carry `Authorization: Bearer TOKEN`.
    pub admin_token: Option<String>,
    /// Header and body timeouts, body size, open connections and bid requests in flight at most.
    pub limits: Limits,
    /// The body limit of the profile API (`[profiles] max_batch_bytes`).
    pub max_batch_bytes: usize,
    /// How a bid request without a bid is answered (`no_bid`).
    pub no_bid: NoBidAnswer,
    /// Another name the admin port is reached by (`admin_host`), besides its address.
    pub admin_host: Option<String>,
    /// The bid port speaks HTTPS with this, when set (`tls_cert`, `tls_key`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A connection's byte stream, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    Bid,
    Admin,
}

/// The application once campaigns are loaded; empty while they load (`/readyz` answers 503).
pub type Ready = Arc<std::sync::OnceLock<Arc<App>>>;

/// Serves both listeners until `shutdown` completes, then stops accepting and lets open requests
/// finish (up to `DRAIN`). Requests that arrive before `app` is set get 503, except `/healthz`.
pub async fn serve(
    ports: Ports,
    settings: Settings,
    app: Ready,
    shutdown: impl Future<Output = ()>,
) {
    let Ports { bid, admin, cores } = ports;
    let limits = settings.limits;
    let tls = settings.tls;
    let mut hyper = http1::Builder::new();
    hyper
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout())
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        // Not `pipeline_flush`: it holds answers back while the read buffer is not empty, and
        // after a bad head (400, 431) or a request that must close the connection the buffer
        // never empties, so the answer was dropped unsent at the close. Answers to pipelined
        // requests are written one by one instead (no request waits the longer for it).
        .keep_alive(true);
    let connections = Gate::new(limits.max_connections);
    let admin_hosts = admin
        .local_addr()
        .map(|addr| admin::hosts(addr, settings.admin_host.as_deref()))
        .unwrap_or_default();
    let http = Arc::new(Http {
        metrics: Arc::default(),
        in_flight: Gate::new(limits.max_in_flight),
        limits,
        admin_token: settings.admin_token.map(Into::into),
        max_batch_bytes: settings.max_batch_bytes,
        no_bid: settings.no_bid,
        admin_hosts,
    });
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
                    http.metrics.refused();
                    continue;
                }
            },
            Port::Admin => None,
        };
        let _ = stream.set_nodelay(true);
        let open = http.metrics.connection_opened();
        let (app, routes) = (app.clone(), http.clone());
        let conflict = Arc::new(Conflict::default());
        let marked = conflict.clone();
        let service = service_fn(move |request| {
            // The head has just been read: a bid request's deadline counts from here.
            let start = Instant::now();
            let smuggled = marked.take_next();
            let app = app.get().cloned();
            let routes = routes.clone();
            async move {
                let answer = if smuggled {
                    routes.metrics.closed(Closed::LengthAndChunked);
                    closing(
                        StatusCode::BAD_REQUEST,
                        "both Content-Length and Transfer-Encoding: refused as request smuggling",
                    )
                } else {
                    handle(&routes, app.as_deref(), port, start, request).await
                };
                Ok::<_, Infallible>(answer)
            }
        });
        let watcher = graceful.watcher();
        let (hyper, counted) = (hyper.clone(), http.metrics.clone());
        // HTTPS on the bid port when configured: the handshake first, within the head's time.
        let tls = (port == Port::Bid).then(|| tls.clone()).flatten();
        let handshake = http.limits.header_timeout();
        let serve = move |stream: tokio::net::TcpStream| async move {
            let io: Box<dyn Io> = match tls {
                None => Box::new(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => Box::new(tls),
                        _ => {
                            counted.closed(Closed::Handshake);
                            drop((open, slot));
                            return;
                        }
                    }
                }
            };
            let stream = Watched::new(io, conflict);
            let connection = hyper.serve_connection(TokioIo::new(stream), service);
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

/// Why hyper gave up on a connection mid-head, when it did (it answered 431 or 400 first but
/// at a timeout).
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
/// routes on the bid port, the admin routes on the admin port (behind the token when one is set).
async fn handle(
    http: &Http,
    app: Option<&App>,
    port: Port,
    start: Instant,
    mut request: Request<Incoming>,
) -> Answer {
    if let Some((why, answer)) = unservable(&request) {
        http.metrics.closed(why);
        return answer;
    }
    // `HEAD` is answered as `GET`: the same status and headers, and hyper, which read the method
    // itself, leaves the body out.
    if request.method() == Method::HEAD {
        *request.method_mut() = Method::GET;
    }
    // The dashboard page holds no data (its script fetches with the token): served to anyone.
    let page = request.method() == Method::GET && request.uri().path() == "/";
    if port == Port::Admin
        && let Some(refused) = admin::inadmissible(&http.admin_hosts, &request)
    {
        return refused;
    }
    if port == Port::Admin
        && !page
        && !admin::authorized(http.admin_token.as_deref(), request.headers())
    {
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
        (&Method::GET, "/readyz") => return ready(readiness(app).as_deref()),
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
        Port::Bid => exchange::route(http, app, start, request).await,
        Port::Admin => admin::route(http, app, request).await,
    };
    routed.unwrap_or_else(|(method, path)| match (method, path.as_str()) {
        (Method::GET, "/metrics") => text(StatusCode::OK, metrics(http, app, port)),
        (_, "/healthz" | "/readyz" | "/metrics") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        (_, path) => error(StatusCode::NOT_FOUND, &not_found(port, path)),
    })
}

/// A request no route may serve, and its answer (which closes the connection): HTTP/1.1 without
/// `Host` or any request with two (RFC 9112 §3.2).
fn unservable(request: &Request<Incoming>) -> Option<(Closed, Answer)> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() || (first.is_none() && request.version() == Version::HTTP_11) {
        let answer = closing(StatusCode::BAD_REQUEST, "one Host header is required");
        return Some((Closed::NoHost, answer));
    }
    None
}

/// Why a path is not served here: a route of the other port says so, and where it is.
fn not_found(port: Port, path: &str) -> String {
    let admin = path == "/" || path == "/status" || path.starts_with("/admin/");
    let admin = admin || path.starts_with("/users/");
    let exchange = exchange::ROUTES.contains(&path);
    match port {
        Port::Bid if admin => format!(
            "{path} is an admin route: it is served on the admin port (admin_listen), not the bid port"
        ),
        Port::Admin if exchange => format!(
            "{path} is an exchange route: it is served on the bid port (listen), not the admin port"
        ),
        _ => format!("no such route: {path}"),
    }
}

/// Why precis is not ready, if it is not: campaigns still loading, or an event log that cannot
/// write (events would be answered 503).
fn readiness(app: Option<&App>) -> Option<String> {
    match app {
        None => Some("loading campaigns".to_owned()),
        Some(app) => app.recorder.log_health().trouble(),
    }
}

/// `/readyz`: 200 once the campaigns are loaded and the event log replayed, while the log
/// writes; 503 with the reason otherwise.
fn ready(trouble: Option<&str>) -> Answer {
    match trouble {
        None => text(StatusCode::OK, "ready\n"),
        Some(trouble) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{trouble}\n")),
    }
}

/// `/metrics`: what the HTTP layer counted, then what the application's parts report.
fn metrics(http: &Http, app: &App, port: Port) -> String {
    let mut out = Exposition::default();
    http.metrics.report(&mut out, http.in_flight.held());
    // Each campaign's bids, wins and spend are the operator's: not on the exchange's port.
    app.report(&mut out, port == Port::Admin);
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_is_503_until_the_campaigns_are_loaded() {
        let loading = readiness(None);
        assert_eq!(loading.as_deref(), Some("loading campaigns"));
        let answer = ready(loading.as_deref());
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ready(None).status(), StatusCode::OK);
    }
}
