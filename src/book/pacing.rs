//! Pacing: what each campaign has spent, what it has reserved, and whether it may bid now.
//!
//! Spend is the clearing price of won bids. Wins arrive after bids, so a bid first *reserves* its
//! price (a hold) and the win *settles* it: the hold is released and the clearing price added to
//! spend; a hold that no win claims within `hold_secs` is released by [`Pacer::sweep`]. A campaign
//! bids only while spend plus holds plus the new bid fit under its daily and total budgets, so
//! spend never exceeds a budget by more than one bid, however many requests arrive at once.
//!
//! Even pacing spreads what is left of the day's budget over what is left of the day's running
//! hours. At the start of each local hour it draws a straight line from what has been used to
//! what may be used by the day's end; every `step_secs` it sets a pass rate (the share of bids
//! let through, drawn at random per bid) that should bring use onto the line by the end of the
//! step, from the demand and win rate it measured in the step before, and a ceiling a little above
//! the line that stops a burst. A step that fell short is made up in the next, so each hour spends
//! its share. Steps are taken lazily, by the first bid after a step is due: pacing has no timer
//! and follows the bidder's clock, simulated or not.
//!
//! Spend is known only from the event log: while the log cannot record ([`Pacer::record_spend_in`]),
//! budgeted campaigns step aside (`spend_unrecorded`) rather than spend what could not be counted.
//!
//! Reservations live in memory: a graceful stop saves them ([`Pacer::save_holds`]) and the next
//! start takes them back. After a crash those of the last moments are unknown, so the start treats
//! every budgeted campaign's remaining budget as held until `hold_secs` have passed
//! ([`Pacer::hold_back_until`]): by then every bid made before the crash has been won or has
//! lapsed, and its win, logged, counts in spend. Overspend stays within one bid either way.
//!
//! Money is counted in nano-dollars (USD, as the event log counts it) in atomics: the bid path
//! never takes a lock here, except a `try_lock` that one bid per step takes to re-plan. Accounts
//! are kept by campaign id and outlive reloads; they are rebuilt at start from the state snapshot
//! (which also keeps the open reservations: [`Pacer::save_holds`]) and the event log after it.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::binary::{BinaryError, Le, get_count, get_str, put_str};
use crate::campaign::pricing::{Currency, Rates};
use crate::campaign::{Budget, Campaign, Pacing};
use crate::clock::{local_day, next_hour, next_midnight};
use crate::eventlog::Health;
use crate::metrics::Exposition;

/// Nano-dollars per dollar.
const NANOS: f64 = 1e9;

/// How far above the pacing line the ceiling lets use go, as a share of the step's allotment:
/// room for the randomness of the pass rate, not for a burst.
const CEILING_SLACK: f64 = 0.25;

/// The pass rate aims this much above the step's need: falling short is made up only in the next
/// step, going over is stopped by the ceiling.
const AIM_ABOVE: f64 = 1.25;

/// Every campaign's spend and holds, and the holds by bid.
#[derive(Debug)]
pub struct Pacer {
    accounts: DashMap<String, Arc<Account>>,
    /// Bids whose price is reserved, until their win or `hold_secs`.
    holds: DashMap<String, Hold>,
    hold_secs: i64,
    step_secs: i64,
    /// Unix seconds until which budgeted campaigns do not bid: reservations lost in a crash
    /// may still be won until then.
    held_back_until: AtomicI64,
    /// Candidates that stepped aside because a budget was spent (counted for `/metrics`).
    pub out_of_budget: AtomicU64,
    /// Candidates that even pacing held back.
    pub throttled: AtomicU64,
    /// Where spend is recorded: budgeted campaigns bid only while it records.
    spend_log: OnceLock<Health>,
    /// Candidates with a budget that stepped aside because spend could not be recorded.
    pub spend_unrecorded: AtomicU64,
}

/// One campaign's money, in nano-dollars.
#[derive(Debug)]
pub struct Account {
    id: String,
    spent_total: AtomicI64,
    /// Spend on the local day `day`.
    spent_day: AtomicI64,
    day: AtomicI64,
    /// Reserved by bids not yet won or released.
    held: AtomicI64,
    /// Even pacing's current decisions, read by every bid.
    pass_rate: AtomicF64,
    ceiling: AtomicI64,
    efficiency: AtomicF64,
    /// Unix seconds of the next re-plan.
    next_step: AtomicI64,
    /// Since the last step: the price of every bid that reached the throttle, of every bid let
    /// through, and of every win.
    offered: AtomicI64,
    admitted: AtomicI64,
    settled: AtomicI64,
    plan: Mutex<Plan>,
}

/// Even pacing's line and its measurements, touched only by the bid that takes a step.
#[derive(Debug, Default)]
struct Plan {
    /// The line: `use(t) = from + rate × running seconds since start`; re-drawn each local hour.
    start: Option<DateTime<Utc>>,
    from: f64,
    rate: f64,
    /// The local hour the line was drawn in (its end), and the limits it was drawn for: a budget
    /// edited in the file gets a new line at once.
    hour_end: Option<DateTime<Utc>>,
    limits: (Option<i64>, Option<i64>),
    last_step: Option<DateTime<Utc>>,
    /// Offered bid value per running second, smoothed.
    demand: Option<f64>,
}

/// A bid's reservation against its campaign's budgets.
#[derive(Debug)]
struct Hold {
    account: Arc<Account>,
    nanos: i64,
    /// Unix seconds.
    expires: i64,
}

