//! Connection parameters and the `connection.*` methods.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use ts_rs::TS;

/// A password or other secret value on the wire. Its `Debug` never shows the
/// value, so it cannot leak through a `{:?}` in a log line or panic message.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The secret value. Call only where the value is handed to a driver or store.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// How TLS is used for server engines; `require` encrypts without verifying, as libpq does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Where to connect: a saved connection by id, or a full specification.
#[derive(Debug, Clone, PartialEq, Serialize, TS, JsonSchema)]
#[serde(untagged)]
pub enum ConnectionParams {
    Saved(SavedConnectionRef),
    Spec(ConnectionSpec),
}

// Decoded by hand so that a mistake in a specification is reported against its
// field ("missing field `path`") rather than as "did not match any variant".
impl<'de> Deserialize<'de> for ConnectionParams {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("connectionId").is_some() {
            SavedConnectionRef::deserialize(value)
                .map(ConnectionParams::Saved)
                .map_err(D::Error::custom)
        } else {
            ConnectionSpec::deserialize(value)
                .map(ConnectionParams::Spec)
                .map_err(D::Error::custom)
        }
    }
}

/// `{"connectionId": "c_..."}`: a saved connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavedConnectionRef {
    pub connection_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(type = "number", optional)]
    pub connect_timeout_ms: Option<u64>,
}

/// A full connection specification, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ConnectionSpec {
    Postgres(ServerConnection),
    Mysql(ServerConnection),
    Sqlite(SqliteConnection),
}

/// The engines the bridge speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Postgres,
    Mysql,
    Sqlite,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Postgres => "postgres",
            EngineKind::Mysql => "mysql",
            EngineKind::Sqlite => "sqlite",
        }
    }
}

impl ConnectionSpec {
    pub fn kind(&self) -> EngineKind {
        match self {
            ConnectionSpec::Postgres(_) => EngineKind::Postgres,
            ConnectionSpec::Mysql(_) => EngineKind::Mysql,
            ConnectionSpec::Sqlite(_) => EngineKind::Sqlite,
        }
    }
}

/// Postgres or MySQL: either `url`, or host/port/database/user.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerConnection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub password: Option<SecretString>,
    /// A key in the secret store holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub password_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub ssl_mode: Option<SslMode>,
    /// A PEM file with the root certificate(s) to trust for `verify-ca` / `verify-full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub ssl_root_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(type = "number", optional)]
    pub connect_timeout_ms: Option<u64>,
}

/// A SQLite database file (or `:memory:`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqliteConnection {
    pub path: String,
    #[serde(default)]
    #[ts(as = "Option<bool>", optional)]
    pub read_only: bool,
    /// Create the file when it does not exist; otherwise a missing file is an error.
    #[serde(default)]
    #[ts(as = "Option<bool>", optional)]
    pub create: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(type = "number", optional)]
    pub connect_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ConnectionTestParams {
    pub connection: ConnectionParams,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionTestResult {
    pub kind: EngineKind,
    pub server_version: String,
    #[ts(type = "number")]
    pub latency_ms: u64,
    /// For `mysql` connections: `mysql` or `mariadb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub flavour: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ConnectionSaveParams {
    pub name: String,
    pub connection: ConnectionParams,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSaveResult {
    pub connection_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDeleteParams {
    pub connection_id: String,
}

/// A saved connection as listed: never a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavedConnection {
    pub connection_id: String,
    pub name: String,
    pub kind: EngineKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub path: Option<String>,
}
