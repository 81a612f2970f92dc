//! The auction: for each imp of a request, the live campaign with the highest eCPM that may bid.
//!
//! Campaigns arrive ranked (highest eCPM first, then higher `max_cpm`, then id), so the first campaign
//! that is eligible for the request and has a creative that fits the imp is the winner, and a winner
//! below the floor means every campaign is. A campaign whose budget is spent, whose pacing holds it
//! back or whose user has seen it enough steps aside for the next (see [`crate::book::pacing`] and
//! [`crate::book::frequency`]). This module is synchronous: it reads an immutable ranked list and a
//! decoded request and returns a response; it never blocks or touches disk (pacing and frequency
//! cost a few atomics and one short shard lock per candidate that has them).

pub mod explain;
pub mod response;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auction::response::{Bid, BidResponse, EventUrls, SEAT, SeatBid};
use crate::audience::{Library, Member};
use crate::book::frequency::Exposures;
use crate::book::index::Index;
use crate::book::pacing::{Admission, Pacer};
use crate::book::ranking::Ranked;
use crate::campaign::markup::Macro;
use crate::campaign::pricing::{Currency, Rates};
use crate::campaign::{Campaign, Creative, CreativeFormat};
use crate::clock::unix_secs;
use crate::forms::{ancestors, category_form, domains_of, host_form};
use crate::metrics::Exposition;
use crate::request::facts::Facts;
use crate::request::openrtb::{BidRequest, Imp};
use crate::token::{Claims, Keys, Purpose};

/// What an auction reads besides the campaigns and the request.
pub struct Env<'a> {
    pub rates: &'a Rates,
    pub urls: &'a Urls,
    pub keys: &'a Keys,
    pub pacer: &'a Pacer,
    pub exposures: &'a Exposures,
    /// The audience packages campaigns and creatives name.
    pub audiences: &'a Library,
    /// Where imps without a bid are counted.
    pub no_bids: &'a NoBids,
}

/// Why an imp got no bid: how far the campaign that got furthest went (later stages win), counted
/// by [`NoBids`]. `POST /admin/explain` tells each campaign's own reason, in more detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoBid {
    /// A private auction: precis holds no deals.
    DealOnly,
    /// No currency both sides know (the exchange's `cur`, the floor's).
    Currency,
    /// No campaign's targeting is met, as the index knows it.
    NoCampaign,
    /// Campaigns target the request, but none has a creative that fits the imp.
    Creative,
    /// The request allows no personal data, and the campaigns that fit need it.
    Consent,
    /// A creative fits, but the campaign's flight, full targeting, blocks or audiences do not.
    Targeting,
    /// The best eligible bid is under the floor.
    Floor,
    Frequency,
    Budget,
    Pacing,
}

impl NoBid {
    const ALL: [NoBid; 10] = [
        NoBid::DealOnly,
        NoBid::Currency,
        NoBid::NoCampaign,
        NoBid::Creative,
        NoBid::Consent,
        NoBid::Targeting,
        NoBid::Floor,
        NoBid::Frequency,
        NoBid::Budget,
        NoBid::Pacing,
    ];

    /// The OpenRTB no-bid reason code (5.24) closest to it: 9 (daily reader cap met) for a
    /// frequency cap; 0 (unknown) for the others, which the list has no code for.
    pub fn nbr(self) -> u32 {
        match self {
            NoBid::Frequency => 9,
            _ => 0,
        }
    }

    /// Its label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            NoBid::DealOnly => "deal_only",
            NoBid::Currency => "currency",
            NoBid::NoCampaign => "no_campaign",
            NoBid::Creative => "creative",
            NoBid::Consent => "consent",
            NoBid::Targeting => "targeting",
            NoBid::Floor => "floor",
            NoBid::Frequency => "frequency",
            NoBid::Budget => "budget",
            NoBid::Pacing => "pacing",
        }
    }
}

/// Imps without a bid, by [`NoBid`] reason: one relaxed add per such imp.
#[derive(Debug, Default)]
pub struct NoBids([AtomicU64; NoBid::ALL.len()]);

