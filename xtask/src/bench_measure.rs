//! What the load bench measures, apart from the load itself: each ping's
//! answer time, a client thread's CPU time and its wait for a core, and
//! the percentiles printed.

use std::time::Duration;

use crate::bench::{ms, percentile};

/// A ping: when it was sent (since the queries started) and how long its
/// answer took.
pub type Ping = (Duration, Duration);

/// Pings sent this long after the queries started are "steady": past the
/// start, when 100 queries and their server backends start at once.
const START: Duration = Duration::from_millis(500);

/// What one client's streaming took: its pings, and its thread's CPU time
/// and time spent waiting for a core.
#[derive(Default)]
pub struct Streamed {
    pub pings: Vec<Ping>,
    pub cpu: Duration,
    pub waited: Duration,
}

/// One transport's run: every client's pings, the clients' CPU and wait
/// for a core summed, the bridge's CPU, the wall time and the peak RSS.
pub struct Phase {
    pub clients: Streamed,
    pub bridge_cpu: Duration,
    pub wall: Duration,
    pub peak: u64,
}

/// This thread's CPU time and its time runnable but waiting for a core
/// (`/proc/thread-self/schedstat`: both in ns).
pub fn thread_sched() -> (Duration, Duration) {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut ns = text.split_whitespace().map(|f| f.parse().unwrap_or(0));
    let cpu = Duration::from_nanos(ns.next().unwrap_or(0));
    (cpu, Duration::from_nanos(ns.next().unwrap_or(0)))
}

/// Prints the p50/p99/max of `pings`, over the whole run and after its start.
pub fn print_pings(what: &str, pings: &[Ping], base: f64) {
    let steady: Vec<Ping> = pings.iter().copied().filter(|p| p.0 >= START).collect();
    for (which, set) in [("whole run", pings), ("after the first 500 ms", &steady)] {
        let mut took: Vec<Duration> = set.iter().map(|p| p.1).collect();
        took.sort();
        let p99 = percentile(&took, 99);
        println!(
            "    {what}, {which}: {} pings, p50 {:.2} ms, p99 {:.2} ms ({:.1}x the idle p99), max {:.2} ms (target p99 <= 50 ms)",
            took.len(),
            ms(percentile(&took, 50)),
            ms(p99),
            ms(p99) / base,
            ms(*took.last().unwrap_or(&Duration::ZERO)),
        );
    }
}
