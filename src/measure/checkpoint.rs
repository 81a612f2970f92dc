//! The state snapshot: what the event log has taught the bidder (learned counts, spend, the open
//! budget reservations, frequency exposures, the events remembered so that each counts once and
//! each click's orders) in one file, with how far into each log file it reaches, so that a start
//! reads it and replays only the log written after it, not the whole log.
//!
//! A snapshot always stands for the log up to its positions, as a replay of that log would have
//! left the state; it is made three ways:
//! - at shutdown, once the log is closed and nothing changes the state any more: the live state
//!   ([`save`]);
//! - while serving, every `[events] snapshot_secs` ([`refresh`]): the last snapshot is read into
//!   fresh structures and the log fsynced since folded into it, so the live state is never copied
//!   while requests change it; only the reservations open now are taken from it. It costs a second
//!   copy of the state while it runs, on a background thread;
//! - at start, [`restore`] reads it and [`replay`] reads the log past it. A snapshot that cannot
//!   be read is set aside (`.bad`) with an error line, and the state is rebuilt from the whole log.
//!
//! A [`crate::binary`] file (`PRECISST`, version 1): when it was written (unix seconds), the
//! positions (file name, bytes), then the learned counts, the accounts, the reservations, the
//! exposures and what [`Seen`] remembers. It never runs on the bid path and never decides
//! anything about an event: the recorder and the book do, here and when they replay.

use std::io::Read;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::binary::{self, BinaryError, Kind as FileKind, Le, get_count, get_str, put_str};
use crate::book::pacing::Pacer;
use crate::book::store::{Feedback, Snapshot, Store};
use crate::clock::unix_secs;
use crate::eventlog::read::{Positions, ReadError, events_between, lengths};
use crate::eventlog::{Event, Kind};
use crate::measure::recorder::Recorder;
use crate::measure::seen::{self, MAX_ID_BYTES, Seen};

/// The snapshot's name in the event log directory.
pub const FILE: &str = "state.snapshot";

const KIND: FileKind = FileKind {
    magic: b"PRECISST",
    version: 1,
    what: "state snapshot",
};

/// What the log teaches, and what a snapshot holds with the open reservations.
pub struct State<'a> {
    pub feedback: &'a Feedback,
    pub seen: &'a Seen,
}

/// Writes `state`, with the reservations open in `holds` (the live pacer, while serving), to
/// `path`, as the state of the log up to `positions`.
pub fn save(
    path: &Path,
    state: &State,
    holds: &Pacer,
    positions: &Positions,
    now: DateTime<Utc>,
) -> Result<(), BinaryError> {
    binary::write(path, KIND, |out| {
        now.timestamp().put(out)?;
        (positions.len() as u64).put(out)?;
        for (name, bytes) in positions {
            put_str(out, name)?;
            bytes.put(out)?;
        }
        let feedback = state.feedback;
        feedback.learned.save(out)?;
        feedback.pacer.save_accounts(out)?;
        holds.save_holds(out)?;
        feedback.exposures.save(out)?;
        state.seen.save(out)?;
        Ok(())
    })
}

/// Reads the snapshot in `path` into `feedback` and `seen` (meant to be empty; on an error,
/// partly filled: drop them). Returns the positions it reaches, `None` without a snapshot.
pub fn load(
    path: &Path,
    feedback: &Feedback,
    seen: &Seen,
) -> Result<Option<Positions>, BinaryError> {
    binary::read(path, KIND, |input| {
        let _written = i64::get(input)?;
        let positions = read_positions(input)?;
        feedback.learned.load(input, MAX_ID_BYTES)?;
        feedback.pacer.load_accounts(input, MAX_ID_BYTES)?;
        feedback.pacer.load_holds(input, MAX_ID_BYTES)?;
        feedback.exposures.load(input)?;
        seen.load(input)?;
        Ok(positions)
    })
}

fn read_positions(input: &mut impl Read) -> Result<Positions, BinaryError> {
    let mut positions = Positions::new();
    for _ in 0..get_count(input, usize::MAX)? {
        let name = get_str(input, MAX_ID_BYTES)?;
        positions.insert(name, u64::get(input)?);
    }
    Ok(positions)
}

