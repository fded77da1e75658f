//! The `secret.*` methods.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::connection::SecretString;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct SecretStoreParams {
    pub key: String,
    pub value: SecretString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SecretBackend {
    Keychain,
    EncryptedFile,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct SecretStoreResult {
    pub backend: SecretBackend,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct SecretKeyParams {
    pub key: String,
}

/// Where the encrypted-file store's key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SecretKeySource {
    /// `DBBRIDGE_SECRET_KEY`, given by the host app.
    Env,
    /// A passphrase, through `secret.unlock`.
    Passphrase,
    /// A random key in a file beside the store: the weakest source.
    LocalKey,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct SecretUnlockParams {
    pub passphrase: SecretString,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct SecretGetResult {
    pub value: SecretString,
}
