//! Reports: what the event log says was bought and what it returned, per campaign, creative, day,
//! hour, country, device type or OS.
//!
//! This module owns aggregation and presentation: it streams the event log through
//! [`crate::eventlog::read`] (which owns the file format with the writer), adds each event in the
//! time window to the [`Totals`] of its group, and renders the groups as a table, CSV or JSON.
//!
//! Two rules keep it usable on a day of logs (tens of millions of lines): it must never load a whole
//! file (memory grows with the groups and, for reach, with the distinct users per group, never with
//! the lines), and it must never need the campaign files: every line carries the ids and dimensions
//! it is grouped by, and its amounts already in USD (KPI flags, which do need them, are the
//! binary's). Parsing is the cost, so [`read`] parses files in parallel, and a file named for an hour
//! outside the window is not opened at all.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, NaiveDate, Timelike, Utc};

use crate::book::learning;
use crate::campaign::Campaign;
use crate::campaign::pricing::Rates;
use crate::eventlog::read::{EventStream, ReadError, Skipped, files_for};
use crate::eventlog::{Event, Kind};
use crate::request::openrtb::device_type_name;

/// What a report groups events by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    Campaign,
    /// Campaign and creative: creative ids are only unique within a campaign.
    Creative,
    /// The UTC day of the event.
    Day,
    /// The UTC hour of the event.
    Hour,
    Country,
    /// The OpenRTB device type, by name.
    Device,
    Os,
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns for people: money with 2 decimals, rates as percentages, a TOTAL line.
    Table,
    /// A header row and one row per group, raw numbers.
    Csv,
    /// A list of objects, one per group, raw numbers; ratios with a zero denominator are null.
    Json,
    /// One self-contained HTML page (inline style and SVG, nothing fetched): the table's cells,
    /// and for `--frequency` a chart.
    Html,
}

/// The group an event falls in. Groups sort by this key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKey {
    Campaign(String),
    Creative {
        campaign: String,
        creative: String,
    },
    Day(NaiveDate),
    /// The start of the hour.
    Hour(DateTime<Utc>),
    Country(String),
    /// The device type's name ([`device_name`]).
    Device(String),
    Os(String),
}

/// The value a group gets when the event does not carry the dimension.
pub const UNKNOWN: &str = "unknown";

impl By {
    /// The names of the key columns (and JSON fields) of a report grouped this way.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            By::Campaign => &["campaign"],
            By::Creative => &["campaign", "creative"],
            By::Day => &["day"],
            By::Hour => &["hour"],
            By::Country => &["country"],
            By::Device => &["device"],
            By::Os => &["os"],
        }
    }

    /// The group `event` falls in.
    pub fn key(self, event: &Event) -> GroupKey {
        let known = |value: &Option<String>| match value.as_deref() {
            Some(v) if !v.is_empty() => v.to_owned(),
            _ => UNKNOWN.to_owned(),
        };
        match self {
            By::Campaign => GroupKey::Campaign(event.campaign.clone()),
            By::Creative => GroupKey::Creative {
                campaign: event.campaign.clone(),
                creative: event.creative.clone(),
            },
            By::Day => GroupKey::Day(event.ts.date_naive()),
            By::Hour => GroupKey::Hour(
                event
                    .ts
                    .with_nanosecond(0)
                    .and_then(|t| t.with_second(0))
                    .and_then(|t| t.with_minute(0))
                    .unwrap_or(event.ts),
            ),
            By::Country => GroupKey::Country(known(&event.country)),
            By::Device => GroupKey::Device(device_name(event.device)),
            By::Os => GroupKey::Os(known(&event.os)),
        }
    }
}

impl GroupKey {
    /// The values of the key columns, as printed.
    pub fn values(&self) -> Vec<String> {
        match self {
            GroupKey::Campaign(v)
            | GroupKey::Country(v)
            | GroupKey::Device(v)
            | GroupKey::Os(v) => {
                vec![v.clone()]
            }
            GroupKey::Creative { campaign, creative } => vec![campaign.clone(), creative.clone()],
            GroupKey::Day(day) => vec![day.format("%Y-%m-%d").to_string()],
            GroupKey::Hour(hour) => vec![hour.format("%Y-%m-%dT%H").to_string()],
        }
    }
}

/// The name of an OpenRTB `devicetype` code; an unlisted code is shown as its number.
pub fn device_name(code: Option<u32>) -> String {
    match code {
        None => UNKNOWN.to_owned(),
        Some(code) => device_type_name(code).map_or_else(|| code.to_string(), str::to_owned),
    }
}

/// The counts and amounts of one group, and the figures derived from them.
///
/// Amounts are summed in whole nano-dollars: exactly, and to the same total whatever order the
/// events are added in (a float sum of millions of 0.0017s drifts in its last digits, and the drift
/// would depend on the order files are read in).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub bids: u64,
    pub wins: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub orders: u64,
    /// Sum of `spend_usd`, nano-USD.
    media_cost: i64,
    /// Sum of `revenue_usd`, nano-USD.
    advertiser_cost: i64,
    /// Sum of the orders' `value_usd`, nano-USD.
    gmv: i64,
    /// The distinct users among the impressions.
    users: HashSet<String>,
    /// The distinct users among the clicks.
    clickers: HashSet<String>,
}

const NANOS_PER_USD: f64 = 1e9;