/// What a start takes over: the state the snapshot held, and the positions past which the log
/// is still to be replayed.
pub struct Restored {
    pub feedback: Feedback,
    pub seen: Seen,
    pub from: Positions,
}

/// At start: the snapshot in `path` read into `feedback` and `seen` (empty). Without one, they
/// stay empty and the whole log is to be replayed; one that cannot be read is set aside with an
/// error line, and so is it.
pub fn restore(path: &Path, feedback: Feedback, seen: Seen) -> Restored {
    match load(path, &feedback, &seen) {
        Ok(from) => {
            if from.is_some() {
                let (keys, clicks) = seen.len();
                tracing::info!(file = %path.display(), keys, clicks, "state snapshot loaded");
            }
            Restored {
                feedback,
                seen,
                from: from.unwrap_or_default(),
            }
        }
        Err(e) => {
            // Outside the macro: its arguments are not evaluated when nothing logs errors.
            let aside = crate::files::set_aside(path);
            tracing::error!(
                "cannot load the state snapshot {}: {e}; rebuilding the state from the whole event log ({aside})",
                path.display(),
            );
            Restored {
                feedback: feedback.empty_like(),
                seen: seen.empty_like(),
                from: Positions::new(),
            }
        }
    }
}

/// Reads the events of the log in `dir` past `from` and up to `to` back into `into`: every event
/// counts toward what campaigns have learned, spent and shown (as when it was logged: for the
/// campaign in `campaigns`; one no longer loaded counts toward learning and spend only), and
/// those whose token `expiry` (see [`Recorder::expiry`]) has not passed at `now` are remembered,
/// so that a retry still counts once and a click's orders still count toward its cap. Returns how
/// many events it read.
pub fn replay(
    dir: &Path,
    (from, to): (&Positions, &Positions),
    into: &State,
    campaigns: &Snapshot,
    expiry: impl Fn(&Event) -> u32,
    now: DateTime<Utc>,
) -> Result<usize, ReadError> {
    let now = unix_secs(now);
    let mut events = events_between(dir, from, to);
    let mut read = 0;
    for event in events.by_ref().filter(|e| e.event != Kind::Bid) {
        let campaign = campaigns.campaign(&event.campaign);
        into.feedback.observe(&event, campaign.map(|c| &**c));
        let expiry = expiry(&event);
        if expiry > now {
            let digest = seen::digest(event.event, &event.bid, event.order.as_deref());
            let click = (event.event == Kind::Conv).then_some(event.bid.as_str());
            into.seen.logged(digest, expiry, click);
        }
        read += 1;
    }
    events.finish()?;
    Ok(read)
}

/// The length of every log file in `dir`, as a [`ReadError`] when it cannot be listed.
pub fn log_lengths(dir: &Path) -> Result<Positions, ReadError> {
    lengths(dir).map_err(|source| ReadError {
        path: dir.to_owned(),
        source,
    })
}

/// Why [`refresh`] wrote no snapshot (the last one stays).
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("cannot read the event log")]
    Read(#[from] ReadError),
    #[error("cannot write the state snapshot {path}")]
    Write {
        path: String,
        #[source]
        source: BinaryError,
    },
}

