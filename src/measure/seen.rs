//! What the recorder remembers of the events it logged, so that each counts once however often it
//! is sent (exchanges retry, pixels fire twice, a click URL is replayed): a 16-byte digest of each
//! event's identity (its kind, its bid and its order id: [`digest`]) until its token expires, and
//! how many orders each click has brought. Never on the bid path, never the disk.
//!
//! Digests are kept in buckets by when their token expires, a 32nd of the token lifetime wide,
//! and a bucket is dropped whole once every token in it has expired ([`Seen::sweep`]): nothing
//! walks the keys to forget them. A key costs its 16 bytes in a hash table (19 to 39 bytes with
//! the table's slack: `precis_dedup_table_bytes`) instead of the event's strings.
//!
//! At most `max_keys` are kept. Past it, the bucket that expires first is dropped early, and
//! with it what was known of its events. So that none of them is ever counted twice, every token
//! that expires before that bucket ends is refused from then on as if it had expired
//! ([`Seen::forgotten`]): the oldest bids lose the last part of their tokens' lifetime. The bucket
//! being filled is never dropped: while it alone holds `max_keys`, new events are refused ([`Full`],
//! 503: the sender retries) until the clock reaches the next one. Both are counted in `/metrics`
//! and the first logged.
//!
//! An event locks one of [`SHARDS`] shards for its check, its queueing ([`Seen::remember`]) and
//! its insertion, so that a repeat arriving meanwhile waits for it and finds it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;
use sha2::{Digest as _, Sha256};

use crate::binary::{BinaryError, Le, get_count, get_str, put_str};
use crate::eventlog::Kind;
use crate::metrics::Exposition;

/// An event's identity in 16 bytes.
pub type Digest = u128;

/// The first 16 bytes of the SHA-256 of the event's kind, bid and order id: two events share it
/// only if they are the same event (a bid id is never the byte 0xFF, which a UTF-8 string never
/// holds, so that `bid` + order and another bid can never read the same).
pub fn digest(kind: Kind, bid: &str, order: Option<&str>) -> Digest {
    let mut hash = Sha256::new();
    hash.update([kind as u8]);
    hash.update(bid.as_bytes());
    if let Some(order) = order {
        hash.update([0xFF]);
        hash.update(order.as_bytes());
    }
    let sum = hash.finalize();
    let mut first = [0; 16];
    first.copy_from_slice(&sum[..16]);
    u128::from_le_bytes(first)
}

/// Locks taken per event: one of this many, by digest.
const SHARDS: usize = 16;

/// Buckets per token lifetime.
const BUCKETS_PER_LIFETIME: u32 = 32;

/// What an event remembered is to the recorder.
#[derive(Debug, PartialEq)]
pub enum Remembered<T> {
    /// Not seen before: logged (what logging it gave), and remembered from now on.
    New(T),
    /// Seen before.
    Again,
}

/// The bucket being filled holds `max_keys` on its own: no room for one more event now.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("too many events to remember until the oldest expire; retry")]
pub struct Full;

type Keys = foldhash::HashSet<Digest>;

/// One shard's digests, by bucket (unix seconds of expiry / width).
#[derive(Default)]
struct Shard {
    buckets: BTreeMap<u32, Keys>,
}

impl Shard {
    fn holds(&self, digest: Digest) -> bool {
        self.buckets.values().any(|keys| keys.contains(&digest))
    }
}