/// What [`Pacer::admit`] would decide now, read without reserving, drawing or re-planning (see
/// [`Pacer::preview`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Preview {
    /// It may bid; under even pacing, `pass_rate` is the share of bids let through now.
    Open { pass_rate: Option<f64> },
    /// The `daily` or `total` budget cannot take the bid.
    OutOfBudget {
        which: &'static str,
        spent_usd: f64,
        held_usd: f64,
        limit_usd: f64,
    },
    /// Even pacing's ceiling for this step is reached.
    Ahead { using_usd: f64, ceiling_usd: f64 },
    /// Every budgeted campaign steps aside for now: `why`.
    Held { why: String },
}

/// What a candidate got from [`Pacer::admit`].
#[derive(Debug)]
pub enum Admission {
    /// No budget: nothing to reserve.
    Free,
    /// The bid's price is reserved; [`Pacer::hold`] it under the bid's id, or [`Pacer::cancel`] it.
    Reserved(Reservation),
    /// A budget is spent (or would be by this bid).
    OutOfBudget,
    /// Even pacing holds this bid back.
    Throttled,
}

#[derive(Debug)]
pub struct Reservation {
    account: Arc<Account>,
    nanos: i64,
}

/// What `/status` shows of an account, in USD.
#[derive(Debug, Clone, Default, Serialize)]
pub struct State {
    pub spent_today_usd: f64,
    pub spent_total_usd: f64,
    pub held_usd: f64,
    /// The share of bids even pacing lets through (1 for asap).
    pub pass_rate: f64,
    /// Where even pacing's line puts what the campaign should have used (spent, and held as its
    /// wins are expected to spend) by `now`, USD; `None` before its first plan, or under asap.
    pub line_usd: Option<f64>,
}

/// A hold as a state snapshot (or, from an earlier precis, `holds.json`) keeps it.
#[derive(Debug, Deserialize)]
struct SavedHold {
    bid: String,
    campaign: String,
    nanos: i64,
    expires: i64,
}

impl Pacer {
    pub fn new(hold_secs: u32, step_secs: u32) -> Pacer {
        Pacer {
            accounts: DashMap::new(),
            holds: DashMap::new(),
            hold_secs: hold_secs.into(),
            step_secs: step_secs.max(1).into(),
            held_back_until: AtomicI64::new(i64::MIN),
            out_of_budget: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            spend_log: OnceLock::new(),
            spend_unrecorded: AtomicU64::new(0),
        }
    }

    /// Budgeted campaigns bid only while `log` records: spend that cannot be written would be
    /// forgotten at the next start, and its events answered 503 meanwhile.
    pub fn record_spend_in(&self, log: Health) {
        let _ = self.spend_log.set(log);
    }

    /// The account of a campaign with a budget (made on first use), for [`crate::book::ranking::Ranked`].
    pub fn account_for(&self, campaign: &Campaign) -> Option<Arc<Account>> {
        campaign.budget.as_ref()?;
        Some(self.account(&campaign.id))
    }

