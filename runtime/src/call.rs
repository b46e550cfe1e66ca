//! A call of a function in another process, apart from how it travels.
//!
//! A [`RemoteFunc`] is one imported function whose callee is in another
//! group: what the caller knows of it (the callee, its version, its types
//! and their fingerprint), and how its values become bytes and back
//! ([`crate::codec`], on the `Val` path or the typed one). A [`Transport`]
//! carries the encoded arguments to a process that runs the callee and
//! brings back the encoded results; `rpc` gives the gRPC one
//! ([`Replicas`](crate::rpc::client::Replicas)). Linking needs only this
//! module, so the in-process core does not depend on the RPC stack.

use crate::codec::typed::WireList;
use crate::codec::{self, FuncTypes};
use crate::link::pipes::End;
use crate::version::Version;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::Val;

/// What a call brought back.
#[derive(Debug, Default)]
pub struct Reply {
    /// The replica that ran it (for errors, and the handles it returned).
    pub address: String,
    /// Its encoded results.
    pub payload: bytes::Bytes,
    /// The pinned instance that keeps the resources of the handles in the
    /// results (0 when there are none).
    pub session: u64,
    /// The resource type of each handle in the results, in order: its
    /// interface and name.
    pub handles: Vec<(String, String)>,
}

/// A call's outcome, once sent.
pub type Sent<'a> = Pin<Box<dyn Future<Output = wasmtime::Result<Reply>> + Send + 'a>>;

/// Where a call must run, when it passes handles: the replica and the
/// pinned instance that keep their resources.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    /// The replica, or `None` for whichever takes the call.
    pub address: Option<&'a str>,
    /// The pinned instance there (0: any).
    pub session: u64,
    /// The calling process, which renews the handles the call returns.
    pub holder: u64,
}

/// A call with streams or futures, once sent: its reply, and the ends of
/// its results.
pub type Flowing<'a> =
    Pin<Box<dyn Future<Output = wasmtime::Result<(Reply, Vec<End>)>> + Send + 'a>>;

/// What a transport's bookkeeping calls return.
pub type Done<'a, T> = Pin<Box<dyn Future<Output = wasmtime::Result<T>> + Send + 'a>>;

/// Carries one call's encoded arguments to a process that runs its callee.
pub trait Transport: Send + Sync {
    /// Sends `payload`, the encoded arguments of a call of `func`, which
    /// must end by `deadline`, to `target`.
    fn send<'a>(
        &'a self,
        func: &'a RemoteFunc,
        deadline: Instant,
        payload: bytes::Bytes,
        target: Target<'a>,
    ) -> Sent<'a>;

    /// Sends `payload`, the encoded arguments of a call of `func` whose
    /// values carry streams or futures, then the items of `ends`, the ends
    /// its arguments carry; the reply comes with the ends of the results,
    /// whose items follow while the callee writes them.
    fn send_flowing<'a>(
        &'a self,
        func: &'a RemoteFunc,
        deadline: Instant,
        payload: bytes::Bytes,
        ends: Vec<End>,
    ) -> Flowing<'a>;

    /// Tells the replica at `address` that `holder` still holds its
    /// handles there; returns how many it keeps.
    fn renew<'a>(&'a self, address: &'a str, holder: u64) -> Done<'a, u64>;

    /// Drops `handles`, which `holder` held at the replica at `address`.
    fn release<'a>(&'a self, address: &'a str, holder: u64, handles: Vec<u64>) -> Done<'a, ()>;
}

/// One imported function served by another group.
pub struct RemoteFunc {
    /// What carries its calls to the callee's group.
    pub transport: Arc<dyn Transport>,
    /// The deployment's version.
    pub version: Version,
    /// The calling component.
    pub caller: String,
    /// The component that exports the function.
    pub target: String,
    /// The exported interface's full name.
    pub interface: String,
    /// The function's name.
    pub function: String,
    /// The fingerprint of the function's type, as the caller sees it.
    pub fingerprint: String,
    /// Its parameter and result types.
    pub types: FuncTypes,
}

impl RemoteFunc {
    /// Calls the function with `params`, writing `results`; `deadline` is
    /// when the caller's own call must end.
    pub async fn call(
        &self,
        deadline: Instant,
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        self.call_at(deadline, params, results, Target::default())
            .await
            .map(|_| ())
    }

    /// Like [`RemoteFunc::call`], at `target`; returns the reply, with its
    /// payload decoded into `results` (a handle there is its number).
    pub async fn call_at(
        &self,
        deadline: Instant,
        params: &[Val],
        results: &mut [Val],
        target: Target<'_>,
    ) -> wasmtime::Result<Reply> {
        let mut payload = Vec::new();
        codec::encode_all(&self.types.params, params, &mut payload)
            .map_err(|e| wasmtime::format_err!("call to {} failed: {e}", self.label()))?;
        let reply = self
            .transport
            .send(self, deadline, payload.into(), target)
            .await?;
        let values = codec::decode_all(&self.types.results, &reply.payload)
            .map_err(|e| self.undecodable(&reply.address, e))?;
        for (slot, value) in results.iter_mut().zip(values) {
            *slot = value;
        }
        Ok(reply)
    }

    /// Calls the function with `params`, whose streams and futures are
    /// `ends`: the results, with placeholders where their streams and
    /// futures go, and those ends.
    pub(crate) async fn call_flowing(
        &self,
        deadline: Instant,
        params: &[Val],
        ends: Vec<End>,
    ) -> wasmtime::Result<(Vec<Val>, Vec<End>)> {
        let mut payload = Vec::new();
        codec::encode_all(&self.types.params, params, &mut payload)
            .map_err(|e| wasmtime::format_err!("call to {} failed: {e}", self.label()))?;
        let (reply, ends) = self
            .transport
            .send_flowing(self, deadline, payload.into(), ends)
            .await?;
        let values = codec::decode_all(&self.types.results, &reply.payload)
            .map_err(|e| self.undecodable(&reply.address, e))?;
        Ok((values, ends))
    }

    /// Calls the function with typed values: encoded from, and decoded
    /// into, Rust types, in the same format as [`RemoteFunc::call`].
    pub(crate) async fn call_typed<P: WireList, R: WireList>(
        &self,
        deadline: Instant,
        params: &P,
    ) -> wasmtime::Result<R> {
        let reply = self
            .transport
            .send(self, deadline, params.encode().into(), Target::default())
            .await?;
        R::decode(&reply.payload).map_err(|e| self.undecodable(&reply.address, e))
    }

    /// "greeter: demo:hello/greeter@0.1.0#greet (in another process)".
    pub(crate) fn label(&self) -> String {
        format!(
            "{}: {}#{} (in another process)",
            self.target, self.interface, self.function
        )
    }

    fn undecodable(&self, address: &str, e: codec::DecodeError) -> wasmtime::Error {
        wasmtime::format_err!(
            "call to {} failed: {address} answered with results that do not decode: {e}",
            self.label()
        )
    }
}
