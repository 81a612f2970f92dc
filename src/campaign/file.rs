//! The campaign file: TOML written by people, checked strictly, compiled to a [`Campaign`].
//!
//! Strictness is the point: an unknown key is an error (a typo must never silently widen targeting),
//! and every value is checked for meaning, not just type. All problems in a file are reported at once,
//! each at the line and column of the value at fault. Runs off the request path (at reload and in
//! `precis check`); it reads one string and returns plain data, never touching shared state.

use std::ops::Range;
use std::path::Path;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;
use toml::value::{Datetime, Offset};

use super::{Campaign, CampaignError, Creative, Diagnostic, Format};
use crate::geo::{Country, Point, Region};
use crate::pricing::{Currency, Model, Pricing, Rates};
use crate::targeting::{
    CONNECTIONS, Circle, Codes, DEVICE_TYPES, Gender, Targeting, Term, Week, category_form,
    host_form, normalize_os, tag_form,
};

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
    format: CreativeFormat,
    w: Option<Spanned<u32>>,
    h: Option<Spanned<u32>>,
    adm: Spanned<String>,
    landing: Spanned<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum CreativeFormat {
    Banner,
    Video,
    Native,
}

/// Parses, checks and compiles one campaign file. `path` names the file in errors and gives the
/// default id (its stem); `rates` are the currencies precis can price in.
pub fn parse(source: &str, path: &Path, rates: &Rates) -> Result<Campaign, CampaignError> {
    let mut check = Checker {
        source,
        diagnostics: Vec::new(),
    };
    let campaign = match toml::from_str::<File>(source) {
        Ok(file) => check.compile(file, path, rates),
        Err(e) => {
            check.error(e.span().unwrap_or(0..0), e.message().trim_end().to_owned());
            None
        }
    };
    match campaign {
        Some(campaign) if check.diagnostics.is_empty() => Ok(campaign),
        _ => Err(CampaignError {
            path: path.to_owned(),
            diagnostics: check.diagnostics,
        }),
    }
}

/// Ids appear in URLs and logs: keep them to characters that need no escaping anywhere.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

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
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let offset = span.start.min(self.source.len());
        let before = &self.source[..self.source.floor_char_boundary(offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.diagnostics.push(Diagnostic {
            line,
            col,
            message: message.into(),
        });
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
        if let Some(t) = &file.targeting {
            targeting.include = self.terms(t, timezone);
            if let Some(exclude) = &t.exclude {
                if exclude.get_ref().exclude.is_some() {
                    self.error(
                        exclude.span(),
                        "`exclude` cannot be nested inside `exclude`",
                    );
                }
                targeting.exclude = self.terms(exclude.get_ref(), timezone);
            }
        }
        let creatives = self.creatives(&file.creative);

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
            creatives,
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
            None => tz
                .from_local_datetime(&local)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
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
                    self.error(
                        pricing.span(),
                        format!("model \"{model_name}\" needs `{name}`"),
                    );
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
                None => self.error(list.span(), format!("unknown {what} `{value}`")),
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
        if let Some(age) = &t.age {
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
            terms.push(Term::TagsAny(self.each(l, "tag", tag_form)));
        }
        if let Some(l) = set(&t.tags_all) {
            terms.push(Term::TagsAll(self.each(l, "tag", tag_form)));
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
            let format = match c.format {
                CreativeFormat::Banner => Format::Banner,
                CreativeFormat::Video => Format::Video,
                CreativeFormat::Native => Format::Native,
            };
            match (format, w, h) {
                (Format::Banner, Some(1..), Some(1..))
                | (Format::Video, None, None)
                | (Format::Video, Some(1..), Some(1..))
                | (Format::Native, None, None) => {}
                (Format::Banner, _, _) => self.error(
                    spot.clone(),
                    format!("banner creative `{id}` needs a size: w and h above 0"),
                ),
                (Format::Video, _, _) => self.error(
                    spot.clone(),
                    format!("video creative `{id}` needs both w and h above 0, or neither"),
                ),
                (Format::Native, _, _) => self.error(
                    spot.clone(),
                    format!(
                        "native creative `{id}` takes no w or h: native ads are laid out by the app"
                    ),
                ),
            }
            if c.adm.get_ref().trim().is_empty() {
                self.error(c.adm.span(), format!("creative `{id}` has an empty `adm`"));
            }
            let landing = c.landing.get_ref();
            let host = landing
                .strip_prefix("https://")
                .or_else(|| landing.strip_prefix("http://"))
                .and_then(host_form);
            if host.is_none() || landing.chars().any(char::is_whitespace) {
                self.error(
                    c.landing.span(),
                    format!("`landing` must be an http(s) URL, not `{landing}`"),
                );
            }
            creatives.push(Creative {
                id: id.clone(),
                format,
                w,
                h,
                adm: c.adm.get_ref().clone(),
                landing: landing.clone(),
            });
        }
        creatives
    }
}

#[derive(Clone, Copy)]
enum Bound {
    Positive,
    /// In (0, 1].
    Rate,
}
