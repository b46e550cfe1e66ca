//! The manager's gRPC service (`weft.v1.Manager`), which `weft rollout`,
//! `weft rollback` and `weft status` call with the CLI's certificate.

use super::manager::{Events, Manager};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use weft_proto::v1::manager_server;
use weft_proto::v1::{RolloutEvent, RolloutRequest, StatusReply, StatusRequest};

/// The service, over the manager it drives.
pub(crate) struct ManagerService {
    pub(crate) manager: Arc<Manager>,
}

type EventStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<RolloutEvent, Status>> + Send>>;

#[tonic::async_trait]
impl manager_server::Manager for ManagerService {
    type RolloutStream = EventStream;

    async fn rollout(
        &self,
        request: Request<RolloutRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        // The rollout runs on its own: a client that goes away does not
        // stop it half-way.
        let manager = self.manager.clone();
        tokio::spawn(manager.rollout(request.into_inner(), Events(sender)));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let mut state = self.manager.status();
        state.methods = self.manager.method_rates().await;
        state.keyvalue = self.manager.store_state();
        let json = state.to_json();
        Ok(Response::new(StatusReply { json }))
    }
}
