//! What the bridge needs to back MySQL/MariaDB up with the servers' own
//! tools: the server's version and the tables' sizes (for a percent), an
//! option file that carries the login (`--defaults-extra-file`: the password
//! never goes on a command line), the `mariadb-dump`/`mysqldump` and
//! `mariadb`/`mysql` command lines, and what `--verbose` says it is doing.

use std::path::Path;
use std::process::Command;

use super::MyConnection;
use crate::{DbError, QueryOptions, StreamItem};

/// What is known of a database before it is dumped.
#[derive(Debug, Clone)]
pub struct DumpPlan {
    pub server_version: String,
    pub database: String,
    /// Each table's name and size in bytes (data and indexes).
    pub tables: Vec<(String, u64)>,
}

impl MyConnection {
    /// The server's version and every table's size in the current database.
    pub async fn dump_plan(&self) -> Result<DumpPlan, DbError> {
        let sql = "SELECT table_name, CAST(COALESCE(data_length, 0) + COALESCE(index_length, 0) AS CHAR) \
                   FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1";
        let mut stream = self.run(sql.to_string(), QueryOptions::default());
        let mut tables = Vec::new();
        while let Some(item) = stream.items.recv().await {
            if let StreamItem::Rows { batch, .. } = item? {
                let rows: Vec<(String, String)> = serde_json::from_str(&batch.json)
                    .map_err(|e| DbError::internal(format!("table sizes: {e}")))?;
                tables.extend(rows.into_iter().map(|(t, n)| (t, n.parse().unwrap_or(0))));
            }
        }
        Ok(DumpPlan {
            server_version: self.version().to_string(),
            database: self.database().to_string(),
            tables,
        })
    }
}

/// Where a tool logs in: the connection's host, port, user, password and
/// database, from its fields or URL.
pub struct Login {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: Option<String>,
}

pub fn login(params: &dbbridge_protocol::connection::ServerConnection) -> Result<Login, DbError> {
    let opts = super::opts(params, dbbridge_protocol::connection::SslMode::Disable)?;
    Ok(Login {
        host: opts.host,
        port: opts.port,
        user: opts.user,
        password: opts.password,
        database: opts.database,
    })
}

/// A `[client]` option file with the login: for the tool alone, written
/// `0600` into a private folder by the caller.
pub fn option_file(host: &str, port: u16, user: &str, password: Option<&str>) -> String {
    let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    let mut text = format!(
        "[client]\nhost={}\nport={port}\nuser={}\n",
        quote(host),
        quote(user)
    );
    if let Some(password) = password {
        text.push_str(&format!("password={}\n", quote(password)));
    }
    text
}

/// `mariadb-dump` of `database` into `out`: one consistent snapshot
/// (`--single-transaction`) with routines, triggers and events.
pub fn dump_command(tool: &Path, options: &Path, database: &str, out: &Path) -> Command {
    let mut command = Command::new(tool);
    // The option file must come first.
    command
        .arg(format!("--defaults-extra-file={}", options.display()))
        .args([
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
        ])
        .arg("--verbose")
        .arg(format!("--result-file={}", out.display()))
        // Without --databases: no CREATE DATABASE or USE in the dump, so it
        // restores into whatever database the client names.
        .arg(database);
    command
}

/// The `mariadb` client running a dump from stdin into `database`.
pub fn restore_command(tool: &Path, options: &Path, database: &str) -> Command {
    let mut command = Command::new(tool);
    command
        .arg(format!("--defaults-extra-file={}", options.display()))
        .arg("--batch")
        .arg(database);
    command
}

/// The table `--verbose` says it starts on.
pub fn dumping_table(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("-- Retrieving table structure for table ")?;
    Some(rest.trim_end_matches("...").trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_files_quote_their_values() {
        let text = option_file("127.0.0.1", 3306, "me", Some("a\"b\\c"));
        assert!(text.contains("password=\"a\\\"b\\\\c\"\n"), "{text}");
        assert!(text.starts_with("[client]\n"));
        assert!(!option_file("h", 1, "u", None).contains("password"));
    }

    #[test]
    fn verbose_lines_name_their_table() {
        assert_eq!(
            dumping_table("-- Retrieving table structure for table orders..."),
            Some("orders")
        );
        assert_eq!(dumping_table("-- Retrieving rows..."), None);
    }
}
