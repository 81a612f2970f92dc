//! What bid-path latency recording costs: one `Latency::record` alone, and two threads recording
//! at once (the bidder's workers on a 2-core machine), against one shared `Mutex<Histogram>`,
//! the design striping replaces; and what merging the stripes for a scrape costs.
//! Run with `cargo bench --bench metrics`.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use hdrhistogram::Histogram;

use precis::metrics::latency::Latency;

/// Runs `record` on `threads` threads at once, `iters` times each; the time per record.
fn contended(threads: u32, iters: u64, record: &(dyn Fn(u64) + Sync)) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| (0..iters).for_each(|i| record(black_box(i % 5_000 + 20))));
        }
    });
    started.elapsed() / threads
}

fn latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("latency");
    let striped = Latency::default();
    group.bench_function("record/1-thread", |b| {
        b.iter(|| striped.record(black_box(Duration::from_micros(42))))
    });
    let record = |micros| striped.record(Duration::from_micros(micros));
    group.bench_function("record/2-threads", |b| {
        b.iter_custom(|iters| contended(2, iters, &record))
    });
    let shared = Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds"));
    let record = |micros| {
        let _ = shared.lock().expect("lock").record(micros);
    };
    group.bench_function("one-mutex/2-threads", |b| {
        b.iter_custom(|iters| contended(2, iters, &record))
    });
    group.bench_function("merge-for-scrape", |b| b.iter(|| striped.merged()));
    group.finish();
}

criterion_group!(benches, latency);
criterion_main!(benches);
