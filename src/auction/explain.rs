//! "Why did it not bid?": for each imp of a request, every campaign's outcome, the bid or the
//! first reason it dropped out, with the values compared. Served by `POST /admin/explain` (with
//! what the running bidder knows of budgets, pacing and caps) and `precis explain` (offline, on
//! the campaign directory, with nothing spent).
//!
//! It asks the same questions as [`super::run`], in the order a campaign manager reads them
//! (flight, schedule, targeting, blocks, audiences, creative, floor, cap, budget, pacing), and
//! walks every campaign rather than the index's candidates: it is a diagnosis, not the bid path.
//! It never changes state: no reservation is made, no pending impression counted, no pacing step
//! taken or random draw made (a campaign that even pacing lets through part of the time is shown
//! as bidding, with its pass rate).

use std::fmt::Write;
use std::io;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Blocks, Env, NoBids, Urls, bid_price, budget_usd, fitting, floor, response_currency};
use crate::audience::Member;
use crate::book::frequency::Exposures;
use crate::book::pacing::{Pacer, Preview};
use crate::book::ranking::{Ranked, rank};
use crate::book::store::Checked;
use crate::campaign::pricing::{Currency, Rates};
use crate::campaign::targeting::{CONNECTIONS, Term};
use crate::campaign::{Campaign, CreativeFormat};
use crate::forms::{ancestors, domains_of};
use crate::request::facts::Facts;
use crate::request::openrtb::{BidRequest, Imp, device_type_name};
use crate::token::Keys;

/// Every imp's outcomes, in the request's order.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub imps: Vec<ImpOutcomes>,
}

/// One imp: what it offered, who would bid, and why each other campaign would not.
#[derive(Debug, Serialize)]
pub struct ImpOutcomes {
    pub imp: String,
    /// What the imp offers: `banner 300x250`, `video`, `native`.
    pub offers: String,
    /// The floor in the response currency (`None` when its currency cannot be converted).
    pub floor: Option<f64>,
    /// The response currency (`None` when precis can answer in none the exchange accepts).
    pub currency: Option<String>,
    /// The campaign that would bid, if any.
    pub winner: Option<String>,
    /// Every campaign considered, in auction order (highest eCPM first).
    pub campaigns: Vec<Verdict>,
}

/// One campaign's outcome for one imp.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub campaign: String,
    pub outcome: Outcome,
    /// The values compared, in words.
    pub detail: String,
}

/// A campaign's outcome: it bids, a better one bids, or the first check it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Bid,
    /// Eligible, but a campaign ahead of it in auction order bids.
    Outranked,
    /// The imp is a private auction and precis holds no deals.
    DealOnly,
    /// No currency both sides know (the exchange's `cur`, the floor's `bidfloorcur`).
    Currency,
    /// `status` is not `active`.
    Paused,
    /// Before `start` or after `end`.
    Flight,
    /// Outside `days` / `hours` in the campaign's time zone.
    Schedule,
    /// `countries`, `regions`, `cities`, `near`.
    Geo,
    /// `device_types`, `os`, `connection`.
    Device,
    /// The request allows no personal data and the campaign needs it (audiences, a frequency
    /// cap, user tags, age, gender or a precise location).
    Consent,
    /// `tags_any`, `tags_all`.
    Tags,
    /// `categories`.
    Categories,
    /// `age`, `gender`.
    Demographics,
    /// `sites`, `apps`.
    Placement,
    /// A `[targeting.exclude]` key holds.
    Excluded,
    /// The exchange's `badv` / `bcat` blocks the advertiser or a category.
    Blocked,
    /// Not in the campaign's audience packages, or in an excluded one.
    Audience,
    /// No creative fits the imp.
    Creative,
    /// The bid is below the imp's floor.
    Floor,
    /// The user has seen the campaign as often as `[frequency]` allows, or converted.
    Frequency,
    /// A daily or total budget is spent (with the reservations of bids waiting for their win).
    Budget,
    /// Even pacing is ahead of its line for the day.
    Pacing,
}

