//! Events: what happened to a bid after precis made it (win, impression, click, conversion), and
//! the bid itself, as one JSON line each in the event log.
//!
//! This module owns the record format, the contract between the writer (`eventlog`) and the
//! reader (`report`). Every line stands on its own: it carries the ids that join it to its bid and
//! the dimensions reports group by, so a report never needs the campaign files or another line.
//! Amounts are in USD (converted when the event is logged) so that totals add up across currencies.
//! No raw personal data: the user is a keyed hash, never an id or an IP.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
}
