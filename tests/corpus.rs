//! Real-world bid requests (`tests/fixtures/openrtb-corpus`, copied with their sources and licences) against a broad campaign set: the bidder
//! answers every valid request with a bid or a no-bid, never an error, and every bid it makes is a
//! well-formed OpenRTB response that respects the request. Invalid ones (carried here, in
//! `tests/fixtures/invalid-requests`) each get the answer their flaw calls for: 400 or no bid.

#[allow(dead_code)]
mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{Campaign, Server, bids, parse_json, price_of, str_of};
use hyper::StatusCode;
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openrtb-corpus");

/// What each creative of the campaign set fits, by `crid`.
enum Fits {
    Banner(u64, u64),
    Video,
    Native,
}

fn creative_fits(crid: &str) -> Fits {
    match crid {
        "video" => Fits::Video,
        "native" => Fits::Native,
        banner => {
            let (w, h) = banner
                .strip_prefix('b')
                .and_then(|s| s.split_once('x'))
                .unwrap_or_else(|| panic!("unknown creative {crid}"));
            Fits::Banner(w.parse().unwrap(), h.parse().unwrap())
        }
    }
}

fn corpus_server() -> Server {
    let adomain: &[(&str, &[&str])] = &[
        ("display", &["shoes.example"]),
        ("tall", &["books.example"]),
        ("video", &["films.example"]),
        ("native", &["news.example"]),
    ];
    let domains: HashMap<_, _> = adomain.iter().copied().collect();
    let display = Campaign::cpm(4.0)
        .adomain(domains["display"])
        .top(r#"cat = ["IAB22"]"#)
        .banner(300, 250)
        .banner(728, 90)
        .banner(320, 50);
    let tall = Campaign::cpm(2.5)
        .adomain(domains["tall"])
        .banner(300, 600)
        .banner(468, 60)
        .banner(300, 250);
    let video = Campaign::cpm(6.0).adomain(domains["video"]).video();
    let native = Campaign::cpm(3.0).adomain(domains["native"]).native();
    Server::start([
        ("display.toml", display),
        ("tall.toml", tall),
        ("video.toml", video),
        ("native.toml", native),
    ])
}

/// The `.json` files directly in `dir`, sorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// A JSON number, or a string holding one (exchanges send both).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string, or a number written where a string belongs.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The strings of a JSON array, lower-cased; nothing when it is not an array.
fn lowercase_strings(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Does the bid's creative fit the slot the imp offers?
fn fits(imp: &Value, crid: &str, w: Option<u64>, h: Option<u64>) -> bool {
    match creative_fits(crid) {
        Fits::Banner(cw, ch) => {
            let banner = &imp["banner"];
            let offered = std::iter::once(banner)
                .chain(banner["format"].as_array().into_iter().flatten())
                .any(|f| number(&f["w"]) == Some(cw as f64) && number(&f["h"]) == Some(ch as f64));
            offered && (w, h) == (Some(cw), Some(ch))
        }
        Fits::Video => imp["video"].is_object(),
        Fits::Native => imp["native"].is_object(),
    }
}

/// Checks one 200 answer against its request; returns what is wrong with it, if anything.
fn check_response(request: &Value, response: &Value) -> Result<(), String> {
    let request_id = text(&request["id"]).ok_or("request has no id")?;
    if response["id"] != request_id.as_str() {
        return Err(format!(
            "id {} is not the request id {request_id}",
            response["id"]
        ));
    }
    if response["seatbid"][0]["seat"] != "precis" {
        return Err("seatbid[0].seat is not \"precis\"".into());
    }
    let cur = response["cur"].as_str().ok_or("no cur")?;
    if let Some(accepted) = request["cur"].as_array().filter(|a| !a.is_empty())
        && !accepted.iter().any(|c| c.as_str() == Some(cur))
    {
        return Err(format!("cur {cur} is not one the request accepts"));
    }
    let imps: Vec<&Value> = request["imp"].as_array().ok_or("no imp")?.iter().collect();
    let bids = bids(response);
    if bids.is_empty() {
        return Err("200 without a bid".into());
    }
    let mut ids = HashSet::new();
    let mut per_imp: HashMap<String, usize> = HashMap::new();
    for bid in bids {
        let id = bid["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or("bid without id")?;
        if !ids.insert(id) {
            return Err(format!("bid id {id} used twice"));
        }
        let impid = bid["impid"].as_str().ok_or("bid without impid")?;
        let imp = imps
            .iter()
            .find(|imp| text(&imp["id"]).as_deref() == Some(impid))
            .ok_or_else(|| format!("impid {impid} is not an imp of the request"))?;
        *per_imp.entry(impid.to_owned()).or_default() += 1;
        let price = bid["price"].as_f64().ok_or("bid without numeric price")?;
        if price.is_nan() || price <= 0.0 {
            return Err(format!("price {price} is not positive"));
        }
        let floor_cur = imp["bidfloorcur"].as_str().unwrap_or("USD");
        if let Some(floor) = number(&imp["bidfloor"])
            && floor_cur.eq_ignore_ascii_case("USD")
            && cur == "USD"
            && price < floor
        {
            return Err(format!(
                "price {price} under the floor {floor} of imp {impid}"
            ));
        }
        for key in ["crid", "cid", "adm"] {
            if bid[key].as_str().is_none_or(str::is_empty) {
                return Err(format!("bid without {key}"));
            }
        }
        if bid["adomain"].as_array().is_none_or(Vec::is_empty) {
            return Err("bid without adomain".into());
        }
        for key in ["nurl", "burl"] {
            if !bid[key]
                .as_str()
                .unwrap_or_default()
                .contains("${AUCTION_PRICE}")
            {
                return Err(format!("{key} without ${{AUCTION_PRICE}}"));
            }
        }
        let crid = str_of(bid, "crid");
        if !fits(imp, crid, bid["w"].as_u64(), bid["h"].as_u64()) {
            return Err(format!("creative {crid} does not fit imp {impid}: {imp}"));
        }
    }
    for (impid, count) in per_imp {
        let offered = imps
            .iter()
            .filter(|imp| text(&imp["id"]).as_deref() == Some(impid.as_str()))
            .count();
        if count > offered {
            return Err(format!("{count} bids for imp {impid}"));
        }
    }
    // Blocked advertisers and categories (a parent blocks its children) must not win.
    let badv = lowercase_strings(&request["badv"]);
    let bcat = lowercase_strings(&request["bcat"]);
    for bid in bids {
        let adomain = lowercase_strings(&bid["adomain"]);
        if let Some(domain) = adomain.into_iter().find(|d| badv.contains(d)) {
            return Err(format!("bid for blocked advertiser {domain}"));
        }
        for cat in lowercase_strings(&bid["cat"]) {
            if bcat
                .iter()
                .any(|b| cat == *b || cat.starts_with(&format!("{b}-")))
            {
                return Err(format!("bid in blocked category {cat}"));
            }
        }
    }
    Ok(())
}

/// Posts every `.json` file directly in `dir`; returns how many got each status, and a description
/// of every answer `judge` finds wrong.
async fn post_all(
    server: &Server,
    dir: &Path,
    mut judge: impl FnMut(&str, &[u8], StatusCode, &Bytes) -> Result<(), String>,
) -> (usize, HashMap<StatusCode, usize>, Vec<String>) {
    let files = json_files(dir);
    let mut counts = HashMap::new();
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let body = std::fs::read(path).unwrap();
        let (status, _, answer) = server.post("/openrtb2/bid", body.clone()).await;
        *counts.entry(status).or_default() += 1;
        if let Err(why) = judge(&name, &body, status, &answer) {
            failures.push(format!("{name}: {why}"));
        }
    }
    (files.len(), counts, failures)
}

/// How many requests `post_all` counted as answered with `status`.
fn answered(counts: &HashMap<StatusCode, usize>, status: StatusCode) -> usize {
    counts.get(&status).copied().unwrap_or(0)
}

async fn assert_alive(server: &Server) {
    let (status, _, body) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "alive after the corpus");
    assert_eq!(&body[..], b"ok\n");
}

#[tokio::test]
async fn every_valid_corpus_request_gets_a_well_formed_bid_or_no_bid() {
    let server = corpus_server();
    let mut prices = Vec::new();
    let (total, counts, failures) =
        post_all(&server, Path::new(CORPUS), |_, body, status, answer| {
            let answer_text = || String::from_utf8_lossy(answer).into_owned();
            match status {
                StatusCode::OK => {
                    let response: Value = serde_json::from_slice(answer).map_err(|e| {
                        format!("200 with a body that is not JSON ({e}): {}", answer_text())
                    })?;
                    prices.extend(bids(&response).iter().map(price_of));
                    check_response(&parse_json(body), &response)
                        .map_err(|why| format!("{why}\n  response: {response}"))
                }
                StatusCode::NO_CONTENT if answer.is_empty() => Ok(()),
                other => Err(format!("valid request answered {other}: {}", answer_text())),
            }
        })
        .await;
    let bid = answered(&counts, StatusCode::OK);
    let no_bid = answered(&counts, StatusCode::NO_CONTENT);
    println!(
        "corpus: {total} valid requests: {bid} bid (200), {no_bid} no bid (204), all: {counts:?}"
    );

    assert!(total >= 50, "corpus missing? {total} files in {CORPUS}");
    assert_alive(&server).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        bid * 2 >= total,
        "only {bid} of {total} valid requests got a bid"
    );
    assert!(
        prices.contains(&6.0) && prices.contains(&4.0),
        "the video and display campaigns should both win somewhere: {prices:?}"
    );
}

