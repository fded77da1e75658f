//! What the bridge needs to know to back Postgres up and restore it with
//! Postgres's own tools: the server's version and the tables' sizes (read
//! before the dump, for a percent), the `pg_dump` and `psql` command lines
//! (never with a password: that goes in a `PGPASSFILE`), and what
//! `pg_dump --verbose` says it is doing.

use std::path::Path;
use std::process::Command;

use dbbridge_protocol::connection::ServerConnection;
use dbbridge_protocol::connection::SslMode as ProtoSslMode;
use tokio_postgres::config::Host;

use super::PgConnection;
use crate::{DbError, QueryOptions, StreamItem};

/// What is known of a database before it is dumped.
#[derive(Debug, Clone)]
pub struct DumpPlan {
    pub server_version: String,
    pub server_major: u32,
    pub database: String,
    /// Each table's qualified name (as pg_dump prints it) and size in bytes.
    pub tables: Vec<(String, u64)>,
}

impl PgConnection {
    /// The server's version and every user table's size: exact where the
    /// tables can be had within 100 ms, else from the catalog's page counts
    /// (no lock at all; a table never vacuumed or analyzed counts 0).
    pub async fn dump_plan(&self) -> Result<DumpPlan, DbError> {
        const FROM: &str = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
            LEFT JOIN pg_class t ON t.oid = c.reltoastrelid \
            WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
            AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1";
        // pg_total_relation_size() takes a lock: bounded, so a table locked
        // by another session does not hold the backup up here.
        let exact = format!(
            "SET lock_timeout = 100; SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid)::text {FROM}"
        );
        let estimate = format!(
            "SELECT n.nspname || '.' || c.relname, \
             ((c.relpages + coalesce(t.relpages, 0))::bigint * current_setting('block_size')::bigint)::text {FROM}"
        );
        let tables = match self.table_sizes(exact).await {
            Ok(tables) => tables,
            Err(_) => self.table_sizes(estimate).await?,
        };
        let server_major = major(&self.version)
            .ok_or_else(|| DbError::internal(format!("server version {:?}", self.version)))?;
        Ok(DumpPlan {
            server_version: self.version.clone(),
            server_major,
            database: self.database.clone(),
            tables,
        })
    }

    async fn table_sizes(&self, sql: String) -> Result<Vec<(String, u64)>, DbError> {
        let mut stream = self.run(sql, QueryOptions::default());
        let mut tables = Vec::new();
        while let Some(item) = stream.items.recv().await {
            if let StreamItem::Rows { batch, .. } = item? {
                let rows: Vec<(String, String)> = serde_json::from_str(&batch.json)
                    .map_err(|e| DbError::internal(format!("table sizes: {e}")))?;
                tables.extend(rows.into_iter().map(|(t, n)| (t, n.parse().unwrap_or(0))));
            }
        }
        Ok(tables)
    }
}

/// The major of a `server_version` (`15.20 (Debian ...)` is 15, `9.6.24` is 9).
pub fn major(version: &str) -> Option<u32> {
    version.split(['.', ' ']).next()?.parse().ok()
}

/// Where a tool connects: a libpq conninfo without the password, and the
/// password on its own (for the `PGPASSFILE`).
pub struct Target {
    pub conninfo: String,
    pub password: Option<String>,
}

