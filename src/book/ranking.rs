//! The ranking: the live campaigns in auction order, each with the price it bids now and its
//! creatives best first.
//!
//! The auction takes the first eligible campaign of this order as an imp's winner, and the index
//! numbers its sets by it, so both read one ranked list that a reload or a repricing builds off the
//! request path and swaps in whole. Prices come from the file's priors ([`Ranked::from_file`]) or
//! from what [`Learned`] has measured ([`Ranked::learned`]). Ranking never touches the request path:
//! it sorts every live campaign.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::book::learning::Learned;
use crate::book::pacing::Account;
use crate::campaign::Campaign;
use crate::campaign::pricing::{Currency, Rates};

/// A live campaign in auction order, with the price it bids now.
#[derive(Debug, Clone)]
pub struct Ranked {
    pub campaign: Arc<Campaign>,
    /// Its eCPM in the campaign currency, capped at `max_cpm`: from the file's priors, or learned
    /// (see [`crate::book::learning`]).
    pub ecpm: f64,
    /// Indexes into its creatives, best first: among those that fit an imp, the first is served.
    pub creatives: Vec<usize>,
    /// What it has spent and reserved, when it has a budget.
    pub account: Option<Arc<Account>>,
    /// Bids it has made since start (`/metrics`); the same counter across reloads.
    pub bids: Arc<AtomicU64>,
}

impl Ranked {
    /// At the file's priors, creatives in file order: before anything is measured.
    pub fn from_file(campaign: Arc<Campaign>) -> Ranked {
        Ranked {
            ecpm: campaign.pricing.ecpm(),
            creatives: (0..campaign.creatives.len()).collect(),
            account: None,
            bids: Arc::default(),
            campaign,
        }
    }

    /// As the auction should see it now: at its learned eCPM, with its creatives in order of
    /// learned CTR (file order among equals).
    pub fn learned(campaign: Arc<Campaign>, learned: &Learned) -> Ranked {
        let ctrs: Vec<f64> = campaign
            .creatives
            .iter()
            .map(|k| learned.creative_ctr(&campaign, &k.id))
            .collect();
        let mut creatives: Vec<usize> = (0..ctrs.len()).collect();
        creatives.sort_by(|&a, &b| ctrs[b].total_cmp(&ctrs[a]).then(a.cmp(&b)));
        Ranked {
            ecpm: learned.ecpm(&campaign),
            creatives,
            account: None,
            bids: Arc::default(),
            campaign,
        }
    }
}

/// Orders campaigns for [`crate::auction::run`]: live ones only, highest eCPM (as `price` prices
/// them, compared in
/// USD) first, ties broken by higher `max_cpm`, then by id, so the same data always gives the same
/// winner.
pub fn rank(
    campaigns: impl IntoIterator<Item = Arc<Campaign>>,
    rates: &Rates,
    price: impl Fn(Arc<Campaign>) -> Ranked,
) -> Vec<Ranked> {
    let usd = |c: &Campaign, amount: f64| {
        rates
            .convert(amount, c.pricing.currency, Currency::USD)
            .unwrap_or(0.0)
    };
    let mut ranked: Vec<(f64, f64, Ranked)> = campaigns
        .into_iter()
        .filter(|c| c.active)
        .map(|campaign| {
            let ranked = price(campaign);
            let campaign = &ranked.campaign;
            (
                usd(campaign, ranked.ecpm),
                usd(campaign, campaign.pricing.max_cpm),
                ranked,
            )
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(b.1.total_cmp(&a.1))
            .then_with(|| a.2.campaign.id.cmp(&b.2.campaign.id))
    });
    ranked.into_iter().map(|(_, _, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::learning::Priors;
    use crate::eventlog::{Event, Kind};
    use std::path::Path;

    #[test]
    fn the_creative_that_gets_clicked_is_served_first() {
        let learned = Learned::new(Priors {
            impressions: 100.0,
            clicks: 100.0,
        });
        let two = format!(
            "{}\n[[creative]]\nid = \"d\"\nformat = \"banner\"\nw = 1\nh = 1\nadm = \"y\"\nlanding = \"https://a.example/\"",
            "adomain = [\"a.example\"]\n[pricing]\nmodel = \"cpc\"\ncpc = 0.5\nctr = 0.01\nmax_cpm = 50\n[[creative]]\nid = \"c\"\nformat = \"banner\"\nw = 1\nh = 1\nadm = \"x\"\nlanding = \"https://a.example/\""
        );
        let campaign = Arc::new(
            crate::campaign::file::parse(&two, Path::new("shoes.toml"), &Rates::default()).unwrap(),
        );
        // Nothing measured: file order.
        assert_eq!(
            Ranked::learned(campaign.clone(), &learned).creatives,
            [0, 1]
        );
        let event = |kind, creative: &str| Event {
            creative: creative.into(),
            ..Event::example(kind, "b", "2026-03-01T10:00:00Z")
        };
        for _ in 0..200 {
            learned.observe(&event(Kind::Imp, "c"));
            learned.observe(&event(Kind::Imp, "d"));
        }
        for _ in 0..10 {
            learned.observe(&event(Kind::Click, "d"));
        }
        let ranked = Ranked::learned(campaign.clone(), &learned);
        assert_eq!(ranked.creatives, [1, 0]);
        assert!(learned.creative_ctr(&campaign, "d") > learned.creative_ctr(&campaign, "c"));
        assert!((ranked.ecpm - learned.ecpm(&campaign)).abs() < 1e-12);
    }
}
