//! Reach and frequency (`precis report --frequency`): the users of a period by how many
//! impressions they saw (1, 2, …, 9, 10 or more), and what those users did: their clicks and
//! orders, CTR and CVR per exposure count. Six or seven exposures persuade; more harass. This is
//! how a campaign manager finds where extra exposures stop paying for one campaign.
//!
//! Offline, like [`super::report`], and through the same parallel reader: memory grows with the
//! distinct users of the period (a few counters each), never with the lines. Users are the log's
//! keyed hashes; events without a user (no id in the request) are counted apart.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use super::report::{self, Output, Period, ReportError};
use crate::eventlog::Kind;
use crate::eventlog::read::Skipped;

/// The last bucket holds this many exposures and more.
pub const MOST: usize = 10;

/// What one user did in the period: impressions, clicks, orders.
type Deeds = [u64; 3];

/// Users by exposure count.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Frequency {
    /// `buckets[n - 1]`: the users who saw `n` impressions (the last: `MOST` or more).
    pub buckets: Vec<Bucket>,
    /// Impressions, clicks and orders without a user: in no bucket.
    pub anonymous: Anonymous,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// `"1"` … `"9"`, `"10+"`.
    pub exposures: String,
    pub users: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub orders: u64,
    /// Clicks per impression of these users; `None` without impressions.
    pub ctr: Option<f64>,
    /// Orders per click of these users; `None` without clicks.
    pub cvr: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Anonymous {
    pub impressions: u64,
    pub clicks: u64,
    pub orders: u64,
}

/// Per user, what they did, and the deeds of no user.
#[derive(Default)]
struct Users {
    deeds: HashMap<String, Deeds>,
    anonymous: Deeds,
}

/// Reads the log in `dir` within `window`, for `campaign` only when given.
pub fn read(
    dir: &Path,
    window: Period,
    campaign: Option<&str>,
) -> Result<(Frequency, Skipped), ReportError> {
    let (users, skipped) = report::fold(
        dir,
        window,
        |users: &mut Users, event| {
            let deed = match event.event {
                Kind::Imp => 0,
                Kind::Click => 1,
                Kind::Conv => 2,
                Kind::Bid | Kind::Win => return,
            };
            if campaign.is_some_and(|c| c != event.campaign) {
                return;
            }
            let deeds = match &event.user {
                Some(user) => match users.deeds.get_mut(user) {
                    Some(deeds) => deeds,
                    None => users.deeds.entry(user.clone()).or_default(),
                },
                None => &mut users.anonymous,
            };
            deeds[deed] += 1;
        },
        |whole, part| {
            for (user, deeds) in part.deeds {
                let sum = whole.deeds.entry(user).or_default();
                for (total, n) in sum.iter_mut().zip(deeds) {
                    *total += n;
                }
            }
            for (total, n) in whole.anonymous.iter_mut().zip(part.anonymous) {
                *total += n;
            }
        },
    )?;
    Ok((bucket(&users), skipped))
}

/// Users into buckets by their impressions. A user who clicked or ordered without an impression
/// in the period (the impression came before it) is in no bucket: their deeds are not exposures'.
fn bucket(users: &Users) -> Frequency {
    let mut buckets: Vec<Bucket> = (1..=MOST)
        .map(|n| Bucket {
            exposures: if n == MOST {
                format!("{MOST}+")
            } else {
                n.to_string()
            },
            ..Bucket::default()
        })
        .collect();
    for &[impressions, clicks, orders] in users.deeds.values() {
        let Some(bucket) = (impressions as usize)
            .checked_sub(1)
            .and_then(|i| buckets.get_mut(i.min(MOST - 1)))
        else {
            continue;
        };
        bucket.users += 1;
        bucket.impressions += impressions;
        bucket.clicks += clicks;
        bucket.orders += orders;
    }
    for bucket in &mut buckets {
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        bucket.ctr = ratio(bucket.clicks, bucket.impressions);
        bucket.cvr = ratio(bucket.orders, bucket.clicks);
    }
    let [impressions, clicks, orders] = users.anonymous;
    Frequency {
        buckets,
        anonymous: Anonymous {
            impressions,
            clicks,
            orders,
        },
    }
}

const COLUMNS: [&str; 7] = [
    "exposures",
    "users",
    "impressions",
    "clicks",
    "ctr",
    "orders",
    "cvr",
];

