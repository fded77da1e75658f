//! The encrypted-file backend: the whole store is one XChaCha20-Poly1305
//! sealed JSON map in `<data-dir>/secrets.enc`. The key comes from
//! `DBBRIDGE_SECRET_KEY` or a passphrase (both through Argon2id with the
//! file's salt), else from a random key in `<data-dir>/secret.key` (the
//! weakest: the key sits beside the file, protected only by file modes).
//! Writes are atomic (temp file, fsync, rename) and serialized; a file that
//! cannot be read or decrypted is reported and never replaced.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use dbbridge_protocol::RpcError;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::sealed::{Key, KeySource, Sealed, open_sealed, parse_sealed, seal};
use super::{not_found, unavailable};

const FILE_NAME: &str = "secrets.enc";
const KEY_FILE_NAME: &str = "secret.key";

enum State {
    Open {
        key: Key,
        source: KeySource,
        salt: Option<Vec<u8>>,
        entries: BTreeMap<String, SecretString>,
    },
    /// A passphrase store waiting for `secret.unlock`.
    Locked { salt: Vec<u8> },
    /// The file cannot be used; it is left exactly as it is.
    Broken {
        reason: &'static str,
        message: String,
    },
}

pub struct FileStore {
    path: PathBuf,
    key_path: PathBuf,
    state: Arc<Mutex<State>>,
}

impl FileStore {
    pub async fn open(data_dir: &Path, env_key: Option<SecretString>) -> FileStore {
        let path = data_dir.join(FILE_NAME);
        let key_path = data_dir.join(KEY_FILE_NAME);
        let (p, k) = (path.clone(), key_path.clone());
        let state = tokio::task::spawn_blocking(move || load(&p, &k, env_key.as_ref()))
            .await
            .unwrap_or_else(|e| State::Broken {
                reason: "internal",
                message: e.to_string(),
            });
        if let State::Broken { message, .. } = &state {
            tracing::error!(path = %path.display(), error = %message, "the secret file cannot be used");
        }
        FileStore {
            path,
            key_path,
            state: Arc::new(Mutex::new(state)),
        }
    }

    pub fn key_source(&self) -> Option<KeySource> {
        match &*self.state.lock().unwrap_or_else(|e| e.into_inner()) {
            State::Open { source, .. } => Some(*source),
            State::Locked { .. } => Some(KeySource::Passphrase),
            State::Broken { .. } => None,
        }
    }

