//! Open-loop arrival times: when each request of a run is due, as an offset from the run's start.
//!
//! The schedule is fixed before the run and never looks at the server: a slow answer does not
//! delay the next request's due time, which is what makes latency measured from it honest
//! (no coordinated omission).

use std::time::Duration;

use clap::ValueEnum;

/// How requests arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly spaced: one request every 1/rate seconds.
    Constant,
    /// A Poisson process: exponentially distributed gaps averaging 1/rate seconds.
    Poisson,
}

impl Arrival {
    pub fn name(self) -> &'static str {
        match self {
            Arrival::Constant => "constant",
            Arrival::Poisson => "poisson",
        }
    }
}

/// The due times of one run's requests.
#[derive(Debug)]
pub enum Schedule {
    Constant {
        interval_ns: f64,
        count: u64,
    },
    /// Offsets in nanoseconds, ascending.
    Poisson {
        offsets_ns: Vec<u64>,
    },
}

impl Schedule {
    /// Requests at `rate` per second over `span`; `seed` draws the Poisson gaps.
    pub fn new(arrival: Arrival, rate: f64, span: Duration, seed: u64) -> Schedule {
        let span_ns = span.as_nanos() as f64;
        match arrival {
            Arrival::Constant => Schedule::Constant {
                interval_ns: 1e9 / rate,
                count: (span.as_secs_f64() * rate).floor() as u64,
            },
            Arrival::Poisson => {
                let mut rng = fastrand::Rng::with_seed(seed);
                let mut at = 0.0;
                let mut offsets_ns = Vec::with_capacity((span.as_secs_f64() * rate) as usize);
                loop {
                    // 1 - u is in (0, 1]: its logarithm is finite.
                    at += -(1.0 - rng.f64()).ln() * 1e9 / rate;
                    if at >= span_ns {
                        break;
                    }
                    offsets_ns.push(at as u64);
                }
                Schedule::Poisson { offsets_ns }
            }
        }
    }

    /// When request `i` (from 0) is due, or `None` past the last one.
    pub fn at(&self, i: u64) -> Option<Duration> {
        match self {
            Schedule::Constant { interval_ns, count } => {
                (i < *count).then(|| Duration::from_nanos((i as f64 * interval_ns) as u64))
            }
            Schedule::Poisson { offsets_ns } => usize::try_from(i)
                .ok()
                .and_then(|i| offsets_ns.get(i))
                .map(|ns| Duration::from_nanos(*ns)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(schedule: &Schedule) -> Vec<Duration> {
        (0..).map_while(|i| schedule.at(i)).collect()
    }

    #[test]
    fn constant_rate_is_evenly_spaced_and_ends_with_the_span() {
        let times = all(&Schedule::new(
            Arrival::Constant,
            4.0,
            Duration::from_secs(2),
            1,
        ));
        let expected: Vec<Duration> = (0..8).map(|i| Duration::from_millis(i * 250)).collect();
        assert_eq!(times, expected);
    }

    #[test]
    fn poisson_has_the_mean_rate_with_irregular_gaps_and_is_seeded() {
        let span = Duration::from_secs(100);
        let schedule = Schedule::new(Arrival::Poisson, 1000.0, span, 7);
        let times = all(&schedule);
        // 100,000 expected; the standard deviation of the count is about 316.
        assert!((98_000..102_000).contains(&times.len()), "{}", times.len());
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "ascending");
        assert!(times.last().is_some_and(|t| *t < span));
        let gaps: Vec<u128> = times
            .windows(2)
            .map(|w| (w[1] - w[0]).as_micros())
            .collect();
        // Exponential gaps: about 37% exceed the mean (1 ms), about 5% exceed three times it.
        let over = |us: u128| gaps.iter().filter(|g| **g > us).count() as f64 / gaps.len() as f64;
        assert!((0.33..0.41).contains(&over(1000)), "{}", over(1000));
        assert!((0.03..0.07).contains(&over(3000)), "{}", over(3000));
        assert_eq!(
            all(&Schedule::new(Arrival::Poisson, 1000.0, span, 7)),
            times
        );
        assert_ne!(
            all(&Schedule::new(Arrival::Poisson, 1000.0, span, 8)),
            times
        );
    }
}
