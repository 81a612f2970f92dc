//! Hot reload end to end: campaign files edited, broken, fixed, added and deleted under a running
//! bidder, and reloads asked for by SIGHUP and `POST /admin/reload`. Every wait is a poll to a deadline.

#[allow(dead_code)]
mod common;

use common::{Campaign, Server, banner_request, parse_json};
use hyper::StatusCode;
use serde_json::{Value, json};

fn rect(cpm: f64) -> Campaign {
    Campaign::cpm(cpm).banner(300, 250)
}

/// A bidder with one campaign, `shoes`: 2.0 CPM for 300x250.
fn shoes() -> Server {
    Server::start([("shoes.toml", rect(2.0))])
}

/// [`shoes`], once it is seen to bid.
async fn shoes_bidding() -> Server {
    let server = shoes();
    until_winner(&server, "shoes", 2.0).await;
    server
}

/// Asserts that `/status` lists `shoes` as the only live campaign; returns the status.
async fn assert_only_shoes_live(server: &Server) -> Value {
    let status = server.status().await;
    assert_eq!(status["live"], json!(["shoes"]), "{status}");
    status
}

/// Polls until the 300x250 request is won by `cid` at `price`.
async fn until_winner(server: &Server, cid: &str, price: f64) {
    let request = banner_request(300, 250);
    server
        .eventually(&format!("{cid} to win at {price}"), async || {
            match server.winner_and_price(&request).await {
                Some((won, paid)) if won == cid && (paid - price).abs() < 1e-9 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
}

/// The `/status` entry for a refused file whose path ends with `name`, once there is one.
async fn until_refused(server: &Server, name: &str) -> Value {
    server
        .eventually(&format!("{name} to be refused"), async || {
            let status = server.status().await;
            refused_entry(&status, name).ok_or_else(|| status.to_string())
        })
        .await
}

fn refused_entry(status: &Value, name: &str) -> Option<Value> {
    status["refused"]
        .as_array()?
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with(name)))
        .cloned()
}

async fn generation(server: &Server) -> u64 {
    server.status().await["generation"]
        .as_u64()
        .expect("numeric generation")
}

#[tokio::test]
async fn an_edited_campaign_takes_effect_without_a_restart() {
    let server = shoes_bidding().await;
    server.write_campaign("shoes.toml", &rect(3.0).toml());
    until_winner(&server, "shoes", 3.0).await;
    // Edited in place (truncate and write, as many editors do) rather than replaced.
    std::fs::write(server.campaign_path("shoes.toml"), rect(3.5).toml()).unwrap();
    until_winner(&server, "shoes", 3.5).await;
    assert!(refused_entry(&server.status().await, "shoes.toml").is_none());
}

#[tokio::test]
async fn a_broken_edit_keeps_the_last_good_version_serving_until_it_is_fixed() {
    let server = shoes_bidding().await;

    // A typo'd key, and a new price that must not take effect while the file is broken.
    let broken = rect(9.0).top(r#"colour = "red""#).toml();
    server.write_campaign("shoes.toml", &broken);
    let refused = until_refused(&server, "shoes.toml").await;

    assert_eq!(refused["serving_last_good"], true, "{refused}");
    let errors: Vec<&str> = refused["errors"]
        .as_array()
        .expect("errors list")
        .iter()
        .map(|e| e.as_str().expect("error text"))
        .collect();
    let path = server.campaign_path("shoes.toml").display().to_string();
    // `colour` is on line 1, column 1 of the broken file.
    let at = format!("{path}:1:1: ");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&at) && e.contains("colour")),
        "errors should point at {at} and name `colour`: {errors:?}"
    );
    // Still serving the old price, and still live.
    let (cid, price) = server
        .winner_and_price(&banner_request(300, 250))
        .await
        .expect("the last good version still bids");
    assert_eq!((cid.as_str(), price), ("shoes", 2.0));
    assert_only_shoes_live(&server).await;
    let metrics = server.metrics().await;
    assert_eq!(metrics["precis_campaign_files_refused"], 1.0, "{metrics:?}");

    server.write_campaign("shoes.toml", &rect(4.0).toml());
    until_winner(&server, "shoes", 4.0).await;
    let status = server.status().await;
    assert_eq!(status["refused"], json!([]), "{status}");
}

