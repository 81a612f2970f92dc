//! Fuzz target `campaign_file`: any text as a campaign file, through the parser and compiler.
//!
//! Owns: `campaign::file::parse` never panics, whatever the text; an error names at least one problem
//! and prints; a file that compiles is ranked and indexed like any loaded campaign, and for the
//! real requests in `../shared/openrtb-corpus` (read once at start-up) the index finds it
//! whenever its targeting matches. It must never write to disk.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use precis::book::index::Index;
use precis::book::ranking::{self, Ranked};
use precis::campaign;
use precis::campaign::pricing::{Currency, Rates};
use precis::request::facts::Facts;
use precis::request::openrtb::decode;

struct Fixture {
    rates: Rates,
    /// The facts of every corpus request that decodes.
    facts: Vec<Facts>,
}

thread_local! {
    /// Built once: `Facts` caches its user id in a cell, so it is per thread, not shared.
    static FIXTURE: Fixture = fixture();
}

fn fixture() -> Fixture {
    {
        let now: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().expect("a timestamp");
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/openrtb-corpus");
        let facts = std::fs::read_dir(&corpus)
            .map(|dir| {
                dir.flatten()
                    .filter_map(|entry| std::fs::read(entry.path()).ok())
                    .filter_map(|body| decode(&body).ok())
                    .map(|request| Facts::from_request(&request, now))
                    .collect()
            })
            .unwrap_or_default();
        Fixture {
            rates: Rates::new(
                [("EUR", 0.86), ("GBP", 0.76), ("CNY", 7.1)]
                    .map(|(c, r)| (Currency::parse(c).expect("a currency code"), r)),
            ),
            facts,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    FIXTURE.with(|fixture| check(text, fixture));
});

/// A campaign file never panics the parser; one that compiles is found by the index wherever
/// its targeting matches a corpus request.
fn check(text: &str, fixture: &Fixture) {
    let campaign = match campaign::file::parse(text, Path::new("fuzz.toml"), &fixture.rates) {
        Ok(campaign) => Arc::new(campaign),
        Err(error) => {
            assert!(!error.diagnostics.is_empty(), "a refusal says why");
            let _ = error.to_string();
            return;
        }
    };
    let ranked = ranking::rank([campaign.clone()], &fixture.rates, Ranked::from_file);
    let index = Index::build(&ranked);
    if ranked.is_empty() {
        return; // Paused: loaded, never ranked.
    }
    for facts in &fixture.facts {
        if campaign.targeting.matches(facts) {
            assert!(
                index.query(facts).candidates().any(|i| i == 0),
                "the index lost a campaign whose targeting matches"
            );
        }
    }
}
