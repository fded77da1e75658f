//! `<data-dir>/bridge.db`: the bridge's own SQLite database of saved
//! connections (never a password: those live in the secret store), the
//! index of keychain keys, and the backup catalog. The schema is versioned by `PRAGMA user_version`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use dbbridge_protocol::RpcError;
use rusqlite::{Connection, OptionalExtension, params};

/// Migration N takes the schema from version N to N+1. Append only.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE connections (
         id TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         kind TEXT NOT NULL,
         spec TEXT NOT NULL,
         created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
     );
     CREATE TABLE keychain_keys (key TEXT PRIMARY KEY);",
    // The backup catalog. `connection` is the source as a connection spec
    // without any password (or a saved connection's id in `connection_id`).
    "CREATE TABLE backups (
         id TEXT PRIMARY KEY,
         engine TEXT NOT NULL,
         connection_id TEXT,
         connection TEXT NOT NULL,
         database TEXT NOT NULL,
         path TEXT NOT NULL,
         format TEXT NOT NULL,
         size_bytes INTEGER NOT NULL DEFAULT 0,
         sha256 TEXT,
         status TEXT NOT NULL,
         tool_version TEXT,
         server_version TEXT,
         started_at TEXT NOT NULL,
         finished_at TEXT,
         error TEXT
     );
     CREATE INDEX backups_by_connection ON backups (connection_id);",
];

/// A saved connection as stored: its spec is JSON without a password.
pub struct SavedRow {
    pub id: String,
    pub name: String,
    pub spec: String,
}

