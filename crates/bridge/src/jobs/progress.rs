//! Progress as a front end wants it: at most about ten events a second,
//! one at every phase change, and a percent that never goes backwards and
//! reaches 100 only when the job is done.

use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct Throttle {
    last: Option<Instant>,
    phase: String,
    percent: f64,
}

impl Throttle {
    /// Whether an event for `phase` at `percent` is due now; if so, the
    /// percent to report (held below 100 until [`done`](Self::done)).
    pub fn due(&mut self, phase: &str, percent: Option<f64>) -> Option<Option<f64>> {
        let changed = phase != self.phase;
        let now = Instant::now();
        if !changed && self.last.is_some_and(|at| now - at < EVERY) {
            return None;
        }
        self.last = Some(now);
        self.phase = phase.to_string();
        Some(percent.map(|p| {
            self.percent = self.percent.max(p.clamp(0.0, 99.9));
            (self.percent * 10.0).round() / 10.0
        }))
    }

    /// As [`due`](Self::due), but due even within the throttle: for a state
    /// the throttle would otherwise lose for good (the last table a dump
    /// named, when the dump ended right after naming it).
    pub fn now(&mut self, phase: &str, percent: Option<f64>) -> Option<f64> {
        self.last = None;
        self.due(phase, percent).flatten()
    }

    /// The percent of a finished job.
    pub fn done(&mut self) -> f64 {
        self.percent = 100.0;
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_and_never_goes_back() {
        let mut t = Throttle::default();
        assert_eq!(t.due("dumping", Some(10.0)), Some(Some(10.0)));
        assert_eq!(t.due("dumping", Some(20.0)), None);
        // A phase change is always due; a lower percent is held.
        assert_eq!(t.due("finalizing", Some(5.0)), Some(Some(10.0)));
        std::thread::sleep(EVERY);
        assert_eq!(t.due("finalizing", Some(100.0)), Some(Some(99.9)));
        assert_eq!(t.done(), 100.0);
    }

    #[test]
    fn now_is_due_within_the_throttle_and_still_never_goes_back() {
        let mut t = Throttle::default();
        assert_eq!(t.due("dumping", Some(40.0)), Some(Some(40.0)));
        assert_eq!(t.due("dumping", Some(50.0)), None);
        assert_eq!(t.now("dumping", Some(30.0)), Some(40.0));
        assert_eq!(t.due("dumping", Some(60.0)), None);
    }
}