/// While serving: the snapshot in `path` brought up to the log in `dir` as far as `to` (what
/// [`crate::eventlog::EventLog::positions`] says is on disk), and written anew. Returns how many
/// events it folded in.
pub fn refresh(
    path: &Path,
    (dir, to): (&Path, &Positions),
    store: &Store,
    recorder: &Recorder,
    now: DateTime<Utc>,
) -> Result<usize, RefreshError> {
    let live = store.feedback();
    let Restored {
        feedback,
        seen,
        from,
    } = restore(path, live.empty_like(), recorder.seen().empty_like());
    let state = State {
        feedback: &feedback,
        seen: &seen,
    };
    let campaigns = store.snapshot();
    let folded = replay(
        dir,
        (&from, to),
        &state,
        &campaigns,
        |e| recorder.expiry(e),
        now,
    )?;
    seen.sweep(unix_secs(now));
    feedback.exposures.sweep(now);
    save(path, &state, &live.pacer, to, now).map_err(|source| RefreshError::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(folded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::Receipt;
    use crate::measure::recorder::testing::{
        Fixture, at, click_through, fixture, kind_of, token, token_of,
    };
    use crate::measure::recorder::{Recorded, Refusal};
    use crate::token::Purpose;
    use std::time::Duration;

    /// Replays the whole log in `logs` into `fx`: how many events it read.
    fn replay_all(fx: &Fixture, logs: &Path, now: DateTime<Utc>) -> usize {
        replay_into(fx, logs, &Positions::new(), now)
    }

    /// Replays the log in `logs` past `from` into `fx`: how many events it read.
    fn replay_into(fx: &Fixture, logs: &Path, from: &Positions, now: DateTime<Utc>) -> usize {
        let to = log_lengths(logs).unwrap();
        let campaigns = fx.store.snapshot();
        let expiry = |e: &Event| fx.recorder.expiry(e);
        replay(logs, (from, &to), &state_of(fx), &campaigns, expiry, now).unwrap()
    }

    /// A fixture's live state.
    fn state_of(fx: &Fixture) -> State<'_> {
        State {
            feedback: fx.store.feedback(),
            seen: fx.recorder.seen(),
        }
    }

    /// A fixture whose bid `b1` won at 1.5 CPM at 10:00: it, b1's token, and that time.
    fn won_once() -> (Fixture, String, DateTime<Utc>) {
        let fx = fixture();
        let now = at("2026-11-23T10:00:00Z");
        let t = token(&fx.recorder, Purpose::Win, now);
        fx.recorder.win(&fx.store, &t, Some("1.5"), now).unwrap();
        (fx, t, now)
    }

    #[test]
    fn a_replay_reads_back_every_event_and_what_it_taught() {
        let (first, t, now) = won_once();
        first
            .recorder
            .impression(
                &first.store,
                &token(&first.recorder, Purpose::Imp, now),
                now,
            )
            .unwrap();
        first.recorder.bids(Vec::new(), now);
        first.recorder.close(Duration::from_secs(5));
        // Started again on the same log: two events read, the spend back, a retry counted once.
        let again = fixture();
        let logs = first._dir.path().join("logs");
        assert_eq!(replay_all(&again, &logs, now), 2);
        let counts = again.store.learned().counts("shoes");
        assert_eq!((counts.wins, counts.impressions), (1, 1));
        assert!((counts.spend_usd - 0.0015).abs() < 1e-12);
        let retried = again.recorder.win(&again.store, &t, Some("1.5"), now);
        assert_eq!(retried, Ok(Recorded::Again(Receipt::DURABLE)));
    }

    /// What a fixture has taken in: `shoes`' counts, its spend, its creative's counts, and what
    /// its recorder remembers.
    fn taught(fx: &Fixture, now: DateTime<Utc>) -> impl PartialEq + std::fmt::Debug {
        let snapshot = fx.store.snapshot();
        let shoes = snapshot.campaign("shoes").expect("shoes");
        let spent = fx.store.pacer().state(shoes, now).expect("an account");
        (
            fx.store.learned().counts("shoes"),
            fx.store.learned().creative_counts("shoes", "c"),
            (spent.spent_total_usd, spent.spent_today_usd),
            fx.recorder.seen().len(),
        )
    }

    #[test]
    fn a_snapshot_and_the_log_after_it_give_what_the_whole_log_gives() {
        let first = fixture();
        let (store, recorder) = (&first.store, &first.recorder);
        let logs = first._dir.path().join("logs");
        let path = logs.join(FILE);
        let now = at("2026-11-23T10:00:00Z");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Before the snapshot: five wins at 1.5, an impression, a click and two of its orders.
        let win = |bid: &str, price| {
            recorder.win(
                store,
                &token_of(recorder, bid, Purpose::Win, now),
                Some(price),
                now,
            )
        };
        for n in 0..5 {
            assert_eq!(kind_of(&win(&format!("b{n}"), "1.5")), Ok("new"));
        }
        let t = token(recorder, Purpose::Imp, now);
        recorder.impression(store, &t, now).unwrap();
        let pclid = click_through(&first, now, now);
        for order in ["o1", "o2"] {
            let converted = recorder.conversion(store, &pclid, Some("10"), Some(order), now);
            assert_eq!(kind_of(&converted), Ok("new"), "{order}");
        }
        rt.block_on(recorder.durable(converted_last(recorder, store, &pclid, now)))
            .unwrap();
        let on_disk = recorder.log().positions().unwrap();
        let folded = refresh(&path, (&logs, &on_disk), store, recorder, now);
        assert_eq!(folded.unwrap(), 9);
        // After it: three more wins at 1.0, a retry of a win from before, a third order, a fourth.
        for n in 5..8 {
            assert_eq!(kind_of(&win(&format!("b{n}"), "1.0")), Ok("new"));
        }
        assert_eq!(kind_of(&win("b0", "1.5")), Ok("again"));
        let third = recorder.conversion(store, &pclid, None, Some("o3"), now);
        assert_eq!(kind_of(&third), Ok("new"));
        let fourth = recorder.conversion(store, &pclid, None, Some("o4"), now);
        assert_eq!(fourth, Err(Refusal::TooManyOrders));
        recorder.close(Duration::from_secs(5));

        // The whole log replayed, and the snapshot with the log after it: the same state.
        let whole = fixture();
        assert_eq!(replay_all(&whole, &logs, now), 13);
        let resumed = fixture();
        let from = load(&path, resumed.store.feedback(), resumed.recorder.seen())
            .unwrap()
            .expect("a snapshot");
        assert_eq!(
            replay_into(&resumed, &logs, &from, now),
            4,
            "what came after"
        );
        assert_eq!(taught(&resumed, now), taught(&whole, now));
        assert_eq!(taught(&resumed, now), taught(&first, now));
        let counts = resumed.store.learned().counts("shoes");
        assert_eq!(
            (
                counts.wins,
                counts.impressions,
                counts.clicks,
                counts.conversions
            ),
            (8, 1, 1, 3)
        );
        assert!((counts.spend_usd - (5.0 * 0.0015 + 3.0 * 0.001)).abs() < 1e-12);
        // Either way, what was logged is a repeat and the click has had its three orders.
        for fx in [&whole, &resumed] {
            let (store, recorder) = (&fx.store, &fx.recorder);
            let retried = recorder.win(
                store,
                &token_of(recorder, "b6", Purpose::Win, now),
                Some("1.0"),
                now,
            );
            assert_eq!(kind_of(&retried), Ok("again"));
            let fourth = recorder.conversion(store, &pclid, None, Some("o4"), now);
            assert_eq!(fourth, Err(Refusal::TooManyOrders));
        }
    }

    /// The second order's conversion again (a repeat): its receipt is the last line's.
    fn converted_last(
        recorder: &Recorder,
        store: &Store,
        pclid: &str,
        now: DateTime<Utc>,
    ) -> Recorded {
        let again = recorder.conversion(store, pclid, Some("10"), Some("o2"), now);
        assert_eq!(kind_of(&again), Ok("again"));
        again.unwrap()
    }

    #[test]
    fn a_damaged_snapshot_is_set_aside_and_the_state_rebuilt_from_the_whole_log() {
        let (first, _, now) = won_once();
        let logs = first._dir.path().join("logs");
        let path = logs.join(FILE);
        first.recorder.close(Duration::from_secs(5));
        let lengths = log_lengths(&logs).unwrap();
        save(&path, &state_of(&first), first.store.pacer(), &lengths, now).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let fresh = fixture();
        let loaded = load(&path, fresh.store.feedback(), fresh.recorder.seen());
        assert!(matches!(loaded, Err(BinaryError::Corrupt(_))), "{loaded:?}");

        let again = fixture();
        let Restored {
            feedback,
            seen,
            from,
        } = restore(
            &path,
            again.store.feedback().empty_like(),
            again.recorder.seen().empty_like(),
        );
        assert!(from.is_empty(), "the whole log is replayed");
        assert_eq!(seen.len(), (0, 0));
        assert_eq!(feedback.learned.counts("shoes"), Default::default());
        assert!(!path.exists());
        assert_eq!(
            std::fs::read(logs.join("state.snapshot.bad")).unwrap(),
            bytes
        );
        // And a start with no snapshot at all starts from the whole log too.
        let none = restore(&path, feedback, seen);
        assert!(none.from.is_empty());
    }
}
