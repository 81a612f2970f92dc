//! Frequency: how often each user has been shown each campaign, and whether one more is allowed.
//!
//! Counted per user (the keyed hash of user.id, else buyeruid, else device ifa: see
//! [`crate::token::Keys::user_hash`]) and per campaign, on impressions, in calendar windows of the
//! campaign's time zone. Impressions arrive after bids, so a bid counts as *pending* for its user
//! until its impression arrives or `hold_secs` pass: a burst of requests for one user cannot
//! outrun the cap. A conversion marks the user for campaigns that stop after one.
//!
//! Memory is bounded: [`Exposures::sweep`] drops windows that are over and, past `max_users`,
//! the users seen least recently. The bid path takes one shard lock of a dashmap for a few
//! integer compares; it never waits on anything else. The exposures go into the state snapshot
//! ([`Exposures::save`]) and come back from it at start.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use crate::binary::{BinaryError, Le, get_count};
use crate::campaign::{Campaign, Window};
use crate::clock::{next_hour, next_midnight, next_monday, unix_secs};
use crate::metrics::Exposition;

/// Every known user's exposures.
#[derive(Debug)]
pub struct Exposures {
    users: DashMap<u64, User>,
    max_users: usize,
    hold_secs: u32,
    /// Capped campaigns that met a request without a user key (it cannot be capped).
    pub anonymous: AtomicU64,
    /// Candidates that stepped aside because their user had seen enough of them.
    pub capped: AtomicU64,
}

#[derive(Debug, Default)]
struct User {
    /// Unix seconds of the last bid or impression: who is evicted first.
    last: u32,
    seen: Vec<Seen>,
}

/// One user's exposure to one campaign.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// [`campaign_key`] of the campaign.
    campaign: u64,
    /// Impressions in the current window, which ends at `window_end` (unix seconds).
    shown: u16,
    window_end: u32,
    /// Bids still waiting for their impression, until `pending_until`.
    pending: u16,
    pending_until: u32,
    converted: bool,
}

impl Seen {
    fn new(campaign: u64) -> Seen {
        Seen {
            campaign,
            shown: 0,
            window_end: 0,
            pending: 0,
            pending_until: 0,
            converted: false,
        }
    }

    /// Starts a new window (ending where `window_end` says) if the last one is over, and
    /// forgets pending bids that never showed.
    fn current(&mut self, now: u32, window_end: impl FnOnce() -> u32) {
        if now >= self.window_end {
            self.shown = 0;
            self.window_end = window_end();
        }
        if now >= self.pending_until {
            self.pending = 0;
        }
    }
}

impl Exposures {
    pub fn new(max_users: usize, hold_secs: u32) -> Exposures {
        Exposures {
            users: DashMap::new(),
            max_users,
            hold_secs,
            anonymous: AtomicU64::new(0),
            capped: AtomicU64::new(0),
        }
    }