/// Explains `request` against `ranked` (auction order), then lists the `paused` campaigns.
/// `only`: one campaign's verdicts, though the winner is still decided among all.
pub fn explain(
    ranked: &[Ranked],
    paused: &[&Campaign],
    request: &BidRequest,
    facts: &Facts,
    env: &Env,
    only: Option<&str>,
) -> Explanation {
    let currency = response_currency(request, env.rates);
    let blocks = Blocks::of(request);
    let user = facts.user.as_deref().map(|u| env.keys.user_hash(u));
    let (id, keyed) = (|| facts.user_id(), || user);
    let member = Member {
        id: &id,
        keyed: &keyed,
    };
    let imps = request
        .imp
        .iter()
        .map(|imp| {
            let floor = currency.and_then(|c| floor(imp, c, env.rates));
            let mut winner = None;
            let mut campaigns = Vec::new();
            for entry in ranked {
                let (outcome, detail) = match (currency, floor) {
                    _ if imp.pmp.as_ref().and_then(|p| p.private_auction) == Some(1) => (
                        Outcome::DealOnly,
                        "the imp is a private auction (pmp.private_auction = 1) and precis holds no deals".into(),
                    ),
                    (None, _) => (
                        Outcome::Currency,
                        format!("precis has no rate for any currency the exchange accepts ({})", request.cur.join(", ")),
                    ),
                    (Some(_), None) => (
                        Outcome::Currency,
                        format!("the floor's currency {} is unknown", imp.bidfloorcur.as_deref().unwrap_or_default()),
                    ),
                    (Some(currency), Some(floor)) => {
                        let check = Check { entry, imp, facts, env, user, currency, floor };
                        match check.first_miss(&blocks, &member) {
                            Some(miss) => miss,
                            None if winner.is_some() => (
                                Outcome::Outranked,
                                format!("{} is ahead in auction order and bids", winner.as_deref().unwrap_or_default()),
                            ),
                            None => {
                                winner = Some(entry.campaign.id.clone());
                                (Outcome::Bid, check.bid_detail())
                            }
                        }
                    }
                };
                if only.is_none_or(|id| id == entry.campaign.id) {
                    campaigns.push(Verdict {
                        campaign: entry.campaign.id.clone(),
                        outcome,
                        detail,
                    });
                }
            }
            let paused = paused.iter().filter(|c| only.is_none_or(|id| id == c.id));
            campaigns.extend(paused.map(|c| Verdict {
                campaign: c.id.clone(),
                outcome: Outcome::Paused,
                detail: "status is not \"active\"".into(),
            }));
            ImpOutcomes {
                imp: imp.id.clone(),
                offers: offers(imp),
                floor,
                currency: currency.map(|c| c.to_string()),
                winner,
                campaigns,
            }
        })
        .collect();
    Explanation { imps }
}

/// `precis explain`: `request` at `now` against the campaigns `checked` compiled, as a bidder
/// that has just started would answer it: nothing spent, no one seen, CPC and CPS priced from
/// the files' priors. Users are keyed with `keys` (packages of precis' own hashes match only
/// under the bidder's secret); `vendor` is precis' TCF vendor id.
pub fn offline(
    checked: &Checked,
    rates: &Rates,
    keys: &Keys,
    vendor: Option<u32>,
    request: &BidRequest,
    now: DateTime<Utc>,
    only: Option<&str>,
) -> Explanation {
    let campaigns = || checked.loaded.values().map(|l| &l.campaign);
    let ranked = rank(campaigns().cloned(), rates, Ranked::from_file);
    let paused: Vec<&Campaign> = campaigns().map(|c| &**c).filter(|c| !c.active).collect();
    let env = Env {
        rates,
        urls: &Urls {
            public: String::new(),
        },
        keys,
        pacer: &Pacer::new(0, 0),
        exposures: &Exposures::new(0, 0),
        audiences: &checked.audiences,
        no_bids: &NoBids::default(),
    };
    let facts = Facts::from_request_as(request, now, vendor);
    explain(&ranked, &paused, request, &facts, &env, only)
}

