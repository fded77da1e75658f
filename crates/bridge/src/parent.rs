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
//! Windows has neither: there stdin EOF is the signal (the pipe closes with
//! the parent unless a grandchild inherited it).

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
        std::future::pending().await
    }
}
