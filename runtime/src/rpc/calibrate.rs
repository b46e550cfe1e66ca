//! What a call between weft's processes costs on this machine, for
//! `weft plan`'s cost model: a loopback echo over the transport every such
//! call takes (mutual TLS with the deployment's kind of certificates,
//! HTTP/2, the `Invoke.Call` message), timed in this process with an empty
//! payload and with a large one.
//!
//! The fixed cost is the empty call's median; the cost of a byte is the
//! difference between the two medians over the payload's size, counted
//! twice (the echo carries it both ways). What the callee's guest does is
//! not in it: that costs the same wherever the callee runs.

use super::connect::{Dialer, Peer, ServerSecurity};
use super::identity::{Authority, Identity};
use crate::version::Version;
use std::time::{Duration, Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use weft_placer::Costs;
use weft_proto::v1::invoke_client::InvokeClient;
use weft_proto::v1::invoke_server::{Invoke, InvokeServer};
use weft_proto::v1::{
    CallReply, CallRequest, FlowDown, FlowUp, ReleaseReply, ReleaseRequest, RenewReply,
    RenewRequest,
};

/// The large payload's size.
const LARGE: usize = 64 << 10;
/// Calls timed per size, after as many to warm up.
const ROUNDS: usize = 100;

/// An `Invoke` that answers each call with its own payload.
struct Echo;

#[tonic::async_trait]
impl Invoke for Echo {
    type FlowStream = ReceiverStream<Result<FlowDown, Status>>;

    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallReply>, Status> {
        Ok(Response::new(CallReply {
            payload: request.into_inner().payload,
            ..CallReply::default()
        }))
    }

    async fn renew(&self, _: Request<RenewRequest>) -> Result<Response<RenewReply>, Status> {
        Err(Status::unimplemented(
            "the calibration echo answers Call only",
        ))
    }

    async fn release(&self, _: Request<ReleaseRequest>) -> Result<Response<ReleaseReply>, Status> {
        Err(Status::unimplemented(
            "the calibration echo answers Call only",
        ))
    }

    async fn flow(
        &self,
        _: Request<tonic::Streaming<FlowUp>>,
    ) -> Result<Response<Self::FlowStream>, Status> {
        Err(Status::unimplemented(
            "the calibration echo answers Call only",
        ))
    }
}

/// A task aborted when this is dropped: the echo server stops however
/// the measurement ends.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Measures [`Costs`] on this machine; takes a few hundred milliseconds.
pub async fn measure() -> anyhow::Result<Costs> {
    let app = "weft-calibration";
    let version = Version::parse("0000000000000000").expect("a well-formed version");
    let authority = Authority::generate(app)?;
    let identity = Identity::worker(app, version.as_str(), "echo");
    let server = ServerSecurity::new(authority.issue(&identity)?);
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = socket.local_addr()?;
    let serving = AbortOnDrop(tokio::spawn(
        server
            .builder()?
            .add_service(InvokeServer::new(Echo).max_decoding_message_size(super::MAX_MESSAGE))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(socket).with_nodelay(Some(true)),
            ),
    ));
    let dialer = Dialer::new(authority.issue(&identity)?);
    let channel = dialer
        .endpoint(&address.to_string(), Peer::Worker(&version))?
        .connect()
        .await?;
    let mut client = InvokeClient::new(channel).max_decoding_message_size(super::MAX_MESSAGE);
    let mut median = async |payload: Vec<u8>| -> anyhow::Result<Duration> {
        let request = CallRequest {
            version: version.as_str().to_string(),
            caller: "calibration".into(),
            target: "echo".into(),
            interface: "weft:calibration/echo".into(),
            function: "echo".into(),
            fingerprint: "0".repeat(16),
            payload: payload.into(),
            session: 0,
            holder: 1,
        };
        let mut times = Vec::with_capacity(ROUNDS);
        for round in 0..2 * ROUNDS {
            let start = Instant::now();
            client.call(request.clone()).await?;
            if round >= ROUNDS {
                times.push(start.elapsed());
            }
        }
        times.sort_unstable();
        Ok(times[times.len() / 2])
    };
    let empty = median(Vec::new()).await?;
    let large = median(vec![7; LARGE]).await?;
    drop(serving);
    let per_byte = large.saturating_sub(empty).as_secs_f64() * 1e9 / (2 * LARGE) as f64;
    Ok(Costs {
        per_call_us: empty.as_secs_f64() * 1e6,
        per_byte_ns: per_byte,
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_loopback_call_costs_something_and_bytes_cost_more() {
        let costs = super::measure().await.unwrap();
        // Any real transport takes microseconds, not nothing, and not a
        // second; moving 64 KiB each way costs more than moving nothing.
        assert!(
            costs.per_call_us > 1.0 && costs.per_call_us < 1e6,
            "{costs:?}"
        );
        assert!(costs.per_byte_ns > 0.0, "{costs:?}");
    }
}