/// The invalid requests this repository carries, and what precis answers each (docs/reference.md, "What
/// precis reads from a request"): 400 when it cannot be bid on safely, 204 when it reads as a
/// request for nothing the campaigns offer.
const INVALID: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/invalid-requests"
);

/// Each file of [`INVALID`], the status precis answers, and why.
const INVALID_ANSWERS: [(&str, StatusCode, &str); 15] = [
    ("iab26__impl-hybrid-pod.json", BAD, "not JSON"),
    ("iab26__impl-structured-pods-4-imps.json", BAD, "not JSON"),
    ("iabext__ext-dsa-early-draft.json", BAD, "not JSON"),
    ("iabext__ext-gpid-fragment-no-id.json", BAD, "no id"),
    ("iabext__ext-rmn-request.json", BAD, "not JSON"),
    ("iabext__ext-skadnetwork-2.0-early.json", BAD, "no id"),
    ("iabext__ext-skadnetwork-4.json", BAD, "no id"),
    (
        "pbsgo__endpoint-invalid-whole-banner-w-negative.json",
        NONE,
        "a width that is not one is absent: no creative fits",
    ),
    (
        "pbsgo__endpoint-invalid-whole-imp-empty-array.json",
        BAD,
        "no imp",
    ),
    (
        "pbsgo__endpoint-invalid-whole-imp-empty-object.json",
        NONE,
        "an imp without an id is skipped",
    ),
    (
        "pbsgo__endpoint-invalid-whole-imp-id-duplicates.json",
        BAD,
        "two imps share an id",
    ),
    (
        "pbsgo__endpoint-invalid-whole-imp-no-type.json",
        NONE,
        "an imp with no banner, video or native fits no creative",
    ),
    (
        "pbsgo__endpoint-invalid-whole-regs-gdpr-invalid.json",
        BAD,
        "regs.ext.gdpr is neither 0 nor 1",
    ),
    (
        "pbsgo__endpoint-invalid-whole-site-dooh-both.json",
        BAD,
        "dooh with a site",
    ),
    (
        "pbsgo__endpoint-invalid-whole-user-ext-consent-int.json",
        BAD,
        "user.ext.consent is not a string",
    ),
];
const BAD: StatusCode = StatusCode::BAD_REQUEST;
const NONE: StatusCode = StatusCode::NO_CONTENT;

