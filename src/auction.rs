//! The auction: for each imp of a request, the live campaign with the highest eCPM that may bid.
//!
//! Campaigns arrive ranked (highest eCPM first, then higher `max_cpm`, then id), so the first campaign
//! that is eligible for the request and has a creative that fits the imp is the winner, and a winner
//! below the floor means every campaign is. This module is pure and synchronous: it reads an immutable
//! ranked list and a decoded request and returns a response; it never blocks, locks or touches disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::campaign::{Campaign, Creative, Format};
use crate::openrtb::response::{Bid, BidResponse, SEAT, SeatBid};
use crate::openrtb::{BidRequest, Imp};
use crate::pricing::{Currency, Rates};
use crate::targeting::{Facts, category_form, host_form, on_domain, within};

/// Orders campaigns for [`run`]: live ones only, highest eCPM (compared in USD) first, ties broken by
/// higher `max_cpm`, then by id, so the same files always give the same winner.
pub fn rank(
    campaigns: impl IntoIterator<Item = Arc<Campaign>>,
    rates: &Rates,
) -> Vec<Arc<Campaign>> {
    let usd = |c: &Campaign, amount: f64| {
        rates
            .convert(amount, c.pricing.currency, Currency::USD)
            .unwrap_or(0.0)
    };
    let mut ranked: Vec<(f64, f64, Arc<Campaign>)> = campaigns
        .into_iter()
        .filter(|c| c.active)
        .map(|c| (usd(&c, c.pricing.ecpm()), usd(&c, c.pricing.max_cpm), c))
        .collect();
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(b.1.total_cmp(&a.1))
            .then_with(|| a.2.id.cmp(&b.2.id))
    });
    ranked.into_iter().map(|(_, _, c)| c).collect()
}

/// Where precis' own URLs (win and billing notices, clicks) point.
#[derive(Debug, Clone)]
pub struct Urls {
    /// Scheme, host and port, without a trailing slash: `http://127.0.0.1:8080`.
    pub public: String,
}

/// Runs the auction for every imp. `None` when no imp gets a bid (the exchange hears 204).
pub fn run<'a>(
    ranked: &'a [Arc<Campaign>],
    request: &'a BidRequest,
    facts: &Facts,
    rates: &Rates,
    urls: &Urls,
) -> Option<BidResponse<'a>> {
    let currency = response_currency(request, rates)?;
    let blocks = Blocks::of(request);
    // Whether each campaign may bid on this request at all, decided once and shared by all imps.
    let mut eligible: Vec<Option<bool>> = vec![None; ranked.len()];
    let mut bids = Vec::new();
    for imp in &request.imp {
        if imp.pmp.as_ref().and_then(|p| p.private_auction) == Some(1) {
            continue; // Deals only, and precis holds no deals.
        }
        let Some(floor) = floor(imp, currency, rates) else {
            continue;
        };
        for (campaign, memo) in ranked.iter().zip(eligible.iter_mut()) {
            let ok = *memo.get_or_insert_with(|| {
                campaign.in_flight(facts.now)
                    && !blocks.bar(campaign)
                    && campaign.targeting.matches(facts)
            });
            let Some((creative, w, h)) = ok.then(|| fitting(campaign, imp)).flatten() else {
                continue;
            };
            let price = rates
                .convert(campaign.pricing.ecpm(), campaign.pricing.currency, currency)
                .unwrap_or(0.0);
            // Ranked by eCPM: if the best fitting campaign is under the floor, so is every other.
            if price > 0.0 && price >= floor {
                bids.push(bid(campaign, creative, imp, price, w, h, urls));
            }
            break;
        }
    }
    (!bids.is_empty()).then(|| BidResponse {
        id: request.id.as_deref().unwrap_or_default(),
        cur: currency.to_string(),
        seatbid: [SeatBid {
            seat: SEAT,
            bid: bids,
        }],
    })
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

/// The campaign's first creative that fits the imp, with the size to report.
fn fitting<'c>(
    campaign: &'c Campaign,
    imp: &Imp,
) -> Option<(&'c Creative, Option<u32>, Option<u32>)> {
    campaign.creatives.iter().find_map(|c| match c.format {
        Format::Banner => {
            let banner = imp.banner.as_ref()?;
            let size = (c.w?, c.h?);
            let offered = std::iter::once((banner.w, banner.h))
                .chain(banner.format.iter().map(|f| (f.w, f.h)));
            offered
                .into_iter()
                .any(|(w, h)| (w, h) == (Some(size.0), Some(size.1)))
                .then_some((c, c.w, c.h))
        }
        Format::Video => {
            let video = imp.video.as_ref()?;
            Some((c, c.w.or(video.w), c.h.or(video.h)))
        }
        Format::Native => imp.native.as_ref().map(|_| (c, None, None)),
    })
}

/// The request's block lists, normalised once.
struct Blocks {
    domains: Vec<String>,
    categories: Vec<String>,
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
        let domain = campaign
            .adomain
            .iter()
            .any(|a| self.domains.iter().any(|b| on_domain(a, b)));
        let category = campaign
            .cat
            .iter()
            .any(|c| self.categories.iter().any(|b| within(c, b, '-')));
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

fn bid<'a>(
    campaign: &'a Campaign,
    creative: &'a Creative,
    imp: &'a Imp,
    price: f64,
    w: Option<u32>,
    h: Option<u32>,
    urls: &Urls,
) -> Bid<'a> {
    let id = next_bid_id();
    // Ids are restricted to URL-safe characters by the campaign file checks: no escaping needed.
    let event = |path: &str| {
        format!(
            "{}/{path}?bid={id}&cid={}&crid={}",
            urls.public, campaign.id, creative.id
        )
    };
    Bid {
        impid: &imp.id,
        price: (price * 1e6).round() / 1e6,
        adid: &creative.id,
        crid: &creative.id,
        cid: &campaign.id,
        adomain: &campaign.adomain,
        cat: &campaign.cat,
        adm: creative.adm.replace("${CLICK_URL}", &event("click")),
        w,
        h,
        nurl: event("win") + "&price=${AUCTION_PRICE}",
        burl: event("imp") + "&price=${AUCTION_PRICE}",
        id,
    }
}
