//! `cargo xtask with-servers -- CMD ARGS...`: runs a command with throwaway
//! PostgreSQL and MariaDB servers, the same ones the Rust tests start (their
//! code is shared, not copied), named to it by `DBBRIDGE_TEST_POSTGRES_URL`
//! and `DBBRIDGE_TEST_MYSQL_URL`. The servers stop when xtask exits. The
//! TypeScript client's tests run under it.

use std::process::Command;

use anyhow::{Context, Result, bail};

#[allow(dead_code, clippy::unwrap_used)]
#[path = "../../crates/bridge/tests/it/servers/mod.rs"]
pub(crate) mod shared;

pub fn with_servers(command: &[&str]) -> Result<()> {
    let Some((program, args)) = command.split_first() else {
        bail!("usage: cargo xtask with-servers -- CMD [ARGS...]");
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    // With CI set, a server that cannot be had fails here (never a skip).
    let url = |scheme: &str, user: &str, password: &str, host: &str, port: u16, path: &str| {
        format!("{scheme}://{user}:{password}@{host}:{port}/{path}")
    };
    if let Some(pg) = shared::postgres() {
        let at = url(
            "postgres",
            &pg.user,
            &pg.password,
            &pg.host,
            pg.port,
            "postgres",
        );
        cmd.env("DBBRIDGE_TEST_POSTGRES_URL", at);
    }
    if let Some(my) = shared::mysql() {
        let at = url("mysql", &my.user, &my.password, &my.host, my.port, "");
        cmd.env("DBBRIDGE_TEST_MYSQL_URL", at);
    }
    let status = cmd.status().with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} failed: {status}");
    }
    Ok(())
}
