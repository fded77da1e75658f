//! `dbbridge demo`: filled in with the SQLite connector.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DemoArgs {}

pub async fn run(_args: DemoArgs, _data_dir: PathBuf) -> anyhow::Result<()> {
    anyhow::bail!("the demo arrives with the SQLite connector")
}