impl Explanation {
    /// For people: per imp, what it offers and who bids, then one line per campaign.
    pub fn write_text(&self, out: &mut impl io::Write) -> io::Result<()> {
        for imp in &self.imps {
            let floor = match (imp.floor, &imp.currency) {
                (Some(floor), Some(cur)) => format!("floor {floor:.6} {cur}"),
                _ => "no currency in common".into(),
            };
            let winner = imp.winner.as_deref().unwrap_or("no campaign: no bid");
            writeln!(
                out,
                "imp {}: {}; {floor}; bid by {winner}",
                imp.imp, imp.offers
            )?;
            let width = imp.campaigns.iter().map(|v| v.campaign.len()).max();
            for verdict in &imp.campaigns {
                let outcome = serde_json::to_value(verdict.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "  {:width$}  {outcome:12}{}",
                    verdict.campaign,
                    verdict.detail,
                    width = width.unwrap_or_default()
                )?;
            }
        }
        Ok(())
    }
}

/// One campaign against one imp.
struct Check<'a> {
    entry: &'a Ranked,
    imp: &'a Imp,
    facts: &'a Facts,
    env: &'a Env<'a>,
    user: Option<u64>,
    currency: Currency,
    floor: f64,
}

impl Check<'_> {
    fn campaign(&self) -> &Campaign {
        &self.entry.campaign
    }

    /// The bid in the response currency.
    fn price(&self) -> f64 {
        bid_price(self.entry, self.currency, self.env.rates)
    }

    /// The first check the campaign fails, in words; `None` when it would bid.
    fn first_miss(&self, blocks: &Blocks, member: &Member) -> Option<(Outcome, String)> {
        let (campaign, facts) = (self.campaign(), self.facts);
        if !campaign.in_flight(facts.now) {
            let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("open".into(), |t| t.to_rfc3339())
            };
            return Some((
                Outcome::Flight,
                format!(
                    "now is {}; the flight runs from {} to {}",
                    facts.now.to_rfc3339(),
                    when(campaign.start),
                    when(campaign.end)
                ),
            ));
        }
        if let Some(why) = facts.withheld
            && campaign.needs_user_data()
        {
            return Some((
                Outcome::Consent,
                format!(
                    "the request allows no personal data ({}) and the campaign needs it (audiences, a frequency cap, or targeting on user tags, age, gender or a precise location)",
                    why.label()
                ),
            ));
        }
        let targeting = &campaign.targeting;
        if let Some(term) = targeting.include.iter().find(|t| !t.holds(facts)) {
            return Some(missed(term, facts));
        }
        if let Some(term) = targeting.exclude.iter().find(|t| t.holds(facts)) {
            let (_, detail) = missed(term, facts);
            return Some((
                Outcome::Excluded,
                format!(
                    "[targeting.exclude] {}",
                    detail.replace(", not ", ", which is ")
                ),
            ));
        }
        if blocks.bar(campaign) {
            let domains = (campaign.adomain.iter())
                .filter(|a| domains_of(a).any(|d| blocks.domains.contains(d)));
            let categories = (campaign.cat.iter())
                .filter(|c| ancestors(c, '-', usize::MAX).any(|p| blocks.categories.contains(p)));
            let mut blocked: Vec<String> = domains.map(|d| format!("badv blocks {d}")).collect();
            blocked.extend(categories.map(|c| format!("bcat blocks {c}")));
            return Some((
                Outcome::Blocked,
                format!("the request's {}", blocked.join(", ")),
            ));
        }
        if !campaign.audiences.is_empty() && !campaign.audiences.holds(self.env.audiences, member) {
            let who = if facts.user.is_some() {
                "the user"
            } else {
                "a request without a user id"
            };
            return Some((
                Outcome::Audience,
                format!(
                    "{who} is not in [{}]{}",
                    campaign.audiences.any.join(", "),
                    if campaign.audiences.none.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " or is in excluded [{}]",
                            campaign.audiences.none.join(", ")
                        )
                    }
                ),
            ));
        }
        let audiences = self.env.audiences;
        let allowed = |c: &crate::campaign::Creative| {
            c.audiences.is_empty()
                || c.audiences
                    .iter()
                    .any(|n| audiences.get(n).is_some_and(|p| p.has(member)))
        };
        if fitting(self.entry, self.imp, allowed).is_none() {
            return Some((
                Outcome::Creative,
                format!(
                    "the imp offers {}; the creatives are {}",
                    offers(self.imp),
                    creatives(campaign)
                ),
            ));
        }
        let price = self.price();
        if price <= 0.0 || price < self.floor {
            return Some((
                Outcome::Floor,
                format!(
                    "bid {price:.6} {cur} is below the floor {:.6} {cur}",
                    self.floor,
                    cur = self.currency
                ),
            ));
        }
        self.admission()
    }

    /// Frequency, budget and pacing, as they stand (nothing reserved).
    fn admission(&self) -> Option<(Outcome, String)> {
        let (campaign, env, now) = (self.campaign(), self.env, self.facts.now);
        if let (Some(cap), Some(user)) = (&campaign.frequency, self.user) {
            let (seen, converted) = env.exposures.seen(user, campaign, now);
            if cap.stop_after_conversion && converted {
                return Some((
                    Outcome::Frequency,
                    "the user converted and [frequency] stops after a conversion".into(),
                ));
            }
            if let Some(limit) = cap.impressions.filter(|&limit| seen >= limit) {
                return Some((
                    Outcome::Frequency,
                    format!(
                        "the user has {seen} impressions (and bids pending) of a cap of {limit} in this window"
                    ),
                ));
            }
        }
        match env.pacer.preview(
            campaign,
            budget_usd(self.entry, self.env.rates),
            env.rates,
            now,
        ) {
            Preview::OutOfBudget {
                which,
                spent_usd,
                held_usd,
                limit_usd,
            } => Some((
                Outcome::Budget,
                format!(
                    "{which} budget: spent {spent_usd:.2} USD and {held_usd:.2} USD held by bids waiting for their win, of {limit_usd:.2} USD"
                ),
            )),
            Preview::Ahead {
                using_usd,
                ceiling_usd,
            } => Some((
                Outcome::Pacing,
                format!(
                    "even pacing: {using_usd:.2} USD used or held is above this step's ceiling of {ceiling_usd:.2} USD"
                ),
            )),
            Preview::Held { why } => Some((Outcome::Budget, why)),
            Preview::Open { .. } => None,
        }
    }

    /// What the winner bids, and how often pacing lets it.
    fn bid_detail(&self) -> String {
        let mut detail = format!("bids {:.6} {}", self.price(), self.currency);
        if let Preview::Open {
            pass_rate: Some(rate),
        } = (self.env.pacer).preview(
            self.campaign(),
            budget_usd(self.entry, self.env.rates),
            self.env.rates,
            self.facts.now,
        ) && rate < 1.0
        {
            let _ = write!(
                detail,
                "; even pacing lets {:.0}% of its bids through now, so this one may be held back",
                rate * 100.0
            );
        }
        detail
    }
}

