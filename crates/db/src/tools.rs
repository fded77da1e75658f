//! Finding a database's command-line tools (`pg_dump`, `psql`,
//! `mariadb-dump`, ...) and checking their versions before anything starts.
//! A tool is looked for in the directories the caller names first
//! (`--pg-bin-dir`), then on `PATH`, then in the engine's usual install
//! folders; each candidate's `--version` is run once. Which folders, and how
//! a version reads, is the engine's knowledge ([`postgres_dirs`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tool that was found and answered `--version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub path: PathBuf,
    /// What `--version` printed, first line.
    pub version: String,
    pub major: u32,
}

/// Why no tool will do.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolError {
    /// Not one candidate answered.
    NotFound {
        tool: String,
        searched: Vec<PathBuf>,
    },
    /// Some answered, none new enough for the server.
    TooOld {
        tool: String,
        found: Vec<Tool>,
        needed_major: u32,
    },
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolError::NotFound { tool, searched } => write!(
                f,
                "{tool} was not found (looked in {} places; set the tool folder option)",
                searched.len()
            ),
            ToolError::TooOld {
                tool,
                found,
                needed_major,
            } => {
                let majors: Vec<String> = found.iter().map(|t| t.major.to_string()).collect();
                write!(
                    f,
                    "{tool} {needed_major} or newer is needed for this server; found {}",
                    majors.join(", ")
                )
            }
        }
    }
}

/// The folders Postgres's tools are usually installed in, on every platform
/// dbbridge runs on; patterns with `*` are expanded, newest first.
pub fn postgres_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for pattern in [
        "/usr/lib/postgresql/*/bin",
        "/usr/pgsql-*/bin",
        "/opt/homebrew/opt/postgresql@*/bin",
        "/usr/local/opt/postgresql@*/bin",
        "/Applications/Postgres.app/Contents/Versions/*/bin",
        "C:\\Program Files\\PostgreSQL\\*\\bin",
    ] {
        dirs.extend(expand(pattern));
    }
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs
}

/// The folders MySQL's and MariaDB's clients are usually installed in.
pub fn mysql_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/usr/local/mysql/bin"),
        PathBuf::from("/opt/homebrew/bin"),
        PathBuf::from("/usr/local/bin"),
    ];
    for pattern in [
        "C:\\Program Files\\MariaDB *\\bin",
        "C:\\Program Files\\MySQL\\MySQL Server *\\bin",
    ] {
        dirs.extend(expand(pattern));
    }
    dirs
}

/// Every directory matching `pattern`, whose one `*` stands in one path
/// component (sorted, newest version first by name).
fn expand(pattern: &str) -> Vec<PathBuf> {
    let Some(star) = pattern.find('*') else {
        return vec![PathBuf::from(pattern)];
    };
    let sep = |c: char| c == '/' || c == '\\';
    let dir_end = pattern[..star].rfind(sep).map_or(0, |i| i + 1);
    let parent = &pattern[..dir_end];
    let rest_at = pattern[star..]
        .find(sep)
        .map_or(pattern.len(), |i| star + i);
    let (prefix, suffix) = (&pattern[dir_end..star], &pattern[star + 1..rest_at]);
    let tail = pattern[rest_at..].trim_start_matches(sep);
    let Ok(entries) = std::fs::read_dir(if parent.is_empty() { "." } else { parent }) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.len() >= prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        })
        .map(|e| {
            let path = e.path();
            if tail.is_empty() {
                path
            } else {
                path.join(tail)
            }
        })
        .filter(|p| p.is_dir())
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(version_key(p)));
    found
}