    fn account(&self, id: &str) -> Arc<Account> {
        if let Some(account) = self.accounts.get(id) {
            return account.clone();
        }
        self.accounts
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(Account::new(id)))
            .clone()
    }

    /// Whether `campaign` may bid `usd_cpm` now, and if so its reservation.
    pub fn admit(
        &self,
        campaign: &Campaign,
        account: Option<&Arc<Account>>,
        usd_cpm: f64,
        rates: &Rates,
        now: DateTime<Utc>,
    ) -> Admission {
        let (Some(budget), Some(account)) = (&campaign.budget, account) else {
            return Admission::Free;
        };
        if self.spend_log.get().is_some_and(|log| !log.recording()) {
            self.spend_unrecorded.fetch_add(1, Ordering::Relaxed);
            return Admission::OutOfBudget;
        }
        if now.timestamp() < self.held_back_until.load(Ordering::Relaxed) {
            self.out_of_budget.fetch_add(1, Ordering::Relaxed);
            return Admission::OutOfBudget;
        }
        let nanos = (usd_cpm / 1000.0 * NANOS).round() as i64;
        account.roll_day(now, campaign.timezone);
        if budget.pacing == Pacing::Even {
            if now.timestamp() >= account.next_step.load(Ordering::Relaxed) {
                self.step(campaign, budget, account, rates, now);
            }
            account.offered.fetch_add(nanos, Ordering::Relaxed);
            let efficiency = account.efficiency.load();
            let using = account.spent_of(budget) as f64
                + (account.held.load(Ordering::Relaxed) + nanos) as f64 * efficiency;
            // The thread's generator: seeded per request thread by `[pacing] seed` when set.
            if fastrand::f64() >= account.pass_rate.load()
                || using > account.ceiling.load(Ordering::Relaxed) as f64
            {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                return Admission::Throttled;
            }
        }
        let held = account.held.fetch_add(nanos, Ordering::AcqRel) + nanos;
        let limits = Limits::of(budget, campaign, rates);
        let fits = |spent: &AtomicI64, limit: Option<i64>| {
            limit.is_none_or(|limit| spent.load(Ordering::Acquire) + held <= limit)
        };
        if !(fits(&account.spent_day, limits.daily) && fits(&account.spent_total, limits.total)) {
            account.held.fetch_sub(nanos, Ordering::AcqRel);
            self.out_of_budget.fetch_add(1, Ordering::Relaxed);
            return Admission::OutOfBudget;
        }
        account.admitted.fetch_add(nanos, Ordering::Relaxed);
        Admission::Reserved(Reservation {
            account: account.clone(),
            nanos,
        })
    }

    /// What [`Pacer::admit`] would decide for a bid of `usd_cpm` now, short of its random draw,
    /// changing nothing: for explaining a no-bid.
    pub fn preview(
        &self,
        campaign: &Campaign,
        usd_cpm: f64,
        rates: &Rates,
        now: DateTime<Utc>,
    ) -> Preview {
        let Some(budget) = &campaign.budget else {
            return Preview::Open { pass_rate: None };
        };
        if self.spend_log.get().is_some_and(|log| !log.recording()) {
            let why = "the event log cannot record spend now (spend_unrecorded)".to_owned();
            return Preview::Held { why };
        }
        let until = self.held_back_until.load(Ordering::Relaxed);
        if now.timestamp() < until {
            let until =
                DateTime::from_timestamp(until, 0).map_or(String::new(), |t| t.to_rfc3339());
            let why = format!(
                "after a crash, budgets are held back until {until}, when every bid made before it has been won or has lapsed"
            );
            return Preview::Held { why };
        }
        let nanos = (usd_cpm / 1000.0 * NANOS).round() as i64;
        let usd = |nanos: i64| nanos as f64 / NANOS;
        let account = self.accounts.get(&campaign.id).map(|a| a.clone());
        let load = |f: fn(&Account) -> &AtomicI64| {
            account.as_ref().map_or(0, |a| f(a).load(Ordering::Acquire))
        };
        let today = account
            .as_ref()
            .is_some_and(|a| local_day(now, campaign.timezone) <= a.day.load(Ordering::Acquire));
        let spent_day = if today { load(|a| &a.spent_day) } else { 0 };
        let (spent_total, held) = (load(|a| &a.spent_total), load(|a| &a.held));
        let limits = Limits::of(budget, campaign, rates);
        for (which, spent, limit) in [
            ("daily", spent_day, limits.daily),
            ("total", spent_total, limits.total),
        ] {
            if let Some(limit) = limit.filter(|&limit| spent + held + nanos > limit) {
                return Preview::OutOfBudget {
                    which,
                    spent_usd: usd(spent),
                    held_usd: usd(held),
                    limit_usd: usd(limit),
                };
            }
        }
        let (Pacing::Even, Some(account)) = (budget.pacing, &account) else {
            return Preview::Open { pass_rate: None };
        };
        let spent = if budget.daily.is_some() {
            spent_day
        } else {
            spent_total
        };
        let using = spent as f64 + (held + nanos) as f64 * account.efficiency.load();
        let ceiling = account.ceiling.load(Ordering::Relaxed);
        if using > ceiling as f64 {
            return Preview::Ahead {
                using_usd: using / NANOS,
                ceiling_usd: usd(ceiling),
            };
        }
        Preview::Open {
            pass_rate: Some(account.pass_rate.load()),
        }
    }

    /// Keeps `reservation` under the id of the bid it pays for, until its win or `hold_secs`.
    pub fn hold(&self, reservation: Reservation, bid: &str, now: DateTime<Utc>) {
        let Reservation { account, nanos } = reservation;
        let expires = now.timestamp() + self.hold_secs;
        self.holds.insert(
            bid.to_owned(),
            Hold {
                account,
                nanos,
                expires,
            },
        );
    }

    /// Gives back a reservation that did not become a bid.
    pub fn cancel(&self, reservation: Reservation) {
        reservation
            .account
            .held
            .fetch_sub(reservation.nanos, Ordering::AcqRel);
    }

    /// A win of `bid` for campaign `campaign` at `spend_usd`: its hold is released and the spend
    /// counted on the campaign's local day (`tz`) of `now`. Also used to replay the event log.
    pub fn settle(&self, bid: &str, campaign: &str, tz: Tz, spend_usd: f64, now: DateTime<Utc>) {
        if let Some((_, hold)) = self.holds.remove(bid) {
            hold.account.held.fetch_sub(hold.nanos, Ordering::AcqRel);
        }
        let account = self.account(campaign);
        account.roll_day(now, tz);
        let nanos = (spend_usd * NANOS).round() as i64;
        account.spent_day.fetch_add(nanos, Ordering::AcqRel);
        account.spent_total.fetch_add(nanos, Ordering::AcqRel);
        account.settled.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Releases holds no win claimed in time. Returns how many.
    pub fn sweep(&self, now: DateTime<Utc>) -> usize {
        let now = now.timestamp();
        let before = self.holds.len();
        self.holds.retain(|_, hold| {
            let keep = hold.expires > now;
            if !keep {
                hold.account.held.fetch_sub(hold.nanos, Ordering::AcqRel);
            }
            keep
        });
        before.saturating_sub(self.holds.len())
    }

    /// Its metrics: the bids waiting for their win notice.
    pub fn report(&self, out: &mut Exposition) {
        out.gauge(
            "precis_budget_holds",
            "Bids whose price is reserved, waiting for their win notice.",
            self.holds(),
        );
    }

    /// Holds waiting for their win.
    pub fn holds(&self) -> usize {
        self.holds.len()
    }

    /// What `/status` shows for a campaign at `now` (a day that has ended spent nothing today,
    /// even before the campaign's next bid starts the new day).
    pub fn state(&self, campaign: &Campaign, now: DateTime<Utc>) -> Option<State> {
        let account = self.accounts.get(&campaign.id)?;
        let usd = |a: &AtomicI64| a.load(Ordering::Relaxed) as f64 / NANOS;
        let today = local_day(now, campaign.timezone) <= account.day.load(Ordering::Acquire);
        // The plan is the bid path's (it takes it with `try_lock`): read it only when free.
        let line_usd = account.plan.try_lock().ok().and_then(|plan| {
            let start = plan
                .start
                .filter(|_| today || campaign.budget.as_ref().is_some_and(|b| b.daily.is_none()))?;
            let line = plan.from + plan.rate * running_secs(campaign, start, now);
            Some(line / NANOS)
        });
        Some(State {
            spent_today_usd: if today { usd(&account.spent_day) } else { 0.0 },
            spent_total_usd: usd(&account.spent_total),
            held_usd: usd(&account.held),
            pass_rate: account.pass_rate.load(),
            line_usd,
        })
    }

    /// Writes every account's spend into a state snapshot (the reservations apart:
    /// [`Pacer::save_holds`]).
    pub fn save_accounts(&self, out: &mut impl Write) -> std::io::Result<()> {
        let accounts: Vec<(String, [i64; 3])> = self
            .accounts
            .iter()
            .map(|account| {
                let read = |n: &AtomicI64| n.load(Ordering::Acquire);
                let spent = [&account.spent_total, &account.spent_day, &account.day].map(read);
                (account.id.clone(), spent)
            })
            .collect();
        (accounts.len() as u64).put(out)?;
        for (id, spent) in accounts {
            put_str(out, &id)?;
            for n in spent {
                n.put(out)?;
            }
        }
        Ok(())
    }

    /// Reads what [`Pacer::save_accounts`] wrote into this one (meant to be empty).
    pub fn load_accounts(&self, input: &mut impl Read, max_id: usize) -> Result<(), BinaryError> {
        for _ in 0..get_count(input, usize::MAX)? {
            let account = self.account(&get_str(input, max_id)?);
            for n in [&account.spent_total, &account.spent_day, &account.day] {
                n.store(i64::get(input)?, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Writes the reservations still open into a state snapshot, so that the wins of bids made
    /// before a restart are still covered by them after it.
    pub fn save_holds(&self, out: &mut impl Write) -> std::io::Result<()> {
        let holds: Vec<SavedHold> = self
            .holds
            .iter()
            .map(|h| SavedHold {
                bid: h.key().clone(),
                campaign: h.account.id.clone(),
                nanos: h.nanos,
                expires: h.expires,
            })
            .collect();
        (holds.len() as u64).put(out)?;
        for hold in holds {
            put_str(out, &hold.bid)?;
            put_str(out, &hold.campaign)?;
            hold.nanos.put(out)?;
            hold.expires.put(out)?;
        }
        Ok(())
    }

    /// Reads what [`Pacer::save_holds`] wrote into this one. Returns how many holds it took.
    pub fn load_holds(&self, input: &mut impl Read, max_id: usize) -> Result<usize, BinaryError> {
        let count = get_count(input, usize::MAX)?;
        for _ in 0..count {
            self.take(SavedHold {
                bid: get_str(input, max_id)?,
                campaign: get_str(input, max_id)?,
                nanos: i64::get(input)?,
                expires: i64::get(input)?,
            });
        }
        Ok(count)
    }

    /// Reads the holds file an earlier precis saved at shutdown (JSON), then removes it: each
    /// hold is taken once. No file is no holds.
    pub fn load_holds_file(&self, path: &std::path::Path) -> std::io::Result<usize> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let saved: Vec<SavedHold> = serde_json::from_slice(&text)?;
        let count = saved.len();
        saved.into_iter().for_each(|hold| self.take(hold));
        std::fs::remove_file(path)?;
        Ok(count)
    }

    /// After a crash: reservations made before it are unknown, and any of them may still be won
    /// for `hold_secs`, so every budgeted campaign counts its remaining budget as held, and stays
    /// out of the auction, until `hold_secs` after `now`. Returns that time.
    pub fn hold_back_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let until = now + Duration::seconds(self.hold_secs);
        self.held_back_until
            .fetch_max(until.timestamp(), Ordering::Relaxed);
        until
    }

    /// Holds a reservation read back from disk.
    fn take(&self, hold: SavedHold) {
        let account = self.account(&hold.campaign);
        account.held.fetch_add(hold.nanos, Ordering::AcqRel);
        self.holds.insert(
            hold.bid,
            Hold {
                account,
                nanos: hold.nanos,
                expires: hold.expires,
            },
        );
    }

    /// An empty one with the same settings.
    pub fn empty_like(&self) -> Pacer {
        Pacer {
            hold_secs: self.hold_secs,
            step_secs: self.step_secs,
            ..Pacer::new(0, 0)
        }
    }

    /// Even pacing's re-plan: the line for this hour, the pass rate and ceiling for this step.
    fn step(
        &self,
        campaign: &Campaign,
        budget: &Budget,
        account: &Account,
        rates: &Rates,
        now: DateTime<Utc>,
    ) {
        let Ok(mut plan) = account.plan.try_lock() else {
            return; // Another bid is re-planning right now.
        };
        if now.timestamp() < account.next_step.load(Ordering::Acquire) {
            return;
        }
        let step_end = now + Duration::seconds(self.step_secs);
        let limits = Limits::of(budget, campaign, rates);
        // Measurements of the step that ends now.
        let offered = account.offered.swap(0, Ordering::Relaxed) as f64;
        let admitted = account.admitted.swap(0, Ordering::Relaxed) as f64;
        let settled = account.settled.swap(0, Ordering::Relaxed) as f64;
        let mut efficiency = account.efficiency.load();
        if admitted > 0.0 {
            let measured = (settled / admitted).clamp(0.01, 1.0);
            efficiency = 0.7 * efficiency + 0.3 * measured;
        }
        let since_last = plan
            .last_step
            .map(|last| running_secs(campaign, last, now))
            .unwrap_or(0.0);
        // Demand measured over a long gap (the campaign was not running) says little.
        plan.demand = if since_last > 0.0 && since_last <= 3.0 * self.step_secs as f64 {
            let measured = offered / since_last;
            Some(plan.demand.map_or(measured, |d| 0.5 * d + 0.5 * measured))
        } else {
            None
        };
        plan.last_step = Some(now);

        let held = account.held.load(Ordering::Acquire) as f64;
        let using = account.spent_of(budget) as f64 + held * efficiency;
        // A new line at the start of each local hour, when a day or a restart begins, and when the
        // budget changes.
        if plan.hour_end.is_none_or(|end| now >= end) || plan.limits != (limits.daily, limits.total)
        {
            plan.limits = (limits.daily, limits.total);
            let horizon = match (limits.daily, campaign.end) {
                (Some(_), end) => {
                    let midnight = next_midnight(now, campaign.timezone);
                    end.map_or(midnight, |end| end.min(midnight))
                }
                (None, end) => end.unwrap_or(now),
            };
            let left = match (limits.daily, limits.total) {
                (Some(daily), Some(total)) => (daily as f64 - using).min(
                    total as f64
                        - account.spent_total.load(Ordering::Acquire) as f64
                        - held * efficiency,
                ),
                (Some(limit), None) | (None, Some(limit)) => limit as f64 - using,
                (None, None) => 0.0,
            };
            let running = running_secs(campaign, now, horizon);
            plan.start = Some(now);
            plan.from = using;
            plan.rate = if running > 0.0 {
                left.max(0.0) / running
            } else {
                0.0
            };
            plan.hour_end = Some(next_hour(now, campaign.timezone));
        }
        let line_at = |t: DateTime<Utc>| {
            plan.start.map_or(using, |start| {
                plan.from + plan.rate * running_secs(campaign, start, t)
            })
        };
        let step_running = running_secs(campaign, now, step_end);
        let target = (line_at(step_end) - using).max(0.0);
        let ceiling = line_at(step_end) + CEILING_SLACK * plan.rate * step_running;
        let pass_rate = match plan.demand {
            Some(demand) if demand > 0.0 && step_running > 0.0 => {
                (AIM_ABOVE * target / (demand * step_running * efficiency)).clamp(0.0, 1.0)
            }
            // No measurement yet: let bids through and let the ceiling stop them.
            _ => 1.0,
        };
        account.efficiency.store(efficiency);
        account.pass_rate.store(pass_rate);
        account.ceiling.store(ceiling as i64, Ordering::Relaxed);
        account
            .next_step
            .store(step_end.timestamp(), Ordering::Release);
    }
}

impl Account {
    fn new(id: &str) -> Account {
        Account {
            id: id.to_owned(),
            spent_total: AtomicI64::new(0),
            spent_day: AtomicI64::new(0),
            day: AtomicI64::new(i64::MIN),
            held: AtomicI64::new(0),
            pass_rate: AtomicF64::new(1.0),
            ceiling: AtomicI64::new(i64::MAX),
            efficiency: AtomicF64::new(1.0),
            next_step: AtomicI64::new(i64::MIN),
            offered: AtomicI64::new(0),
            admitted: AtomicI64::new(0),
            settled: AtomicI64::new(0),
            plan: Mutex::new(Plan::default()),
        }
    }

    /// Starts a new day's spend at local midnight (days only move forward).
    fn roll_day(&self, now: DateTime<Utc>, tz: Tz) {
        let today = local_day(now, tz);
        let day = self.day.load(Ordering::Acquire);
        if today > day
            && self
                .day
                .compare_exchange(day, today, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.spent_day.store(0, Ordering::Release);
        }
    }

    /// The spend even pacing paces: today's with a daily budget, else the flight's.
    fn spent_of(&self, budget: &Budget) -> i64 {
        match budget.daily {
            Some(_) => self.spent_day.load(Ordering::Acquire),
            None => self.spent_total.load(Ordering::Acquire),
        }
    }
}

/// A budget's limits in nano-dollars at today's rates.
struct Limits {
    daily: Option<i64>,
    total: Option<i64>,
}

impl Limits {
    fn of(budget: &Budget, campaign: &Campaign, rates: &Rates) -> Limits {
        let nanos = |amount: Option<f64>| {
            amount.map(|a| {
                let usd = rates
                    .convert(a, campaign.pricing.currency, Currency::USD)
                    .unwrap_or(0.0);
                (usd * NANOS).round() as i64
            })
        };
        Limits {
            daily: nanos(budget.daily),
            total: nanos(budget.total),
        }
    }
}

/// Seconds of `[from, to)` in which the campaign runs: in flight and within its dayparting,
/// taken a local hour at a time.
fn running_secs(campaign: &Campaign, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let mut total = 0.0;
    let mut t = from;
    while t < to {
        let next = next_hour(t, campaign.timezone).min(to);
        if campaign.in_flight(t) && campaign.targeting.scheduled(t) {
            total += (next - t).as_seconds_f64();
        }
        t = next;
    }
    total
}

/// An f64 in an atomic, by its bits.
#[derive(Debug)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn new(value: f64) -> AtomicF64 {
        AtomicF64(AtomicU64::new(value.to_bits()))
    }

    fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn store(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::Budget;
    use std::path::Path;

    fn rates() -> Rates {
        Rates::new([])
    }

    /// A CPM campaign at `cpm` USD with `budget`, running the hours `hours` (UTC) every day.
    fn campaign(budget: Budget, hours: &str) -> Campaign {
        let text = format!(
            "adomain = [\"shop.example\"]\n[pricing]\nmodel = \"cpm\"\ncpm = 2.0\n[targeting]\nhours = {hours}\n\
             [[creative]]\nid = \"c\"\nformat = \"banner\"\nw = 300\nh = 250\nadm = \"ad\"\n\
             landing = \"https://shop.example/\""
        );
        let mut campaign = crate::campaign::file::parse(&text, Path::new("paced.toml"), &rates())
            .expect("a valid campaign");
        campaign.budget = Some(budget);
        campaign
    }

    #[test]
    fn running_seconds_are_those_both_in_flight_and_within_the_campaigns_hours() {
        let budget = || Budget {
            daily: Some(24.0),
            total: None,
            pacing: Pacing::Even,
        };
        let (midnight, end) = (at("2026-11-23T00:00:00Z"), at("2026-11-24T00:00:00Z"));
        // Scheduled 00:00-12:00, in flight all day: 12 hours.
        let mornings = campaign(budget(), "[[0, 12]]");
        assert_eq!(running_secs(&mornings, midnight, end), 12.0 * 3600.0);
        // Scheduled all day, in flight until 05:30: the hours that start in flight, 00:00 to
        // 05:00, a local hour at a time: 6 hours.
        let mut ending = campaign(budget(), "[[0, 24]]");
        ending.end = Some(at("2026-11-23T05:30:00Z"));
        assert_eq!(running_secs(&ending, midnight, end), 6.0 * 3600.0);
        // Part hours count by the second.
        let half = at("2026-11-23T11:30:00Z");
        assert_eq!(running_secs(&mornings, half, end), 1800.0);
    }

    #[test]
    fn the_state_shows_where_even_pacings_line_puts_use_by_now() {
        let budget = Budget {
            daily: Some(24.0),
            total: None,
            pacing: Pacing::Even,
        };
        let campaign = campaign(budget, "[[0, 24]]");
        let pacer = Pacer::new(60, 10);
        let midnight = at("2026-11-23T00:00:00Z");
        assert_eq!(
            pacer.state(&campaign, midnight).map(|s| s.line_usd),
            None,
            "no account yet"
        );
        // The first bid of the day draws the line: 24 USD over 24 running hours, from 0 used.
        let account = pacer.account_for(&campaign);
        let _ = pacer.admit(&campaign, account.as_ref(), 2.0, &rates(), midnight);
        let line = |t: &str| pacer.state(&campaign, at(t)).and_then(|s| s.line_usd);
        let near = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-6);
        assert!(
            near(line("2026-11-23T00:00:00Z"), 0.0),
            "{:?}",
            line("2026-11-23T00:00:00Z")
        );
        assert!(
            near(line("2026-11-23T06:00:00Z"), 6.0),
            "{:?}",
            line("2026-11-23T06:00:00Z")
        );
        // The next local day has spent nothing and has no line until its first bid draws one.
        assert_eq!(line("2026-11-24T01:00:00Z"), None);
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// Seeds the draws even pacing makes on the test's thread; printed in failure messages so a
    /// failure can be replayed.
    const SEED: u64 = 25;

    /// An asap campaign with this budget (2.00 CPM, every hour).
    fn asap(daily: Option<f64>, total: Option<f64>) -> Campaign {
        let pacing = Pacing::Asap;
        campaign(
            Budget {
                daily,
                total,
                pacing,
            },
            "[[0, 24]]",
        )
    }

    /// Bids `campaign` 2.00 CPM at `now` until its budget says no, each bid won at once at 1.60
    /// (0.0016 spent) under the id `{day}-{n}`: how many bids it made.
    fn bid_and_win_until_spent(
        pacer: &Pacer,
        campaign: &Campaign,
        day: &str,
        now: DateTime<Utc>,
    ) -> usize {
        let account = pacer.account_for(campaign);
        for n in 0..100 {
            match pacer.admit(campaign, account.as_ref(), 2.0, &rates(), now) {
                Admission::Reserved(r) => {
                    let bid = format!("{day}-{n}");
                    pacer.hold(r, &bid, now);
                    pacer.settle(&bid, &campaign.id, campaign.timezone, 0.0016, now);
                }
                Admission::OutOfBudget => return n,
                other => panic!("an asap campaign was {other:?}"),
            }
        }
        panic!("still bidding at {now} after 100 bids won: the budget never ran out");
    }

    /// Whether `campaign` may bid 2.00 CPM at `now` (the reservation given back at once).
    fn bids(pacer: &Pacer, campaign: &Campaign, now: DateTime<Utc>) -> bool {
        let account = pacer.account_for(campaign);
        match pacer.admit(campaign, account.as_ref(), 2.0, &rates(), now) {
            Admission::Reserved(r) => {
                pacer.cancel(r);
                true
            }
            Admission::OutOfBudget => false,
            other => panic!("an asap campaign was {other:?}"),
        }
    }

    #[test]
    fn the_daily_budget_starts_afresh_at_local_midnight_in_a_non_utc_zone() {
        // 0.01 a day: a 0.002 bid fits while 0.0016 × bids won + 0.002 <= 0.01, six times a day.
        let mut campaign = asap(Some(0.01), None);
        campaign.timezone = chrono_tz::Asia::Tokyo;
        let pacer = Pacer::new(60, 10);
        let state = |now| pacer.state(&campaign, now).expect("an account");
        // 05:00 on the 23rd in Tokyo (UTC+9 all year).
        let morning = at("2026-11-22T20:00:00Z");
        assert_eq!(
            bid_and_win_until_spent(&pacer, &campaign, "23rd", morning),
            6
        );
        // Midnight UTC is 09:00 in Tokyo, 14:59:59 UTC is 23:59:59: still the 23rd there.
        for still in ["2026-11-23T00:00:00Z", "2026-11-23T14:59:59Z"] {
            assert!(!bids(&pacer, &campaign, at(still)), "a bid at {still}");
            assert_eq!(state(at(still)).spent_today_usd, 0.0096, "at {still}");
        }
        // Midnight in Tokyo: the 24th, with its whole budget.
        let midnight = at("2026-11-23T15:00:00Z");
        assert_eq!(
            state(midnight).spent_today_usd,
            0.0,
            "before the 24th's first bid"
        );
        assert_eq!(
            bid_and_win_until_spent(&pacer, &campaign, "24th", midnight),
            6
        );
        let state = state(midnight);
        assert_eq!(
            (state.spent_today_usd, state.spent_total_usd),
            (0.0096, 0.0192)
        );
    }

    #[test]
    fn holds_saved_at_shutdown_are_taken_back_at_start_and_still_block_the_budget() {
        let campaign = asap(None, Some(0.01));
        let now = at("2026-11-23T12:00:00Z");
        // Five 2.00 CPM bids reserve the whole 0.01; none has won yet.
        let before = Pacer::new(60, 10);
        let account = before.account_for(&campaign);
        for n in 0..5 {
            match before.admit(&campaign, account.as_ref(), 2.0, &rates(), now) {
                Admission::Reserved(r) => before.hold(r, &format!("bid-{n}"), now),
                other => panic!("bid {n} was {other:?}"),
            }
        }
        assert!(!bids(&before, &campaign, now), "a sixth bid");
        let mut saved = Vec::new();
        before.save_holds(&mut saved).expect("saved");

        let after = before.empty_like();
        assert_eq!(
            after.load_holds(&mut saved.as_slice(), 64).expect("loaded"),
            5
        );
        assert_eq!(after.holds(), 5);
        assert_eq!(
            after.state(&campaign, now).expect("an account").held_usd,
            0.01
        );
        assert!(
            !bids(&after, &campaign, now),
            "the restored holds fill the budget"
        );
        // The win of a bid made before the restart settles its own hold, and only its own.
        after.settle("bid-0", &campaign.id, campaign.timezone, 0.0016, now);
        let state = after.state(&campaign, now).expect("an account");
        assert_eq!((state.held_usd, state.spent_total_usd), (0.008, 0.0016));
        assert!(!bids(&after, &campaign, now), "0.0016 spent, 0.008 held");
        // Unwon, the others lapse hold_secs after their bid, not before.
        assert_eq!(after.sweep(now + Duration::seconds(59)), 0);
        assert_eq!(after.sweep(now + Duration::seconds(60)), 4);
        assert_eq!(after.holds(), 0);
        let state = after.state(&campaign, now).expect("an account");
        assert_eq!(state.held_usd, 0.0);
        assert!(bids(&after, &campaign, now), "0.0016 spent, nothing held");
    }

    #[test]
    fn after_a_crash_budgeted_campaigns_wait_hold_secs_for_the_wins_of_lost_reservations() {
        let budgeted = asap(None, Some(1.0));
        let pacer = Pacer::new(60, 10);
        let start = at("2026-11-23T12:00:00Z");
        assert_eq!(pacer.hold_back_until(start), start + Duration::seconds(60));
        let mut free = budgeted.clone();
        free.budget = None;
        // A campaign without a budget is not held back; a budgeted one is, for hold_secs.
        let account = pacer.account_for(&free);
        let admitted = pacer.admit(&free, account.as_ref(), 2.0, &rates(), start);
        assert!(matches!(admitted, Admission::Free), "{admitted:?}");
        assert!(!bids(&pacer, &budgeted, start), "at the restart");
        let last = start + Duration::seconds(59);
        assert!(!bids(&pacer, &budgeted, last), "a second before");
        assert!(
            bids(&pacer, &budgeted, start + Duration::seconds(60)),
            "then"
        );
        // A later hold back never shortens an earlier one.
        pacer.hold_back_until(start - Duration::seconds(30));
        assert!(!bids(&pacer, &budgeted, last));
    }

    #[test]
    fn the_holds_file_of_an_earlier_precis_is_taken_back_once() {
        let campaign = asap(None, Some(0.01));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("holds.json");
        let now = at("2026-11-23T12:00:00Z");
        let hold = |bid: &str| {
            format!(
                "{{\"bid\": \"{bid}\", \"campaign\": \"{}\", \"nanos\": 5000000, \"expires\": {}}}",
                campaign.id,
                now.timestamp() + 60
            )
        };
        std::fs::write(&path, format!("[{}, {}]", hold("b1"), hold("b2"))).expect("written");
        let pacer = Pacer::new(60, 10);
        assert_eq!(pacer.load_holds_file(&path).expect("loaded"), 2);
        assert!(!path.exists(), "each hold is taken back once");
        assert_eq!(pacer.load_holds_file(&path).expect("no file"), 0);
        let held = pacer.state(&campaign, now).expect("an account").held_usd;
        assert_eq!(held, 0.01);
        assert!(
            !bids(&pacer, &campaign, now),
            "the restored holds fill the budget"
        );
        // One that cannot be read is an error (the bidder sets it aside and starts without it).
        std::fs::write(&path, "[{\"bid\": ").expect("written");
        assert!(pacer.load_holds_file(&path).is_err());
        assert_eq!(pacer.holds(), 2);
    }

    #[test]
    fn spend_never_passes_a_budget_by_more_than_one_bid_under_concurrent_bids_and_wins() {
        let budget = Budget {
            daily: None,
            total: Some(5.0),
            pacing: Pacing::Asap,
        };
        let campaign = campaign(budget, "[[0, 24]]");
        let pacer = Pacer::new(60, 10);
        let account = pacer.account_for(&campaign);
        let start = at("2026-11-23T12:00:00Z");
        // Rounds a minute apart: lost bids' holds are released between them.
        for round in 0..15 {
            let now = start + Duration::seconds(61 * round);
            pacer.sweep(now);
            std::thread::scope(|scope| {
                for thread in 0..4 {
                    let (pacer, campaign, account) = (&pacer, &campaign, &account);
                    scope.spawn(move || {
                        for n in 0..5_000 {
                            let bid = format!("{round}-{thread}-{n}");
                            // 2.00 CPM bids; every third one wins at 1.60.
                            match pacer.admit(campaign, account.as_ref(), 2.0, &rates(), now) {
                                Admission::Reserved(r) => {
                                    pacer.hold(r, &bid, now);
                                    if n % 3 == 0 {
                                        let tz = campaign.timezone;
                                        pacer.settle(&bid, "paced", tz, 0.0016, now);
                                    }
                                }
                                Admission::OutOfBudget => {}
                                other => panic!("an asap campaign was {other:?}"),
                            }
                        }
                    });
                }
            });
        }
        pacer.sweep(start + Duration::days(1));
        let state = pacer.state(&campaign, start).unwrap();
        assert!(
            state.spent_total_usd <= 5.0 + 0.002,
            "spent {} of 5.00",
            state.spent_total_usd
        );
        assert!(
            state.spent_total_usd > 4.5,
            "spent {}",
            state.spent_total_usd
        );
        assert_eq!(state.held_usd, 0.0);
    }

    #[test]
    fn even_pacing_throttles_a_bid_that_would_take_use_past_the_ceiling_and_no_other() {
        let budget = Budget {
            daily: Some(1000.0),
            total: None,
            pacing: Pacing::Even,
        };
        let campaign = campaign(budget, "[[0, 24]]");
        let pacer = Pacer::new(60, 60);
        let account = pacer.account_for(&campaign).expect("a budgeted campaign");
        let now = at("2026-11-23T12:00:00Z");
        account.roll_day(now, campaign.timezone);
        // A plan in force (no step due): 0.01 spent today, 0.004 held, half of what is held or
        // bid expected to be won. A 2.00 CPM bid (0.002) then brings use to
        // 0.01 + (0.004 + 0.002) × 0.5 = 0.013.
        account.next_step.store(i64::MAX, Ordering::Relaxed);
        account.spent_day.store(10_000_000, Ordering::Relaxed);
        account.held.store(4_000_000, Ordering::Relaxed);
        account.efficiency.store(0.5);
        let admitted = |pass_rate: f64, ceiling: i64| {
            account.pass_rate.store(pass_rate);
            account.ceiling.store(ceiling, Ordering::Relaxed);
            match pacer.admit(&campaign, Some(&account), 2.0, &rates(), now) {
                Admission::Reserved(r) => {
                    pacer.cancel(r);
                    true
                }
                Admission::Throttled => false,
                other => panic!("a paced campaign far from its budget was {other:?}"),
            }
        };
        assert!(admitted(1.0, 13_000_000), "use exactly at the ceiling");
        assert!(!admitted(1.0, 12_999_999), "use one nano-dollar past it");
        assert!(admitted(1.0, 20_000_000), "use well under it");
        // Under the ceiling, the pass rate alone decides: none pass at 0, all at 1.
        assert!(!admitted(0.0, i64::MAX), "a pass rate of 0");
        assert_eq!(pacer.throttled.load(Ordering::Relaxed), 2);
        assert_eq!(account.held.load(Ordering::Relaxed), 4_000_000);
    }

    /// One simulated day of traffic: `per_minute` bid opportunities each minute, of which the
    /// exchange lets half win at 80% of the bid. Returns the spend of each UTC hour.
    fn simulate_day(campaign: &Campaign, pacer: &Pacer, per_minute: usize) -> Vec<f64> {
        let account = pacer.account_for(campaign);
        let start = at("2026-11-23T00:00:00Z");
        let mut hourly = vec![0.0; 24];
        let mut wins = 0u64;
        for minute in 0..24 * 60 {
            let now = start + Duration::minutes(minute);
            pacer.sweep(now);
            for n in 0..per_minute {
                if !(campaign.in_flight(now) && campaign.targeting.scheduled(now)) {
                    continue;
                }
                let bid = format!("{minute}-{n}");
                if let Admission::Reserved(r) =
                    pacer.admit(campaign, account.as_ref(), 2.0, &rates(), now)
                {
                    pacer.hold(r, &bid, now);
                    wins += 1;
                    if wins.is_multiple_of(2) {
                        pacer.settle(&bid, &campaign.id, campaign.timezone, 0.0016, now);
                        hourly[(minute / 60) as usize] += 0.0016;
                    }
                }
            }
        }
        hourly
    }

    #[test]
    fn even_pacing_spends_each_running_hour_its_share_of_the_day() {
        let budget = Budget {
            daily: Some(20.0),
            total: None,
            pacing: Pacing::Even,
        };
        // Off from 06:00 to 08:00: 22 running hours share the day's 20.00.
        let campaign = campaign(budget, "[[0, 6], [8, 24]]");
        let pacer = Pacer::new(60, 60);
        fastrand::seed(SEED);
        // 60 a minute could spend 0.048 a minute, 69 a day: more than three times the budget.
        let hourly = simulate_day(&campaign, &pacer, 60);
        let share = 20.0 / 22.0;
        for (hour, spent) in hourly.iter().enumerate() {
            if (6..8).contains(&hour) {
                assert_eq!(*spent, 0.0, "hour {hour} does not run");
            } else {
                assert!(
                    (spent - share).abs() <= 0.1 * share,
                    "hour {hour} spent {spent:.3}, its share is {share:.3} (seed {SEED}): {hourly:.3?}"
                );
            }
        }
        let day: f64 = hourly.iter().sum();
        assert!(day <= 20.0 + 0.002, "the day spent {day} (seed {SEED})");
    }
}
