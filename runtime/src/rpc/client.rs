//! The caller's side of a cross-process call.
//!
//! A [`Replicas`] is the set of channels to one group's replicas; calls take
//! them in turn. It is the gRPC [`Transport`] of a
//! [`RemoteFunc`](crate::call::RemoteFunc), which encodes the arguments and
//! decodes the results: a replica takes the encoded arguments with the
//! caller's remaining deadline and sends back the encoded results.
//!
//! A call that passes handles goes to the replica that keeps their
//! resources, and nowhere else: if that replica is gone, the call fails and
//! says so (its resources went with it).
//!
//! A call is made at most once. It is tried on another replica only when the
//! connection was refused, or the worker answered that it is not serving
//! yet, because then it surely never reached a callee; when every replica
//! refuses (their workers are restarting), it waits for one, up to
//! [`RESTART_WAIT`] and within the caller's deadline.

use super::flow;
use super::{Channel, Dialer, Peer};
use crate::call::{Done, Flowing, RemoteFunc, Reply, Sent, Target, Transport};
use crate::discovery::Peers;
use crate::link::pipes::End;
use crate::telemetry::trace;
use crate::version::Version;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_stream::wrappers::ReceiverStream;
use weft_proto::v1::invoke_client::InvokeClient;
use weft_proto::v1::{
    CallRequest, FlowCall, FlowDown, FlowUp, ReleaseRequest, RenewRequest, flow_down, flow_up,
};

/// How long a call waits for a replica of its callee's group to take it
/// while all of them refuse (they are restarting).
pub const RESTART_WAIT: Duration = Duration::from_secs(3);

/// Channels to the replicas of one group, taken in turn. The set of
/// replicas is live ([`Peers`]); a channel is made for each new address and
/// kept while the address stays.
pub struct Replicas {
    peers: Peers,
    dialer: Dialer,
    /// The version the replicas must prove they run.
    version: Version,
    /// The addresses the channels were made for, and the channels.
    channels: Mutex<Channels>,
    next: AtomicUsize,
}

/// A set of replica addresses, and a channel to each of them.
type Channels = (Arc<[String]>, Arc<[(String, Channel)]>);

impl Replicas {
    /// Channels to whichever replicas of `version` `peers` names, made by
    /// `dialer`; nothing connects until the first call.
    pub fn new(peers: Peers, dialer: &Dialer, version: &Version) -> Replicas {
        Replicas {
            peers,
            dialer: dialer.clone(),
            version: version.clone(),
            channels: Mutex::new((Arc::from(Vec::new()), Arc::from(Vec::new()))),
            next: AtomicUsize::new(0),
        }
    }

    /// The replicas in the order this call should try them: the current
    /// channels, and where in them to start.
    fn in_turn(&self) -> (Arc<[(String, Channel)]>, usize) {
        let current = self.peers.current();
        let channels = {
            let mut cached = self.channels.lock().expect("replica channels");
            if !Arc::ptr_eq(&cached.0, &current) {
                let kept: Vec<(String, Channel)> = current
                    .iter()
                    .filter_map(|address| {
                        let known = cached.1.iter().find(|(a, _)| a == address);
                        match known {
                            Some(c) => Some(c.clone()),
                            None => match self.dialer.channel(address, Peer::Worker(&self.version))
                            {
                                Ok(channel) => Some((address.clone(), channel)),
                                Err(e) => {
                                    tracing::warn!("replica {address} is skipped: {e}");
                                    None
                                }
                            },
                        }
                    })
                    .collect();
                *cached = (current, Arc::from(kept));
            }
            cached.1.clone()
        };
        (channels, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

impl Transport for Replicas {
    fn send<'a>(
        &'a self,
        func: &'a RemoteFunc,
        deadline: Instant,
        payload: bytes::Bytes,
        target: Target<'a>,
    ) -> Sent<'a> {
        match target.address {
            Some(address) => Box::pin(self.send_to(address, func, deadline, payload, target)),
            None => Box::pin(self.send_call(func, deadline, payload, target)),
        }
    }

    fn send_flowing<'a>(
        &'a self,
        func: &'a RemoteFunc,
        deadline: Instant,
        payload: bytes::Bytes,
        ends: Vec<End>,
    ) -> Flowing<'a> {
        Box::pin(self.flow(func, deadline, payload, ends))
    }

    fn renew<'a>(&'a self, address: &'a str, holder: u64) -> Done<'a, u64> {
        Box::pin(async move {
            let mut client = self.client(address)?;
            let request = RenewRequest {
                version: self.version.to_string(),
                holder,
            };
            let reply = client.renew(request).await.map_err(|status| {
                wasmtime::format_err!("renewing handles at {address}: {}", status.message())
            })?;
            Ok(reply.into_inner().kept)
        })
    }

    fn release<'a>(&'a self, address: &'a str, holder: u64, handles: Vec<u64>) -> Done<'a, ()> {
        Box::pin(async move {
            let mut client = self.client(address)?;
            let request = ReleaseRequest {
                version: self.version.to_string(),
                holder,
                handles,
            };
            client.release(request).await.map_err(|status| {
                wasmtime::format_err!("dropping handles at {address}: {}", status.message())
            })?;
            Ok(())
        })
    }
}

