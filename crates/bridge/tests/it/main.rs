//! Integration tests: the real `dbbridge` binary over its real transports.
#![allow(clippy::unwrap_used)]

mod backup_mysql;
mod backup_postgres;
mod backup_sqlite;
mod backup_sqlite_catalog;
mod demo;
mod export;
mod export_mysql;
mod export_postgres;
mod export_sqlite;
mod faults;
mod faults_servers;
mod harness;
mod load;
mod logging;
mod mysql;
mod mysql8;
mod mysql_client;
mod mysql_types;
mod paging;
mod postgres;
mod postgres_metadata;
mod postgres_query;
mod postgres_scripts;
mod postgres_types;
mod psql_oracle;
mod secret_walk;
mod secrets;
mod secrets_keychain;
mod servers;
mod sqlite;
mod sqlite_metadata;
mod sqlite_sessions;
mod stdio;
mod websocket;
