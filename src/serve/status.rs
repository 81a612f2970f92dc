//! What `GET /status` (and `POST /admin/reload`) show an operator: the campaigns loaded and live
//! with what each measured, spent and falls short of; the files refused, with why, and those
//! pending (changed, not settled yet); whether the set is held (directory missing or emptied); the
//! taxonomy, the audience packages and the profile store.
//!
//! Typed views built from one snapshot: they read, never change anything, and run on the admin
//! port only (a snapshot of 100,000 campaigns is a large answer).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::app::App;
use crate::audience::Library;
use crate::book::learning;
use crate::book::ranking::Ranked;
use crate::book::store::{Snapshot, Store};
use crate::campaign::pricing::Currency;
use crate::campaign::{Campaign, Pacing, taxonomy};

#[derive(Serialize)]
pub struct Status<'a> {
    generation: u64,
    loaded_at: String,
    reload_ms: f64,
    campaigns_loaded: usize,
    campaigns_live: usize,
    live: Vec<&'a str>,
    /// Why the campaign set is held as it was (the directory missing or emptied), or null.
    held: Option<&'a str>,
    /// Campaign files read by the reload that made this snapshot (unchanged ones are not).
    files_read: usize,
    refused: Vec<Refused>,
    pending: Vec<PendingFile>,
    campaigns: Vec<CampaignView<'a>>,
    taxonomy: Option<Taxonomy>,
    audiences: Audiences<'a>,
    profiles: serde_json::Value,
}

/// A file refused by the last reload, and whether its last good version still serves.
#[derive(Serialize)]
struct Refused {
    path: String,
    errors: Vec<String>,
    serving_last_good: bool,
}

/// A campaign file changed but not read yet (not stood still for the quiet period), and whether
/// its last good version serves meanwhile.
#[derive(Serialize)]
struct PendingFile {
    path: String,
    why: &'static str,
    serving_last_good: bool,
}

/// A live campaign: its current price, what it measured, and the KPIs it falls short of.
#[derive(Serialize)]
struct CampaignView<'a> {
    id: &'a str,
    ecpm: f64,
    currency: String,
    impressions: u64,
    clicks: u64,
    conversions: u64,
    spend_usd: f64,
    revenue_usd: f64,
    /// The orders' value, USD, and its ratio to what the advertiser is billed.
    gmv_usd: f64,
    roas: Option<f64>,
    kpi_alerts: Vec<String>,
    budget: Option<Budget>,
    /// Best first: the order creatives are served in when several fit.
    creatives: Vec<CreativeView<'a>>,
}

#[derive(Serialize)]
struct CreativeView<'a> {
    id: &'a str,
    impressions: u64,
    clicks: u64,
    ctr: f64,
}

/// A campaign's budget: its limits, and what it spent and holds, in its currency.
#[derive(Serialize)]
struct Budget {
    daily: Option<f64>,
    total: Option<f64>,
    pacing: &'static str,
    spent_today: f64,
    spent_total: f64,
    held: f64,
    pass_rate: f64,
    /// Where even pacing's line puts use (spent and held) by now; `null` before its first plan
    /// of the day, or under asap.
    pacing_line: Option<f64>,
}

#[derive(Serialize)]
struct Taxonomy {
    tags: usize,
}

#[derive(Serialize)]
struct Audiences<'a> {
    packages: Vec<Package<'a>>,
    refused: Vec<RefusedPackage>,
}

#[derive(Serialize)]
struct Package<'a> {
    name: &'a str,
    path: String,
    keys: &'static str,
    users: usize,
    bytes: usize,
}

#[derive(Serialize)]
struct RefusedPackage {
    path: String,
    error: String,
    serving_last_good: bool,
}