impl Replicas {
    /// A client of the replica at `address`, while it is one of the group's.
    fn client(&self, address: &str) -> wasmtime::Result<InvokeClient<Channel>> {
        let (replicas, _) = self.in_turn();
        let (_, channel) = replicas.iter().find(|(a, _)| a == address).ok_or_else(|| {
            wasmtime::format_err!(
                "the replica at {address} is no longer one of its group's (it stopped or was \
                 replaced)"
            )
        })?;
        Ok(InvokeClient::new(channel.clone())
            .max_decoding_message_size(super::MAX_MESSAGE)
            .max_encoding_message_size(super::MAX_MESSAGE))
    }

    /// Sends a call of `func` to the replica at `address` only: the one
    /// that keeps the resources of its handles.
    async fn send_to(
        &self,
        address: &str,
        func: &RemoteFunc,
        deadline: Instant,
        payload: bytes::Bytes,
        target: Target<'_>,
    ) -> wasmtime::Result<Reply> {
        let gone = |why: String| {
            wasmtime::format_err!(
                "call to {} failed: the replica at {address} that keeps the resources of its \
                 handles is gone ({why}); those handles are no longer usable: drop them and \
                 make new ones",
                func.label()
            )
        };
        let mut client = self.client(address).map_err(|e| gone(format!("{e}")))?;
        let request = self.request(func, deadline, payload, target)?;
        match client.call(request).await {
            Ok(reply) => Ok(reply_of(address, reply.into_inner())),
            Err(status) if super::never_reached(&status) => Err(gone(status.message().into())),
            Err(status) => Err(wasmtime::format_err!(
                "call to {} at {address} failed: {:?}: {}",
                func.label(),
                status.code(),
                status.message()
            )),
        }
    }

    /// Sends a call whose values carry streams or futures over the
    /// `Invoke.Flow` RPC, to the next replica in turn. It is not tried
    /// elsewhere if that replica refuses: its ends may have started to
    /// flow.
    async fn flow(
        &self,
        func: &RemoteFunc,
        deadline: Instant,
        payload: bytes::Bytes,
        ends: Vec<End>,
    ) -> wasmtime::Result<(Reply, Vec<End>)> {
        let (replicas, start) = self.in_turn();
        let Some((address, channel)) = replicas.get(start % replicas.len().max(1)).cloned() else {
            return Err(wasmtime::format_err!(
                "call to {} failed: no healthy replica of its group is known",
                func.label()
            ));
        };
        let call = self.request(func, deadline, payload, Target::default())?;
        let (metadata, _, call) = call.into_parts();
        let (up, up_rx) = tokio::sync::mpsc::channel(crate::link::pipes::WINDOW);
        let first = FlowUp {
            part: Some(flow_up::Part::Call(FlowCall {
                request: Some(call),
                ends: flow::kinds(&ends),
            })),
        };
        up.send(first).await.expect("the receiver is here");
        let mut stops = flow::send_ends(ends, up.clone(), |frame| FlowUp {
            part: Some(flow_up::Part::Frame(frame)),
        });
        let mut request =
            tonic::Request::from_parts(metadata, Default::default(), ReceiverStream::new(up_rx));
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        let mut client = InvokeClient::new(channel)
            .max_decoding_message_size(super::MAX_MESSAGE)
            .max_encoding_message_size(super::MAX_MESSAGE);
        let failed = |status: tonic::Status| {
            wasmtime::format_err!(
                "call to {} at {address} failed: {:?}: {}",
                func.label(),
                status.code(),
                status.message()
            )
        };
        let mut down = client.flow(request).await.map_err(failed)?.into_inner();
        let reply = match down.message().await.map_err(failed)? {
            Some(FlowDown {
                part: Some(flow_down::Part::Reply(reply)),
            }) => reply,
            _ => {
                return Err(wasmtime::format_err!(
                    "call to {} at {address} failed: the replica did not answer with a reply",
                    func.label()
                ));
            }
        };
        let (mut incoming, result_ends) = flow::Incoming::open(&reply.ends);
        let reply = reply_of(&address, reply.reply.unwrap_or_default());
        // The results' ends arrive while the callee writes them; the
        // parameters' ends go on going up meanwhile.
        tokio::spawn(async move {
            while let Ok(Some(message)) = down.message().await {
                match message.part {
                    Some(flow_down::Part::Frame(frame)) if frame.dropped => stops.stop(frame.end),
                    Some(flow_down::Part::Frame(frame)) => {
                        let end = frame.end;
                        if incoming.deliver(frame).await {
                            let dropped = FlowUp {
                                part: Some(flow_up::Part::Frame(flow::dropped(end))),
                            };
                            let _ = up.send(dropped).await;
                        }
                    }
                    _ => {}
                }
            }
        });
        Ok((reply, result_ends))
    }

