//! How weft's processes reach each other: always over mutual TLS, with the
//! deployment's CA ([`identity`](super::identity)). Every gRPC client
//! channel is made by one [`Dialer`], and every gRPC server starts from one
//! [`ServerSecurity`], so the security of a connection is decided here and
//! nowhere else.
//!
//! - A dialer is told which process it dials ([`Peer`]) and checks that
//!   the server's certificate proves it: a worker of its own version, or
//!   the manager. A server of another deployment, or of another version,
//!   fails the handshake.
//! - A server refuses, at the handshake, any client without a certificate
//!   from the deployment's CA. In front of each service, [`Check`] lets
//!   through only the callers that [`Allow`] names, and the services learn
//!   who called from [`caller`].

use super::identity::{Credentials, Identity, MANAGER_NAME, Role, worker_name};
use crate::version::Version;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, ServerTlsConfig};
use tonic::{Request, Status};

/// How long a connection attempt to a peer may take, its TLS handshake
/// included.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take over its TLS handshake with a server.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A client channel to another weft process.
pub type Channel = tonic::transport::Channel;

/// The process a channel dials, which its certificate must prove.
#[derive(Debug, Clone, Copy)]
pub enum Peer<'a> {
    /// A worker of this version.
    Worker(&'a Version),
    /// The manager of the deployment.
    Manager,
}

/// Makes every client channel of one process, presenting its certificate.
#[derive(Clone, Debug)]
pub struct Dialer {
    credentials: Arc<Credentials>,
}

impl Dialer {
    /// A dialer that proves itself with `credentials`.
    pub fn new(credentials: Credentials) -> Dialer {
        Dialer {
            credentials: Arc::new(credentials),
        }
    }

    /// Who this dialer's calls come from.
    pub fn identity(&self) -> &Identity {
        &self.credentials.identity
    }

    /// A lazily connected channel to `peer` at `address` (`HOST:PORT`),
    /// which reconnects by itself after its peer restarts.
    pub fn channel(&self, address: &str, peer: Peer<'_>) -> anyhow::Result<Channel> {
        Ok(self.endpoint(address, peer)?.connect_lazy())
    }

    /// The endpoint of `peer` at `address`, with this process's TLS.
    pub fn endpoint(
        &self,
        address: &str,
        peer: Peer<'_>,
    ) -> anyhow::Result<tonic::transport::Endpoint> {
        let server_name = match peer {
            Peer::Worker(version) => worker_name(version.as_str()),
            Peer::Manager => MANAGER_NAME.to_string(),
        };
        let c = &self.credentials;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&c.ca_pem))
            .identity(tonic::transport::Identity::from_pem(
                &c.cert_pem,
                &c.key_pem,
            ))
            .domain_name(server_name)
            .timeout(HANDSHAKE_TIMEOUT);
        let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{address}"))
            .map_err(|e| anyhow::anyhow!("'{address}' is not a HOST:PORT address: {e}"))?
            .tls_config(tls)
            .map_err(|e| anyhow::anyhow!("cannot set up TLS to {address}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        Ok(endpoint)
    }
}

/// Which processes a service accepts calls from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// The manager only: a worker's `Control`.
    Manager,
    /// The manager and people's commands: a worker's `Control` where the
    /// CLI reads it (`Served`, `Health`), and the manager's own service.
    ManagerOrCli,
    /// People's commands only: the manager's `Manager` service.
    Cli,
    /// The manager, people's commands and the cluster's ingress: a
    /// worker's `Control`, whose methods that change the worker check
    /// further that the caller is not the ingress.
    Observers,
    /// The deployment's workers: `Invoke` and `Store`, which check the
    /// caller further against the call graph and the grants.
    Workers,
}

/// How one process's gRPC servers prove themselves and check callers.
#[derive(Clone, Debug)]
pub struct ServerSecurity {
    credentials: Arc<Credentials>,
}

impl ServerSecurity {
    /// Servers that prove themselves with `credentials` and accept only
    /// clients whose certificates come from the same CA.
    pub fn new(credentials: Credentials) -> ServerSecurity {
        ServerSecurity {
            credentials: Arc::new(credentials),
        }
    }

    /// A gRPC server builder that speaks only mutual TLS.
    pub fn builder(&self) -> anyhow::Result<tonic::transport::Server> {
        let c = &self.credentials;
        let tls = ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                &c.cert_pem,
                &c.key_pem,
            ))
            .client_ca_root(Certificate::from_pem(&c.ca_pem))
            .timeout(HANDSHAKE_TIMEOUT);
        tonic::transport::Server::builder()
            .tls_config(tls)
            .map_err(|e| anyhow::anyhow!("cannot set up the TLS server: {e}"))
    }

    /// The check in front of a service that accepts calls from `allow`.
    pub fn check(&self, allow: Allow) -> Check {
        Check {
            app: self.credentials.identity.app.clone(),
            allow,
        }
    }
}

