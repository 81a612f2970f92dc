//! What audience packages cost: loading 5,000,000 users, the bytes each takes, and one lookup.
//!
//! `load` writes a package of 5M raw user keys (and the same users as `uid` hex) into a temporary
//! directory, loads each once and prints the time and bytes per user; `lookup` times
//! `Package::contains` for members and strangers, next to a sorted `Vec<u64>` (8 B/user), the
//! baseline the compact set halves. Run with `cargo bench --bench audience`.

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};

use precis::audience::{self, Package};
use precis::request::user::UserId;

const USERS: u64 = 5_000_000;

fn key(n: u64) -> String {
    format!("user-{n:08}")
}

/// Writes `USERS` keys in `form` to a file in `dir`, loads it and reports how long that took.
fn load(dir: &std::path::Path, form: &str, line: impl Fn(u64) -> String) -> Package {
    let path = dir.join(format!("bench-{form}.txt"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    writeln!(file, "# keys: {form}").expect("write");
    for n in 0..USERS {
        writeln!(file, "{}", line(n)).expect("write");
    }
    file.flush().expect("flush");
    drop(file);
    let started = Instant::now();
    let package = audience::load(&path).expect("a valid package");
    println!(
        "load {form}: {} users in {:.2} s, {} bytes, {:.2} B/user",
        package.users(),
        started.elapsed().as_secs_f64(),
        package.bytes(),
        package.bytes() as f64 / package.users() as f64
    );
    package
}

fn lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let raw = load(dir.path(), "raw", key);
    let ids: Vec<UserId> = (0..USERS).map(|n| UserId::of_key(&key(n))).collect();
    let uid = load(dir.path(), "uid", |n| ids[n as usize].to_string());
    assert_eq!(raw.users(), uid.users());
    let mut sorted: Vec<u64> = ids.iter().map(|id| id.0).collect();
    sorted.sort_unstable();

    let members: Vec<UserId> = ids.iter().step_by(4999).copied().collect();
    let strangers: Vec<UserId> = (0..1000)
        .map(|n| UserId::of_key(&format!("x{n}")))
        .collect();
    let mut group = c.benchmark_group("audience");
    for (name, probes) in [("member", &members), ("stranger", &strangers)] {
        group.bench_function(format!("contains/{name}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % probes.len();
                black_box(uid.contains(black_box(probes[i])))
            })
        });
        group.bench_function(format!("sorted_vec_u64/{name}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % probes.len();
                black_box(sorted.binary_search(&black_box(probes[i]).0).is_ok())
            })
        });
    }
    group.bench_function("user_id_of_key", |b| {
        b.iter(|| {
            black_box(UserId::of_key(black_box(
                "4d2c1f7e-9a8b-4c3d-8e7f-0a1b2c3d4e5f",
            )))
        })
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
