//! Secrets and saved connections, through the real binary: the encrypted-file
//! backend always, the keychain backend against a real Secret Service
//! (gnome-keyring on a private D-Bus, in `secrets_keychain.rs`).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Bridge, Options, read_dir_text};

pub(crate) fn start(dir: &Path, backend: &str, env: &[(&str, &str)]) -> Bridge {
    Bridge::start_with(Options {
        args: vec![],
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("DBBRIDGE_SECRET_BACKEND".to_string(), backend.to_string())])
            .collect(),
        data_dir: Some(dir.to_path_buf()),
        defer_reading: false,
    })
}

pub(crate) fn stop(mut b: Bridge) {
    b.ok("bridge.shutdown", json!({}));
    assert!(b.wait_exit(Duration::from_secs(30)).success());
}

fn unavailable_reason(e: &Value) -> &str {
    assert_eq!(e["code"], "SECRET_STORE_UNAVAILABLE", "{e}");
    e["details"]["reason"].as_str().unwrap()
}

/// The store/get/list/delete contract, on whatever backend `b` has.
pub(crate) fn round_trip(b: &mut Bridge, backend: &str) {
    assert_eq!(
        b.ok("secret.store", json!({"key": "conn/app", "value": "v-1 é"})),
        json!({"backend": backend})
    );
    b.ok("secret.store", json!({"key": "other", "value": "v-2"}));
    assert_eq!(
        b.ok("secret.get", json!({"key": "conn/app"}))["value"],
        "v-1 é"
    );
    b.ok("secret.store", json!({"key": "conn/app", "value": "v-1b"}));
    assert_eq!(
        b.ok("secret.get", json!({"key": "conn/app"}))["value"],
        "v-1b"
    );
    assert_eq!(b.ok("secret.list", json!({})), json!(["conn/app", "other"]));
    b.ok("secret.delete", json!({"key": "other"}));
    assert_eq!(
        b.err("secret.get", json!({"key": "other"}))["code"],
        "SECRET_NOT_FOUND"
    );
    assert_eq!(
        b.err("secret.delete", json!({"key": "other"}))["code"],
        "SECRET_NOT_FOUND"
    );
    assert_eq!(b.ok("secret.list", json!({})), json!(["conn/app"]));
    assert_eq!(
        b.err("secret.store", json!({"key": "", "value": "x"}))["code"],
        "INVALID_PARAMS"
    );
    assert_eq!(b.ok("health.ping", json!({}))["secretBackend"], backend);
}

#[test]
fn file_backend_round_trip_persists_and_never_holds_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = start(dir.path(), "file", &[]);
    round_trip(&mut b, "encryptedFile");
    assert_eq!(
        b.ok("health.ping", json!({}))["secretKeySource"],
        "localKey"
    );
    stop(b);
    let file = dir.path().join("secrets.enc");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("v-1b") && !text.contains("conn/app"),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in ["secrets.enc", "secret.key"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }
    let mut b = start(dir.path(), "file", &[]);
    assert_eq!(
        b.ok("secret.get", json!({"key": "conn/app"}))["value"],
        "v-1b"
    );
    stop(b);
}

#[test]
fn env_key_store_refuses_a_wrong_or_missing_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = start(dir.path(), "file", &[("DBBRIDGE_SECRET_KEY", "host-key-1")]);
    b.ok("secret.store", json!({"key": "k", "value": "the-value"}));
    assert_eq!(b.ok("health.ping", json!({}))["secretKeySource"], "env");
    stop(b);
    assert!(
        !dir.path().join("secret.key").exists(),
        "no local key when the host gives one"
    );
    let before = std::fs::read(dir.path().join("secrets.enc")).unwrap();

    let mut b = start(dir.path(), "file", &[("DBBRIDGE_SECRET_KEY", "host-key-2")]);
    let e = b.err("secret.get", json!({"key": "k"}));
    assert_eq!(unavailable_reason(&e), "wrongKey");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("DBBRIDGE_SECRET_KEY")
    );
    assert_eq!(
        unavailable_reason(&b.err("secret.store", json!({"key": "k2", "value": "x"}))),
        "wrongKey"
    );
    stop(b);
    let mut b = start(dir.path(), "file", &[]);
    assert_eq!(
        unavailable_reason(&b.err("secret.list", json!({}))),
        "keyMissing"
    );
    stop(b);
    assert_eq!(
        std::fs::read(dir.path().join("secrets.enc")).unwrap(),
        before,
        "a refused store is left as it was"
    );

    let mut b = start(dir.path(), "file", &[("DBBRIDGE_SECRET_KEY", "host-key-1")]);
    assert_eq!(
        b.ok("secret.get", json!({"key": "k"}))["value"],
        "the-value"
    );
    stop(b);
}

