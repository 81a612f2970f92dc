//! Audience packages and the tag taxonomy, end to end against the real binary: who gets a
//! package's campaign and creative, exclusions, live edits of package files (and a broken one
//! keeping its last good version), `precis check` with a taxonomy, and a retargeting package built
//! by `precis audience build` from the log of real win, impression, click and conversion calls.

#[allow(dead_code)]
mod common;

use std::process::Command;

use common::{Campaign, PRECIS, Server, banner_request, bids, check, event_urls, str_of, with};
use serde_json::{Value, json};

/// A banner request from the user with this key (`user.id`), or from no one.
fn from(user: Option<&str>) -> Value {
    match user {
        Some(id) => with(banner_request(300, 250), json!({ "user": { "id": id } })),
        None => banner_request(300, 250),
    }
}

/// `(campaign, creative)` of the single bid `user` gets, or `None` for no bid.
async fn served(server: &Server, user: Option<&str>) -> Option<(String, String)> {
    let response = server.bid(&from(user)).await?;
    let bid = &bids(&response)[0];
    Some((
        str_of(bid, "cid").to_owned(),
        str_of(bid, "crid").to_owned(),
    ))
}

fn pair(campaign: &str, creative: &str) -> Option<(String, String)> {
    Some((campaign.to_owned(), creative.to_owned()))
}

