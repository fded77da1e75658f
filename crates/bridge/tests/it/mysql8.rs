//! MySQL 8's default login, `caching_sha2_password`, as far as this machine
//! allows (no MySQL 8 server can be installed here): a scripted peer built
//! from the documented packet formats plays the server, and the client's
//! scramble is checked against an independent implementation of the
//! published algorithm (Python's `hashlib`). Both exchanges end in a real
//! session through the real binary:
//! - fast auth: the server has the password's hash cached (`0x01 0x03`);
//! - full auth without TLS: the client asks for the server's RSA key and
//!   sends the password XORed with the nonce, RSA-OAEP encrypted, which the
//!   peer decrypts with `openssl pkeyutl`;
//! - full auth over TLS: the greeting offers CLIENT_SSL, the client sends
//!   an SSLRequest and upgrades (the peer is a rustls server whose
//!   certificate `openssl req` made, checked by the client with
//!   `verify-full`), and then sends the password itself, in the clear
//!   inside TLS.
//!
//! What stays unverified until a real MySQL 8 is tried: the server's own
//! key and cache handling, and `utf8mb4_0900` collations coming back in real
//! column definitions.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::json;

use crate::harness::Bridge;

const NONCE: &[u8; 20] = b"abcdefghijklmnopqrst";

/// A protocol-10 greeting offering caching_sha2_password with [`NONCE`],
/// no TLS, CLIENT_DEPRECATE_EOF.
pub fn greeting() -> Vec<u8> {
    greeting_with(0)
}

/// CLIENT_SSL: the server can upgrade to TLS.
const CLIENT_SSL: u32 = 0x0000_0800;

/// [`greeting`] with `extra` capability flags.
fn greeting_with(extra: u32) -> Vec<u8> {
    let caps: u32 = extra
        | 0x0000_0001
        | 0x0000_0008
        | 0x0000_0200
        | 0x0000_2000
        | 0x0000_8000
        | 0x0002_0000
        | 0x0008_0000
        | 0x0020_0000
        | 0x0100_0000;
    let mut hs = vec![10];
    hs.extend_from_slice(b"8.0.40-scripted\0");
    hs.extend_from_slice(&7u32.to_le_bytes());
    hs.extend_from_slice(&NONCE[..8]);
    hs.push(0);
    hs.extend_from_slice(&(caps as u16).to_le_bytes());
    hs.push(255); // utf8mb4_0900_ai_ci, MySQL 8's default collation
    hs.extend_from_slice(&2u16.to_le_bytes());
    hs.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    hs.push(21);
    hs.extend_from_slice(&[0; 10]);
    hs.extend_from_slice(&NONCE[8..]);
    hs.push(0);
    hs.extend_from_slice(b"caching_sha2_password\0");
    hs
}

/// One packet: length, sequence number, payload.
pub fn packet(payload: &[u8], seq: u8) -> Vec<u8> {
    let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(payload);
    p
}

/// Reads one packet: its sequence number and payload.
pub fn read(s: &mut impl Read) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).ok()?;
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    let mut body = vec![0; len];
    s.read_exact(&mut body).ok()?;
    Some((head[3], body))
}

fn lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

/// An OK packet (`header` 0x00, or 0xfe where it ends a result set).
fn ok(header: u8) -> Vec<u8> {
    vec![header, 0, 0, 0x02, 0, 0, 0]
}

/// A text result set of one row of strings, for a client that set
/// CLIENT_DEPRECATE_EOF.
fn result_set(values: &[&str]) -> Vec<Vec<u8>> {
    let mut packets = vec![vec![values.len() as u8]];
    for (i, _) in values.iter().enumerate() {
        let mut def = Vec::new();
        for part in [&b"def"[..], b"", b"", b"", format!("c{i}").as_bytes(), b""] {
            lenenc_str(&mut def, part);
        }
        def.push(0x0c);
        def.extend_from_slice(&45u16.to_le_bytes()); // utf8mb4_general_ci
        def.extend_from_slice(&256u32.to_le_bytes());
        def.push(0xfd); // VAR_STRING
        def.extend_from_slice(&0u16.to_le_bytes());
        def.push(0);
        def.extend_from_slice(&[0, 0]);
        packets.push(def);
    }
    let mut row = Vec::new();
    for v in values {
        lenenc_str(&mut row, v.as_bytes());
    }
    packets.push(row);
    packets.push(ok(0xfe));
    packets
}