/// Writes `frequency` in `format`; `title` heads the HTML page.
pub fn write(
    out: &mut impl Write,
    format: Output,
    frequency: &Frequency,
    title: &str,
) -> io::Result<()> {
    let percent = |r: Option<f64>| r.map(|r| format!("{:.2}%", r * 100.0)).unwrap_or_default();
    let raw = |r: Option<f64>| r.map(|r| r.to_string()).unwrap_or_default();
    let rows = |rate: &dyn Fn(Option<f64>) -> String| -> Vec<Vec<String>> {
        frequency
            .buckets
            .iter()
            .map(|b| {
                vec![
                    b.exposures.clone(),
                    b.users.to_string(),
                    b.impressions.to_string(),
                    b.clicks.to_string(),
                    rate(b.ctr),
                    b.orders.to_string(),
                    rate(b.cvr),
                ]
            })
            .collect()
    };
    let header: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    match format {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, frequency)?;
            writeln!(out)
        }
        Output::Csv => {
            writeln!(out, "{}", header.join(","))?;
            for row in rows(&raw) {
                writeln!(out, "{}", row.join(","))?;
            }
            Ok(())
        }
        Output::Table => {
            let mut table = vec![header];
            table.extend(rows(&percent));
            report::write_aligned(out, 1, &table)?;
            let a = &frequency.anonymous;
            writeln!(
                out,
                "without a user (in no row): {} impressions, {} clicks, {} orders",
                a.impressions, a.clicks, a.orders
            )
        }
        Output::Html => report::write_html(out, title, &header, &rows(&percent), &chart(frequency)),
    }
}

/// Inline SVG: a bar of users per exposure count, with each bucket's CTR above its bar.
fn chart(frequency: &Frequency) -> String {
    const W: f64 = 600.0;
    const H: f64 = 220.0;
    const BASE: f64 = 190.0;
    let most = frequency
        .buckets
        .iter()
        .map(|b| b.users)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = W / frequency.buckets.len().max(1) as f64;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"users by exposure count\" \
         xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, b) in frequency.buckets.iter().enumerate() {
        let x = i as f64 * step + 6.0;
        let height = (BASE - 30.0) * b.users as f64 / most;
        let ctr = b
            .ctr
            .map(|r| format!("{:.2}%", r * 100.0))
            .unwrap_or_default();
        svg.push_str(&format!(
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{height:.1}\" \
             fill=\"#2e6bd9\"><title>{exposures}: {users} users</title></rect>\
             <text x=\"{cx:.1}\" y=\"{ty:.1}\" font-size=\"11\" text-anchor=\"middle\">{ctr}</text>\
             <text x=\"{cx:.1}\" y=\"{ly:.1}\" font-size=\"12\" text-anchor=\"middle\">{exposures}</text>",
            y = BASE - height,
            w = step - 12.0,
            cx = x + (step - 12.0) / 2.0,
            ty = BASE - height - 4.0,
            ly = BASE + 16.0,
            exposures = b.exposures,
            users = b.users,
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(list: &[(&str, Deeds)]) -> Users {
        Users {
            deeds: list.iter().map(|(u, d)| (u.to_string(), *d)).collect(),
            anonymous: [4, 1, 0],
        }
    }

    #[test]
    fn users_fall_in_the_bucket_of_their_impressions_and_ten_or_more_share_the_last() {
        let f = bucket(&users(&[
            ("a", [1, 0, 0]),
            ("b", [1, 1, 0]),
            ("c", [3, 1, 1]),
            ("d", [10, 2, 0]),
            ("e", [25, 0, 0]),
            // Clicked on an impression from before the period: in no bucket.
            ("f", [0, 1, 1]),
        ]));
        assert_eq!(f.buckets.len(), MOST);
        let row = |b: &Bucket| (b.exposures.clone(), b.users, b.impressions, b.clicks);
        let one = &f.buckets[0];
        assert_eq!(row(one), ("1".to_string(), 2, 2, 1));
        assert_eq!((one.ctr, one.cvr), (Some(0.5), Some(0.0)));
        let three = &f.buckets[2];
        assert_eq!((three.users, three.orders, three.cvr), (1, 1, Some(1.0)));
        assert_eq!(f.buckets[1].users, 0);
        assert_eq!((f.buckets[1].ctr, f.buckets[1].cvr), (None, None));
        let last = &f.buckets[MOST - 1];
        assert_eq!(row(last), ("10+".to_string(), 2, 35, 2));
        let users: u64 = f.buckets.iter().map(|b| b.users).sum();
        assert_eq!(users, 5);
        assert_eq!(
            f.anonymous,
            Anonymous {
                impressions: 4,
                clicks: 1,
                orders: 0
            }
        );
    }
}