#[tokio::test]
async fn every_invalid_request_gets_the_answer_its_flaw_calls_for() {
    let server = corpus_server();
    let expected: HashMap<&str, (StatusCode, &str)> = INVALID_ANSWERS
        .iter()
        .map(|&(name, status, why)| (name, (status, why)))
        .collect();
    let mut seen = HashSet::new();
    let (total, _, failures) = post_all(&server, Path::new(INVALID), |name, _, status, answer| {
        let &(wanted, why) = expected
            .get(name)
            .ok_or_else(|| format!("no expected answer for {name}: add it to INVALID_ANSWERS"))?;
        seen.insert(name.to_owned());
        if status != wanted {
            return Err(format!(
                "answered {status}, expected {wanted} ({why}): {}",
                String::from_utf8_lossy(answer)
            ));
        }
        match status {
            BAD => match serde_json::from_slice::<Value>(answer).ok() {
                Some(error) if error["error"].as_str().is_some_and(|e| !e.is_empty()) => Ok(()),
                _ => Err(format!(
                    "400 without a JSON error: {}",
                    String::from_utf8_lossy(answer)
                )),
            },
            _ if answer.is_empty() => Ok(()),
            _ => Err(format!("204 with a body: {answer:?}")),
        }
    })
    .await;

    assert_eq!(total, INVALID_ANSWERS.len(), "files in {INVALID}");
    assert_eq!(seen.len(), INVALID_ANSWERS.len(), "{seen:?}");
    assert_alive(&server).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
