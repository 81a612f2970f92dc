//! The campaign file: TOML written by people, checked strictly, compiled to a [`Campaign`].
//!
//! Strictness is the point: an unknown key is an error (a typo must never silently widen targeting),
//! and every value is checked for meaning, not just type. All problems in a file are reported at once,
//! each at the line and column of the value at fault. Runs off the request path (at reload and in
//! `precis check`); it reads one string and returns plain data, never touching shared state.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use toml::value::{Datetime, Offset};

use super::{
    Budget, Campaign, Creative, CreativeFormat, Frequency, Kpi, Limits, Pacing, VAST_VERSIONS,
    VideoFile, Window,
};
use crate::audience::Rule;
use crate::campaign::pricing::{Currency, Model, Pricing, Rates};
use crate::campaign::targeting::{CONNECTIONS, Circle, Codes, Targeting, Term, Week};
use crate::campaign::taxonomy::Taxonomy;
use crate::clock::at_local;
use crate::diagnostic::{Diagnostic, FileError, for_people, path_at};
use crate::forms::{category_form, host_form, normalize_os, tag_form, valid_id};
use crate::request::facts::Gender;
use crate::request::geo::{Country, Point, Region};
use crate::request::openrtb::DEVICE_TYPES;

type List<T> = Option<Spanned<Vec<T>>>;

