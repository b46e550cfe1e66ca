//! `grpc.health.v1`: what a worker says of itself, and how its peers ask.
//!
//! Kubernetes' native gRPC probes and weft's [`discovery`](crate::discovery)
//! speak the standard health protocol. Peers ask over the worker's mutual
//! TLS port; the kubelet, which cannot present a certificate, asks a
//! probe-only plain-text port that serves nothing else. The answer says
//! nothing but whether the worker serves.
//!
//! - The overall status (service `""`) is the readiness: `SERVING` once the
//!   worker serves its group, `NOT_SERVING` before and from its drain on.
//! - [`LIVENESS`] is `SERVING` for as long as the process answers at all.

use super::{Channel, Dialer, Peer};
use crate::discovery::Probe;
use crate::version::Version;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use tonic_health::ServingStatus;
use tonic_health::pb::health_check_response::ServingStatus as Answer;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

/// The health service a liveness probe asks.
pub const LIVENESS: &str = "weft.liveness";

/// A worker's health, as it reports it.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
}

impl Health {
    /// Alive, not ready.
    pub async fn new() -> Health {
        let reporter = HealthReporter::new();
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        reporter
            .set_service_status(LIVENESS, ServingStatus::Serving)
            .await;
        Health { reporter }
    }

    /// Says whether the worker is ready for calls and requests.
    pub async fn set_ready(&self, ready: bool) {
        let status = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
    }

    /// The gRPC service that answers for it.
    pub fn service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService::from_health_reporter(self.reporter.clone()))
    }

    /// Serves it alone on `socket`, in plain text, for probes that cannot
    /// present a certificate (Kubernetes' kubelet), until the task is
    /// dropped or aborted.
    pub fn serve_probes(&self, socket: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let health = self.service();
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(socket))
                .await;
            if let Err(e) = served {
                tracing::error!("the probe port failed: {e}");
            }
        })
    }
}

/// Asks peers' `grpc.health.v1` whether they serve, over one kept channel
/// per peer.
pub struct HealthProbe {
    dialer: Dialer,
    /// The peers' version, which they must prove.
    version: Version,
    channels: Mutex<HashMap<String, Channel>>,
}

impl HealthProbe {
    /// A probe of workers of `version`, dialed by `dialer`.
    pub fn new(dialer: Dialer, version: Version) -> HealthProbe {
        HealthProbe {
            dialer,
            version,
            channels: Mutex::default(),
        }
    }

    fn channel(&self, address: &str) -> Option<Channel> {
        let mut channels = self.channels.lock().expect("probe channels");
        if let Some(channel) = channels.get(address) {
            return Some(channel.clone());
        }
        let channel = self
            .dialer
            .channel(address, Peer::Worker(&self.version))
            .ok()?;
        channels.insert(address.to_string(), channel.clone());
        Some(channel)
    }
}

impl Probe for HealthProbe {
    fn healthy(&self, address: &str) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        let channel = self.channel(address);
        Box::pin(async move {
            let Some(channel) = channel else {
                return false;
            };
            let request = tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            };
            match HealthClient::new(channel).check(request).await {
                Ok(reply) => reply.get_ref().status == Answer::Serving as i32,
                Err(_) => false,
            }
        })
    }
}
