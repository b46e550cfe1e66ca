//! `weft status`: what a running deployment is doing, from its manager.

use super::manager_client;
use crate::deploy::manager::load_absolute;
use std::path::PathBuf;

/// Show a running deployment: its versions and their traffic, its workers,
/// its listeners, and the rollout under way.
#[derive(Debug, clap::Args)]
pub struct StatusCommand {
    /// The deployed app: a weft.toml, or a folder that holds one.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Print JSON (the same document as .weft/deploy.json, with live counts).
    #[arg(long)]
    pub json: bool,
}

impl StatusCommand {
    /// Asks the manager and prints what it says.
    pub async fn execute(self) -> anyhow::Result<()> {
        let manifest = load_absolute(&self.path)?;
        let (state, json) = super::manager_state(&mut manager_client(&manifest.dir)?).await?;
        if self.json {
            say!("{json}");
        } else {
            print!("{}", state.render());
        }
        Ok(())
    }
}
