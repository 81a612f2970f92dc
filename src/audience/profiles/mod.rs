//! The profile store: what precis itself knows about each (pseudonymous) user, as tags that expire.
//!
//! Owns the in-memory map from [`UserId`] to the user's tags, each with its own expiry (long-term
//! tags never expire; instant ones do, e.g. after 5 minutes), and merges a user's live tags into
//! the facts of their bid requests. Fed by bulk files ([`bulk`]) and the HTTP API ([`api`]);
//! kept across restarts by a snapshot ([`snapshot`]).
//!
//! Memory: tag names are interned once (a table of u32 ids); a user costs a map slot (its id and a
//! boxed slice) plus 8 bytes per tag (tag id and origin, expiry as u32 seconds since [`EPOCH`]).
//!
//! Origin: a tag given by a bulk file is owned by the files ([`bulk`]): when a file is deleted or
//! rewritten, the file tags are rebuilt from the files as they now are (each file tag applied
//! again, marked, then the unmarked ones dropped), so a line removed takes its tags away. Tags the
//! API gave are kept apart (the same tag may be held from both) and never touched by files.
//! It must never block the bid path: a request's read is one dashmap shard read lock and an
//! arc-swap load, no await, no disk. It never stores a raw user key. Expired tags stop matching at
//! once (every read checks the clock); the sweep that frees their memory finds them under read
//! locks and rewrites one user at a time (many small shards, so no lock is held long).

pub mod api;
pub mod bulk;
pub mod snapshot;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry as Slot;

use crate::metrics::Exposition;
use crate::request::facts::{Facts, MAX_TAGS};
use crate::request::user::UserId;

/// Expiries count seconds from 2020-01-01T00:00:00Z, so they fit a u32 until 2156.
pub const EPOCH: i64 = 1_577_836_800;
/// The expiry of a long-term tag.
const NEVER: u32 = u32::MAX;
/// Distinct tag names the store interns at most: more is abuse, not data.
pub const MAX_DISTINCT_TAGS: usize = 1 << 20;
/// Shards of the user map: many, so that a sweep or a snapshot holds each lock only briefly.
const SHARDS: usize = 1024;

/// One tag of a user: which and from where (`tag`: the index into the tag table shifted left by
/// two, then the [`FROM_FILE`] and [`MARK`] bits, so one tag's entries sort together) and until
/// when (seconds since [`EPOCH`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    tag: u32,
    until: u32,
}

/// The origin bit of a tag a bulk file gave.
const FROM_FILE: u32 = 0b10;
/// Set on the file tags applied by a rebuild in progress: the file tags without it are dropped
/// when the rebuild ends ([`Profiles::settle`]).
const MARK: u32 = 0b01;
/// Where an update comes from, as the low bits of its [`Held::tag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin(u32);

impl Origin {
    /// The API (and anything but a file).
    pub(crate) const API: Origin = Origin(0);
    /// A bulk file read as it grew.
    pub(crate) const FILE: Origin = Origin(FROM_FILE);
    /// A bulk file read again whole by a rebuild.
    pub(crate) const REBUILD: Origin = Origin(FROM_FILE | MARK);
}

impl Held {
    fn new(id: u32, origin: Origin, until: u32) -> Held {
        Held {
            tag: id << 2 | origin.0,
            until,
        }
    }

    /// The index of the tag's name in the tag table.
    fn id(self) -> u32 {
        self.tag >> 2
    }

    fn is_from_file(self) -> bool {
        self.tag & FROM_FILE != 0
    }
}

/// An update to one user's profile: these tags (in tag form), for `ttl_secs` or for good.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub user: UserId,
    pub tags: Vec<String>,
    pub ttl_secs: Option<u32>,
}

#[cfg(test)]
impl Profiles {
    /// The names of the live tags of the user of raw key `key`, for tests.
    pub fn tag_names(&self, key: &str, now: DateTime<Utc>) -> Vec<String> {
        let live = self.live(UserId::of_key(key), now);
        live.into_iter().map(|(t, _)| t.to_string()).collect()
    }
}

#[cfg(test)]
impl Update {
    /// An update for tests: `tags` for the user of raw key `key`, for `ttl_secs` or long-term.
    pub fn of(key: &str, tags: &[&str], ttl_secs: Option<u32>) -> Update {
        Update {
            user: UserId::of_key(key),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ttl_secs,
        }
    }
}

