//! The generator's own CPU time: user + system time of all its threads, from `/proc/self/stat`
//! (Linux only; elsewhere there is none to report), and what a run's share of it comes to
//! ([`Cpu`]). Reads only this process' own figures; it never measures the server.

use std::time::Duration;

use serde::Serialize;

/// Clock ticks per second of `/proc` times: `USER_HZ`, 100 on every Linux architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// The generator's CPU time over a whole run (warmup and follow-ups included).
#[derive(Clone, Debug, Serialize)]
pub struct Cpu {
    pub seconds: f64,
    /// Average cores busy.
    pub cores: f64,
    /// Cores per 10,000 bid requests per second sent.
    pub cores_per_10k_rps: f64,
}

impl Cpu {
    /// CPU use of `seconds` over `wall` time while sending `sent` bid requests.
    pub fn of(seconds: f64, wall: Duration, sent: u64) -> Cpu {
        let wall = wall.as_secs_f64().max(f64::EPSILON);
        let cores = seconds / wall;
        let rate = sent as f64 / wall;
        Cpu {
            seconds,
            cores,
            cores_per_10k_rps: if rate > 0.0 {
                cores / (rate / 10_000.0)
            } else {
                0.0
            },
        }
    }
}

/// CPU seconds used by this process so far, if the system says.
pub fn process_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis,
    // where field 3 is the first; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |field: usize| fields.get(field - 3)?.parse::<f64>().ok();
    Some((ticks(14)? + ticks(15)?) / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_grows_with_work() {
        let Some(before) = super::process_seconds() else {
            return; // not Linux
        };
        // Spin until the count moves (one tick, 10 ms of CPU); the deadline only stops a hang.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut x = 0u64;
        while super::process_seconds().is_some_and(|now| now <= before) {
            assert!(std::time::Instant::now() < deadline, "CPU time never grew");
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
    }
}
