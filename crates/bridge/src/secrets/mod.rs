//! The secret store: one small interface over two backends, the OS keychain
//! (`keyring`) and an encrypted file in the data dir for machines where no
//! keychain answers. Values are held in `secrecy` types and never logged.

pub(crate) mod file;
mod keychain;
pub(crate) mod sealed;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dbbridge_protocol::secret::SecretBackend;
use dbbridge_protocol::{ErrorCode, RpcError};
use secrecy::SecretString;

use crate::catalog::Catalog;
pub use sealed::KeySource;

/// How the backend is chosen (`--secret-backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// The keychain if one answers, else the encrypted file.
    Auto,
    Keychain,
    File,
}

/// The secret store in use.
pub enum SecretStore {
    Keychain(keychain::KeychainStore),
    File(file::FileStore),
}

/// How long a keychain call may take (an unlock prompt may be waiting).
const KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl SecretStore {
    /// Opens the store for `data_dir`. `env_key` is `DBBRIDGE_SECRET_KEY`.
    pub async fn open(
        choice: BackendChoice,
        data_dir: &Path,
        catalog: Arc<Catalog>,
        env_key: Option<SecretString>,
    ) -> SecretStore {
        let keychain = || keychain::KeychainStore::new(data_dir, catalog.clone());
        match choice {
            BackendChoice::Keychain => SecretStore::Keychain(keychain()),
            BackendChoice::File => {
                SecretStore::File(file::FileStore::open(data_dir, env_key).await)
            }
            BackendChoice::Auto => {
                let store = keychain();
                match store.probe().await {
                    Ok(()) => SecretStore::Keychain(store),
                    Err(reason) => {
                        tracing::info!(reason = %reason.message, "no keychain answers; using the encrypted secret file");
                        SecretStore::File(file::FileStore::open(data_dir, env_key).await)
                    }
                }
            }
        }
    }

    pub fn backend(&self) -> SecretBackend {
        match self {
            SecretStore::Keychain(_) => SecretBackend::Keychain,
            SecretStore::File(_) => SecretBackend::EncryptedFile,
        }
    }

    /// Where the file backend's key comes from (`None` for the keychain).
    pub fn key_source(&self) -> Option<KeySource> {
        match self {
            SecretStore::Keychain(_) => None,
            SecretStore::File(f) => f.key_source(),
        }
    }

    pub async fn store(&self, key: &str, value: SecretString) -> Result<(), RpcError> {
        check_key(key)?;
        match self {
            SecretStore::Keychain(k) => k.store(key, value).await,
            SecretStore::File(f) => f.store(key, value).await,
        }
    }

    pub async fn get(&self, key: &str) -> Result<SecretString, RpcError> {
        match self {
            SecretStore::Keychain(k) => k.get(key).await,
            SecretStore::File(f) => f.get(key).await,
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), RpcError> {
        match self {
            SecretStore::Keychain(k) => k.delete(key).await,
            SecretStore::File(f) => f.delete(key).await,
        }
    }

    pub async fn list(&self) -> Result<Vec<String>, RpcError> {
        match self {
            SecretStore::Keychain(k) => k.list().await,
            SecretStore::File(f) => f.list().await,
        }
    }

    /// Unlocks (or re-keys to) a passphrase-protected file store.
    pub async fn unlock(&self, passphrase: SecretString) -> Result<(), RpcError> {
        match self {
            SecretStore::Keychain(_) => Err(RpcError::new(
                ErrorCode::NotSupported,
                "the keychain backend is unlocked by the operating system, not by a passphrase",
            )),
            SecretStore::File(f) => f.unlock(passphrase).await,
        }
    }
}

fn check_key(key: &str) -> Result<(), RpcError> {
    if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            "key must be 1-256 printable characters",
        )
        .with_details(serde_json::json!({ "field": "key" })));
    }
    Ok(())
}

pub(crate) fn not_found(key: &str) -> RpcError {
    RpcError::new(
        ErrorCode::SecretNotFound,
        format!("no secret stored under {key:?}"),
    )
}

pub(crate) fn unavailable(reason: &str, message: impl Into<String>) -> RpcError {
    RpcError::new(ErrorCode::SecretStoreUnavailable, message)
        .with_details(serde_json::json!({ "reason": reason }))
}