/// The SHA-256 of a key in hex, as an advertiser exports a hashed list.
fn sha256_hex(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The package campaign (`fans`, CPM 3, with a creative for everyone and then one for the `vip`
/// package) and a campaign for everyone (`anyone`, CPM 1).
fn fan_campaigns() -> [(&'static str, String); 2] {
    let fans = Campaign::cpm(3.0)
        .target(r#"audiences_any = ["fans"]"#)
        .banner(300, 250)
        .creative(
            "id = \"vip\"\naudiences_any = [\"vip\"]\nformat = \"banner\"\nw = 300\nh = 250\n\
             adm = \"<a href='${CLICK_URL}'>vip</a>\"\nlanding = \"https://advertiser.example/vip\"",
        );
    [
        ("fans.toml", fans.toml()),
        ("anyone.toml", Campaign::cpm(1.0).banner(300, 250).toml()),
    ]
}

#[tokio::test]
async fn a_user_in_a_package_gets_its_campaign_and_its_creative_and_others_do_not() {
    let vip = format!(
        "# keys: sha256\nuser,since\n{},2026-01-01\n",
        sha256_hex("fan-2")
    );
    let server = Server::setup()
        .campaigns(fan_campaigns())
        .audience("fans.txt", "# keys: raw\nfan-1\nfan-2\n")
        .audience("vip.csv", &vip)
        .start();
    assert_eq!(
        served(&server, Some("fan-1")).await,
        pair("fans", "b300x250")
    );
    assert_eq!(served(&server, Some("fan-2")).await, pair("fans", "vip"));
    assert_eq!(
        served(&server, Some("stranger")).await,
        pair("anyone", "b300x250")
    );
    assert_eq!(served(&server, None).await, pair("anyone", "b300x250"));

    let status = server.status().await;
    let packages = &status["audiences"]["packages"];
    assert_eq!(packages[0]["name"], "fans", "{status}");
    assert_eq!(packages[0]["users"], 2);
    assert_eq!(packages[1]["keys"], "sha256");
    assert!(packages[1]["bytes"].as_u64().is_some_and(|b| b > 0));
    assert_eq!(
        server
            .metric(r#"precis_audience_users{package="fans"}"#)
            .await,
        2.0
    );
    assert_eq!(
        server
            .metric(r#"precis_audience_users{package="vip"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn an_excluded_package_vetoes_its_users_but_not_requests_without_a_user() {
    let everyone_but_buyers = Campaign::cpm(2.0)
        .exclude(r#"audiences = ["buyers"]"#)
        .banner(300, 250);
    let server = Server::setup()
        .campaign("promo.toml", everyone_but_buyers.toml())
        .audience("buyers.txt", "buyer-1\n")
        .start();
    assert_eq!(served(&server, Some("buyer-1")).await, None);
    assert_eq!(
        served(&server, Some("someone")).await,
        pair("promo", "b300x250")
    );
    assert_eq!(served(&server, None).await, pair("promo", "b300x250"));
}

#[tokio::test]
async fn a_package_edit_is_live_and_a_broken_one_keeps_its_last_good_version() {
    let server = Server::setup()
        .campaigns(fan_campaigns())
        .audience("fans.txt", "fan-1\n")
        .audience("vip.txt", "")
        .start();
    assert_eq!(
        served(&server, Some("fan-3")).await,
        pair("anyone", "b300x250")
    );

    server.write_audience("fans.txt", "fan-1\nfan-3\n");
    server
        .eventually("fan-3 to join the package", async || {
            match served(&server, Some("fan-3")).await {
                Some((campaign, _)) if campaign == "fans" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;

    server.write_audience("fans.txt", "# keys: uid\nfan-1\n");
    let refused = server
        .eventually("the broken package to be refused", async || {
            let status = server.status().await;
            match status["audiences"]["refused"].get(0) {
                Some(refused) => Ok(refused.clone()),
                None => Err(status["audiences"].to_string()),
            }
        })
        .await;
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(
        error.ends_with("fans.txt:2: `fan-1` is not a uid key (16 hex digits)"),
        "{refused}"
    );
    assert_eq!(refused["serving_last_good"], true);
    assert_eq!(
        served(&server, Some("fan-3")).await,
        pair("fans", "b300x250")
    );
    assert_eq!(server.metric("precis_audience_files_refused").await, 1.0);
}

#[tokio::test]
async fn a_campaign_naming_a_package_that_does_not_exist_is_refused() {
    let typo = Campaign::cpm(2.0)
        .target(r#"audiences_any = ["fnas"]"#)
        .banner(300, 250);
    let server = Server::setup()
        .campaign("typo.toml", typo.toml())
        .audience("fans.txt", "fan-1\n")
        .start();
    let status = server.status().await;
    let errors = status["refused"][0]["errors"].to_string();
    assert!(
        errors.contains("unknown audience package `fnas`: no audiences/fnas.txt or .csv"),
        "{status}"
    );
    assert_eq!(served(&server, Some("fan-1")).await, None);
}

const TAXONOMY: &str = "roots = [\"sports\", \"travel\"]\n\n[children]\n\
                        sports = [\"running\", \"cycling\"]\n\"sports/running\" = [\"trail\"]\n";

#[test]
fn check_refuses_tags_outside_the_taxonomy_and_unknown_packages_with_suggestions() {
    let root = tempfile::tempdir().expect("temp dir");
    let campaigns = root.path().join("campaigns");
    std::fs::create_dir(&campaigns).expect("campaign dir");
    std::fs::write(campaigns.join("taxonomy.toml"), TAXONOMY).expect("taxonomy");
    let good = Campaign::cpm(2.0)
        .target(r#"tags_any = ["sports/running/trail", "travel"]"#)
        .banner(300, 250);
    std::fs::write(campaigns.join("good.toml"), good.toml()).expect("write");
    let output = check(root.path(), None, &[&campaigns]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("checked against a taxonomy of 5 tags"),
        "{out}"
    );

    let bad = Campaign::cpm(2.0)
        .target(r#"tags_any = ["sports/running", "sports/outdoor/running"]"#)
        .target(r#"audiences_any = ["fans"]"#)
        .exclude(r#"tags = ["sprots"]"#)
        .banner(300, 250);
    std::fs::write(campaigns.join("bad.toml"), bad.toml()).expect("write");
    let output = check(root.path(), None, &[&campaigns]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let bad_path = campaigns.join("bad.toml");
    let line = |needle: &str| {
        bad.toml()
            .lines()
            .position(|l| l.contains(needle))
            .map_or(0, |i| i + 1)
    };
    let expected = [
        format!(
            // Pointed at the element itself, not at its list.
            "{}:{}:32: tag `sports/outdoor/running` is not in the taxonomy: did you mean `sports/running`?",
            bad_path.display(),
            line("outdoor")
        ),
        format!(
            "{}:{}:10: tag `sprots` is not in the taxonomy: did you mean `sports`?",
            bad_path.display(),
            line("sprots")
        ),
        format!(
            "{}:{}:19: unknown audience package `fans`: no audiences/fans.txt or .csv is loaded",
            bad_path.display(),
            line("audiences_any")
        ),
    ];
    for line in &expected {
        assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
    }

    // A broken taxonomy is an error of its own, at its line.
    std::fs::write(
        campaigns.join("taxonomy.toml"),
        "roots = [\"sports\"]\n[children]\nfood = [\"x\"]\n",
    )
    .expect("write");
    std::fs::remove_file(&bad_path).expect("remove");
    let output = check(root.path(), None, &[&campaigns]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains("taxonomy.toml:3:1: `food` is not in the tree"),
        "{out}"
    );
}

/// Bids for `user` on `shoes`, then sends the win, the impression and the click; returns the
/// click token the landing page gets.
async fn clicked(server: &Server, user: &str) -> String {
    let response = server.bid(&from(Some(user))).await.expect("a bid");
    let (win, imp, click) = event_urls(&bids(&response)[0]);
    for url in [win, imp] {
        let (status, _, body) = server.get(&url).await;
        assert!(status.is_success(), "{url}: {status} {body:?}");
    }
    let (status, headers, _) = server.get(&click).await;
    assert_eq!(status.as_u16(), 302);
    let location = headers["location"].to_str().expect("ascii");
    location.split_once("pclid=").expect("a pclid").1.to_owned()
}

fn audience_build(server: &Server, extra: &[&str]) -> String {
    let out = server.audience_dir().join("retarget.txt");
    let output = Command::new(PRECIS)
        .args(["audience", "build", "--from-logs"])
        .arg(server.logs_dir())
        .args(["--clicked", "shoes", "--days", "30", "--out"])
        .arg(&out)
        .args(extra)
        .output()
        .expect("run precis audience build");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn audience_build_makes_a_retargeting_package_from_real_events() {
    let mut server = Server::setup()
        .campaign("shoes.toml", Campaign::cpm(1.0).banner(300, 250).toml())
        .audience("README.txt", "# packages live here\n")
        .env("PRECIS_SECRET", "audience-test-secret-of-some-length")
        .start();
    let alice = clicked(&server, "alice").await;
    clicked(&server, "bob").await;
    // Carol sees the ad and never clicks.
    server.bid(&from(Some("carol"))).await.expect("a bid");
    let (status, _, _) = server.get(&format!("/conv?pclid={alice}&value=80")).await;
    assert!(status.is_success(), "conversion: {status}");
    server.stop().await;

    assert!(audience_build(&server, &[]).starts_with("wrote 2 user(s)"));
    // A mistyped campaign is an error naming the campaigns the log holds, not an empty package.
    let typo = server.audience_dir().join("typo.txt");
    let output = Command::new(PRECIS)
        .args(["audience", "build", "--from-logs"])
        .arg(server.logs_dir())
        .args(["--clicked", "shoe", "--days", "30", "--out"])
        .arg(&typo)
        .output()
        .expect("run precis audience build");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("campaign `shoe` appears in no event") && stderr.contains(": shoes"),
        "{stderr}"
    );
    assert!(!typo.exists(), "no package is written");
    let built = audience_build(&server, &["--not-converted"]);
    assert!(built.starts_with("wrote 1 user(s)"), "{built}");
    let package =
        std::fs::read_to_string(server.audience_dir().join("retarget.txt")).expect("read");
    assert!(package.starts_with("# keys: precis\n"), "{package}");

    // Served again under the same secret: only Bob (clicked, did not buy) is retargeted.
    let retarget = Campaign::cpm(5.0)
        .target(r#"audiences_any = ["retarget"]"#)
        .banner(300, 250);
    server.write_campaign("retarget.toml", &retarget.toml());
    server.restart(&[]).await;
    assert_eq!(
        served(&server, Some("bob")).await,
        pair("retarget", "b300x250")
    );
    assert_eq!(
        served(&server, Some("alice")).await,
        pair("shoes", "b300x250")
    );
    assert_eq!(
        served(&server, Some("carol")).await,
        pair("shoes", "b300x250")
    );
}

#[tokio::test]
async fn live_reloads_check_tags_and_a_broken_taxonomy_keeps_the_last_good_one() {
    let running = Campaign::cpm(2.0)
        .target(r#"tags_any = ["sports/running"]"#)
        .banner(300, 250);
    let server = Server::setup()
        .campaign("taxonomy.toml", TAXONOMY)
        .campaign("running.toml", running.toml())
        .start();
    let runner = with(
        banner_request(300, 250),
        json!({ "user": { "keywords": "sports/running/trail" } }),
    );
    assert_eq!(server.winner(&runner).await.as_deref(), Some("running"));

    server.write_campaign("taxonomy.toml", "roots = [\"sports\"\n");
    let typo = Campaign::cpm(9.0)
        .target(r#"tags_any = ["sport/running"]"#)
        .banner(300, 250);
    server.write_campaign("typo.toml", &typo.toml());
    let status = server
        .eventually("the taxonomy and the typo to be refused", async || {
            let status = server.status().await;
            match status["refused"].as_array().map(Vec::len) {
                Some(2) => Ok(status),
                _ => Err(status["refused"].to_string()),
            }
        })
        .await;
    let refused = status["refused"].to_string();
    assert!(refused.contains("taxonomy.toml:1:"), "{refused}");
    assert!(
        refused
            .contains("tag `sport/running` is not in the taxonomy: did you mean `sports/running`?"),
        "{refused}"
    );
    assert_eq!(
        status["taxonomy"]["tags"], 5,
        "the last good taxonomy applies"
    );
    assert_eq!(server.winner(&runner).await.as_deref(), Some("running"));
}
