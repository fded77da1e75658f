//! Project automation: `cargo xtask codegen [--check]`, `cargo xtask bench ...`,
//! `cargo xtask fuzz [--lock]`, `cargo xtask dist`, `cargo xtask with-servers -- CMD`.
// xtask is a command-line tool: printing its report is its job.
#![allow(clippy::print_stdout)]

mod bench;
mod bench_backup;
mod bench_cgroup;
mod bench_client;
mod bench_export;
mod bench_lanes;
mod bench_load;
mod bench_load_stream;
mod bench_measure;
mod bench_my;
mod bench_pg;
mod dist;
mod fuzz;
mod servers;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["codegen"] => codegen(false),
        ["codegen", "--check"] => codegen(true),
        ["bench", rest @ ..] => bench::run(&workspace_root(), rest),
        ["fuzz", "--lock"] => fuzz::sync_lock(&workspace_root()),
        ["fuzz", rest @ ..] => fuzz::run(&workspace_root(), rest),
        ["dist", rest @ ..] => dist::run(&workspace_root(), rest),
        ["with-servers", "--", rest @ ..] => servers::with_servers(rest),
        _ => bail!(
            "usage: cargo xtask codegen [--check] | cargo xtask bench sqlite|postgres|mysql|backup|export|lanes|load | cargo xtask fuzz [--runs N] [--seconds S] [TARGET...] | cargo xtask fuzz --lock | cargo xtask dist [--target TRIPLE] | cargo xtask with-servers -- CMD..."
        ),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Writes every generated file (the bindings, the TypeScript client's
/// `protocol.ts`, `docs/api.md`); with `--check`, fails when a checked-in
/// file differs from what would be written.
fn codegen(check: bool) -> Result<()> {
    let root = workspace_root();
    let mut stale = Vec::new();
    for (name, text) in dbbridge_protocol::apidoc::generated_files() {
        let path = root.join(name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == text {
            continue;
        }
        if check {
            stale.push(name);
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "generated files out of date: {} (run `cargo xtask codegen`)",
            stale.join(", ")
        );
    }
    Ok(())
}
