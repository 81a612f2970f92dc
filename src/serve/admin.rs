//! The operator's routes, on the admin port only: `GET /` (the [`super::dashboard`]),
//! `GET /status`, `POST /admin/reload`, `POST /admin/clock?now=TIME` (moves a simulated clock),
//! `POST /admin/explain` (why a request gets no bid) and the profile API under `/users/`
//! ([`crate::audience::profiles::api`]). The bid port never serves them.
//!
//! Only to its own `Host` (no DNS rebinding), only JSON for what changes something (no
//! cross-site form posts), behind a bearer token when one is configured, compared in constant
//! time. Work that may take
//! seconds (a reload, a batch of profile updates, a sweep of millions of profiles) runs on a
//! blocking thread or with `block_in_place`, never on a request core.

use std::net::SocketAddr;

use chrono::{DateTime, SecondsFormat};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use sha2::{Digest, Sha256};

use super::answer::{Answer, error, json};
use super::body;
use super::dashboard;
use super::layer::{Http, Unrouted};
use super::status::Status;
use crate::app::App;
use crate::auction;
use crate::audience::profiles;
use crate::request::openrtb;

/// Routes a request on the admin port; what is not an admin route goes back to the caller.
pub(super) async fn route(
    http: &Http,
    app: &App,
    request: Request<Incoming>,
) -> Result<Answer, Unrouted> {
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => dashboard::page(),
        (&Method::GET, "/status") => {
            let snapshot = app.store.snapshot();
            json(StatusCode::OK, &Status::of(app, &snapshot, app.clock.now()))
        }
        (_, path) if path.starts_with("/users/") => users(http, app, request).await,
        (&Method::POST, "/admin/reload") => reload(app).await,
        (&Method::POST, "/admin/clock") => clock(app, request.uri().query()),
        (&Method::POST, "/admin/explain") => explain(http, app, request).await,
        (_, "/status" | "/admin/reload" | "/admin/clock" | "/admin/explain") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        (method, path) => return Err((method.clone(), path.to_owned())),
    })
}

/// Whether an admin request may pass: always without a token, else with `Bearer TOKEN`. The
/// SHA-256 digests of both are compared in constant time, so neither the comparison's time nor
/// an early exit on length tells how much of a guess was right.
pub(super) fn authorized(token: Option<&str>, headers: &hyper::HeaderMap) -> bool {
    let Some(token) = token else { return true };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let (given, token) = (Sha256::digest(given), Sha256::digest(token));
    given
        .iter()
        .zip(token.iter())
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

/// The `Host` values the admin port listening on `addr` answers to: the address itself, on
/// loopback also `localhost` (both with the port), and `name` with or without it.
pub(super) fn hosts(addr: SocketAddr, name: Option<&str>) -> Vec<String> {
    let port = addr.port();
    let mut hosts = vec![addr.to_string()];
    if addr.ip().is_loopback() {
        hosts.extend([
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ]);
    }
    if let Some(name) = name
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
    {
        hosts.push(format!("{name}:{port}"));
        hosts.push(name);
    }
    hosts
}

/// The refusal of a request a web page on another site could have made a browser send: a
/// `Host` that is not the admin port's own (a page on a rebound name: 403), or, on a request that
/// changes something, no `Content-Type: application/json` (a cross-site form or `text/plain` POST
/// cannot carry one without a preflight precis never grants: 415).
pub(super) fn inadmissible(hosts: &[String], request: &Request<Incoming>) -> Option<Answer> {
    let host = request.headers().get(HOST).and_then(|h| h.to_str().ok());
    let host = host.unwrap_or_default().trim().to_ascii_lowercase();
    if !hosts.contains(&host) {
        return Some(error(
            StatusCode::FORBIDDEN,
            &format!("the admin port answers only to Host {}", hosts.join(", ")),
        ));
    }
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    let json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    (!reads && !json).then(|| {
        error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "admin requests that change something must be Content-Type: application/json",
        )
    })
}

/// `POST /admin/reload`: reads the campaign directory now, off the request threads.
async fn reload(app: &App) -> Answer {
    let store = app.store.clone();
    match tokio::task::spawn_blocking(move || store.reload()).await {
        Ok(Ok(snapshot)) => json(StatusCode::OK, &Status::of(app, &snapshot, app.clock.now())),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot read campaign directory: {e}"),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("reload failed: {e}"),
        ),
    }
}