impl Totals {
    pub fn add(&mut self, event: &Event) {
        let remember = |users: &mut HashSet<String>| {
            if let Some(user) = &event.user
                && !users.contains(user)
            {
                users.insert(user.clone());
            }
        };
        match event.event {
            Kind::Bid => self.bids = self.bids.saturating_add(event.weight.max(1)),
            Kind::Win => self.wins += 1,
            Kind::Imp => {
                self.impressions += 1;
                remember(&mut self.users);
            }
            Kind::Click => {
                self.clicks += 1;
                remember(&mut self.clickers);
            }
            Kind::Conv => self.orders += 1,
        }
        let nanos = |usd: f64| (usd * NANOS_PER_USD).round() as i64;
        self.media_cost = self.media_cost.saturating_add(nanos(event.spend_usd));
        self.advertiser_cost = (self.advertiser_cost).saturating_add(nanos(event.revenue_usd));
        self.gmv = self
            .gmv
            .saturating_add(nanos(event.value_usd.unwrap_or(0.0)));
    }

    /// The counts KPIs are judged on (see [`crate::book::learning::shortfalls`]).
    pub fn counts(&self) -> crate::book::learning::Counts {
        crate::book::learning::Counts {
            wins: self.wins,
            impressions: self.impressions,
            clicks: self.clicks,
            conversions: self.orders,
            spend_usd: self.media_cost(),
            revenue_usd: self.advertiser_cost(),
            gmv_usd: self.gmv(),
        }
    }

    /// Adds another group's totals to these; a user in both counts once in the reach.
    pub fn merge(&mut self, other: Totals) {
        self.bids = self.bids.saturating_add(other.bids);
        self.wins = self.wins.saturating_add(other.wins);
        self.impressions = self.impressions.saturating_add(other.impressions);
        self.clicks = self.clicks.saturating_add(other.clicks);
        self.orders = self.orders.saturating_add(other.orders);
        self.media_cost = self.media_cost.saturating_add(other.media_cost);
        self.advertiser_cost = (self.advertiser_cost).saturating_add(other.advertiser_cost);
        self.gmv = self.gmv.saturating_add(other.gmv);
        self.users.extend(other.users);
        self.clickers.extend(other.clickers);
    }

    /// What the won impressions cost precis, USD: the sum of `spend_usd`.
    pub fn media_cost(&self) -> f64 {
        self.media_cost as f64 / NANOS_PER_USD
    }

    /// What the advertisers are billed, USD: the sum of `revenue_usd`.
    pub fn advertiser_cost(&self) -> f64 {
        self.advertiser_cost as f64 / NANOS_PER_USD
    }

    /// What the orders were worth to the advertisers, USD (gross merchandise value).
    pub fn gmv(&self) -> f64 {
        self.gmv as f64 / NANOS_PER_USD
    }

    /// Distinct users among the impressions (impressions without a user are not counted).
    pub fn reach(&self) -> u64 {
        self.users.len() as u64
    }

    /// Distinct users among the clicks.
    pub fn unique_clickers(&self) -> u64 {
        self.clickers.len() as u64
    }

    /// Impressions per user reached.
    pub fn frequency(&self) -> Option<f64> {
        ratio(self.impressions as f64, self.reach() as f64)
    }

    /// Wins per bid.
    pub fn win_rate(&self) -> Option<f64> {
        ratio(self.wins as f64, self.bids as f64)
    }

    /// Clicks per impression.
    pub fn ctr(&self) -> Option<f64> {
        ratio(self.clicks as f64, self.impressions as f64)
    }

    /// Orders per click.
    pub fn cvr(&self) -> Option<f64> {
        ratio(self.orders as f64, self.clicks as f64)
    }

    /// Media cost per click.
    pub fn cost_per_click(&self) -> Option<f64> {
        ratio(self.media_cost(), self.clicks as f64)
    }

    /// Media cost per order.
    pub fn cost_per_order(&self) -> Option<f64> {
        ratio(self.media_cost(), self.orders as f64)
    }

    /// The advertiser's return on ad spend: order value per unit billed.
    pub fn roas(&self) -> Option<f64> {
        ratio(self.gmv(), self.advertiser_cost())
    }

    /// precis' margin: billed per unit of media cost.
    pub fn margin(&self) -> Option<f64> {
        ratio(self.advertiser_cost(), self.media_cost())
    }

    /// Every figure of a report row, in column order, typed for how it prints.
    fn figures(&self) -> [(&'static str, Figure); 18] {
        use Figure::{Count, Money, Rate, Ratio};
        [
            ("bids", Count(self.bids)),
            ("wins", Count(self.wins)),
            ("win_rate", Rate(self.win_rate())),
            ("impressions", Count(self.impressions)),
            ("reach", Count(self.reach())),
            ("frequency", Ratio(self.frequency())),
            ("clicks", Count(self.clicks)),
            ("unique_clickers", Count(self.unique_clickers())),
            ("ctr", Rate(self.ctr())),
            ("orders", Count(self.orders)),
            ("cvr", Rate(self.cvr())),
            ("gmv", Money(Some(self.gmv()))),
            ("advertiser_cost", Money(Some(self.advertiser_cost()))),
            ("roas", Ratio(self.roas())),
            ("media_cost", Money(Some(self.media_cost()))),
            ("margin", Ratio(self.margin())),
            ("cost_per_click", Money(self.cost_per_click())),
            ("cost_per_order", Money(self.cost_per_order())),
        ]
    }
}

/// One figure of a report row; `None` for a ratio over zero.
#[derive(Debug, Clone, Copy)]
enum Figure {
    Count(u64),
    /// USD.
    Money(Option<f64>),
    /// A share, printed as a percentage.
    Rate(Option<f64>),
    /// A multiple (ROAS, margin, frequency).
    Ratio(Option<f64>),
}

impl Figure {
    /// As CSV has it: the raw number, empty for none.
    fn raw(self) -> String {
        match self {
            Figure::Count(n) => n.to_string(),
            Figure::Money(x) | Figure::Rate(x) | Figure::Ratio(x) => {
                x.map(|x| x.to_string()).unwrap_or_default()
            }
        }
    }

