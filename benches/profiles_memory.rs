//! What the profile store costs: fills it with USERS users of 20 tags each (drawn from 2,000
//! distinct tags, a third of them instant with a 5-minute ttl) and prints resident memory per
//! user, then times the bid path's lookup, a sweep (nothing expired, then everything instant expired) and a snapshot
//! round trip (written under the system temp directory, then deleted).
//!
//! `cargo bench --bench profiles_memory -- 10000000` (default 1,000,000 users).

mod common;

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use precis::audience::profiles::{Profiles, Update, snapshot};
use precis::request::user::UserId;
use precis_generate::Rng;

fn main() {
    let users: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap_or_default();
    let tags: Vec<String> = (0..2_000)
        .map(|i| format!("root{}/interest{}/leaf{i}", i % 18, i % 250))
        .collect();
    let before = common::resident();
    let store = Profiles::new(users);
    let started = Instant::now();
    let mut chunk = Vec::with_capacity(10_000);
    let mut rng = Rng::new(1);
    for n in 0..users {
        let mut draw = |count: usize| -> Vec<String> {
            (0..count)
                .map(|_| tags[rng.below(tags.len())].clone())
                .collect()
        };
        let user = UserId::of_key(&format!("user-{n}"));
        let (long, instant) = (draw(14), draw(6));
        chunk.push(Update {
            user,
            tags: long,
            ttl_secs: None,
        });
        chunk.push(Update {
            user,
            tags: instant,
            ttl_secs: Some(300),
        });
        if chunk.len() >= 10_000 {
            store.apply(&chunk, now).expect("apply");
            chunk.clear();
        }
    }
    store.apply(&chunk, now).expect("apply");
    drop(chunk);
    let filled = started.elapsed();
    let resident = common::resident().saturating_sub(before);
    let held: usize = (0..users.min(10_000))
        .map(|n| store.live(UserId::of_key(&format!("user-{n}")), now).len())
        .sum();
    println!(
        "{} users, {:.1} tags each (sampled), filled in {:.1} s: {:.2} GiB resident, {:.0} B/user",
        store.users(),
        held as f64 / users.min(10_000) as f64,
        filled.as_secs_f64(),
        resident as f64 / (1u64 << 30) as f64,
        resident as f64 / users as f64
    );

    // The bid path's share: a request's user looked up and their live tags added to its facts.
    let request = precis::request::openrtb::decode(
        br#"{"id": "r", "imp": [{"id": "1"}], "user": {"id": "x"}}"#,
    )
    .expect("a bid request");
    let mut facts = precis::request::facts::Facts::from_request(&request, now);
    let keys: Vec<String> = (0..100_000)
        .map(|n| format!("user-{}", n * 7 % users))
        .collect();
    let started = Instant::now();
    let mut added = 0;
    for key in &keys {
        facts.tags.clear();
        facts.user = Some(key.clone());
        store.enrich(&mut facts);
        added += facts.tags.len();
    }
    println!(
        "enrich (a request's user → its live tags in Facts): {:.2} µs, {:.1} tags added",
        started.elapsed().as_secs_f64() * 1e6 / keys.len() as f64,
        added as f64 / keys.len() as f64
    );

    let started = Instant::now();
    store.sweep(now);
    println!(
        "sweep, nothing expired: {:.0} ms (read locks only)",
        started.elapsed().as_secs_f64() * 1e3,
    );
    let later = now + Duration::minutes(5);
    let started = Instant::now();
    store.sweep(later);
    println!(
        "sweep, the instant third expired: {:.0} ms ({:.2} µs per user rewritten under its lock)",
        started.elapsed().as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e6 / users as f64
    );

    let path = std::env::temp_dir().join(format!("precis-bench-{}.snapshot", std::process::id()));
    let started = Instant::now();
    let written = snapshot::save(&store, &path, later).expect("save");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "snapshot: {written} users, {:.0} MB written in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    drop(store);
    let back = Profiles::new(users);
    let started = Instant::now();
    let loaded = snapshot::load(&back, &path, later).expect("load");
    println!(
        "snapshot: {loaded} users loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_file(&path);
}