pub struct Seen {
    shards: [Mutex<Shard>; SHARDS],
    /// Seconds of expiry each bucket spans.
    width: u32,
    max_keys: usize,
    keys: AtomicUsize,
    /// Tokens that expire before this (unix seconds) are refused: events of theirs may have been
    /// forgotten early.
    forgotten_until: AtomicU32,
    /// Held while buckets are dropped early, so that two events do not both drop one.
    shedding: Mutex<()>,
    /// Keys dropped early, and events refused because the bucket being filled was full.
    forgotten: AtomicU64,
    full: AtomicU64,
    /// Orders counted per click (by bid), until the click's token expires: bid → (orders, expiry).
    orders: DashMap<String, (u32, u32)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a bucket's last expiry ends, unix seconds, as a u64 (it may pass u32).
fn end_of(bucket: u32, width: u32) -> u64 {
    (u64::from(bucket) + 1) * u64::from(width)
}

impl Seen {
    /// Remembers events whose tokens live `lifetime` seconds, at most `max_keys` of them.
    pub fn new(lifetime: u32, max_keys: usize) -> Seen {
        Seen {
            shards: Default::default(),
            width: (lifetime / BUCKETS_PER_LIFETIME).max(1),
            max_keys,
            keys: AtomicUsize::new(0),
            forgotten_until: AtomicU32::new(0),
            shedding: Mutex::new(()),
            forgotten: AtomicU64::new(0),
            full: AtomicU64::new(0),
            orders: DashMap::new(),
        }
    }

    /// An empty one with the same bounds.
    pub fn empty_like(&self) -> Seen {
        Seen {
            width: self.width,
            ..Seen::new(0, self.max_keys)
        }
    }

    fn shard(&self, digest: Digest) -> &Mutex<Shard> {
        &self.shards[(digest % SHARDS as u128) as usize]
    }

    fn bucket(&self, expiry: u32) -> u32 {
        expiry / self.width
    }

    /// The event `digest`, whose token expires at `expiry` (unix seconds): [`Remembered::Again`]
    /// if it was seen before; else `log` logs it and, if that worked, it is remembered from now on.
    /// The shard stays locked meanwhile. [`Full`] when there is no room for it.
    pub fn remember<T, E: From<Full>>(
        &self,
        digest: Digest,
        expiry: u32,
        log: impl FnOnce() -> Result<T, E>,
    ) -> Result<Remembered<T>, E> {
        let bucket = self.bucket(expiry);
        if self.keys.load(Ordering::Relaxed) >= self.max_keys {
            // A repeat is one, full or not.
            if lock(self.shard(digest)).holds(digest) {
                return Ok(Remembered::Again);
            }
            self.make_room(bucket)?;
        }
        let mut shard = lock(self.shard(digest));
        if shard.holds(digest) {
            return Ok(Remembered::Again);
        }
        let logged = log()?;
        shard.buckets.entry(bucket).or_default().insert(digest);
        self.keys.fetch_add(1, Ordering::Relaxed);
        Ok(Remembered::New(logged))
    }

    /// An event read back from the log: remembered (when there is room: see [`Full`]); when it
    /// is the order of the click `click`, counted toward that click's orders. Whether it was new.
    pub fn logged(&self, digest: Digest, expiry: u32, click: Option<&str>) -> bool {
        let remembered = self.remember(digest, expiry, || Ok::<_, Full>(()));
        let new = matches!(remembered, Ok(Remembered::New(())));
        if let (true, Some(click)) = (new, click) {
            self.orders.entry(click.to_owned()).or_insert((0, expiry)).0 += 1;
        }
        new
    }

    /// Whether a token that expires at `token_expiry` must be refused: events of its bid may
    /// have been forgotten early (see the module's doc).
    pub fn forgotten(&self, token_expiry: u32) -> bool {
        token_expiry < self.forgotten_until.load(Ordering::Relaxed)
    }

