//! Learning: each campaign's click-through and conversion rates, measured from its own events and
//! smoothed toward the prior its file declares, and the eCPM that follows from them.
//!
//! A campaign starts at its prior (`ctr`, `cvr`) and moves toward what it measures as evidence
//! accumulates: the prior counts as `prior_impressions` impressions (for CTR) and `prior_clicks`
//! clicks (for CVR) of data, a Beta prior in effect. Counting is two sharded-map updates per event
//! (campaign and creative), off the bid path; the bid path reads prices and creative order that
//! [`crate::book::store::Store::reprice`] computed from these counts, never the counts themselves.
//! The counts go into the state snapshot ([`Learned::save`]) and come back from it at start.

use std::io::{Read, Write};

use dashmap::DashMap;

use crate::binary::{BinaryError, Le, get_count, get_str, put_str};
use crate::campaign::Campaign;
use crate::campaign::pricing::{Currency, Model, Rates};
use crate::eventlog::{Event, Kind};

/// What one campaign has measured so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub wins: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub conversions: u64,
    pub spend_usd: f64,
    pub revenue_usd: f64,
    /// The orders' value, USD (gross merchandise value).
    pub gmv_usd: f64,
}

impl Counts {
    fn add(&mut self, event: &Event) {
        match event.event {
            Kind::Win => self.wins += 1,
            Kind::Imp => self.impressions += 1,
            Kind::Click => self.clicks += 1,
            Kind::Conv => self.conversions += 1,
            Kind::Bid => {}
        }
        self.spend_usd += event.spend_usd;
        self.revenue_usd += event.revenue_usd;
        self.gmv_usd += event.value_usd.unwrap_or(0.0);
    }

    /// The advertiser's return on ad spend: order value per unit billed.
    pub fn roas(&self) -> Option<f64> {
        (self.revenue_usd > 0.0).then(|| self.gmv_usd / self.revenue_usd)
    }
}

/// How much the file's priors weigh against measurement.
#[derive(Debug, Clone, Copy)]
pub struct Priors {
    /// The prior CTR counts as this many impressions of data.
    pub impressions: f64,
    /// The prior CVR counts as this many clicks of data.
    pub clicks: f64,
}

/// Measured counts of every campaign, by id.
#[derive(Debug)]
pub struct Learned {
    counts: DashMap<String, Counts>,
    /// The same, per (campaign, creative).
    creatives: DashMap<(String, String), Counts>,
    priors: Priors,
}

impl Learned {
    pub fn new(priors: Priors) -> Learned {
        Learned {
            counts: DashMap::new(),
            creatives: DashMap::new(),
            priors,
        }
    }

    /// Counts a logged event (each event once: the recorder has already removed repeats).
    pub fn observe(&self, event: &Event) {
        if event.event == Kind::Bid {
            return;
        }
        self.counts
            .entry(event.campaign.clone())
            .or_default()
            .add(event);
        self.creatives
            .entry((event.campaign.clone(), event.creative.clone()))
            .or_default()
            .add(event);
    }

    pub fn counts(&self, campaign: &str) -> Counts {
        self.counts.get(campaign).map(|c| *c).unwrap_or_default()
    }

    pub fn creative_counts(&self, campaign: &str, creative: &str) -> Counts {
        let key = (campaign.to_owned(), creative.to_owned());
        self.creatives.get(&key).map(|c| *c).unwrap_or_default()
    }

    /// The campaign's learned CTR. A CPM campaign declares no `ctr`; its creatives are compared
    /// from a prior of 0.1%.
    fn ctr(&self, campaign: &Campaign) -> f64 {
        let counts = self.counts(&campaign.id);
        let prior = match campaign.pricing.model {
            Model::Cpc { ctr, .. } | Model::Cps { ctr, .. } => ctr,
            Model::Cpm { .. } => 0.001,
        };
        smooth(
            counts.clicks,
            counts.impressions,
            prior,
            self.priors.impressions,
        )
    }