impl NoBids {
    fn count(&self, reason: NoBid) {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Its metrics: `precis_no_bid_imps_total{reason}`.
    pub fn report(&self, out: &mut Exposition) {
        out.counters(
            "precis_no_bid_imps_total",
            "Imps answered without a bid, by how far the campaign that got furthest went.",
            "reason",
            NoBid::ALL
                .iter()
                .map(|&r| (r.label(), self.0[r as usize].load(Ordering::Relaxed))),
        );
    }
}

/// Where precis' own URLs (win and billing notices, clicks) point.
#[derive(Debug, Clone)]
pub struct Urls {
    /// Scheme, host and port, without a trailing slash: `http://127.0.0.1:8080`. Nothing in it
    /// needs escaping in JSON (the config's `public_url` is checked for that).
    pub public: String,
}

/// The answer to a request that gets at least one bid.
#[derive(Debug)]
pub struct Auctioned<'a> {
    pub response: BidResponse<'a>,
    /// What each bid's event token says, in the order of the bids: what the bid log records.
    pub claims: Vec<Claims>,
}

/// Runs the auction for every imp. When no imp gets a bid, the furthest any imp got.
/// `index` is `ranked`'s (see [`crate::book::index`]); without one every campaign is considered, which
/// gives the same answer slower (the index's test oracle).
pub fn run<'a>(
    ranked: &'a [Ranked],
    index: Option<&Index>,
    request: &'a BidRequest,
    facts: &Facts,
    env: &Env<'a>,
) -> Result<Auctioned<'a>, NoBid> {
    let Some(currency) = response_currency(request, env.rates) else {
        (request.imp.iter()).for_each(|_| env.no_bids.count(NoBid::Currency));
        return Err(NoBid::Currency);
    };
    let blocks = Blocks::of(request);
    // The user's keyed hash, what frequency caps and event tokens know the user by: an HMAC,
    // computed only once a campaign needs it.
    let user = std::cell::OnceCell::new();
    let user = || *user.get_or_init(|| facts.user.as_deref().map(|u| env.keys.user_hash(u)));
    // The user as audience packages know them (each id computed only if a package asks).
    let id = || facts.user_id();
    let member = Member {
        id: &id,
        keyed: &user,
    };
    let audiences_hold = |names: &[String]| {
        names.is_empty()
            || names
                .iter()
                .any(|n| env.audiences.get(n).is_some_and(|p| p.has(&member)))
    };
    // Whether each campaign may bid on this request at all, decided once and shared by all imps;
    // a single-imp request (the common case) decides each at most once anyway and keeps no memo.
    let memo_size = if request.imp.len() > 1 {
        ranked.len()
    } else {
        0
    };
    let mut eligible: Vec<Option<bool>> = vec![None; memo_size];
    let query = index.map(|index| index.query(facts));
    let mut bids = Vec::new();
    let mut reason = NoBid::NoCampaign;
    let mut count = |why: NoBid| {
        env.no_bids.count(why);
        reason = reason.max(why);
    };
    for imp in &request.imp {
        if imp.pmp.as_ref().and_then(|p| p.private_auction) == Some(1) {
            count(NoBid::DealOnly); // Deals only, and precis holds no deals.
            continue;
        }
        let Some(floor) = floor(imp, currency, env.rates) else {
            count(NoBid::Currency);
            continue;
        };
        let before = bids.len();
        let mut furthest = NoBid::NoCampaign;
        let (mut indexed, mut every) = (query.as_ref().map(|q| q.fitting(imp)), 0..ranked.len());
        let order = std::iter::from_fn(|| match &mut indexed {
            Some(indexed) => indexed.next(),
            None => every.next(),
        });
        for i in order {
            let Some(entry) = ranked.get(i) else {
                break;
            };
            let campaign = &entry.campaign;
            // Cheapest and most selective first: the creative fit (a few integer compares), then
            // the request-wide checks, decided once per campaign and remembered for later imps.
            let Some((creative, w, h)) = fitting(entry, imp, |c| audiences_hold(&c.audiences))
            else {
                furthest = furthest.max(NoBid::Creative);
                continue;
            };
            if facts.withheld.is_some() && campaign.needs_user_data() {
                furthest = furthest.max(NoBid::Consent);
                continue;
            }
            // Audience packages last: the other terms are cheaper and usually decide.
            let decide = || {
                campaign.in_flight(facts.now)
                    && campaign.targeting.matches(facts)
                    && !blocks.bar(campaign)
                    && (campaign.audiences.is_empty()
                        || campaign.audiences.holds(env.audiences, &member))
            };
            let ok = match eligible.get_mut(i) {
                Some(memo) => *memo.get_or_insert_with(decide),
                None => decide(),
            };
            if !ok {
                furthest = furthest.max(NoBid::Targeting);
                continue;
            }
            let price = bid_price(entry, currency, env.rates);
            // Ranked by eCPM: if the best fitting campaign is under the floor, so is every other.
            if price <= 0.0 || price < floor {
                furthest = furthest.max(NoBid::Floor);
                break;
            }
            // Capped for this user, out of budget or held back by pacing: the next may bid.
            let reservation = match admit(entry, user, facts.now, env) {
                Ok(reservation) => reservation,
                Err(reason) => {
                    furthest = furthest.max(reason);
                    continue;
                }
            };
            let winner = Winner {
                campaign,
                creative,
                imp,
                price,
                w,
                h,
            };
            let (bid, claims) = winner.bid(request, facts, user(), currency, env);
            if let Some(reservation) = reservation {
                env.pacer.hold(reservation, &claims.bid, facts.now);
            }
            entry.bids.fetch_add(1, Ordering::Relaxed);
            bids.push((bid, claims));
            break;
        }
        if bids.len() == before {
            count(furthest);
        }
    }
    if bids.is_empty() {
        return Err(reason);
    }
    let (bids, claims) = bids.into_iter().unzip();
    Ok(Auctioned {
        response: BidResponse {
            id: request.id.as_deref().unwrap_or_default(),
            cur: currency.to_string(),
            seatbid: [SeatBid {
                seat: SEAT,
                bid: bids,
            }],
        },
        claims,
    })
}