/// Sort key of a folder by the numbers in its name (`15` < `18`).
fn version_key(path: &Path) -> Vec<u32> {
    path.to_string_lossy()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The candidates for `tool`: in `first`, on `PATH`, then in `usual`.
pub fn candidates(tool: &str, first: &[PathBuf], usual: &[PathBuf]) -> Vec<PathBuf> {
    let exe = if cfg!(windows) {
        format!("{tool}.exe")
    } else {
        tool.to_string()
    };
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in first.iter().chain(&path_dirs).chain(usual) {
        let candidate = dir.join(&exe);
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

/// The major version in a `--version` line: the first number after the
/// program's name (`pg_dump (PostgreSQL) 15.20 (Debian ...)` is 15,
/// `mariadb-dump from 11.4.2-MariaDB` is 11; `Ver 10.19 Distrib 10.11.6` is
/// read by its `Distrib`).
pub fn major_of(version: &str) -> Option<u32> {
    let text = match version.find("Distrib ") {
        Some(at) => &version[at + 8..],
        None => version,
    };
    text.split(|c: char| !c.is_ascii_digit() && c != '.')
        .find(|w| w.contains('.') || w.parse::<u32>().is_ok())
        .and_then(|w| w.split('.').next())
        .and_then(|n| n.parse().ok())
}

/// Runs `path --version` (for at most 10 s).
pub fn version_of(path: &Path) -> Option<Tool> {
    if !path.is_file() {
        return None;
    }
    let mut child = Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    let version = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .to_string();
    let major = major_of(&version)?;
    Some(Tool {
        path: path.to_path_buf(),
        version,
        major,
    })
}

/// The tool to use with a server of `server_major`: the lowest major that is
/// at least the server's (a newer `pg_dump` reads an older server; an older
/// one refuses a newer server, and a dump from a much newer one may not load
/// into it).
pub fn pick(tool: &str, candidates: &[PathBuf], server_major: u32) -> Result<Tool, ToolError> {
    let found: Vec<Tool> = candidates.iter().filter_map(|p| version_of(p)).collect();
    if found.is_empty() {
        return Err(ToolError::NotFound {
            tool: tool.to_string(),
            searched: candidates.to_vec(),
        });
    }
    found
        .iter()
        .filter(|t| t.major >= server_major)
        .min_by_key(|t| t.major)
        .cloned()
        .ok_or_else(|| ToolError::TooOld {
            tool: tool.to_string(),
            found,
            needed_major: server_major,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_each_tool_prints_them() {
        assert_eq!(
            major_of("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(major_of("psql (PostgreSQL) 18.1"), Some(18));
        assert_eq!(major_of("pg_dump (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(
            major_of(
                "mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)"
            ),
            Some(10)
        );
        assert_eq!(
            major_of("mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"),
            Some(8)
        );
        assert_eq!(major_of("no digits here"), None);
    }

    #[cfg(unix)]
    fn fake_tool(dir: &Path, name: &str, version: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\necho '{version}'\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_lowest_major_at_least_the_servers_is_picked() {
        let (d15, d17, d18) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        fake_tool(d15.path(), "pg_dump", "pg_dump (PostgreSQL) 15.4");
        fake_tool(d17.path(), "pg_dump", "pg_dump (PostgreSQL) 17.2");
        fake_tool(d18.path(), "pg_dump", "pg_dump (PostgreSQL) 18.1");
        let all: Vec<PathBuf> = [&d18, &d15, &d17]
            .iter()
            .map(|d| d.path().join("pg_dump"))
            .collect();
        assert_eq!(pick("pg_dump", &all, 15).unwrap().major, 15);
        assert_eq!(pick("pg_dump", &all, 16).unwrap().major, 17);
        assert_eq!(pick("pg_dump", &all, 18).unwrap().major, 18);
        match pick("pg_dump", &all[1..2], 18) {
            Err(ToolError::TooOld {
                found,
                needed_major,
                ..
            }) => {
                assert_eq!(needed_major, 18);
                assert_eq!(found[0].major, 15);
            }
            other => panic!("{other:?}"),
        }
        let nowhere = [d15.path().join("pg_restore")];
        assert!(matches!(
            pick("pg_restore", &nowhere, 15),
            Err(ToolError::NotFound { .. })
        ));
        // The caller's folder comes first, and nothing is listed twice.
        let c = candidates(
            "pg_dump",
            &[d18.path().to_path_buf(), d18.path().to_path_buf()],
            &[],
        );
        assert_eq!(c[0], d18.path().join("pg_dump"));
        assert_eq!(
            c.iter()
                .filter(|p| **p == d18.path().join("pg_dump"))
                .count(),
            1
        );
    }

    #[test]
    fn usual_folders_expand_their_patterns() {
        let root = tempfile::tempdir().unwrap();
        for v in ["13", "15", "9.6"] {
            std::fs::create_dir_all(root.path().join(v).join("bin")).unwrap();
        }
        let pattern = format!("{}/*/bin", root.path().display());
        let dirs = expand(&pattern);
        assert_eq!(dirs.len(), 3);
        assert!(dirs[0].ends_with("15/bin"), "{dirs:?}");
    }

    #[test]
    fn the_machines_own_pg_dump_is_found_and_checked() {
        let all = candidates("pg_dump", &[], &postgres_dirs());
        let tool = match pick("pg_dump", &all, 9) {
            Ok(tool) => tool,
            Err(error) => {
                assert!(std::env::var_os("CI").is_none(), "CI is set but {error}");
                eprintln!("SKIPPED: {error}");
                return;
            }
        };
        assert!(tool.version.contains("PostgreSQL"), "{tool:?}");
        // A server one major past every tool here is refused, naming both.
        let newest = all
            .iter()
            .filter_map(|p| version_of(p))
            .map(|t| t.major)
            .max()
            .unwrap();
        let error = pick("pg_dump", &all, newest + 1).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&(newest + 1).to_string()) && text.contains(&newest.to_string()),
            "{text}"
        );
    }
}
