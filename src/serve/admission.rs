//! Admission: how much the bidder takes on at once, and how long a bid request may take.
//!
//! Owns the gates that bound open connections and bid requests in flight, and each bid request's
//! deadline (its `tmax`, capped, less a safety margin). Never waits and never queues: what does not
//! fit is turned away at once (a closed connection, a 204), because a late bid is worth nothing to
//! an exchange and a queue only makes every later bid late too. Counting what was turned away is
//! the caller's business (`serve::metrics`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::config::Limits;

/// At most `max` holders at a time; one more is refused, never made to wait.
#[derive(Debug)]
pub struct Gate {
    held: AtomicUsize,
    max: usize,
}

/// A place taken in a [`Gate`], given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Gate>);

impl Gate {
    pub fn new(max: usize) -> Arc<Gate> {
        Arc::new(Gate {
            held: AtomicUsize::new(0),
            max,
        })
    }

    /// A place, or `None` when all `max` are taken.
    pub fn enter(self: &Arc<Gate>) -> Option<Slot> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max).then_some(held + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    /// Places taken now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// When a bid request's answer is due: after that, no bid is worth sending.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// The deadline of a request whose head arrived at `start` and that allows `tmax`
    /// milliseconds (absent or 0: the ceiling).
    pub fn new(start: Instant, tmax: Option<u32>, limits: &Limits) -> Deadline {
        Deadline(start + budget(tmax, limits))
    }

    pub fn passed(self) -> bool {
        Instant::now() >= self.0
    }
}

/// The time precis gives itself to answer: `tmax`, capped by `max_tmax_ms` (which also stands
/// in for a missing or zero `tmax`), less `tmax_margin_ms` for the answer's way back.
pub fn budget(tmax: Option<u32>, limits: &Limits) -> Duration {
    let allowed = tmax
        .filter(|&t| t > 0)
        .map_or(limits.max_tmax_ms, |t| u64::from(t).min(limits.max_tmax_ms));
    Duration::from_millis(allowed.saturating_sub(limits.tmax_margin_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_gate_refuses_until_a_slot_is_given_back() {
        let gate = Gate::new(2);
        let a = gate.enter().expect("first");
        let _b = gate.enter().expect("second");
        assert!(gate.enter().is_none());
        assert_eq!(gate.held(), 2);
        drop(a);
        assert!(gate.enter().is_some());
        assert!(Gate::new(0).enter().is_none());
    }

    #[test]
    fn the_budget_is_tmax_capped_by_the_ceiling_less_the_margin() {
        let limits = Limits {
            max_tmax_ms: 300,
            tmax_margin_ms: 10,
            ..Limits::default()
        };
        let ms = |tmax| budget(tmax, &limits).as_millis();
        assert_eq!(ms(Some(120)), 110);
        assert_eq!(ms(Some(5_000)), 290, "capped by the ceiling");
        assert_eq!(ms(None), 290, "no tmax: the ceiling");
        assert_eq!(ms(Some(0)), 290, "tmax 0 means none");
        assert_eq!(ms(Some(5)), 0, "a margin above tmax leaves nothing");
        let expired = Deadline::new(
            Instant::now(),
            Some(1),
            &Limits {
                tmax_margin_ms: 1,
                ..Limits::default()
            },
        );
        assert!(expired.passed());
    }
}
