//! The `weft` subcommands, one module each.

pub mod deploy;
pub mod ingress;
pub mod kube;
pub mod links;
pub mod plan;
pub mod profile;
pub mod rollout;
pub mod run;
pub mod status;
pub mod worker;

use crate::deploy::state::DeployState;
use crate::rpc::identity::Credentials;
use crate::rpc::{Channel, Dialer, Peer};
use anyhow::Context as _;
use weft_proto::v1::manager_client::ManagerClient;

/// A client of the manager of the app deployed from `dir`, found through
/// its state file, presenting the CLI's certificate in `.weft/cli`.
fn manager_client(dir: &std::path::Path) -> anyhow::Result<ManagerClient<Channel>> {
    let path = DeployState::path(dir);
    let state = DeployState::read(&path).with_context(|| {
        format!(
            "the app in {} is not deployed (cannot read {}); start it with weft deploy",
            dir.display(),
            path.display()
        )
    })?;
    let cli = dir.join(".weft").join("cli");
    let credentials = Credentials::read_dir(&cli).with_context(|| {
        format!(
            "cannot read weft's credentials for this app in {}; is it deployed (weft deploy), \
             and are you its owner?",
            cli.display()
        )
    })?;
    Ok(ManagerClient::new(
        Dialer::new(credentials).channel(&state.control, Peer::Manager)?,
    ))
}

/// The deployment's state as `client`'s manager tells it now, and the same
/// as the JSON it sent (what `weft status --json` prints).
async fn manager_state(
    client: &mut ManagerClient<Channel>,
) -> anyhow::Result<(DeployState, String)> {
    let json = client
        .status(weft_proto::v1::StatusRequest {})
        .await
        .map_err(|s| anyhow::anyhow!("the manager did not answer: {}", s.message()))?
        .into_inner()
        .json;
    let state = serde_json::from_str(&json).context(
        "the manager's status does not read as this weft's; is the manager another weft's?",
    )?;
    Ok((state, json))
}