/// One backup as the catalog keeps it.
#[derive(Debug, Clone)]
pub struct BackupRow {
    pub id: String,
    pub engine: String,
    pub connection_id: Option<String>,
    pub connection: String,
    pub database: String,
    pub path: String,
    pub format: String,
    pub size_bytes: u64,
    pub sha256: Option<String>,
    pub status: String,
    pub tool_version: Option<String>,
    pub server_version: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

impl BackupRow {
    /// A backup that starts now, as the catalog records it until it ends.
    pub fn running(id: &str, engine: &str, database: &str, path: &std::path::Path) -> BackupRow {
        BackupRow {
            id: id.to_string(),
            engine: engine.to_string(),
            connection_id: None,
            connection: String::new(),
            database: database.to_string(),
            path: path.to_string_lossy().into_owned(),
            format: "plain".into(),
            size_bytes: 0,
            sha256: None,
            status: "running".into(),
            tool_version: None,
            server_version: None,
            started_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            finished_at: None,
            error: None,
        }
    }
}

const BACKUP_COLUMNS: &str = "id, engine, connection_id, connection, database, path, format, size_bytes, sha256, status, tool_version, server_version, started_at, finished_at, error";

fn backup_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BackupRow> {
    Ok(BackupRow {
        id: r.get(0)?,
        engine: r.get(1)?,
        connection_id: r.get(2)?,
        connection: r.get(3)?,
        database: r.get(4)?,
        path: r.get(5)?,
        format: r.get(6)?,
        size_bytes: r.get::<_, i64>(7)? as u64,
        sha256: r.get(8)?,
        status: r.get(9)?,
        tool_version: r.get(10)?,
        server_version: r.get(11)?,
        started_at: r.get(12)?,
        finished_at: r.get(13)?,
        error: r.get(14)?,
    })
}

pub struct Catalog {
    conn: Arc<Mutex<Connection>>,
}

impl Catalog {
    /// Opens (creating and migrating) `bridge.db` in `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Catalog> {
        let mut conn = Connection::open(data_dir.join("bridge.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() {
            anyhow::bail!(
                "bridge.db has schema version {version}, newer than this dbbridge knows ({})",
                MIGRATIONS.len()
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
        }
        Ok(Catalog {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub async fn insert_backup(&self, row: BackupRow) -> Result<(), RpcError> {
        self.call(move |c| {
            c.execute(
                &format!("INSERT INTO backups ({BACKUP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
                params![
                    row.id,
                    row.engine,
                    row.connection_id,
                    row.connection,
                    row.database,
                    row.path,
                    row.format,
                    row.size_bytes as i64,
                    row.sha256,
                    row.status,
                    row.tool_version,
                    row.server_version,
                    row.started_at,
                    row.finished_at,
                    row.error
                ],
            )
            .map(|_| ())
        })
        .await
    }

    /// Records how a backup ended.
    pub async fn finish_backup(
        &self,
        id: &str,
        status: &'static str,
        size_bytes: u64,
        sha256: Option<String>,
        error: Option<String>,
    ) -> Result<(), RpcError> {
        let id = id.to_string();
        self.call(move |c| {
            c.execute(
                "UPDATE backups SET status = ?2, size_bytes = ?3, sha256 = ?4, error = ?5, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
                params![id, status, size_bytes as i64, sha256, error],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn backups(&self, connection_id: Option<String>) -> Result<Vec<BackupRow>, RpcError> {
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {BACKUP_COLUMNS} FROM backups WHERE ?1 IS NULL OR connection_id = ?1 ORDER BY started_at DESC, id"
            ))?;
            let rows = stmt.query_map(params![connection_id], backup_row)?;
            rows.collect()
        })
        .await
    }

    pub async fn backup(&self, id: &str) -> Result<Option<BackupRow>, RpcError> {
        let id = id.to_string();
        self.call(move |c| {
            c.query_row(
                &format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE id = ?1"),
                params![id],
                backup_row,
            )
            .optional()
        })
        .await
    }

    pub async fn delete_backup(&self, id: &str) -> Result<(), RpcError> {
        let id = id.to_string();
        self.call(move |c| {
            c.execute("DELETE FROM backups WHERE id = ?1", params![id])
                .map(|_| ())
        })
        .await
    }

    /// After a crash: backups left `running` become `failed`; returns their
    /// paths, whose partial files the caller removes.
    pub fn fail_interrupted_backups(&self) -> anyhow::Result<Vec<String>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn.prepare("SELECT path FROM backups WHERE status = 'running'")?;
        let paths = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        conn.execute(
            "UPDATE backups SET status = 'failed', error = 'the bridge stopped while the backup ran', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE status = 'running'",
            [],
        )?;
        Ok(paths)
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, RpcError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&conn.lock().unwrap_or_else(|e| e.into_inner())))
            .await
            .map_err(|e| RpcError::internal(e.to_string()))?
            .map_err(|e| RpcError::internal(format!("bridge.db: {e}")))
    }

    pub async fn save_connection(&self, row: SavedRow, kind: &'static str) -> Result<(), RpcError> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO connections (id, name, kind, spec) VALUES (?1, ?2, ?3, ?4)",
                params![row.id, row.name, kind, row.spec],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn connections(&self) -> Result<Vec<SavedRow>, RpcError> {
        self.call(|c| {
            let mut stmt = c.prepare("SELECT id, name, spec FROM connections ORDER BY name, id")?;
            let rows = stmt.query_map([], |r| {
                Ok(SavedRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    spec: r.get(2)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    pub async fn connection(&self, id: &str) -> Result<Option<SavedRow>, RpcError> {
        let id = id.to_string();
        self.call(move |c| {
            c.query_row(
                "SELECT id, name, spec FROM connections WHERE id = ?1",
                [&id],
                |r| {
                    Ok(SavedRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        spec: r.get(2)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// True if it existed.
    pub async fn delete_connection(&self, id: &str) -> Result<bool, RpcError> {
        let id = id.to_string();
        self.call(move |c| {
            c.execute("DELETE FROM connections WHERE id = ?1", [&id])
                .map(|n| n > 0)
        })
        .await
    }

    pub async fn add_keychain_key(&self, key: &str) -> Result<(), RpcError> {
        let key = key.to_string();
        self.call(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO keychain_keys (key) VALUES (?1)",
                [&key],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn remove_keychain_key(&self, key: &str) -> Result<(), RpcError> {
        let key = key.to_string();
        self.call(move |c| {
            c.execute("DELETE FROM keychain_keys WHERE key = ?1", [&key])
                .map(|_| ())
        })
        .await
    }

    pub async fn keychain_keys(&self) -> Result<Vec<String>, RpcError> {
        self.call(|c| {
            let mut stmt = c.prepare("SELECT key FROM keychain_keys ORDER BY key")?;
            let keys = stmt.query_map([], |r| r.get(0))?;
            keys.collect()
        })
        .await
    }
}