    /// Runs `op` on the open store on a blocking thread, holding the lock: this
    /// is what serializes writers.
    async fn with_open<T: Send + 'static>(
        &self,
        op: impl FnOnce(
            &Paths,
            &mut Key,
            &mut KeySource,
            &mut Option<Vec<u8>>,
            &mut BTreeMap<String, SecretString>,
        ) -> Result<T, RpcError>
        + Send
        + 'static,
    ) -> Result<T, RpcError> {
        let state = self.state.clone();
        let paths = Paths {
            path: self.path.clone(),
            key_path: self.key_path.clone(),
        };
        tokio::task::spawn_blocking(move || {
            let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
            match &mut *guard {
                State::Open {
                    key,
                    source,
                    salt,
                    entries,
                } => op(&paths, key, source, salt, entries),
                State::Locked { .. } => Err(unavailable(
                    "locked",
                    "the secret store is locked: call secret.unlock with its passphrase",
                )),
                State::Broken { reason, message } => Err(unavailable(reason, message.clone())),
            }
        })
        .await
        .map_err(|e| RpcError::internal(e.to_string()))?
    }

    pub async fn store(&self, key: &str, value: SecretString) -> Result<(), RpcError> {
        let key = key.to_string();
        self.with_open(move |paths, k, source, salt, entries| {
            let previous = entries.insert(key.clone(), value);
            if let Err(e) = write(paths, k, *source, salt.as_deref(), entries) {
                // Keep memory as the file is.
                match previous {
                    Some(p) => entries.insert(key, p),
                    None => entries.remove(&key),
                };
                return Err(e);
            }
            Ok(())
        })
        .await
    }

    pub async fn get(&self, key: &str) -> Result<SecretString, RpcError> {
        let key = key.to_string();
        self.with_open(move |_, _, _, _, entries| {
            entries.get(&key).cloned().ok_or_else(|| not_found(&key))
        })
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), RpcError> {
        let key = key.to_string();
        self.with_open(move |paths, k, source, salt, entries| {
            let Some(previous) = entries.remove(&key) else {
                return Err(not_found(&key));
            };
            if let Err(e) = write(paths, k, *source, salt.as_deref(), entries) {
                entries.insert(key, previous);
                return Err(e);
            }
            Ok(())
        })
        .await
    }

    pub async fn list(&self) -> Result<Vec<String>, RpcError> {
        self.with_open(|_, _, _, _, entries| Ok(entries.keys().cloned().collect()))
            .await
    }

    /// A locked passphrase store: checks the passphrase and opens it. An open
    /// store: re-encrypts it under the passphrase from now on.
    pub async fn unlock(&self, passphrase: SecretString) -> Result<(), RpcError> {
        let state = self.state.clone();
        let paths = Paths {
            path: self.path.clone(),
            key_path: self.key_path.clone(),
        };
        tokio::task::spawn_blocking(move || {
            let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
            match &mut *guard {
                State::Broken { reason, message } => Err(unavailable(reason, message.clone())),
                State::Locked { salt } => {
                    let salt = salt.clone();
                    let key = derive(passphrase.expose_secret(), &salt)?;
                    let sealed = read_sealed(&paths.path).map_err(|(r, m)| unavailable(r, m))?;
                    let entries = open_sealed(&sealed, &key).map_err(|_| {
                        unavailable(
                            "wrongKey",
                            "wrong passphrase (or the secret file was modified)",
                        )
                    })?;
                    *guard = State::Open {
                        key,
                        source: KeySource::Passphrase,
                        salt: Some(salt),
                        entries,
                    };
                    Ok(())
                }
                State::Open {
                    key,
                    source,
                    salt,
                    entries,
                } => {
                    let new_salt: [u8; 16] = rand::random();
                    let new_key = derive(passphrase.expose_secret(), &new_salt)?;
                    write(
                        &paths,
                        &new_key,
                        KeySource::Passphrase,
                        Some(&new_salt),
                        entries,
                    )?;
                    if *source == KeySource::LocalKey {
                        let _ = std::fs::remove_file(&paths.key_path);
                    }
                    *key = new_key;
                    *source = KeySource::Passphrase;
                    *salt = Some(new_salt.to_vec());
                    Ok(())
                }
            }
        })
        .await
        .map_err(|e| RpcError::internal(e.to_string()))?
    }
}

struct Paths {
    path: PathBuf,
    key_path: PathBuf,
}

