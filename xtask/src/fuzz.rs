//! `cargo xtask fuzz [--runs N] [--seconds S] [TARGET...]`: the long fuzz
//! runs. Each target of `fuzz/` (cargo-fuzz's layout) runs under libFuzzer
//! with AddressSanitizer through `cargo +nightly fuzz run`, from its seed
//! corpus in `fuzz/corpus/<target>`, until N executions (default 10M) or S
//! seconds (default 1800), whichever comes first. Prints each target's
//! executions, time and result. Needs the nightly toolchain and
//! `cargo install cargo-fuzz`. The test command runs short smoke runs of
//! the same entry points instead (`dbbridge_db::fuzz`, `dbbridge_protocol::fuzz`).
//! `cargo xtask fuzz --lock` brings `fuzz/Cargo.lock` in line with the
//! workspace's.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

pub const TARGETS: [&str; 9] = [
    "rpc_frame",
    "stdio_lines",
    "secret_file",
    "pg_split",
    "my_split",
    "pg_copy_row",
    "pg_array",
    "my_row",
    "my_column_definition",
];

pub fn run(root: &Path, args: &[&str]) -> Result<()> {
    let (mut runs, mut seconds) = (10_000_000u64, 1800u64);
    let mut targets = Vec::new();
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        match (*first, tail) {
            ("--runs", [n, tail @ ..]) => {
                runs = n.parse().context("--runs takes a number")?;
                rest = tail;
            }
            ("--seconds", [n, tail @ ..]) => {
                seconds = n.parse().context("--seconds takes a number")?;
                rest = tail;
            }
            (t, tail) if TARGETS.contains(&t) => {
                targets.push(t);
                rest = tail;
            }
            _ => bail!(
                "usage: cargo xtask fuzz [--runs N] [--seconds S] [{}]",
                TARGETS.join("|")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let dir = root.join("fuzz");
    sync_lock(root)?;
    let mut report = Vec::new();
    for target in targets {
        let corpus = dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let started = Instant::now();
        let out = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "-O", target])
            .arg(&corpus)
            .args([
                "--",
                &format!("-runs={runs}"),
                &format!("-max_total_time={seconds}"),
                "-print_final_stats=1",
                "-rss_limit_mb=2048",
                "-timeout=10",
            ])
            .current_dir(&dir)
            .output()
            .context("running cargo +nightly fuzz (cargo install cargo-fuzz)")?;
        let log = String::from_utf8_lossy(&out.stderr);
        let execs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(|n| n.trim().to_string())
            .unwrap_or_else(|| "?".into());
        let result = if out.status.success() {
            "no crash, hang or leak".to_string()
        } else {
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "{target} failed:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
            "FAILED (see above; the input is in fuzz/artifacts)".to_string()
        };
        let line = format!(
            "{target:<22} {execs:>12} executions in {:>6.0} s: {result}",
            started.elapsed().as_secs_f64()
        );
        println!("{line}");
        report.push((line, out.status.success()));
    }
    println!("\nfuzz: {runs} runs or {seconds} s per target");
    for (line, _) in &report {
        println!("  {line}");
    }
    if report.iter().any(|(_, ok)| !ok) {
        bail!("a fuzz target failed");
    }
    Ok(())
}

/// `cargo xtask fuzz --lock`, and the start of every fuzz run: the fuzz
/// crate is a workspace of its own (nightly, sanitizer flags), so it has a
/// lock file of its own. It starts from the main workspace's, so the
/// targets fuzz the dependency versions the bridge ships with; cargo then
/// adds only the fuzz-only crates (libfuzzer-sys and its dependencies). A
/// test (below) fails when the two drift apart.
pub fn sync_lock(root: &Path) -> Result<()> {
    let dir = root.join("fuzz");
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))
        .context("copying Cargo.lock into fuzz/")?;
    let status = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .stdout(std::process::Stdio::null())
        .status()
        .context("cargo metadata (resolving fuzz/Cargo.lock)")?;
    if !status.success() {
        bail!("cargo metadata could not resolve fuzz/Cargo.toml: {status}");
    }
    let read = |path: &Path| std::fs::read_to_string(path).context("reading a lock file");
    let drifted = drift(
        &read(&root.join("Cargo.lock"))?,
        &read(&dir.join("Cargo.lock"))?,
    );
    if !drifted.is_empty() {
        bail!(
            "fuzz/Cargo.lock still locks other versions than Cargo.lock: {}",
            drifted.join(", ")
        );
    }
    Ok(())
}

/// The `(name, version)` of every package in a Cargo.lock text.
fn locked_packages(lock: &str) -> Vec<(&str, &str)> {
    let mut packages = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if line == "[[package]]" {
            name = None;
        } else if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"'));
        } else if let Some(v) = line.strip_prefix("version = ")
            && let Some(n) = name.take()
        {
            packages.push((n, v.trim_matches('"')));
        }
    }
    packages
}

/// The packages of `fuzz` locked at a version `workspace` does not lock
/// for the same name (crates only the fuzz crate uses are fine).
fn drift<'a>(workspace: &'a str, fuzz: &'a str) -> Vec<String> {
    let shipped = locked_packages(workspace);
    locked_packages(fuzz)
        .into_iter()
        .filter(|(name, version)| {
            shipped.iter().any(|(n, _)| n == name) && !shipped.contains(&(name, version))
        })
        .map(|(name, version)| format!("{name} {version}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_crate_locks_the_versions_the_bridge_ships() {
        let root = crate::workspace_root();
        let read = |p: &str| std::fs::read_to_string(root.join(p)).expect("a lock file");
        let (workspace, fuzz) = (read("Cargo.lock"), read("fuzz/Cargo.lock"));
        assert!(locked_packages(&fuzz).len() > 100);
        let drifted = drift(&workspace, &fuzz);
        assert!(
            drifted.is_empty(),
            "fuzz/Cargo.lock locks other versions than Cargo.lock: {} (run `cargo xtask fuzz --lock`)",
            drifted.join(", ")
        );
    }

    #[test]
    fn a_version_the_workspace_does_not_lock_is_drift() {
        let workspace = "version = 4\n\n[[package]]\nname = \"clap\"\nversion = \"4.6.9\"\n\n[[package]]\nname = \"nix\"\nversion = \"0.29.0\"\n\n[[package]]\nname = \"nix\"\nversion = \"0.31.4\"\n";
        let fuzz = "version = 4\n\n[[package]]\nname = \"clap\"\nversion = \"4.6.10\"\n\n[[package]]\nname = \"nix\"\nversion = \"0.31.4\"\n\n[[package]]\nname = \"libfuzzer-sys\"\nversion = \"0.4.13\"\n";
        assert_eq!(drift(workspace, fuzz), ["clap 4.6.10"]);
        assert!(drift(workspace, workspace).is_empty());
    }
}