/// A targeting term that did not hold, in words: the campaign's values and the request's.
fn missed(term: &Term, facts: &Facts) -> (Outcome, String) {
    let names = |items: &[String]| items.join(", ");
    let shown = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
    // `key: the request's WHAT is FOUND, not one of WANTED`.
    let one_of = |outcome, key: &str, what: &str, found: Option<String>, wanted: String| {
        let found = found.unwrap_or_else(|| "not given".into());
        (
            outcome,
            format!("{key}: the request's {what} is {found}, not one of {wanted}"),
        )
    };
    let tags = |key: &str, how: &str, want: &[String]| {
        let (have, want) = (names(&facts.tags), names(want));
        (
            Outcome::Tags,
            format!("{key}: the user's tags are [{have}]; the campaign wants {how} of {want}"),
        )
    };
    let lower = |g: &crate::request::facts::Gender| format!("{g:?}").to_lowercase();
    match term {
        Term::Countries(want) => one_of(
            Outcome::Geo,
            "countries",
            "country",
            facts.country.map(|c| c.to_string()),
            shown(&mut want.iter().map(ToString::to_string)),
        ),
        Term::Regions(want) => one_of(
            Outcome::Geo,
            "regions",
            "region",
            facts.region.as_ref().map(|r| r.code.clone()),
            shown(&mut want.iter().map(|r| r.code.clone())),
        ),
        Term::Cities(want) => one_of(
            Outcome::Geo,
            "cities",
            "city",
            facts.city.clone(),
            names(want),
        ),
        Term::Near(circles) => {
            let point = |p: &crate::request::geo::Point| format!("{:.4},{:.4}", p.lat, p.lon);
            let within = circles
                .iter()
                .map(|c| format!("{} km of {}", c.km, point(&c.center)));
            let found = facts.point.as_ref().map_or("not given".into(), point);
            let within = shown(&mut within.into_iter());
            (
                Outcome::Geo,
                format!("near: the request's position is {found}, not within {within}"),
            )
        }
        Term::Schedule { tz, .. } => (
            Outcome::Schedule,
            format!(
                "days/hours: it is {} in {tz}, outside the campaign's hours",
                facts.now.with_timezone(tz).format("%A %H:%M")
            ),
        ),
        Term::DeviceTypes(want) => one_of(
            Outcome::Device,
            "device_types",
            "device type",
            facts.device_type.map(device_name),
            shown(&mut want.codes().map(device_name)),
        ),
        Term::Os(want) => one_of(Outcome::Device, "os", "OS", facts.os.clone(), names(want)),
        Term::Connection(want) => one_of(
            Outcome::Device,
            "connection",
            "connection type",
            facts.connection.map(connection_name),
            shown(&mut want.codes().map(connection_name)),
        ),
        Term::TagsAny(want) => tags("tags_any", "one", want),
        Term::TagsAll(want) => tags("tags_all", "all", want),
        Term::Categories(want) => (
            Outcome::Categories,
            format!(
                "categories: the page's categories are [{}], not one of {}",
                names(&facts.categories),
                names(want)
            ),
        ),
        Term::Age { min, max } => (
            Outcome::Demographics,
            format!(
                "age: the user's age is {}, not {min} to {max}",
                facts.age.map_or("not given".into(), |a| a.to_string())
            ),
        ),
        Term::Gender(want) => one_of(
            Outcome::Demographics,
            "gender",
            "gender",
            facts.gender.as_ref().map(lower),
            shown(&mut want.iter().map(lower)),
        ),
        Term::Sites(want) => one_of(
            Outcome::Placement,
            "sites",
            "site",
            facts.site.clone(),
            names(want),
        ),
        Term::Apps(want) => one_of(
            Outcome::Placement,
            "apps",
            "app",
            facts.app.clone(),
            names(want),
        ),
    }
}

