//! Real process figures for `health.ping`: CPU use and resident memory of this
//! process (sysinfo), sampled when asked.

use std::sync::Mutex;
use std::time::Instant;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

pub struct ProcessSampler {
    pid: Pid,
    state: Mutex<SamplerState>,
}

struct SamplerState {
    system: System,
    /// Wall time and accumulated CPU milliseconds at the previous sample.
    previous: Option<(Instant, u64)>,
}

#[derive(Debug, Clone, Copy)]
pub struct ProcessSample {
    pub pid: u32,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
}

impl ProcessSampler {
    pub fn new() -> Self {
        let pid = Pid::from_u32(std::process::id());
        let sampler = ProcessSampler {
            pid,
            state: Mutex::new(SamplerState {
                system: System::new(),
                previous: None,
            }),
        };
        // A first sample, so the next one has a baseline for CPU use.
        sampler.sample();
        sampler
    }

    /// CPU percent (of one core) is measured since the previous sample, from the
    /// process's accumulated CPU time, so it is right however far apart samples are.
    pub fn sample(&self) -> ProcessSample {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let (cpu_ms, rss) = state
            .system
            .process(self.pid)
            .map(|p| (p.accumulated_cpu_time(), p.memory()))
            .unwrap_or((0, 0));
        let now = Instant::now();
        let cpu_percent = match state.previous {
            Some((then, then_cpu)) => {
                let wall_ms = now.duration_since(then).as_secs_f64() * 1000.0;
                if wall_ms > 0.0 {
                    cpu_ms.saturating_sub(then_cpu) as f64 / wall_ms * 100.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        state.previous = Some((now, cpu_ms));
        ProcessSample {
            pid: self.pid.as_u32(),
            cpu_percent,
            rss_bytes: rss,
        }
    }
}

impl Default for ProcessSampler {
    fn default() -> Self {
        Self::new()
    }
}
