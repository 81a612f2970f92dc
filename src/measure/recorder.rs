//! The recorder: turns an event request (win, impression, click, conversion) into a line of the
//! event log ([`Event`]): it verifies the token, prices the event, logs each event once and feeds
//! what events teach the bidder: `learning` (rates), `pacing` (spend) and `frequency` (exposures).
//! The recorder never waits for disk: it hands events to the log's queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::book::frequency::Exposures;
use crate::book::learning::Learned;
use crate::book::pacing::Pacer;
use crate::campaign::Campaign;
use crate::campaign::pricing::{Currency, Model, Rates};
use crate::eventlog::read::{ReadError, events_in};
use crate::eventlog::{Busy, Event, EventLog, Kind};
use crate::token::{Claims, Keys, Purpose, TokenError};

/// Why an event was not recorded. Each maps to a 4xx/503 answer and a metric.
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
}

/// What an accepted event request did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Logged.
    New,
    /// Seen before (exchanges retry, pixels fire twice): counted once, not logged again.
    Again,
}

/// What logged events feed: rates, spend and exposures, rebuilt by replaying the log at start.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub learned: Arc<Learned>,
    pub pacer: Arc<Pacer>,
    pub exposures: Arc<Exposures>,
}

impl Feedback {
    /// Counts a logged event; `campaign` is its campaign when still loaded.
    fn observe(&self, event: &Event, campaign: Option<&Campaign>) {
        self.learned.observe(event);
        let user = event
            .user
            .as_deref()
            .and_then(|u| u64::from_str_radix(u, 16).ok());
        match (event.event, campaign, user) {
            (Kind::Win, _, _) => {
                let tz = campaign.map_or(chrono_tz::UTC, |c| c.timezone);
                let pacer = &self.pacer;
                pacer.settle(&event.bid, &event.campaign, tz, event.spend_usd, event.ts);
            }
            (Kind::Imp, Some(campaign), Some(user)) => {
                self.exposures.shown(user, campaign, event.ts);
            }
            (Kind::Conv, Some(campaign), Some(user)) => {
                self.exposures.converted(user, campaign, event.ts);
            }
            _ => {}
        }
    }
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
}

/// Accepts events: checks their token, prices them, logs each one once.
pub struct Recorder {
    pub log: EventLog,
    pub keys: Keys,
    ttl_secs: u32,
    /// Events already logged, until their token expires: (kind, bid, order) → expiry.
    seen: DashMap<(Kind, String, Option<String>), u32>,
    /// Orders counted per click (by bid), until the click token expires: bid → (orders, expiry).
    orders: DashMap<String, (u32, u32)>,
    max_orders_per_click: u32,
    log_bids_every: u64,
    bids: AtomicU64,
    /// Fed every logged event.
    feedback: Feedback,
    /// Bid lines not logged because the log was busy (bid lines are a sample; events are not).
    pub bid_lines_dropped: AtomicU64,
}

impl Recorder {
    pub fn new(log: EventLog, keys: Keys, policy: Policy, feedback: Feedback) -> Recorder {
        Recorder {
            feedback,
            log,
            keys,
            ttl_secs: policy.token_ttl_secs,
            seen: DashMap::new(),
            orders: DashMap::new(),
            max_orders_per_click: policy.max_orders_per_click,
            log_bids_every: policy.log_bids_every,
            bids: AtomicU64::new(0),
            bid_lines_dropped: AtomicU64::new(0),
        }
    }

