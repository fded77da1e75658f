//! Bridge-level methods: `health.ping`, `bridge.shutdown`, `rpc.discover`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::secret::{SecretBackend, SecretKeySource};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthInfo {
    /// The bridge's version (Cargo package version).
    pub version: String,
    #[ts(type = "number")]
    pub uptime_ms: u64,
    pub pid: u32,
    /// CPU use of this process since the previous sample, in percent of one core.
    pub cpu_percent: f64,
    #[ts(type = "number")]
    pub memory_rss_bytes: u64,
    pub sessions: u32,
    pub running_queries: u32,
    pub running_jobs: u32,
    /// The secret store in use; null until one is configured.
    pub secret_backend: Option<SecretBackend>,
    /// For the encrypted-file store: where its key comes from (`localKey` is
    /// the weakest); absent for the keychain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub secret_key_source: Option<SecretKeySource>,
}
