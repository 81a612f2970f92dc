//! The profile API: `PUT|DELETE /users/{key}/tags`, `GET /users/{key}`, `POST /users/batch`.
//!
//! Owns what each route means, as a plain function of method, path, query and body to a status
//! and a JSON answer; the admin routes (`serve::admin`) read the body, guard who may ask and run
//! it on a blocking thread (a batch of thousands of updates takes a while), never on the bid path.
//! Every update is checked whole before anything changes: a bad request (400) changes nothing.
//! Store writes take one dashmap shard lock per user.

use chrono::{DateTime, SecondsFormat, Utc};
use hyper::{Method, StatusCode};
use percent_encoding::percent_decode_str;
use serde::Deserialize;

use super::bulk::{Line, update_of, user_key};
use super::{Profiles, Update};
use crate::forms::tag_form;
use crate::request::user::UserId;

/// `PUT /users/{key}/tags`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Put {
    tags: Vec<String>,
    ttl: Option<String>,
}

/// `POST /users/batch`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    updates: Vec<Line>,
}

/// The answer to a request under `/users/`.
pub fn handle(
    store: &Profiles,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> (StatusCode, serde_json::Value) {
    let rest = path.strip_prefix("/users/").unwrap_or_default();
    let outcome = match (method, rest.split_once('/')) {
        (&Method::POST, None) if rest == "batch" => batch(store, body, now),
        (_, None) if rest == "batch" => Err(not_allowed()),
        (&Method::GET, None) => key(rest).and_then(|user| get(store, user, now)),
        (&Method::PUT, Some((k, "tags"))) => key(k).and_then(|user| put(store, user, body, now)),
        (&Method::DELETE, Some((k, "tags"))) => key(k).and_then(|user| delete(store, user, query)),
        (_, None | Some((_, "tags"))) => Err(not_allowed()),
        _ => Err((StatusCode::NOT_FOUND, "no such route".into())),
    };
    match outcome {
        Ok(answer) => (StatusCode::OK, answer),
        Err((status, message)) => (status, serde_json::json!({ "error": message })),
    }
}

type Outcome = Result<serde_json::Value, (StatusCode, String)>;

fn not_allowed() -> (StatusCode, String) {
    (StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into())
}

fn bad(message: impl Into<String>) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, message.into())
}

/// The user of a path segment: the raw key, percent-encoded.
fn key(segment: &str) -> Result<UserId, (StatusCode, String)> {
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| bad("the user key is not UTF-8"))?;
    user_key(&decoded).map_err(bad)
}

fn get(store: &Profiles, user: UserId, now: DateTime<Utc>) -> Outcome {
    let tags: Vec<_> = store
        .live(user, now)
        .into_iter()
        .map(|(tag, until)| {
            serde_json::json!({
                "tag": &*tag,
                "expires": until.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            })
        })
        .collect();
    if tags.is_empty() {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no live tags for user {user}"),
        ));
    }
    Ok(serde_json::json!({ "user": user.to_string(), "tags": tags }))
}

fn apply(store: &Profiles, updates: &[Update], now: DateTime<Utc>) -> Outcome {
    let applied = store
        .apply(updates, now)
        .map_err(|e| (StatusCode::INSUFFICIENT_STORAGE, e.to_string()))?;
    if applied.applied == 0 && applied.refused_full > 0 {
        return Err((
            StatusCode::INSUFFICIENT_STORAGE,
            "the profile store holds max_users users: new users are refused".into(),
        ));
    }
    Ok(serde_json::to_value(applied).unwrap_or_default())
}

fn put(store: &Profiles, user: UserId, body: &[u8], now: DateTime<Utc>) -> Outcome {
    let put: Put = serde_json::from_slice(body).map_err(|e| bad(format!("body: {e}")))?;
    let update = update_of(
        user,
        put.tags.iter().map(String::as_str),
        put.ttl.as_deref(),
    )
    .map_err(bad)?;
    apply(store, &[update], now)?;
    get(store, user, now)
}