/// Who called: the identity that the client's certificate names. Only a
/// certificate of the server's own CA passed the handshake, so this is
/// proven; a certificate that names no weft identity is refused.
pub fn caller<T>(request: &Request<T>) -> Result<Arc<Identity>, Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("this call came without a client certificate"))?;
    certs
        .first()
        .and_then(|der| KNOWN.identity_of(der))
        .ok_or_else(|| Status::unauthenticated("the client's certificate names no weft identity"))
}

/// The identities of the certificates seen so far. Every call on a
/// connection shows its certificate again, and parsing it took a fifth of
/// a worker's time per call; looking it up by its bytes takes a hash.
static KNOWN: KnownCertificates = KnownCertificates(std::sync::Mutex::new(None));

/// How many certificates [`KNOWN`] keeps before it starts again: far more
/// than the processes of a deployment.
const KNOWN_CERTIFICATES: usize = 4096;

struct KnownCertificates(
    std::sync::Mutex<Option<std::collections::HashMap<Vec<u8>, Arc<Identity>>>>,
);

impl KnownCertificates {
    fn identity_of(&self, der: &[u8]) -> Option<Arc<Identity>> {
        if let Some(known) = self.0.lock().expect("certificate cache").as_ref()
            && let Some(identity) = known.get(der)
        {
            return Some(identity.clone());
        }
        let identity = Arc::new(super::identity::identity_of(der)?);
        let mut known = self.0.lock().expect("certificate cache");
        let known = known.get_or_insert_with(Default::default);
        if known.len() >= KNOWN_CERTIFICATES {
            known.clear();
        }
        known.insert(der.to_vec(), identity.clone());
        Some(identity)
    }
}

/// Lets through the calls of the processes one [`Allow`] names.
#[derive(Clone, Debug)]
pub struct Check {
    app: String,
    allow: Allow,
}

impl Check {
    /// Whether `who` may call a service of this check.
    fn admits(&self, who: &Identity) -> bool {
        who.app == self.app
            && matches!(
                (self.allow, &who.role),
                (
                    Allow::Manager | Allow::ManagerOrCli | Allow::Observers,
                    Role::Manager
                ) | (
                    Allow::Cli | Allow::ManagerOrCli | Allow::Observers,
                    Role::Cli
                ) | (Allow::Observers, Role::Ingress)
                    | (Allow::Workers, Role::Worker { .. })
            )
    }
}

impl tonic::service::Interceptor for Check {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let who = caller(&request)?;
        if self.admits(&who) {
            Ok(request)
        } else {
            let allowed = match self.allow {
                Allow::Manager => "the manager",
                Allow::ManagerOrCli => "the manager and weft's commands",
                Allow::Cli => "weft's commands (weft status, rollout, rollback)",
                Allow::Workers => "the deployment's workers",
                Allow::Observers => "the manager, weft's commands and the app's ingress",
            };
            Err(Status::permission_denied(format!(
                "{who} may not call this service; it serves {allowed} of app '{}' only",
                crate::telemetry::logs::escaped(&self.app)
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_certificate_names_the_same_identity_without_a_parse() {
        use crate::rpc::identity::Authority;
        let ca = Authority::generate("shop").unwrap();
        let der = |identity: &Identity| {
            let pem = ca.issue(identity).unwrap().cert_pem;
            rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
                .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
                .unwrap()
        };
        let (back, front) = (
            Identity::worker("shop", "3f2a9c01b7d4e512", "back"),
            Identity::worker("shop", "3f2a9c01b7d4e512", "front"),
        );
        let (a, b) = (der(&back), der(&front));
        let known = KnownCertificates(std::sync::Mutex::new(None));
        let first = known.identity_of(&a).unwrap();
        assert_eq!(*first, back);
        assert!(
            Arc::ptr_eq(&first, &known.identity_of(&a).unwrap()),
            "cached"
        );
        assert_eq!(*known.identity_of(&b).unwrap(), front);
        assert!(known.identity_of(b"not a certificate").is_none());
    }

    #[test]
    fn each_service_admits_only_its_callers() {
        let worker = Identity::worker("shop", "3f2a9c01b7d4e512", "back");
        let check = |allow| Check {
            app: "shop".into(),
            allow,
        };
        assert!(check(Allow::Workers).admits(&worker));
        assert!(!check(Allow::Manager).admits(&worker));
        assert!(!check(Allow::Cli).admits(&worker));
        assert!(check(Allow::Manager).admits(&Identity::manager("shop")));
        assert!(!check(Allow::Manager).admits(&Identity::manager("other")));
        assert!(!check(Allow::Manager).admits(&Identity::cli("shop")));
        assert!(check(Allow::ManagerOrCli).admits(&Identity::cli("shop")));
        assert!(check(Allow::Cli).admits(&Identity::cli("shop")));
        assert!(!check(Allow::Workers).admits(&Identity::cli("shop")));
        let ingress = Identity::ingress("shop");
        assert!(check(Allow::Observers).admits(&ingress));
        assert!(!check(Allow::ManagerOrCli).admits(&ingress));
        assert!(!check(Allow::Workers).admits(&ingress));
        assert!(!check(Allow::Observers).admits(&worker));
    }
}