/// The scramble by the published algorithm, computed by Python's hashlib:
/// SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) || nonce).
fn python_scramble(password: &str) -> Vec<u8> {
    let script = "import hashlib,sys\n\
        p=sys.argv[1].encode(); n=sys.argv[2].encode()\n\
        a=hashlib.sha256(p).digest()\n\
        b=hashlib.sha256(hashlib.sha256(a).digest()+n).digest()\n\
        print(bytes(x^y for x,y in zip(a,b)).hex())";
    let out = Command::new("python3")
        .args(["-c", script, password, std::str::from_utf8(NONCE).unwrap()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hex = String::from_utf8(out.stdout).unwrap();
    (0..hex.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The auth data of a HandshakeResponse41 (CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA).
fn auth_response(response: &[u8]) -> Vec<u8> {
    let rest = &response[32..];
    let user_end = rest.iter().position(|&b| b == 0).unwrap();
    let rest = &rest[user_end + 1..];
    let len = usize::from(rest[0]);
    rest[1..1 + len].to_vec()
}

enum Mode {
    /// The server has the hash cached.
    Fast,
    /// Full auth with the RSA key at this path.
    Rsa(PathBuf),
    /// Full auth over TLS, with this server certificate and key (PEM).
    Tls(PathBuf, PathBuf),
}

/// The peer's side of the connection, plain or TLS.
trait Io: Read + Write {}
impl<T: Read + Write> Io for T {}

/// A rustls server on `tcp`, with the certificate and key at these paths.
fn tls_accept(tcp: TcpStream, cert: &Path, key: &Path) -> Box<dyn Io> {
    let certs = rustls_pemfile::certs(&mut std::fs::read(cert).unwrap().as_slice())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut std::fs::read(key).unwrap().as_slice())
        .unwrap()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
    Box::new(rustls::StreamOwned::new(conn, tcp))
}

/// Plays MySQL 8 for one login and what `connection.test` does after it;
/// returns its port and, through the channel, the scramble and the
/// password it recovered.
/// What the peer saw: the client's scramble, and the password it recovered
/// from a full auth.
type Seen = (Vec<u8>, Option<Vec<u8>>);

fn peer(mode: Mode) -> (u16, std::sync::mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut tcp, _)) = listener.accept() else {
            return;
        };
        let offered = if matches!(mode, Mode::Tls(..)) {
            CLIENT_SSL
        } else {
            0
        };
        tcp.write_all(&packet(&greeting_with(offered), 0)).unwrap();
        let (seq, response) = read(&mut tcp).unwrap();
        let (mut s, seq, response): (Box<dyn Io>, u8, Vec<u8>) = match &mode {
            Mode::Tls(cert, key) => {
                // An SSLRequest: capabilities with CLIENT_SSL, max packet,
                // collation, 23 zero bytes; then the TLS handshake, and the
                // handshake response inside it.
                assert_eq!((seq, response.len()), (1, 32), "an SSLRequest");
                let caps = u32::from_le_bytes(response[..4].try_into().unwrap());
                assert_ne!(caps & CLIENT_SSL, 0, "the SSLRequest asks for TLS");
                let mut s = tls_accept(tcp, cert, key);
                // A client that refuses the certificate ends here.
                let Some((seq, response)) = read(&mut s) else {
                    return;
                };
                assert_eq!(seq, 2, "the handshake response follows the SSLRequest");
                (s, seq, response)
            }
            _ => (Box::new(tcp), seq, response),
        };
        let caps = u32::from_le_bytes(response[..4].try_into().unwrap());
        assert_eq!(
            caps & CLIENT_SSL,
            offered,
            "CLIENT_SSL is set exactly when TLS is on"
        );
        let scramble = auth_response(&response);
        let mut seq = seq + 1;
        let recovered = match &mode {
            Mode::Tls(..) => {
                // Full auth over TLS: the password itself, NUL-terminated.
                s.write_all(&packet(&[0x01, 0x04], seq)).unwrap();
                s.flush().unwrap();
                let (next, password) = read(&mut s).unwrap();
                s.write_all(&packet(&ok(0), next + 1)).unwrap();
                s.flush().unwrap();
                Some(password)
            }
            Mode::Fast => {
                s.write_all(&packet(&[0x01, 0x03], seq)).unwrap();
                s.write_all(&packet(&ok(0), seq + 1)).unwrap();
                None
            }
            Mode::Rsa(key) => {
                s.write_all(&packet(&[0x01, 0x04], seq)).unwrap();
                let (next, request) = read(&mut s).unwrap();
                assert_eq!(request, [0x02], "the client asks for the public key");
                let public = Command::new("openssl")
                    .args(["pkey", "-pubout", "-in"])
                    .arg(key)
                    .output()
                    .unwrap()
                    .stdout;
                let mut reply = vec![0x01];
                reply.extend_from_slice(&public);
                s.write_all(&packet(&reply, next + 1)).unwrap();
                let (next, encrypted) = read(&mut s).unwrap();
                let dir = key.parent().unwrap();
                std::fs::write(dir.join("cipher"), &encrypted).unwrap();
                let plain = Command::new("openssl")
                    .args(["pkeyutl", "-decrypt", "-inkey"])
                    .arg(key)
                    .args([
                        "-pkeyopt",
                        "rsa_padding_mode:oaep",
                        "-pkeyopt",
                        "rsa_oaep_md:sha1",
                        "-in",
                    ])
                    .arg(dir.join("cipher"))
                    .output()
                    .unwrap();
                assert!(
                    plain.status.success(),
                    "{}",
                    String::from_utf8_lossy(&plain.stderr)
                );
                let password: Vec<u8> = plain
                    .stdout
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ NONCE[i % NONCE.len()])
                    .collect();
                s.write_all(&packet(&ok(0), next + 1)).unwrap();
                Some(password)
            }
        };
        let _ = tx.send((scramble, recovered));
        // What the session does after the login: each command answered.
        while let Some((_, command)) = read(&mut s) {
            seq = 1;
            match command.first() {
                Some(0x03) if command.ends_with(b"CONNECTION_ID()") => {
                    for p in result_set(&["8.0.40-scripted", "db", "7"]) {
                        s.write_all(&packet(&p, seq)).unwrap();
                        seq += 1;
                    }
                }
                Some(0x01) => return, // COM_QUIT
                _ => s.write_all(&packet(&ok(0), seq)).unwrap(),
            }
            s.flush().unwrap();
        }
    });
    (port, rx)
}