    /// The request of one call of `func`, with the time left to `deadline`.
    fn request(
        &self,
        func: &RemoteFunc,
        deadline: Instant,
        payload: bytes::Bytes,
        target: Target<'_>,
    ) -> wasmtime::Result<tonic::Request<CallRequest>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(wasmtime::format_err!(
                "call to {} failed: the caller's deadline passed before it was sent",
                func.label()
            ));
        }
        let mut request = tonic::Request::new(CallRequest {
            version: func.version.to_string(),
            caller: func.caller.clone(),
            target: func.target.clone(),
            interface: func.interface.clone(),
            function: func.function.clone(),
            fingerprint: func.fingerprint.clone(),
            payload,
            session: target.session,
            holder: target.holder,
        });
        request.set_timeout(left);
        // The caller's span (or the request's trace, untraced) goes along.
        trace::inject(
            &opentelemetry::Context::current(),
            &mut trace::Metadata(request.metadata_mut()),
        );
        Ok(request)
    }

    /// Sends the encoded arguments of a call of `func` to a replica: the
    /// replica's address and the encoded results.
    async fn send_call(
        &self,
        func: &RemoteFunc,
        deadline: Instant,
        payload: bytes::Bytes,
        target: Target<'_>,
    ) -> wasmtime::Result<Reply> {
        let mut last_refusal = None;
        // While there is no healthy replica, or every replica refuses (their
        // workers are restarting), the call waits for one, up to
        // RESTART_WAIT: the call never ran, and a restart takes a fraction
        // of a second.
        let give_up = deadline.min(Instant::now() + RESTART_WAIT);
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(done) = self
                .try_each(func, deadline, &payload, target, &mut last_refusal)
                .await
            {
                return done;
            }
            if Instant::now() + pause >= give_up {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
        Err(wasmtime::format_err!(
            "call to {} failed: no replica took it within {RESTART_WAIT:?} ({}); its \
             workers may be restarting",
            func.label(),
            last_refusal.unwrap_or_default()
        ))
    }

    /// Tries each replica in turn: the call's outcome, or `None` when
    /// every one refused it.
    async fn try_each(
        &self,
        func: &RemoteFunc,
        deadline: Instant,
        payload: &bytes::Bytes,
        target: Target<'_>,
        last_refusal: &mut Option<String>,
    ) -> Option<wasmtime::Result<Reply>> {
        let (replicas, start) = self.in_turn();
        if replicas.is_empty() {
            *last_refusal = Some("no healthy replica is known".into());
        }
        for i in 0..replicas.len() {
            let (address, channel) = &replicas[(start + i) % replicas.len()];
            let request = match self.request(func, deadline, payload.clone(), target) {
                Ok(request) => request,
                Err(e) => return Some(Err(e)),
            };
            let mut client = InvokeClient::new(channel.clone())
                .max_decoding_message_size(super::MAX_MESSAGE)
                .max_encoding_message_size(super::MAX_MESSAGE);
            match client.call(request).await {
                Ok(reply) => return Some(Ok(reply_of(address, reply.into_inner()))),
                Err(status) if super::never_reached(&status) => {
                    tracing::debug!("{address} did not take the call; trying the next replica");
                    *last_refusal = Some(format!("last tried {address}"));
                }
                Err(status) => {
                    return Some(Err(wasmtime::format_err!(
                        "call to {} at {address} failed: {:?}: {}",
                        func.label(),
                        status.code(),
                        status.message()
                    )));
                }
            }
        }
        None
    }
}

/// What a call's reply from `address` says.
fn reply_of(address: &str, reply: weft_proto::v1::CallReply) -> Reply {
    Reply {
        address: address.to_string(),
        payload: reply.payload,
        session: reply.session,
        handles: reply
            .handles
            .into_iter()
            .map(|h| (h.interface, h.resource))
            .collect(),
    }
}
