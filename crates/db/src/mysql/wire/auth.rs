//! Logging in: the handshake, the TLS upgrade, and the authentication
//! exchange (mysql_native_password, caching_sha2_password with its TLS or
//! RSA full auth, MariaDB's ed25519, auth switches).

use std::sync::Arc;

use mysql_common::constants::{CapabilityFlags, MariadbCapabilities};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, HandshakePacket, HandshakeResponse, SslRequest};
use mysql_common::proto::MySerialize;

use super::{
    Conn, Error, MAX_AUTH_SWITCHES, MAX_PACKET, Opts, Stream, UTF8MB4_GENERAL_CI, protocol,
};

impl Conn {
    pub(super) async fn handshake(&mut self, opts: &Opts) -> Result<(), Error> {
        self.read_packet().await?;
        if self.payload().first() == Some(&0xff) {
            return Err(self.err_packet());
        }
        let (nonce, server_caps, plugin, version_parsed, status, mariadb_caps) = {
            let hs = ParseBuf(self.payload())
                .parse::<HandshakePacket>(())
                .map_err(protocol)?;
            let mut nonce = hs.scramble_1_ref().to_vec();
            nonce.extend_from_slice(hs.scramble_2_ref().unwrap_or_default());
            // The scramble is 20 bytes and a NUL, as the server fills it.
            nonce.resize(20, 0);
            let plugin = match hs.auth_plugin() {
                Some(AuthPlugin::CachingSha2Password) => AuthPlugin::CachingSha2Password,
                _ => AuthPlugin::MysqlNativePassword,
            };
            let parsed = hs
                .maria_db_server_version_parsed()
                .or_else(|| hs.server_version_parsed())
                .unwrap_or((5, 7, 0));
            (
                nonce,
                hs.capabilities(),
                plugin.into_owned(),
                parsed,
                hs.status_flags(),
                // MariaDB says it has capabilities of its own by clearing
                // the first standard one.
                if hs
                    .capabilities()
                    .contains(CapabilityFlags::CLIENT_LONG_PASSWORD)
                {
                    MariadbCapabilities::empty()
                } else {
                    hs.mariadb_ext_capabilities()
                },
            )
        };
        self.status = status;
        self.mariadb_caps = mariadb_caps & MariadbCapabilities::MARIADB_CLIENT_EXTENDED_METADATA;
        let mut wanted = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_MULTI_RESULTS
            | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
            | CapabilityFlags::CLIENT_DEPRECATE_EOF
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
        if opts.database.is_some() {
            wanted |= CapabilityFlags::CLIENT_CONNECT_WITH_DB;
        }
        let tls = match &opts.tls {
            Some((config, _)) if server_caps.contains(CapabilityFlags::CLIENT_SSL) => {
                wanted |= CapabilityFlags::CLIENT_SSL;
                Some(config.clone())
            }
            Some((_, true)) => {
                return Err(Error::Protocol(
                    "the server does not offer TLS (sslMode requires it)".into(),
                ));
            }
            _ => None,
        };
        self.caps = server_caps & wanted;
        if let Some(config) = tls {
            self.upgrade(config, &opts.host).await?;
        }
        let auth_data = plugin.gen_data(opts.password.as_deref(), &nonce);
        let response = HandshakeResponse::new(
            auth_data.as_deref(),
            version_parsed,
            Some(opts.user.as_bytes()),
            opts.database.as_deref().map(str::as_bytes),
            Some(plugin.borrow()),
            self.caps,
            None,
            MAX_PACKET,
        )
        .with_mariadb_ext_capabilities(self.mariadb_caps);
        let mut body = Vec::new();
        response.serialize(&mut body);
        self.write_packet(&body).await?;
        self.authenticate(opts, plugin, nonce).await
    }

