//! Restoring a plain Postgres dump: the checksum is verified and the dump's
//! `pg_dump` major checked against the target server before anything runs
//! (a dump by a newer `pg_dump` may set what an older server does not know,
//! such as `transaction_timeout`); then `psql --single-transaction -v
//! ON_ERROR_STOP=1` is fed the file on stdin, so a failure midway leaves the
//! target exactly as it was. Progress is the bytes fed.

use std::path::PathBuf;
use std::sync::Arc;

use dbbridge_db::postgres::PgConnection;
use dbbridge_db::postgres::dump::{self, Target};
use dbbridge_db::tools::{self, Tool};
use dbbridge_protocol::connection::ServerConnection;
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio_util::sync::CancellationToken;

use super::JobManager;
use super::pg_backup::find_tool;
use super::restore::run_restore;
use super::tool::{self, PassFile, Reporter};
use crate::client::Client;

#[allow(clippy::too_many_arguments)]
pub async fn start(
    jobs: &Arc<JobManager>,
    client: Client,
    backup_id: &str,
    custom: bool,
    file: PathBuf,
    sha256: String,
    tool_version: &str,
    server: &ServerConnection,
    bin_dirs: &[PathBuf],
) -> Result<String, RpcError> {
    let connection = PgConnection::open(server)
        .await
        .map_err(crate::errors::db_error)?;
    let server_version = connection.version().to_string();
    drop(connection);
    let server_major = dump::major(&server_version)
        .ok_or_else(|| RpcError::internal(format!("server version {server_version:?}")))?;
    if let Some(dumped_by) = tools::major_of(tool_version)
        && dumped_by > server_major
    {
        return Err(RpcError::new(
            ErrorCode::ToolVersionMismatch,
            format!(
                "this backup was made by pg_dump {dumped_by}, newer than the target server ({server_major}); restore it into a Postgres {dumped_by} or newer"
            ),
        )
        .with_details(serde_json::json!({
            "dumpedBy": tool_version,
            "serverVersion": server_version,
        })));
    }
    // A custom archive goes through pg_restore, plain SQL through psql.
    let psql = find_tool(
        if custom { "pg_restore" } else { "psql" },
        bin_dirs,
        server_major,
    )?;
    let target = dump::target(server, None).map_err(crate::errors::db_error)?;
    let id = crate::ids::new_id("r");
    let job = PgRestore {
        custom,
        id: id.clone(),
        backup_id: backup_id.to_string(),
        file,
        sha256,
        psql,
        target,
        client,
        jobs: jobs.clone(),
    };
    jobs.spawn(id.clone(), move |cancel| job.run(cancel));
    Ok(id)
}

struct PgRestore {
    custom: bool,
    id: String,
    backup_id: String,
    file: PathBuf,
    sha256: String,
    psql: Tool,
    target: Target,
    client: Client,
    /// Released before the done event, so a ping after it counts the job no more.
    jobs: Arc<JobManager>,
}

impl PgRestore {
    async fn run(self, cancel: CancellationToken) {
        run_restore(
            &self.jobs,
            &self.id,
            &self.backup_id,
            &self.client,
            async |reporter| self.restore(&cancel, reporter).await,
        )
        .await;
    }

    /// `Err(None)` when cancelled.
    async fn restore(
        &self,
        cancel: &CancellationToken,
        reporter: &mut Reporter,
    ) -> Result<(), Option<RpcError>> {
        tool::verify(&self.file, &self.sha256, reporter).await?;
        let line = self
            .target
            .password
            .as_deref()
            .map(dump::pgpass_line)
            .unwrap_or_default();
        let pass = PassFile::new("pgpass", &line).map_err(|e| {
            Some(RpcError::new(
                ErrorCode::RestoreFailed,
                format!("could not write the password file: {e}"),
            ))
        })?;
        if let Some(password) = &self.target.password {
            crate::redact::remember(password);
        }
        let loader = if self.custom {
            dump::pg_restore_command(&self.psql.path, &self.target)
        } else {
            dump::restore_command(&self.psql.path, &self.target)
        };
        let command = tool::command(loader, &pass, Some("PGPASSFILE"));
        tool::feed(
            command,
            if self.custom { "pg_restore" } else { "psql" },
            &self.file,
            cancel,
            reporter,
            "the target is unchanged (one transaction)",
        )
        .await
    }
}