/// Frequency, then budget and pacing: why the campaign must step aside, else the reservation
/// its bid carries (none without a budget).
fn admit(
    entry: &Ranked,
    user: impl Fn() -> Option<u64>,
    now: chrono::DateTime<chrono::Utc>,
    env: &Env,
) -> Result<Option<crate::book::pacing::Reservation>, NoBid> {
    let campaign = &entry.campaign;
    if campaign.budget.is_none() && campaign.frequency.is_none() {
        return Ok(None);
    }
    let user = if campaign.frequency.is_some() {
        user()
    } else {
        None
    };
    if !env.exposures.admit(user, campaign, now) {
        return Err(NoBid::Frequency);
    }
    let usd = budget_usd(entry, env.rates);
    match env
        .pacer
        .admit(campaign, entry.account.as_ref(), usd, env.rates, now)
    {
        Admission::Free => Ok(None),
        Admission::Reserved(reservation) => Ok(Some(reservation)),
        Admission::OutOfBudget => {
            env.exposures.cancel(user, campaign);
            Err(NoBid::Budget)
        }
        Admission::Throttled => {
            env.exposures.cancel(user, campaign);
            Err(NoBid::Pacing)
        }
    }
}

/// What `entry` bids in `currency`: its eCPM converted and rounded to the micro-unit (1e-6), so
/// that the price sent, signed into the event token, held against the floor and compared with the
/// clearing price are one number, however many digits the exchange writes back. 0 when the
/// currency cannot be converted.
fn bid_price(entry: &Ranked, currency: Currency, rates: &Rates) -> f64 {
    let price =
        (rates.convert(entry.ecpm, entry.campaign.pricing.currency, currency)).unwrap_or(0.0);
    (price * 1e6).round() / 1e6
}

