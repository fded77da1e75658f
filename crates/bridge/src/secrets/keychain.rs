//! The OS keychain backend (macOS Keychain, Windows Credential Manager, the
//! Secret Service on Linux) through `keyring`. Each call runs on a blocking
//! thread with a timeout, since a keychain may wait on an unlock prompt. A
//! blocking thread cannot be stopped, so calls take turns: a call that timed
//! out keeps the turn until its thread returns, and later calls wait for it
//! within their own timeout instead of piling up more stuck threads.
//! Keychains cannot list their entries, so the keys (never the values) are
//! indexed in `bridge.db`.

use std::path::Path;
use std::sync::Arc;

use dbbridge_protocol::RpcError;
use secrecy::{ExposeSecret, SecretString};

use super::{KEYCHAIN_TIMEOUT, not_found, unavailable};
use crate::catalog::Catalog;

pub struct KeychainStore {
    /// The keychain service name, one per data dir so two bridges never mix.
    service: String,
    catalog: Arc<Catalog>,
    /// One keychain call at a time (held by the blocking thread itself).
    turn: Arc<tokio::sync::Semaphore>,
}

impl KeychainStore {
    pub fn new(data_dir: &Path, catalog: Arc<Catalog>) -> Self {
        KeychainStore {
            service: format!("dbbridge:{}", data_dir.display()),
            catalog,
            turn: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    async fn call<T: Send + 'static>(
        &self,
        key: &str,
        op: impl FnOnce(keyring::Entry) -> keyring::Result<T> + Send + 'static,
    ) -> Result<T, RpcError> {
        let (service, user) = (self.service.clone(), key.to_string());
        let deadline = tokio::time::Instant::now() + KEYCHAIN_TIMEOUT;
        let Ok(Ok(turn)) =
            tokio::time::timeout_at(deadline, self.turn.clone().acquire_owned()).await
        else {
            return Err(unavailable(
                "timeout",
                "the keychain is still busy with an earlier call that did not return (is it locked?)",
            ));
        };
        let task = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            keyring::Entry::new(&service, &user).and_then(op)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Err(_) => Err(unavailable(
                "timeout",
                "the keychain did not answer within 10 s (is it locked?)",
            )),
            Ok(Err(join)) => Err(unavailable(
                "internal",
                format!("the keychain call failed: {join}"),
            )),
            Ok(Ok(Err(keyring::Error::NoEntry))) => Err(not_found(key)),
            Ok(Ok(Err(error))) => Err(unavailable(
                "keychain",
                format!("the keychain refused: {error}"),
            )),
            Ok(Ok(Ok(value))) => Ok(value),
        }
    }

    /// Whether a keychain answers at all (a missing entry is an answer).
    pub async fn probe(&self) -> Result<(), RpcError> {
        match self.call("__dbbridge_probe__", |e| e.get_password()).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == dbbridge_protocol::ErrorCode::SecretNotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn store(&self, key: &str, value: SecretString) -> Result<(), RpcError> {
        self.call(key, move |e| e.set_password(value.expose_secret()))
            .await?;
        self.catalog.add_keychain_key(key).await
    }

    pub async fn get(&self, key: &str) -> Result<SecretString, RpcError> {
        self.call(key, |e| e.get_password().map(SecretString::from))
            .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), RpcError> {
        let result = self.call(key, |e| e.delete_credential()).await;
        self.catalog.remove_keychain_key(key).await?;
        result
    }

    pub async fn list(&self) -> Result<Vec<String>, RpcError> {
        self.catalog.keychain_keys().await
    }
}
