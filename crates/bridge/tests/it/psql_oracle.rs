//! psql as the oracle of where Postgres statements end. A script is run by
//! the real `psql` against a throwaway cluster, through a loopback proxy that
//! records every simple-protocol `Query` message psql sends and the COPY data
//! it feeds; the bridge's splitter must give the same statements, one by one,
//! with the same inline data.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use dbbridge_db::postgres::split::{self, Statement};

use crate::servers::Postgres;

/// What psql sent: a statement's text, or the data fed to a COPY.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Query(String),
    CopyData(String),
}

/// A one-connection recording proxy in front of `pg`.
struct Recorder {
    port: u16,
    sent: Arc<Mutex<Vec<Sent>>>,
    worker: std::thread::JoinHandle<()>,
}

impl Recorder {
    fn start(pg: &Postgres) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = (pg.host.clone(), pg.port);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = sent.clone();
        let worker = std::thread::spawn(move || {
            let (client, _) = listener.accept().unwrap();
            let server = TcpStream::connect((upstream.0.as_str(), upstream.1)).unwrap();
            // Each message is written whole; without this, Nagle's algorithm and
            // delayed ACKs hold every small message back ~40 ms.
            client.set_nodelay(true).unwrap();
            server.set_nodelay(true).unwrap();
            let (mut client_in, mut server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut server_in, mut client_out) = (server, client);
            let back = std::thread::spawn(move || {
                let _ = std::io::copy(&mut server_in, &mut client_out);
                let _ = client_out.shutdown(std::net::Shutdown::Both);
            });
            let _ = forward_recording(&mut client_in, &mut server_out, &log);
            let _ = server_out.shutdown(std::net::Shutdown::Write);
            let _ = back.join();
        });
        Recorder { port, sent, worker }
    }

    fn finish(self) -> Vec<Sent> {
        let _ = self.worker.join();
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

/// Copies the frontend's messages to the server, noting `Query` texts and
/// `CopyData` (collected until `CopyDone`/`CopyFail`).
fn forward_recording(
    from: &mut TcpStream,
    to: &mut TcpStream,
    log: &Mutex<Vec<Sent>>,
) -> std::io::Result<()> {
    // Untyped start: SSL/GSS requests (answered 'N'), then the startup packet.
    loop {
        let mut len = [0u8; 4];
        from.read_exact(&mut len)?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
        from.read_exact(&mut body)?;
        to.write_all(&[&len[..], &body].concat())?;
        let code = u32::from_be_bytes(body[..4].try_into().unwrap());
        if code != 80877103 && code != 80877104 {
            break;
        }
    }
    let mut copy = Vec::new();
    loop {
        let mut head = [0u8; 5];
        from.read_exact(&mut head)?;
        let len = u32::from_be_bytes(head[1..].try_into().unwrap()) as usize;
        let mut message = head.to_vec();
        message.resize(len + 1, 0);
        from.read_exact(&mut message[5..])?;
        to.write_all(&message)?;
        let body = &message[5..];
        match head[0] {
            b'Q' => {
                let text = String::from_utf8_lossy(&body[..body.len() - 1]).into_owned();
                log.lock().unwrap().push(Sent::Query(text));
            }
            b'd' => copy.extend_from_slice(body),
            b'c' | b'f' => {
                let data = String::from_utf8_lossy(&std::mem::take(&mut copy)).into_owned();
                log.lock().unwrap().push(Sent::CopyData(data));
            }
            b'X' => return Ok(()),
            _ => {}
        }
    }
}

/// Runs `script` through `psql -f` on `database` (errors do not stop it) and
/// returns what psql sent, in order.
pub fn psql_sent(pg: &Postgres, database: &str, script: &str) -> Vec<Sent> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.sql");
    std::fs::write(&file, script).unwrap();
    let recorder = Recorder::start(pg);
    let conninfo = format!(
        "host=127.0.0.1 port={} user={} dbname={database} sslmode=disable gssencmode=disable",
        recorder.port, pg.user
    );
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=0", "-f"])
        .arg(&file)
        .arg(&conninfo)
        .env("PGPASSWORD", &pg.password)
        // Bounded: the corpus holds slow statements and waits on locks.
        .env(
            "PGOPTIONS",
            "-c statement_timeout=3000 -c lock_timeout=1000 -c client_min_messages=error",
        )
        .output()
        .expect("psql runs");
    assert!(
        out.status.code().is_some(),
        "psql died: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    recorder.finish()
}

/// What the bridge's splitter makes of `script`, in psql's terms.
pub fn bridge_sent(script: &str) -> Result<Vec<Sent>, split::SplitError> {
    let mut sent = Vec::new();
    for stmt in split::split(script)? {
        sent.push(Sent::Query(script[stmt.start..stmt.end].to_string()));
        if let Some(data) = &stmt.copy_data {
            sent.push(Sent::CopyData(script[data.clone()].to_string()));
        }
    }
    Ok(sent)
}

/// Both sides in the terms they can be compared in:
/// - psql's statement without the `;` it sends and the whitespace around,
///   and `None` for a text of comments only (psql sends one, the server
///   answers it with nothing, the bridge drops it);
/// - psql joins a statement's lines leaving out empty ones: empty lines are
///   folded away on both sides (the bridge keeps the caller's text, so that
///   error positions point into it);
/// - psql (15) also passes on the `\.` line that ends COPY data, which the
///   bridge does not (the server takes the end of the copy as the end).
fn normalized(sent: &[Sent], from_psql: bool) -> Vec<Sent> {
    let fold = |text: &str| {
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            if line != "\n" || !out.ends_with('\n') {
                out.push_str(line);
            }
        }
        out
    };
    sent.iter()
        .filter_map(|s| match s {
            Sent::Query(text) if from_psql => {
                let text = text.trim();
                let text = text.strip_suffix(';').unwrap_or(text).trim_end();
                let only_comments =
                    split::split(text).is_ok_and(|parts: Vec<Statement>| parts.is_empty());
                (!only_comments).then(|| Sent::Query(fold(text)))
            }
            Sent::Query(text) => Some(Sent::Query(fold(text))),
            Sent::CopyData(data) if from_psql => Some(Sent::CopyData(
                data.strip_suffix("\\.\n").unwrap_or(data).to_string(),
            )),
            data => Some(data.clone()),
        })
        .collect()
}