    /// A creative's learned CTR, smoothed toward its campaign's.
    pub fn creative_ctr(&self, campaign: &Campaign, creative: &str) -> f64 {
        let counts = self.creative_counts(&campaign.id, creative);
        smooth(
            counts.clicks,
            counts.impressions,
            self.ctr(campaign),
            self.priors.impressions,
        )
    }

    /// The campaign's pricing model with its CTR and CVR replaced by the learned ones.
    pub fn model(&self, campaign: &Campaign) -> Model {
        let counts = self.counts(&campaign.id);
        let cvr = |prior: f64| smooth(counts.conversions, counts.clicks, prior, self.priors.clicks);
        let ctr = self.ctr(campaign);
        match campaign.pricing.model {
            Model::Cpm { cpm } => Model::Cpm { cpm },
            Model::Cpc { cpc, .. } => Model::Cpc { cpc, ctr },
            Model::Cps {
                commission,
                order_value,
                cvr: prior,
                ..
            } => Model::Cps {
                commission,
                order_value,
                cvr: cvr(prior),
                ctr,
            },
        }
    }

    /// What the campaign bids per thousand impressions now: its learned eCPM, capped at `max_cpm`,
    /// in the campaign currency.
    pub fn ecpm(&self, campaign: &Campaign) -> f64 {
        self.model(campaign).ecpm().min(campaign.pricing.max_cpm)
    }
}

impl Counts {
    fn put(&self, out: &mut impl Write) -> std::io::Result<()> {
        for n in [self.wins, self.impressions, self.clicks, self.conversions] {
            n.put(out)?;
        }
        self.spend_usd.put(out)?;
        self.revenue_usd.put(out)?;
        self.gmv_usd.put(out)
    }

    fn get(input: &mut impl Read) -> Result<Counts, BinaryError> {
        Ok(Counts {
            wins: u64::get(input)?,
            impressions: u64::get(input)?,
            clicks: u64::get(input)?,
            conversions: u64::get(input)?,
            spend_usd: f64::get(input)?,
            revenue_usd: f64::get(input)?,
            gmv_usd: f64::get(input)?,
        })
    }
}

impl Learned {
    /// An empty one with the same priors.
    pub fn empty_like(&self) -> Learned {
        Learned::new(self.priors)
    }

    /// Writes every campaign's and every creative's counts into a state snapshot.
    pub fn save(&self, out: &mut impl Write) -> std::io::Result<()> {
        let campaigns: Vec<(String, Counts)> = self
            .counts
            .iter()
            .map(|entry| (entry.key().clone(), *entry.value()))
            .collect();
        (campaigns.len() as u64).put(out)?;
        for (campaign, counts) in campaigns {
            put_str(out, &campaign)?;
            counts.put(out)?;
        }
        let creatives: Vec<((String, String), Counts)> = self
            .creatives
            .iter()
            .map(|entry| (entry.key().clone(), *entry.value()))
            .collect();
        (creatives.len() as u64).put(out)?;
        for ((campaign, creative), counts) in creatives {
            put_str(out, &campaign)?;
            put_str(out, &creative)?;
            counts.put(out)?;
        }
        Ok(())
    }

    /// Reads what [`Learned::save`] wrote into this one (meant to be empty).
    pub fn load(&self, input: &mut impl Read, max_id: usize) -> Result<(), BinaryError> {
        for _ in 0..get_count(input, usize::MAX)? {
            let campaign = get_str(input, max_id)?;
            self.counts.insert(campaign, Counts::get(input)?);
        }
        for _ in 0..get_count(input, usize::MAX)? {
            let key = (get_str(input, max_id)?, get_str(input, max_id)?);
            self.creatives.insert(key, Counts::get(input)?);
        }
        Ok(())
    }
}

/// Impressions a campaign must have before its CTR and ROI are judged against its KPIs.
pub const KPI_MIN_IMPRESSIONS: u64 = 1_000;