    async fn upgrade(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> Result<(), Error> {
        let request = SslRequest::new(self.caps, MAX_PACKET, UTF8MB4_GENERAL_CI)
            .with_mariadb_capabilities(self.mariadb_caps);
        let mut body = Vec::new();
        request.serialize(&mut body);
        self.write_packet(&body).await?;
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| Error::Protocol(format!("TLS: {host:?} is not a host name: {e}")))?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(Error::Protocol("TLS requested twice".into()));
        };
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| Error::Protocol(format!("TLS handshake failed: {e}")))?;
        self.stream = Stream::Tls(Box::new(tls));
        self.secure = true;
        Ok(())
    }

    /// The replies to the handshake response, auth switches and
    /// caching_sha2_password's extra rounds included, up to the final OK.
    async fn authenticate(
        &mut self,
        opts: &Opts,
        mut plugin: AuthPlugin<'static>,
        mut nonce: Vec<u8>,
    ) -> Result<(), Error> {
        // MariaDB's `IDENTIFIED VIA a OR b` switches once per plugin it tries.
        let mut switches = 0;
        loop {
            self.read_packet().await?;
            let first = self.payload().first().copied();
            match first {
                Some(0x00) => {
                    self.status = self.ok_packet()?.1;
                    return Ok(());
                }
                Some(0xff) => return Err(self.err_packet()),
                Some(0xfe) if switches < MAX_AUTH_SWITCHES => {
                    switches += 1;
                    let (name, data) = auth_switch(self.payload())?;
                    nonce = data;
                    plugin = name;
                    let supported = match &plugin {
                        AuthPlugin::MysqlNativePassword
                        | AuthPlugin::CachingSha2Password
                        | AuthPlugin::Ed25519 => true,
                        // The clear password only where it cannot be read on the way.
                        AuthPlugin::MysqlClearPassword => self.secure,
                        _ => false,
                    };
                    if !supported {
                        return Err(Error::Auth(format!(
                            "the server asks for the authentication plugin {:?}, which dbbridge does not support{}",
                            String::from_utf8_lossy(plugin.as_bytes()),
                            if matches!(plugin, AuthPlugin::MysqlClearPassword) {
                                " without TLS"
                            } else {
                                ""
                            }
                        )));
                    }
                    let data = plugin.gen_data(opts.password.as_deref(), &nonce);
                    let mut body = Vec::new();
                    if let Some(data) = data {
                        data.serialize(&mut body);
                    }
                    self.write_packet(&body).await?;
                }
                Some(0x01) if matches!(plugin, AuthPlugin::CachingSha2Password) => {
                    match self.payload().get(1) {
                        // Fast auth: the server had the password's hash cached.
                        Some(0x03) => {}
                        // Full auth: the password itself, over TLS or RSA-encrypted.
                        Some(0x04) => {
                            let mut pass = opts.password.clone().unwrap_or_default().into_bytes();
                            pass.push(0);
                            if self.secure {
                                self.write_packet(&pass).await?;
                            } else {
                                self.write_packet(&[0x02]).await?;
                                self.read_packet().await?;
                                let key = match self.payload().split_first() {
                                    Some((0x01, key)) => key.to_vec(),
                                    Some((0xff, _)) => return Err(self.err_packet()),
                                    other => {
                                        return Err(protocol(format!(
                                            "{:?} where the server's public key was expected",
                                            other.map(|(b, _)| b)
                                        )));
                                    }
                                };
                                let encrypted = rsa_encrypt_password(&pass, &nonce, &key)?;
                                self.write_packet(&encrypted).await?;
                            }
                        }
                        other => return Err(protocol(format!("auth data {other:?}"))),
                    }
                }
                other => return Err(protocol(format!("packet {other:?} while authenticating"))),
            }
        }
    }
}

/// An auth switch request: the plugin and its data exactly as sent. The
/// scramble-based plugins end their 20-byte scramble with a NUL that is not
/// part of it; MariaDB's ed25519 nonce is 32 raw bytes whose last may be 0,
/// so the NUL is taken off only for the plugins whose data carries one
/// (mysql_common's `plugin_data()` takes any last 0 off, which failed one
/// ed25519 login in 256).
pub(crate) fn auth_switch(payload: &[u8]) -> Result<(AuthPlugin<'static>, Vec<u8>), Error> {
    let rest = payload
        .strip_prefix(&[0xfe])
        .ok_or_else(|| protocol("an auth switch without its header"))?;
    let name_end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| protocol("an auth switch without a plugin name"))?;
    let plugin = AuthPlugin::from_bytes(&rest[..name_end]).into_owned();
    let raw = &rest[name_end + 1..];
    let data = match (&plugin, raw) {
        (
            AuthPlugin::MysqlNativePassword
            | AuthPlugin::CachingSha2Password
            | AuthPlugin::MysqlClearPassword,
            [scramble @ .., 0],
        ) => scramble,
        _ => raw,
    };
    Ok((plugin, data.to_vec()))
}

/// caching_sha2_password's full auth without TLS: the NUL-terminated
/// password XORed with the scramble, encrypted (RSA-OAEP, SHA-1) with the
/// server's public key. A key that does not parse, or a password too long
/// for the key, is an error, never a panic.
pub(crate) fn rsa_encrypt_password(
    pass: &[u8],
    nonce: &[u8],
    key_pem: &[u8],
) -> Result<Vec<u8>, Error> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    if nonce.is_empty() {
        return Err(protocol("an empty scramble"));
    }
    let pem = std::str::from_utf8(key_pem)
        .map_err(|_| Error::Auth("the server's public key is not PEM text".into()))?;
    let key = rsa::RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| Error::Auth(format!("the server's public key does not parse: {e}")))?;
    let xored: Vec<u8> = pass
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ nonce[i % nonce.len()])
        .collect();
    key.encrypt(
        &mut rsa::rand_core::OsRng,
        rsa::Oaep::new::<sha1::Sha1>(),
        &xored,
    )
    .map_err(|e| {
        Error::Auth(format!(
            "the password cannot be sent encrypted with the server's key ({e}); connect with TLS"
        ))
    })
}
