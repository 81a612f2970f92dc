//! The recorder: what an event notice means. The exchange's win and impression notices, the
//! user's click and the advertiser's conversion each become one line of the event log
//! ([`Event`]): the recorder verifies the token, applies the first-price rule, prices the event
//! (spend, what the advertiser owes), logs each event once (what it logged is remembered in
//! [`Seen`] until its token expires), feeds what it teaches to the book ([`Store::observe`]:
//! rates, spend, exposures) and counts what it accepted and refused.
//!
//! The HTTP layer only reads parameters and turns a [`Refusal`] into a status. The recorder never
//! waits for disk: it hands lines to the log's queue, and a full queue is a [`Refusal::Busy`]
//! (503) the sender retries. What it accepted carries the line's receipt ([`Recorded`]): the
//! route answers once [`Recorder::durable`] says the line is on disk, or 503
//! ([`Refusal::Unwritten`]) while the log cannot write. An event is counted (in memory, and in
//! the book) when its line is queued, once: a repeat waits for every line queued before it (its
//! first copy among them), so a retry during a disk outage is acknowledged only once that copy is
//! written.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use crate::book::store::Store;
use crate::campaign::Campaign;
use crate::campaign::pricing::{Currency, Model, Rates};
use crate::clock::unix_secs;
use crate::eventlog::{Busy, Event, EventLog, Health, Kind, Receipt, Unwritten};
use crate::measure::seen::{self, Full, Remembered, Seen};
use crate::metrics::Exposition;
use crate::token::{Claims, Keys, Purpose, TokenError};

/// Why an event was not recorded. Each maps to a 4xx/503 answer and a reason in `/metrics`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refusal {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("`price` must be the clearing price, a number of at least 0")]
    Price,
    #[error("`value` must be the order amount, a number of at least 0")]
    Value,
    #[error("campaign `{0}` no longer serves creative `{1}`")]
    Gone(String, String),
    #[error("this click has converted as often as a click may")]
    TooManyOrders,
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error(transparent)]
    Unwritten(#[from] Unwritten),
}

impl From<Full> for Refusal {
    /// No room to remember one more event now: a 503 the sender retries, as a full log queue is.
    fn from(_: Full) -> Refusal {
        Refusal::Busy(Busy)
    }
}

/// The reasons refusals are counted by, in `/metrics` order (see [`Refusal::reason`]).
const REASONS: [&str; 8] = [
    "bad_token",
    "expired",
    "bad_amount",
    "gone",
    "busy",
    "too_many_orders",
    "bad_body",
    "unwritten",
];

/// A conversion whose body could not be read (too large, too slow, broken): counted with the
/// refusals, though it never reached the recorder.
const BAD_BODY: usize = 6;

impl Refusal {
    /// Its reason in `/metrics`: an index into [`REASONS`].
    fn reason(&self) -> usize {
        match self {
            Refusal::Token(TokenError::Expired) => 1,
            Refusal::Token(_) => 0,
            Refusal::Price | Refusal::Value => 2,
            Refusal::Gone(..) => 3,
            Refusal::Busy(_) => 4,
            Refusal::TooManyOrders => 5,
            Refusal::Unwritten(_) => 7,
        }
    }
}

/// What an accepted event request did, with the receipt of its line (for a repeat, the last line
/// queued, which its first copy came before): answer once [`Recorder::durable`] says it is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Logged.
    New(Receipt),
    /// Seen before (exchanges retry, pixels fire twice): counted once, not logged again.
    Again(Receipt),
}

impl Recorded {
    /// The receipt of the event's line.
    pub fn receipt(self) -> Receipt {
        match self {
            Recorded::New(receipt) | Recorded::Again(receipt) => receipt,
        }
    }
}

/// A click that was genuine: where the user goes, and whether the click was logged (the user gets
/// where they clicked either way).
#[derive(Debug)]
pub struct Click {
    /// The creative's landing page with the click token (`pclid`) the advertiser returns with a
    /// conversion.
    pub landing: String,
    pub logged: Result<Recorded, Refusal>,
}

/// What the recorder accepts and logs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long after its bid an event is accepted.
    pub token_ttl_secs: u32,
    /// One bid line per this many bids; 0 for none.
    pub log_bids_every: u64,
    /// How many conversions one click may bring.
    pub max_orders_per_click: u32,
    /// Events remembered at most to count each once (see [`Seen`]).
    pub max_dedup_keys: usize,
}

