//! SQLite backups and restores through SQLite's online backup API: the copy
//! is a consistent snapshot even while other connections write (the API
//! starts over when the source changes under it), never a raw copy of a
//! live file. Blocking: callers run these on a blocking thread.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::DbError;

/// Pages copied per step; between steps the source is unlocked and
/// progress is reported.
const PAGES_PER_STEP: std::os::raw::c_int = 256;

/// How far a copy has come, in pages.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub pages_done: u64,
    pub pages_total: u64,
}

/// Why a copy stopped.
#[derive(Debug)]
pub enum CopyError {
    /// `progress` asked to stop.
    Cancelled,
    Failed(DbError),
}

impl From<rusqlite::Error> for CopyError {
    fn from(error: rusqlite::Error) -> Self {
        CopyError::Failed(DbError::new(crate::DbErrorKind::Query, error.to_string()))
    }
}

/// Copies the database `source` into a new file `dest` (which must not
/// exist), calling `progress` after every step; it returns `false` to stop.
pub fn backup(
    source: &Path,
    dest: &Path,
    progress: impl FnMut(Progress) -> bool,
) -> Result<(), CopyError> {
    let from = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // In WAL mode a read transaction held for the whole copy pins one
    // snapshot: other connections' commits neither block nor restart it
    // (the backup API starts over whenever the source changes under it,
    // which under steady writes could go on for ever). In rollback mode
    // such a lock would stall writers, so the copy goes step by step.
    let journal: String = from.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if journal.eq_ignore_ascii_case("wal") {
        from.execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")?;
    }
    copy(&from, dest, progress)
}

/// Replaces the database `target` with the backup file `backup`: the copy
/// is made into a temporary file beside the target and renamed over it, so
/// the target is the old database or the new one, never a mix. Call it only
/// while nothing has the target open.
pub fn restore(
    backup: &Path,
    target: &Path,
    progress: impl FnMut(Progress) -> bool,
) -> Result<(), CopyError> {
    let from = Connection::open_with_flags(
        backup,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let temp = sibling(target, ".dbbridge-restore");
    let _ = std::fs::remove_file(&temp);
    if let Err(error) = copy(&from, &temp, progress) {
        let _ = std::fs::remove_file(&temp);
        return Err(error);
    }
    drop(from);
    // A journal left beside the old file belongs to the old content.
    for suffix in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(sibling(target, suffix));
    }
    std::fs::rename(&temp, target).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        CopyError::Failed(DbError::new(
            crate::DbErrorKind::Query,
            format!("could not replace {}: {e}", target.display()),
        ))
    })
}

/// `path` with `suffix` added to its file name.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn copy(
    from: &Connection,
    dest: &Path,
    mut progress: impl FnMut(Progress) -> bool,
) -> Result<(), CopyError> {
    let mut to = Connection::open(dest)?;
    let step = {
        let backup = Backup::new(from, &mut to)?;
        loop {
            match backup.step(PAGES_PER_STEP)? {
                StepResult::Done => break Ok(()),
                StepResult::More => {}
                // Another connection holds a lock: try again shortly.
                StepResult::Busy | StepResult::Locked => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {}
            }
            let p = backup.progress();
            let total = u64::try_from(p.pagecount).unwrap_or(0);
            let left = u64::try_from(p.remaining).unwrap_or(0);
            if !progress(Progress {
                pages_done: total.saturating_sub(left),
                pages_total: total,
            }) {
                break Err(CopyError::Cancelled);
            }
        }
    };
    drop(to);
    if step.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    step
}
