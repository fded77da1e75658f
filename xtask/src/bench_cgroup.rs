//! `--servers-cgroup` of `cargo xtask bench load`: the database servers and
//! the bench in CPU cgroups of their own (see [`CpuGroups`]).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The pids of the processes listening on `ports` (the bench's own
/// servers, found with `ss`) and of their children.
fn server_pids(ports: &[u16]) -> Result<Vec<String>> {
    let mut all = Vec::new();
    for port in ports {
        let out = Command::new("ss")
            .args(["-Hltnp", &format!("sport = :{port}")])
            .output()
            .context("ss")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let pids: Vec<String> = text
            .split("pid=")
            .skip(1)
            .filter_map(|rest| rest.split(',').next())
            .map(String::from)
            .collect();
        if pids.is_empty() {
            bail!("no process found listening on port {port}");
        }
        for pid in pids {
            let children = Command::new("pgrep").args(["-P", &pid]).output()?;
            let children = String::from_utf8_lossy(&children.stdout).into_owned();
            all.extend(children.split_whitespace().map(String::from));
            all.push(pid);
        }
    }
    all.sort();
    all.dedup();
    Ok(all)
}

/// `--servers-cgroup`: the database servers in one CPU cgroup and the bench
/// (its clients and the bridge it starts) in another, with equal weights,
/// as a desktop runs them under systemd: a database service in
/// `system.slice`, the app in `user.slice`. As the servers are started,
/// each Postgres backend is a session of its own (Postgres calls `setsid`
/// for every child), so the kernel's autogroups give each of the 33
/// backends as much CPU as the whole bridge, and `nice` cannot change that
/// (it acts within a group only). Needs root and a writable cgroup
/// hierarchy with the CPU controller (v1's `cpu`, or v2).
pub struct CpuGroups {
    root: std::path::PathBuf,
    servers: std::path::PathBuf,
    bench: std::path::PathBuf,
}

impl CpuGroups {
    pub fn split(ports: &[u16]) -> Result<CpuGroups> {
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let root = if v1.join("cpu.shares").exists() {
            v1.to_path_buf()
        } else if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            let root = Path::new("/sys/fs/cgroup");
            std::fs::write(root.join("cgroup.subtree_control"), "+cpu")
                .context("enabling the cpu controller of /sys/fs/cgroup (root needed)")?;
            root.to_path_buf()
        } else {
            bail!("--servers-cgroup: no cgroup hierarchy with the CPU controller here");
        };
        remove_stale(&root);
        let tag = std::process::id();
        let groups = CpuGroups {
            servers: root.join(format!("dbbridge-bench-servers-{tag}")),
            bench: root.join(format!("dbbridge-bench-app-{tag}")),
            root,
        };
        for dir in [&groups.servers, &groups.bench] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("making {} (root needed)", dir.display()))?;
        }
        // Backends forked later inherit the postmaster's group.
        for pid in server_pids(ports)? {
            groups.enter(&groups.servers, &pid)?;
        }
        // The bridge, started later, inherits the bench's group.
        groups.enter(&groups.bench, &std::process::id().to_string())?;
        Ok(groups)
    }

    fn enter(&self, group: &Path, pid: &str) -> Result<()> {
        // A process that ended in between cannot move: nothing to do.
        match std::fs::write(group.join("cgroup.procs"), pid) {
            Err(e) if e.raw_os_error() == Some(3) => Ok(()), // ESRCH
            other => other.with_context(|| format!("moving {pid} to {}", group.display())),
        }
    }
}

impl Drop for CpuGroups {
    /// Everyone back to the root group, and the two groups removed. (A bench
    /// killed by a signal cannot do this: the next `split` removes what it
    /// left.)
    fn drop(&mut self) {
        for group in [&self.servers, &self.bench] {
            dissolve(&self.root, group);
        }
    }
}

/// Moves every process of `group` back to `root` and removes the group. A
/// server may fork a process (an autovacuum worker) between the read and
/// the removal, which then fails as busy: hence a few rounds.
fn dissolve(root: &Path, group: &Path) {
    for _ in 0..20 {
        let pids = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
        for pid in pids.split_whitespace() {
            let _ = std::fs::write(root.join("cgroup.procs"), pid);
        }
        if std::fs::remove_dir(group).is_ok() || !group.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The groups of earlier benches whose process is gone (killed by a
/// signal before its `Drop` ran), dissolved.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let tag = name
            .strip_prefix("dbbridge-bench-servers-")
            .or_else(|| name.strip_prefix("dbbridge-bench-app-"));
        if let Some(tag) = tag
            && tag.parse::<u32>().is_ok()
            && !Path::new("/proc").join(tag).exists()
        {
            dissolve(root, &entry.path());
        }
    }
}
