//! A thread of its own for one connection: a single-threaded tokio runtime on
//! which the connection's socket task and its queries run together.
//!
//! tokio-postgres reads the socket in one task and hands the messages to the
//! query's task over a channel. On the shared multi-threaded runtime the two
//! tasks run on different workers, and every hand-off is a cross-thread wake
//! (measured: ~40k context switches and a contended channel lock per million
//! rows, a quarter of the bridge's CPU). On one thread the hand-off is a
//! function call away. It also keeps one session's encoding from occupying
//! the workers that serve every other session, which is why MySQL sessions
//! (one socket, no socket task) run on one too.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// How long a closing connection's goodbye may take (a stalled network must
/// not keep its thread, nor a bridge that is exiting).
pub(crate) const GOODBYE_GRACE: Duration = Duration::from_secs(2);

/// Goodbyes begun by [`SessionThread::finish`] and not yet written or given
/// up. Closed from the start: its `wait` resolves whenever none is left.
static GOODBYES: LazyLock<TaskTracker> = LazyLock::new(|| {
    let tracker = TaskTracker::new();
    tracker.close();
    tracker
});

/// Resolves when every goodbye begun so far has been written or given up
/// (each within [`GOODBYE_GRACE`]): the bridge awaits it before exiting, as
/// the process's end would otherwise close those sockets unsaid.
pub async fn goodbyes_said() {
    GOODBYES.wait().await;
}

pub(crate) struct SessionThread {
    handle: Handle,
    /// Dropping it (or `finish` taking it) ends the thread; the runtime
    /// then drops its tasks.
    stop: Option<oneshot::Sender<()>>,
}

impl SessionThread {
    pub(crate) async fn start(name: &str) -> std::io::Result<SessionThread> {
        let (ready_tx, ready) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let _ = ready_tx.send(Ok(runtime.handle().clone()));
                        // Drives every task spawned on the handle until the owner goes.
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                    }
                }
            })?;
        let handle = ready
            .await
            .map_err(|_| std::io::Error::other("the session thread ended at start"))??;
        Ok(SessionThread {
            handle,
            stop: Some(stop),
        })
    }

    /// Runs `future` on this thread.
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs `last` on the thread and ends the thread after it (or after
    /// [`GOODBYE_GRACE`], whichever is first), not before: for a goodbye
    /// written through a socket that the thread's runtime drives (ending the
    /// runtime first would close the socket unsaid; a stalled network must
    /// not keep the thread forever). [`goodbyes_said`] waits for it.
    pub(crate) fn finish<F>(&mut self, last: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.take();
        // Tracked until it ends, or until the runtime drops it (the thread
        // gone first).
        self.handle.spawn(GOODBYES.track_future(async move {
            let _ = tokio::time::timeout(GOODBYE_GRACE, last).await;
            drop(stop);
        }));
    }
}