/// What applying updates did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// Updates applied.
    pub applied: usize,
    /// Updates for new users refused because the store holds `max_users`.
    pub refused_full: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProfileError {
    #[error("the tag table is full ({MAX_DISTINCT_TAGS} distinct tags)")]
    TooManyTags,
}

/// Tag names by id (read by requests through arc-swap) and ids by name (for writers).
#[derive(Default)]
struct TagTable {
    names: ArcSwap<Vec<Arc<str>>>,
    ids: Mutex<HashMap<Arc<str>, u32>>,
}

impl TagTable {
    /// The ids of `tags`, adding the new ones (with one table swap for all of them).
    fn intern<'a>(
        &self,
        tags: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<&'a str, u32>, ProfileError> {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        let mut added: Vec<Arc<str>> = Vec::new();
        let mut out = HashMap::new();
        for tag in tags {
            let id = match ids.get(tag) {
                Some(&id) => id,
                None => {
                    let id = ids.len();
                    if id >= MAX_DISTINCT_TAGS {
                        return Err(ProfileError::TooManyTags);
                    }
                    let name: Arc<str> = Arc::from(tag);
                    ids.insert(name.clone(), id as u32);
                    added.push(name);
                    id as u32
                }
            };
            out.insert(tag, id);
        }
        if !added.is_empty() {
            let mut names = Vec::clone(&self.names.load());
            names.extend(added);
            self.names.store(Arc::new(names));
        }
        Ok(out)
    }

    /// The id of a tag already interned.
    fn id(&self, tag: &str) -> Option<u32> {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tag)
            .copied()
    }
}

/// The store.
pub struct Profiles {
    users: DashMap<UserId, Box<[Held]>>,
    tags: TagTable,
    /// Users held (kept beside the map: its `len` locks every shard).
    count: AtomicUsize,
    max_users: usize,
    /// Bumped by every change: the periodic snapshot skips a store that did not change.
    changes: AtomicU64,
    /// The bulk files and what became of them.
    /// Held while a snapshot is written: the periodic one and the one at shutdown never overlap.
    saving: Mutex<()>,
}

/// `t` in store seconds.
pub fn stamp(t: DateTime<Utc>) -> u32 {
    (t.timestamp() - EPOCH).clamp(0, i64::from(NEVER - 1)) as u32
}

fn time_of(until: u32) -> Option<DateTime<Utc>> {
    (until != NEVER)
        .then(|| DateTime::from_timestamp(EPOCH + i64::from(until), 0))
        .flatten()
}

impl Profiles {
    pub fn new(max_users: usize) -> Profiles {
        Profiles {
            users: DashMap::with_shard_amount(SHARDS),
            tags: TagTable::default(),
            count: AtomicUsize::new(0),
            max_users,
            changes: AtomicU64::new(0),
            saving: Mutex::new(()),
        }
    }