fn delete(store: &Profiles, user: UserId, query: Option<&str>) -> Outcome {
    let tag = match form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "tag")
    {
        Some((_, tag)) => Some(tag_form(&tag).ok_or_else(|| bad("`tag` has no text"))?),
        None => None,
    };
    let removed = store.remove(user, tag.as_deref());
    Ok(serde_json::json!({ "user": user.to_string(), "removed": removed }))
}

fn batch(store: &Profiles, body: &[u8], now: DateTime<Utc>) -> Outcome {
    let batch: Batch = serde_json::from_slice(body).map_err(|e| bad(format!("body: {e}")))?;
    let updates = batch
        .updates
        .iter()
        .enumerate()
        .map(|(i, line)| line.update().map_err(|e| bad(format!("updates[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    apply(store, &updates, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    fn call(store: &Profiles, method: Method, path: &str, body: &str) -> (StatusCode, String) {
        let (path, query) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        let (status, answer) = handle(store, &method, path, query, body.as_bytes(), now());
        (status, answer.to_string())
    }

    #[test]
    fn tags_are_put_shown_and_deleted_by_raw_key() {
        let store = Profiles::new(10);
        let put = r#"{"tags": ["Sports/Running", "shoes"], "ttl": "5m"}"#;
        let (status, answer) = call(&store, Method::PUT, "/users/a%20b/tags", put);
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(answer.contains("sports/running") && answer.contains("2026-11-23T10:05:00Z"));
        assert_eq!(store.live(UserId::of_key("a b"), now()).len(), 2);
        let (status, _) = call(&store, Method::DELETE, "/users/a%20b/tags?tag=shoes", "");
        assert_eq!(status, StatusCode::OK);
        let (_, answer) = call(&store, Method::GET, "/users/a%20b", "");
        assert!(!answer.contains("shoes"), "{answer}");
        call(&store, Method::DELETE, "/users/a%20b/tags", "");
        assert_eq!(
            call(&store, Method::GET, "/users/a%20b", "").0,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn a_bad_update_is_refused_and_changes_nothing() {
        let store = Profiles::new(10);
        let good = r#"{"user": "u1", "tags": ["a"]}"#;
        for (method, path, body) in [
            (
                Method::PUT,
                "/users/u1/tags",
                r#"{"tags": ["a"], "ttl": "forever"}"#,
            ),
            (Method::PUT, "/users/u1/tags", r#"{"tags": []}"#),
            (
                Method::PUT,
                "/users/u1/tags",
                r#"{"tags": ["a"], "extra": 1}"#,
            ),
            (Method::PUT, "/users/%20/tags", r#"{"tags": ["a"]}"#),
            (Method::PUT, "/users/u1/tags", "not json"),
            (
                Method::PUT,
                "/users/u1/tags",
                &format!(r#"{{"tags": ["{}"]}}"#, "x".repeat(257)),
            ),
            (
                Method::POST,
                "/users/batch",
                &format!(r#"{{"updates": [{good}, {{"user": "u2", "tags": ["/"]}}]}}"#),
            ),
            (
                Method::POST,
                "/users/batch",
                &format!(r#"{{"updates": [{good}, {{"tags": ["b"]}}]}}"#),
            ),
        ] {
            let (status, answer) = call(&store, method, path, body);
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        }
        assert_eq!(store.users(), 0);
        assert_eq!(
            call(&store, Method::GET, "/users/u1/tags", "").0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            call(&store, Method::GET, "/users/u1/x", "").0,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn a_batch_applies_thousands_at_once() {
        let store = Profiles::new(10_000);
        let updates: Vec<String> = (0..5_000)
            .map(|i| format!(r#"{{"user": "u{i}", "tags": ["t{}"], "ttl": "1h"}}"#, i % 7))
            .collect();
        let body = format!(r#"{{"updates": [{}]}}"#, updates.join(","));
        let (status, answer) = call(&store, Method::POST, "/users/batch", &body);
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(answer.contains("\"applied\":5000"), "{answer}");
        assert_eq!(store.users(), 5_000);
    }
}
