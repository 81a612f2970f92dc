//! What budgets and frequency caps cost: the time one candidate spends in pacing and frequency
//! admission, and the memory frequency caps take per remembered user.
//!
//! `admit` groups time one admission (with its reservation or pending count) as the auction makes
//! it; `memory` fills the exposure store with 1,000,000 users, each shown one capped campaign,
//! and prints the resident memory that took per user. Run with `cargo bench --bench pacing`.

mod common;

use std::hint::black_box;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

use precis::book::frequency::Exposures;
use precis::book::pacing::{Admission, Pacer};
use precis::campaign::pricing::Rates;
use precis::campaign::{self, Budget, Campaign, Frequency, Pacing, Window};

const NOW: &str = "2026-11-23T12:00:00Z";

fn campaign(budget: Option<Budget>, frequency: Option<Frequency>) -> Campaign {
    let text = "adomain = [\"shop.example\"]\n[pricing]\nmodel = \"cpm\"\ncpm = 2.0\n\
                [[creative]]\nid = \"c\"\nformat = \"banner\"\nw = 300\nh = 250\n\
                adm = \"ad\"\nlanding = \"https://shop.example/\"";
    let mut campaign = campaign::file::parse(text, Path::new("bench.toml"), &Rates::new([]))
        .expect("a valid campaign");
    campaign.budget = budget;
    campaign.frequency = frequency;
    campaign
}

fn now() -> DateTime<Utc> {
    NOW.parse().expect("NOW is a timestamp")
}

fn admit(c: &mut Criterion) {
    let rates = Rates::new([]);
    let now = now();
    let mut group = c.benchmark_group("admit");
    for (name, pacing) in [("asap", Pacing::Asap), ("even", Pacing::Even)] {
        let budget = Budget {
            daily: Some(1e9),
            total: None,
            pacing,
        };
        let paced = campaign(Some(budget), None);
        let pacer = Pacer::new(60, 10);
        let account = pacer.account_for(&paced);
        group.bench_function(format!("budget-{name}"), |b| {
            b.iter(
                || match pacer.admit(&paced, account.as_ref(), black_box(2.0), &rates, now) {
                    Admission::Reserved(r) => pacer.cancel(r),
                    other => {
                        black_box(other);
                    }
                },
            )
        });
    }
    let capped = campaign(
        None,
        Some(Frequency {
            impressions: Some(1_000_000),
            per: Window::Day,
            stop_after_conversion: false,
        }),
    );
    let exposures = Exposures::new(2_000_000, 60);
    let mut user = 0u64;
    group.bench_function("frequency-100k-users", |b| {
        b.iter(|| {
            user = (user + 1) % 100_000;
            let admitted = exposures.admit(Some(user), &capped, now);
            exposures.cancel(Some(user), &capped);
            black_box(admitted)
        })
    });
    group.finish();
}

fn memory(_: &mut Criterion) {
    const USERS: u64 = 1_000_000;
    let capped = campaign(
        None,
        Some(Frequency {
            impressions: Some(3),
            per: Window::Day,
            stop_after_conversion: false,
        }),
    );
    let before = common::resident();
    let exposures = Exposures::new(USERS as usize * 2, 60);
    let started = std::time::Instant::now();
    for user in 0..USERS {
        let at = now() + Duration::milliseconds(user as i64);
        exposures.shown(user.wrapping_mul(0x9E37_79B9_7F4A_7C15), &capped, at);
    }
    let took = started.elapsed();
    let bytes = common::resident().saturating_sub(before);
    println!(
        "frequency memory: {USERS} users shown one capped campaign: {:.0} MB resident, {} B per user (filled in {took:.2?})",
        bytes as f64 / 1e6,
        bytes / USERS
    );
    black_box(exposures);
}

// Memory first, on a fresh heap.
criterion_group!(benches, memory, admit);
criterion_main!(benches);
