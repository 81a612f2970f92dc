//! `--find-max`: the search for the highest rate a server holds within a p99 SLO. The rate
//! doubles from the starting rate until a step fails, then the interval between the highest
//! passing and the lowest failing rate is halved until it is within 5% (or, if the first step
//! fails, the rate halves until one passes).

use std::fmt::Write;

use serde::Serialize;

/// A step passes with fewer errors than this share of its requests.
pub const MAX_ERROR_RATE: f64 = 0.001;

/// The search stops once the highest pass is this close (as a share) to the lowest failure.
const PRECISION: f64 = 0.05;

/// It never goes below or above these rates.
const LOWEST_RATE: f64 = 10.0;
const HIGHEST_RATE: f64 = 10_000_000.0;

/// One step of the search.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub p99_ms: f64,
    pub error_rate: f64,
    pub pass: bool,
}

/// The search's report.
#[derive(Clone, Debug, Serialize)]
pub struct FindMax {
    pub slo_p99_ms: f64,
    pub max_error_rate: f64,
    /// The highest rate that passed, if any did.
    pub max_rate: Option<f64>,
    pub steps: Vec<Step>,
}

/// Where the search stands.
#[derive(Debug)]
pub struct Search {
    slo_p99_ms: f64,
    next: Option<f64>,
    highest_pass: Option<f64>,
    lowest_fail: Option<f64>,
    steps: Vec<Step>,
}

impl Search {
    pub fn new(start_rate: f64, slo_p99_ms: f64) -> Search {
        Search {
            slo_p99_ms,
            next: Some(start_rate.clamp(LOWEST_RATE, HIGHEST_RATE).round()),
            highest_pass: None,
            lowest_fail: None,
            steps: Vec::new(),
        }
    }

    /// The rate of the next step, or `None` when the search is over.
    pub fn next_rate(&self) -> Option<f64> {
        self.next
    }

    /// Records a step at `target_rate` and decides the next. Returns whether it passed.
    pub fn record(
        &mut self,
        target_rate: f64,
        achieved_rate: f64,
        p99_ms: f64,
        error_rate: f64,
    ) -> bool {
        let pass = p99_ms <= self.slo_p99_ms && error_rate < MAX_ERROR_RATE;
        self.steps.push(Step {
            target_rate,
            achieved_rate,
            p99_ms,
            error_rate,
            pass,
        });
        if pass {
            self.highest_pass = Some(
                self.highest_pass
                    .map_or(target_rate, |r| r.max(target_rate)),
            );
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(target_rate, |r| r.min(target_rate)));
        }
        self.next = match (self.highest_pass, self.lowest_fail) {
            (Some(pass), None) => Some(pass * 2.0).filter(|r| *r <= HIGHEST_RATE),
            (None, Some(fail)) => Some((fail / 2.0).round()).filter(|r| *r >= LOWEST_RATE),
            (Some(pass), Some(fail)) if (fail - pass) / fail > PRECISION => {
                Some(((pass + fail) / 2.0).round())
            }
            _ => None,
        };
        pass
    }

    pub fn report(self) -> FindMax {
        FindMax {
            slo_p99_ms: self.slo_p99_ms,
            max_error_rate: MAX_ERROR_RATE,
            max_rate: self.highest_pass,
            steps: self.steps,
        }
    }
}

impl FindMax {
    /// The steps and the result, for people.
    pub fn text(&self) -> String {
        let mut out =
            String::from("  find max     steps (target → achieved req/s, p99, errors):\n");
        for step in &self.steps {
            // `write!` to a String cannot fail.
            let _ = writeln!(
                out,
                "               {:>8.0} → {:>8.0}   p99 {:>9.3} ms   errors {:.3}%   {}",
                step.target_rate,
                step.achieved_rate,
                step.p99_ms,
                step.error_rate * 100.0,
                if step.pass { "pass" } else { "FAIL" }
            );
        }
        let _ = match self.max_rate {
            Some(rate) => write!(
                out,
                "  max rate     {rate:.0} req/s with p99 ≤ {} ms and < {}% errors (the rest of this summary is that step)",
                self.slo_p99_ms,
                self.max_error_rate * 100.0
            ),
            None => write!(
                out,
                "  max rate     none: no step kept p99 ≤ {} ms with < {}% errors (the rest of this summary is the last step)",
                self.slo_p99_ms,
                self.max_error_rate * 100.0
            ),
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a server that holds p99 ≤ 1 ms up to `capacity` req/s.
    fn search(start: f64, capacity: f64) -> FindMax {
        let mut search = Search::new(start, 1.0);
        while let Some(rate) = search.next_rate() {
            let p99 = if rate <= capacity { 0.5 } else { 30.0 };
            search.record(rate, rate, p99, 0.0);
            assert!(search.steps.len() < 30, "the search ends");
        }
        search.report()
    }

    #[test]
    fn doubles_then_bisects_to_within_five_percent() {
        let report = search(1000.0, 23_000.0);
        let rates: Vec<f64> = report.steps.iter().map(|s| s.target_rate).collect();
        assert_eq!(
            &rates[..6],
            [1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0]
        );
        assert_eq!(rates[6], 24000.0, "then the middle");
        let max = report.max_rate.expect("a pass");
        assert!((23_000.0 * 0.95..=23_000.0).contains(&max), "{max}");
    }

    #[test]
    fn halves_when_the_start_is_too_high_and_errors_fail_a_step() {
        let report = search(8000.0, 1500.0);
        let max = report.max_rate.expect("a pass");
        assert!((1500.0 * 0.95..=1500.0).contains(&max), "{max}");
        let mut search = Search::new(1000.0, 1.0);
        assert!(
            !search.record(1000.0, 1000.0, 0.5, MAX_ERROR_RATE),
            "0.1% errors fail"
        );
        assert!(search.record(500.0, 500.0, 0.5, 0.0));
    }

    #[test]
    fn a_server_that_never_holds_ends_the_search_with_no_rate() {
        let report = search(1000.0, 0.0);
        assert_eq!(report.max_rate, None);
        assert!(report.text().contains("none: no step"));
        assert_eq!(report.steps.last().map(|s| s.target_rate), Some(16.0));
    }
}
