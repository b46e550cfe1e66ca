//! `weft status`: what a running deployment is doing, from its manager.

use super::manager_client;
use crate::deploy::manager::load_absolute;
use crate::deploy::state::DeployState;
use std::path::PathBuf;
use weft_proto::v1::StatusRequest;

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
        let reply = manager_client(&manifest.dir)?
            .status(StatusRequest {})
            .await
            .map_err(|s| anyhow::anyhow!("the manager did not answer: {}", s.message()))?
            .into_inner();
        if self.json {
            say!("{}", reply.json);
        } else {
            let state: DeployState = serde_json::from_str(&reply.json)?;
            print!("{}", state.render());
        }
        Ok(())
    }
}