impl<'a> Status<'a> {
    /// The status of `snapshot` (the current one, or the one a reload just made) at `now`.
    pub fn of(app: &App, snapshot: &'a Snapshot, now: DateTime<Utc>) -> Status<'a> {
        let store = &*app.store;
        let refused = snapshot
            .refused
            .iter()
            .map(|e| {
                let taxonomy = e.path.file_name().is_some_and(|n| n == taxonomy::FILE);
                Refused {
                    path: e.path.display().to_string(),
                    errors: e.to_string().lines().map(str::to_owned).collect(),
                    serving_last_good: snapshot.files.contains_key(&e.path)
                        || (taxonomy && snapshot.taxonomy.is_some()),
                }
            })
            .collect();
        let mut profiles = app.profiles.status();
        profiles["files"] = app.profile_files.status();
        Status {
            generation: snapshot.generation,
            loaded_at: snapshot.loaded_at.to_rfc3339(),
            reload_ms: snapshot.took.as_secs_f64() * 1000.0,
            campaigns_loaded: snapshot.files.len(),
            campaigns_live: snapshot.ranked.len(),
            live: snapshot
                .ranked
                .iter()
                .map(|r| r.campaign.id.as_str())
                .collect(),
            held: snapshot.held.as_deref(),
            files_read: snapshot.files_read,
            refused,
            pending: (snapshot.pending.iter())
                .map(|p| PendingFile {
                    path: p.path.display().to_string(),
                    why: p.why,
                    serving_last_good: p.serving_last_good,
                })
                .collect(),
            campaigns: (snapshot.ranked.iter())
                .map(|r| CampaignView::of(store, r, now))
                .collect(),
            taxonomy: (snapshot.taxonomy.as_ref()).map(|t| Taxonomy {
                tags: t.tags().len(),
            }),
            audiences: Audiences::of(&snapshot.audiences),
            profiles,
        }
    }
}

impl<'a> CampaignView<'a> {
    fn of(store: &Store, ranked: &'a Ranked, now: DateTime<Utc>) -> CampaignView<'a> {
        let Ranked {
            campaign,
            ecpm,
            creatives,
            ..
        } = ranked;
        let learned = store.learned();
        let counts = learned.counts(&campaign.id);
        let creatives = creatives
            .iter()
            .filter_map(|&i| campaign.creatives.get(i))
            .map(|k| {
                let c = learned.creative_counts(&campaign.id, &k.id);
                CreativeView {
                    id: &k.id,
                    impressions: c.impressions,
                    clicks: c.clicks,
                    ctr: learned.creative_ctr(campaign, &k.id),
                }
            })
            .collect();
        CampaignView {
            id: &campaign.id,
            ecpm: *ecpm,
            currency: campaign.pricing.currency.to_string(),
            impressions: counts.impressions,
            clicks: counts.clicks,
            conversions: counts.conversions,
            spend_usd: counts.spend_usd,
            revenue_usd: counts.revenue_usd,
            gmv_usd: counts.gmv_usd,
            roas: counts.roas(),
            kpi_alerts: learning::shortfalls(campaign, &counts, store.rates()),
            budget: Budget::of(store, campaign, now),
            creatives,
        }
    }
}

impl Budget {
    fn of(store: &Store, campaign: &Campaign, now: DateTime<Utc>) -> Option<Budget> {
        let budget = campaign.budget.as_ref()?;
        let state = store.pacer().state(campaign, now).unwrap_or_default();
        let local = |usd: f64| {
            store
                .rates()
                .convert(usd, Currency::USD, campaign.pricing.currency)
                .unwrap_or(0.0)
        };
        Some(Budget {
            daily: budget.daily,
            total: budget.total,
            pacing: match budget.pacing {
                Pacing::Even => "even",
                Pacing::Asap => "asap",
            },
            spent_today: local(state.spent_today_usd),
            spent_total: local(state.spent_total_usd),
            held: local(state.held_usd),
            pass_rate: state.pass_rate,
            pacing_line: state.line_usd.map(local),
        })
    }
}

impl<'a> Audiences<'a> {
    /// Each loaded package, and the files refused with why.
    fn of(library: &'a Library) -> Audiences<'a> {
        Audiences {
            packages: library
                .packages()
                .map(|p| Package {
                    name: &p.name,
                    path: p.path.display().to_string(),
                    keys: p.form.name(),
                    users: p.users(),
                    bytes: p.bytes(),
                })
                .collect(),
            refused: library
                .refused
                .iter()
                .map(|e| RefusedPackage {
                    path: e.path.display().to_string(),
                    error: e.to_string(),
                    serving_last_good: library.packages().any(|p| p.path == e.path),
                })
                .collect(),
        }
    }
}
