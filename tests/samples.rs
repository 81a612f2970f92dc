//! The sample campaigns in `campaigns/`, which `cargo run --release -- serve` serves on a fresh clone:
//! they pass `precis check` and keep bidding for at least a year from whenever the suite runs. The
//! reference campaign, the template a campaign manager copies, passes `precis check` too.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Command;

use chrono::{Days, NaiveDate, Utc};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_sample_campaigns_pass_check() {
    let output = Command::new(env!("CARGO_BIN_EXE_precis"))
        .current_dir(ROOT)
        .args(["check", "campaigns"])
        .output()
        .expect("run precis check");
    assert!(
        output.status.success(),
        "precis check campaigns: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_reference_campaign_passes_check_beside_the_sample() {
    let reference = Path::new(ROOT).join("docs/reference.md");
    let readme = std::fs::read_to_string(reference).expect("docs/reference.md");
    let after = readme
        .split_once("## Campaign files")
        .and_then(|(_, rest)| rest.split_once("```toml\n"))
        .expect("a ```toml block under ## Campaign files")
        .1;
    let reference = after.split_once("\n```").expect("the block's end").0;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let campaigns = dir.path().join("campaigns");
    let audiences = dir.path().join("audiences");
    for made in [&campaigns, &audiences] {
        std::fs::create_dir(made).expect("a directory");
    }
    let copy = |from: &Path, to: &Path| std::fs::copy(from, to).expect("a copy");
    copy(
        &Path::new(ROOT).join("campaigns/taxonomy.toml"),
        &campaigns.join("taxonomy.toml"),
    );
    for entry in std::fs::read_dir(Path::new(ROOT).join("audiences")).expect("audiences/") {
        let path = entry.expect("entry").path();
        copy(
            &path,
            &audiences.join(path.file_name().expect("a file name")),
        );
    }
    std::fs::write(campaigns.join("reference.toml"), reference).expect("the reference");
    let output = Command::new(env!("CARGO_BIN_EXE_precis"))
        .current_dir(dir.path())
        .args(["check", "campaigns"])
        .output()
        .expect("run precis check");
    assert!(
        output.status.success(),
        "the reference campaign: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn no_sample_flight_ends_within_a_year() {
    let year_ahead = Utc::now().date_naive() + Days::new(366);
    let mut ends = 0;
    for entry in std::fs::read_dir(Path::new(ROOT).join("campaigns")).expect("campaigns/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let file: toml::Table = toml::from_str(&text).expect("TOML");
        let Some(end) = file.get("end") else { continue };
        let date = match end {
            toml::Value::Datetime(end) => end.date.expect("end has a date"),
            other => panic!("{}: end = {other}", path.display()),
        };
        let date = NaiveDate::from_ymd_opt(date.year.into(), date.month.into(), date.day.into())
            .expect("a calendar date");
        assert!(
            date >= year_ahead,
            "{}: the flight ends on {date}, within a year: the sample would stop bidding",
            path.display()
        );
        ends += 1;
    }
    assert!(ends >= 5, "the samples show flights with an end ({ends})");
}

#[tokio::test]
async fn the_readmes_example_request_gets_a_bid_from_the_sample() {
    let server = common::Setup::sample().start();
    let body = std::fs::read(Path::new(ROOT).join("examples/bid-request.json"))
        .expect("examples/bid-request.json");
    let (status, _, answer) = server.post("/openrtb2/bid", body).await;
    assert_eq!(
        status,
        hyper::StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let answer = common::parse_json(&answer);
    assert_eq!(answer["id"], "example-1");
    assert_eq!(common::bids(&answer).len(), 1, "{answer}");
}
