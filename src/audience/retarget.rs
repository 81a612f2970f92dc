//! Retargeting packages built from precis' own event log (`precis audience build --from-logs`):
//! the users who clicked a campaign, optionally minus those who then converted on it.
//!
//! Offline only: it streams the log's files one line at a time and writes a `# keys: precis`
//! package (the event log's keyed user hashes, matched by the bidder under the same secret). It
//! never runs in the bidder and never sees a raw user key.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};

use super::KeyForm;
use crate::eventlog::Kind;
use crate::eventlog::read::{ReadError, Skipped, events_in};

/// What `precis audience build --from-logs` selects.
#[derive(Debug, Clone)]
pub struct Retarget {
    /// Users who clicked this campaign ...
    pub clicked: String,
    /// ... at or after this time ...
    pub since: DateTime<Utc>,
    /// ... and, if set, did not convert on it since.
    pub not_converted: bool,
}

/// Why a package could not be built from the log.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot list the event log")]
    List(#[source] std::io::Error),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("cannot write the package")]
    Write(#[from] std::io::Error),
    /// Nothing logged in the period names the campaign: most likely a mistyped id, which would
    /// otherwise make an empty package that looks like a result.
    #[error(
        "campaign `{campaign}` appears in no event logged since {since}; campaigns logged then: {seen}"
    )]
    UnknownCampaign {
        campaign: String,
        since: String,
        seen: String,
    },
}

/// How many users a built package holds, and what the log held that was not events.
#[derive(Debug)]
pub struct Built {
    pub users: usize,
    pub skipped: Skipped,
}

/// At most this many campaign ids are named when the one asked for is not in the log.
const MAX_NAMED: usize = 20;

/// Writes the retargeting package `select` picks from the event log in `logs` to `out`: the
/// `# keys: precis` header, then the keyed user hashes, sorted. A campaign that no event in the
/// period names is an error ([`BuildError::UnknownCampaign`]), not an empty package.
pub fn build(logs: &Path, select: &Retarget, out: &mut impl Write) -> Result<Built, BuildError> {
    let mut clicked = BTreeSet::new();
    let mut converted = BTreeSet::new();
    let mut others = BTreeSet::new();
    let mut known = false;
    let mut events = events_in(logs, select.since..).map_err(BuildError::List)?;
    for event in events.by_ref() {
        if event.campaign != select.clicked {
            if !known {
                others.insert(event.campaign);
            }
            continue;
        }
        known = true;
        let Some(user) = event.user.as_deref().and_then(|u| KeyForm::Precis.read(u)) else {
            continue;
        };
        match event.event {
            Kind::Click => clicked.insert(user),
            Kind::Conv => converted.insert(user),
            _ => false,
        };
    }
    let skipped = events.finish()?;
    if !known {
        let mut seen: Vec<String> = others.into_iter().take(MAX_NAMED).collect();
        if seen.is_empty() {
            seen.push("none".into());
        } else if seen.len() == MAX_NAMED {
            seen.push("…".into());
        }
        return Err(BuildError::UnknownCampaign {
            campaign: select.clicked.clone(),
            since: select.since.to_rfc3339(),
            seen: seen.join(", "),
        });
    }
    writeln!(
        out,
        "# keys: precis\n# users who clicked campaign {} since {}{}",
        select.clicked,
        select.since.to_rfc3339(),
        if select.not_converted {
            " and did not convert"
        } else {
            ""
        }
    )
    .map_err(BuildError::Write)?;
    let mut users = 0;
    for user in &clicked {
        if select.not_converted && converted.contains(user) {
            continue;
        }
        writeln!(out, "{user:016x}").map_err(BuildError::Write)?;
        users += 1;
    }
    Ok(Built { users, skipped })
}

/// `days` back from `now`.
pub fn since(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - TimeDelta::days(i64::from(days))
}