/// The tools' target for `params` (fields or URL), connecting to `database`
/// when given (a restore's fresh database) or the connection's own.
pub fn target(params: &ServerConnection, database: Option<&str>) -> Result<Target, DbError> {
    let config = super::config(params)?;
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = Vec::new();
    if let Some(host) = config.get_hosts().first() {
        let host = match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(dir) => dir.to_string_lossy().into_owned(),
        };
        parts.push(format!("host={}", quote(&host)));
    }
    if let Some(port) = config.get_ports().first() {
        parts.push(format!("port={port}"));
    }
    if let Some(user) = config.get_user() {
        parts.push(format!("user={}", quote(user)));
    }
    if let Some(db) = database.or(config.get_dbname()) {
        parts.push(format!("dbname={}", quote(db)));
    }
    // As the session connects: `sslMode` wins over a URL's own.
    let sslmode = match params.ssl_mode.unwrap_or_default() {
        ProtoSslMode::Disable => "disable",
        ProtoSslMode::Prefer => "prefer",
        ProtoSslMode::Require => "require",
        ProtoSslMode::VerifyCa => "verify-ca",
        ProtoSslMode::VerifyFull => "verify-full",
    };
    parts.push(format!("sslmode={sslmode}"));
    if let Some(root) = &params.ssl_root_cert {
        parts.push(format!("sslrootcert={}", quote(root)));
    }
    parts.push("application_name=dbbridge".to_string());
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    Ok(Target {
        conninfo: parts.join(" "),
        password,
    })
}

/// The one line of a `PGPASSFILE` that gives `password` to any server the
/// tool connects to (the file is the tool's alone, made for one run).
pub fn pgpass_line(password: &str) -> String {
    let escaped = password.replace('\\', "\\\\").replace(':', "\\:");
    format!("*:*:*:*:{escaped}\n")
}

/// `pg_dump` writing `database` to `out` (plain SQL, or the custom
/// archive), telling on stderr what it dumps.
pub fn dump_command(tool: &Path, target: &Target, out: &Path, custom: bool) -> Command {
    let mut command = Command::new(tool);
    command
        .arg("--verbose")
        .arg("--no-password")
        .arg(if custom {
            "--format=custom"
        } else {
            "--format=plain"
        })
        .arg("--file")
        .arg(out)
        .arg("--dbname")
        .arg(&target.conninfo);
    command
}

/// `psql` running a plain dump from stdin in one transaction that stops at
/// the first error, so a failed restore leaves the target as it was.
pub fn restore_command(psql: &Path, target: &Target) -> Command {
    let mut command = Command::new(psql);
    command
        .args(["-X", "-q", "--no-password", "--single-transaction"])
        .args(["-v", "ON_ERROR_STOP=1", "-f", "-"])
        .arg("--dbname")
        .arg(&target.conninfo);
    command
}

/// `pg_restore` loading a custom-format archive from stdin in one
/// transaction that stops at the first error.
pub fn pg_restore_command(tool: &Path, target: &Target) -> Command {
    let mut command = Command::new(tool);
    command
        .args(["--no-password", "--single-transaction", "--exit-on-error"])
        .arg("--dbname")
        .arg(&target.conninfo);
    command
}

/// The table `pg_dump --verbose` says it starts dumping, as `schema.table`.
pub fn dumping_table(line: &str) -> Option<&str> {
    let rest = line.split_once("dumping contents of table ")?.1;
    Some(rest.trim().trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_escapes_colons_and_backslashes() {
        assert_eq!(pgpass_line("a:b\\c"), "*:*:*:*:a\\:b\\\\c\n");
    }

    #[test]
    fn verbose_lines_name_their_table() {
        assert_eq!(
            dumping_table("pg_dump: dumping contents of table \"public.orders\""),
            Some("public.orders")
        );
        assert_eq!(dumping_table("pg_dump: reading extensions"), None);
    }

    #[test]
    fn the_target_never_holds_the_password() {
        let params: ServerConnection = serde_json::from_value(serde_json::json!({
            "url": "postgres://me:s3cr%3At@db.example:5433/app", "sslMode": "require"
        }))
        .unwrap();
        let t = target(&params, Some("fresh")).unwrap();
        assert!(!t.conninfo.contains("s3cr"), "{}", t.conninfo);
        assert!(t.conninfo.contains("host='db.example'") && t.conninfo.contains("port=5433"));
        assert!(t.conninfo.contains("dbname='fresh'") && t.conninfo.contains("sslmode=require"));
        assert_eq!(t.password.as_deref(), Some("s3cr:t"));
        assert_eq!(major("15.20 (Debian 15.20-0+deb12u1)"), Some(15));
        assert_eq!(major("18.1"), Some(18));
    }
}