    /// As JSON has it: the raw number, null for none.
    fn json(self) -> serde_json::Value {
        match self {
            Figure::Count(n) => n.into(),
            Figure::Money(x) | Figure::Rate(x) | Figure::Ratio(x) => x.into(),
        }
    }

    /// As the table has it: counts with thousands separators, money with 2 decimals, rates as
    /// percentages, multiples with 2 decimals; empty for none.
    fn cell(self) -> String {
        match self {
            Figure::Count(n) => thousands(&n.to_string()),
            Figure::Money(x) | Figure::Ratio(x) => {
                x.map(|x| thousands(&format!("{x:.2}"))).unwrap_or_default()
            }
            Figure::Rate(x) => x.map(|x| format!("{:.2}%", x * 100.0)).unwrap_or_default(),
        }
    }
}

/// `n / d`, or `None` when `d` is zero.
fn ratio(n: f64, d: f64) -> Option<f64> {
    (d != 0.0).then(|| n / d)
}

/// The events a report counts: `from <= ts < to`, each bound optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl RangeBounds<DateTime<Utc>> for Period {
    fn start_bound(&self) -> Bound<&DateTime<Utc>> {
        self.from.as_ref().map_or(Bound::Unbounded, Bound::Included)
    }

    fn end_bound(&self) -> Bound<&DateTime<Utc>> {
        self.to.as_ref().map_or(Bound::Unbounded, Bound::Excluded)
    }
}

/// Reads a window bound: RFC 3339 (`2026-03-01T08:00:00+08:00`) or a date (`2026-03-01`, the start
/// of that day UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, ReportError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.to_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|day| day.and_time(Default::default()).and_utc())
        .map_err(|_| ReportError::Time(text.to_owned()))
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// `source` is the error's source, not part of its message: the binary prints the chain.
    #[error("cannot list the event log directory {}", path.display())]
    List { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(
        "not a time: `{0}` (expected RFC 3339 like 2026-03-01T08:00:00Z, or a date like 2026-03-01)"
    )]
    Time(String),
    #[error("empty window: --from {} is not before --to {}", from.to_rfc3339(), to.to_rfc3339())]
    EmptyWindow {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
}

/// The totals per group of the events in `window`, and the lines skipped.
pub fn read(
    dir: &Path,
    by: By,
    window: Period,
) -> Result<(BTreeMap<GroupKey, Totals>, Skipped), ReportError> {
    fold(
        dir,
        window,
        |groups: &mut BTreeMap<GroupKey, Totals>, event| {
            groups.entry(by.key(event)).or_default().add(event)
        },
        |groups, part| {
            for (key, totals) in part {
                match groups.entry(key) {
                    Entry::Vacant(slot) => {
                        slot.insert(totals);
                    }
                    Entry::Occupied(mut slot) => slot.get_mut().merge(totals),
                }
            }
        },
    )
}

/// Adds every event of the log in `dir` within `window` into a `T` with `add`, and returns it
/// with the lines skipped.
///
/// Parsing JSON is the cost, so files are read in parallel, one thread per core, each adding into
/// its own `T`; the parts are then combined with `merge`, which must give the same result
/// whichever thread read what (exact sums, sets).
pub fn fold<T: Default + Send>(
    dir: &Path,
    window: Period,
    add: impl Fn(&mut T, &Event) + Sync,
    merge: impl Fn(&mut T, T),
) -> Result<(T, Skipped), ReportError> {
    if let (Some(from), Some(to)) = (window.from, window.to)
        && from >= to
    {
        return Err(ReportError::EmptyWindow { from, to });
    }
    let files = files_for(dir, &window).map_err(|source| ReportError::List {
        path: dir.to_owned(),
        source,
    })?;
    let range = (window.start_bound().cloned(), window.end_bound().cloned());
    let next = AtomicUsize::new(0);
    let work = || -> Result<(T, Skipped), ReportError> {
        let mut part = T::default();
        let mut skipped = Skipped::default();
        while let Some(path) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
            let mut events = EventStream::new(vec![path.clone()], range);
            for event in events.by_ref() {
                add(&mut part, &event);
            }
            skipped.merge(events.finish()?);
        }
        Ok((part, skipped))
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(files.len())
        .max(1);
    let parts: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut whole = T::default();
    let mut skipped = Skipped::default();
    for part in parts {
        let (part, part_skipped) = part?;
        skipped.merge(part_skipped);
        merge(&mut whole, part);
    }
    Ok((whole, skipped))
}

