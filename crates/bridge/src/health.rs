//! Real process figures for `health.ping`: CPU use and resident memory of this
//! process (sysinfo), sampled when asked.

use std::sync::Mutex;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

pub struct ProcessSampler {
    pid: Pid,
    system: Mutex<System>,
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
            system: Mutex::new(System::new()),
        };
        // A first refresh so the next one has a baseline for CPU use.
        sampler.sample();
        sampler
    }

    /// CPU percent is measured since the previous sample.
    pub fn sample(&self) -> ProcessSample {
        let mut system = self.system.lock().unwrap_or_else(|e| e.into_inner());
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let (cpu, rss) = system
            .process(self.pid)
            .map(|p| (p.cpu_usage(), p.memory()))
            .unwrap_or((0.0, 0));
        ProcessSample {
            pid: self.pid.as_u32(),
            cpu_percent: f64::from(cpu),
            rss_bytes: rss,
        }
    }
}

impl Default for ProcessSampler {
    fn default() -> Self {
        Self::new()
    }
}
