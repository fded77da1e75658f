//! Throwaway database servers for the tests, started once per test run in a
//! temp dir on a free port, and stopped by a watchdog when the test process
//! ends. `DBBRIDGE_TEST_POSTGRES_URL` points the tests at an existing server
//! instead. With `CI` set, a server that cannot be had fails the test: it is
//! never a silent skip.

mod mysql;
mod postgres;

pub use mysql::*;
pub use postgres::*;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicU32;

/// A server that could be had, or `None` with a SKIPPED line; with `CI` set,
/// a server that cannot be had fails the test instead.
fn or_skip<T>(what: &str, started: Result<T, String>) -> Option<T> {
    match started {
        Ok(server) => Some(server),
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but no {what} could be started: {why}"
            );
            eprintln!("SKIPPED {what} test: {why}");
            None
        }
    }
}
static NEXT_DB: AtomicU32 = AtomicU32::new(1);

/// A throwaway CA and a server certificate for `localhost` and 127.0.0.1, by the openssl CLI.
pub fn make_certificates(dir: &Path) -> Result<(), String> {
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .map_err(|e| e.to_string())?;
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=dbbridge test CA",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    // The server refuses a key others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|e| e.to_string())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `scheme://user:password@host:port/...`
fn parse_url(url: &str, default_port: u16) -> Result<Postgres, String> {
    let rest = url
        .split_once("://")
        .ok_or("the test server URL is not a URL")?
        .1;
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, hostport) = authority
        .rsplit_once('@')
        .ok_or("the test server URL needs user:password@")?;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let (host, port) = hostport
        .rsplit_once(':')
        .map(|(h, p)| (h, p.parse().unwrap_or(default_port)))
        .unwrap_or((hostport, default_port));
    Ok(Postgres {
        host: host.into(),
        port,
        user: user.into(),
        password: password.into(),
    })
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
        .ok_or(())
}

fn which_sbin(program: &str) -> Result<PathBuf, ()> {
    which(program).or_else(|_| {
        ["/usr/sbin", "/usr/local/sbin", "/usr/libexec"]
            .iter()
            .map(|d| Path::new(d).join(program))
            .find(|p| p.exists())
            .ok_or(())
    })
}