    pub fn users(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn distinct_tags(&self) -> usize {
        self.tags.names.load().len()
    }

    /// How many changes the store has seen since start.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Applies `updates` as of `now`: each adds its tags to its user or refreshes them (a tag
    /// keeps the later of its two expiries, so a long-term tag stays long-term). A user keeps at
    /// most [`MAX_TAGS`] tags, those expiring last.
    pub fn apply(&self, updates: &[Update], now: DateTime<Utc>) -> Result<Applied, ProfileError> {
        self.apply_as(updates, now, now, Origin::API)
    }

    /// [`Profiles::apply`] from `origin`, ttls counted from `base` (a bulk file's lines count
    /// theirs from the file's modification time, so a restart does not extend them). A tag
    /// already expired at `now` is left out.
    pub(crate) fn apply_as(
        &self,
        updates: &[Update],
        base: DateTime<Utc>,
        now: DateTime<Utc>,
        origin: Origin,
    ) -> Result<Applied, ProfileError> {
        let ids = self.tags.intern(
            updates
                .iter()
                .flat_map(|u| u.tags.iter().map(String::as_str)),
        )?;
        let (base, now) = (stamp(base), stamp(now));
        let mut applied = Applied::default();
        for update in updates {
            let until = update
                .ttl_secs
                .map_or(NEVER, |ttl| base.saturating_add(ttl).min(NEVER - 1));
            let fresh = update
                .tags
                .iter()
                .filter_map(|t| ids.get(t.as_str()))
                .map(|&id| Held::new(id, origin, until));
            match self.users.entry(update.user) {
                Slot::Occupied(mut held) => {
                    let merged = merge(held.get(), fresh, now);
                    if merged.is_empty() {
                        held.remove();
                        self.count.fetch_sub(1, Ordering::Relaxed);
                    } else {
                        held.insert(merged);
                    }
                }
                Slot::Vacant(slot) => {
                    let merged = merge(&[], fresh, now);
                    if merged.is_empty() {
                        // Expired already (a file line whose ttl ran out): nothing to hold.
                    } else if self.count.load(Ordering::Relaxed) >= self.max_users {
                        applied.refused_full += 1;
                        continue;
                    } else {
                        slot.insert(merged);
                        self.count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            applied.applied += 1;
        }
        self.changed();
        Ok(applied)
    }

    /// Ends a rebuild of the file tags: drops the file tags it did not apply again (their line or
    /// file is gone) and unmarks the rest. Finds the users under shard read locks and rewrites
    /// each under its own brief write lock, like [`Profiles::sweep`].
    pub(crate) fn settle(&self) {
        self.rewrite(
            |h| h.is_from_file(),
            |h| {
                (!h.is_from_file() || h.tag & MARK != 0).then_some(Held {
                    tag: h.tag & !MARK,
                    ..h
                })
            },
        );
    }

    /// Rewrites every user holding a tag `touched` says so of, keeping what `keep` returns of
    /// each tag, and forgets users left with none. Returns how many it forgot.
    fn rewrite(
        &self,
        touched: impl Fn(&Held) -> bool,
        keep: impl Fn(Held) -> Option<Held>,
    ) -> usize {
        let users: Vec<UserId> = self
            .users
            .iter()
            .filter(|entry| entry.value().iter().any(&touched))
            .map(|entry| *entry.key())
            .collect();
        let mut forgotten = 0;
        for user in &users {
            if let Some(mut held) = self.users.get_mut(user) {
                *held = held.iter().copied().filter_map(&keep).collect();
            }
            if self.users.remove_if(user, |_, h| h.is_empty()).is_some() {
                forgotten += 1;
            }
        }
        if !users.is_empty() {
            self.count.fetch_sub(forgotten, Ordering::Relaxed);
            self.changed();
        }
        forgotten
    }

    /// Forgets `tag` of `user`, or all of the user's tags. Says whether there was anything to forget.
    pub fn remove(&self, user: UserId, tag: Option<&str>) -> bool {
        let (removed, emptied) = match tag {
            None => (self.users.remove(&user).is_some(), true),
            Some(tag) => {
                let Some(id) = self.tags.id(tag) else {
                    return false;
                };
                let Some(mut held) = self.users.get_mut(&user) else {
                    return false;
                };
                let kept: Box<[Held]> = held.iter().copied().filter(|h| h.id() != id).collect();
                let removed = kept.len() < held.len();
                *held = kept;
                drop(held);
                let emptied = self.users.remove_if(&user, |_, h| h.is_empty()).is_some();
                (removed, emptied)
            }
        };
        if removed {
            if emptied {
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
            self.changed();
        }
        removed
    }

    /// The live tags of `user` at `now`, with their expiries (`None`: long-term), by name. A tag
    /// held from both a file and the API shows once, with the later expiry.
    pub fn live(&self, user: UserId, now: DateTime<Utc>) -> Vec<(Arc<str>, Option<DateTime<Utc>>)> {
        let now = stamp(now);
        let names = self.tags.names.load();
        let mut latest: Vec<Held> = Vec::new();
        if let Some(held) = self.users.get(&user) {
            for h in held.iter().filter(|h| h.until > now) {
                match latest.last_mut() {
                    Some(last) if last.id() == h.id() => last.until = last.until.max(h.until),
                    _ => latest.push(*h),
                }
            }
        }
        let mut out: Vec<_> = latest
            .iter()
            .filter_map(|h| Some((names.get(h.id() as usize)?.clone(), time_of(h.until))))
            .collect();
        out.sort();
        out
    }

    /// Adds the live tags the store holds for the request's user to `facts.tags`, after the
    /// request's own (which are sorted), leaving out those it already has, up to [`MAX_TAGS`] in
    /// all. The bid path: a shard read lock, nothing else.
    pub fn enrich(&self, facts: &mut Facts) {
        if self.users() == 0 {
            return;
        }
        // The same id audience packages ask for: computed once per request.
        let Some(held) = facts.user_id().and_then(|id| self.users.get(&id)) else {
            return;
        };
        let now = stamp(facts.now);
        let names = self.tags.names.load();
        let own = facts.tags.len();
        let mut last = None;
        for held in held.iter().filter(|h| h.until > now) {
            // One tag's entries (from a file and the API) are next to each other.
            if last.replace(held.id()) == Some(held.id()) {
                continue;
            }
            let Some(name) = names.get(held.id() as usize) else {
                continue;
            };
            if facts.tags.len() >= MAX_TAGS {
                break;
            }
            let known = facts.tags[..own].binary_search_by(|t| t.as_str().cmp(name));
            if known.is_err() {
                facts.tags.push(name.to_string());
            }
        }
    }

    /// Frees the tags expired at `now`, and users left with none. Finds them under shard read
    /// locks (requests read on), then rewrites each user under its own brief write lock, so a
    /// request never waits for more than one user's rewrite. Returns how many users it forgot.
    pub fn sweep(&self, now: DateTime<Utc>) -> usize {
        let now = stamp(now);
        self.rewrite(|h| h.until <= now, |h| (h.until > now).then_some(h))
    }

    /// Its metrics: the users it holds and the tag names it has interned.
    pub fn report(&self, out: &mut Exposition) {
        out.gauge(
            "precis_profile_users",
            "Users the profile store holds tags for.",
            self.users(),
        );
        out.gauge(
            "precis_profile_tags",
            "Distinct tag names the profile store has interned.",
            self.distinct_tags(),
        );
    }

    /// What `/status` shows of the store (its bulk files: [`bulk::Feed::status`]).
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "users": self.users(),
            "max_users": self.max_users,
            "distinct_tags": self.distinct_tags(),
        })
    }
}

/// `held` with `fresh` added, without what expired at `now` (a tag twice from one origin keeps
/// its later expiry), sorted by tag, at most [`MAX_TAGS`] (those expiring last, then the ones a
/// rebuild keeps).
fn merge(held: &[Held], fresh: impl Iterator<Item = Held>, now: u32) -> Box<[Held]> {
    let mut all: Vec<Held> = held
        .iter()
        .copied()
        .chain(fresh)
        .filter(|h| h.until > now)
        .collect();
    // Per tag, latest expiry first; then keep the first of each tag.
    all.sort_unstable_by(|a, b| a.tag.cmp(&b.tag).then(b.until.cmp(&a.until)));
    all.dedup_by_key(|h| h.tag);
    if all.len() > MAX_TAGS {
        // Among equals, a file tag a rebuild in progress has not given again goes first.
        let stale = |h: &Held| h.tag & (FROM_FILE | MARK) == FROM_FILE;
        all.sort_unstable_by_key(|h| (std::cmp::Reverse(h.until), stale(h)));
        all.truncate(MAX_TAGS);
        all.sort_unstable_by_key(|h| h.tag);
    }
    all.into_boxed_slice()
}

/// A ttl as written in files and the API: a whole number and a unit, `30s`, `5m`, `2h`, `7d`.
pub fn parse_ttl(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let bad = || format!("ttl `{text}` is not a duration like 30s, 5m, 2h or 7d");
    let last = text.chars().next_back().ok_or_else(bad)?;
    let (number, unit) = text.split_at(text.len() - last.len_utf8());
    let unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let secs = number
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(bad)?;
    // Ten years is long-term in all but name.
    u32::try_from(secs)
        .ok()
        .filter(|s| *s <= 3_650 * 86_400)
        .ok_or_else(|| format!("ttl `{text}` is over 3650d: leave it out for a long-term tag"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn update(key: &str, tags: &[&str], ttl: Option<u32>) -> Update {
        Update::of(key, tags, ttl)
    }

    fn facts_for(key: &str, now: DateTime<Utc>) -> Facts {
        let request = crate::request::openrtb::decode(
            serde_json::json!({"id": "r", "imp": [{"id": "1"}], "user": {"id": key, "keywords": "own"}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        Facts::from_request(&request, now)
    }

    #[test]
    fn a_request_gets_its_users_live_tags_and_instant_ones_expire() {
        let store = Profiles::new(10);
        let t0 = at("2026-11-23T10:00:00Z");
        store
            .apply(
                &[
                    update("u1", &["sports/running", "own"], None),
                    update("u1", &["shoes"], Some(300)),
                ],
                t0,
            )
            .unwrap();
        let mut facts = facts_for("u1", t0);
        store.enrich(&mut facts);
        assert_eq!(facts.tags, ["own", "sports/running", "shoes"]);

        let later = t0 + chrono::Duration::seconds(300);
        let mut facts = facts_for("u1", later);
        store.enrich(&mut facts);
        assert_eq!(facts.tags, ["own", "sports/running"], "the 5m tag expired");
        let mut other = facts_for("u2", t0);
        store.enrich(&mut other);
        assert_eq!(other.tags, ["own"]);

        assert_eq!(store.sweep(later), 0, "u1 still has a long-term tag");
        assert_eq!(store.live(UserId::of_key("u1"), later).len(), 2);
    }

    #[test]
    fn a_refresh_keeps_the_later_expiry_and_removal_forgets() {
        let store = Profiles::new(10);
        let t0 = at("2026-11-23T10:00:00Z");
        let u1 = UserId::of_key("u1");
        store
            .apply(&[update("u1", &["a", "b"], Some(60))], t0)
            .unwrap();
        store
            .apply(
                &[update("u1", &["a"], None), update("u1", &["b"], Some(10))],
                t0,
            )
            .unwrap();
        let live = store.live(u1, t0);
        assert_eq!(live[0], (Arc::from("a"), None));
        assert_eq!(live[1].1, Some(t0 + chrono::Duration::seconds(60)));

        assert!(store.remove(u1, Some("a")));
        assert!(!store.remove(u1, Some("a")));
        assert!(!store.remove(u1, Some("never-seen")));
        assert_eq!(store.users(), 1);
        assert!(store.remove(u1, Some("b")));
        assert_eq!(store.users(), 0, "a user with no tags left is forgotten");
        assert!(!store.remove(u1, None));
    }

    #[test]
    fn the_sweep_forgets_users_whose_tags_all_expired() {
        let store = Profiles::new(10);
        let t0 = at("2026-11-23T10:00:00Z");
        store
            .apply(
                &[update("u1", &["a"], Some(60)), update("u2", &["a"], None)],
                t0,
            )
            .unwrap();
        assert_eq!(store.sweep(t0 + chrono::Duration::seconds(59)), 0);
        assert_eq!(store.sweep(t0 + chrono::Duration::seconds(60)), 1);
        assert_eq!(store.users(), 1);
    }

    #[test]
    fn past_max_users_new_users_are_refused_and_known_ones_still_updated() {
        let store = Profiles::new(1);
        let t0 = at("2026-11-23T10:00:00Z");
        let applied = store
            .apply(
                &[
                    update("u1", &["a"], None),
                    update("u2", &["a"], None),
                    update("u1", &["b"], None),
                ],
                t0,
            )
            .unwrap();
        assert_eq!(
            applied,
            Applied {
                applied: 2,
                refused_full: 1
            }
        );
        assert_eq!(store.live(UserId::of_key("u1"), t0).len(), 2);
    }

    #[test]
    fn a_user_keeps_the_tags_expiring_last_up_to_the_cap() {
        let store = Profiles::new(1);
        let t0 = at("2026-11-23T10:00:00Z");
        let many: Vec<String> = (0..MAX_TAGS + 10).map(|i| format!("t{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        store.apply(&[update("u1", &many, Some(60))], t0).unwrap();
        store.apply(&[update("u1", &["keep"], None)], t0).unwrap();
        let live = store.live(UserId::of_key("u1"), t0);
        assert_eq!(live.len(), MAX_TAGS);
        assert!(live.iter().any(|(t, _)| &**t == "keep"));
    }

    #[test]
    fn ttls_are_a_number_and_a_unit() {
        assert_eq!(parse_ttl("30s"), Ok(30));
        assert_eq!(parse_ttl("5m"), Ok(300));
        assert_eq!(parse_ttl(" 2h"), Ok(7_200));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        for bad in ["", "m", "5", "0m", "-5m", "5w", "1.5h", "99999999999d", "é"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
    }
}
