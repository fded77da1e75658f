//! The throwaway MariaDB servers: the shared one, private ones, and one that
//! requires TLS.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{
    NEXT_DB, free_port, make_certificates, or_skip, parse_url, running_as_root, which, which_sbin,
};

/// A MySQL-protocol server (a throwaway MariaDB) the tests may create databases on.
#[derive(Debug, Clone)]
pub struct Mysql {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// The server's pid when this process started it.
    pub pid_file: Option<PathBuf>,
}

static MYSQL: OnceLock<Result<Mysql, String>> = OnceLock::new();

/// The shared MariaDB server, or `None` (with a SKIPPED line) when there is
/// none and `CI` is not set. `DBBRIDGE_TEST_MYSQL_URL` points at an existing one.
pub fn mysql() -> Option<Mysql> {
    let started = MYSQL.get_or_init(|| match std::env::var("DBBRIDGE_TEST_MYSQL_URL") {
        Ok(url) => parse_url(&url, 3306).map(|p| Mysql {
            host: p.host,
            port: p.port,
            user: p.user,
            password: p.password,
            pid_file: None,
        }),
        Err(_) => start_mariadb("shared", false),
    });
    or_skip("MariaDB server", started.clone())
}

/// A MariaDB server of its own, for a test that kills it.
pub fn private_mysql() -> Option<Mysql> {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let tag = format!("own{}", NEXT.fetch_add(1, Ordering::SeqCst));
    or_skip("MariaDB server", start_mariadb(&tag, false))
}

/// A MariaDB server of its own that speaks TLS (certificate for `localhost`
/// and 127.0.0.1 from a throwaway CA); returns the CA's path too.
pub fn private_mysql_tls() -> Option<(Mysql, PathBuf)> {
    let my = or_skip("TLS MariaDB server", start_mariadb("tls", true))?;
    let ca = my.pid_file.as_ref()?.with_file_name("ca.crt");
    Some((my, ca))
}

impl Mysql {
    /// A fresh database for one test; returns its name.
    pub fn create_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        let out = self.client("", &format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "CREATE DATABASE failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        name
    }

    /// Runs `mariadb --batch --skip-column-names -e sql` against `database`
    /// (the password goes by environment, not argument).
    pub fn client(&self, database: &str, sql: &str) -> std::process::Output {
        let mut c = Command::new("mariadb");
        c.args([
            "--no-defaults",
            "--batch",
            "--skip-column-names",
            "--protocol=TCP",
            "-h",
            &self.host,
            "-P",
            &self.port.to_string(),
            "-u",
            &self.user,
            "-e",
            sql,
        ]);
        if !database.is_empty() {
            c.arg(database);
        }
        c.env("MYSQL_PWD", &self.password)
            .output()
            .expect("mariadb client")
    }

    pub fn connection(&self, database: &str) -> serde_json::Value {
        serde_json::json!({"kind": "mysql", "host": self.host, "port": self.port, "user": self.user, "password": self.password, "database": database, "sslMode": "disable"})
    }

    /// Kills the server outright (SIGKILL), as a crash would.
    pub fn kill(&self) {
        let pid =
            std::fs::read_to_string(self.pid_file.as_ref().expect("a server of this process"))
                .expect("pid file");
        let status = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

fn start_mariadb(tag: &str, tls: bool) -> Result<Mysql, String> {
    let (Ok(install), Ok(server)) = (which("mariadb-install-db"), which_sbin("mariadbd")) else {
        return Err(
            "no MariaDB server binaries (mariadb-install-db, mariadbd); scripts/install-deps.sh installs them"
                .into(),
        );
    };
    let dir = std::env::temp_dir().join(format!("dbbridge-my-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let tls_options = if tls {
        make_certificates(&dir)?;
        format!(
            "--ssl-ca={dir}/ca.crt --ssl-cert={dir}/server.crt --ssl-key={dir}/server.key",
            dir = dir.display()
        )
    } else {
        String::new()
    };
    let as_root = running_as_root();
    let data = dir.join("data");
    // A temp dir of its own: a starting mariadbd removes `#sql*` files it
    // finds in its tmpdir, which are another server's live temporary tables
    // when several start at once in a shared /tmp.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    if as_root {
        let _ = Command::new("chown")
            .args(["-R", "mysql:mysql"])
            .arg(&dir)
            .status();
    }
    let user_arg = if as_root { "--user=mysql" } else { "--user=" };
    let mut install_cmd = Command::new(install);
    install_cmd
        .env("TMPDIR", &tmp)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
    if as_root {
        install_cmd.arg(user_arg);
    }
    let out = install_cmd
        .output()
        .map_err(|e| format!("mariadb-install-db: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!(
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = free_port();
    let socket = dir.join("mysqld.sock");
    let pid_file = dir.join("mysqld.pid");
    let user_opt = if as_root { "--user=mysql" } else { "" };
    // The watchdog stops the server and removes the dir once this process is gone.
    let script = format!(
        "{server} --no-defaults {user_opt} --datadir={data} --tmpdir={tmp} --port={port} --socket={socket} \
         --pid-file={pid_file} --bind-address=127.0.0.1 --skip-name-resolve --skip-log-bin \
         --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 --innodb-log-file-size=16M \
         {tls_options} --log-error={dir}/server.log & my=$!; \
         while [ -d /proc/{parent} ] && kill -0 $my 2>/dev/null; do sleep 1; done; \
         kill -9 $my 2>/dev/null; wait $my; rm -rf {dir}",
        server = server.display(),
        data = data.display(),
        tmp = tmp.display(),
        socket = socket.display(),
        pid_file = pid_file.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting mariadbd: {e}"))?;
    let password = format!("my{:x}", std::process::id() as u64 * 104729 + 7);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if socket.exists() {
            let create = Command::new("mariadb")
                .args(["--no-defaults", "-u", "root", "-S"])
                .arg(&socket)
                .arg("-e")
                .arg(format!(
                    "CREATE USER IF NOT EXISTS 'dbbridge'@'%' IDENTIFIED BY '{password}'; \
                     GRANT ALL ON *.* TO 'dbbridge'@'%' WITH GRANT OPTION;"
                ))
                .output()
                .map_err(|e| e.to_string())?;
            if create.status.success() {
                return Ok(Mysql {
                    host: "127.0.0.1".into(),
                    port,
                    user: "dbbridge".into(),
                    password,
                    pid_file: Some(pid_file),
                });
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    Err(format!(
        "mariadbd did not become ready on port {port}: {log}"
    ))
}