/// The campaign's KPIs that its measurements fall short of, in words; empty while there is too
/// little data to judge (see [`KPI_MIN_IMPRESSIONS`]; cost per order is judged from the first
/// order, or as soon as spend alone exceeds the maximum).
pub fn shortfalls(campaign: &Campaign, counts: &Counts, rates: &Rates) -> Vec<String> {
    let kpi = &campaign.kpi;
    let mut out = Vec::new();
    let judged = counts.impressions >= KPI_MIN_IMPRESSIONS;
    let ctr = counts.clicks as f64 / counts.impressions.max(1) as f64;
    if let Some(min) = kpi.min_ctr.filter(|min| judged && ctr < *min) {
        out.push(format!(
            "ctr {:.3}% is below min_ctr {:.3}% after {} impressions",
            ctr * 100.0,
            min * 100.0,
            counts.impressions
        ));
    }
    if let Some(min) = kpi.min_margin.filter(|_| judged && counts.spend_usd > 0.0) {
        let margin = counts.revenue_usd / counts.spend_usd;
        if margin < min {
            out.push(format!(
                "margin {margin:.2} is below min_margin {min:.2} after {} impressions",
                counts.impressions
            ));
        }
    }
    if let (Some(min), Some(roas)) = (kpi.min_roas.filter(|_| judged), counts.roas())
        && roas < min
    {
        out.push(format!(
            "roas {roas:.2} is below min_roas {min:.2} after {} impressions",
            counts.impressions
        ));
    }
    let currency = campaign.pricing.currency;
    let spend = rates
        .convert(counts.spend_usd, Currency::USD, currency)
        .unwrap_or(0.0);
    if let Some(max) = kpi.max_cost_per_order {
        let per_order = spend / counts.conversions.max(1) as f64;
        if (counts.conversions > 0 || spend > max) && per_order > max {
            out.push(format!("cost per order {per_order:.2} {currency} is above max_cost_per_order {max:.2} after {} orders", counts.conversions));
        }
    }
    out
}