    /// The claims of a token of `purpose`, if it is genuine and current.
    pub fn verify(
        &self,
        token: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<Claims, Refusal> {
        Ok(self.keys.verify(token, unix(now), self.ttl_secs, purpose)?)
    }

    /// Logs `event` unless the same one was logged before. A retry after [`Busy`] is accepted.
    /// A click converts at most `max_orders_per_click` times, whatever order ids are sent: the
    /// click token sits in the landing page's URL, where anyone who sees it could replay it.
    /// `campaign` is the event's campaign, when it is still loaded.
    pub fn record(&self, event: Event, campaign: Option<&Campaign>) -> Result<Recorded, Refusal> {
        let key = (event.event, event.bid.clone(), event.order.clone());
        let expiry = unix(event.ts).saturating_add(self.ttl_secs);
        match self.seen.entry(key.clone()) {
            Entry::Occupied(_) => return Ok(Recorded::Again),
            Entry::Vacant(slot) => {
                if event.event == Kind::Conv && !self.count_order(&event.bid, expiry) {
                    return Err(Refusal::TooManyOrders);
                }
                slot.insert(expiry);
            }
        }
        self.log.submit(event.clone()).map_err(|busy| {
            self.seen.remove(&key);
            if event.event == Kind::Conv {
                self.uncount_order(&event.bid);
            }
            Refusal::Busy(busy)
        })?;
        self.feedback.observe(&event, campaign);
        Ok(Recorded::New)
    }

    /// Counts one more order for the click of `bid`, unless it has had its share.
    fn count_order(&self, bid: &str, expiry: u32) -> bool {
        let mut orders = self.orders.entry(bid.to_owned()).or_insert((0, expiry));
        if orders.0 >= self.max_orders_per_click {
            return false;
        }
        orders.0 += 1;
        true
    }

    fn uncount_order(&self, bid: &str) {
        if let Some(mut orders) = self.orders.get_mut(bid) {
            orders.0 = orders.0.saturating_sub(1);
        }
    }

    /// Logs a sample of bids (one line in `log_bids_every`, carrying that weight), never waiting:
    /// the bid path does not block on the log. Bid lines use at most half the log's queue, so
    /// that events always find room; lines left out are counted.
    pub fn bids(&self, claims: Vec<Claims>, now: DateTime<Utc>) {
        if self.log_bids_every == 0 {
            return;
        }
        for claims in claims {
            if !self
                .bids
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(self.log_bids_every)
            {
                continue;
            }
            let room =
                self.log.stats.queued.load(Ordering::Relaxed) < self.log.capacity() as u64 / 2;
            let line = Event {
                weight: self.log_bids_every,
                ..Event::of(Kind::Bid, claims, now)
            };
            if !room || self.log.submit(line).is_err() {
                self.bid_lines_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Forgets events whose tokens have expired (they can no longer arrive): bounds memory.
    pub fn sweep(&self, now: DateTime<Utc>) {
        let now = unix(now);
        self.seen.retain(|_, expiry| *expiry > now);
        self.orders.retain(|_, (_, expiry)| *expiry > now);
    }

    /// Reads the whole log back: every event counts toward what campaigns have learned, spent
    /// and shown (`campaign` finds a loaded campaign by id), and those within the token lifetime
    /// are remembered, so that a retry after a restart still counts once. Returns how many events
    /// it read.
    pub fn replay<'c>(
        &self,
        dir: &std::path::Path,
        now: DateTime<Utc>,
        campaign: impl Fn(&str) -> Option<&'c Campaign>,
    ) -> Result<usize, ReadError> {
        let horizon = now - chrono::Duration::seconds(self.ttl_secs.into());
        let mut events = events_in(dir, ..).map_err(|source| ReadError {
            path: dir.to_owned(),
            source,
        })?;
        let mut read = 0;
        for event in events.by_ref().filter(|e| e.event != Kind::Bid) {
            self.feedback.observe(&event, campaign(&event.campaign));
            if event.ts >= horizon {
                let expiry = unix(event.ts).saturating_add(self.ttl_secs);
                self.seen
                    .insert((event.event, event.bid, event.order), expiry);
            }
            read += 1;
        }
        events.finish()?;
        Ok(read)
    }
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

fn unix(ts: DateTime<Utc>) -> u32 {
    u32::try_from(ts.timestamp()).unwrap_or(0)
}
