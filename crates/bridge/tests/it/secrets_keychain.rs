//! The keychain backend against a real Secret Service: gnome-keyring on a
//! private D-Bus session started here, unlocked, and stopped afterwards.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::harness::read_dir_text;
use crate::secrets::{round_trip, start, stop};

/// A private D-Bus session with gnome-keyring's Secret Service, unlocked.
struct SecretService {
    bus: Child,
    keyring: Child,
    address: String,
    home: PathBuf,
    _dir: tempfile::TempDir,
}

impl SecretService {
    fn start() -> Option<SecretService> {
        let have = |tool: &str| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if !have("dbus-daemon") || !have("gnome-keyring-daemon") {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but dbus-daemon / gnome-keyring-daemon are missing (scripts/install-deps.sh installs them)"
            );
            eprintln!("SKIPPED keychain test: dbus-daemon or gnome-keyring-daemon not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let runtime = dir.path().join("run");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&runtime).unwrap();
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_string();
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_DATA_HOME", home.join("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The login keyring's password, then EOF.
        drop(
            keyring
                .stdin
                .take()
                .map(|mut s| std::io::Write::write_all(&mut s, b"test-keyring")),
        );
        std::thread::sleep(Duration::from_millis(500));
        Some(SecretService {
            bus,
            keyring,
            address,
            home,
            _dir: dir,
        })
    }

    fn env(&self) -> Vec<(&str, String)> {
        vec![
            ("DBUS_SESSION_BUS_ADDRESS", self.address.clone()),
            ("HOME", self.home.to_string_lossy().into_owned()),
        ]
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        let _ = self.keyring.kill();
        let _ = self.keyring.wait();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

#[test]
fn keychain_backend_against_a_real_secret_service() {
    let Some(service) = SecretService::start() else {
        return;
    };
    let env = service.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut b = start(dir.path(), "keychain", &env);
    round_trip(&mut b, "keychain");
    stop(b);
    // Persistence across a restart; auto picks the keychain when one answers.
    let mut b = start(dir.path(), "auto", &env);
    assert_eq!(b.ok("health.ping", json!({}))["secretBackend"], "keychain");
    assert_eq!(
        b.ok("secret.get", json!({"key": "conn/app"}))["value"],
        "v-1b"
    );
    assert_eq!(
        b.err("secret.unlock", json!({"passphrase": "p"}))["code"],
        "NOT_SUPPORTED"
    );
    stop(b);
    assert!(
        !dir.path().join("secrets.enc").exists(),
        "the keychain backend writes no secret file"
    );
    assert!(!read_dir_text(dir.path()).contains("v-1b"));
}
