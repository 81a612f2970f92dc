//! The recorder: what an event notice means. The exchange's win and billing notices, the page's
//! impression pixel, the user's click and the advertiser's conversion each become lines of the
//! event log ([`Event`]): the recorder verifies the token (each route accepts its own purpose
//! only), prices the event (spend, what the advertiser owes), logs each event once, feeds what it
//! teaches to the book ([`Store::observe`]: rates, spend, exposures) and counts what it accepted
//! and refused.
//!
//! Spend is counted once per bid, from its first billing signal: the win notice (`nurl`) or the
//! billing notice (`burl`), whichever arrives first, logs the bid's one `win` line with the spend
//! (the billing notice also logs the impression). A price that cannot be read (missing, the
//! macro left unexpanded, encrypted under keys precis does not hold, garbage) or that is above the
//! bid (first price: it cannot be) is charged at the bid price, never at 0: the notice itself is
//! genuine, and a budget must hold whatever the exchange sends. The page's pixel and click never
//! set spend.
//!
//! What it logged is remembered ([`Seen`]: compact digests in buckets by token expiry) until its
//! token expires, so that a retry counts once; past `max_dedup_keys` the oldest are forgotten and
//! their tokens refused as expired, never counted twice.
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
use crate::price::{Exchanges, Unreadable};
use crate::token::{Claims, Keys, Purpose, TokenError};

/// Why an event was not recorded. Each maps to a 4xx/503 answer and a reason in `/metrics`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refusal {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("`value` must be the order amount, a number of at least 0")]
    Value,
    #[error("`value` {value} is above the largest order this campaign takes ({cap})")]
    ValueAbove { value: f64, cap: f64 },
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
            Refusal::Value | Refusal::ValueAbove { .. } => 2,
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
    /// The largest order amount of a campaign that sets none and is not CPS, USD.
    pub max_order_value_usd: f64,
    /// Events remembered at most to count each once (see [`Seen`]).
    pub max_dedup_keys: usize,
}

/// Where bids charged at their bid price because their price was above it are counted, after
/// those counted by [`Unreadable`] reason (indexed as the enum, which `Unreadable::ALL` lists in
/// order).
const ABOVE_BID: usize = Unreadable::ALL.len();

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
    /// The exchanges whose encrypted prices can be read.
    exchanges: Exchanges,
    /// Bids charged at their bid price, by [`Unreadable`] reason, then those whose price was
    /// above the bid ([`ABOVE_BID`]); prices decrypted, by exchange.
    fallbacks: [AtomicU64; ABOVE_BID + 1],
    decrypted: Vec<AtomicU64>,
}

