//! Campaigns: the compiled form the bidder serves, and the file format campaign managers write.
//!
//! [`file`](mod@file) owns the contract with people (TOML, every key documented in docs/reference.md, unknown keys
//! refused, errors as `path:line:col: message`); this module owns what a file compiles to, and the
//! [`Limits`] on what people write. A compiled
//! [`Campaign`] is immutable plain data with every value already in its compared form, so the request
//! path never parses, normalises or validates anything a person wrote.

pub mod file;
pub mod markup;
pub mod pricing;
pub mod targeting;
pub mod taxonomy;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::audience::Rule;
use crate::campaign::pricing::Pricing;
use crate::campaign::targeting::Targeting;

#[derive(Debug, Clone)]
pub struct Campaign {
    /// The file stem unless the file sets `id`; letters, digits, `.`, `_` and `-` only.
    pub id: String,
    pub name: String,
    pub advertiser: String,
    /// Advertiser domains, lower case (checked against the request's `badv`).
    pub adomain: Vec<String>,
    /// The ad's own IAB categories, upper case (checked against the request's `bcat`).
    pub cat: Vec<String>,
    /// `status = "active"`; a paused campaign is loaded and validated but never bids.
    pub active: bool,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub timezone: Tz,
    pub pricing: Pricing,
    pub targeting: Targeting,
    /// The audience packages it targets and excludes, checked after the other targeting.
    pub audiences: Rule,
    pub creatives: Vec<Creative>,
    /// What the advertiser expects; shortfalls are flagged once enough data exists.
    pub kpi: Kpi,
    /// What it may spend, and how fast (`[budget]`); none: unlimited.
    pub budget: Option<Budget>,
    /// How often one person may see it (`[frequency]`); none: uncapped.
    pub frequency: Option<Frequency>,
    /// The file it was compiled from.
    pub path: PathBuf,
}

impl Campaign {
    /// Whether it can only be judged with personal data: audience packages, a frequency cap, or
    /// targeting on user tags, age, gender or a precise location. Such a campaign steps aside
    /// for a request that allows none (see [`crate::request::privacy`]).
    pub fn needs_user_data(&self) -> bool {
        use crate::campaign::targeting::Term;
        let personal = |t: &Term| {
            matches!(
                t,
                Term::TagsAny(_)
                    | Term::TagsAll(_)
                    | Term::Age { .. }
                    | Term::Gender(_)
                    | Term::Near(_)
            )
        };
        !self.audiences.is_empty()
            || self.frequency.is_some()
            || self.targeting.include.iter().any(personal)
    }

    /// Active, and `now` lies in `[start, end]` where those are set.
    pub fn in_flight(&self, now: DateTime<Utc>) -> bool {
        self.active && self.start.is_none_or(|s| s <= now) && self.end.is_none_or(|e| now <= e)
    }
}

/// How large what campaign managers write may be, so that no file can exhaust the bidder's memory
/// or bloat its answers: a whole campaign file (refused before it is read whole) and one
/// creative's markup (which every bid with it carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one campaign file, at most.
    pub max_file_bytes: u64,
    /// Bytes of one creative's `adm`, at most.
    pub max_adm_bytes: usize,
}

impl Default for Limits {
    /// 1 MiB per file (a campaign with dozens of creatives is tens of KiB), 64 KiB per markup.
    fn default() -> Limits {
        Limits {
            max_file_bytes: 1 << 20,
            max_adm_bytes: 64 << 10,
        }
    }
}

/// Key performance indicators a campaign declares (`[kpi]`). Each is optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kpi {
    /// Clicks per impression, at least.
    pub min_ctr: Option<f64>,
    /// What the advertiser is billed over what the media cost, at least (precis' margin; the key
    /// was `min_roi`, still accepted).
    pub min_margin: Option<f64>,
    /// The advertiser's order value over what they are billed, at least.
    pub min_roas: Option<f64>,
    /// Spend per conversion, at most, in the campaign currency.
    pub max_cost_per_order: Option<f64>,
}

/// What a campaign may spend (`[budget]`), in its currency. At least one limit is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Per local day: resets at midnight in the campaign's time zone.
    pub daily: Option<f64>,
    /// Over the whole flight.
    pub total: Option<f64>,
    pub pacing: Pacing,
}

/// How a budget is spent over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Spread evenly: what is left of the daily budget over what is left of the day's running
    /// hours (or, without a daily budget, the total over what is left of the flight).
    Even,
    /// As fast as traffic allows.
    Asap,
}

/// How often one user may be shown a campaign (`[frequency]`). At least one cap is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Frequency {
    /// At most this many impressions per user in each window.
    pub impressions: Option<u32>,
    pub per: Window,
    /// Never again to a user who converted.
    pub stop_after_conversion: bool,
}

/// A calendar window of a frequency cap, in the campaign's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    /// Monday to Sunday.
    Week,
    /// The whole flight: a lifetime cap.
    Flight,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreativeFormat {
    Banner,
    Video(VideoFile),
    Native,
}

/// What a player must support to play a video creative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFile {
    /// Content type of the media file, lower case (`video/mp4`).
    pub mime: String,
    /// Seconds.
    pub duration: u32,
    /// The OpenRTB protocol code of its VAST version (see [`VAST_VERSIONS`]).
    pub protocol: u32,
}

/// VAST versions a campaign file may name, and the OpenRTB protocol code (list 5.8) of each.
pub const VAST_VERSIONS: &[(&str, u32)] =
    &[("2.0", 2), ("3.0", 3), ("4.0", 7), ("4.1", 11), ("4.2", 13)];

#[derive(Debug, Clone)]
pub struct Creative {
    pub id: String,
    pub format: CreativeFormat,
    /// Required for banners; optional for video (players scale), absent for native.
    pub w: Option<u32>,
    pub h: Option<u32>,
    /// Audience packages (names): the creative is served only to users in one of them; empty:
    /// to anyone the campaign reaches.
    pub audiences: Vec<String>,
    /// The markup, with precis' own macros still in it (filled per bid), compiled for writing
    /// into bids.
    pub adm: markup::Markup,
    /// Where a click lands.
    pub landing: String,
}
