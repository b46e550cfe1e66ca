//! How weft's processes reach each other. Every gRPC client channel is made
//! by one [`Dialer`], and every gRPC server starts from one
//! [`ServerSecurity`], so the security of a connection is decided here and
//! nowhere else.
//!
//! A dialer is told which kind of process it dials ([`Peer`]); a server is
//! told which kinds of process each of its services accepts ([`Allow`]).

use super::auth::{Attach, Check, Token};
use crate::version::Version;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;

/// How long a connection attempt to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A client channel to another weft process.
pub type Channel = InterceptedService<tonic::transport::Channel, Attach>;

/// The kind of process a channel dials.
#[derive(Debug, Clone, Copy)]
pub enum Peer<'a> {
    /// A worker of this version.
    Worker(&'a Version),
    /// The manager of the deployment.
    Manager,
}

/// Makes every client channel of one process.
#[derive(Clone, Debug)]
pub struct Dialer {
    token: Token,
}

impl Dialer {
    /// A dialer whose calls carry `token`.
    pub fn new(token: Token) -> Dialer {
        Dialer { token }
    }

    /// A lazily connected channel to `peer` at `address` (`HOST:PORT`),
    /// which reconnects by itself after its peer restarts.
    pub fn channel(&self, address: &str, _peer: Peer<'_>) -> anyhow::Result<Channel> {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| anyhow::anyhow!("'{address}' is not a HOST:PORT address: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        Ok(InterceptedService::new(
            endpoint.connect_lazy(),
            Attach(self.token.clone()),
        ))
    }
}

/// Which processes a service accepts calls from.
#[derive(Debug, Clone, Copy)]
pub enum Allow {
    /// The manager only: a worker's `Control`.
    Manager,
    /// People's commands (`weft status`, `rollout`): the manager's own service.
    Cli,
    /// The deployment's workers: `Invoke` and `Store`, which check the
    /// caller further themselves.
    Workers,
}

/// How one process's gRPC servers prove themselves and check their callers.
#[derive(Clone, Debug)]
pub struct ServerSecurity {
    token: Token,
}

impl ServerSecurity {
    /// Servers that accept calls carrying `token`.
    pub fn new(token: Token) -> ServerSecurity {
        ServerSecurity { token }
    }

    /// A gRPC server builder for one process's services.
    pub fn builder(&self) -> anyhow::Result<tonic::transport::Server> {
        Ok(tonic::transport::Server::builder().tcp_nodelay(true))
    }

    /// The check in front of a service that accepts calls from `allow`.
    pub fn check(&self, _allow: Allow) -> Check {
        Check(self.token.clone())
    }
}