    /// Past `max_keys`, drops the buckets that expire first, up to the one being filled.
    fn make_room(&self, filling: u32) -> Result<(), Full> {
        let _one_at_a_time = lock(&self.shedding);
        while self.keys.load(Ordering::Relaxed) >= self.max_keys {
            let oldest = self
                .shards
                .iter()
                .filter_map(|shard| lock(shard).buckets.keys().next().copied())
                .min();
            let Some(oldest) = oldest.filter(|oldest| *oldest < filling) else {
                if self.full.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::error!(
                        max_keys = self.max_keys,
                        "[events] max_dedup_keys reached by the events of the last {} s alone: new events are refused (503) until the next bucket starts",
                        self.width
                    );
                }
                return Err(Full);
            };
            let until = u32::try_from(end_of(oldest, self.width)).unwrap_or(u32::MAX);
            // Said before the keys go: an event of theirs checked meanwhile is refused.
            self.forgotten_until.fetch_max(until, Ordering::Relaxed);
            let dropped = self.drop_buckets(|bucket| bucket == oldest);
            if self.forgotten.fetch_add(dropped as u64, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    max_keys = self.max_keys,
                    dropped,
                    "[events] max_dedup_keys reached: the events whose tokens expire first are forgotten early, and those tokens refused from now on"
                );
            }
        }
        Ok(())
    }

    /// Drops every bucket `gone` picks (they are the first of each shard). Returns the keys dropped.
    fn drop_buckets(&self, gone: impl Fn(u32) -> bool) -> usize {
        let mut dropped = 0;
        for shard in &self.shards {
            let mut shard = lock(shard);
            while let Some(entry) = shard.buckets.first_entry() {
                if !gone(*entry.key()) {
                    break;
                }
                dropped += entry.remove().len();
            }
        }
        self.keys.fetch_sub(dropped, Ordering::Relaxed);
        dropped
    }

    /// Drops the buckets whose tokens have all expired at `now` (unix seconds), and the orders of
    /// clicks whose token has.
    pub fn sweep(&self, now: u32) {
        let width = self.width;
        self.drop_buckets(|bucket| end_of(bucket, width) <= u64::from(now));
        self.orders.retain(|_, (_, expiry)| *expiry > now);
    }

    /// Counts one more order for the click of `bid` (its token expiring at `expiry`), unless it
    /// has brought `max` already.
    pub fn count_order(&self, bid: &str, expiry: u32, max: u32) -> bool {
        let mut orders = self.orders.entry(bid.to_owned()).or_insert((0, expiry));
        if orders.0 >= max {
            return false;
        }
        orders.0 += 1;
        true
    }

    /// Takes back an order counted for an event that was not logged after all.
    pub fn uncount_order(&self, bid: &str) {
        if let Some(mut orders) = self.orders.get_mut(bid) {
            orders.0 = orders.0.saturating_sub(1);
        }
    }

    /// Digests remembered, and clicks whose orders are counted.
    pub fn len(&self) -> (usize, usize) {
        (self.keys.load(Ordering::Relaxed), self.orders.len())
    }

    /// What the hash tables take, estimated from their capacity: a slot is the digest and one
    /// control byte, and a table has a power of two of slots, at most 7/8 of them used.
    fn table_bytes(&self) -> usize {
        let slots = |capacity: usize| match capacity {
            0 => 0,
            c if c < 8 => (c + 1).next_power_of_two(),
            c => (c * 8 / 7).next_power_of_two(),
        };
        self.shards
            .iter()
            .map(|shard| {
                let shard = lock(shard);
                let tables = shard.buckets.values();
                tables
                    .map(|keys| slots(keys.capacity()) * (size_of::<Digest>() + 1))
                    .sum::<usize>()
            })
            .sum()
    }

    /// Its metrics: what it holds and what its bound cost.
    pub fn report(&self, out: &mut Exposition) {
        let (keys, clicks) = self.len();
        for (name, help, value) in [
            (
                "precis_dedup_keys",
                "Events remembered until their token expires, so that each counts once.",
                keys,
            ),
            (
                "precis_dedup_table_bytes",
                "Memory the remembered events' digests take (estimated from the tables' capacity).",
                self.table_bytes(),
            ),
            (
                "precis_dedup_max_keys",
                "Events remembered at most ([events] max_dedup_keys).",
                self.max_keys,
            ),
            (
                "precis_dedup_clicks",
                "Clicks whose orders are counted toward max_orders_per_click.",
                clicks,
            ),
        ] {
            out.gauge(name, help, value as u64);
        }
        out.counter(
            "precis_dedup_forgotten_total",
            "Events forgotten before their token expired, to stay within max_dedup_keys (their tokens are refused from then on).",
            self.forgotten.load(Ordering::Relaxed),
        );
        out.counter(
            "precis_dedup_full_total",
            "Events refused (503) because the events of one bucket alone reached max_dedup_keys.",
            self.full.load(Ordering::Relaxed),
        );
    }

    /// Writes what it remembers into a snapshot: the width of its buckets, the horizon of what
    /// was forgotten early, each shard's buckets (index, count, digests), the clicks' orders.
    pub fn save(&self, out: &mut impl Write) -> std::io::Result<()> {
        self.width.put(out)?;
        self.forgotten_until.load(Ordering::Relaxed).put(out)?;
        let groups: Vec<(u32, Vec<Digest>)> = self
            .shards
            .iter()
            .flat_map(|shard| {
                let shard = lock(shard);
                let buckets = shard.buckets.iter();
                buckets
                    .map(|(bucket, keys)| (*bucket, keys.iter().copied().collect()))
                    .collect::<Vec<_>>()
            })
            .collect();
        (groups.len() as u64).put(out)?;
        for (bucket, keys) in groups {
            bucket.put(out)?;
            (keys.len() as u64).put(out)?;
            for key in keys {
                key.put(out)?;
            }
        }
        let orders: Vec<(String, (u32, u32))> = self
            .orders
            .iter()
            .map(|entry| (entry.key().clone(), *entry.value()))
            .collect();
        (orders.len() as u64).put(out)?;
        for (bid, (count, expiry)) in orders {
            put_str(out, &bid)?;
            count.put(out)?;
            expiry.put(out)?;
        }
        Ok(())
    }

    /// Reads what [`Seen::save`] wrote into this one (meant to be empty). Buckets of another
    /// width (the token lifetime changed) go into the bucket of their last expiry.
    pub fn load(&self, input: &mut impl Read) -> Result<(), BinaryError> {
        let width = u32::get(input)?.max(1);
        self.forgotten_until
            .fetch_max(u32::get(input)?, Ordering::Relaxed);
        let groups = get_count(input, SHARDS << 20)?;
        for _ in 0..groups {
            let last = end_of(u32::get(input)?, width) - 1;
            let bucket = self.bucket(u32::try_from(last).unwrap_or(u32::MAX));
            let count = get_count(input, usize::MAX)?;
            for _ in 0..count {
                let key = Digest::get(input)?;
                let mut shard = lock(self.shard(key));
                if shard.buckets.entry(bucket).or_default().insert(key) {
                    self.keys.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let clicks = get_count(input, usize::MAX)?;
        for _ in 0..clicks {
            let bid = get_str(input, MAX_ID_BYTES)?;
            let count = u32::get(input)?;
            let expiry = u32::get(input)?;
            self.orders.insert(bid, (count, expiry));
        }
        Ok(())
    }
}

/// The longest id a snapshot holds (a bid id, a campaign id): a longer one is damage.
pub const MAX_ID_BYTES: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u32 = 86_400;
    /// 2026-11-23T10:00:00Z.
    const NOW: u32 = 1_795_428_000;

    fn key(n: u32) -> Digest {
        digest(Kind::Win, &format!("b{n}"), None)
    }

    /// Remembers `key` expiring at `expiry`: whether it was new.
    fn new(seen: &Seen, key: Digest, expiry: u32) -> Result<bool, Full> {
        let remembered = seen.remember(key, expiry, || Ok::<_, Full>(()))?;
        Ok(remembered == Remembered::New(()))
    }

    #[test]
    fn an_event_is_new_once_and_its_identity_is_kind_bid_and_order() {
        let seen = Seen::new(DAY, 100);
        let expiry = NOW + DAY;
        let keys = [
            digest(Kind::Win, "b1", None),
            digest(Kind::Imp, "b1", None),
            digest(Kind::Win, "b2", None),
            digest(Kind::Conv, "b1", Some("o1")),
            digest(Kind::Conv, "b1", None),
            digest(Kind::Conv, "b1o1", None),
        ];
        for key in keys {
            assert_eq!(new(&seen, key, expiry), Ok(true));
            assert_eq!(
                new(&seen, key, expiry + 3600),
                Ok(false),
                "told again later"
            );
        }
        assert_eq!(seen.len().0, keys.len());
        // What logging it says is what the recorder gets; a failure remembers nothing.
        let failed = seen.remember(key(9), expiry, || Err::<(), _>(Full));
        assert_eq!(failed, Err(Full));
        assert_eq!(new(&seen, key(9), expiry), Ok(true));
    }

    #[test]
    fn a_bucket_is_dropped_whole_once_every_token_in_it_has_expired() {
        let seen = Seen::new(DAY, 100);
        let width = DAY / 32;
        // Two buckets: expiries in [k·width, (k+1)·width) share one.
        let first = (NOW + DAY) / width * width;
        assert_eq!(new(&seen, key(1), first), Ok(true));
        assert_eq!(new(&seen, key(2), first + width - 1), Ok(true));
        assert_eq!(new(&seen, key(3), first + width), Ok(true));
        seen.sweep(first + width - 1);
        assert_eq!(
            seen.len().0,
            3,
            "one token of the first bucket is still valid"
        );
        seen.sweep(first + width);
        assert_eq!(seen.len().0, 1);
        assert_eq!(new(&seen, key(3), first + width), Ok(false));
        assert_eq!(
            new(&seen, key(1), first),
            Ok(true),
            "forgotten once expired"
        );
    }

    #[test]
    fn past_max_keys_the_first_bucket_to_expire_goes_early_and_its_tokens_with_it() {
        let seen = Seen::new(DAY, 3);
        let width = DAY / 32;
        let first = (NOW + DAY) / width * width;
        for n in 0..2 {
            assert_eq!(new(&seen, key(n), first), Ok(true));
        }
        assert_eq!(new(&seen, key(2), first + width), Ok(true));
        assert!(!seen.forgotten(first));
        // A fourth: the first bucket (two keys) goes.
        assert_eq!(new(&seen, key(3), first + width), Ok(true));
        assert_eq!(seen.len().0, 2);
        assert_eq!(seen.forgotten.load(Ordering::Relaxed), 2);
        // Every token that expires before that bucket ends is refused from now on.
        assert!(seen.forgotten(first + width - 1));
        assert!(!seen.forgotten(first + width));
        // The bucket being filled is never dropped: full until the next one.
        assert_eq!(new(&seen, key(4), first + width), Ok(true));
        assert_eq!(new(&seen, key(5), first + width), Err(Full));
        assert_eq!(seen.full.load(Ordering::Relaxed), 1);
        assert_eq!(new(&seen, key(5), first + 2 * width), Ok(true));
        assert_eq!(seen.len().0, 1);
    }

    #[test]
    fn a_saved_one_loads_back_the_same() {
        let seen = Seen::new(DAY, 4);
        let width = DAY / 32;
        let first = (NOW + DAY) / width * width;
        for n in 0..5 {
            new(&seen, key(n), first + n * width).unwrap();
        }
        assert!(seen.count_order("b1", first, 3));
        let mut bytes = Vec::new();
        seen.save(&mut bytes).unwrap();
        let back = seen.empty_like();
        back.load(&mut bytes.as_slice()).unwrap();
        assert_eq!(back.len(), (4, 1));
        assert!(back.forgotten(first + width - 1) && !back.forgotten(first + width));
        for n in 1..5 {
            assert_eq!(new(&back, key(n), NOW + DAY), Ok(false), "{n}");
        }
        assert!(back.count_order("b1", first, 2));
        assert!(
            !back.count_order("b1", first, 2),
            "its first order came back"
        );
        back.sweep(first + 2 * width);
        assert_eq!(back.len(), (3, 0), "in the same buckets as before");
        // Read where tokens live twice as long (buckets twice as wide): all there, none going
        // sooner than it would have.
        let wider = Seen::new(2 * DAY, 4);
        wider.load(&mut bytes.as_slice()).unwrap();
        assert_eq!(wider.len(), (4, 1));
        wider.sweep(first + 2 * width - 1);
        assert_eq!(wider.len().0, 4);
        wider.sweep(first + 6 * width);
        assert_eq!(wider.len().0, 0);
    }
}