/// What a billing notice costs: what the exchange said (when it could be read) and what is
/// charged.
#[derive(Debug, Clone, Copy)]
struct Priced {
    reported: Option<f64>,
    charged: f64,
    /// When the bid price is charged, why: its index in `fallbacks`, counted once the charge is
    /// logged (a repeated notice charges nothing, so counts nothing).
    fallback: Option<usize>,
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
            exchanges: Exchanges::default(),
            fallbacks: Default::default(),
            decrypted: Vec::new(),
        }
    }

    /// Reads encrypted prices with these exchanges' keys.
    pub fn with_exchanges(mut self, exchanges: Exchanges) -> Recorder {
        self.decrypted = (0..exchanges.len()).map(|_| AtomicU64::new(0)).collect();
        self.exchanges = exchanges;
        self
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
        unix_secs(event.ts).saturating_add(self.ttl(event.event == Kind::Conv))
    }

    /// `GET /win?t=TOKEN&price=P`: the exchange says the bid won at clearing price `price` (CPM in
    /// the bid's currency, plain or encrypted). The bid's first billing signal logs its win with
    /// the spend; a later one (this win after the billing notice, or a retry) is a repeat.
    pub fn win(
        &self,
        store: &Store,
        token: &str,
        price: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Refusal> {
        let charged = (|| {
            let claims = self.verify(token, Purpose::Win, now)?;
            let priced = self.priced(&claims, price);
            self.charge(store, &claims, priced, now)
        })();
        self.counted(Kind::Win, charged)
    }

    /// `GET /bill?t=TOKEN&price=P`: the exchange's billing notice (`burl`): the impression is
    /// billable. Charges the bid as a win does when it is its first billing signal (an exchange
    /// that sends no win notice), and logs the impression once (the pixel's, if it came first).
    pub fn billing(
        &self,
        store: &Store,
        token: &str,
        price: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Refusal> {
        let claims = match self.verify(token, Purpose::Bill, now) {
            Ok(claims) => claims,
            Err(refusal) => {
                self.refuse(&refusal);
                return Err(refusal);
            }
        };
        let priced = self.priced(&claims, price);
        let won = self.counted(Kind::Win, self.charge(store, &claims, priced, now))?;
        let shown = self.counted(Kind::Imp, self.shown(store, &claims, priced.reported, now))?;
        // Answered once both lines are on disk: receipts grow in queue order.
        let receipt = won.receipt().max(shown.receipt());
        Ok(match (won, shown) {
            (Recorded::Again(_), Recorded::Again(_)) => Recorded::Again(receipt),
            _ => Recorded::New(receipt),
        })
    }

    /// `GET /imp?t=TOKEN`: the markup's pixel: the ad was rendered. Counts the impression, never
    /// spend (its URL is the page's to see and replay).
    pub fn impression(
        &self,
        store: &Store,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Refusal> {
        let shown = (|| {
            let claims = self.verify(token, Purpose::Imp, now)?;
            self.shown(store, &claims, None, now)
        })();
        self.counted(Kind::Imp, shown)
    }

    /// `GET /click?t=TOKEN`: where the user goes, the creative's landing page from the campaign
    /// file (never from the request: no open redirect), with a click token for conversions. A
    /// click the log is too busy to take is counted as refused, and the user still gets there.
    pub fn click(&self, store: &Store, token: &str, now: DateTime<Utc>) -> Result<Click, Refusal> {
        let clicked = (|| {
            let claims = self.verify(token, Purpose::Click, now)?;
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
            // The same click always gets the same pclid: signed from the bid's own claims (its
            // issue time included), so a replayed click URL mints no fresh lifetime. A pclid lives
            // twice the token lifetime from the bid: at least that lifetime after any click.
            let pclid = self.keys.sign(&Claims {
                purpose: Purpose::Conversion,
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
    /// after a click, worth `value` in the campaign's currency, at most the campaign's largest
    /// order ([`crate::campaign::pricing::Pricing::max_order_value`]). One order id counts once; a
    /// click converts at most `max_orders_per_click` times.
    pub fn conversion(
        &self,
        store: &Store,
        pclid: &str,
        value: Option<&str>,
        order: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Refusal> {
        let recorded = (|| {
            let claims = self.verify(pclid, Purpose::Conversion, now)?;
            let value = value.map(|v| amount(v).ok_or(Refusal::Value)).transpose()?;
            let snapshot = store.snapshot();
            let campaign = snapshot.campaign(&claims.campaign);
            if let Some(value) = value {
                let cap = self.max_order_value(campaign.map(|c| &**c), store.rates());
                if value > cap {
                    return Err(Refusal::ValueAbove { value, cap });
                }
            }
            let mut event = Event::about(Kind::Conv, &claims, now);
            event.value = value;
            event.order = order.map(|o| o.chars().take(128).collect());
            if let Some(campaign) = campaign {
                let rates = store.rates();
                event.revenue_usd = revenue_usd(Kind::Conv, campaign, value, rates);
                event.value_usd =
                    value.and_then(|v| rates.convert(v, campaign.pricing.currency, Currency::USD));
            }
            self.record(store, event, campaign.map(|c| &**c))
        })();
        self.counted(Kind::Conv, recorded)
    }

    /// A conversion whose body could not be read: counted with the refusals.
    pub fn unreadable(&self) {
        self.refused[BAD_BODY].fetch_add(1, Ordering::Relaxed);
    }

    /// The largest order `campaign` takes, in its currency (USD when it is no longer loaded).
    fn max_order_value(&self, campaign: Option<&Campaign>, rates: &Rates) -> f64 {
        let global = self.policy.max_order_value_usd;
        match campaign {
            Some(campaign) => {
                let currency = campaign.pricing.currency;
                // A campaign is loaded only when its currency has a rate.
                let global = rates.convert(global, Currency::USD, currency);
                campaign
                    .pricing
                    .max_order_value(global.unwrap_or(f64::INFINITY))
            }
            None => global,
        }
    }

    /// What a billing notice of the bid `claims` describe costs, `text` being its price: the
    /// price, when it reads and is at most the bid; else the bid price, and why. Decrypted prices
    /// are counted here, by exchange.
    fn priced(&self, claims: &Claims, text: Option<&str>) -> Priced {
        let at_bid = |fallback| Priced {
            reported: None,
            charged: claims.bid_price,
            fallback: Some(fallback),
        };
        match self.exchanges.read(text) {
            Ok(read) => {
                if let Some(counter) = read.decrypted_by.and_then(|i| self.decrypted.get(i)) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                // First price: the exchange cannot clear above what precis bid.
                if read.cpm <= claims.bid_price * (1.0 + 1e-9) {
                    return Priced {
                        reported: Some(read.cpm),
                        charged: read.cpm,
                        fallback: None,
                    };
                }
                Priced {
                    reported: Some(read.cpm),
                    ..at_bid(ABOVE_BID)
                }
            }
            Err(reason) => at_bid(reason as usize),
        }
    }

    /// Logs the bid's win with what it costs, unless a billing signal was logged for it before.
    fn charge(
        &self,
        store: &Store,
        claims: &Claims,
        priced: Priced,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Refusal> {
        let mut event = Event::about(Kind::Win, claims, now);
        event.price = priced.reported;
        event.spend_usd = spend_usd(priced.charged, &claims.cur, store.rates());
        let snapshot = store.snapshot();
        let campaign = snapshot.campaign(&claims.campaign);
        let recorded = self.record(store, event, campaign.map(|c| &**c))?;
        if matches!(recorded, Recorded::New(_))
            && let Some(counter) = priced.fallback.and_then(|i| self.fallbacks.get(i))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(recorded)
    }

    /// Logs the bid's impression (with the price a billing notice gave), once.
    fn shown(
        &self,
        store: &Store,
        claims: &Claims,
        price: Option<f64>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Refusal> {
        let mut event = Event::about(Kind::Imp, claims, now);
        event.price = price;
        let snapshot = store.snapshot();
        let campaign = snapshot.campaign(&claims.campaign);
        if let Some(campaign) = campaign {
            event.revenue_usd = revenue_usd(Kind::Imp, campaign, None, store.rates());
        }
        self.record(store, event, campaign.map(|c| &**c))
    }

    /// The claims of a token of `purpose`, if it is genuine and current, and its events are
    /// still remembered (see [`Seen::forgotten`]: past `max_dedup_keys`, as if it had expired). A
    /// pclid carries its bid's issue time and lives twice the token lifetime (see
    /// [`Recorder::click`]).
    fn verify(&self, token: &str, purpose: Purpose, now: DateTime<Utc>) -> Result<Claims, Refusal> {
        let ttl = self.ttl(purpose == Purpose::Conversion);
        let claims = self.keys.verify(token, unix_secs(now), ttl, purpose)?;
        if self.seen.forgotten(claims.issued.saturating_add(ttl)) {
            return Err(TokenError::Expired.into());
        }
        Ok(claims)
    }

    /// How long a token lives: `token_ttl_secs`, twice that for a pclid.
    fn ttl(&self, pclid: bool) -> u32 {
        let ttl = self.policy.token_ttl_secs;
        if pclid { ttl.saturating_mul(2) } else { ttl }
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
        out.counters(
            "precis_price_fallbacks_total",
            "Bids charged at their bid price by their first win or billing notice: its price could not be read, or was above the bid.",
            "reason",
            Unreadable::ALL
                .iter()
                .map(|r| r.label())
                .chain(["above_bid"])
                .zip(&self.fallbacks)
                .map(|(reason, n)| (reason, n.load(Ordering::Relaxed))),
        );
        out.counters(
            "precis_prices_decrypted_total",
            "Encrypted clearing prices read, by the exchange whose keys opened them.",
            "exchange",
            self.exchanges
                .names()
                .zip(&self.decrypted)
                .map(|(name, n)| (name, n.load(Ordering::Relaxed))),
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
    use crate::price::Exchange;
    use std::time::Duration;

    /// A CPC campaign `shoes` with creative `c`, whose clicks land on `https://shoes.example/`.
    pub const CAMPAIGN: &str = "adomain = [\"shoes.example\"]\n[pricing]\nmodel = \"cpc\"\ncpc = 0.5\n\
        ctr = 0.01\nmax_cpm = 50\n[[creative]]\nid = \"c\"\nformat = \"banner\"\nw = 1\nh = 1\n\
        adm = \"x\"\nlanding = \"https://shoes.example/\"";

    pub const DAY: u32 = 86_400;

    /// The example keys of Google's "Decrypt price confirmations" page, and its example price:
    /// 100 micros (0.0001 CPM).
    const E_KEY: &str = "skU7Ax_NL5pPAFyKdkfZjZz2-VhIN8bjj1rVFOaJ_5o=";
    const I_KEY: &str = "arO23ykdNqUQ5LEoQ0FVmPkBd7xB5CO89PDZlSjpFxo=";
    pub const SEALED_100_MICROS: &str = "YWJjMTIzZGVmNDU2Z2hpN7fhCuPemCce_6msaw";

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
            max_order_value_usd: 1_000.0,
            max_dedup_keys: 1_000,
        };
        let adx = Exchange::new("adx", E_KEY, I_KEY).unwrap();
        Fixture {
            store,
            recorder: Recorder::new(log, keys, policy).with_exchanges(Exchanges::new(vec![adx])),
            _dir: dir,
        }
    }

    pub fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// The token for `purpose` of bid `bid` of `shoes`, bid at 2.0 USD CPM, signed at `issued`.
    pub fn token_of(
        recorder: &Recorder,
        bid: &str,
        purpose: Purpose,
        issued: DateTime<Utc>,
    ) -> String {
        recorder.keys().sign(&Claims {
            purpose,
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

    /// The token for `purpose` of bid `b1`.
    pub fn token(recorder: &Recorder, purpose: Purpose, issued: DateTime<Utc>) -> String {
        token_of(recorder, "b1", purpose, issued)
    }

    /// Clicks `shoes`' ad for bid `b1` at `clicked`, and returns the pclid its landing page is given.
    pub fn click_through(fx: &Fixture, bid: DateTime<Utc>, clicked: DateTime<Utc>) -> String {
        let click = fx
            .recorder
            .click(
                &fx.store,
                &token(&fx.recorder, Purpose::Click, bid),
                clicked,
            )
            .unwrap();
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
    use crate::price::Exchange;
    use std::time::Duration;

    /// A fixture whose bid `b1` was made and clicked at `now`, and the pclid the click gave.
    fn clicked(now: DateTime<Utc>) -> (Fixture, String) {
        let fx = fixture();
        let pclid = click_through(&fx, now, now);
        (fx, pclid)
    }

    /// Spend of `shoes` so far, USD.
    fn spend(store: &Store) -> f64 {
        store.learned().counts("shoes").spend_usd
    }

    fn assert_spent(store: &Store, usd: f64) {
        let spent = spend(store);
        assert!((spent - usd).abs() < 1e-12, "spent {spent}, not {usd}");
    }

    /// Sends the win (`Purpose::Win`) or billing notice (`Purpose::Bill`) of `bid` at `price`.
    fn notice(
        Fixture {
            store, recorder, ..
        }: &Fixture,
        bid: &str,
        route: Purpose,
        price: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Refusal> {
        let token = token_of(recorder, bid, route, now);
        match route {
            Purpose::Win => recorder.win(store, &token, price, now),
            _ => recorder.billing(store, &token, price, now),
        }
    }

    #[test]
    fn a_bid_is_charged_once_from_its_first_billing_signal_win_or_billing_notice() {
        let fx = fixture();
        let now = at("2026-11-23T10:00:00Z");
        let (new, again) = ("new", "again");
        let steps = [
            // The win notice first: it charges; the billing notice after it logs the impression.
            ("b1", Purpose::Win, "1.5", new, 0.0015),
            ("b1", Purpose::Win, "1.5", again, 0.0015),
            ("b1", Purpose::Bill, "1.5", new, 0.0015),
            ("b1", Purpose::Bill, "1.5", again, 0.0015),
            // The billing notice first (an exchange that calls burl only, or before nurl).
            ("b2", Purpose::Bill, "1.2", new, 0.0027),
            ("b2", Purpose::Win, "1.2", again, 0.0027),
        ];
        for (bid, route, price, recorded, spent) in steps {
            let answer = notice(&fx, bid, route, Some(price), now);
            assert_eq!(kind_of(&answer), Ok(recorded), "{bid} {route:?}");
            assert_spent(&fx.store, spent);
        }
        let counts = fx.store.learned().counts("shoes");
        assert_eq!((counts.wins, counts.impressions), (2, 2));
    }

    #[test]
    fn a_price_that_cannot_be_read_or_is_above_the_bid_is_charged_at_the_bid_price() {
        let fx = fixture();
        let now = at("2026-11-23T10:00:00Z");
        // An undecryptable price: the encrypted shape, keys precis does not hold.
        let foreign = Exchange::new("other", "b3RoZXIga2V5", "b3RoZXIga2V5").unwrap();
        let foreign = foreign.seal(1_000_000, [7; 16]);
        let prices = [
            (None, "missing"),
            (Some("${AUCTION_PRICE}"), "unexpanded"),
            (Some(foreign.as_str()), "undecryptable"),
            (Some("-1"), "malformed"),
            (Some("NaN"), "malformed"),
            (Some("2.000001"), "above_bid"),
            (Some("1e308"), "above_bid"),
        ];
        for (n, (price, _)) in prices.iter().enumerate() {
            // Half by win notice, half by billing notice: both are answered as genuine.
            let route = [Purpose::Win, Purpose::Bill][n % 2];
            let recorded = notice(&fx, &format!("b{n}"), route, *price, now);
            assert_eq!(kind_of(&recorded), Ok("new"), "{price:?}");
            // 2.0 CPM, the bid: never 0.
            assert_spent(&fx.store, 0.002 * (n + 1) as f64);
        }
        // Told again (exchanges retry): repeats, neither charged nor counted again.
        for (n, (price, _)) in prices.iter().enumerate() {
            let route = [Purpose::Win, Purpose::Bill][n % 2];
            let recorded = notice(&fx, &format!("b{n}"), route, *price, now);
            assert_eq!(kind_of(&recorded), Ok("again"), "{price:?}");
        }
        assert_spent(&fx.store, 0.002 * prices.len() as f64);
        let mut out = Exposition::default();
        fx.recorder.report(&mut out);
        let text = out.finish();
        for (reason, count) in [
            ("missing", 1),
            ("unexpanded", 1),
            ("undecryptable", 1),
            ("malformed", 2),
            ("above_bid", 2),
        ] {
            let line = format!("precis_price_fallbacks_total{{reason=\"{reason}\"}} {count}\n");
            assert!(text.contains(&line), "{line} in\n{text}");
        }
    }

    #[test]
    fn an_encrypted_price_is_decrypted_and_charged() {
        let Fixture {
            store, recorder, ..
        } = fixture();
        let now = at("2026-11-23T10:00:00Z");
        let win = token(&recorder, Purpose::Win, now);
        let read = recorder.win(&store, &win, Some(SEALED_100_MICROS), now);
        assert_eq!(kind_of(&read), Ok("new"));
        // 100 micros of a CPM: 0.0001 per thousand, 1e-7 for this impression.
        assert_spent(&store, 1e-7);
        let mut out = Exposition::default();
        recorder.report(&mut out);
        let text = out.finish();
        assert!(
            text.contains("precis_prices_decrypted_total{exchange=\"adx\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn the_pages_tokens_never_charge_and_each_token_works_on_its_route_only() {
        let Fixture {
            store, recorder, ..
        } = fixture();
        let now = at("2026-11-23T10:00:00Z");
        let token = |purpose| token(&recorder, purpose, now);
        let wrong = Err(Refusal::Token(TokenError::WrongPurpose));
        // What the page sees (the pixel and the click) is no win and no billing notice.
        for page in [Purpose::Imp, Purpose::Click, Purpose::Conversion] {
            assert_eq!(recorder.win(&store, &token(page), Some("0"), now), wrong);
            assert_eq!(
                recorder.billing(&store, &token(page), Some("0"), now),
                wrong
            );
        }
        for other in [Purpose::Win, Purpose::Bill, Purpose::Click] {
            assert_eq!(recorder.impression(&store, &token(other), now), wrong);
        }
        for other in [
            Purpose::Win,
            Purpose::Bill,
            Purpose::Imp,
            Purpose::Conversion,
        ] {
            let clicked = recorder
                .click(&store, &token(other), now)
                .map(|c| c.landing);
            assert_eq!(clicked, Err(Refusal::Token(TokenError::WrongPurpose)));
        }
        assert_eq!(spend(&store), 0.0);
        // The pixel counts the impression, and still nothing is spent; the real win then is.
        assert_eq!(
            kind_of(&recorder.impression(&store, &token(Purpose::Imp), now)),
            Ok("new")
        );
        assert_eq!(spend(&store), 0.0);
        assert_eq!(
            kind_of(&recorder.win(&store, &token(Purpose::Win), Some("1"), now)),
            Ok("new")
        );
        assert_spent(&store, 0.001);
    }

    #[test]
    fn a_replayed_click_gets_the_same_pclid_which_lives_at_least_a_lifetime_after_the_click() {
        let fx = fixture();
        let bid = at("2026-11-23T10:00:00Z");
        let clicked = bid + chrono::Duration::hours(23);
        let pclid = &click_through(&fx, bid, clicked);
        // Clicked again an hour later: the same pclid, not a fresh lifetime.
        let again = click_through(&fx, bid, clicked + chrono::Duration::hours(1));
        assert_eq!(&again, pclid);
        let Fixture {
            store, recorder, ..
        } = &fx;
        // A day after the click: the order counts.
        let ordered = clicked + chrono::Duration::seconds(DAY.into());
        let converted = recorder.conversion(store, pclid, Some("10"), Some("o1"), ordered);
        assert_eq!(kind_of(&converted), Ok("new"));
        // Two days after the bid: too late, whenever the click was.
        let late = bid + chrono::Duration::seconds(2 * i64::from(DAY) + 1);
        let expired = recorder.conversion(store, pclid, Some("10"), Some("o2"), late);
        assert_eq!(expired, Err(Refusal::Token(TokenError::Expired)));
    }

    #[test]
    fn an_order_above_the_campaigns_largest_is_refused() {
        let now = at("2026-11-23T10:00:00Z");
        let (fx, pclid) = clicked(now);
        let Fixture {
            store, recorder, ..
        } = &fx;
        // `shoes` is CPC and sets no cap: the configured 1,000 USD applies.
        for value in ["1000.01", "1e308"] {
            let refused = recorder.conversion(store, &pclid, Some(value), Some(value), now);
            assert!(
                matches!(refused, Err(Refusal::ValueAbove { cap, .. }) if cap == 1_000.0),
                "{value}: {refused:?}"
            );
        }
        let at_cap = recorder.conversion(store, &pclid, Some("1000"), Some("o1"), now);
        assert_eq!(kind_of(&at_cap), Ok("new"));
    }

    #[test]
    fn orders_refused_by_a_busy_log_do_not_use_up_the_clicks_share() {
        let now = at("2026-11-23T10:00:00Z");
        let (fx, pclid) = clicked(now);
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
        let now = at("2026-11-23T10:00:00Z");
        let (fx, pclid) = clicked(now);
        let Fixture {
            store, recorder, ..
        } = &fx;
        let converted = recorder.conversion(store, &pclid, None, Some("o1"), now);
        assert_eq!(kind_of(&converted), Ok("new"));
        let remembered = || recorder.seen.len();
        assert_eq!(remembered(), (2, 1));
        // The click's token lives a day; the pclid's, and so its conversion's, two. Events go
        // with their bucket (the 32nd of a day, 2,700 s, their expiry falls in); a click's order
        // count goes as its pclid expires.
        let (day, days) = (DAY.into(), 2 * i64::from(DAY));
        let (day, days) = (
            now + chrono::Duration::seconds(day),
            now + chrono::Duration::seconds(days),
        );
        let width = DAY / 32;
        let bucket_end = |t: DateTime<Utc>| {
            let end = (unix_secs(t) / width + 1) * width;
            DateTime::from_timestamp(end.into(), 0).unwrap()
        };
        let second = chrono::Duration::seconds(1);
        recorder.sweep(bucket_end(day) - second);
        assert_eq!(
            remembered(),
            (2, 1),
            "a second before the click's bucket ends"
        );
        recorder.sweep(bucket_end(day));
        assert_eq!(remembered(), (1, 1), "the click, with its bucket");
        recorder.sweep(days - second);
        assert_eq!(remembered(), (1, 1), "a second before the pclid expires");
        recorder.sweep(days);
        assert_eq!(
            remembered(),
            (1, 0),
            "the click's orders, as its pclid expires"
        );
        recorder.sweep(bucket_end(days));
        assert_eq!(remembered(), (0, 0), "the conversion, with its bucket");
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
        let t = token(&recorder, Purpose::Win, now);
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