/// What `entry` bids in USD, as budgets count it (CPM); 0 when its currency cannot be converted.
fn budget_usd(entry: &Ranked, rates: &Rates) -> f64 {
    (rates.convert(entry.ecpm, entry.campaign.pricing.currency, Currency::USD)).unwrap_or(0.0)
}

/// The first currency the exchange accepts that precis has a rate for; USD when it names none.
fn response_currency(request: &BidRequest, rates: &Rates) -> Option<Currency> {
    if request.cur.is_empty() {
        return Some(Currency::USD);
    }
    request
        .cur
        .iter()
        .filter_map(|c| Currency::parse(c))
        .find(|c| rates.knows(*c))
}

/// The imp's floor in the response currency; `None` when its currency cannot be converted.
fn floor(imp: &Imp, currency: Currency, rates: &Rates) -> Option<f64> {
    let floor = imp.bidfloor.unwrap_or(0.0);
    if floor <= 0.0 {
        return Some(0.0);
    }
    let floor_currency = match imp.bidfloorcur.as_deref().map(str::trim) {
        None | Some("") => Currency::USD,
        Some(text) => Currency::parse(text)?,
    };
    rates.convert(floor, floor_currency, currency)
}

/// The campaign's best creative (in [`Ranked::creatives`] order) that fits the imp, with the size
/// to report. A creative for audience packages goes first to the users `allowed` puts in them (so
/// each package gets its own creative), and never to anyone else.
fn fitting<'c>(
    entry: &'c Ranked,
    imp: &Imp,
    allowed: impl Fn(&Creative) -> bool,
) -> Option<(&'c Creative, Option<u32>, Option<u32>)> {
    let creatives = entry
        .creatives
        .iter()
        .filter_map(|&i| entry.campaign.creatives.get(i));
    let mut shaped = creatives.into_iter().filter_map(|c| match &c.format {
        CreativeFormat::Banner => {
            let banner = imp.banner.as_ref()?;
            let size = (c.w?, c.h?);
            let offered = std::iter::once((banner.w, banner.h))
                .chain(banner.format.iter().map(|f| (f.w, f.h)));
            offered
                .into_iter()
                .any(|(w, h)| (w, h) == (Some(size.0), Some(size.1)))
                .then_some((c, c.w, c.h))
        }
        CreativeFormat::Video(v) => {
            let video = imp.video.as_ref()?;
            let mime = video.mimes.is_empty()
                || video
                    .mimes
                    .iter()
                    .any(|m| m.trim().eq_ignore_ascii_case(&v.mime));
            let long_enough = video.minduration.is_none_or(|min| v.duration >= min);
            let short_enough = video
                .maxduration
                .is_none_or(|max| max == 0 || v.duration <= max);
            let mut protocols = video.protocols.iter().chain(&video.protocol).peekable();
            let protocol = protocols.peek().is_none() || protocols.any(|&p| p == v.protocol);
            (mime && long_enough && short_enough && protocol).then_some((
                c,
                c.w.or(video.w),
                c.h.or(video.h),
            ))
        }
        CreativeFormat::Native => imp.native.as_ref().map(|_| (c, None, None)),
    });
    let targeted = entry
        .campaign
        .creatives
        .iter()
        .any(|c| !c.audiences.is_empty());
    if !targeted {
        return shaped.next();
    }
    let mut everyone = None;
    for fit in shaped {
        if fit.0.audiences.is_empty() {
            everyone = everyone.or(Some(fit));
        } else if allowed(fit.0) {
            return Some(fit);
        }
    }
    everyone
}

/// The request's block lists, normalised once into sets: a campaign is checked in time that grows
/// with its own domains and categories, not with the lists (a 256 KiB body holds 20,000 entries,
/// and walking them for each of 2,000 blocked campaigns took 0.4 s).
struct Blocks {
    domains: HashSet<String>,
    categories: HashSet<String>,
}

impl Blocks {
    fn of(request: &BidRequest) -> Blocks {
        Blocks {
            domains: request.badv.iter().filter_map(|d| host_form(d)).collect(),
            categories: request
                .bcat
                .iter()
                .filter_map(|c| category_form(c))
                .collect(),
        }
    }