    /// Whether `user` may be bid on for `campaign` now; if so the bid is counted as pending.
    /// Campaigns without a cap, and requests without a user, are always allowed.
    pub fn admit(&self, user: Option<u64>, campaign: &Campaign, now: DateTime<Utc>) -> bool {
        let Some(cap) = &campaign.frequency else {
            return true;
        };
        let Some(user) = user else {
            self.anonymous.fetch_add(1, Ordering::Relaxed);
            return true;
        };
        let now_secs = unix_secs(now);
        let key = campaign_key(&campaign.id);
        let mut entry = self.users.entry(user).or_default();
        entry.last = now_secs;
        let seen = entry.seen(key);
        seen.current(now_secs, || window_end(campaign, now));
        let enough = cap
            .impressions
            .is_some_and(|limit| u32::from(seen.shown) + u32::from(seen.pending) >= limit);
        if enough || (cap.stop_after_conversion && seen.converted) {
            self.capped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        seen.pending = seen.pending.saturating_add(1);
        seen.pending_until = now_secs.saturating_add(self.hold_secs);
        true
    }

    /// How many impressions `user` has of `campaign` in its current window, with the bids still
    /// waiting for theirs, and whether the user converted: what [`Exposures::admit`] compares,
    /// read without counting anything (for explaining a no-bid).
    pub fn seen(&self, user: u64, campaign: &Campaign, now: DateTime<Utc>) -> (u32, bool) {
        let now = unix_secs(now);
        let key = campaign_key(&campaign.id);
        let Some(entry) = self.users.get(&user) else {
            return (0, false);
        };
        entry
            .seen
            .iter()
            .find(|s| s.campaign == key)
            .map_or((0, false), |s| {
                let shown = if now >= s.window_end { 0 } else { s.shown };
                let pending = if now >= s.pending_until { 0 } else { s.pending };
                (u32::from(shown) + u32::from(pending), s.converted)
            })
    }

    /// Forgets everything about `user`: impressions, pending bids, conversions (a deletion
    /// request). Says whether there was anything.
    pub fn forget(&self, user: u64) -> bool {
        self.users.remove(&user).is_some()
    }

    /// Gives back an admission whose bid was not made after all.
    pub fn cancel(&self, user: Option<u64>, campaign: &Campaign) {
        let (Some(user), Some(_)) = (user, &campaign.frequency) else {
            return;
        };
        if let Some(mut entry) = self.users.get_mut(&user) {
            let seen = entry.seen(campaign_key(&campaign.id));
            seen.pending = seen.pending.saturating_sub(1);
        }
    }

    /// An impression of `campaign` to `user` at `now`. Also used to replay the event log.
    pub fn shown(&self, user: u64, campaign: &Campaign, now: DateTime<Utc>) {
        if campaign
            .frequency
            .as_ref()
            .is_none_or(|c| c.impressions.is_none())
        {
            return;
        }
        let now_secs = unix_secs(now);
        let mut entry = self.users.entry(user).or_default();
        entry.last = entry.last.max(now_secs);
        let seen = entry.seen(campaign_key(&campaign.id));
        seen.current(now_secs, || window_end(campaign, now));
        seen.shown = seen.shown.saturating_add(1);
        seen.pending = seen.pending.saturating_sub(1);
    }

    /// A conversion of `user` for `campaign`: the end of it for campaigns that stop after one.
    pub fn converted(&self, user: u64, campaign: &Campaign, now: DateTime<Utc>) {
        if !campaign
            .frequency
            .as_ref()
            .is_some_and(|c| c.stop_after_conversion)
        {
            return;
        }
        let mut entry = self.users.entry(user).or_default();
        entry.last = entry.last.max(unix_secs(now));
        entry.seen(campaign_key(&campaign.id)).converted = true;
    }

    /// Impressions `user` has had of `campaign` in its current window.
    #[cfg(test)]
    fn count(&self, user: u64, campaign: &Campaign, now: DateTime<Utc>) -> u32 {
        let key = campaign_key(&campaign.id);
        self.users
            .get(&user)
            .and_then(|u| {
                let seen = u.seen.iter().find(|s| s.campaign == key)?;
                (unix_secs(now) < seen.window_end).then_some(u32::from(seen.shown))
            })
            .unwrap_or(0)
    }

    /// Its metrics: requests it could not cap (no user key) and the users it remembers.
    pub fn report(&self, out: &mut Exposition) {
        out.counter(
            "precis_frequency_anonymous_total",
            "Frequency-capped campaigns that met a request without a user key (not capped).",
            self.anonymous.load(Ordering::Relaxed),
        );
        out.gauge(
            "precis_frequency_users",
            "Users whose exposures frequency caps remember.",
            self.users(),
        );
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Forgets what can no longer cap anyone (windows over, pending bids expired, users with
    /// nothing left), then, past `max_users`, the users seen least recently. Returns how many
    /// users it dropped. Runs off the bid path; holds one shard at a time.
    pub fn sweep(&self, now: DateTime<Utc>) -> usize {
        let now = unix_secs(now);
        let before = self.users.len();
        self.users.retain(|_, user| {
            user.seen
                .retain(|s| s.converted || now < s.window_end || now < s.pending_until);
            !user.seen.is_empty()
        });
        let excess = self.users.len().saturating_sub(self.max_users);
        if excess > 0 {
            let mut lasts: Vec<u32> = self.users.iter().map(|u| u.last).collect();
            let (_, &mut cutoff, _) = lasts.select_nth_unstable(excess - 1);
            let mut evict = excess;
            self.users.retain(|_, user| {
                let keep = user.last > cutoff || evict == 0;
                evict -= usize::from(!keep);
                keep
            });
        }
        before.saturating_sub(self.users.len())
    }
}

impl Exposures {
    /// An empty one with the same bounds.
    pub fn empty_like(&self) -> Exposures {
        Exposures::new(self.max_users, self.hold_secs)
    }

    /// Writes every user's exposures into a state snapshot, after the key of a known campaign id:
    /// campaigns are kept by their key, and a build that keys them otherwise must not read them.
    pub fn save(&self, out: &mut impl Write) -> std::io::Result<()> {
        campaign_key(PROBE).put(out)?;
        let users: Vec<(u64, u32, Vec<Seen>)> = self
            .users
            .iter()
            .map(|user| (*user.key(), user.last, user.seen.clone()))
            .collect();
        (users.len() as u64).put(out)?;
        for (id, last, seen) in users {
            id.put(out)?;
            last.put(out)?;
            (seen.len() as u64).put(out)?;
            for s in seen {
                s.campaign.put(out)?;
                s.shown.put(out)?;
                s.window_end.put(out)?;
                s.pending.put(out)?;
                s.pending_until.put(out)?;
                u8::from(s.converted).put(out)?;
            }
        }
        Ok(())
    }

    /// Reads what [`Exposures::save`] wrote into this one (meant to be empty).
    pub fn load(&self, input: &mut impl Read) -> Result<(), BinaryError> {
        if u64::get(input)? != campaign_key(PROBE) {
            return Err(BinaryError::Corrupt(
                "its exposures were written by a build that keys campaigns otherwise",
            ));
        }
        for _ in 0..get_count(input, usize::MAX)? {
            let id = u64::get(input)?;
            let last = u32::get(input)?;
            let count = get_count(input, usize::from(u16::MAX))?;
            let seen = (0..count)
                .map(|_| {
                    Ok(Seen {
                        campaign: u64::get(input)?,
                        shown: u16::get(input)?,
                        window_end: u32::get(input)?,
                        pending: u16::get(input)?,
                        pending_until: u32::get(input)?,
                        converted: u8::get(input)? != 0,
                    })
                })
                .collect::<Result<_, BinaryError>>()?;
            self.users.insert(id, User { last, seen });
        }
        Ok(())
    }
}

/// The campaign id whose key a snapshot carries, to tell whether campaigns are keyed alike.
const PROBE: &str = "precis";

impl User {
    fn seen(&mut self, campaign: u64) -> &mut Seen {
        let at = match self.seen.iter().position(|s| s.campaign == campaign) {
            Some(at) => at,
            None => {
                self.seen.push(Seen::new(campaign));
                self.seen.len() - 1
            }
        };
        &mut self.seen[at]
    }
}

/// Where the window that holds `now` ends, unix seconds.
fn window_end(campaign: &Campaign, now: DateTime<Utc>) -> u32 {
    let tz = campaign.timezone;
    let per = campaign
        .frequency
        .as_ref()
        .map_or(Window::Flight, |c| c.per);
    match per {
        Window::Hour => unix_secs(next_hour(now, tz)),
        Window::Day => unix_secs(next_midnight(now, tz)),
        Window::Week => unix_secs(next_monday(now, tz)),
        Window::Flight => campaign.end.map_or(u32::MAX, unix_secs),
    }
}

/// A campaign id as 8 bytes: what a user's record stores instead of the id.
fn campaign_key(id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::Frequency;
    use crate::campaign::pricing::Rates;
    use chrono::Duration;
    use std::path::Path;

    fn campaign(cap: Frequency) -> Campaign {
        let mut campaign = campaign_in("Europe/Paris", "");
        campaign.frequency = Some(cap);
        campaign
    }

    /// A campaign whose `timezone` is `tz`, its file ending with `lines`.
    fn campaign_in(tz: &str, lines: &str) -> Campaign {
        let text = format!(
            "adomain = [\"shop.example\"]\ntimezone = \"{tz}\"\n\
             [pricing]\nmodel = \"cpm\"\ncpm = 2.0\n\
             [[creative]]\nid = \"c\"\nformat = \"banner\"\nw = 300\nh = 250\n\
             adm = \"ad\"\nlanding = \"https://shop.example/\"\n{lines}"
        );
        crate::campaign::file::parse(&text, Path::new("capped.toml"), &Rates::new([]))
            .expect("a valid campaign")
    }

    /// A campaign in `tz` whose file caps each user at two impressions `per` window.
    fn two_per(tz: &str, per: &str) -> Campaign {
        campaign_in(
            tz,
            &format!("[frequency]\nimpressions = 2\nper = \"{per}\""),
        )
    }

    /// Exposures where user 7 was bid on and shown the campaign twice at `now`, each bid allowed.
    fn shown_twice(campaign: &Campaign, now: DateTime<Utc>) -> Exposures {
        let exposures = Exposures::new(100, 60);
        for n in 1..=2 {
            assert!(
                exposures.admit(Some(7), campaign, now),
                "impression {n} at {now}"
            );
            exposures.shown(7, campaign, now);
        }
        exposures
    }

    /// Whether user 7 may be shown the campaign at each of `times`.
    fn allowed(exposures: &Exposures, campaign: &Campaign, times: &[&str]) -> Vec<bool> {
        times
            .iter()
            .map(|t| exposures.admit(Some(7), campaign, at(t)))
            .collect()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    const THREE_A_DAY: Frequency = Frequency {
        impressions: Some(3),
        per: Window::Day,
        stop_after_conversion: false,
    };

    #[test]
    fn a_user_sees_a_campaign_at_most_its_cap_per_local_day() {
        let campaign = campaign(THREE_A_DAY);
        let exposures = Exposures::new(100, 60);
        let morning = at("2026-11-23T08:00:00Z");
        for _ in 0..3 {
            assert!(exposures.admit(Some(7), &campaign, morning));
            exposures.shown(7, &campaign, morning);
        }
        assert_eq!(exposures.count(7, &campaign, morning), 3);
        assert!(!exposures.admit(Some(7), &campaign, morning), "a fourth");
        assert!(exposures.admit(Some(8), &campaign, morning), "another user");
        assert!(exposures.admit(None, &campaign, morning), "no user key");
        assert_eq!(exposures.anonymous.load(Ordering::Relaxed), 1);
        // Midnight in Paris is 23:00 UTC in November: a new day, a new window.
        assert!(!exposures.admit(Some(7), &campaign, at("2026-11-23T22:59:00Z")));
        assert!(exposures.admit(Some(7), &campaign, at("2026-11-23T23:00:00Z")));
    }

    #[test]
    fn an_hourly_cap_starts_afresh_at_each_local_hour() {
        // Kolkata is UTC+05:30: its hours start at half past UTC hours.
        let campaign = two_per("Asia/Kolkata", "hour");
        // 14:10 local.
        let exposures = shown_twice(&campaign, at("2026-11-23T08:40:00Z"));
        // 14:30 and 14:59:59 local (past a UTC hour), then 15:00 local.
        let times = [
            "2026-11-23T09:00:00Z",
            "2026-11-23T09:29:59Z",
            "2026-11-23T09:30:00Z",
        ];
        assert_eq!(allowed(&exposures, &campaign, &times), [false, false, true]);
    }

    #[test]
    fn a_weekly_cap_runs_monday_to_sunday_local_time() {
        let campaign = two_per("Europe/Paris", "week");
        // Monday 23 November 2026, 09:00 in Paris (UTC+1).
        let exposures = shown_twice(&campaign, at("2026-11-23T08:00:00Z"));
        let times = [
            // Tuesday morning; Sunday 23:59:59 in Paris.
            "2026-11-24T08:00:00Z",
            "2026-11-29T22:59:59Z",
            // Monday 00:00 in Paris (still Sunday in UTC): a new week.
            "2026-11-29T23:00:00Z",
        ];
        assert_eq!(allowed(&exposures, &campaign, &times), [false, false, true]);
    }

    #[test]
    fn a_flight_cap_lasts_the_whole_flight_and_sweeps_keep_it() {
        let campaign = two_per("Europe/Paris", "flight");
        let start = at("2026-11-23T08:00:00Z");
        let exposures = shown_twice(&campaign, start);
        // A day and a week later; then a sweep, then more than a year later.
        let later = ["2026-11-24T08:00:00Z", "2026-12-01T08:00:00Z"];
        assert_eq!(allowed(&exposures, &campaign, &later), [false; 2]);
        exposures.sweep(at("2027-12-28T08:00:00Z"));
        assert_eq!(
            allowed(&exposures, &campaign, &["2027-12-28T08:00:00Z"]),
            [false]
        );

        // A flight with an end: capped to its last second, forgotten once it is over.
        let mut ending = campaign.clone();
        let end = at("2026-12-01T00:00:00Z");
        ending.end = Some(end);
        let exposures = shown_twice(&ending, start);
        assert_eq!(
            allowed(&exposures, &ending, &["2026-11-30T23:59:59Z"]),
            [false]
        );
        assert_eq!(exposures.sweep(end - Duration::seconds(1)), 0);
        assert_eq!(exposures.sweep(end), 1);
    }

    #[test]
    fn each_campaign_caps_a_user_on_its_own() {
        let capped = two_per("Europe/Paris", "day");
        let other = Campaign {
            id: "other".into(),
            ..capped.clone()
        };
        let now = at("2026-11-23T08:00:00Z");
        let exposures = shown_twice(&capped, now);
        assert!(!exposures.admit(Some(7), &capped, now));
        assert!(exposures.admit(Some(7), &other, now), "another campaign");
    }

    #[test]
    fn a_sweep_forgets_a_bid_that_never_showed_as_its_hold_expires() {
        // An hour's window that ends before the bid's hold does: only the hold keeps the user.
        let campaign = two_per("Europe/Paris", "hour");
        let exposures = Exposures::new(100, 60);
        let bid = at("2026-11-23T08:59:30Z");
        assert!(exposures.admit(Some(7), &campaign, bid));
        let expiry = bid + Duration::seconds(60);
        assert_eq!(exposures.sweep(expiry - Duration::seconds(1)), 0);
        assert_eq!(exposures.users(), 1);
        assert_eq!(exposures.sweep(expiry), 1);
        assert_eq!(exposures.users(), 0);
    }

    #[test]
    fn past_max_users_a_sweep_drops_just_the_excess_even_among_users_seen_at_once() {
        let campaign = two_per("Europe/Paris", "day");
        let exposures = Exposures::new(2, 60);
        let now = at("2026-11-23T08:00:00Z");
        for user in 1..=3 {
            assert!(exposures.admit(Some(user), &campaign, now));
        }
        assert_eq!(exposures.sweep(now), 1);
        assert_eq!(exposures.users(), 2);
    }

    #[test]
    fn bids_waiting_for_their_impression_count_until_they_expire() {
        let campaign = campaign(THREE_A_DAY);
        let exposures = Exposures::new(100, 60);
        let now = at("2026-11-23T08:00:00Z");
        // A burst of requests for one user: three bids, then nothing until impressions arrive.
        assert!((0..3).all(|_| exposures.admit(Some(7), &campaign, now)));
        assert!(!exposures.admit(Some(7), &campaign, now));
        // One bid was not made after all (the budget said no): its place is free again.
        exposures.cancel(Some(7), &campaign);
        assert!(exposures.admit(Some(7), &campaign, now));
        // Bids that never showed stop counting after hold_secs.
        assert!(exposures.admit(Some(7), &campaign, now + Duration::seconds(60)));
    }

    #[test]
    fn a_converted_user_is_not_shown_the_campaign_again() {
        let campaign = campaign(Frequency {
            impressions: None,
            per: Window::Flight,
            stop_after_conversion: true,
        });
        let exposures = Exposures::new(100, 60);
        let now = at("2026-11-23T08:00:00Z");
        assert!(exposures.admit(Some(7), &campaign, now));
        exposures.converted(7, &campaign, now);
        assert!(!exposures.admit(Some(7), &campaign, now + Duration::days(30)));
        exposures.sweep(now + Duration::days(30));
        assert!(
            !exposures.admit(Some(7), &campaign, now + Duration::days(31)),
            "a sweep does not forget a conversion"
        );
    }

    #[test]
    fn sweeping_forgets_finished_windows_and_the_least_recent_users_past_the_bound() {
        let campaign = campaign(THREE_A_DAY);
        let exposures = Exposures::new(1_000, 60);
        let start = at("2026-11-23T08:00:00Z");
        for user in 0..1_500u64 {
            exposures.shown(user, &campaign, start + Duration::seconds(user as i64));
        }
        assert_eq!(exposures.sweep(start + Duration::hours(1)), 500);
        assert_eq!(exposures.users(), 1_000);
        // The 500 seen first went; the rest keep their counts.
        assert_eq!(exposures.count(499, &campaign, start), 0);
        assert_eq!(exposures.count(500, &campaign, start), 1);
        // After the day, nothing is left to cap anyone.
        exposures.sweep(start + Duration::days(1));
        assert_eq!(exposures.users(), 0);
    }
}