/// The kinds of logged events counted in `/metrics` (bid lines are counted apart: a sample).
const COUNTED: [Kind; 4] = [Kind::Win, Kind::Imp, Kind::Click, Kind::Conv];

/// Accepts events: checks their token, prices them, logs each one once.
pub struct Recorder {
    log: EventLog,
    keys: Keys,
    policy: Policy,
    /// Events already logged, until their token expires, and each click's orders.
    seen: Seen,
    bids: AtomicU64,
    /// Bid lines not logged because the log was busy (bid lines are a sample; events are not).
    bid_lines_dropped: AtomicU64,
    /// Events logged and events seen again, by kind (indexed as `Kind`); refusals by reason.
    logged: [AtomicU64; 5],
    repeats: [AtomicU64; 5],
    refused: [AtomicU64; REASONS.len()],
}

impl Recorder {
    pub fn new(log: EventLog, keys: Keys, policy: Policy) -> Recorder {
        Recorder {
            log,
            keys,
            policy,
            seen: Seen::new(policy.token_ttl_secs, policy.max_dedup_keys),
            bids: AtomicU64::new(0),
            bid_lines_dropped: AtomicU64::new(0),
            logged: Default::default(),
            repeats: Default::default(),
            refused: Default::default(),
        }
    }

    /// The same, remembering what `seen` remembers (read back from a state snapshot).
    pub fn with_seen(self, seen: Seen) -> Recorder {
        Recorder { seen, ..self }
    }

    /// The keys event tokens are signed with (the auction signs its bids' with them).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// What it remembers of the events it logged.
    pub fn seen(&self) -> &Seen {
        &self.seen
    }

    /// Its event log.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Until when an event logged as `event` could arrive again: its token's lifetime from then.
    pub fn expiry(&self, event: &Event) -> u32 {
        unix_secs(event.ts).saturating_add(self.policy.token_ttl_secs)
    }