/// How psql's statements and the bridge's compare.
#[derive(Debug)]
pub enum Comparison {
    /// One by one the same, all of them.
    Same,
    /// The same up to a COPY the server refused: psql then reads the COPY's
    /// data lines as SQL, where the bridge (which stops a script at its first
    /// error) never goes. Holds how many statements matched before it.
    SameUntilRefusedCopy(usize),
    /// A readable report of the first difference.
    Differs(String),
}

pub fn compare(psql: &[Sent], bridge: &[Sent]) -> Comparison {
    let psql = normalized(psql, true);
    let bridge = normalized(bridge, false);
    let Some(at) = psql
        .iter()
        .zip(&bridge)
        .position(|(a, b)| a != b)
        .or_else(|| (psql.len() != bridge.len()).then_some(psql.len().min(bridge.len())))
    else {
        return Comparison::Same;
    };
    if matches!(bridge.get(at), Some(Sent::CopyData(_))) {
        return Comparison::SameUntilRefusedCopy(at);
    }
    Comparison::Differs(format!(
        "statement {at} of {} (psql) / {} (bridge) differs:\n  psql:   {:?}\n  bridge: {:?}",
        psql.len(),
        bridge.len(),
        psql.get(at),
        bridge.get(at)
    ))
}

/// The first difference, for scripts where every COPY must be accepted.
pub fn first_difference(psql: &[Sent], bridge: &[Sent]) -> Option<String> {
    match compare(psql, bridge) {
        Comparison::Same => None,
        other => Some(format!("{other:?}")),
    }
}

/// A regression script made runnable without psql: lines that are psql
/// meta-commands are removed (COPY data lines, `\.` and `\N...`, stay).
pub fn without_meta_commands(script: &str) -> String {
    script
        .split_inclusive('\n')
        .filter(|line| {
            let trimmed = line.trim_start();
            !trimmed.starts_with('\\') || trimmed.trim_end() == "\\." || trimmed.starts_with("\\N")
        })
        .collect()
}

/// The regression corpus, installed by `scripts/install-deps.sh`.
pub fn regress_dir() -> Option<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps/pg-regress-sql");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but the regression corpus is missing at {} (scripts/install-deps.sh fetches it)",
        dir.display()
    );
    eprintln!("SKIPPED psql corpus test: no corpus at {}", dir.display());
    None
}