/// `successes / trials`, with the prior rate counting as `weight` trials of evidence.
/// A rate, so never above 1: conversions can outnumber the clicks measured (clicks lost to a
/// busy log, or replayed tokens), and clicks the impressions.
fn smooth(successes: u64, trials: u64, prior: f64, weight: f64) -> f64 {
    let (successes, trials) = (successes as f64, trials as f64);
    if trials + weight <= 0.0 {
        return prior;
    }
    ((successes + prior * weight) / (trials + weight)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn campaign(pricing: &str) -> Campaign {
        let text = format!(
            "adomain = [\"a.example\"]\n[pricing]\n{pricing}\n[[creative]]\nid = \"c\"\nformat = \"banner\"\nw = 1\nh = 1\nadm = \"x\"\nlanding = \"https://a.example/\""
        );
        crate::campaign::file::parse(&text, Path::new("shoes.toml"), &Rates::default()).unwrap()
    }

    fn event(kind: Kind) -> Event {
        Event {
            spend_usd: 0.001,
            ..Event::example(kind, "b", "2026-03-01T10:00:00Z")
        }
    }

    #[test]
    fn the_prior_holds_without_data_and_gives_way_to_measurement() {
        let learned = Learned::new(Priors {
            impressions: 1000.0,
            clicks: 100.0,
        });
        let cpc = campaign("model = \"cpc\"\ncpc = 0.5\nctr = 0.01\nmax_cpm = 50");
        assert!((learned.ecpm(&cpc) - 5.0).abs() < 1e-9);
        // 1000 impressions and 50 clicks measured: (50 + 10) / (1000 + 1000) = 3%.
        for i in 0..1000 {
            learned.observe(&event(Kind::Imp));
            if i % 20 == 0 {
                learned.observe(&event(Kind::Click));
            }
        }
        assert!(
            (learned.ecpm(&cpc) - 0.5 * 0.03 * 1000.0).abs() < 1e-9,
            "{}",
            learned.ecpm(&cpc)
        );
        assert_eq!(learned.counts("shoes").impressions, 1000);
        assert_eq!(learned.counts("other"), Counts::default());
        // The cap still holds.
        let capped = campaign("model = \"cpc\"\ncpc = 0.5\nctr = 0.01\nmax_cpm = 10");
        assert_eq!(learned.ecpm(&capped), 10.0);
    }

    #[test]
    fn kpis_are_judged_only_once_there_is_enough_data() {
        let mut c = campaign("model = \"cpm\"\ncpm = 2.0");
        c.kpi = crate::campaign::Kpi {
            min_ctr: Some(0.01),
            min_margin: Some(1.5),
            min_roas: Some(3.0),
            max_cost_per_order: Some(20.0),
        };
        let rates = Rates::default();
        let few = Counts {
            impressions: 999,
            clicks: 0,
            conversions: 0,
            spend_usd: 1.0,
            revenue_usd: 0.1,
            ..Counts::default()
        };
        assert!(shortfalls(&c, &few, &rates).is_empty());
        let enough = Counts {
            impressions: 2000,
            clicks: 10,
            conversions: 0,
            spend_usd: 4.0,
            revenue_usd: 4.0,
            ..Counts::default()
        };
        let found = shortfalls(&c, &enough, &rates);
        // No order value yet: ROAS 0 is below 3.
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[2].starts_with("roas 0.00 is below min_roas 3.00 after 2000 impressions"),
            "{found:?}"
        );
        // Orders worth 12.00 on 4.00 billed: ROAS 3, enough.
        let sold = Counts {
            gmv_usd: 12.0,
            ..enough
        };
        assert_eq!(shortfalls(&c, &sold, &rates).len(), 2);
        assert!(
            found[0].starts_with("ctr 0.500% is below min_ctr 1.000%"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("margin 1.00 is below min_margin 1.50"),
            "{found:?}"
        );
        // No order yet, but already more spent than one order may cost.
        let costly = Counts {
            spend_usd: 25.0,
            revenue_usd: 50.0,
            ..enough
        };
        assert!(
            shortfalls(&c, &costly, &rates)
                .iter()
                .any(|s| s.starts_with("cost per order 25.00 USD is above"))
        );
        let fine = Counts {
            impressions: 2000,
            clicks: 40,
            conversions: 2,
            spend_usd: 4.0,
            revenue_usd: 8.0,
            gmv_usd: 24.0,
            ..Counts::default()
        };
        assert!(shortfalls(&c, &fine, &rates).is_empty());
    }

    #[test]
    fn conversions_move_the_cvr_of_cps_campaigns_and_cpm_prices_never_move() {
        let learned = Learned::new(Priors {
            impressions: 1000.0,
            clicks: 100.0,
        });
        let cps = |max_cpm: u32| {
            campaign(&format!(
                "model = \"cps\"\ncommission = 0.1\norder_value = 100\ncvr = 0.02\nctr = 0.01\n\
                 max_cpm = {max_cpm}"
            ))
        };
        let (uncapped, capped) = (cps(1000), cps(50));
        // Priors alone: 0.1 × 100 × 2% × 1% × 1000.
        let before = learned.ecpm(&uncapped);
        assert!((before - 2.0).abs() < 1e-9, "{before}");
        for _ in 0..100 {
            learned.observe(&event(Kind::Click));
            learned.observe(&event(Kind::Conv));
        }
        // CVR (100 + 2) / (100 + 100) = 51%, CTR (100 + 10) / (0 + 1000) = 11%: 561 USD CPM,
        // under one max_cpm, held to the other.
        let expected: f64 = 0.1 * 100.0 * 0.51 * 0.11 * 1000.0;
        assert!((learned.ecpm(&uncapped) - expected).abs() < 1e-9);
        assert_eq!(learned.ecpm(&capped), 50.0);
        let cpm = campaign("model = \"cpm\"\ncpm = 2.0");
        assert_eq!(learned.ecpm(&cpm), 2.0);
    }
}