/// Writes `groups` (as [`read`] returns them) in `format`.
pub fn write(
    out: &mut impl Write,
    format: Output,
    by: By,
    groups: &BTreeMap<GroupKey, Totals>,
) -> io::Result<()> {
    match format {
        Output::Table => write_table(out, by, groups),
        Output::Csv => write_csv(out, by, groups),
        Output::Json => write_json(out, by, groups),
        Output::Html => {
            let (header, rows) = table(by, groups);
            write_html(out, "precis report", &header, &rows, "")
        }
    }
}

/// The figure columns, in the order of [`Totals::figures`].
fn figure_names() -> impl Iterator<Item = &'static str> {
    Totals::default()
        .figures()
        .into_iter()
        .map(|(name, _)| name)
}

/// A JSON list of objects: the group key fields, then the figures in column order; null for a
/// ratio over zero.
pub fn write_json(
    out: &mut impl Write,
    by: By,
    groups: &BTreeMap<GroupKey, Totals>,
) -> io::Result<()> {
    writeln!(out, "[")?;
    for (n, (key, t)) in groups.iter().enumerate() {
        let keys = by
            .columns()
            .iter()
            .zip(key.values())
            .map(|(c, v)| (*c, v.into()));
        let figures = t.figures().into_iter().map(|(c, f)| (c, f.json()));
        let fields: Vec<String> = keys
            .chain(figures)
            .map(|(name, value): (&str, serde_json::Value)| format!("\"{name}\": {value}"))
            .collect();
        let comma = if n + 1 < groups.len() { "," } else { "" };
        writeln!(out, "  {{{}}}{comma}", fields.join(", "))?;
    }
    writeln!(out, "]")
}