#[test]
fn passphrase_store_unlocks_only_with_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = start(dir.path(), "file", &[]);
    b.ok(
        "secret.store",
        json!({"key": "k", "value": "before-passphrase"}),
    );
    // An open local-key store is re-encrypted under the passphrase.
    b.ok(
        "secret.unlock",
        json!({"passphrase": "correct horse battery"}),
    );
    assert_eq!(
        b.ok("health.ping", json!({}))["secretKeySource"],
        "passphrase"
    );
    assert!(
        !dir.path().join("secret.key").exists(),
        "the weaker key is gone"
    );
    stop(b);

    let mut b = start(dir.path(), "file", &[]);
    assert_eq!(
        unavailable_reason(&b.err("secret.get", json!({"key": "k"}))),
        "locked"
    );
    assert_eq!(
        unavailable_reason(&b.err("secret.unlock", json!({"passphrase": "wrong"}))),
        "wrongKey"
    );
    assert_eq!(
        unavailable_reason(&b.err("secret.get", json!({"key": "k"}))),
        "locked"
    );
    b.ok(
        "secret.unlock",
        json!({"passphrase": "correct horse battery"}),
    );
    assert_eq!(
        b.ok("secret.get", json!({"key": "k"}))["value"],
        "before-passphrase"
    );
    b.ok("secret.store", json!({"key": "k2", "value": "after"}));
    stop(b);
    let logs = read_dir_text(&dir.path().join("logs"));
    assert!(!logs.contains("correct horse battery"));
}

#[test]
fn a_tampered_or_truncated_file_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = start(dir.path(), "file", &[]);
    b.ok("secret.store", json!({"key": "k", "value": "v"}));
    stop(b);
    let path = dir.path().join("secrets.enc");
    let original = std::fs::read_to_string(&path).unwrap();

    // One character of the ciphertext changed.
    let mut sealed: Value = serde_json::from_str(&original).unwrap();
    let ct = sealed["ciphertext"].as_str().unwrap().to_string();
    let (first, rest) = ct.split_at(1);
    let flipped = format!("{}{rest}", if first == "A" { "B" } else { "A" });
    sealed["ciphertext"] = json!(flipped);
    let tampered = sealed.to_string();
    std::fs::write(&path, &tampered).unwrap();
    let mut b = start(dir.path(), "file", &[]);
    assert_eq!(
        unavailable_reason(&b.err("secret.get", json!({"key": "k"}))),
        "wrongKey"
    );
    assert_eq!(
        unavailable_reason(&b.err("secret.store", json!({"key": "new", "value": "x"}))),
        "wrongKey"
    );
    stop(b);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        tampered,
        "never silently replaced"
    );

    // The header is authenticated too.
    let mut sealed: Value = serde_json::from_str(&original).unwrap();
    sealed["version"] = json!(1);
    sealed["keySource"] = json!("localKey");
    sealed["salt"] = json!("AAAA");
    std::fs::write(&path, sealed.to_string()).unwrap();
    let mut b = start(dir.path(), "file", &[]);
    assert_eq!(
        unavailable_reason(&b.err("secret.list", json!({}))),
        "wrongKey"
    );
    stop(b);

    std::fs::write(&path, &original[..original.len() / 2]).unwrap();
    let mut b = start(dir.path(), "file", &[]);
    let e = b.err("secret.list", json!({}));
    assert_eq!(unavailable_reason(&e), "corrupt");
    stop(b);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        original[..original.len() / 2]
    );
}

#[test]
fn fifty_concurrent_stores_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = start(dir.path(), "file", &[]);
    let ids: Vec<i64> = (0..50)
        .map(|i| {
            b.send(
                "secret.store",
                json!({"key": format!("k{i:02}"), "value": format!("value-{i}")}),
            )
        })
        .collect();
    for id in ids {
        assert_eq!(
            b.response(&json!(id), Duration::from_secs(60))["result"]["ok"],
            true
        );
    }
    stop(b);
    let mut b = start(dir.path(), "file", &[]);
    let keys = b.ok("secret.list", json!({}));
    assert_eq!(keys.as_array().unwrap().len(), 50);
    for i in [0, 17, 49] {
        assert_eq!(
            b.ok("secret.get", json!({"key": format!("k{i:02}")}))["value"],
            format!("value-{i}")
        );
    }
    stop(b);
}

