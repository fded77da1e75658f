//! Benchmarks (filled in with the SQLite issue).
use std::path::Path;
pub fn run(_root: &Path, _args: &[&str]) -> anyhow::Result<()> {
    anyhow::bail!("no benchmarks yet")
}