    /// Does the exchange block this campaign's advertiser or categories?
    fn bar(&self, campaign: &Campaign) -> bool {
        if self.domains.is_empty() && self.categories.is_empty() {
            return false;
        }
        // Blocked when it or a parent domain is listed (see `on_domain`), or a category or parent
        // category is (see `within`).
        let domain =
            (campaign.adomain.iter()).any(|a| domains_of(a).any(|d| self.domains.contains(d)));
        let category = (campaign.cat.iter())
            .any(|c| ancestors(c, '-', usize::MAX).any(|p| self.categories.contains(p)));
        domain || category
    }
}

/// A bid id unique across bids and restarts: this process's start time and a counter.
fn next_bid_id() -> String {
    static BOOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let boot = *BOOT.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    });
    format!("{boot:x}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The campaign and creative that won an imp, at what price and size.
struct Winner<'a> {
    campaign: &'a Campaign,
    creative: &'a Creative,
    imp: &'a Imp,
    price: f64,
    w: Option<u32>,
    h: Option<u32>,
}

impl<'a> Winner<'a> {
    /// The bid, with win, billing, impression and click URLs, each carrying a token of what was
    /// bid signed for its route alone. The payload is encoded once and signed per purpose: two
    /// tokens for the exchange, plus one per macro the markup holds.
    fn bid(
        self,
        request: &BidRequest,
        facts: &Facts,
        user: Option<u64>,
        currency: Currency,
        env: &Env<'a>,
    ) -> (Bid<'a>, Claims) {
        let Winner {
            campaign,
            creative,
            imp,
            price,
            w,
            h,
        } = self;
        let claims = Claims {
            purpose: Purpose::Win,
            issued: unix_secs(facts.now),
            bid: next_bid_id(),
            request: request.id.clone().unwrap_or_default(),
            imp: imp.id.clone(),
            campaign: campaign.id.clone(),
            creative: creative.id.clone(),
            bid_price: price,
            cur: currency.to_string(),
            user,
            country: facts.country.map(|c| c.to_string()),
            device: facts.device_type,
            os: facts.os.clone(),
        };
        let bid = Bid {
            id: claims.bid.clone(),
            impid: &imp.id,
            price,
            adid: &creative.id,
            crid: &creative.id,
            cid: &campaign.id,
            adomain: &campaign.adomain,
            cat: &campaign.cat,
            adm: &creative.adm,
            w,
            h,
            events: {
                let mut signer = env.keys.signer(&claims);
                let mut signed =
                    |slot, purpose| creative.adm.has(slot).then(|| signer.sign(purpose));
                let (imp, click) = (
                    signed(Macro::Imp, Purpose::Imp),
                    signed(Macro::Click, Purpose::Click),
                );
                EventUrls {
                    base: &env.urls.public,
                    win: signer.sign(Purpose::Win),
                    bill: signer.sign(Purpose::Bill),
                    imp,
                    click,
                }
            },
        };
        (bid, claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::ranking::rank;
    use crate::request::openrtb::decode;
    use std::path::Path;
    use std::sync::Arc;

    const BANNER: &str = r#"[[creative]]
id = "mrec"
format = "banner"
w = 300
h = 250
adm = "<a href='${CLICK_URL}'>ad</a>"
landing = "https://shop.example/""#;

    const VIDEO: &str = r#"[[creative]]
id = "spot"
format = "video"
mime = "video/mp4"
duration = 30
vast = "3.0"
adm = "<VAST version='3.0'/>"
landing = "https://shop.example/""#;

    fn rates() -> Rates {
        Rates::new([(Currency::parse("EUR").unwrap(), 0.5)])
    }

    fn campaign(id: &str, pricing: &str, creative: &str) -> Arc<Campaign> {
        let text = format!("adomain = [\"shop.example\"]\n[pricing]\n{pricing}\n{creative}");
        Arc::new(
            crate::campaign::file::parse(&text, Path::new(&format!("{id}.toml")), &rates())
                .unwrap(),
        )
    }

    /// The winning campaign id and price of each imp, in order.
    fn winners(ranked: &[Ranked], request: &str) -> Vec<(String, String, f64)> {
        let request = decode(request.as_bytes()).unwrap();
        let facts = Facts::from_request(&request, chrono::Utc::now());
        let urls = Urls {
            public: "http://127.0.0.1:8080".into(),
        };
        let keys = Keys::new(b"a test secret of 32 bytes.......", None).unwrap();
        let env = Env {
            rates: &rates(),
            urls: &urls,
            keys: &keys,
            pacer: &Pacer::new(60, 10),
            exposures: &Exposures::new(1000, 60),
            audiences: &crate::audience::Library::default(),
            no_bids: &NoBids::default(),
        };
        let Ok(Auctioned { response, .. }) = run(ranked, None, &request, &facts, &env) else {
            return Vec::new();
        };
        let cur = response.cur.clone();
        response.seatbid[0]
            .bid
            .iter()
            .map(|b| (b.cid.to_owned(), cur.clone(), b.price))
            .collect()
    }

    const MREC: &str = r#"{"id": "r", "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}]}"#;

    #[test]
    fn a_badv_of_20_000_entries_blocks_a_listed_domain_and_its_subdomains_only() {
        // Each blocked campaign walked every entry: 2,000 of them took 0.4 s per request. What such
        // a request costs is benched (`cargo bench --bench bid_path -- hostile`).
        let campaigns =
            (0..2_000).map(|i| campaign(&format!("c{i}"), "model = \"cpm\"\ncpm = 2.0", BANNER));
        let ranked = rank(campaigns, &rates(), Ranked::from_file);
        let junk: Vec<String> = (0..20_000).map(|i| format!("\"j{i}.example\"")).collect();
        let request = |last: &str| {
            format!(
                r#"{{"id": "r", "imp": [{{"id": "1", "banner": {{"w": 300, "h": 250}}}}],
                    "badv": [{}, "{last}"]}}"#,
                junk.join(",")
            )
        };
        assert!(winners(&ranked, &request("EXAMPLE")).is_empty());
        let open = winners(&ranked, &request("hop.example"));
        assert_eq!(
            open.len(),
            1,
            "a listed domain blocks itself and its subdomains only"
        );
    }

