//! Drives the real `dbbridge` binary over its stdio transport: JSON lines in,
//! JSON lines out, with answers matched to requests by id and events kept in
//! arrival order.

// Not every test module uses every helper.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod calls;

pub use calls::QueryOutcome;

pub const BIN: &str = env!("CARGO_BIN_EXE_dbbridge");

/// A running bridge process speaking stdio.
pub struct Bridge {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    lines: Option<Receiver<String>>,
    responses: HashMap<String, Value>,
    events: VecDeque<Value>,
    next_id: i64,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub stderr: Arc<Mutex<String>>,
    pub non_json_lines: Arc<Mutex<Vec<String>>>,
    paused: Arc<AtomicBool>,
    drop_rows: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct Options {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub data_dir: Option<PathBuf>,
    /// Start reading stdout only when the test asks (stalled-client tests).
    pub defer_reading: bool,
}

impl Bridge {
    pub fn start() -> Bridge {
        Bridge::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Bridge {
        let (tmp, data_dir) = match options.data_dir {
            Some(dir) => (None, dir),
            None => {
                let tmp = tempfile::tempdir().expect("tempdir");
                let dir = tmp.path().to_path_buf();
                (Some(tmp), dir)
            }
        };
        let mut command = Command::new(BIN);
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("serve")
            .args(&options.args)
            .env("DBBRIDGE_TEST_HOOKS", "1")
            .env_remove("DBBRIDGE_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &options.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn dbbridge");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut pipe = child.stderr.take().expect("stderr");
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut bridge = Bridge {
            child,
            stdin,
            stdout,
            lines: None,
            responses: HashMap::new(),
            events: VecDeque::new(),
            next_id: 1,
            data_dir,
            _tmp: tmp,
            stderr,
            non_json_lines: Arc::new(Mutex::new(Vec::new())),
            paused: Arc::new(AtomicBool::new(false)),
            drop_rows: Arc::new(AtomicBool::new(false)),
        };
        if !options.defer_reading {
            bridge.start_reading();
        }
        bridge
    }

    /// Starts the thread that reads stdout (once).
    pub fn start_reading(&mut self) {
        let Some(stdout) = self.stdout.take() else {
            return;
        };
        let (tx, rx) = mpsc::channel();
        let paused = self.paused.clone();
        let drop_rows = self.drop_rows.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(64 << 10, stdout);
            let mut line = String::new();
            loop {
                while paused.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if drop_rows.load(Ordering::SeqCst)
                            && line.starts_with(r#"{"jsonrpc":"2.0","method":"query.result""#)
                        {
                            continue;
                        }
                        if tx.send(line.trim_end_matches('\n').to_string()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        self.lines = Some(rx);
    }

    /// Stops reading stdout, as a stalled front end would (the reader thread
    /// finishes the line it is in).
    pub fn pause_reading(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Has the reader thread drop `query.result` lines unparsed, as a front
    /// end that keeps up would: what is measured is then the bridge.
    pub fn drop_rows(&self, on: bool) {
        self.drop_rows.store(on, Ordering::SeqCst);
    }

    pub fn resume_reading(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).expect("write");
        stdin.write_all(b"\n").expect("write");
        stdin.flush().expect("flush");
    }

    /// Sends a request without waiting; returns its id.
    pub fn send(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw(&msg.to_string());
        id
    }

    /// Reads one stdout line, sorting it into responses or events.
    fn pump(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let rx = self.lines.as_ref().expect("reading stdout");
        match rx.recv_timeout(deadline - now) {
            Ok(line) => {
                match serde_json::from_str::<Value>(&line) {
                    Ok(msg) if msg.get("id").is_some() => {
                        let key = msg["id"].to_string();
                        self.responses.insert(key, msg);
                    }
                    Ok(msg) => self.events.push_back(msg),
                    Err(_) => self.non_json_lines.lock().unwrap().push(line),
                }
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => false,
        }
    }

    /// How many of the events read so far (reading what is there now,
    /// without waiting) match `pred`.
    pub fn count_events(&mut self, pred: impl Fn(&Value) -> bool) -> usize {
        while self.pump(Instant::now() + Duration::from_millis(1)) {}
        self.events.iter().filter(|e| pred(e)).count()
    }

    /// Waits for the whole JSON-RPC response to request `id`.
    pub fn response(&mut self, id: &Value, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let key = id.to_string();
        loop {
            if let Some(r) = self.responses.remove(&key) {
                return r;
            }
            if !self.pump(deadline) && Instant::now() >= deadline {
                panic!(
                    "no response to id {key} within {timeout:?}; stderr: {}",
                    self.stderr.lock().unwrap()
                );
            }
        }
    }

    /// Sends a request and returns the envelope (`result`).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        let resp = self.response(&json!(id), Duration::from_secs(60));
        resp["result"].clone()
    }

    /// Sends a request that must succeed; returns `data`.
    pub fn ok(&mut self, method: &str, params: Value) -> Value {
        let envelope = self.call(method, params.clone());
        assert_eq!(envelope["ok"], true, "{method} {params} failed: {envelope}");
        envelope["data"].clone()
    }

    /// Sends a request that must fail; returns `error`.
    pub fn err(&mut self, method: &str, params: Value) -> Value {
        let envelope = self.call(method, params.clone());
        assert_eq!(
            envelope["ok"], false,
            "{method} {params} succeeded: {envelope}"
        );
        envelope["error"].clone()
    }

    /// The first event matching `pred`; other events stay queued in order.
    pub fn event_where(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        let mut scanned = 0;
        loop {
            while scanned < self.events.len() {
                if pred(&self.events[scanned]) {
                    return self.events.remove(scanned).unwrap();
                }
                scanned += 1;
            }
            if !self.pump(deadline) && Instant::now() >= deadline {
                panic!(
                    "no matching event within {timeout:?}; stderr: {}",
                    self.stderr.lock().unwrap()
                );
            }
        }
    }

    /// The next event, whatever it is.
    pub fn next_event(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            if !self.pump(deadline) {
                return None;
            }
        }
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("dbbridge did not exit within {timeout:?}");
            }
            // Keep stdout drained so the bridge can flush.
            let _ = self.pump(Instant::now() + Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log file's text.
    pub fn logs(&self) -> String {
        read_dir_text(&self.data_dir.join("logs"))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// All text files under `dir`, concatenated (recursively).
pub fn read_dir_text(dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.push_str(&read_dir_text(&path));
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    out
}

/// Resident memory of a process in bytes (Linux).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The element of the JSON array `list` whose `key` is `value`; panics (showing
/// the list) when there is none.
pub fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x[key] == value)
        .unwrap_or_else(|| panic!("no {key} {value} in {list}"))
}

/// The command lines and environments of `pid`'s child processes, read
/// from `/proc` (NULs as spaces).
pub fn children_of(pid: u32) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = entry.path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            let read = |f: &str| {
                String::from_utf8_lossy(&std::fs::read(dir.join(f)).unwrap_or_default())
                    .replace('\0', " ")
            };
            found.push((read("cmdline"), read("environ")));
        }
    }
    found
}

/// A loopback TCP proxy to `upstream` that the test can stall: once
/// `stalled`, it forwards nothing more either way (sockets stay open).
pub fn stalling_proxy(upstream: (String, u16)) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stalled = Arc::new(AtomicBool::new(false));
    let flag = stalled.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let flag = flag.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    loop {
                        if flag.load(Ordering::SeqCst) {
                            // Hold the connection open and silent.
                            std::thread::sleep(Duration::from_secs(60));
                            return;
                        }
                        match from.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if flag.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
                                    continue;
                                }
                            }
                        }
                    }
                });
            }
        }
    });
    (port, stalled)
}
