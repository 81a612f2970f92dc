//! The profile store end to end: tags put through the API, fed from bulk files and kept across a
//! restart join a user's bid requests, so a tag-targeted campaign wins that user; instant tags
//! expire on the (simulated) clock; bad input changes nothing. Every wait is a poll to a deadline.

#[allow(dead_code)]
mod common;

use common::{Campaign, Server, banner_request, parse_json, with};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

/// Targets runners only: a user wins it only with a `sports/running` tag (or a descendant).
fn runners() -> (&'static str, String) {
    (
        "runners.toml",
        Campaign::cpm(3.0)
            .target("tags_any = [\"sports/running\"]")
            .banner(300, 250)
            .toml(),
    )
}

/// A 300x250 request from user `key`.
fn from_user(key: &str) -> Value {
    with(banner_request(300, 250), json!({ "user": { "id": key } }))
}

async fn call(server: &Server, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let (status, _, answer) = server.admin_send(method, path, None, body.to_owned()).await;
    (status, parse_json(&answer))
}

const START: &str = "2026-11-23T10:00:00Z";

#[tokio::test]
async fn an_api_update_makes_a_tag_campaign_win_that_user_until_the_instant_tag_expires() {
    let server = Server::setup()
        .campaigns([runners()])
        .arg("--simulate-from")
        .arg(START)
        .start();
    assert_eq!(server.winner(&from_user("alice")).await, None);

    let put = r#"{"tags": ["Sports/Running/Trail"], "ttl": "5m"}"#;
    let (status, answer) = call(&server, Method::PUT, "/users/alice/tags", put).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["tags"][0]["tag"], "sports/running/trail");
    assert_eq!(answer["tags"][0]["expires"], "2026-11-23T10:05:00Z");
    // Applied before the answer: the very next request matches.
    assert_eq!(
        server.winner(&from_user("alice")).await.as_deref(),
        Some("runners")
    );
    assert_eq!(
        server.winner(&from_user("bob")).await,
        None,
        "alice's tags only"
    );

    let (status, _) = call(&server, Method::GET, "/users/alice", "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server
        .admin_post("/admin/clock?now=2026-11-23T10:04:59Z")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server.winner(&from_user("alice")).await.as_deref(),
        Some("runners")
    );
    let (status, _, _) = server
        .admin_post("/admin/clock?now=2026-11-23T10:05:00Z")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server.winner(&from_user("alice")).await,
        None,
        "the 5m tag expired"
    );
    let (status, _) = call(&server, Method::GET, "/users/alice", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no live tags left");
    assert_eq!(server.status().await["profiles"]["users"], 0, "swept");
}