    /// `GET /win?t=TOKEN&price=P`: the exchange says the bid won at clearing price `price` (CPM in
    /// the bid's currency), which must be there and, first price, at most what precis bid.
    pub fn win(
        &self,
        store: &Store,
        token: &str,
        price: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Refusal> {
        self.counted(Kind::Win, self.notice(store, Kind::Win, token, price, now))
    }

    /// `GET /imp?t=TOKEN[&price=P]`: the ad was rendered, a billable impression; a price, when
    /// given, is held to the same rule as a win's.
    pub fn impression(
        &self,
        store: &Store,
        token: &str,
        price: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Refusal> {
        self.counted(Kind::Imp, self.notice(store, Kind::Imp, token, price, now))
    }

    /// `GET /click?t=TOKEN`: where the user goes, the creative's landing page from the campaign
    /// file (never from the request: no open redirect), with a click token for conversions. A
    /// click the log is too busy to take is counted as refused, and the user still gets there.
    pub fn click(&self, store: &Store, token: &str, now: DateTime<Utc>) -> Result<Click, Refusal> {
        let clicked = (|| {
            let claims = self.verify(token, Purpose::Event, now)?;
            let snapshot = store.snapshot();
            let campaign = snapshot.campaign(&claims.campaign);
            let creative =
                campaign.and_then(|c| c.creatives.iter().find(|k| k.id == claims.creative));
            let (Some(campaign), Some(creative)) = (campaign, creative) else {
                return Err(Refusal::Gone(claims.campaign, claims.creative));
            };
            let mut event = Event::about(Kind::Click, &claims, now);
            event.revenue_usd = revenue_usd(Kind::Click, campaign, None, store.rates());
            let logged = self.counted(Kind::Click, self.record(store, event, Some(campaign)));
            let pclid = self.keys.sign(&Claims {
                purpose: Purpose::Click,
                issued: unix_secs(now),
                ..claims
            });
            Ok(Click {
                landing: with_param(&creative.landing, "pclid", &pclid),
                logged,
            })
        })();
        clicked.inspect_err(|refusal| self.refuse(refusal))
    }

    /// `GET|POST /conv?pclid=TOKEN[&value=AMOUNT][&order=ID]`: the advertiser reports an order
    /// after a click, worth `value` in the campaign's currency. One order id counts once; a click
    /// converts at most `max_orders_per_click` times.
    pub fn conversion(
        &self,
        store: &Store,
        pclid: &str,
        value: Option<&str>,
        order: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Refusal> {
        let recorded = (|| {
            let claims = self.verify(pclid, Purpose::Click, now)?;
            let value = value.map(|v| amount(v).ok_or(Refusal::Value)).transpose()?;
            let mut event = Event::about(Kind::Conv, &claims, now);
            event.value = value;
            event.order = order.map(|o| o.chars().take(128).collect());
            let snapshot = store.snapshot();
            let campaign = snapshot.campaign(&claims.campaign);
            if let Some(campaign) = campaign {
                event.revenue_usd = revenue_usd(Kind::Conv, campaign, value, store.rates());
            }
            self.record(store, event, campaign.map(|c| &**c))
        })();
        self.counted(Kind::Conv, recorded)
    }

    /// A conversion whose body could not be read: counted with the refusals.
    pub fn unreadable(&self) {
        self.refused[BAD_BODY].fetch_add(1, Ordering::Relaxed);
    }

    /// A win or an impression notice.
    fn notice(
        &self,
        store: &Store,
        kind: Kind,
        token: &str,
        price: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Refusal> {
        let claims = self.verify(token, Purpose::Event, now)?;
        // First price: the exchange cannot clear above what precis bid.
        let price = match price
            .map(|text| amount(text).filter(|p| *p <= claims.bid_price * (1.0 + 1e-9)))
        {
            Some(Some(price)) => Some(price),
            Some(None) => return Err(Refusal::Price),
            None if kind == Kind::Imp => None,
            None => return Err(Refusal::Price),
        };
        let rates = store.rates();
        let mut event = Event::about(kind, &claims, now);
        event.price = price;
        if kind == Kind::Win {
            event.spend_usd = spend_usd(price.unwrap_or(0.0), &claims.cur, rates);
        }
        let snapshot = store.snapshot();
        let campaign = snapshot.campaign(&claims.campaign);
        if let Some(campaign) = campaign {
            event.revenue_usd = revenue_usd(kind, campaign, None, rates);
        }
        self.record(store, event, campaign.map(|c| &**c))
    }

    /// The claims of a token of `purpose`, if it is genuine and current, and its events are
    /// still remembered (see [`Seen::forgotten`]: past `max_dedup_keys`, as if it had expired).
    fn verify(&self, token: &str, purpose: Purpose, now: DateTime<Utc>) -> Result<Claims, Refusal> {
        let ttl = self.policy.token_ttl_secs;
        let claims = self.keys.verify(token, unix_secs(now), ttl, purpose)?;
        if self.seen.forgotten(claims.issued.saturating_add(ttl)) {
            return Err(TokenError::Expired.into());
        }
        Ok(claims)
    }

    /// Counts what became of a request for an event of `kind`.
    fn counted(
        &self,
        kind: Kind,
        recorded: Result<Recorded, Refusal>,
    ) -> Result<Recorded, Refusal> {
        match &recorded {
            Ok(Recorded::New(_)) => &self.logged[kind as usize],
            Ok(Recorded::Again(_)) => &self.repeats[kind as usize],
            Err(refusal) => &self.refused[refusal.reason()],
        }
        .fetch_add(1, Ordering::Relaxed);
        recorded
    }

    fn refuse(&self, refusal: &Refusal) {
        self.refused[refusal.reason()].fetch_add(1, Ordering::Relaxed);
    }

    /// Logs `event` unless the same one was logged before, then feeds it to the book. A retry
    /// after [`Busy`] is accepted; a repeat gets the first copy's receipt. A click converts at
    /// most `max_orders_per_click` times, whatever order ids are sent: the click token sits in the
    /// landing page's URL, where anyone who sees it could replay it. `campaign` is the event's
    /// campaign, when it is still loaded.
    fn record(
        &self,
        store: &Store,
        event: Event,
        campaign: Option<&Campaign>,
    ) -> Result<Recorded, Refusal> {
        let digest = seen::digest(event.event, &event.bid, event.order.as_deref());
        let expiry = self.expiry(&event);
        let conv = event.event == Kind::Conv;
        // The shard stays locked while the line is queued: a repeat arriving meanwhile finds it.
        let remembered = self.seen.remember(digest, expiry, || {
            let max = self.policy.max_orders_per_click;
            if conv && !self.seen.count_order(&event.bid, expiry, max) {
                return Err(Refusal::TooManyOrders);
            }
            self.log.submit(event.clone()).map_err(|busy| {
                if conv {
                    self.seen.uncount_order(&event.bid);
                }
                Refusal::Busy(busy)
            })
        })?;
        match remembered {
            Remembered::New(receipt) => {
                store.observe(&event, campaign);
                Ok(Recorded::New(receipt))
            }
            // Its first copy was queued before any line queued since: once the last is on disk,
            // so is it.
            Remembered::Again => Ok(Recorded::Again(self.log.last_receipt())),
        }
    }

    /// Waits until the line of what was recorded (for a repeat, the first copy's) is on disk,
    /// without blocking a thread: the event route answers 2xx only then. While the log cannot
    /// write, fails at once with [`Refusal::Unwritten`] (503; counted), the line kept for when
    /// the disk recovers.
    pub async fn durable(&self, recorded: Recorded) -> Result<(), Refusal> {
        let written = self.log.durable(recorded.receipt()).await;
        written.map_err(|unwritten| {
            let refusal = Refusal::Unwritten(unwritten);
            self.refuse(&refusal);
            refusal
        })
    }

    /// Whether the event log records what is accepted (see [`Health`]).
    pub fn log_health(&self) -> Health {
        self.log.health()
    }

    /// Logs a sample of bids (one line in `log_bids_every`, carrying that weight), never waiting:
    /// the bid path does not block on the log. Bid lines use at most half the log's queue, so
    /// that events always find room; lines left out are counted.
    pub fn bids(&self, claims: Vec<Claims>, now: DateTime<Utc>) {
        let every = self.policy.log_bids_every;
        if every == 0 {
            return;
        }
        for claims in claims {
            if !self
                .bids
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(every)
            {
                continue;
            }
            let room =
                self.log.stats.queued.load(Ordering::Relaxed) < self.log.capacity() as u64 / 2;
            let line = Event {
                weight: every,
                ..Event::of(Kind::Bid, claims, now)
            };
            if !room || self.log.offer(line).is_err() {
                self.bid_lines_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Forgets events whose tokens have expired (they can no longer arrive): bounds memory.
    pub fn sweep(&self, now: DateTime<Utc>) {
        self.seen.sweep(unix_secs(now));
    }

    /// Writes everything accepted so far to disk and stops the log's writer (see
    /// [`EventLog::close`]). Blocks: call it from a blocking thread, once requests are done.
    pub fn close(&self, patience: std::time::Duration) {
        self.log.close(patience);
    }

    /// Its metrics: events logged, repeated and refused, and the log's own.
    pub fn report(&self, out: &mut Exposition) {
        let by_kind = |counters: &'_ [AtomicU64; 5]| {
            COUNTED.map(|kind| (label(kind), counters[kind as usize].load(Ordering::Relaxed)))
        };
        out.counters(
            "precis_events_total",
            "Events logged, by kind.",
            "kind",
            by_kind(&self.logged),
        );
        out.counters(
            "precis_event_repeats_total",
            "Events received again and counted once.",
            "kind",
            by_kind(&self.repeats),
        );
        out.counters(
            "precis_event_rejections_total",
            "Event requests turned away, by reason.",
            "reason",
            REASONS
                .iter()
                .zip(&self.refused)
                .map(|(reason, n)| (reason, n.load(Ordering::Relaxed))),
        );
        self.log.report(out);
        self.seen.report(out);
        out.counter(
            "precis_bid_lines_dropped_total",
            "Sampled bid lines not logged because the log was busy.",
            self.bid_lines_dropped.load(Ordering::Relaxed),
        );
    }
}

/// How a kind of event is labelled in `/metrics`: as it is written in the log.
fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::Bid => "bid",
        Kind::Win => "win",
        Kind::Imp => "imp",
        Kind::Click => "click",
        Kind::Conv => "conv",
    }
}

/// An amount sent as a parameter: a finite number of at least 0. An exchange that did not
/// substitute `${AUCTION_PRICE}` sends the macro itself, which is not one.
fn amount(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// `url` with `name=value` added to its query (before any fragment).
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, fragment) = url
        .split_once('#')
        .map_or((url, None), |(b, f)| (b, Some(f)));
    let separator = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{separator}{name}={value}");
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// What the advertiser owes for an event, in USD: the campaign's price for the thing it pays for.
pub fn revenue_usd(kind: Kind, campaign: &Campaign, value: Option<f64>, rates: &Rates) -> f64 {
    let owed = match (kind, &campaign.pricing.model) {
        (Kind::Imp, Model::Cpm { cpm }) => cpm / 1000.0,
        (Kind::Click, Model::Cpc { cpc, .. }) => *cpc,
        (Kind::Conv, Model::Cps { commission, .. }) => commission * value.unwrap_or(0.0),
        _ => 0.0,
    };
    rates
        .convert(owed, campaign.pricing.currency, Currency::USD)
        .unwrap_or(0.0)
}

/// What a won impression costs, in USD: the clearing CPM / 1000.
pub fn spend_usd(price: f64, cur: &str, rates: &Rates) -> f64 {
    Currency::parse(cur)
        .and_then(|c| rates.convert(price / 1000.0, c, Currency::USD))
        .unwrap_or(0.0)
}

/// The recorder tests' fixture, shared with the tests of what reads its log back.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::book::frequency::Exposures;
    use crate::book::learning::{Learned, Priors};
    use crate::book::pacing::Pacer;
    use crate::book::store::Feedback;
    use crate::eventlog::Settings;
    use std::time::Duration;

    /// A CPC campaign `shoes` with creative `c`, whose clicks land on `https://shoes.example/`.
    pub const CAMPAIGN: &str = "adomain = [\"shoes.example\"]\n[pricing]\nmodel = \"cpc\"\ncpc = 0.5\n\
        ctr = 0.01\nmax_cpm = 50\n[[creative]]\nid = \"c\"\nformat = \"banner\"\nw = 1\nh = 1\n\
        adm = \"x\"\nlanding = \"https://shoes.example/\"";

    pub const DAY: u32 = 86_400;

    /// The store serving `shoes`, and a recorder logging into the same temporary directory.
    pub struct Fixture {
        pub store: Store,
        pub recorder: Recorder,
        pub _dir: tempfile::TempDir,
    }

    pub fn fixture() -> Fixture {
        fixture_in(tempfile::tempdir().unwrap())
    }

    /// A fixture on `dir`: its log, if there is one, is the one it writes to.
    pub fn fixture_in(dir: tempfile::TempDir) -> Fixture {
        let campaigns = dir.path().join("campaigns");
        std::fs::create_dir_all(&campaigns).unwrap();
        std::fs::write(campaigns.join("shoes.toml"), CAMPAIGN).unwrap();
        let feedback = Feedback {
            learned: Learned::new(Priors {
                impressions: 1_000.0,
                clicks: 100.0,
            }),
            pacer: Pacer::new(60, 10),
            exposures: Exposures::new(100, 60),
        };
        let store = Store::open(&campaigns, Rates::default(), feedback).unwrap();
        let log = EventLog::open(Settings {
            dir: dir.path().join("logs"),
            queue: 64,
            max_file_bytes: 1 << 20,
            sync_every: Duration::from_secs(1),
        })
        .unwrap();
        let keys = Keys::new(b"a recorder test secret, 32 bytes", None).unwrap();
        let policy = Policy {
            token_ttl_secs: DAY,
            log_bids_every: 1,
            max_orders_per_click: 3,
            max_dedup_keys: 1_000,
        };
        Fixture {
            store,
            recorder: Recorder::new(log, keys, policy),
            _dir: dir,
        }
    }

    pub fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// The event token of bid `b1` of `shoes`, bid at 2.0 USD CPM, signed at `issued`.
    pub fn token(recorder: &Recorder, issued: DateTime<Utc>) -> String {
        token_of(recorder, "b1", issued)
    }

    /// The event token of bid `bid` of `shoes`, bid at 2.0 USD CPM, signed at `issued`.
    pub fn token_of(recorder: &Recorder, bid: &str, issued: DateTime<Utc>) -> String {
        recorder.keys().sign(&Claims {
            purpose: Purpose::Event,
            issued: unix_secs(issued),
            bid: bid.into(),
            request: "r".into(),
            imp: "1".into(),
            campaign: "shoes".into(),
            creative: "c".into(),
            bid_price: 2.0,
            cur: "USD".into(),
            user: None,
            country: None,
            device: None,
            os: None,
        })
    }

    /// `Ok("new")` or `Ok("again")`, for what was recorded (its receipt left out); the refusal.
    pub fn kind_of(recorded: &Result<Recorded, Refusal>) -> Result<&'static str, &Refusal> {
        recorded.as_ref().map(|recorded| match recorded {
            Recorded::New(_) => "new",
            Recorded::Again(_) => "again",
        })
    }

    /// Clicks `shoes`' ad for bid `b1` at `clicked`, and returns the pclid its landing page is given.
    pub fn click_through(fx: &Fixture, bid: DateTime<Utc>, clicked: DateTime<Utc>) -> String {
        let click = fx
            .recorder
            .click(&fx.store, &token(&fx.recorder, bid), clicked)
            .unwrap();
        assert_eq!(kind_of(&click.logged), Ok("new"));
        let pclid = click.landing.strip_prefix("https://shoes.example/?pclid=");
        pclid
            .unwrap_or_else(|| panic!("{}", click.landing))
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_win_costs_its_clearing_price_which_must_be_given_and_at_most_the_bid() {
        let Fixture {
            store, recorder, ..
        } = fixture();
        let now = at("2026-11-23T10:00:00Z");
        let t = token(&recorder, now);
        let spend = || store.learned().counts("shoes").spend_usd;
        // No price, or one above what precis bid (first price): refused, nothing spent.
        for price in [
            None,
            Some("2.000001"),
            Some("3"),
            Some("-1"),
            Some("${AUCTION_PRICE}"),
        ] {
            let refused = recorder.win(&store, &t, price, now);
            assert_eq!(refused, Err(Refusal::Price), "{price:?}");
        }
        assert_eq!(spend(), 0.0);
        // The bid itself is a price it may clear at.
        let first = recorder.win(&store, &t, Some("2"), now);
        assert_eq!(kind_of(&first), Ok("new"));
        assert!((spend() - 0.002).abs() < 1e-12, "{}", spend());
        // Told again (exchanges retry): counted once, spent once, acknowledged with the first.
        let again = recorder.win(&store, &t, Some("2"), now);
        assert_eq!(kind_of(&again), Ok("again"));
        assert_eq!(again.map(Recorded::receipt), first.map(Recorded::receipt));
        assert!((spend() - 0.002).abs() < 1e-12, "{}", spend());
    }

    #[test]
    fn an_impression_needs_no_price_but_a_given_one_is_held_to_the_bid() {
        let Fixture {
            store, recorder, ..
        } = fixture();
        let now = at("2026-11-23T10:00:00Z");
        let t = token(&recorder, now);
        // The markup's `${IMP_URL}` pixel carries no price.
        assert_eq!(
            recorder.impression(&store, &t, Some("9"), now),
            Err(Refusal::Price)
        );
        assert_eq!(
            kind_of(&recorder.impression(&store, &t, None, now)),
            Ok("new")
        );
        assert_eq!(store.learned().counts("shoes").impressions, 1);
    }

    #[test]
    fn a_click_token_counts_its_lifetime_from_the_click_not_the_bid() {
        let fx = fixture();
        let bid = at("2026-11-23T10:00:00Z");
        let clicked = bid + chrono::Duration::hours(23);
        let pclid = &click_through(&fx, bid, clicked);
        let Fixture {
            store, recorder, ..
        } = &fx;
        // A day after the bid, within a day of the click: the order counts.
        let ordered = bid + chrono::Duration::hours(25);
        let converted = recorder.conversion(store, pclid, Some("10"), Some("o1"), ordered);
        assert_eq!(kind_of(&converted), Ok("new"));
        // A day after the click: too late.
        let late = clicked + chrono::Duration::seconds(i64::from(DAY) + 1);
        let expired = recorder.conversion(store, pclid, Some("10"), Some("o2"), late);
        assert_eq!(expired, Err(Refusal::Token(TokenError::Expired)));
    }

    #[test]
    fn orders_refused_by_a_busy_log_do_not_use_up_the_clicks_share() {
        let fx = fixture();
        let now = at("2026-11-23T10:00:00Z");
        let pclid = click_through(&fx, now, now);
        let Fixture {
            store, recorder, ..
        } = &fx;
        // A log that takes nothing more: every order is turned away as busy (503, retried later),
        // never as one too many for its click.
        recorder.close(Duration::from_secs(5));
        for order in ["o1", "o2", "o3", "o4", "o5"] {
            let busy = recorder.conversion(store, &pclid, None, Some(order), now);
            assert_eq!(busy, Err(Refusal::Busy(Busy)), "{order}");
        }
    }

    #[test]
    fn what_is_remembered_of_an_event_is_forgotten_when_its_token_expires() {
        let fx = fixture();
        let now = at("2026-11-23T10:00:00Z");
        let pclid = click_through(&fx, now, now);
        let Fixture {
            store, recorder, ..
        } = &fx;
        let converted = recorder.conversion(store, &pclid, None, Some("o1"), now);
        assert_eq!(kind_of(&converted), Ok("new"));
        let remembered = || recorder.seen.len();
        assert_eq!(remembered(), (2, 1));
        let expiry = now + chrono::Duration::seconds(DAY.into());
        recorder.sweep(expiry - chrono::Duration::seconds(1));
        assert_eq!(remembered(), (2, 1), "a second before the tokens expire");
        recorder.sweep(expiry);
        assert_eq!(
            remembered(),
            (2, 0),
            "the click's orders as its token expires"
        );
        // The events go with their bucket: the 32nd of a day (2,700 s) their expiry falls in.
        let width = DAY / 32;
        let bucket_end = (unix_secs(expiry) / width + 1) * width;
        let at_end = DateTime::from_timestamp(bucket_end.into(), 0).unwrap();
        recorder.sweep(at_end - chrono::Duration::seconds(1));
        assert_eq!(remembered(), (2, 0), "a second before their bucket ends");
        recorder.sweep(at_end);
        assert_eq!(remembered(), (0, 0), "as it ends");
    }

    #[test]
    fn a_repeat_during_a_disk_outage_is_acknowledged_only_once_the_first_copy_is_written() {
        let Fixture {
            store,
            recorder,
            _dir: dir,
        } = fixture();
        // The hour's log file cannot be opened: a directory has its name.
        let blocker = dir.path().join("logs/events-20261123T10.jsonl");
        std::fs::create_dir(&blocker).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let now = at("2026-11-23T10:00:00Z");
        let t = token(&recorder, now);
        let spend = || store.learned().counts("shoes").spend_usd;
        let first = recorder.win(&store, &t, Some("2"), now).unwrap();
        let unwritten = rt.block_on(recorder.durable(first));
        assert!(
            matches!(unwritten, Err(Refusal::Unwritten(_))),
            "{unwritten:?}"
        );
        // The exchange retries while the disk is still failing: the same line, still not on disk.
        let again = recorder.win(&store, &t, Some("2"), now).unwrap();
        assert_eq!(again, Recorded::Again(first.receipt()));
        let unwritten = rt.block_on(recorder.durable(again));
        assert!(
            matches!(unwritten, Err(Refusal::Unwritten(_))),
            "{unwritten:?}"
        );
        let mut metrics = Exposition::default();
        recorder.report(&mut metrics);
        let metrics = metrics.finish();
        let counted = "precis_event_rejections_total{reason=\"unwritten\"} 2";
        assert!(metrics.contains(counted), "{metrics}");
        // The disk recovers: the kept line is written, and the next retry is acknowledged.
        std::fs::remove_dir(&blocker).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let again = recorder.win(&store, &t, Some("2"), now).unwrap();
            if rt.block_on(recorder.durable(again)).is_ok() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        recorder.close(Duration::from_secs(5));
        assert!((spend() - 0.002).abs() < 1e-12, "{}", spend());
        let logged = std::fs::read_to_string(dir.path().join("logs/events-20261123T10.jsonl"));
        assert_eq!(logged.unwrap().lines().count(), 1);
    }
}
