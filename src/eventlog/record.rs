//! The event record: one line of the event log per thing that happened to a bid (the bid
//! itself, its win, impression, click and conversion), in the JSON both the log's writer and its
//! readers (`precis report`, the start-up replay, package building) agree on.
//!
//! Every line stands on its own: it carries the ids that join it to its bid and the dimensions
//! reports group by, so a report never needs the campaign files or another line. Amounts are in
//! USD (converted when the event is logged) so that totals add up across currencies. No raw
//! personal data: the user is a keyed hash, never an id or an IP. Plain data: this module never
//! writes, reads or decides anything.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::token::Claims;

/// The steps of the measurement loop, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// precis answered an imp with a bid.
    Bid,
    /// The exchange says the bid won (`nurl`).
    Win,
    /// The ad was rendered: a billable impression (`burl` or the pixel).
    Imp,
    /// The user clicked (`${CLICK_URL}`).
    Click,
    /// The advertiser reports an order that followed a click (`/conv`).
    Conv,
}

/// One line of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When precis logged it.
    pub ts: DateTime<Utc>,
    pub event: Kind,
    /// The bid id: joins every event to its bid.
    pub bid: String,
    pub request: String,
    pub imp: String,
    pub campaign: String,
    pub creative: String,
    /// What precis bid, CPM in `cur`.
    pub bid_price: f64,
    /// The currency of the bid and of the clearing price.
    pub cur: String,
    /// The clearing price the exchange reported, CPM in `cur` (win, imp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    /// The order amount (conv), in the campaign's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// A conversion's order value in USD at the rates of when it was recorded: what reports add
    /// up as gross merchandise value. Absent when the campaign was no longer loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_usd: Option<f64>,
    /// The advertiser's order id (conv), when given: one order counts once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// What this event costs precis, USD: the clearing price of a win / 1000; 0 otherwise.
    #[serde(default)]
    pub spend_usd: f64,
    /// What the advertiser owes for this event, USD: cpm / 1000 for a CPM campaign's impression,
    /// cpc for a CPC campaign's click, commission × value for a CPS campaign's conversion; 0 otherwise.
    #[serde(default)]
    pub revenue_usd: f64,
    /// Keyed hash of the user key (user.id, else buyeruid, else device ifa), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Dimensions of the request that led to the bid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// OpenRTB `devicetype`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// How many bids a sampled bid line stands for (`[events] log_bids_every`); 1 for any other line.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weight: u64,
}

fn one() -> u64 {
    1
}

fn is_one(weight: &u64) -> bool {
    *weight == 1
}

impl Event {
    /// An event of `kind` about the bid `claims` describe, logged at `ts`; amounts left at zero.
    pub fn about(kind: Kind, claims: &Claims, ts: DateTime<Utc>) -> Event {
        Event::of(kind, claims.clone(), ts)
    }

    /// [`Event::about`], taking the claims' strings instead of copying them: a bid line is
    /// written for every bid.
    pub fn of(kind: Kind, claims: Claims, ts: DateTime<Utc>) -> Event {
        Event {
            ts,
            event: kind,
            bid: claims.bid,
            request: claims.request,
            imp: claims.imp,
            campaign: claims.campaign,
            creative: claims.creative,
            bid_price: claims.bid_price,
            cur: claims.cur,
            price: None,
            value: None,
            value_usd: None,
            order: None,
            spend_usd: 0.0,
            revenue_usd: 0.0,
            user: claims.user.map(|u| format!("{u:016x}")),
            country: claims.country,
            device: claims.device,
            os: claims.os,
            weight: 1,
        }
    }
}

#[cfg(test)]
impl Event {
    /// An event for tests: bid `bid` of campaign `shoes`, creative `c`, bid at 1.00 USD, at `ts`;
    /// no amounts, no dimensions. Tests override what they are about.
    pub fn example(kind: Kind, bid: &str, ts: &str) -> Event {
        Event {
            ts: ts.parse().expect("an RFC 3339 timestamp"),
            event: kind,
            bid: bid.into(),
            request: "r".into(),
            imp: "1".into(),
            campaign: "shoes".into(),
            creative: "c".into(),
            bid_price: 1.0,
            cur: "USD".into(),
            price: None,
            value: None,
            value_usd: None,
            order: None,
            spend_usd: 0.0,
            revenue_usd: 0.0,
            user: None,
            country: None,
            device: None,
            os: None,
            weight: 1,
        }
    }
}