/// A header row and one row per group, raw numbers; an empty field for a ratio over zero.
pub fn write_csv(
    out: &mut impl Write,
    by: By,
    groups: &BTreeMap<GroupKey, Totals>,
) -> io::Result<()> {
    let header: Vec<&str> = by.columns().iter().copied().chain(figure_names()).collect();
    writeln!(out, "{}", header.join(","))?;
    for (key, t) in groups {
        let keys = key.values().into_iter().map(|v| csv_field(&v));
        let figures = t.figures().into_iter().map(|(_, f)| f.raw());
        let fields: Vec<String> = keys.chain(figures).collect();
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (countries and OS names come
/// from bid requests).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// Aligned columns: keys on the left, figures on the right; counts with thousands separators,
/// money (USD) with 2 decimals, rates as percentages, ROAS, margin and frequency as multiples; then a
/// TOTAL line (its reach and clickers count each user once across groups).
pub fn write_table(
    out: &mut impl Write,
    by: By,
    groups: &BTreeMap<GroupKey, Totals>,
) -> io::Result<()> {
    let (header, mut rows) = table(by, groups);
    rows.insert(0, header);
    write_aligned(out, by.columns().len(), &rows)
}

/// The table's header and rows (the TOTAL line last), as printed.
fn table(by: By, groups: &BTreeMap<GroupKey, Totals>) -> (Vec<String>, Vec<Vec<String>>) {
    let keys = by.columns().len();
    let header = by
        .columns()
        .iter()
        .copied()
        .chain(figure_names())
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    let mut total = Totals::default();
    for (key, t) in groups {
        total.merge(t.clone());
        rows.push(key.values().into_iter().chain(figures(t)).collect());
    }
    let mut last = vec![String::new(); keys];
    last[0] = "TOTAL".to_owned();
    last.extend(figures(&total));
    rows.push(last);
    (header, rows)
}

/// `rows` in aligned columns: the first `keys` on the left, the figures right-aligned.
pub fn write_aligned(out: &mut impl Write, keys: usize, rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths = vec![0; rows.first().map_or(0, Vec::len)];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(width - cell.chars().count());
            if i < keys {
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str(&pad);
                line.push_str(cell);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The figure cells of a table row.
fn figures(t: &Totals) -> impl Iterator<Item = String> {
    t.figures().into_iter().map(|(_, f)| f.cell())
}

/// One self-contained page: `title`, the `chart` (inline SVG, may be empty), then a table of
/// `header` and `rows` (cells as the table prints them). Nothing in it is fetched from anywhere.
pub fn write_html(
    out: &mut impl Write,
    title: &str,
    header: &[String],
    rows: &[Vec<String>],
    chart: &str,
) -> io::Result<()> {
    let cells = |row: &[String], tag: &str| {
        row.iter()
            .map(|c| format!("<{tag}>{}</{tag}>", escape(c)))
            .collect::<String>()
    };
    writeln!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n\
         <style>body{{font:14px system-ui,sans-serif;margin:20px;color:#1d2330}}\
         table{{border-collapse:collapse;font-variant-numeric:tabular-nums}}\
         th,td{{padding:3px 8px;border-bottom:1px solid #e4e7ec;text-align:right;white-space:nowrap}}\
         th{{color:#667085;font-weight:500}}svg{{max-width:900px;display:block;margin:12px 0}}</style>\
         </head><body><h1>{title}</h1>\n{chart}\n<table><thead><tr>{}</tr></thead><tbody>",
        cells(header, "th"),
        title = escape(title),
    )?;
    for row in rows {
        writeln!(out, "<tr>{}</tr>", cells(row, "td"))?;
    }
    writeln!(out, "</tbody></table></body></html>")
}

/// Text made safe inside HTML: ids, countries and OS names come from bid requests.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `1234567.89` → `1,234,567.89`: separators in the integer part of a formatted number.
fn thousands(number: &str) -> String {
    let (sign, rest) = match number.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", number),
    };
    let (int, frac) = rest.split_at(rest.find('.').unwrap_or(rest.len()));
    let mut grouped = String::new();
    for (i, digit) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped}{frac}")
}

/// The KPIs each campaign of `campaigns` falls short of in `groups` (a report by campaign), as
/// `id: what`, in the order of `campaigns`.
pub fn kpi_alerts<'c>(
    groups: &BTreeMap<GroupKey, Totals>,
    campaigns: impl IntoIterator<Item = &'c Campaign>,
    rates: &Rates,
) -> Vec<String> {
    let mut alerts = Vec::new();
    for campaign in campaigns {
        if let Some(totals) = groups.get(&GroupKey::Campaign(campaign.id.clone())) {
            let found = learning::shortfalls(campaign, &totals.counts(), rates);
            alerts.extend(found.into_iter().map(|a| format!("{}: {a}", campaign.id)));
        }
    }
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::read::{events_in, file_hour};

    /// An event of `kind` for campaign `shoes`, creative `c1`, at `ts`.
    fn event(kind: Kind, bid: &str, ts: &str) -> Event {
        Event {
            request: format!("r-{bid}"),
            creative: "c1".to_owned(),
            bid_price: 3.0,
            country: Some("CHN".to_owned()),
            device: Some(4),
            os: Some("ios".to_owned()),
            ..Event::example(kind, bid, ts)
        }
    }

    fn win(bid: &str, ts: &str, price: f64) -> Event {
        Event {
            price: Some(price),
            spend_usd: price / 1000.0,
            ..event(Kind::Win, bid, ts)
        }
    }

    fn imp(bid: &str, ts: &str, user: &str) -> Event {
        Event {
            user: Some(user.to_owned()),
            ..event(Kind::Imp, bid, ts)
        }
    }

    /// Writes `events` as the writer does: one file per hour of their timestamps.
    fn write_log(dir: &Path, events: &[Event]) {
        let mut files = BTreeMap::<String, String>::new();
        for event in events {
            let name = format!("events-{}.jsonl", event.ts.format("%Y%m%dT%H"));
            let file = files.entry(name).or_default();
            file.push_str(&serde_json::to_string(event).unwrap());
            file.push('\n');
        }
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    /// Campaign `shoes` (CPS, 8% commission): on 2026-03-01, 4 bids, 2 wins at CPM 1.5 and 2.5,
    /// 2 impressions of user u1; on 2026-03-02, an impression of u2, a click and a 120.00 order.
    /// Campaign `boots` (creative `c9`, no device): one bid on 2026-03-01. The last file ends with
    /// a line cut short (its 4th line); a file that is not `.jsonl` is ignored.
    fn log_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_log(
            dir.path(),
            &[
                event(Kind::Bid, "b1", "2026-03-01T10:00:00Z"),
                event(Kind::Bid, "b2", "2026-03-01T10:00:01Z"),
                event(Kind::Bid, "b3", "2026-03-01T10:00:02Z"),
                event(Kind::Bid, "b4", "2026-03-01T10:00:03Z"),
                win("b1", "2026-03-01T10:00:04Z", 1.5),
                win("b2", "2026-03-01T10:00:05Z", 2.5),
                imp("b1", "2026-03-01T10:00:06Z", "u1"),
                imp("b2", "2026-03-01T11:59:59Z", "u1"),
                Event {
                    campaign: "boots".to_owned(),
                    creative: "c9".to_owned(),
                    device: None,
                    ..event(Kind::Bid, "b5", "2026-03-01T10:30:00Z")
                },
                imp("b3", "2026-03-02T09:00:00Z", "u2"),
                event(Kind::Click, "b3", "2026-03-02T09:00:10Z"),
                Event {
                    value: Some(120.0),
                    value_usd: Some(120.0),
                    order: Some("o-1".to_owned()),
                    revenue_usd: 0.08 * 120.0,
                    ..event(Kind::Conv, "b3", "2026-03-02T09:30:00Z")
                },
            ],
        );
        let last = dir.path().join("events-20260302T09.jsonl");
        let cut = serde_json::to_string(&event(Kind::Bid, "b6", "2026-03-02T09:40:00Z")).unwrap();
        let text = std::fs::read_to_string(&last).unwrap() + &cut[..cut.len() / 2];
        std::fs::write(&last, text).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a log").unwrap();
        dir
    }

    fn report(by: By, window: Period) -> (BTreeMap<GroupKey, Totals>, Skipped) {
        let dir = log_dir();
        read(dir.path(), by, window).unwrap()
    }

    fn campaign(id: &str) -> GroupKey {
        GroupKey::Campaign(id.to_owned())
    }

    fn day(d: &str) -> GroupKey {
        GroupKey::Day(d.parse().unwrap())
    }

    #[test]
    fn by_campaign_counts_every_step_and_derives_the_ratios() {
        let (groups, skipped) = report(By::Campaign, Period::default());
        assert_eq!(
            groups.keys().collect::<Vec<_>>(),
            [&campaign("boots"), &campaign("shoes")]
        );
        let shoes = &groups[&campaign("shoes")];
        assert_eq!(
            (
                shoes.bids,
                shoes.wins,
                shoes.impressions,
                shoes.reach(),
                shoes.clicks,
                shoes.orders
            ),
            (4, 2, 3, 2, 1, 1)
        );
        assert_eq!(shoes.media_cost(), 0.004);
        assert_eq!(shoes.advertiser_cost(), 9.6);
        assert_eq!(shoes.gmv(), 120.0);
        assert_eq!(shoes.unique_clickers(), 0, "the click line carries no user");
        assert_eq!(shoes.frequency(), Some(1.5));
        assert_eq!(shoes.win_rate(), Some(0.5));
        assert_eq!(shoes.ctr(), Some(1.0 / 3.0));
        assert_eq!(shoes.cvr(), Some(1.0));
        assert_eq!(shoes.cost_per_click(), Some(0.004));
        assert_eq!(shoes.cost_per_order(), Some(0.004));
        assert_eq!(shoes.margin(), Some(9.6 / 0.004));
        assert_eq!(shoes.roas(), Some(120.0 / 9.6));

        let boots = &groups[&campaign("boots")];
        assert_eq!((boots.bids, boots.wins, boots.impressions), (1, 0, 0));
        assert_eq!(boots.win_rate(), Some(0.0));
        assert_eq!(
            (boots.ctr(), boots.cvr(), boots.margin()),
            (None, None, None)
        );
        assert_eq!((boots.roas(), boots.frequency()), (None, None));

        assert_eq!(skipped.lines, 1);
        let (path, line) = skipped.first.unwrap();
        assert!(path.ends_with("events-20260302T09.jsonl"), "{path:?}");
        assert_eq!(line, 4);
    }

    #[test]
    fn a_sampled_bid_line_counts_as_the_bids_it_stands_for() {
        let mut totals = Totals::default();
        totals.add(&Event {
            weight: 10,
            ..event(Kind::Bid, "b1", "2026-03-01T10:00:00Z")
        });
        totals.add(&event(Kind::Bid, "b2", "2026-03-01T10:00:00Z"));
        totals.add(&event(Kind::Win, "b1", "2026-03-01T10:00:01Z"));
        assert_eq!(totals.bids, 11);
        assert_eq!(totals.win_rate(), Some(1.0 / 11.0));
        // A line written before the field existed stands for one bid.
        let old = r#"{"ts":"2026-03-01T10:00:00Z","event":"bid","bid":"b","request":"r","imp":"1","campaign":"c","creative":"k","bid_price":1.0,"cur":"USD"}"#;
        assert_eq!(serde_json::from_str::<Event>(old).unwrap().weight, 1);
    }

    #[test]
    fn by_day_splits_at_midnight_utc() {
        let (groups, _) = report(By::Day, Period::default());
        assert_eq!(
            groups.keys().collect::<Vec<_>>(),
            [&day("2026-03-01"), &day("2026-03-02")]
        );
        let first = &groups[&day("2026-03-01")];
        assert_eq!(
            (
                first.bids,
                first.wins,
                first.impressions,
                first.reach(),
                first.clicks,
                first.orders
            ),
            (5, 2, 2, 1, 0, 0)
        );
        assert_eq!(first.media_cost(), 0.004);
        assert_eq!(first.advertiser_cost(), 0.0);
        assert_eq!(first.win_rate(), Some(0.4));
        assert_eq!(first.ctr(), Some(0.0));
        assert_eq!(first.cvr(), None);
        assert_eq!(first.cost_per_click(), None);
        assert_eq!(first.margin(), Some(0.0));

        let second = &groups[&day("2026-03-02")];
        assert_eq!(
            (
                second.bids,
                second.wins,
                second.impressions,
                second.reach(),
                second.clicks,
                second.orders
            ),
            (0, 0, 1, 1, 1, 1)
        );
        assert_eq!(second.media_cost(), 0.0);
        assert_eq!(second.advertiser_cost(), 9.6);
        assert_eq!(second.win_rate(), None);
        assert_eq!(second.cost_per_order(), Some(0.0));
        assert_eq!(second.margin(), None);
    }

    #[test]
    fn the_window_includes_from_and_excludes_to() {
        let at = |t: &str| Some(parse_time(t).unwrap());
        let (groups, _) = report(
            By::Day,
            Period {
                from: at("2026-03-02"),
                to: None,
            },
        );
        assert_eq!(groups.keys().collect::<Vec<_>>(), [&day("2026-03-02")]);

        let (groups, _) = report(
            By::Day,
            Period {
                from: None,
                to: at("2026-03-02"),
            },
        );
        assert_eq!(groups.keys().collect::<Vec<_>>(), [&day("2026-03-01")]);

        // b2's bid is at 10:00:01 exactly, b3's at 10:00:02: [10:00:01, 10:00:02) holds one bid.
        let (groups, _) = report(
            By::Campaign,
            Period {
                from: at("2026-03-01T10:00:01Z"),
                to: at("2026-03-01T18:00:02+08:00"),
            },
        );
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[&campaign("shoes")].bids, 1);

        let dir = log_dir();
        let empty = Period {
            from: at("2026-03-02"),
            to: at("2026-03-01"),
        };
        assert!(matches!(
            read(dir.path(), By::Day, empty),
            Err(ReportError::EmptyWindow { .. })
        ));
    }

    #[test]
    fn times_are_rfc_3339_or_dates() {
        assert_eq!(
            parse_time("2026-03-01").unwrap(),
            "2026-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_time("2026-03-01T08:00:00+08:00").unwrap(),
            "2026-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        for bad in ["2026-03-01T08:00", "yesterday", "2026-02-30", ""] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn other_groupings() {
        let (groups, _) = report(By::Creative, Period::default());
        let keys: Vec<Vec<String>> = groups.keys().map(GroupKey::values).collect();
        assert_eq!(keys, [["boots", "c9"], ["shoes", "c1"]]);

        let (groups, _) = report(By::Hour, Period::default());
        let keys: Vec<Vec<String>> = groups.keys().map(GroupKey::values).collect();
        assert_eq!(
            keys,
            [["2026-03-01T10"], ["2026-03-01T11"], ["2026-03-02T09"]]
        );
        assert_eq!(groups.values().map(|t| t.bids).sum::<u64>(), 5);

        let (groups, _) = report(By::Device, Period::default());
        let keys: Vec<Vec<String>> = groups.keys().map(GroupKey::values).collect();
        assert_eq!(keys, [["phone"], ["unknown"]]);

        let (groups, _) = report(By::Country, Period::default());
        assert_eq!(groups.len(), 1);
        assert!(groups.contains_key(&GroupKey::Country("CHN".to_owned())));

        let names: Vec<String> = (1..=9).map(|c| device_name(Some(c))).collect();
        let expected = [
            "mobile",
            "desktop",
            "ctv",
            "phone",
            "tablet",
            "connected_device",
            "set_top_box",
            "dooh",
            "9",
        ];
        assert_eq!(names, expected);
    }

    #[test]
    fn json_has_exactly_the_figures_and_the_key_fields_with_null_ratios() {
        let (groups, _) = report(By::Creative, Period::default());
        let mut out = Vec::new();
        write(&mut out, Output::Json, By::Creative, &groups).unwrap();
        let rows: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(&out).unwrap();
        assert_eq!(rows.len(), 2);
        let mut fields: Vec<&str> = rows[0].keys().map(String::as_str).collect();
        fields.sort_unstable();
        let mut expected: Vec<&str> = figure_names().chain(["campaign", "creative"]).collect();
        expected.sort_unstable();
        assert_eq!(fields, expected);

        let boots = &rows[0];
        assert_eq!(boots["campaign"], "boots");
        assert_eq!(boots["creative"], "c9");
        assert_eq!(boots["bids"], 1);
        assert_eq!(boots["win_rate"], 0.0);
        for ratio in [
            "ctr",
            "cvr",
            "cost_per_click",
            "cost_per_order",
            "roas",
            "margin",
        ] {
            assert!(boots[ratio].is_null(), "{ratio}");
        }
        let shoes = &rows[1];
        assert_eq!(shoes["reach"], 2);
        assert_eq!(shoes["orders"], 1);
        assert_eq!(shoes["advertiser_cost"], 9.6);
        assert_eq!(shoes["gmv"], 120.0);
        assert_eq!(shoes["roas"], 12.5);
        assert_eq!(shoes["cvr"], 1.0);

        let (groups, _) = report(By::Day, Period::default());
        let mut out = Vec::new();
        write(&mut out, Output::Json, By::Day, &groups).unwrap();
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
        assert_eq!(rows[0]["day"], "2026-03-01");
        assert!(rows[0].get("campaign").is_none());
    }

    #[test]
    fn csv_has_a_header_and_raw_numbers() {
        let (groups, _) = report(By::Campaign, Period::default());
        let mut out = Vec::new();
        write(&mut out, Output::Csv, By::Campaign, &groups).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "campaign,bids,wins,win_rate,impressions,reach,frequency,clicks,unique_clickers,ctr,\
             orders,cvr,gmv,advertiser_cost,roas,media_cost,margin,cost_per_click,cost_per_order"
        );
        assert_eq!(lines[1], "boots,1,0,0,0,0,,0,0,,0,,0,0,,0,,,");
        let shoes: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(
            &shoes[..12],
            [
                "shoes",
                "4",
                "2",
                "0.5",
                "3",
                "2",
                "1.5",
                "1",
                "0",
                &(1.0f64 / 3.0).to_string(),
                "1",
                "1"
            ]
        );
        assert_eq!(shoes[12..16], ["120", "9.6", "12.5", "0.004"]);
        assert_eq!(lines.len(), 3);

        assert_eq!(csv_field("Windows, 10"), "\"Windows, 10\"");
        assert_eq!(csv_field("a \"b\""), "\"a \"\"b\"\"\"");
    }

    #[test]
    fn the_table_is_aligned_with_money_percentages_and_a_total() {
        let (groups, _) = report(By::Campaign, Period::default());
        let mut out = Vec::new();
        write(&mut out, Output::Table, By::Campaign, &groups).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("campaign  bids"), "{text}");
        let cells: Vec<Vec<&str>> = lines
            .iter()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            cells[2],
            [
                "shoes", "4", "2", "50.00%", "3", "2", "1.50", "1", "0", "33.33%", "1", "100.00%",
                "120.00", "9.60", "12.50", "0.00", "2,400.00", "0.00", "0.00"
            ]
        );
        assert_eq!(
            cells[3],
            [
                "TOTAL", "5", "2", "40.00%", "3", "2", "1.50", "1", "0", "33.33%", "1", "100.00%",
                "120.00", "9.60", "12.50", "0.00", "2,400.00", "0.00", "0.00"
            ]
        );
        // Right-aligned figures: every line that has the last column ends at the same place.
        assert_eq!(lines[0].len(), lines[2].len(), "{text}");
        assert_eq!(lines[2].len(), lines[3].len(), "{text}");

        assert_eq!(thousands("1234567.89"), "1,234,567.89");
        assert_eq!(thousands("-1234"), "-1,234");
        assert_eq!(thousands("999.00"), "999.00");
    }

    #[test]
    fn no_log_directory_is_an_error_and_an_empty_one_an_empty_report() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            read(&missing, By::Campaign, Period::default()),
            Err(ReportError::List { .. })
        ));
        let (groups, skipped) = read(dir.path(), By::Campaign, Period::default()).unwrap();
        assert!(groups.is_empty());
        assert_eq!(skipped, Skipped::default());
    }

    #[test]
    fn files_named_for_hours_outside_the_window_are_not_read() {
        let dir = log_dir();
        // Not events at all: reading this file would count two skipped lines.
        std::fs::write(dir.path().join("events-20260228T23.jsonl"), "x\ny\n").unwrap();
        std::fs::write(dir.path().join("events-20260303T00.1.jsonl"), "x\ny\n").unwrap();
        let window = |from, to| Period {
            from: Some(parse_time(from).unwrap()),
            to: Some(parse_time(to).unwrap()),
        };
        let (groups, skipped) =
            read(dir.path(), By::Day, window("2026-03-01", "2026-03-03")).unwrap();
        assert_eq!(groups.values().map(|t| t.bids).sum::<u64>(), 5);
        assert_eq!(skipped.lines, 1);
        // The last minute of an hour still opens that hour's file.
        let (groups, skipped) = read(
            dir.path(),
            By::Day,
            window("2026-02-28T23:59:59Z", "2026-03-01T10:00:01Z"),
        )
        .unwrap();
        assert_eq!(groups[&day("2026-03-01")].bids, 1);
        assert_eq!(skipped.lines, 2);
        let (_, skipped) = read(dir.path(), By::Day, Period::default()).unwrap();
        assert_eq!(skipped.lines, 5);

        let hour = |name: &str| file_hour(Path::new(name)).map(|h| h.to_rfc3339());
        assert_eq!(
            hour("logs/events-20260301T10.jsonl").as_deref(),
            Some("2026-03-01T10:00:00+00:00")
        );
        assert_eq!(
            hour("events-20260301T23.12.jsonl").as_deref(),
            Some("2026-03-01T23:00:00+00:00")
        );
        for other in [
            "old.jsonl",
            "events-20260301T24.jsonl",
            "events-20260301T1.jsonl",
            "events-20260301.jsonl",
            "events-20260301T10x.jsonl",
        ] {
            assert_eq!(hour(other), None, "{other}");
        }
    }

    #[test]
    fn events_in_streams_the_events_of_a_range() {
        let dir = log_dir();
        let from: DateTime<Utc> = "2026-03-02T09:00:10Z".parse().unwrap();
        let mut events = events_in(dir.path(), from..).unwrap();
        let kinds: Vec<Kind> = events.by_ref().map(|e| e.event).collect();
        assert_eq!(kinds, [Kind::Click, Kind::Conv]);
        assert_eq!(events.skipped().lines, 1);
        assert_eq!(events.finish().unwrap().lines, 1);
    }

    #[test]
    fn amounts_add_up_exactly() {
        let mut totals = Totals::default();
        for i in 0..7916 {
            totals.add(&win(&format!("b{i}"), "2026-03-01T10:00:00Z", 1.7));
        }
        assert_eq!(totals.media_cost(), 13.4572);
        assert_eq!(totals.media_cost().to_string(), "13.4572");
    }

    #[test]
    fn many_files_read_in_parallel_give_the_figures_of_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        let mut events = Vec::new();
        for hour in 0..24 {
            for i in 0..50 {
                let ts = format!("2026-03-01T{hour:02}:{i:02}:00Z");
                let bid = format!("b{hour}-{i}");
                events.push(event(Kind::Bid, &bid, &ts));
                if i % 3 == 0 {
                    events.push(win(&bid, &ts, 1.0 + f64::from(i) / 7.0));
                    events.push(imp(&bid, &ts, &format!("u{}", i % 11)));
                }
            }
        }
        write_log(dir.path(), &events);
        for hour in [5, 17] {
            let path = dir.path().join(format!("events-20260301T{hour:02}.jsonl"));
            let text = std::fs::read_to_string(&path).unwrap() + "{\"ts\":\n";
            std::fs::write(path, text).unwrap();
        }

        let (groups, skipped) = read(dir.path(), By::Campaign, Period::default()).unwrap();
        let mut one_pass = Totals::default();
        let mut stream = events_in(dir.path(), ..).unwrap();
        for event in stream.by_ref() {
            one_pass.add(&event);
        }
        assert_eq!(groups[&campaign("shoes")], one_pass);
        assert_eq!(one_pass.bids, 24 * 50);
        assert_eq!(one_pass.reach(), 11);
        assert_eq!(skipped, stream.finish().unwrap());
        assert_eq!(skipped.lines, 2);
        let (path, _) = skipped.first.unwrap();
        assert!(path.ends_with("events-20260301T05.jsonl"), "{path:?}");
    }
}
