//! `<data-dir>/bridge.db`: the bridge's own SQLite database of saved
//! connections (never a password: those live in the secret store) and the
//! index of keychain keys. The schema is versioned by `PRAGMA user_version`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use dbbridge_protocol::RpcError;
use rusqlite::{Connection, OptionalExtension, params};

/// Migration N takes the schema from version N to N+1. Append only.
const MIGRATIONS: &[&str] = &["CREATE TABLE connections (
         id TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         kind TEXT NOT NULL,
         spec TEXT NOT NULL,
         created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
     );
     CREATE TABLE keychain_keys (key TEXT PRIMARY KEY);"];

/// A saved connection as stored: its spec is JSON without a password.
pub struct SavedRow {
    pub id: String,
    pub name: String,
    pub spec: String,
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
