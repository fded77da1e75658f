//! Parent death: a bridge whose parent dies without closing stdin (SIGKILL,
//! a crash, a grandchild that inherited the pipe) must not be left orphaned.
//!
//! Three signals, the first that fires wins:
//! - EOF on stdin (the transport's own, in `main.rs`);
//! - on Linux, the kernel's parent-death signal (`PR_SET_PDEATHSIG`): the
//!   parent's death sends SIGTERM, which `Shutdown::signal` turns into a
//!   graceful stop;
//! - on every Unix, a watch of the parent pid: once the process has been
//!   reparented (to init or a subreaper), the parent is gone. This also
//!   covers the Linux caveat that the death signal follows the parent
//!   *thread* that spawned us rather than the process.
//!
//! - on Windows, which has neither, a watch of the parent process through
//!   sysinfo (its pid and start time, so a reused pid does not fool it).

use std::time::Duration;

/// How often the parent pid is looked at.
const POLL: Duration = Duration::from_millis(250);

/// Arms the kernel's signal where there is one, then resolves once the
/// parent is gone. A bridge started with no parent to watch (its parent is
/// already init) never resolves.
pub async fn gone() -> &'static str {
    #[cfg(unix)]
    {
        use rustix::process::getppid;
        let Some(parent) = getppid() else {
            return std::future::pending().await;
        };
        if parent.is_init() {
            return std::future::pending().await;
        }
        #[cfg(target_os = "linux")]
        if let Err(error) =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
        {
            tracing::warn!(%error, "could not arm the parent-death signal; watching the parent pid only");
        }
        loop {
            // Also checked once right after arming: a parent that died before
            // the signal was armed has already reparented us.
            if getppid() != Some(parent) {
                return "parent process died";
            }
            tokio::time::sleep(POLL).await;
        }
    }
    #[cfg(not(unix))]
    {
        let me = sysinfo::Pid::from_u32(std::process::id());
        let mut system = sysinfo::System::new();
        system.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[me]), true);
        match system.process(me).and_then(|p| p.parent()) {
            Some(parent) => process_gone(parent).await,
            None => std::future::pending().await,
        }
    }
}

/// Resolves once the process `pid` (as it is now: same start time) has
/// exited; at once when there is no such process.
#[cfg_attr(unix, allow(dead_code))]
async fn process_gone(pid: sysinfo::Pid) -> &'static str {
    let mut system = sysinfo::System::new();
    let look = |system: &mut sysinfo::System| {
        system.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[pid]), true);
        system.process(pid).map(|p| p.start_time())
    };
    let Some(started) = look(&mut system) else {
        return "parent process died";
    };
    loop {
        tokio::time::sleep(POLL).await;
        if look(&mut system) != Some(started) {
            return "parent process died";
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// The Windows watch, run here on a process of our own.
    #[tokio::test]
    async fn the_process_watch_sees_a_killed_process_go() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = sysinfo::Pid::from_u32(child.id());
        let watch = tokio::spawn(super::process_gone(pid));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!watch.is_finished(), "a live process was reported gone");
        child.kill().expect("kill");
        child.wait().expect("reaped");
        let killed = Instant::now();
        tokio::time::timeout(Duration::from_secs(2), watch)
            .await
            .expect("the watch saw it within 2 s")
            .expect("the watch task");
        assert!(killed.elapsed() < Duration::from_secs(2));
    }
}
