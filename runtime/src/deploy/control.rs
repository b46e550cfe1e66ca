//! The manager's gRPC service (`weft.v1.Manager`), which `weft rollout`,
//! `weft rollback` and `weft status` call with the CLI's certificate.
//!
//! It serves any [`Deployment`]: the manager implements it, and this module
//! knows nothing else of the manager.

use super::driver::Boxed;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use weft_proto::v1::manager_server;
use weft_proto::v1::rollout_event::Outcome;
use weft_proto::v1::{
    MetricsReply, MetricsRequest, RolloutEvent, RolloutRequest, StatusReply, StatusRequest,
};

/// What the service drives: a running deployment.
pub(crate) trait Deployment: Send + Sync + 'static {
    /// Runs one rollout (or rollback) as `request` asks, telling `events`
    /// how it goes; the last event says how it ended.
    fn rollout(self: Arc<Self>, request: RolloutRequest, events: Events) -> Boxed<'static, ()>;
    /// The deployment's state as `weft status --json` prints it.
    fn status_json(&self) -> Boxed<'_, String>;
    /// Every count of every worker, added up.
    fn metrics(&self) -> Boxed<'_, crate::telemetry::metrics::Snapshot>;
}

/// Where a rollout's progress goes: the `weft rollout` that asked for it,
/// and the manager's own output.
pub(crate) struct Events(pub(crate) mpsc::Sender<Result<RolloutEvent, Status>>);

impl Events {
    /// Says `line` on the manager's output and to the client, if it still
    /// listens.
    pub(crate) async fn say(&self, outcome: Outcome, line: String) {
        say!("weft: {line}");
        // The client may have gone (Ctrl-C); the rollout goes on without it.
        let _ = self
            .0
            .send(Ok(RolloutEvent {
                line,
                outcome: outcome.into(),
            }))
            .await;
    }
}

/// The service, over the deployment it drives.
pub(crate) struct ManagerService<D> {
    pub(crate) deployment: Arc<D>,
}

type EventStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<RolloutEvent, Status>> + Send>>;

#[tonic::async_trait]
impl<D: Deployment> manager_server::Manager for ManagerService<D> {
    type RolloutStream = EventStream;

    async fn rollout(
        &self,
        request: Request<RolloutRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let (sender, receiver) = mpsc::channel(64);
        // The rollout runs on its own: a client that goes away does not
        // stop it half-way.
        let deployment = self.deployment.clone();
        tokio::spawn(deployment.rollout(request.into_inner(), Events(sender)));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let json = self.deployment.status_json().await;
        Ok(Response::new(StatusReply { json }))
    }

    async fn metrics(&self, _: Request<MetricsRequest>) -> Result<Response<MetricsReply>, Status> {
        let snapshot = self.deployment.metrics().await;
        Ok(Response::new(crate::telemetry::wire::to_reply(&snapshot)))
    }
}
