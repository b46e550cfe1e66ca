//! The `weft` subcommands, one module each.

pub mod deploy;
pub mod kube;
pub mod rollout;
pub mod run;
pub mod status;
pub mod worker;

use crate::deploy::state::DeployState;
use crate::rpc::auth::Token;
use crate::rpc::{Channel, Dialer, Peer};
use anyhow::Context as _;
use weft_proto::v1::manager_client::ManagerClient;

/// A client of the manager of the app deployed from `dir`, found through
/// its state file and carrying its token.
fn manager_client(dir: &std::path::Path) -> anyhow::Result<ManagerClient<Channel>> {
    let path = DeployState::path(dir);
    let state = DeployState::read(&path).with_context(|| {
        format!(
            "the app in {} is not deployed (cannot read {}); start it with weft deploy",
            dir.display(),
            path.display()
        )
    })?;
    let token = Token::read_file(&dir.join(".weft").join("token"))?;
    Ok(ManagerClient::new(
        Dialer::new(token).channel(&state.control, Peer::Manager)?,
    ))
}