#[tokio::test]
async fn bad_updates_get_400_and_change_nothing_and_deletes_take_tags_away() {
    let server = Server::start([runners()]);
    let batch = json!({ "updates": [
        { "user": "alice", "tags": ["sports/running"] },
        { "user": "bob", "tags": ["sports/running"], "ttl": "soon" },
    ]})
    .to_string();
    for (method, path, body) in [
        (Method::POST, "/users/batch", batch.as_str()),
        (
            Method::PUT,
            "/users/alice/tags",
            r#"{"tags": "sports/running"}"#,
        ),
        (Method::PUT, "/users/alice/tags", r#"{"tags": [" / "]}"#),
        (Method::PUT, "/users/alice/tags", "{"),
    ] {
        let (status, answer) = call(&server, method, path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    assert_eq!(server.winner(&from_user("alice")).await, None);
    assert_eq!(server.status().await["profiles"]["users"], 0);

    let batch = json!({ "updates": (0..2_000).map(|i| json!({
        "user": format!("user-{i}"), "tags": ["sports/running"], "ttl": "1h"
    })).collect::<Vec<_>>() })
    .to_string();
    let (status, answer) = call(&server, Method::POST, "/users/batch", &batch).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["applied"], 2_000);
    assert_eq!(server.metric("precis_profile_users").await, 2_000.0);
    assert_eq!(
        server.winner(&from_user("user-1999")).await.as_deref(),
        Some("runners")
    );
    let path = "/users/user-1999/tags?tag=sports/running";
    let (status, answer) = call(&server, Method::DELETE, path, "").await;
    assert_eq!((status, &answer["removed"]), (StatusCode::OK, &json!(true)));
    assert_eq!(server.winner(&from_user("user-1999")).await, None);
    let (status, _) = call(&server, Method::DELETE, "/users/user-1/tags", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.winner(&from_user("user-1")).await, None);
    assert_eq!(server.status().await["profiles"]["users"], 1_998);
}

#[tokio::test]
async fn profiles_survive_a_restart_through_the_snapshot() {
    let mut server = Server::start([runners()]);
    let (status, _) = call(
        &server,
        Method::PUT,
        "/users/alice/tags",
        r#"{"tags": ["sports/running"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    server.restart(&[]).await;
    assert!(
        server.root().join("logs/profiles.snapshot").is_file(),
        "written at SIGTERM"
    );
    assert_eq!(
        server.winner(&from_user("alice")).await.as_deref(),
        Some("runners")
    );

    // A damaged snapshot is set aside: the bidder starts with no profiles rather than not at all.
    server.stop().await;
    std::fs::write(server.root().join("logs/profiles.snapshot"), "garbage").unwrap();
    server.restart(&[]).await;
    assert_eq!(server.winner(&from_user("alice")).await, None);
    assert!(server.log().contains("cannot load the profile snapshot"));
}

#[tokio::test]
async fn bulk_profile_files_apply_at_start_and_when_edited() {
    let server = Server::setup()
        .campaigns([runners()])
        .file(
            "profiles/crm.jsonl",
            "{\"user\": \"alice\", \"tags\": [\"sports/running\"]}\nnot json\n",
        )
        .start();
    assert_eq!(
        server.winner(&from_user("alice")).await.as_deref(),
        Some("runners")
    );
    let status = server.status().await;
    let files = status["profiles"]["files"].to_string();
    assert!(files.contains("crm.jsonl:2: "), "{files}");

    let csv = server.root().join("profiles/.shop.csv.partial");
    std::fs::write(&csv, "user,tags,ttl\nbob,sports/running;shoes,1h\n").unwrap();
    std::fs::rename(&csv, server.root().join("profiles/shop.csv")).unwrap();
    server
        .eventually("bob's tags from shop.csv to match", async || {
            match server.winner(&from_user("bob")).await {
                Some(cid) => Ok(cid),
                None => Err("no bid".into()),
            }
        })
        .await;
}

/// Only for users in the `fans` package (refused while no such package is loaded).
fn fans() -> (&'static str, String) {
    (
        "fans.toml",
        Campaign::cpm(2.0)
            .target(r#"audiences_any = ["fans"]"#)
            .banner(300, 250)
            .toml(),
    )
}

/// Writes `path` under the server's directory whole (a rename), as a careful tool would.
fn put_file(server: &Server, path: &str, text: &str) {
    let path = server.root().join(path);
    let partial = path.with_file_name(".partial");
    std::fs::write(&partial, text).unwrap();
    std::fs::rename(&partial, &path).unwrap();
}

#[tokio::test]
async fn directories_made_after_start_are_watched_and_a_files_tags_are_its_own() {
    let server = Server::setup().campaigns([runners(), fans()]).start();
    let wins = async |key: &str, expected: Option<&str>| {
        let what = format!("{key} to win {expected:?}");
        server
            .eventually(&what, async || match server.winner(&from_user(key)).await {
                won if won.as_deref() == expected => Ok(()),
                won => Err(format!("won {won:?}")),
            })
            .await;
    };
    wins("alice", None).await;

    std::fs::create_dir(server.root().join("profiles")).unwrap();
    put_file(
        &server,
        "profiles/crm.jsonl",
        "{\"user\": \"alice\", \"tags\": [\"sports/running\"]}\n\
         {\"user\": \"carol\", \"tags\": [\"sports/running\"]}\n",
    );
    wins("alice", Some("runners")).await;
    std::fs::create_dir(server.root().join("audiences")).unwrap();
    put_file(&server, "audiences/fans.txt", "fan-1\n");
    wins("fan-1", Some("fans")).await;

    // The file's tags are the file's: a line removed, then the file, take them away; the API's
    // tags stay.
    let put = r#"{"tags": ["sports/running"]}"#;
    let (status, _) = call(&server, Method::PUT, "/users/dave/tags", put).await;
    assert_eq!(status, StatusCode::OK);
    put_file(
        &server,
        "profiles/crm.jsonl",
        "{\"user\": \"carol\", \"tags\": [\"sports/running\"]}\n",
    );
    wins("alice", None).await;
    wins("carol", Some("runners")).await;
    std::fs::remove_file(server.root().join("profiles/crm.jsonl")).unwrap();
    wins("carol", None).await;
    wins("dave", Some("runners")).await;
}
