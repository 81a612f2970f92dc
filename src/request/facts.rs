//! The facts of one bid request that campaigns target: who, where, when and on what, normalised
//! once per request to the forms campaigns are compiled to ([`crate::forms`]), whatever the number
//! of campaigns.
//!
//! Read from the decoded request only; nothing here fails on request data, allocates per
//! campaign or knows what a campaign wants (that is [`crate::campaign::targeting`]). The user key
//! stays raw here and is hashed before it goes anywhere (tokens, logs, packages).

use chrono::{DateTime, Datelike, Utc};

use super::geo::{Country, Point, Region};
use super::openrtb::{BidRequest, DOOH, Geo};
use super::privacy::{self, Withheld};
use super::user::UserId;
use crate::forms::{category_form, host_form, normalize_os, tag_form};

/// The targetable facts of one bid request, normalised to the forms campaigns are compiled to.
#[derive(Debug, Default)]
pub struct Facts {
    pub now: DateTime<Utc>,
    pub country: Option<Country>,
    pub region: Option<Region>,
    /// Lower case.
    pub city: Option<String>,
    pub point: Option<Point>,
    /// The OpenRTB `devicetype` code.
    pub device_type: Option<u32>,
    /// Normalised with [`normalize_os`].
    pub os: Option<String>,
    /// The OpenRTB `connectiontype` code.
    pub connection: Option<u32>,
    /// User tags, lower case: segment ids and names, keywords, kwarray (sorted); then the profile
    /// store's live tags for the user ([`crate::audience::profiles::Profiles::enrich`]).
    pub tags: Vec<String>,
    /// Site/app/content categories, upper case.
    pub categories: Vec<String>,
    pub age: Option<u32>,
    pub gender: Option<Gender>,
    /// `site.domain` (or the host of `site.page`), lower case.
    pub site: Option<String>,
    /// `app.bundle`, lower case.
    pub app: Option<String>,
    /// Who the user is, as far as the request says: `user.id`, else `user.buyeruid`, else
    /// `device.ifa`. Raw: it is hashed before it goes anywhere (tokens, logs).
    pub user: Option<String>,
    /// `user`'s [`UserId`], computed on first use (see [`Facts::user_id`]).
    user_id: std::cell::OnceCell<Option<UserId>>,
    /// Why the request allows no personal data, if it does not: then the facts hold none, and
    /// campaigns that need it step aside.
    pub withheld: Option<Withheld>,
}

impl Facts {
    /// The [`UserId`] of the request's user key: what audience packages and profiles know the
    /// user by. A SHA-256, so computed once per request and only when something asks.
    pub fn user_id(&self) -> Option<UserId> {
        *self
            .user_id
            .get_or_init(|| self.user.as_deref().map(UserId::of_key))
    }

    /// The facts of `request` as a bidder without a TCF vendor id reads them: under GDPR, no
    /// personal data (see [`Facts::from_request_as`]).
    pub fn from_request(request: &BidRequest, now: DateTime<Utc>) -> Facts {
        Facts::from_request_as(request, now, None)
    }

    /// The facts of `request` for TCF vendor `vendor`. When its privacy signals allow no personal
    /// data ([`privacy::withheld`]), the facts hold none: no user key (so no profile, package,
    /// frequency or token user), no user tags, age, gender or precise location; `withheld` says
    /// why.
    pub fn from_request_as(request: &BidRequest, now: DateTime<Utc>, vendor: Option<u32>) -> Facts {
        let mut facts = Facts::read(request, now);
        facts.withheld = privacy::withheld(request, vendor);
        if facts.withheld.is_some() {
            facts.user = None;
            facts.tags.clear();
            facts.age = None;
            facts.gender = None;
            facts.point = None;
        }
        facts
    }