/// `phone (4)`.
fn device_name(code: u32) -> String {
    match device_type_name(code) {
        Some(name) => format!("{name} ({code})"),
        None => code.to_string(),
    }
}

/// `wifi (2)`: the campaign name that covers exactly this code.
fn connection_name(code: u32) -> String {
    match CONNECTIONS.iter().find(|(_, codes)| *codes == [code]) {
        Some((name, _)) => format!("{name} ({code})"),
        None => code.to_string(),
    }
}

/// What an imp offers, in words: `banner 300x250 or 728x90`, `video`, `native`.
fn offers(imp: &Imp) -> String {
    let mut kinds = Vec::new();
    if let Some(banner) = &imp.banner {
        let mut sizes: Vec<String> = Vec::new();
        let offered = std::iter::once((banner.w, banner.h))
            .chain(banner.format.iter().map(|f| (f.w, f.h)))
            .filter_map(|(w, h)| Some(format!("{}x{}", w?, h?)));
        for size in offered {
            if !sizes.contains(&size) {
                sizes.push(size);
            }
        }
        kinds.push(format!("banner {}", sizes.join(" or ")).trim().to_owned());
    }
    if let Some(video) = &imp.video {
        kinds.push(format!("video ({})", video.mimes.join(", ")));
    }
    if imp.native.is_some() {
        kinds.push("native".into());
    }
    if kinds.is_empty() {
        return "nothing precis can fill".into();
    }
    kinds.join(", ")
}

/// A campaign's creatives, in words: `banner 300x250, video/mp4 30 s`.
fn creatives(campaign: &Campaign) -> String {
    let each = campaign.creatives.iter().map(|c| match &c.format {
        CreativeFormat::Banner => format!(
            "banner {}x{}",
            c.w.unwrap_or_default(),
            c.h.unwrap_or_default()
        ),
        CreativeFormat::Video(v) => format!("video {} {} s", v.mime, v.duration),
        CreativeFormat::Native => "native".into(),
    });
    let mut text = each.collect::<Vec<_>>().join(", ");
    if campaign.creatives.iter().any(|c| !c.audiences.is_empty()) {
        text.push_str(" (some only for their audience packages)");
    }
    text
}
