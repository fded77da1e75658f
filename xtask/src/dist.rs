//! `cargo xtask dist [--target TRIPLE]`: the release binary an app ships,
//! built with the `dist` profile (size-optimised, fat LTO, stripped) and
//! copied to `target/dist/dbbridge-<triple>[.exe]`, the name Tauri's
//! `externalBin` looks for. Prints its size.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

pub fn run(root: &Path, args: &[&str]) -> Result<()> {
    let target = match args {
        [] => None,
        ["--target", triple] => Some((*triple).to_owned()),
        _ => bail!("usage: cargo xtask dist [--target TRIPLE]"),
    };
    let triple = match &target {
        Some(t) => t.clone(),
        None => host_triple()?,
    };
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.current_dir(root).args([
        "build",
        "--locked",
        "--profile",
        "dist",
        "--package",
        "dbbridge",
        "--bin",
        "dbbridge",
    ]);
    if let Some(t) = &target {
        build.args(["--target", t]);
    }
    let status = build.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --profile dist failed: {status}");
    }
    let exe = if triple.contains("windows") {
        ".exe"
    } else {
        ""
    };
    let built = match &target {
        Some(t) => root.join("target").join(t).join("dist"),
        None => root.join("target").join("dist"),
    }
    .join(format!("dbbridge{exe}"));
    let out_dir = root.join("target").join("dist");
    std::fs::create_dir_all(&out_dir)?;
    let shipped = out_dir.join(format!("dbbridge-{triple}{exe}"));
    std::fs::copy(&built, &shipped)
        .with_context(|| format!("copying {} to {}", built.display(), shipped.display()))?;
    let size = std::fs::metadata(&shipped)?.len();
    println!(
        "{}  {:.2} MiB ({size} bytes)",
        shipped.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// The host's target triple, as rustc names it.
fn host_triple() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV printed no host line")
}