    fn read(request: &BidRequest, now: DateTime<Utc>) -> Facts {
        let device = request.device.as_ref();
        let user = request.user.as_ref();
        // Device geo is where the device is now; user geo is the home location: prefer the device.
        let geos = [
            device.and_then(|d| d.geo.as_ref()),
            user.and_then(|u| u.geo.as_ref()),
        ];
        let first = |read: fn(&Geo) -> Option<&str>| {
            geos.iter()
                .flatten()
                .find_map(|g| read(g).filter(|v| !v.trim().is_empty()))
        };

        let country = first(|g| g.country.as_deref()).and_then(Country::parse);
        let point = geos
            .iter()
            .flatten()
            .find_map(|g| Point::new(g.lat?, g.lon?).filter(|p| p.lat != 0.0 || p.lon != 0.0));

        let mut tags = Vec::new();
        if let Some(user) = user {
            for segment in user.data.iter().flat_map(|d| &d.segment) {
                tags.extend(
                    segment
                        .id
                        .iter()
                        .chain(&segment.name)
                        .map(|t| t.as_str())
                        .filter_map(tag_form),
                );
            }
            for keywords in &user.keywords {
                tags.extend(keywords.split(',').filter_map(tag_form));
            }
            tags.extend(user.kwarray.iter().map(|t| t.as_str()).filter_map(tag_form));
        }
        // Bounded and without repeats: matching costs tags × campaign terms.
        tags.sort_unstable();
        tags.dedup();
        tags.truncate(MAX_TAGS);
        let year = now.year() as u32;
        let properties = request.site.iter().chain(&request.app);
        let mut categories: Vec<String> = properties
            .flat_map(|p| p.categories())
            .filter_map(|c| category_form(c))
            .collect();
        categories.sort_unstable();
        categories.dedup();
        categories.truncate(MAX_CATEGORIES);
        Facts {
            now,
            country,
            region: first(|g| g.region.as_deref()).and_then(Region::parse),
            city: first(|g| g.city.as_deref()).map(|c| c.trim().to_lowercase()),
            point,
            // A request for a DOOH screen is from a DOOH device, whatever `device` says or omits.
            device_type: device
                .and_then(|d| d.devicetype)
                .or(request.dooh.as_ref().map(|_| DOOH)),
            os: device
                .and_then(|d| d.os.as_deref())
                .map(normalize_os)
                .filter(|os| !os.is_empty()),
            connection: device.and_then(|d| d.connectiontype),
            tags,
            categories,
            age: user
                .and_then(|u| u.yob)
                .filter(|yob| (1900..=year).contains(yob))
                .map(|yob| year - yob),
            gender: user
                .and_then(|u| u.gender.as_deref())
                .and_then(Gender::parse),
            site: request.site.as_ref().and_then(|s| {
                s.domain
                    .as_deref()
                    .and_then(host_form)
                    .or_else(|| s.page.as_deref().and_then(host_form))
            }),
            user: [
                user.and_then(|u| u.id.as_deref()),
                user.and_then(|u| u.buyeruid.as_deref()),
                device.and_then(|d| d.ifa.as_deref()),
            ]
            .into_iter()
            .flatten()
            .map(str::trim)
            // All-zero ifas mean "limit ad tracking": not a user.
            .find(|k| !k.is_empty() && k.bytes().any(|b| b != b'0' && b != b'-'))
            .map(str::to_owned),
            user_id: std::cell::OnceCell::new(),
            withheld: None,
            app: request
                .app
                .as_ref()
                .and_then(|a| a.bundle.as_deref())
                .map(|b| b.trim().to_lowercase())
                .filter(|b| !b.is_empty()),
        }
    }
}

/// Tags a request is matched on, at most (the first in sort order: more is abuse, not data).
pub const MAX_TAGS: usize = 256;
/// Categories a request is matched on, at most.
pub const MAX_CATEGORIES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
    Other,
}

impl Gender {
    pub fn parse(text: &str) -> Option<Gender> {
        match text.trim().to_ascii_lowercase().as_str() {
            "m" | "male" => Some(Gender::Male),
            "f" | "female" => Some(Gender::Female),
            "o" | "other" => Some(Gender::Other),
            _ => None,
        }
    }
}
