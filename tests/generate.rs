//! `precis gen-campaigns`, end to end: the real binary writes campaign files that `precis check`
//! accepts, the same seed writes the same bytes, a directory in use is refused without --force, and
//! a bidder serving the files answers real and generated requests.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{PRECIS, Server, bids, check, str_of};
use hyper::StatusCode;
use precis_generate::{AdSlot, Generator};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openrtb-corpus");

fn gen_campaigns(out: &Path, seed: u64, extra: &[&str]) -> Output {
    Command::new(PRECIS)
        .arg("gen-campaigns")
        .args(["--count", "500", "--seed", &seed.to_string(), "--out"])
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run precis gen-campaigns")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `(file name, contents)` of every file in `dir` but the taxonomy, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("list the directory")
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("read a file"))
        })
        .filter(|(name, _)| name != "taxonomy.toml")
        .collect();
    files.sort();
    files
}

#[test]
fn generated_files_pass_check_and_the_same_seed_writes_the_same_bytes() {
    let root = tempfile::tempdir().expect("temp dir");
    let first = root.path().join("first");
    let output = gen_campaigns(&first, 7, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).starts_with("wrote 500 campaign file(s)"),
        "{}",
        text(&output.stdout)
    );

    let checked = check(root.path(), None, &[&first]);
    let summary = text(&checked.stdout);
    assert!(
        checked.status.success(),
        "{summary}{}",
        text(&checked.stderr)
    );
    assert!(summary.starts_with("ok: 500 campaign file(s)"), "{summary}");
    // Their tags were checked against the taxonomy written with them: the sample's tree.
    assert!(
        summary.contains("checked against a taxonomy of 688 tags"),
        "{summary}"
    );
    let taxonomy = std::fs::read_to_string(first.join("taxonomy.toml")).expect("a taxonomy");
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/campaigns/taxonomy.toml");
    assert_eq!(
        taxonomy,
        std::fs::read_to_string(sample).expect("the sample")
    );

    let written = files(&first);
    assert_eq!(written.len(), 500);
    assert_eq!(written[0].0, "gen-000000.toml");
    let again = root.path().join("again");
    assert!(gen_campaigns(&again, 7, &[]).status.success());
    assert!(files(&again) == written, "seed 7 wrote other bytes");
    // The binary writes what the library makes.
    assert_eq!(
        written[42].1,
        Generator::new(7).campaign(42).into_bytes(),
        "gen-000042.toml"
    );

    let other = root.path().join("other");
    assert!(gen_campaigns(&other, 8, &[]).status.success());
    let different = files(&other)
        .iter()
        .zip(&written)
        .filter(|(a, b)| a.1 != b.1)
        .count();
    assert_eq!(different, 500, "another seed, other campaigns");
}

#[test]
fn a_directory_in_use_is_refused_unless_forced() {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::write(root.path().join("mine.toml"), "# someone's campaign\n").unwrap();
    let refused = gen_campaigns(root.path(), 1, &[]);
    assert_eq!(refused.status.code(), Some(1));
    let message = text(&refused.stderr);
    assert!(
        message.contains("exists and is not empty") && message.contains("--force"),
        "{message}"
    );
    assert_eq!(files(root.path()).len(), 1, "nothing written");

    let forced = gen_campaigns(root.path(), 1, &["--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert_eq!(
        files(root.path()).len(),
        501,
        "the other file is left alone"
    );

    let bad = gen_campaigns(&root.path().join("x"), 1, &["--currencies", "EURO"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("`EURO` is not an ISO-4217 currency code"));
}

#[tokio::test]
async fn a_bidder_serves_the_generated_campaigns() {
    let root = tempfile::tempdir().expect("temp dir");
    let out = root.path().join("campaigns");
    assert!(gen_campaigns(&out, 7, &[]).status.success());
    let server = files(&out)
        .into_iter()
        .fold(Server::setup(), |setup, (name, body)| {
            setup.campaign(&name, String::from_utf8(body).expect("UTF-8"))
        })
        .start();
    let status = server.status().await;
    assert_eq!(status["campaigns_loaded"], 500, "{status}");
    assert_eq!(status["refused"].as_array().map(Vec::len), Some(0));

    // Real requests: every valid one of the corpus is answered with a bid or no bid.
    let mut corpus: Vec<_> = std::fs::read_dir(CORPUS)
        .map(|dir| dir.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    corpus.retain(|p| p.extension().is_some_and(|x| x == "json"));
    for path in &corpus {
        let (status, _, body) = server
            .post("/openrtb2/bid", std::fs::read(path).unwrap())
            .await;
        assert!(
            status == StatusCode::OK || status == StatusCode::NO_CONTENT,
            "{}: {status} {}",
            path.display(),
            text(&body)
        );
    }

    // Generated visitors: some get bids, from generated campaigns, for creatives that fit.
    let generator = Generator::new(7);
    let mut won = 0;
    for n in 0..200 {
        let visitor = generator.visitor(n);
        let request = serde_json::from_str(&visitor.bid_request(&format!("v{n}"))).unwrap();
        let Some(response) = server.bid(&request).await else {
            continue;
        };
        won += 1;
        for bid in bids(&response) {
            assert!(str_of(bid, "cid").starts_with("gen-"), "{bid}");
            let crid = str_of(bid, "crid");
            let fits = match visitor.slot {
                AdSlot::Banner { w, h } => crid.ends_with(&format!("-{w}x{h}")),
                AdSlot::Video { .. } => crid.contains("-video"),
                AdSlot::Native => crid.ends_with("-native"),
            };
            assert!(fits, "{crid} for {:?}", visitor.slot);
        }
    }
    assert!(won >= 5, "only {won} of 200 generated requests got a bid");
    println!(
        "generated: {} corpus requests answered; {won} of 200 generated requests got a bid",
        corpus.len()
    );
}
