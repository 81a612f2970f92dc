//! Hot reload end to end: campaign files edited, broken, fixed, added and deleted under a running
//! bidder, and reloads asked for by SIGHUP and `POST /admin/reload`; files that could hurt it
//! (half-written, oversized, claiming a live id, linking out of the directory) and a directory
//! emptied or deleted, while the last good set serves. Every wait is a poll to a deadline.

#[allow(dead_code)]
mod common;

use common::{Campaign, Server, banner_request, parse_json, with};
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
    entry(status, "refused", name)
}

/// The entry of `/status`'s list `list` (`refused`, `pending`) whose path ends with `name`.
fn entry(status: &Value, list: &str, name: &str) -> Option<Value> {
    status[list]
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
async fn two_files_claiming_one_id_are_both_refused_and_the_one_serving_keeps_serving() {
    let server = shoes_bidding().await;

    // Would outbid shoes if it loaded, and sorts before shoes.toml: the id `shoes` at 9.0.
    server.write_campaign("a-twin.toml", &rect(9.0).top(r#"id = "shoes""#).toml());
    let twin_refused = until_refused(&server, "a-twin.toml").await;
    let status = server.status().await;
    let shoes_refused = refused_entry(&status, "shoes.toml").expect("shoes.toml refused too");
    let twin = server.campaign_path("a-twin.toml").display().to_string();
    let shoes = server.campaign_path("shoes.toml").display().to_string();
    let says = |path: &str, other: &str| {
        json!([format!(
            "{path}:1:1: campaign id `shoes` is also used by {other}: both files are refused until one of them changes its `id` ({shoes} keeps serving its last good version)"
        )])
    };
    assert_eq!(
        twin_refused["errors"],
        says(&twin, &shoes),
        "{twin_refused}"
    );
    assert_eq!(twin_refused["serving_last_good"], false, "{twin_refused}");
    assert_eq!(
        shoes_refused["errors"],
        says(&shoes, &twin),
        "{shoes_refused}"
    );
    assert_eq!(shoes_refused["serving_last_good"], true, "{shoes_refused}");
    assert_only_shoes_live(&server).await;
    until_winner(&server, "shoes", 2.0).await;

    // The twin renamed away: shoes is no longer refused, and still the one serving.
    server.remove_campaign("a-twin.toml");
    server
        .eventually("nothing refused", async || {
            let status = server.status().await;
            match status["refused"].as_array() {
                Some(refused) if refused.is_empty() => Ok(()),
                _ => Err(status["refused"].to_string()),
            }
        })
        .await;
    assert_only_shoes_live(&server).await;
    until_winner(&server, "shoes", 2.0).await;
}

#[tokio::test]
async fn only_the_file_that_changed_is_read_again() {
    let server = Server::setup()
        .campaign("shoes.toml", rect(2.0))
        .campaign("hats.toml", rect(1.0))
        .campaign("boots.toml", rect(1.5))
        .start();
    until_winner(&server, "shoes", 2.0).await;
    let read = "precis_campaign_files_read_total";
    assert_eq!(server.metric(read).await, 3.0, "each file once at start");

    server.write_campaign("hats.toml", &rect(4.0).toml());
    until_winner(&server, "hats", 4.0).await;
    assert_eq!(server.metric(read).await, 4.0, "hats.toml alone again");

    // Nothing changed: a reload reads nothing.
    let (status, _, body) = server.admin_post("/admin/reload").await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let reloaded = parse_json(&body);
    assert_eq!(reloaded["files_read"], 0, "{reloaded}");
    assert_eq!(
        reloaded["live"],
        json!(["hats", "shoes", "boots"]),
        "{reloaded}"
    );
    assert_eq!(server.metric(read).await, 4.0);
}

#[tokio::test]
async fn a_new_file_is_picked_up_and_a_deleted_file_stops_bidding() {
    let server = shoes_bidding().await;

    server.write_campaign("hats.toml", &rect(5.0).toml());
    until_winner(&server, "hats", 5.0).await;

    server.remove_campaign("hats.toml");
    until_winner(&server, "shoes", 2.0).await;
    assert_only_shoes_live(&server).await;
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
    // No quiet period: a reload reads what is there, however new.
    let server = Server::setup()
        .campaign("shoes.toml", rect(2.0))
        .arg("--reload-quiet-ms=0")
        .start();
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

/// A 300x250 request from France.
fn from_france() -> Value {
    with(
        banner_request(300, 250),
        json!({ "device": { "geo": { "country": "FRA" } } }),
    )
}

/// A 300x250 request from the US.
fn from_us() -> Value {
    with(
        banner_request(300, 250),
        json!({ "device": { "geo": { "country": "USA" } } }),
    )
}

#[tokio::test]
async fn a_file_written_in_two_parts_never_bids_half_written() {
    // shoes everywhere at 2.0, and `france` at 5.0 in France only. A quiet period of 3 s: long
    // enough that the test sees the file pending before it settles, on a busy machine too.
    let france_only = rect(5.0).target(r#"countries = ["FRA"]"#);
    let server = Server::setup()
        .campaign("shoes.toml", rect(2.0))
        .campaign("france.toml", france_only)
        .arg("--reload-quiet-ms=3000")
        .start();
    let (us, france) = (from_us(), from_france());
    let winner = async |request| server.winner_and_price(request).await;
    assert_eq!(winner(&us).await, Some(("shoes".to_owned(), 2.0)));
    assert_eq!(winner(&france).await, Some(("france".to_owned(), 5.0)));

    // Edited in place at 6.0, in two writes: the first alone is a whole campaign that would bid
    // everywhere.
    let first = rect(6.0).toml();
    let rest = "\n[targeting]\ncountries = [\"FRA\"]\n";
    let path = server.campaign_path("france.toml");
    std::fs::write(&path, &first).expect("write the first part");
    let pending = server
        .eventually("france.toml to be pending", async || {
            // Meanwhile the last good version serves.
            assert_eq!(winner(&us).await, Some(("shoes".to_owned(), 2.0)));
            assert_eq!(winner(&france).await, Some(("france".to_owned(), 5.0)));
            let status = server.status().await;
            entry(&status, "pending", "france.toml").ok_or_else(|| status.to_string())
        })
        .await;
    assert_eq!(pending["serving_last_good"], true, "{pending}");
    assert_eq!(
        pending["why"], "the file is still being written",
        "{pending}"
    );

    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open to append");
    std::io::Write::write_all(&mut file, rest.as_bytes()).expect("write the rest");
    drop(file);
    server
        .eventually("the whole edit to serve", async || {
            // Until it does, the US is still shoes' alone: the first part never served.
            assert_eq!(winner(&us).await, Some(("shoes".to_owned(), 2.0)));
            match winner(&france).await {
                Some((cid, price)) if cid == "france" && price == 6.0 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    assert_eq!(winner(&us).await, Some(("shoes".to_owned(), 2.0)));
    let status = server.status().await;
    assert_eq!(status["pending"], json!([]), "{status}");
    assert_eq!(status["refused"], json!([]), "{status}");
}

#[tokio::test]
async fn an_oversized_file_or_markup_is_refused_while_the_last_good_set_serves() {
    let server = Server::setup()
        .campaign("shoes.toml", rect(2.0))
        .arg("--reload-max-file-bytes=4096")
        .arg("--reload-max-adm-bytes=512")
        .start();
    until_winner(&server, "shoes", 2.0).await;

    // An edit that would raise the price, padded past the file limit.
    let padded = rect(9.0).top(&format!("# {}", "x".repeat(5000))).toml();
    server.write_campaign("shoes.toml", &padded);
    // A new campaign whose markup is over its limit.
    let markup = format!(
        "<img src=\"https://cdn.advertiser.example/{}.png\">",
        "a".repeat(600)
    );
    let heavy = Campaign::cpm(8.0).creative(&format!(
        "id = \"heavy\"\nformat = \"banner\"\nw = 300\nh = 250\nadm = '{markup}'\n\
         landing = \"https://advertiser.example/\""
    ));
    let heavy = heavy.toml();
    server.write_campaign("heavy.toml", &heavy);

    let oversized = until_refused(&server, "shoes.toml").await;
    let path = server.campaign_path("shoes.toml").display().to_string();
    assert_eq!(
        oversized["errors"],
        json!([format!(
            "{path}:1:1: the file is {} bytes or more, over the limit of 4096 for a campaign file ([reload] max_file_bytes): it was not read",
            padded.len()
        )]),
        "{oversized}"
    );
    assert_eq!(oversized["serving_last_good"], true, "{oversized}");

    let refused = until_refused(&server, "heavy.toml").await;
    // The adm value starts on its line after `adm = `.
    let line = heavy
        .lines()
        .position(|l| l.starts_with("adm = "))
        .expect("an adm line")
        + 1;
    let path = server.campaign_path("heavy.toml").display().to_string();
    assert_eq!(
        refused["errors"],
        json!([format!(
            "{path}:{line}:7: creative `heavy`: `adm` is {} bytes, over the limit of 512 ([reload] max_adm_bytes): every bid carries it, so host images and video elsewhere and link to them",
            markup.len()
        )]),
        "{refused}"
    );
    assert_eq!(refused["serving_last_good"], false, "{refused}");
    assert_only_shoes_live(&server).await;
    until_winner(&server, "shoes", 2.0).await;
}

#[tokio::test]
async fn a_link_out_of_the_campaign_directory_is_refused_and_one_within_it_loads() {
    let server = shoes_bidding().await;
    let outside = server.root().join("elsewhere.toml");
    std::fs::write(&outside, rect(9.0).toml()).expect("write outside");
    let shared = server.campaign_dir().join("shared");
    std::fs::create_dir(&shared).expect("subdirectory");
    std::fs::write(shared.join("boots.toml"), rect(3.0).toml()).expect("write inside");

    let link = server.campaign_path("stolen.toml");
    std::os::unix::fs::symlink(&outside, &link).expect("link out");
    std::os::unix::fs::symlink("shared/boots.toml", server.campaign_path("boots.toml"))
        .expect("link within");

    let refused = until_refused(&server, "stolen.toml").await;
    let target = std::fs::canonicalize(&outside).expect("canonical");
    assert_eq!(
        refused["errors"],
        json!([format!(
            "{}:1:1: a link to {}, outside the campaign directory: links are followed only within it (copy the file in instead)",
            link.display(),
            target.display()
        )]),
        "{refused}"
    );
    assert_eq!(refused["serving_last_good"], false, "{refused}");
    until_winner(&server, "boots", 3.0).await;
    let status = server.status().await;
    assert_eq!(status["live"], json!(["boots", "shoes"]), "{status}");
}

#[tokio::test]
async fn an_emptied_campaign_directory_keeps_the_last_good_set_serving() {
    let server = shoes_bidding().await;
    server.remove_campaign("shoes.toml");
    let status = server
        .eventually("the set to be held", async || {
            let status = server.status().await;
            match status["held"].as_str() {
                Some(_) => Ok(status),
                None => Err(status.to_string()),
            }
        })
        .await;
    let dir = server.campaign_dir().display().to_string();
    assert_eq!(
        status["held"],
        format!(
            "the campaign directory {dir} holds no campaign file: the last good set keeps serving"
        ),
        "{status}"
    );
    assert_eq!(server.metric("precis_campaign_set_held").await, 1.0);
    assert_only_shoes_live(&server).await;
    until_winner(&server, "shoes", 2.0).await;
    assert!(
        server.log().contains("holds no campaign file"),
        "{}",
        server.log()
    );

    // A file in it again: the directory is followed again, and only its file serves.
    server.write_campaign("hats.toml", &rect(5.0).toml());
    until_winner(&server, "hats", 5.0).await;
    let status = server.status().await;
    assert_eq!(status["live"], json!(["hats"]), "{status}");
    assert_eq!(status["held"], Value::Null, "{status}");
}

#[tokio::test]
async fn a_directory_deleted_file_by_file_never_publishes_a_partial_or_empty_set() {
    let names = ["a.toml", "b.toml", "c.toml", "d.toml", "e.toml"];
    let server = Server::setup()
        .campaigns(names.iter().zip(1..).map(|(&n, i)| (n, rect(f64::from(i)))))
        .arg("--reload-quiet-ms=3000")
        .start();
    until_winner(&server, "e", 5.0).await;
    let all = json!(["e", "d", "c", "b", "a"]);
    assert_eq!(server.status().await["live"], all);

    // Half-way through a deletion, once the bidder has looked: nothing is gone yet.
    let before = generation(&server).await;
    for name in &names[..2] {
        server.remove_campaign(name);
    }
    let status = server
        .eventually("a reload after the first deletions", async || {
            let status = server.status().await;
            match status["generation"].as_u64() {
                Some(now) if now > before => Ok(status),
                _ => Err(status.to_string()),
            }
        })
        .await;
    assert_eq!(status["live"], all, "{status}");

    // The rest, then the directory.
    for name in &names[2..] {
        server.remove_campaign(name);
    }
    std::fs::remove_dir(server.campaign_dir()).expect("remove the directory");
    let status = server
        .eventually("the set to be held", async || {
            let status = server.status().await;
            match status["held"].as_str() {
                Some(held) if held.starts_with("cannot read the campaign directory") => Ok(status),
                _ => Err(status.to_string()),
            }
        })
        .await;
    assert_eq!(status["live"], all, "{status}");
    until_winner(&server, "e", 5.0).await;
    // No reload published anything but the whole set.
    let log = server.log();
    let loads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("campaigns loaded"))
        .collect();
    assert!(!loads.is_empty(), "{log}");
    for load in &loads {
        assert!(load.contains("live=5"), "{load}\n{log}");
    }

    // Made again with one file: after the quiet period, that file alone serves.
    std::fs::create_dir(server.campaign_dir()).expect("make the directory");
    server.write_campaign("boots.toml", &rect(3.0).toml());
    until_winner(&server, "boots", 3.0).await;
    let status = server.status().await;
    assert_eq!(status["live"], json!(["boots"]), "{status}");
    assert_eq!(status["held"], Value::Null, "{status}");
}