    #[test]
    fn prices_are_rounded_to_the_micro_unit_before_the_floor_and_the_token() {
        let bid = |cpm: &str, request: &str| {
            let ranked = rank(
                [campaign(
                    "a",
                    &format!("model = \"cpm\"\ncpm = {cpm}"),
                    BANNER,
                )],
                &rates(),
                Ranked::from_file,
            );
            winners(&ranked, request).first().map(|w| w.2)
        };
        assert_eq!(bid("2.0000004", MREC), Some(2.0));
        assert_eq!(bid("2.0000006", MREC), Some(2.000001));
        // 1 USD is 0.5 EUR: 2.4691358 USD is 1.2345679 EUR, sent as 1.234568.
        let eur =
            r#"{"id": "r", "cur": ["EUR"], "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}]}"#;
        assert_eq!(bid("2.4691358", eur), Some(1.234568));
        // Held against the floor as sent: 2.0000004 is bid as 2.0, under a floor of 2.0000003.
        let floored = r#"{"id": "r", "imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "bidfloor": 2.0000003}]}"#;
        assert_eq!(bid("2.0000004", floored), None);
    }

    #[test]
    fn ties_go_to_the_higher_max_cpm_then_the_lower_id() {
        let a = campaign("a", "model = \"cpm\"\ncpm = 2.0", BANNER);
        let b = campaign("b", "model = \"cpm\"\ncpm = 2.0\nmax_cpm = 9.0", BANNER);
        let c = campaign(
            "c",
            "model = \"cpc\"\ncpc = 0.2\nctr = 0.01\nmax_cpm = 9.0",
            BANNER,
        );
        let ranked = rank(
            [a.clone(), c.clone(), b.clone()],
            &rates(),
            Ranked::from_file,
        );
        let ids: Vec<&str> = ranked.iter().map(|r| r.campaign.id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "a"]);
        assert_eq!(winners(&ranked, MREC), [("b".into(), "USD".into(), 2.0)]);
        // Prices in other currencies are ranked in USD: 3 EUR is 6 USD.
        let eur = campaign(
            "eur",
            "model = \"cpm\"\ncpm = 3.0\ncurrency = \"EUR\"",
            BANNER,
        );
        let ranked = rank([a, eur], &rates(), Ranked::from_file);
        assert_eq!(winners(&ranked, MREC), [("eur".into(), "USD".into(), 6.0)]);
    }

    #[test]
    fn the_best_campaign_without_a_fitting_creative_yields_to_the_next() {
        let video = campaign("video", "model = \"cpm\"\ncpm = 9.0", VIDEO);
        let banner = campaign("banner", "model = \"cpm\"\ncpm = 1.0", BANNER);
        let ranked = rank([video, banner], &rates(), Ranked::from_file);
        let both = r#"{"id": "r", "imp": [{"id": "b", "banner": {"format": [{"w": 728, "h": 90}, {"w": 300, "h": 250}]}},
                                         {"id": "v", "video": {"mimes": ["video/mp4"], "protocols": [2, 3]}}]}"#;
        let won: Vec<String> = winners(&ranked, both).into_iter().map(|w| w.0).collect();
        assert_eq!(won, ["banner", "video"]);
    }

    #[test]
    fn video_plays_only_where_the_player_can_play_it() {
        let ranked = rank(
            [campaign("video", "model = \"cpm\"\ncpm = 2.0", VIDEO)],
            &rates(),
            Ranked::from_file,
        );
        let with = |video: &str| {
            winners(
                &ranked,
                &format!(r#"{{"id": "r", "imp": [{{"id": "1", "video": {video}}}]}}"#),
            )
        };
        assert_eq!(with("{}").len(), 1);
        assert_eq!(
            with(
                r#"{"mimes": ["video/MP4"], "minduration": 15, "maxduration": 30, "protocol": 3}"#
            )
            .len(),
            1
        );
        assert_eq!(with(r#"{"maxduration": 0}"#).len(), 1);
        assert!(with(r#"{"mimes": ["video/webm"]}"#).is_empty());
        assert!(with(r#"{"maxduration": 15}"#).is_empty());
        assert!(with(r#"{"minduration": 60}"#).is_empty());
        assert!(with(r#"{"protocols": [7, 8]}"#).is_empty());
    }

    #[test]
    fn floors_and_currencies_are_converted_and_unknown_ones_mean_no_bid() {
        let ranked = rank(
            [campaign("a", "model = \"cpm\"\ncpm = 2.0", BANNER)],
            &rates(),
            Ranked::from_file,
        );
        let with = |extra: &str, imp: &str| {
            winners(
                &ranked,
                &format!(
                    r#"{{"id": "r", "imp": [{{"id": "1", "banner": {{"w": 300, "h": 250}} {imp}}}] {extra}}}"#
                ),
            )
        };
        assert_eq!(with("", r#", "bidfloor": 2.0"#).len(), 1);
        assert!(with("", r#", "bidfloor": 2.01"#).is_empty());
        // 1 EUR is 2 USD: at the floor; 1.01 EUR is above the bid.
        assert_eq!(
            with("", r#", "bidfloor": 1, "bidfloorcur": "EUR""#).len(),
            1
        );
        assert!(with("", r#", "bidfloor": 1.01, "bidfloorcur": "EUR""#).is_empty());
        assert!(with("", r#", "bidfloor": 0.1, "bidfloorcur": "XYZ""#).is_empty());
        assert_eq!(
            with(r#", "cur": ["JPY", "EUR"]"#, ""),
            [("a".into(), "EUR".into(), 1.0)]
        );
        assert!(with(r#", "cur": ["JPY"]"#, "").is_empty());
        assert!(with("", r#", "pmp": {"private_auction": 1}"#).is_empty());
    }
}