/// The profile API under `/users/` (it writes what campaigns target). A batch may be larger than
/// a bid request: its body limit is `[profiles] max_batch_bytes`.
async fn users(http: &Http, app: &App, request: Request<Incoming>) -> Answer {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let rest = path.strip_prefix("/users/").unwrap_or_default();
    if method == Method::DELETE && !rest.contains('/') && rest != "batch" {
        return forget(app, rest);
    }
    let query = request.uri().query().map(str::to_owned);
    let limit = http.limits.max_body_bytes.max(http.max_batch_bytes);
    let body = match body::read(request, limit, &http.limits).await {
        Ok(body) => body,
        Err((_, answer)) => return answer,
    };
    if method == Method::POST && rest == "forget" {
        return forget_all(app, &body);
    }
    // A batch of thousands of updates is parsed and applied off the runtime's threads, which
    // answer bids meanwhile.
    let (store, now) = (app.profiles.clone(), app.clock.now());
    let handled = tokio::task::spawn_blocking(move || {
        profiles::api::handle(&store, &method, &path, query.as_deref(), &body, now)
    })
    .await;
    match handled {
        Ok((status, answer)) => json(status, &answer),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `POST /admin/explain[?campaign=ID]` with a bid request: each imp's outcome for every campaign
/// (or one), as the running bidder stands: its clock, profiles, spend, reservations and caps. It
/// walks every campaign, so it runs with `block_in_place`, off the other tasks' way.
async fn explain(http: &Http, app: &App, request: Request<Incoming>) -> Answer {
    let campaign = form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "campaign")
        .map(|(_, id)| id.into_owned());
    let body = match body::read(request, http.limits.max_body_bytes, &http.limits).await {
        Ok(body) => body,
        Err((_, answer)) => return answer,
    };
    let request = match openrtb::decode(&body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let snapshot = app.store.snapshot();
    if let Some(id) = campaign.as_deref()
        && !snapshot.files.values().any(|l| l.campaign.id == id)
    {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no campaign `{id}` is loaded (see /status for refused files)"),
        );
    }
    let facts = app.facts(&request, app.clock.now());
    let env = app.env(&snapshot);
    let paused: Vec<_> = (snapshot.files.values())
        .map(|l| &*l.campaign)
        .filter(|c| !c.active)
        .collect();
    let explained = tokio::task::block_in_place(|| {
        let only = campaign.as_deref();
        auction::explain::explain(&snapshot.ranked, &paused, &request, &facts, &env, only)
    });
    json(StatusCode::OK, &explained)
}

/// `DELETE /users/{key}`: a deletion request. The user's tags, frequency counts and conversion
/// memory are forgotten; the next snapshots hold none of them. Idempotent: 200 either way, saying
/// what there was.
fn forget(app: &App, segment: &str) -> Answer {
    let Ok(key) = percent_encoding::percent_decode_str(segment).decode_utf8() else {
        return error(StatusCode::BAD_REQUEST, "the user key is not UTF-8");
    };
    if key.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "the user key is empty");
    }
    let (tags, exposures) = app.forget(&key);
    json(
        StatusCode::OK,
        &serde_json::json!({ "forgotten": true, "had_tags": tags, "had_exposures": exposures }),
    )
}

/// `POST /users/forget` with `{"users": [KEY, ...]}`: deletion requests in a batch, each as
/// `DELETE /users/{key}`. All or nothing on a body that cannot be read (400); an empty key is
/// refused by its place.
fn forget_all(app: &App, body: &[u8]) -> Answer {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        users: Vec<String>,
    }
    let batch: Batch = match serde_json::from_slice(body) {
        Ok(batch) => batch,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("not {{\"users\": [...]}}: {e}"),
            );
        }
    };
    if let Some(at) = batch.users.iter().position(|k| k.trim().is_empty()) {
        return error(StatusCode::BAD_REQUEST, &format!("users[{at}] is empty"));
    }
    let (mut tags, mut exposures) = (0, 0);
    for key in &batch.users {
        let (had_tags, had_exposures) = app.forget(key);
        tags += usize::from(had_tags);
        exposures += usize::from(had_exposures);
    }
    json(
        StatusCode::OK,
        &serde_json::json!({ "forgotten": batch.users.len(), "had_tags": tags, "had_exposures": exposures }),
    )
}

/// `POST /admin/clock?now=RFC3339`: moves a simulated clock forward, then expires what the new
/// time has expired ([`App::expire`]), as the periodic sweep would.
fn clock(app: &App, query: Option<&str>) -> Answer {
    // A `+` of an offset sent unencoded arrives as a space.
    let to = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "now")
        .last()
        .and_then(|(_, t)| DateTime::parse_from_rfc3339(&t.replace(' ', "+")).ok());
    let Some(to) = to else {
        return error(
            StatusCode::BAD_REQUEST,
            "give the time to move to as ?now=RFC3339",
        );
    };
    match app.clock.advance_to(to.to_utc()) {
        Ok(now) => {
            // Sweeps walk maps (millions of profiles take seconds): this worker's other tasks
            // move to another meanwhile.
            tokio::task::block_in_place(|| app.expire(now));
            let now = now.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            json(StatusCode::OK, &serde_json::json!({ "now": now }))
        }
        Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

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