#[test]
fn saved_connections_keep_passwords_in_the_store_and_open_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let password = "pg-Pass-8c1e-7d";
    // A loopback port nothing listens on.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut b = start(dir.path(), "file", &[]);
    let db = dir.path().join("app.db").to_string_lossy().into_owned();
    let lite = b.ok(
        "connection.save",
        json!({"name": "local app", "connection": {"kind": "sqlite", "path": db, "create": true}}),
    )["connectionId"]
        .as_str()
        .unwrap()
        .to_string();
    let pg = b.ok(
        "connection.save",
        json!({"name": "prod", "connection": {"kind": "postgres", "host": "127.0.0.1", "port": refused, "database": "app", "user": "me", "password": password, "sslMode": "disable"}}),
    )["connectionId"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = b.ok("connection.list", json!({}));
    assert_eq!(
        listed,
        json!([
            {"connectionId": lite, "name": "local app", "kind": "sqlite", "path": db},
            {"connectionId": pg, "name": "prod", "kind": "postgres", "host": "127.0.0.1", "port": refused, "database": "app", "user": "me"}
        ])
    );
    let key = format!("connection/{pg}/password");
    assert_eq!(b.ok("secret.get", json!({"key": key}))["value"], password);

    // A saved connection opens a session by id.
    let s = b.ok(
        "session.open",
        json!({"connection": {"connectionId": lite}}),
    )["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(b.query(&s, "SELECT 7", json!({})).rows(0), &[json!(["7"])]);
    assert_eq!(
        b.err(
            "session.open",
            json!({"connection": {"connectionId": "c_nope"}})
        )["code"],
        "INVALID_PARAMS"
    );
    // The Postgres one resolves its password and really tries (nothing listens
    // on that loopback port); the error does not echo the password.
    let e = b.err(
        "connection.test",
        json!({"connection": {"connectionId": pg, "connectTimeoutMs": 2000}}),
    );
    assert_eq!(e["code"], "CONNECTION_FAILED", "{e}");
    assert!(!e.to_string().contains(password));
    // passwordSecret resolves everywhere a connection is accepted; a missing one is clear.
    let e = b.err(
        "connection.test",
        json!({"connection": {"kind": "mysql", "host": "h", "passwordSecret": "no/such"}}),
    );
    assert_eq!(e["code"], "SECRET_NOT_FOUND");

    b.ok("connection.delete", json!({"connectionId": pg}));
    assert_eq!(
        b.err("secret.get", json!({"key": key}))["code"],
        "SECRET_NOT_FOUND"
    );
    assert_eq!(
        b.err("connection.delete", json!({"connectionId": pg}))["code"],
        "INVALID_PARAMS"
    );
    stop(b);

    // Saved connections persist, and bridge.db is versioned.
    let mut b = start(dir.path(), "file", &[]);
    assert_eq!(
        b.ok("connection.list", json!({})).as_array().unwrap().len(),
        1
    );
    stop(b);
    let conn = rusqlite::Connection::open(dir.path().join("bridge.db")).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
}

#[test]
fn after_secrets_and_passwords_nothing_in_the_data_dir_or_stderr_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let values = [
        "SecretValue-aa11",
        "SavedPw-bb22",
        "OpenPw-cc33",
        "UrlPw-dd44",
        "Passphrase-ee55",
    ];
    let mut b = start(dir.path(), "file", &[("DBBRIDGE_LOG", "debug")]);
    b.ok("secret.store", json!({"key": "api", "value": values[0]}));
    b.ok("connection.save", json!({"name": "x", "connection": {"kind": "mysql", "host": "127.0.0.1", "port": 1, "user": "u", "password": values[1]}}));
    b.call("session.open", json!({"connection": {"kind": "postgres", "host": "127.0.0.1", "port": 1, "user": "u", "password": values[2]}}));
    b.call("connection.test", json!({"connection": {"kind": "postgres", "url": format!("postgres://u:{}@127.0.0.1:1/x", values[3])}}));
    let e = b.err("connection.save", json!({"name": "y", "connection": {"kind": "postgres", "url": format!("postgres://u:{}@h/x", values[3])}}));
    assert_eq!(
        e["code"], "INVALID_PARAMS",
        "a password inside a saved url is refused"
    );
    b.ok("secret.unlock", json!({"passphrase": values[4]}));
    let listed = b.ok("session.list", json!({})).to_string()
        + &b.ok("connection.list", json!({})).to_string();
    b.ok("bridge.shutdown", json!({}));
    assert!(b.wait_exit(Duration::from_secs(30)).success());
    let everything = format!(
        "{}\n{}\n{listed}",
        read_dir_text(&b.data_dir),
        b.stderr.lock().unwrap()
    );
    assert!(b.logs().lines().count() > 5);
    for value in values {
        assert!(!everything.contains(value), "{value} found in plain text");
    }
}