fn load(path: &Path, key_path: &Path, env_key: Option<&SecretString>) -> State {
    if !path.exists() {
        // A new store: the host's key if it gave one, else a local key (made on first write).
        return match env_key {
            Some(env) => {
                let salt: [u8; 16] = rand::random();
                match derive(env.expose_secret(), &salt) {
                    Ok(key) => State::Open {
                        key,
                        source: KeySource::Env,
                        salt: Some(salt.to_vec()),
                        entries: BTreeMap::new(),
                    },
                    Err(e) => State::Broken {
                        reason: "internal",
                        message: e.message,
                    },
                }
            }
            None => match read_or_new_local_key(key_path) {
                Ok(key) => State::Open {
                    key,
                    source: KeySource::LocalKey,
                    salt: None,
                    entries: BTreeMap::new(),
                },
                Err(message) => State::Broken {
                    reason: "keyFile",
                    message,
                },
            },
        };
    }
    let sealed = match read_sealed(path) {
        Ok(sealed) => sealed,
        Err((reason, message)) => return State::Broken { reason, message },
    };
    let salt = match sealed.salt.as_deref().map(|s| B64.decode(s)) {
        Some(Ok(salt)) => Some(salt),
        Some(Err(_)) => {
            return State::Broken {
                reason: "corrupt",
                message: "the secret file's salt is not base64".into(),
            };
        }
        None => None,
    };
    let key = match (sealed.key_source, env_key, &salt) {
        (KeySource::Passphrase, _, Some(salt)) => return State::Locked { salt: salt.clone() },
        (KeySource::Env, None, _) => {
            return State::Broken {
                reason: "keyMissing",
                message: "the secret file was encrypted with DBBRIDGE_SECRET_KEY, which is not set"
                    .into(),
            };
        }
        (KeySource::Env, Some(env), Some(salt)) => match derive(env.expose_secret(), salt) {
            Ok(key) => key,
            Err(e) => {
                return State::Broken {
                    reason: "internal",
                    message: e.message,
                };
            }
        },
        (KeySource::LocalKey, _, _) => match read_local_key(key_path) {
            Ok(key) => key,
            Err(message) => {
                return State::Broken {
                    reason: "keyFile",
                    message,
                };
            }
        },
        (_, _, None) => {
            return State::Broken {
                reason: "corrupt",
                message: "the secret file has no salt".into(),
            };
        }
    };
    match open_sealed(&sealed, &key) {
        Ok(entries) => State::Open {
            key,
            source: sealed.key_source,
            salt,
            entries,
        },
        Err(()) => State::Broken {
            reason: "wrongKey",
            message: format!(
                "cannot decrypt {}: wrong {} or the file was modified",
                path.display(),
                match sealed.key_source {
                    KeySource::Env => "DBBRIDGE_SECRET_KEY",
                    KeySource::Passphrase => "passphrase",
                    KeySource::LocalKey => "key file",
                }
            ),
        },
    }
}

fn read_sealed(path: &Path) -> Result<Sealed, (&'static str, String)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ("unreadable", format!("cannot read {}: {e}", path.display())))?;
    parse_sealed(&text).map_err(|e| ("corrupt", format!("{} {e}", path.display())))
}

fn write(
    paths: &Paths,
    key: &Key,
    source: KeySource,
    salt: Option<&[u8]>,
    entries: &BTreeMap<String, SecretString>,
) -> Result<(), RpcError> {
    if source == KeySource::LocalKey && !paths.key_path.exists() {
        write_atomic(&paths.key_path, key.as_ref())
            .map_err(|e| unavailable("io", format!("cannot write the key file: {e}")))?;
    }
    let text = seal(key, source, salt, entries)?;
    write_atomic(&paths.path, &text)
        .map_err(|e| unavailable("io", format!("cannot write {}: {e}", paths.path.display())))
}

/// Temp file (0600) in the same directory, fsync, rename, fsync the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{:016x}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        rand::random::<u64>()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn read_local_key(key_path: &Path) -> Result<Key, String> {
    let bytes = std::fs::read(key_path)
        .map_err(|e| format!("cannot read the key file {}: {e}", key_path.display()))?;
    let bytes = Zeroizing::new(bytes);
    let array: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("the key file {} is not 32 bytes", key_path.display()))?;
    Ok(Zeroizing::new(array))
}

/// The local key if its file exists; otherwise a new random one, written with
/// the store's first write.
fn read_or_new_local_key(key_path: &Path) -> Result<Key, String> {
    if key_path.exists() {
        read_local_key(key_path)
    } else {
        Ok(Zeroizing::new(rand::random()))
    }
}

/// Argon2id with the default (OWASP-recommended) cost: 19 MiB, 2 passes.
fn derive(secret: &str, salt: &[u8]) -> Result<Key, RpcError> {
    let mut key = Zeroizing::new([0u8; 32]);
    argon2::Argon2::default()
        .hash_password_into(secret.as_bytes(), salt, key.as_mut())
        .map_err(|e| RpcError::internal(format!("key derivation failed: {e}")))?;
    Ok(key)
}