#[tokio::test]
async fn a_new_broken_file_is_not_loaded_and_does_not_disturb_the_others() {
    let server = shoes_bidding().await;

    // Would outbid shoes if it loaded: a wrong type for cpm.
    let broken = "adomain = [\"hats.example\"]\n[pricing]\nmodel = \"cpm\"\ncpm = \"lots\"\n";
    server.write_campaign("hats.toml", broken);
    let refused = until_refused(&server, "hats.toml").await;
    assert_eq!(refused["serving_last_good"], false, "{refused}");
    let path = server.campaign_path("hats.toml").display().to_string();
    let errors = refused["errors"].to_string();
    assert!(errors.contains(&format!("{path}:4:")), "{errors}");

    let status = assert_only_shoes_live(&server).await;
    assert_eq!(status["campaigns_loaded"], 1, "{status}");
    until_winner(&server, "shoes", 2.0).await;
}

#[tokio::test]
async fn a_second_file_claiming_a_campaign_id_in_use_is_refused() {
    let server = shoes_bidding().await;

    // Would outbid shoes if it loaded: the id `shoes`, in a file after shoes.toml by path.
    server.write_campaign("twin.toml", &rect(9.0).top(r#"id = "shoes""#).toml());
    let refused = until_refused(&server, "twin.toml").await;
    assert_eq!(refused["serving_last_good"], false, "{refused}");
    let path = server.campaign_path("twin.toml").display().to_string();
    let owner = server.campaign_path("shoes.toml").display().to_string();
    assert_eq!(
        refused["errors"],
        json!([format!(
            "{path}:1:1: campaign id `shoes` is already used by {owner}"
        )]),
        "{refused}"
    );
    assert_only_shoes_live(&server).await;
    until_winner(&server, "shoes", 2.0).await;
}

#[tokio::test]
async fn a_new_file_is_picked_up_and_a_deleted_file_stops_bidding() {
    let server = shoes_bidding().await;

    server.write_campaign("hats.toml", &rect(5.0).toml());
    until_winner(&server, "hats", 5.0).await;

    server.remove_campaign("hats.toml");
    until_winner(&server, "shoes", 2.0).await;
    assert_only_shoes_live(&server).await;

    server.remove_campaign("shoes.toml");
    let request = banner_request(300, 250);
    server
        .eventually("no campaign left to bid", async || {
            match server.bid(&request).await {
                None => Ok(()),
                Some(response) => Err(response.to_string()),
            }
        })
        .await;
}

#[tokio::test]
async fn admin_reload_answers_the_new_status_and_bumps_the_generation() {
    let server = shoes();
    let before = generation(&server).await;
    assert!(before >= 1, "the first load is generation 1");

    let (status, headers, body) = server.admin_post("/admin/reload").await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(headers["content-type"], "application/json");
    let reloaded = parse_json(&body);
    let after = reloaded["generation"].as_u64().expect("generation");
    assert!(after > before, "generation {before} then {after}");
    assert_eq!(reloaded["live"], json!(["shoes"]), "{reloaded}");
    assert_eq!(reloaded["refused"], json!([]), "{reloaded}");
    assert!(generation(&server).await >= after);

    let (status, _, _) = server.admin_get("/admin/reload").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn admin_reload_reports_a_refused_file() {
    let server = shoes();
    let unknown_zone = rect(2.0).top(r#"timezone = "Mars/Olympus""#).toml();
    // Written under a name the watcher also sees; whichever reload comes first, the answer to
    // /admin/reload is made after the file is in place, so it must report it.
    server.write_campaign("mars.toml", &unknown_zone);
    let (status, _, body) = server.admin_post("/admin/reload").await;
    assert_eq!(status, StatusCode::OK);
    let reloaded = parse_json(&body);
    let refused = refused_entry(&reloaded, "mars.toml").unwrap_or_else(|| panic!("{reloaded}"));
    assert!(
        refused["errors"].to_string().contains("unknown time zone"),
        "{refused}"
    );
    assert_eq!(refused["serving_last_good"], false);
}

#[tokio::test]
async fn sighup_triggers_a_reload() {
    let server = shoes();
    let before = generation(&server).await;
    server.signal("HUP");
    server
        .eventually("a reload after SIGHUP", async || {
            let now = generation(&server).await;
            if now > before {
                Ok(())
            } else {
                Err(format!("generation {now}"))
            }
        })
        .await;
    assert!(server.log().contains("SIGHUP"), "{}", server.log());
    let metrics = server.metrics().await;
    assert!(metrics["precis_reloads_total"] >= 1.0, "{metrics:?}");
    // Still serving after the reload.
    until_winner(&server, "shoes", 2.0).await;
}