fn connect(b: &mut Bridge, port: u16, password: &str) -> serde_json::Value {
    b.ok(
        "connection.test",
        json!({"connection": {"kind": "mysql", "host": "127.0.0.1", "port": port, "user": "u",
                              "password": password, "database": "db", "sslMode": "disable"}}),
    )
}

#[test]
fn caching_sha2_fast_auth_sends_the_published_scramble() {
    let mut b = Bridge::start();
    for password in ["secret", "pässwörd-ütf8", "x"] {
        let (port, got) = peer(Mode::Fast);
        let answer = connect(&mut b, port, password);
        assert_eq!(answer["serverVersion"], "8.0.40-scripted", "{answer}");
        assert_eq!(answer["flavour"], "mysql", "{answer}");
        let (scramble, _) = got.recv().unwrap();
        assert_eq!(scramble, python_scramble(password), "{password}");
    }
}

#[test]
fn caching_sha2_full_auth_over_rsa_delivers_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .status()
        .expect("openssl");
    assert!(made.success());
    let mut b = Bridge::start();
    let password = "a-longer-secret-Ω";
    let (port, got) = peer(Mode::Rsa(key));
    let answer = connect(&mut b, port, password);
    assert_eq!(answer["serverVersion"], "8.0.40-scripted", "{answer}");
    let (scramble, recovered) = got.recv().unwrap();
    assert_eq!(scramble, python_scramble(password));
    let mut expected = password.as_bytes().to_vec();
    expected.push(0);
    assert_eq!(recovered.unwrap(), expected, "the NUL-terminated password");
}

#[test]
fn caching_sha2_full_auth_over_tls_sends_the_password_inside_tls() {
    // A throwaway CA and a server certificate for 127.0.0.1 signed by it,
    // so `verify-full` checks the chain and the name.
    let dir = tempfile::tempdir().unwrap();
    crate::servers::make_certificates(dir.path()).unwrap();
    let (ca, cert, key) = (
        dir.path().join("ca.crt"),
        dir.path().join("server.crt"),
        dir.path().join("server.key"),
    );
    let mut b = Bridge::start();
    for (mode, password) in [("verify-full", "tls-secret-Ω"), ("require", "x")] {
        let (port, got) = peer(Mode::Tls(cert.clone(), key.clone()));
        let answer = b.ok(
            "connection.test",
            json!({"connection": {"kind": "mysql", "host": "127.0.0.1", "port": port,
                                  "user": "u", "password": password, "database": "db",
                                  "sslMode": mode, "sslRootCert": ca}}),
        );
        assert_eq!(
            answer["serverVersion"], "8.0.40-scripted",
            "{mode}: {answer}"
        );
        let (scramble, recovered) = got.recv().unwrap();
        assert_eq!(scramble, python_scramble(password), "{mode}");
        let mut expected = password.as_bytes().to_vec();
        expected.push(0);
        assert_eq!(
            recovered.unwrap(),
            expected,
            "{mode}: the NUL-terminated password"
        );
    }
    // A server whose certificate another CA signed fails `verify-full`
    // before any password is sent.
    let other = tempfile::tempdir().unwrap();
    crate::servers::make_certificates(other.path()).unwrap();
    let (port, got) = peer(Mode::Tls(
        other.path().join("server.crt"),
        other.path().join("server.key"),
    ));
    let error = b.err(
        "connection.test",
        json!({"connection": {"kind": "mysql", "host": "127.0.0.1", "port": port,
                              "user": "u", "password": "never-sent", "database": "db",
                              "sslMode": "verify-full", "sslRootCert": ca}}),
    );
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("TLS handshake failed"), "{error}");
    assert!(!message.contains("never-sent"), "{error}");
    assert!(got.recv_timeout(std::time::Duration::from_secs(5)).is_err());
}
