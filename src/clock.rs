//! The clock (what time the bidder thinks it is) and the campaign calendar (where a campaign's
//! local hours, days and weeks begin).
//!
//! Everything that depends on time (flights, dayparting, budgets' days, pacing steps, frequency
//! windows, token expiry, event timestamps) asks the clock, never the system directly, so that a
//! whole simulated day can run in seconds: `precis serve --simulate-from TIME` starts a clock that
//! stands still until an operator (or a market simulation) moves it forward through
//! `POST /admin/clock`. Reading it is one atomic load; it never goes backwards.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug)]
pub enum Clock {
    /// The system's wall clock: production.
    System,
    /// Microseconds since the Unix epoch, moved only by [`Clock::advance_to`].
    Simulated(AtomicI64),
}

impl Clock {
    /// A simulated clock standing at `start`.
    pub fn simulated(start: DateTime<Utc>) -> Clock {
        Clock::Simulated(AtomicI64::new(start.timestamp_micros()))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Simulated(micros) => {
                DateTime::from_timestamp_micros(micros.load(Ordering::Acquire)).unwrap_or_default()
            }
        }
    }

    /// Moves a simulated clock to `to`. Refused for the system clock, and for a time before the
    /// clock's: time only moves forward (spend, windows and tokens assume it).
    pub fn advance_to(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, ClockError> {
        let Clock::Simulated(micros) = self else {
            return Err(ClockError::System);
        };
        let to = to.timestamp_micros();
        micros
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (to >= now).then_some(to)
            })
            .map_err(|now| {
                ClockError::Backwards(DateTime::from_timestamp_micros(now).unwrap_or_default())
            })?;
        Ok(self.now())
    }
}

/// `t` as whole seconds since the Unix epoch in 32 bits, as tokens and expiry times keep it (0
/// outside 1970 to 2106).
pub fn unix_secs(t: DateTime<Utc>) -> u32 {
    u32::try_from(t.timestamp()).unwrap_or(0)
}

/// The start of the local hour after `t` in `tz`. Offsets that are not whole hours (India's
/// +5:30) are honoured.
pub fn next_hour(t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let offset = i64::from(t.with_timezone(&tz).offset().fix().local_minus_utc());
    let into_hour = (t.timestamp() + offset).rem_euclid(3600);
    let start = t - Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos()));
    start + Duration::seconds(3600 - into_hour)
}

/// The local midnight that ends the day of `t` in `tz` (the next day's first instant where a
/// daylight-saving change skips midnight).
pub fn next_midnight(t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let tomorrow = t.with_timezone(&tz).date_naive() + Duration::days(1);
    let midnight = tomorrow.and_time(NaiveTime::MIN);
    (0..3)
        .find_map(|h| at_local(midnight + Duration::hours(h), tz))
        .unwrap_or(t + Duration::days(1))
}

/// The instant the clocks of `tz` show `local` (the earlier one when they show it twice, as a
/// daylight-saving change turns them back); `None` when they never show it (skipped forward).
pub fn at_local(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    let instant = tz.from_local_datetime(&local).earliest()?;
    Some(instant.with_timezone(&Utc))
}

/// The local Monday midnight that ends the week of `t` in `tz`.
pub fn next_monday(t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let days_left = 6 - t.with_timezone(&tz).weekday().num_days_from_monday();
    next_midnight(t + Duration::days(days_left.into()), tz)
}

/// The local date of `t` in `tz`, as a day number: changes at local midnight.
pub fn local_day(t: DateTime<Utc>, tz: Tz) -> i64 {
    t.with_timezone(&tz).date_naive().num_days_from_ce().into()
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ClockError {
    #[error("this bidder runs on the system clock; start it with --simulate-from to move time")]
    System,
    #[error("time only moves forward: the clock already reads {0}")]
    Backwards(DateTime<Utc>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_clock_moves_only_forward_and_only_when_told() {
        let start: DateTime<Utc> = "2026-11-23T00:00:00Z".parse().unwrap();
        let clock = Clock::simulated(start);
        assert_eq!(clock.now(), start);
        let later = start + chrono::Duration::minutes(90);
        assert_eq!(clock.advance_to(later), Ok(later));
        assert_eq!(clock.now(), later);
        assert_eq!(
            clock.advance_to(start),
            Err(ClockError::Backwards(later)),
            "a clock that went back would un-spend budgets"
        );
        assert_eq!(Clock::System.advance_to(later), Err(ClockError::System));
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn local_hours_days_and_weeks_begin_where_the_campaign_lives() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let india: Tz = "Asia/Kolkata".parse().unwrap();
        // 22:10 UTC is 23:10 in Paris in winter: the day ends at 23:00 UTC.
        let t = at("2026-11-23T22:10:00Z");
        assert_eq!(next_hour(t, paris), at("2026-11-23T23:00:00Z"));
        assert_eq!(next_midnight(t, paris), at("2026-11-23T23:00:00Z"));
        assert_eq!(next_hour(t, india), at("2026-11-23T22:30:00Z"));
        // 2026-11-23 is a Monday; its week ends the next Monday at local midnight.
        assert_eq!(next_monday(t, paris), at("2026-11-29T23:00:00Z"));
        assert_eq!(
            local_day(t, paris) + 1,
            local_day(at("2026-11-23T23:00:00Z"), paris)
        );
        assert_eq!(
            local_day(t, paris),
            local_day(at("2026-11-22T23:00:00Z"), paris)
        );
        // The day the clocks go back has 25 hours: midnight to midnight.
        let fall_back = at("2026-10-25T00:30:00Z");
        assert_eq!(next_midnight(fall_back, paris), at("2026-10-25T23:00:00Z"));
    }
}
