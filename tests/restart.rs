//! Restarts forget nothing users and exchanges rely on, with or without a configured secret: the
//! events secret made at the first start is kept (mode 0600) and read again, so event URLs sent
//! out before a restart are accepted after it; user hashes are keyed by a user key kept since the
//! first start, so frequency caps and purchase suppression (a `precis` package of buyers) hold
//! across a restart and across a rotation of the signing secret; a damaged key file stops the
//! start with what to do, and is left as it was.

#[allow(dead_code)]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use common::{
    Campaign, DEADLINE, PRECIS, Server, Setup, banner_request, bids, event_urls, str_of, with,
};
use hyper::StatusCode;
use serde_json::{Value, json};

/// A fixed simulated time: frequency windows are days, and no midnight may fall mid-test.
const START: &str = "2026-11-23T14:00:00Z";

/// Impressions of `c` a user may see a day.
const CAP: usize = 2;

/// `c` (2.00 CPM, capped at [`CAP`] a day, never for the `buyers` package) beside `d` (1.00 CPM),
/// which takes what `c` steps aside from; `buyers` starts empty.
fn setup() -> Setup {
    let capped = Campaign::cpm(2.0)
        .exclude(r#"audiences = ["buyers"]"#)
        .banner(300, 250);
    let capped = format!(
        "{}\n[frequency]\nimpressions = {CAP}\nper = \"day\"\n",
        capped.toml()
    );
    Server::setup()
        .arg("--simulate-from")
        .arg(START)
        .campaign("c.toml", capped)
        .campaign("d.toml", Campaign::cpm(1.0).banner(300, 250).toml())
        .audience("buyers.txt", "# keys: precis\n")
}

/// A bid request for a 300x250 banner from `user`.
fn from(user: &str) -> Value {
    with(banner_request(300, 250), json!({ "user": { "id": user } }))
}

/// The bid `user` gets.
async fn bid_for(server: &Server, user: &str) -> Value {
    let response = server
        .bid(&from(user))
        .await
        .unwrap_or_else(|| panic!("no bid for {user}"));
    bids(&response)[0].clone()
}

/// Sends `url` and asserts it is accepted.
async fn accepted(server: &Server, url: &str) -> hyper::HeaderMap {
    let (status, headers, body) = server.get(url).await;
    assert!(
        status.is_success() || status == StatusCode::FOUND,
        "{url}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    headers
}

/// What happened before a restart: `capped` saw `c` [`CAP`] times, `buyer` saw it once, clicked
/// and bought, and a bid for `pending` has not been won yet (its win URL, still to come).
async fn before_the_restart(server: &Server) -> String {
    for _ in 0..CAP {
        let bid = bid_for(server, "capped").await;
        assert_eq!(str_of(&bid, "cid"), "c");
        let (win, imp, _) = event_urls(&bid);
        accepted(server, &win).await;
        accepted(server, &imp).await;
    }
    let bid = bid_for(server, "buyer").await;
    assert_eq!(str_of(&bid, "cid"), "c");
    let (win, imp, click) = event_urls(&bid);
    accepted(server, &win).await;
    accepted(server, &imp).await;
    let landing = accepted(server, &click).await;
    let location = landing["location"].to_str().expect("an ASCII location");
    let pclid = location.split_once("pclid=").expect("a pclid").1;
    accepted(server, &format!("/conv?pclid={pclid}&value=80")).await;
    let pending = bid_for(server, "pending").await;
    assert_eq!(str_of(&pending, "cid"), "c");
    assert_eq!(
        server.winner(&from("capped")).await.as_deref(),
        Some("d"),
        "capped before the restart"
    );
    event_urls(&pending).0
}

/// Stopped: writes the `buyers` package from the log, as a suppression list is made (the keyed
/// hashes of the users who bought).
fn keep_the_buyers(server: &Server) {
    let buyers: Vec<String> = server
        .logged_events()
        .iter()
        .filter(|e| e["event"] == "conv")
        .map(|e| str_of(e, "user").to_owned())
        .collect();
    assert_eq!(buyers.len(), 1, "one conversion logged");
    let package = format!("# keys: precis\n{}\n", buyers.join("\n"));
    std::fs::write(server.audience_dir().join("buyers.txt"), package).expect("write buyers");
}

/// After a restart: the pending bid's win is accepted, `capped` is still capped, `buyer` still
/// never sees `c`, and a new user still does.
async fn remembered(server: &Server, pending_win: &str, after: &str) {
    let (status, _, body) = server.get(pending_win).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "{after}: the win of a bid made before: {}",
        String::from_utf8_lossy(&body)
    );
    let users = server
        .metric("precis_audience_users{package=\"buyers\"}")
        .await;
    assert_eq!(users, 1.0, "{after}: the buyers package is loaded");
    for user in ["capped", "buyer"] {
        assert_eq!(
            server.winner(&from(user)).await.as_deref(),
            Some("d"),
            "{after}: {user} gets c again"
        );
    }
    assert_eq!(
        server.winner(&from("newcomer")).await.as_deref(),
        Some("c"),
        "{after}: c still bids"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn without_a_configured_secret_a_restart_keeps_event_urls_caps_and_suppression() {
    let mut server = setup().start();
    let (secret, user_key) = (
        server.logs_dir().join("events.secret"),
        server.logs_dir().join("user.key"),
    );
    let log = server.log();
    assert!(
        log.contains("events secret (none configured") && log.contains("made and kept (mode 0600)"),
        "{log}"
    );
    assert!(log.contains("file=logs/events.secret"), "{log}");
    assert_eq!((mode(&secret), mode(&user_key)), (0o600, 0o600));
    let kept = std::fs::read_to_string(&secret).expect("read the secret");

    let pending_win = before_the_restart(&server).await;
    server.stop().await;
    keep_the_buyers(&server);
    server.restart(&[]).await;

    assert_eq!(
        std::fs::read_to_string(&secret).expect("read"),
        kept,
        "the same secret"
    );
    assert!(server.log().contains("events secret (none configured"));
    remembered(&server, &pending_win, "after the restart").await;
}

#[tokio::test]
async fn rotating_the_secret_keeps_user_hashes_caps_and_suppression() {
    const OLD: &str = "the first secret of this bidder, 32+";
    const NEW: &str = "the secret it rotated to, also 32+";
    let mut server = setup().env("PRECIS_SECRET", OLD).start();
    let pending_win = before_the_restart(&server).await;
    server.stop().await;
    keep_the_buyers(&server);
    assert!(
        !server.logs_dir().join("events.secret").exists(),
        "a configured secret is never written down"
    );

    // Rotating: the new secret signs, the old one is still accepted.
    server
        .restart(&[("PRECIS_SECRET", NEW), ("PRECIS_SECRET_PREVIOUS", OLD)])
        .await;
    remembered(&server, &pending_win, "while rotating").await;
    let signed_new = event_urls(&bid_for(&server, "later").await).0;

    // Rotated: the old secret is gone, the users are not.
    server.restart(&[("PRECIS_SECRET_PREVIOUS", "")]).await;
    let (status, _, _) = server.get(&pending_win).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the old secret is retired");
    accepted(&server, &signed_new).await;
    for user in ["capped", "buyer"] {
        assert_eq!(
            server.winner(&from(user)).await.as_deref(),
            Some("d"),
            "rotated: {user} gets c again"
        );
    }
}

/// `precis serve` in `root` as [`Server`] runs it, expected to stop by itself: its exit code and
/// what it logged.
async fn serve_until_it_exits(root: &Path) -> (Option<i32>, String) {
    let child = tokio::process::Command::new(PRECIS)
        .current_dir(root)
        .env_remove("PRECIS_SECRET")
        .env_remove("PRECIS_SECRET_PREVIOUS")
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--campaigns", "campaigns", "--simulate-from", START])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn precis");
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("precis kept running with a damaged key file")
        .expect("wait for precis");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), log)
}

#[tokio::test]
async fn a_damaged_key_file_stops_the_start_with_what_to_do_and_is_left_alone() {
    let mut server = setup().start();
    server.stop().await;
    for (file, damage) in [("events.secret", "0123456789abcdef\n"), ("user.key", "")] {
        let path = server.logs_dir().join(file);
        let good = std::fs::read(&path).expect("read the key file");
        std::fs::write(&path, damage).expect("damage it");
        let (code, log) = serve_until_it_exits(server.root()).await;
        assert_eq!(code, Some(1), "{file}: {log}");
        assert!(
            log.contains(&format!("logs/{file} is damaged"))
                && log.contains("restore it from a backup"),
            "{file}: {log}"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), damage);
        std::fs::write(&path, good).expect("restore it");
    }
    // Restored from the backup: it starts again.
    server.restart(&[]).await;
    assert!(server.bid(&from("anyone")).await.is_some());
}
