//! Calls between processes: gRPC over `proto/weft.proto`.
//!
//! - [`client`]: what a forwarder does when its callee is in another group:
//!   encode the arguments, send them to one replica of the callee's group,
//!   decode the results. Channels are shared and reused.
//! - [`server`]: a worker's `Invoke` service, which decodes a call, checks
//!   its version and type fingerprint, and runs it in a borrowed instance.
//! - [`store`]: the manager's key-value store served to workers, and the
//!   [`KeyValueStore`](crate::kv::KeyValueStore) backend that uses it.
//! - [`health`]: `grpc.health.v1`, which workers serve and peers and
//!   Kubernetes ask.
//! - [`connect`]: the one [`Dialer`] that makes every client channel, and
//!   the [`ServerSecurity`](connect::ServerSecurity) every server starts from.
//! - [`identity`]: the deployment's CA, and the certificate that names
//!   each process (a worker's group and version, the manager, the CLI).
//! - [`calibrate`]: what a call between processes costs on this machine,
//!   timed over a loopback echo, for `weft plan`.
//! - [`authorize`]: which calls the app's call graph allows, and which
//!   buckets each group may use (pure).

pub mod authorize;
pub mod calibrate;
pub mod client;
pub mod connect;
mod flow;
pub mod health;
pub mod identity;
pub mod server;
pub mod store;

pub use connect::{Channel, Dialer, Peer};

/// The largest message either side sends or accepts. Values as large as a
/// component's memory could be, but a call that moves more than this should
/// colocate its components instead.
pub const MAX_MESSAGE: usize = 256 << 20;

/// Whether a failed call surely never reached a callee, so that it may be
/// tried elsewhere: the connection was refused, or the worker said it was
/// not serving yet.
pub fn never_reached(status: &tonic::Status) -> bool {
    if status
        .metadata()
        .contains_key(weft_proto::NOT_SERVING_HEADER)
    {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calls_that_surely_never_ran_may_move() {
        assert!(!never_reached(&tonic::Status::unavailable(
            "connection reset"
        )));
        assert!(!never_reached(&tonic::Status::internal(
            "the callee trapped"
        )));
        let mut not_serving = tonic::Status::unavailable("no assignment yet");
        not_serving
            .metadata_mut()
            .insert(weft_proto::NOT_SERVING_HEADER, "1".parse().unwrap());
        assert!(never_reached(&not_serving));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(never_reached(&tonic::Status::from_error(Box::new(refused))));
    }
}
