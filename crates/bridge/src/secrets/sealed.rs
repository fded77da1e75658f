//! The secret file's format: the entries as JSON, sealed with
//! XChaCha20-Poly1305 under a fresh nonce, in a JSON envelope whose other
//! fields (format, version, key source, salt) are bound in as associated
//! data; and the fuzz entry point that holds the format to that.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use dbbridge_protocol::RpcError;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const FORMAT: &str = "dbbridge-secrets";
const VERSION: u32 = 1;

/// Where the file's key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeySource {
    /// `DBBRIDGE_SECRET_KEY`, given by the host app.
    Env,
    /// A passphrase given through `secret.unlock`.
    Passphrase,
    /// A random key in a 0600 file beside the store: the weakest source.
    LocalKey,
}

impl KeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Env => "env",
            KeySource::Passphrase => "passphrase",
            KeySource::LocalKey => "localKey",
        }
    }
}

/// The file's outer shape. Everything but the ciphertext is authenticated as
/// associated data, so no field can be changed unnoticed.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Sealed {
    format: String,
    version: u32,
    pub(super) key_source: KeySource,
    /// Argon2id salt (env and passphrase keys).
    pub(super) salt: Option<String>,
    nonce: String,
    ciphertext: String,
}

impl Sealed {
    fn aad(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.format,
            self.version,
            self.key_source.as_str(),
            self.salt.as_deref().unwrap_or("")
        )
    }
}

pub(super) type Key = Zeroizing<[u8; 32]>;

/// The sealed file's envelope (not yet decrypted), or why it is not one.
pub(super) fn parse_sealed(text: &str) -> Result<Sealed, String> {
    let sealed: Sealed = serde_json::from_str(text)
        .map_err(|e| format!("is not a dbbridge secret file (truncated or modified?): {e}"))?;
    if sealed.format != FORMAT || sealed.version != VERSION {
        return Err("has an unknown format or version".into());
    }
    Ok(sealed)
}

pub(super) fn open_sealed(
    sealed: &Sealed,
    key: &Key,
) -> Result<BTreeMap<String, SecretString>, ()> {
    let nonce = B64.decode(&sealed.nonce).map_err(|_| ())?;
    let ciphertext = B64.decode(&sealed.ciphertext).map_err(|_| ())?;
    if nonce.len() != 24 {
        return Err(());
    }
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let aad = sealed.aad();
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| ())?,
    );
    let map: BTreeMap<String, String> = serde_json::from_slice(&plain).map_err(|_| ())?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, SecretString::from(v)))
        .collect())
}

/// The file's bytes: the entries as JSON, sealed under `key` with a fresh
/// nonce, the envelope's fields bound in as associated data.
pub(super) fn seal(
    key: &Key,
    source: KeySource,
    salt: Option<&[u8]>,
    entries: &BTreeMap<String, SecretString>,
) -> Result<Vec<u8>, RpcError> {
    let plain = {
        let map: BTreeMap<&str, &str> = entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_secret()))
            .collect();
        Zeroizing::new(serde_json::to_vec(&map).map_err(|e| RpcError::internal(e.to_string()))?)
    };
    let nonce: [u8; 24] = rand::random();
    let mut sealed = Sealed {
        format: FORMAT.into(),
        version: VERSION,
        key_source: source,
        salt: salt.map(|s| B64.encode(s)),
        nonce: B64.encode(nonce),
        ciphertext: String::new(),
    };
    let aad = sealed.aad();
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| RpcError::internal("encryption failed"))?;
    sealed.ciphertext = B64.encode(ciphertext);
    serde_json::to_vec(&sealed).map_err(|e| RpcError::internal(e.to_string()))
}

/// For the fuzz target: a secret file's bytes as the reader meets them.
/// Anything at all is refused cleanly or opened; a file sealed here opens
/// to exactly its entries; and a file changed in one byte never opens to
/// different entries (the AEAD and its associated data hold).
#[doc(hidden)]
pub fn fuzz_secret_file(data: &[u8]) {
    let key: Key = Zeroizing::new([7u8; 32]);
    // 1. The bytes as a file on disk.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(sealed) = parse_sealed(text)
    {
        let _ = open_sealed(&sealed, &key);
    }
    // 2. The bytes as entries: NUL-separated key/value pairs.
    let mut entries = BTreeMap::new();
    let mut parts = data.split(|&b| b == 0);
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        entries.insert(
            String::from_utf8_lossy(k).into_owned(),
            SecretString::from(String::from_utf8_lossy(v).into_owned()),
        );
    }
    let salt = data.get(..16);
    let source = if salt.is_some() {
        KeySource::Passphrase
    } else {
        KeySource::LocalKey
    };
    let Ok(bytes) = seal(&key, source, salt, &entries) else {
        panic!("sealing failed");
    };
    let plain = |m: &BTreeMap<String, SecretString>| -> Vec<(String, String)> {
        m.iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect()
    };
    let text = std::str::from_utf8(&bytes).unwrap_or_default();
    let opened = parse_sealed(text)
        .ok()
        .and_then(|s| open_sealed(&s, &key).ok());
    assert_eq!(
        opened.as_ref().map(plain),
        Some(plain(&entries)),
        "a sealed file did not open to its entries"
    );
    // 3. One byte changed, chosen by the input.
    if !bytes.is_empty() {
        let mut changed = bytes.clone();
        let at = data.iter().map(|&b| b as usize).sum::<usize>() % changed.len();
        changed[at] ^= data.first().copied().unwrap_or(1).max(1);
        if let Ok(text) = std::str::from_utf8(&changed)
            && let Ok(sealed) = parse_sealed(text)
            && let Ok(reopened) = open_sealed(&sealed, &key)
        {
            assert_eq!(
                plain(&reopened),
                plain(&entries),
                "a changed file opened to other entries"
            );
        }
    }
}