/// A list key that is present and not empty (`tags_all = []` means the same as leaving it out).
fn set<T>(list: &List<T>) -> Option<&Spanned<Vec<T>>> {
    list.as_ref().filter(|l| !l.get_ref().is_empty())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    id: Option<Spanned<String>>,
    name: Option<String>,
    advertiser: Option<String>,
    adomain: List<String>,
    cat: List<String>,
    status: Option<Status>,
    start: Option<Spanned<Datetime>>,
    end: Option<Spanned<Datetime>>,
    timezone: Option<Spanned<String>>,
    pricing: Spanned<PricingFile>,
    targeting: Option<TargetingFile>,
    creative: List<Spanned<CreativeFile>>,
    kpi: Option<KpiFile>,
    budget: Option<Spanned<BudgetFile>>,
    frequency: Option<Spanned<FrequencyFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KpiFile {
    min_ctr: Option<Spanned<f64>>,
    #[serde(alias = "min_roi")]
    min_margin: Option<Spanned<f64>>,
    min_roas: Option<Spanned<f64>>,
    max_cost_per_order: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetFile {
    daily: Option<Spanned<f64>>,
    total: Option<Spanned<f64>>,
    /// Read as text and checked by hand, so a wrong value gets a message naming the choices.
    pacing: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrequencyFile {
    /// A number, so that `3.5` is told it must be whole rather than that it is not an integer.
    impressions: Option<Spanned<f64>>,
    per: Option<Spanned<String>>,
    stop_after_conversion: Option<bool>,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Active,
    Paused,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ModelName {
    Cpm,
    Cpc,
    Cps,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PricingFile {
    model: ModelName,
    currency: Option<Spanned<String>>,
    cpm: Option<Spanned<f64>>,
    cpc: Option<Spanned<f64>>,
    commission: Option<Spanned<f64>>,
    order_value: Option<Spanned<f64>>,
    ctr: Option<Spanned<f64>>,
    cvr: Option<Spanned<f64>>,
    max_cpm: Option<Spanned<f64>>,
    max_order_value: Option<Spanned<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TargetingFile {
    countries: List<String>,
    regions: List<String>,
    cities: List<String>,
    near: List<NearFile>,
    days: List<String>,
    hours: List<Vec<i64>>,
    device_types: List<String>,
    os: List<String>,
    connection: List<String>,
    #[serde(alias = "tags")]
    tags_any: List<String>,
    tags_all: List<String>,
    categories: List<String>,
    age: List<i64>,
    gender: List<String>,
    sites: List<String>,
    apps: List<String>,
    /// Audience packages by name (`audiences` in `[targeting.exclude]`).
    #[serde(alias = "audiences")]
    audiences_any: List<String>,
    exclude: Option<Spanned<Box<TargetingFile>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NearFile {
    lat: f64,
    lon: f64,
    km: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreativeFile {
    id: Spanned<String>,
    format: FormatName,
    w: Option<Spanned<u32>>,
    h: Option<Spanned<u32>>,
    adm: Spanned<String>,
    landing: Spanned<String>,
    /// Video only: media content type, length in seconds, VAST version.
    mime: Option<Spanned<String>>,
    duration: Option<Spanned<u32>>,
    vast: Option<Spanned<String>>,
    /// Served only to users in one of these audience packages.
    audiences_any: List<String>,
}

/// A creative's `format` as the file names it.
#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum FormatName {
    Banner,
    Video,
    Native,
}

/// What a campaign file is checked against besides itself.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The currencies precis can price in.
    pub rates: &'a Rates,
    /// The tag tree (`taxonomy.toml`): tags outside it are refused. `None`: any tag.
    pub taxonomy: Option<&'a Taxonomy>,
    /// The audience packages there are: other names are refused. `None`: names are not checked.
    pub audiences: Option<&'a BTreeSet<String>>,
    /// How large a creative's markup may be (the file's own size is checked before it is read).
    pub limits: Limits,
}

/// Parses, checks and compiles one campaign file, without a taxonomy or audience packages to check
/// against (see [`parse_in`]).
pub fn parse(source: &str, path: &Path, rates: &Rates) -> Result<Campaign, FileError> {
    let context = Context {
        rates,
        taxonomy: None,
        audiences: None,
        limits: Limits::default(),
    };
    parse_in(source, path, &context)
}

/// Parses, checks and compiles one campaign file. `path` names the file in errors and gives the
/// default id (its stem).
pub fn parse_in(source: &str, path: &Path, context: &Context) -> Result<Campaign, FileError> {
    let mut check = Checker {
        source,
        context: *context,
        diagnostics: Vec::new(),
        refused: Vec::new(),
        removed: Vec::new(),
    };
    let campaign = check
        .read(source)
        .and_then(|file| check.compile(file, path, context.rates));
    check.diagnostics.sort_by_key(|d| (d.line, d.col));
    if check.diagnostics.len() > MAX_DIAGNOSTICS {
        check.diagnostics.truncate(MAX_DIAGNOSTICS);
        check.diagnostics.push(Diagnostic {
            line: 1,
            col: 1,
            message: format!("too many problems: only {MAX_DIAGNOSTICS} are listed"),
        });
    }
    match campaign {
        Some(campaign) if check.diagnostics.is_empty() => Ok(campaign),
        _ => Err(FileError {
            path: path.to_owned(),
            diagnostics: check.diagnostics,
        }),
    }
}

/// Problems listed per file, at most. Past that the file is not read further: each problem costs
/// a pass over the whole document, so thousands of them (a file of stray keys) took seconds.
const MAX_DIAGNOSTICS: usize = 100;

const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

struct Checker<'s> {
    source: &'s str,
    context: Context<'s>,
    diagnostics: Vec<Diagnostic>,
    /// Top-level keys (tables) an entry was refused from while reading: what is missing from
    /// them may have been written and refused, so it is not reported as missing too.
    refused: Vec<String>,
    /// The entries taken out while reading, by path (`pricing.cpm`): a key refused for its value
    /// was written, so its table is not also said to miss it.
    removed: Vec<String>,
}

impl Checker<'_> {
    /// The file's structure. Serde stops at the first unknown key or wrong type; to report them all,
    /// each entry at fault is recorded, taken out of the document, and the rest read again.
    fn read(&mut self, source: &str) -> Option<File> {
        let mut document = match DeTable::parse(source) {
            Ok(document) => document,
            Err(e) => {
                self.error(e.span().unwrap_or(0..0), e.message().trim_end());
                return None;
            }
        };
        loop {
            match File::deserialize(toml::de::Deserializer::from(document.clone())) {
                Ok(file) => return Some(file),
                Err(e) => {
                    let span = e.span().unwrap_or(0..0);
                    let message = e.message().trim_end();
                    let path = path_at(document.get_ref(), &span);
                    let follow_on = message
                        .strip_prefix("missing field ")
                        .map(|field| [&path[..], &[field.trim_matches('`').to_owned()]].concat())
                        .is_some_and(|missing| self.removed.contains(&missing.join(".")));
                    if !follow_on {
                        self.error(span.clone(), for_people(message, &path));
                    }
                    if let Some(key) = path.first() {
                        self.refused.push(key.clone());
                    }
                    if self.diagnostics.len() > MAX_DIAGNOSTICS
                        || !remove_entry_at(document.get_mut(), &span)
                    {
                        return None;
                    }
                    self.removed.push(path.join("."));
                }
            }
        }
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        if self.diagnostics.len() > MAX_DIAGNOSTICS {
            return; // Enough to say there are more; placing each costs a scan of the file.
        }
        self.diagnostics
            .push(Diagnostic::at(self.source, span.start, message.into()));
    }

    /// Every error is recorded; `None` only when the file is too broken to describe a campaign at all.
    fn compile(&mut self, file: File, path: &Path, rates: &Rates) -> Option<Campaign> {
        let id = match &file.id {
            Some(id) => {
                if !valid_id(id.get_ref()) {
                    self.error(
                        id.span(),
                        format!(
                            "campaign id `{}` may only use letters, digits, '.', '_' and '-'",
                            id.get_ref()
                        ),
                    );
                }
                id.get_ref().clone()
            }
            None => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !valid_id(&stem) {
                    self.error(0..0, format!("file name `{stem}` is not a valid campaign id (letters, digits, '.', '_', '-'): rename the file or set `id`"));
                }
                stem
            }
        };

        let timezone = match &file.timezone {
            None => Tz::UTC,
            Some(tz) => tz.get_ref().parse::<Tz>().unwrap_or_else(|_| {
                self.error(
                    tz.span(),
                    format!(
                        "unknown time zone `{}` (use an IANA name such as \"Asia/Shanghai\")",
                        tz.get_ref()
                    ),
                );
                Tz::UTC
            }),
        };
        let start = file
            .start
            .as_ref()
            .and_then(|s| self.instant(s, timezone, false));
        let end = file
            .end
            .as_ref()
            .and_then(|e| self.instant(e, timezone, true));
        if let (Some(s), Some(e), Some(end_at)) = (start, end, &file.end)
            && e < s
        {
            self.error(end_at.span(), "`end` is before `start`");
        }

        let adomain = match &file.adomain {
            Some(list) if !list.get_ref().is_empty() => self.each(list, "advertiser domain", |d| {
                host_form(d).filter(|h| h.contains('.'))
            }),
            _ => {
                self.error(0..0, "`adomain` is required: the advertiser's domains, which exchanges check against their block lists");
                Vec::new()
            }
        };
        let cat = file
            .cat
            .as_ref()
            .map(|list| self.each(list, "category", category_form))
            .unwrap_or_default();
        let pricing = self.pricing(&file.pricing, rates);
        let mut targeting = Targeting::default();
        let mut audiences = Rule::default();
        if let Some(t) = &file.targeting {
            targeting.include = self.terms(t, timezone);
            audiences.any = self.audiences(&t.audiences_any);
            if let Some(exclude) = &t.exclude {
                if exclude.get_ref().exclude.is_some() {
                    self.error(
                        exclude.span(),
                        "`exclude` cannot be nested inside `exclude`",
                    );
                }
                targeting.exclude = self.terms(exclude.get_ref(), timezone);
                audiences.none = self.audiences(&exclude.get_ref().audiences_any);
            }
        }
        let creatives = self.creatives(&file.creative);
        let kpi = file.kpi.as_ref().map(|k| self.kpi(k)).unwrap_or_default();
        // An `end` refused for its type was still meant: do not also ask for one.
        let has_end = file.end.is_some() || self.refused.iter().any(|k| k == "end");
        let budget = file.budget.as_ref().and_then(|b| self.budget(b, has_end));
        let frequency = file.frequency.as_ref().and_then(|f| self.frequency(f));

        Some(Campaign {
            name: file.name.unwrap_or_else(|| id.clone()),
            id,
            advertiser: file.advertiser.unwrap_or_default(),
            adomain,
            cat,
            active: file.status.is_none_or(|s| s == Status::Active),
            start,
            end,
            timezone,
            pricing: pricing?,
            targeting,
            audiences,
            creatives,
            kpi,
            budget,
            frequency,
            path: path.to_owned(),
        })
    }

    /// A TOML date or date-time as an instant. Without an offset it is local to the campaign's time
    /// zone; a bare date means the start of that day, or its last moment for `end`.
    fn instant(&mut self, value: &Spanned<Datetime>, tz: Tz, end: bool) -> Option<DateTime<Utc>> {
        let dt = value.get_ref();
        let Some(date) = dt.date else {
            self.error(
                value.span(),
                "a time of day needs a date (write e.g. 2026-03-01T08:00:00+08:00)",
            );
            return None;
        };
        let day = NaiveDate::from_ymd_opt(date.year.into(), date.month.into(), date.day.into())?;
        let time = match dt.time {
            Some(t) => NaiveTime::from_hms_nano_opt(
                t.hour.into(),
                t.minute.into(),
                t.second.unwrap_or(0).into(),
                t.nanosecond.unwrap_or(0),
            )?,
            None if end => NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999)?,
            None => NaiveTime::MIN,
        };
        let local = day.and_time(time);
        let instant = match dt.offset {
            Some(Offset::Z) => Some(local.and_utc()),
            Some(Offset::Custom { minutes }) => FixedOffset::east_opt(i32::from(minutes) * 60)
                .and_then(|o| o.from_local_datetime(&local).single())
                .map(|t| t.with_timezone(&Utc)),
            None => at_local(local, tz),
        };
        if instant.is_none() {
            self.error(
                value.span(),
                format!("`{dt}` does not exist in time zone {tz}"),
            );
        }
        instant
    }

    fn pricing(&mut self, pricing: &Spanned<PricingFile>, rates: &Rates) -> Option<Pricing> {
        let p = pricing.get_ref();
        let (model_name, used): (&str, &[&str]) = match p.model {
            ModelName::Cpm => ("cpm", &["cpm"]),
            ModelName::Cpc => ("cpc", &["cpc", "ctr"]),
            ModelName::Cps => ("cps", &["commission", "order_value", "cvr", "ctr"]),
        };
        let fields = [
            ("cpm", &p.cpm, Bound::Positive),
            ("cpc", &p.cpc, Bound::Positive),
            ("commission", &p.commission, Bound::Rate),
            ("order_value", &p.order_value, Bound::Positive),
            ("ctr", &p.ctr, Bound::Rate),
            ("cvr", &p.cvr, Bound::Rate),
        ];
        let mut ok = true;
        for (name, value, bound) in fields {
            match value {
                Some(v) if !used.contains(&name) => {
                    self.error(
                        v.span(),
                        format!("`{name}` is not used by model \"{model_name}\""),
                    );
                    ok = false;
                }
                Some(v) => ok &= self.bounded(name, v, bound),
                None if used.contains(&name) => {
                    // Written but refused for its value: said already.
                    if !self.removed.contains(&format!("pricing.{name}")) {
                        self.error(
                            pricing.span(),
                            format!("model \"{model_name}\" needs `{name}`"),
                        );
                    }
                    ok = false;
                }
                None => {}
            }
        }
        let max_cpm = match (&p.max_cpm, p.model) {
            (Some(v), _) => {
                ok &= self.bounded("max_cpm", v, Bound::Positive);
                *v.get_ref()
            }
            (None, ModelName::Cpm) => p.cpm.as_ref().map_or(0.0, |c| *c.get_ref()),
            (None, _) => {
                self.error(pricing.span(), format!("model \"{model_name}\" needs `max_cpm`: the most it may ever bid per thousand impressions"));
                ok = false;
                0.0
            }
        };
        if let Some(v) = &p.max_order_value {
            ok &= self.bounded("max_order_value", v, Bound::Positive);
        }
        let currency = match &p.currency {
            None => Currency::USD,
            Some(text) => {
                match Currency::parse(text.get_ref()) {
                    Some(c) if rates.knows(c) => c,
                    Some(c) => {
                        self.error(text.span(), format!("no exchange rate for `{c}`: add it under [currencies] in precis.toml"));
                        return None;
                    }
                    None => {
                        self.error(
                            text.span(),
                            format!("`{}` is not an ISO-4217 currency code", text.get_ref()),
                        );
                        return None;
                    }
                }
            }
        };
        if !ok {
            return None;
        }
        let get = |v: &Option<Spanned<f64>>| v.as_ref().map_or(0.0, |v| *v.get_ref());
        let model = match p.model {
            ModelName::Cpm => Model::Cpm { cpm: get(&p.cpm) },
            ModelName::Cpc => Model::Cpc {
                cpc: get(&p.cpc),
                ctr: get(&p.ctr),
            },
            ModelName::Cps => Model::Cps {
                commission: get(&p.commission),
                order_value: get(&p.order_value),
                cvr: get(&p.cvr),
                ctr: get(&p.ctr),
            },
        };
        Some(Pricing {
            model,
            max_cpm,
            currency,
            max_order_value: p.max_order_value.as_ref().map(|v| *v.get_ref()),
        })
    }

    fn kpi(&mut self, k: &KpiFile) -> Kpi {
        let mut read = |name: &str, value: &Option<Spanned<f64>>, bound: Bound| {
            value
                .as_ref()
                .filter(|v| self.bounded(name, v, bound))
                .map(|v| *v.get_ref())
        };
        Kpi {
            min_ctr: read("min_ctr", &k.min_ctr, Bound::Rate),
            min_margin: read("min_margin", &k.min_margin, Bound::Positive),
            min_roas: read("min_roas", &k.min_roas, Bound::Positive),
            max_cost_per_order: read("max_cost_per_order", &k.max_cost_per_order, Bound::Positive),
        }
    }

    /// `[budget]`. `has_end`: the campaign sets an `end` (even pacing of a total needs one).
    fn budget(&mut self, budget: &Spanned<BudgetFile>, has_end: bool) -> Option<Budget> {
        let table = budget.span();
        let b = budget.get_ref();
        // A key refused while reading (a wrong type) is gone from `b`: do not also call it missing.
        let intact = !self.refused.iter().any(|k| k == "budget");
        let mut ok = intact;
        let mut read = |name: &str, value: &Option<Spanned<f64>>| {
            value.as_ref().and_then(|v| {
                let good = self.bounded(name, v, Bound::Positive);
                ok &= good;
                good.then(|| *v.get_ref())
            })
        };
        let daily = read("daily", &b.daily);
        let total = read("total", &b.total);
        if intact && b.daily.is_none() && b.total.is_none() {
            self.error(
                table.clone(),
                "[budget] sets no limit: give `daily`, `total` or both",
            );
            ok = false;
        }
        let pacing = match &b.pacing {
            None => Some(Pacing::Even),
            Some(p) => match p.get_ref().trim().to_ascii_lowercase().as_str() {
                "even" => Some(Pacing::Even),
                "asap" => Some(Pacing::Asap),
                _ => {
                    self.error(
                        p.span(),
                        format!(
                            "`pacing` must be \"even\" (spread over the day) or \"asap\" (as fast as traffic allows), not `{}`",
                            p.get_ref()
                        ),
                    );
                    None
                }
            },
        };
        if intact
            && pacing == Some(Pacing::Even)
            && b.daily.is_none()
            && b.total.is_some()
            && !has_end
        {
            let at = b.pacing.as_ref().map_or(table, |p| p.span());
            self.error(
                at,
                "even pacing spreads the daily budget over the day, or the total over the flight, \
                 but this campaign has no `daily` and no `end`: set `daily`, or an `end`, or pacing = \"asap\"",
            );
            ok = false;
        }
        let pacing = pacing?;
        ok.then_some(Budget {
            daily,
            total,
            pacing,
        })
    }

    /// `[frequency]`.
    fn frequency(&mut self, frequency: &Spanned<FrequencyFile>) -> Option<Frequency> {
        let table = frequency.span();
        let f = frequency.get_ref();
        let intact = !self.refused.iter().any(|k| k == "frequency");
        let mut ok = intact;
        let impressions = f.impressions.as_ref().and_then(|n| {
            let v = *n.get_ref();
            if v.fract() == 0.0 && (1.0..=f64::from(u32::MAX)).contains(&v) {
                Some(v as u32)
            } else {
                self.error(
                    n.span(),
                    format!("`impressions` must be a whole number, at least 1, not {v}"),
                );
                ok = false;
                None
            }
        });
        let per = match &f.per {
            None => Window::Day,
            Some(p) => {
                let window = match p.get_ref().trim().to_ascii_lowercase().as_str() {
                    "hour" => Some(Window::Hour),
                    "day" => Some(Window::Day),
                    "week" => Some(Window::Week),
                    "flight" => Some(Window::Flight),
                    _ => None,
                };
                if window.is_none() {
                    self.error(
                        p.span(),
                        format!(
                            "`per` must be \"hour\", \"day\", \"week\" (Monday to Sunday) or \"flight\" (the whole campaign), not `{}`",
                            p.get_ref()
                        ),
                    );
                    ok = false;
                }
                if intact && f.impressions.is_none() {
                    self.error(
                        p.span(),
                        "`per` has nothing to apply to: set `impressions`, the most one user may see the campaign per window",
                    );
                    ok = false;
                }
                window.unwrap_or(Window::Day)
            }
        };
        let stop_after_conversion = f.stop_after_conversion.unwrap_or(false);
        if intact && f.impressions.is_none() && !stop_after_conversion {
            self.error(
                table,
                "[frequency] sets no cap: give `impressions` (per user, per `per`), or stop_after_conversion = true",
            );
            ok = false;
        }
        ok.then_some(Frequency {
            impressions,
            per,
            stop_after_conversion,
        })
    }

    fn bounded(&mut self, name: &str, value: &Spanned<f64>, bound: Bound) -> bool {
        let v = *value.get_ref();
        let ok = match bound {
            Bound::Positive => v.is_finite() && v > 0.0,
            Bound::Rate => v > 0.0 && v <= 1.0,
        };
        if !ok {
            let want = match bound {
                Bound::Positive => "a positive number",
                Bound::Rate => "a rate above 0 and at most 1 (1% is 0.01)",
            };
            self.error(value.span(), format!("`{name}` must be {want}, not {v}"));
        }
        ok
    }

    /// Each value of a list, read by `read`; one error per value it cannot read.
    fn each<T>(
        &mut self,
        list: &Spanned<Vec<String>>,
        what: &str,
        read: impl Fn(&str) -> Option<T>,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(list.get_ref().len());
        for value in list.get_ref() {
            match read(value) {
                Some(v) => out.push(v),
                None => self.error(
                    self.element(list, value),
                    format!("unknown {what} `{value}`"),
                ),
            }
        }
        out
    }

    fn codes(
        &mut self,
        list: &Spanned<Vec<String>>,
        what: &str,
        table: &[(&str, &[u32])],
    ) -> Codes {
        Codes::from_names(table, list.get_ref().iter().map(String::as_str)).unwrap_or_else(|bad| {
            let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            self.error(
                list.span(),
                format!("unknown {what} `{bad}` (one of: {})", known.join(", ")),
            );
            Codes::default()
        })
    }

    /// Where `value`, one element of `list`, is written: so that a campaign manager is pointed at
    /// the very element, not at the list. The whole list when it cannot be found as written (an
    /// escaped string).
    fn element(&self, list: &Spanned<Vec<String>>, value: &str) -> Range<usize> {
        let span = list.span();
        self.source
            .get(span.clone())
            .and_then(|written| written.find(value))
            .map_or(span.clone(), |at| {
                span.start + at..span.start + at + value.len()
            })
    }

    /// Tags in their compared form; with a taxonomy, each must be one of its tags.
    fn tags(&mut self, list: &Spanned<Vec<String>>) -> Vec<String> {
        let tags = self.each(list, "tag", tag_form);
        let Some(taxonomy) = self.context.taxonomy else {
            return tags;
        };
        for written in list.get_ref() {
            let Some(tag) = tag_form(written).filter(|t| !taxonomy.contains(t)) else {
                continue;
            };
            let hint = taxonomy
                .suggest(&tag)
                .map(|s| format!(": did you mean `{s}`?"))
                .unwrap_or_default();
            self.error(
                self.element(list, written),
                format!("tag `{tag}` is not in the taxonomy{hint}"),
            );
        }
        tags
    }

    /// Audience package names; each must be a package there is, when those are known.
    fn audiences(&mut self, list: &List<String>) -> Vec<String> {
        let Some(list) = set(list) else {
            return Vec::new();
        };
        let known = self.context.audiences;
        let names = self.each(list, "audience package name", |n| {
            Some(n.trim().to_owned()).filter(|n| valid_id(n))
        });
        for name in &names {
            if known.is_some_and(|known| !known.contains(name)) {
                self.error(
                    self.element(list, name),
                    format!("unknown audience package `{name}`: no audiences/{name}.txt or .csv is loaded"),
                );
            }
        }
        names
    }

    /// The terms of one `[targeting]` or `[targeting.exclude]` table, one per non-empty key.
    fn terms(&mut self, t: &TargetingFile, tz: Tz) -> Vec<Term> {
        let mut terms = Vec::new();
        let lower = |s: &str| Some(s.trim().to_lowercase()).filter(|s| !s.is_empty());

        // Cheap and selective terms first: evaluation stops at the first that fails.
        if let Some(l) = set(&t.countries) {
            terms.push(Term::Countries(self.each(l, "country", Country::parse)));
        }
        if let Some(l) = set(&t.device_types) {
            terms.push(Term::DeviceTypes(self.codes(
                l,
                "device type",
                DEVICE_TYPES,
            )));
        }
        if let Some(l) = set(&t.connection) {
            terms.push(Term::Connection(self.codes(l, "connection", CONNECTIONS)));
        }
        if let Some(l) = set(&t.os) {
            terms.push(Term::Os(self.each(l, "os", |s| {
                Some(normalize_os(s)).filter(|s| !s.is_empty())
            })));
        }
        if let Some(l) = set(&t.gender) {
            terms.push(Term::Gender(self.each(
                l,
                "gender (m, f, o)",
                Gender::parse,
            )));
        }
        if let Some(age) = set(&t.age) {
            match age.get_ref()[..] {
                [min, max] if 0 <= min && min <= max && max <= 150 => terms.push(Term::Age {
                    min: min as u32,
                    max: max as u32,
                }),
                _ => self.error(
                    age.span(),
                    "`age` must be [min, max] in years, inclusive, with min <= max",
                ),
            }
        }
        if let Some(l) = set(&t.regions) {
            let read = |s: &str| {
                let region = Region::parse(s)?;
                let has_prefix = s.trim().split_once('-').is_some_and(|(p, _)| p.len() == 2);
                (!has_prefix || region.country.is_some()).then_some(region)
            };
            terms.push(Term::Regions(self.each(l, "region", read)));
        }
        if let Some(l) = set(&t.cities) {
            terms.push(Term::Cities(self.each(l, "city", lower)));
        }
        if let Some(l) = set(&t.sites) {
            terms.push(Term::Sites(self.each(l, "site domain", host_form)));
        }
        if let Some(l) = set(&t.apps) {
            terms.push(Term::Apps(self.each(l, "app bundle", lower)));
        }
        if let Some(l) = set(&t.categories) {
            terms.push(Term::Categories(self.each(l, "category", category_form)));
        }
        if let Some(l) = set(&t.tags_any) {
            terms.push(Term::TagsAny(self.tags(l)));
        }
        if let Some(l) = set(&t.tags_all) {
            terms.push(Term::TagsAll(self.tags(l)));
        }
        let days = set(&t.days).map(|l| {
            self.each(l, "day (mon … sun)", |d| {
                let d = d.trim().to_ascii_lowercase();
                DAYS.iter()
                    .position(|full| d == *full || d == full[..3])
                    .map(|i| i as u32)
            })
        });
        let hours = set(&t.hours).map(|h| {
            let mut ranges = Vec::new();
            for range in h.get_ref() {
                match range[..] {
                    [from, to] if 0 <= from && from < to && to <= 24 => {
                        ranges.push((from as u32, to as u32))
                    }
                    _ => self.error(
                        h.span(),
                        format!("hours {range:?} must be [from, to) with 0 <= from < to <= 24"),
                    ),
                }
            }
            ranges
        });
        if days.is_some() || hours.is_some() {
            let week = Week::new(&days.unwrap_or_default(), &hours.unwrap_or_default());
            terms.push(Term::Schedule { week, tz });
        }
        if let Some(near) = &t.near {
            let mut circles = Vec::new();
            for n in near.get_ref() {
                match Point::new(n.lat, n.lon) {
                    Some(center) if n.km.is_finite() && n.km > 0.0 => {
                        circles.push(Circle { center, km: n.km })
                    }
                    _ => self.error(
                        near.span(),
                        format!(
                            "near: lat {} lon {} km {} must be a real point and a positive radius",
                            n.lat, n.lon, n.km
                        ),
                    ),
                }
            }
            if !circles.is_empty() {
                terms.push(Term::Near(circles));
            }
        }
        terms
    }

    fn creatives(&mut self, list: &List<Spanned<CreativeFile>>) -> Vec<Creative> {
        let Some(list) = set(list) else {
            self.error(0..0, "a campaign needs at least one [[creative]]");
            return Vec::new();
        };
        let mut creatives: Vec<Creative> = Vec::new();
        for c in list.get_ref() {
            let spot = c.span();
            let c = c.get_ref();
            let id = c.id.get_ref();
            if !valid_id(id) {
                self.error(
                    c.id.span(),
                    format!("creative id `{id}` may only use letters, digits, '.', '_' and '-'"),
                );
            } else if creatives.iter().any(|other| &other.id == id) {
                self.error(c.id.span(), format!("creative id `{id}` is used twice"));
            }
            let (w, h) = (
                c.w.as_ref().map(|w| *w.get_ref()),
                c.h.as_ref().map(|h| *h.get_ref()),
            );
            let sized = matches!((w, h), (Some(1..), Some(1..)));
            let format = match c.format {
                FormatName::Banner => {
                    if !sized {
                        self.error(
                            spot.clone(),
                            format!("banner creative `{id}` needs a size: w and h above 0"),
                        );
                    }
                    CreativeFormat::Banner
                }
                FormatName::Video => {
                    if !sized && (w.is_some() || h.is_some()) {
                        self.error(
                            spot.clone(),
                            format!("video creative `{id}` needs both w and h above 0, or neither"),
                        );
                    }
                    CreativeFormat::Video(self.video(c, spot.clone()))
                }
                FormatName::Native => {
                    if w.is_some() || h.is_some() {
                        self.error(spot.clone(), format!("native creative `{id}` takes no w or h: native ads are laid out by the app"));
                    }
                    CreativeFormat::Native
                }
            };
            if c.format != FormatName::Video {
                let video_only = [
                    ("mime", c.mime.as_ref().map(|v| v.span())),
                    ("duration", c.duration.as_ref().map(|v| v.span())),
                    ("vast", c.vast.as_ref().map(|v| v.span())),
                ];
                for (key, span) in video_only {
                    if let Some(span) = span {
                        self.error(span, format!("`{key}` is for video creatives only"));
                    }
                }
            }
            let adm = c.adm.get_ref();
            let max_adm = self.context.limits.max_adm_bytes;
            if adm.trim().is_empty() {
                self.error(c.adm.span(), format!("creative `{id}` has an empty `adm`"));
            } else if adm.len() > max_adm {
                self.error(
                    c.adm.span(),
                    format!(
                        "creative `{id}`: `adm` is {} bytes, over the limit of {max_adm} ([reload] max_adm_bytes): every bid carries it, so host images and video elsewhere and link to them",
                        adm.len()
                    ),
                );
            }
            let landing = c.landing.get_ref();
            let host = landing
                .strip_prefix("https://")
                .or_else(|| landing.strip_prefix("http://"))
                .and_then(host_form);
            // It goes into a Location header as it is: visible ASCII only (percent-encode the rest).
            if host.is_none() || !landing.bytes().all(|b| b.is_ascii_graphic()) {
                self.error(
                    c.landing.span(),
                    format!("`landing` must be an http(s) URL of visible ASCII (percent-encode the rest), not `{landing}`"),
                );
            }
            let audiences = self.audiences(&c.audiences_any);
            creatives.push(Creative {
                id: id.clone(),
                format,
                w,
                h,
                audiences,
                adm: super::markup::Markup::new(c.adm.get_ref()),
                landing: landing.clone(),
            });
        }
        creatives
    }

    /// A video creative's playback needs: all three are required, because a player that cannot
    /// play the creative makes the impression worthless.
    fn video(&mut self, c: &CreativeFile, spot: Range<usize>) -> VideoFile {
        let id = c.id.get_ref();
        let mime = match &c.mime {
            Some(m) if m.get_ref().contains('/') => m.get_ref().trim().to_ascii_lowercase(),
            Some(m) => {
                self.error(
                    m.span(),
                    format!(
                        "`mime` must be a content type such as \"video/mp4\", not `{}`",
                        m.get_ref()
                    ),
                );
                String::new()
            }
            None => {
                self.error(
                    spot.clone(),
                    format!("video creative `{id}` needs `mime` (e.g. \"video/mp4\")"),
                );
                String::new()
            }
        };
        let duration = match &c.duration {
            Some(d) if *d.get_ref() > 0 => *d.get_ref(),
            Some(d) => {
                self.error(d.span(), "`duration` must be a positive number of seconds");
                0
            }
            None => {
                self.error(
                    spot.clone(),
                    format!("video creative `{id}` needs `duration` in seconds"),
                );
                0
            }
        };
        let known = || {
            VAST_VERSIONS
                .iter()
                .map(|(v, _)| format!("\"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let protocol = match &c.vast {
            Some(v) => match VAST_VERSIONS
                .iter()
                .find(|(name, _)| *name == v.get_ref().trim())
            {
                Some((_, code)) => *code,
                None => {
                    self.error(
                        v.span(),
                        format!(
                            "unknown VAST version `{}` (one of: {})",
                            v.get_ref(),
                            known()
                        ),
                    );
                    0
                }
            },
            None => {
                self.error(
                    spot,
                    format!(
                        "video creative `{id}` needs `vast`, its VAST version (one of: {})",
                        known()
                    ),
                );
                0
            }
        };
        VideoFile {
            mime,
            duration,
            protocol,
        }
    }
}

/// Removes the entry whose key or value `span` points at, looking into nested tables first.
/// False when it points at no single entry (a missing key points at its table): nothing to remove.
fn remove_entry_at(table: &mut DeTable<'_>, span: &Range<usize>) -> bool {
    let at = |s: Range<usize>| s == *span;
    if let Some(key) = table
        .iter()
        .find(|(k, v)| at(k.span()) || at(v.span()))
        .map(|(k, _)| k.clone())
    {
        table.remove(&key);
        return true;
    }
    for (_, value) in table.iter_mut() {
        let removed = match value.get_mut() {
            DeValue::Table(inner) => remove_entry_at(inner, span),
            DeValue::Array(items) => items.iter_mut().any(|item| match item.get_mut() {
                DeValue::Table(inner) => remove_entry_at(inner, span),
                _ => false,
            }),
            _ => false,
        };
        if removed {
            return true;
        }
    }
    // A wrong value inside a list: the whole key goes.
    let within = |s: Range<usize>| s.start <= span.start && span.end <= s.end;
    let holder = table
        .iter()
        .find(|(_, v)| !v.get_ref().is_table() && within(v.span()))
        .map(|(k, _)| k.clone());
    holder.is_some_and(|key| table.remove(&key).is_some())
}

#[derive(Clone, Copy)]
enum Bound {
    Positive,
    /// In (0, 1].
    Rate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::geo::Country;

    const FULL: &str = r#"
name = "Spring running shoes"
advertiser = "acme"
adomain = ["acme.example"]
cat = ["iab17-3"]
start = 2026-03-01T00:00:00+08:00
end = 2026-05-31
timezone = "Asia/Shanghai"

[pricing]
model = "cpc"
cpc = 0.35
ctr = 0.01
max_cpm = 5.0

[targeting]
countries = ["CHN", "US"]
days = ["mon", "Friday"]
hours = [[8, 12], [18, 24]]
tags_any = ["Sports/Outdoor/Running"]
tags_all = []

[targeting.exclude]
tags = ["kids"]

[kpi]
min_ctr = 0.005
max_cost_per_order = 40

[budget]
daily = 500
total = 10000.0
pacing = "asap"

[frequency]
impressions = 3
per = "week"
stop_after_conversion = true

[[creative]]
id = "run-300x250"
format = "banner"
w = 300
h = 250
adm = "<a href='${CLICK_URL}'>run</a>"
landing = "https://acme.example/run"
"#;

    fn compile(source: &str) -> Result<Campaign, FileError> {
        parse(
            source,
            Path::new("campaigns/spring-run.toml"),
            &Rates::default(),
        )
    }

    /// The problems in `source`, as `line:col: message`.
    fn problems(source: &str) -> Vec<String> {
        let error = compile(source).expect_err("the file should be refused");
        error
            .diagnostics
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
            .collect()
    }

    #[test]
    fn a_valid_file_compiles_to_its_meaning() {
        let c = compile(FULL).unwrap();
        assert_eq!(c.id, "spring-run");
        assert_eq!(c.cat, ["IAB17-3"]);
        assert_eq!(c.start.unwrap().to_rfc3339(), "2026-02-28T16:00:00+00:00");
        // A bare end date runs to the end of that day in the campaign's time zone.
        assert_eq!(
            c.end.unwrap().to_rfc3339(),
            "2026-05-31T15:59:59.999999999+00:00"
        );
        assert!((c.pricing.ecpm() - 3.5).abs() < 1e-9);
        // countries, tags_any and the schedule; the empty tags_all sets nothing.
        assert_eq!(c.targeting.include.len(), 3);
        assert!(
            matches!(&c.targeting.include[0], Term::Countries(list) if list == &[Country::parse("CHN").unwrap(), Country::parse("USA").unwrap()])
        );
        assert!(matches!(&c.targeting.exclude[..], [Term::TagsAny(tags)] if tags == &["kids"]));
        assert_eq!(c.creatives[0].w, Some(300));
        assert_eq!(
            c.kpi,
            Kpi {
                min_ctr: Some(0.005),
                min_margin: None,
                min_roas: None,
                max_cost_per_order: Some(40.0)
            }
        );
        assert_eq!(
            c.budget,
            Some(Budget {
                daily: Some(500.0),
                total: Some(10000.0),
                pacing: Pacing::Asap
            })
        );
        assert_eq!(
            c.frequency,
            Some(Frequency {
                impressions: Some(3),
                per: Window::Week,
                stop_after_conversion: true
            })
        );
        assert!(c.in_flight("2026-04-01T00:00:00Z".parse().unwrap()));
        assert!(!c.in_flight("2026-06-01T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn every_problem_in_a_file_is_reported_at_its_line_and_column() {
        let broken = FULL
            .replace(
                "timezone = \"Asia/Shanghai\"",
                "timezone = \"Asia/Shanghaii\"",
            )
            .replace("countries = [", "contries = [")
            .replace("hours = [[8, 12]", "hours = [[8, 25]")
            .replace("w = 300", "w = \"300\"")
            .replace(
                "landing = \"https://acme.example/run\"",
                "landing = \"acme.example/run\"",
            );
        let found = problems(&broken);
        let expected = [
            "8:12: unknown time zone `Asia/Shanghaii`",
            "17:1: unknown key `contries` in [targeting]: did you mean `countries`?",
            "19:9: hours [8, 25] must be [from, to)",
            "43:5: `w` must be a whole number, like 300, not the text \"300\": remove the quotes",
            "40:1: banner creative `run-300x250` needs a size",
            "46:11: `landing` must be an http(s) URL",
        ];
        for want in expected {
            assert!(
                found.iter().any(|f| f.starts_with(want)),
                "missing {want:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
    }

    #[test]
    fn a_file_of_thousands_of_problems_lists_the_first_hundred_and_says_there_are_more() {
        // Each stray key cost a pass over the whole document: 4,000 of them took seconds to refuse.
        let stray: String = (0..4_000).map(|i| format!("stray_{i} = 1\n")).collect();
        let found = problems(&(stray + FULL));
        assert_eq!(found.len(), MAX_DIAGNOSTICS + 1, "{:#?}", &found[..3]);
        assert!(
            found[..100]
                .iter()
                .all(|f| f.contains("unknown key `stray_"))
        );
        assert_eq!(found[100], "1:1: too many problems: only 100 are listed");
        // Problems found after reading (here, in thousands of creatives) are capped alike.
        let creative = |i| {
            format!(
                "[[creative]]\nid = \"x{i}\"\nformat = \"banner\"\nadm = \"a\"\nlanding = \"https://a.example/\"\n"
            )
        };
        let creatives: String = (0..4_000).map(creative).collect();
        let found = problems(&(FULL.to_owned() + &creatives));
        assert_eq!(found.len(), MAX_DIAGNOSTICS + 1);
        assert!(found[..100].iter().all(|f| f.contains("needs a size")));
        assert_eq!(found[100], "1:1: too many problems: only 100 are listed");
    }

    #[test]
    fn markup_over_the_limit_is_refused_at_its_place() {
        let rates = Rates::default();
        let limited = |max_adm_bytes| Context {
            rates: &rates,
            taxonomy: None,
            audiences: None,
            limits: Limits {
                max_adm_bytes,
                ..Limits::default()
            },
        };
        let adm = "<a href='${CLICK_URL}'>run</a>";
        let path = Path::new("campaigns/spring-run.toml");
        assert!(parse_in(FULL, path, &limited(adm.len())).is_ok());
        let error = parse_in(FULL, path, &limited(adm.len() - 1)).expect_err("over the limit");
        let at = FULL.find(&format!("\"{adm}\"")).expect("the adm value");
        let place = Diagnostic::at(FULL, at, String::new());
        assert_eq!(
            error.to_string(),
            format!(
                "campaigns/spring-run.toml:{}:{}: creative `run-300x250`: `adm` is {} bytes, over the limit of {} ([reload] max_adm_bytes): every bid carries it, so host images and video elsewhere and link to them",
                place.line,
                place.col,
                adm.len(),
                adm.len() - 1
            )
        );
    }

    #[test]
    fn pricing_must_name_what_its_model_needs_and_nothing_else() {
        let cpc_without_ctr = FULL.replace("ctr = 0.01\n", "");
        assert!(problems(&cpc_without_ctr)[0].ends_with("model \"cpc\" needs `ctr`"));
        let stray = FULL.replace("ctr = 0.01", "ctr = 0.01\ncvr = 0.2");
        assert!(problems(&stray)[0].contains("`cvr` is not used by model \"cpc\""));
        let cps_without_cap =
            "model = \"cps\"\ncommission = 0.1\norder_value = 80\ncvr = 0.02\nctr = 0.01";
        let cps = FULL.replace(
            "model = \"cpc\"\ncpc = 0.35\nctr = 0.01\nmax_cpm = 5.0",
            cps_without_cap,
        );
        assert!(problems(&cps)[0].contains("needs `max_cpm`"));
        let unpriced = FULL.replace("max_cpm = 5.0", "max_cpm = 5.0\ncurrency = \"EUR\"");
        assert!(problems(&unpriced)[0].contains("no exchange rate for `EUR`"));
        let eur = Rates::new([(Currency::parse("EUR").unwrap(), 0.9)]);
        assert!(parse(&unpriced, Path::new("x.toml"), &eur).is_ok());
        // The largest order a conversion may report: a positive amount when set.
        let capped = FULL.replace("max_cpm = 5.0", "max_cpm = 5.0\nmax_order_value = 250");
        assert_eq!(
            compile(&capped).unwrap().pricing.max_order_value,
            Some(250.0)
        );
        let zero = FULL.replace("max_cpm = 5.0", "max_cpm = 5.0\nmax_order_value = 0");
        assert!(problems(&zero)[0].ends_with("`max_order_value` must be a positive number, not 0"));
    }

    #[test]
    fn flights_creatives_and_ids_are_checked_for_meaning() {
        let backwards = FULL.replace("end = 2026-05-31", "end = 2026-02-01");
        assert!(
            problems(&backwards)
                .iter()
                .any(|p| p.ends_with("`end` is before `start`"))
        );
        let empty_adm = FULL.replace("adm = \"<a href='${CLICK_URL}'>run</a>\"", "adm = \"  \"");
        assert!(problems(&empty_adm)[0].contains("has an empty `adm`"));
        let bad_id = format!("id = \"spring run\"\n{FULL}");
        assert!(problems(&bad_id)[0].starts_with("1:6: campaign id `spring run`"));
        let unknown_device =
            FULL.replace("tags_all = []", "device_types = [\"phone\", \"toaster\"]");
        assert!(
            problems(&unknown_device)[0]
                .contains("unknown device type `toaster` (one of: mobile, phone")
        );
        let nested = FULL.replace(
            "tags = [\"kids\"]",
            "tags = [\"kids\"]\n[targeting.exclude.exclude]\ncities = [\"x\"]",
        );
        assert!(problems(&nested)[0].contains("cannot be nested"));
        let video = FULL.replace(
            "format = \"banner\"\nw = 300\nh = 250",
            "format = \"video\"\nvast = \"5.0\"",
        );
        let found = problems(&video);
        assert!(
            found.iter().any(|p| p.contains("needs `mime`")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.contains("needs `duration`")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.contains("unknown VAST version `5.0`")),
            "{found:?}"
        );
        let accented = FULL.replace("https://acme.example/run", "https://acme.example/küche");
        assert!(problems(&accented)[0].contains("visible ASCII (percent-encode the rest)"));
        let stray = FULL.replace("w = 300", "w = 300\nduration = 15");
        assert!(problems(&stray)[0].contains("`duration` is for video creatives only"));
        let bad_kpi = FULL.replace("min_ctr = 0.005", "min_ctr = 5\nmax_roi = 2");
        let found = problems(&bad_kpi);
        assert!(
            found.iter().any(|p| p.contains("`min_ctr` must be a rate")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.contains("unknown key `max_roi` in [kpi]")),
            "{found:?}"
        );
        let no_creative = &FULL[..FULL.find("[[creative]]").unwrap()];
        assert!(problems(no_creative)[0].contains("at least one [[creative]]"));
    }

    #[test]
    fn budget_and_frequency_are_optional_and_default_to_even_pacing_and_a_daily_window() {
        let bare = FULL
            .replace("pacing = \"asap\"\n", "")
            .replace("per = \"week\"\n", "");
        let c = compile(&bare).unwrap();
        assert_eq!(c.budget.unwrap().pacing, Pacing::Even);
        assert_eq!(c.frequency.unwrap().per, Window::Day);
        let start = FULL.find("[budget]").unwrap();
        let without = format!(
            "{}{}",
            &FULL[..start],
            &FULL[FULL.find("[[creative]]").unwrap()..]
        );
        let c = compile(&without).unwrap();
        assert_eq!((c.budget, c.frequency), (None, None));
        // A conversion stop alone is a cap; a total alone is a limit when pacing has a horizon.
        let c = compile(
            &FULL
                .replace("impressions = 3\nper = \"week\"\n", "")
                .replace("daily = 500\n", ""),
        )
        .unwrap();
        assert_eq!(c.frequency.unwrap().impressions, None);
        assert_eq!(c.budget.unwrap().daily, None);
    }

    #[test]
    fn budget_and_frequency_are_checked_for_meaning() {
        let wrong = FULL
            .replace("daily = 500", "daily = -5")
            .replace("pacing = \"asap\"", "pacing = \"fast\"")
            .replace("impressions = 3", "impressions = 2.5")
            .replace("per = \"week\"", "per = \"month\"")
            .replace(
                "stop_after_conversion = true",
                "stop_after_conversion = true\nhourly = 1",
            );
        assert_eq!(
            problems(&wrong),
            [
                "31:9: `daily` must be a positive number, not -5",
                "33:10: `pacing` must be \"even\" (spread over the day) or \"asap\" (as fast as traffic allows), not `fast`",
                "36:15: `impressions` must be a whole number, at least 1, not 2.5",
                "37:7: `per` must be \"hour\", \"day\", \"week\" (Monday to Sunday) or \"flight\" (the whole campaign), not `month`",
                "39:1: unknown key `hourly` in [frequency]; the keys here are impressions, per, stop_after_conversion",
            ]
        );

        let empty = FULL
            .replace("daily = 500\ntotal = 10000.0\n", "")
            .replace("impressions = 3\n", "")
            .replace(
                "stop_after_conversion = true",
                "stop_after_conversion = false",
            );
        assert_eq!(
            problems(&empty),
            [
                "30:1: [budget] sets no limit: give `daily`, `total` or both",
                "33:1: [frequency] sets no cap: give `impressions` (per user, per `per`), or stop_after_conversion = true",
                "34:7: `per` has nothing to apply to: set `impressions`, the most one user may see the campaign per window",
            ]
        );

        // Even pacing of a total needs an end to spread it to: at `pacing`, or at the table when
        // even is the default.
        let endless = FULL
            .replace("end = 2026-05-31", "# no end")
            .replace("daily = 500\n", "");
        let horizon = "even pacing spreads the daily budget over the day, or the total over the flight, \
                       but this campaign has no `daily` and no `end`: set `daily`, or an `end`, or pacing = \"asap\"";
        assert!(compile(&endless).is_ok(), "asap needs no horizon");
        let even = endless.replace("pacing = \"asap\"", "pacing = \"even\"");
        assert_eq!(problems(&even), [format!("32:10: {horizon}")]);
        let default = endless.replace("pacing = \"asap\"\n", "");
        assert_eq!(problems(&default), [format!("30:1: {horizon}")]);
        assert!(
            compile(
                &FULL
                    .replace("daily = 500\n", "")
                    .replace("pacing = \"asap\"\n", "")
            )
            .is_ok()
        );

        // A value refused for its type is not reported missing as well.
        let typo = FULL
            .replace("daily = 500\ntotal = 10000.0", "daily = \"500\"")
            .replace("impressions = 3", "impressions = \"3\"")
            .replace("stop_after_conversion = true", "");
        assert_eq!(
            problems(&typo),
            [
                "31:9: `daily` must be a number, like 2.5, not the text \"500\": remove the quotes",
                "35:15: `impressions` must be a number, like 2.5, not the text \"3\": remove the quotes",
            ]
        );
    }

    #[test]
    fn one_mistake_gives_one_message_in_campaign_terms() {
        // A broken value of [pricing] is not also a missing [pricing] or a missing `model`.
        for (written, instead, says) in [
            (
                "model = \"cpc\"",
                "model = \"CPC\"",
                "`model` must be one of cpm, cpc, cps (found `CPC`): write it in lower case",
            ),
            (
                "cpc = 0.35",
                "cpc = \"0.35\"",
                "`cpc` must be a number, like 2.5, not the text \"0.35\": remove the quotes",
            ),
            (
                "[targeting]",
                "[targetting]",
                "unknown key `targetting`: did you mean `targeting`?",
            ),
        ] {
            let found = problems(&FULL.replace(written, instead));
            assert_eq!(found.len(), 1, "{instead}: {found:#?}");
            assert!(found[0].ends_with(says), "{found:?}");
        }
    }

    #[test]
    fn a_file_that_is_not_toml_is_refused_where_it_breaks() {
        assert!(problems("name = \"x\"\nadomain = [\"a.example\"\n")[0].starts_with("2:"));
        assert_eq!(problems(""), ["1:1: the file needs `pricing`"]);
    }
}
