//! Calls made as a prober on the same network would make them: raw
//! `Invoke`, `Store`, `Control` and `Manager` requests, with whatever
//! certificate the test holds (or none), answered with the status the
//! server gave.

use std::time::Duration;
use tonic::Status;
use weft_proto::v1::control_client::ControlClient;
use weft_proto::v1::invoke_client::InvokeClient;
use weft_proto::v1::manager_client::ManagerClient;
use weft_proto::v1::store_client::StoreClient;
use weft_proto::v1::{CallRequest, HealthRequest, KeyRequest, SetRequest, StatusRequest};
use weft_runtime::rpc::{Dialer, Peer};
use weft_runtime::version::Version;

fn block_on<T>(work: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(20), work)
                .await
                .expect("the call was answered within 20 s")
        })
}

/// `Invoke.Call` of `call` on the worker of `version` at `address`.
pub fn invoke(
    dialer: &Dialer,
    address: &str,
    version: &str,
    call: CallRequest,
) -> Result<Vec<u8>, Status> {
    let version = Version::parse(version).expect("a version");
    block_on(async move {
        // Made inside the runtime, whose reactor the channel's task needs.
        let channel = dialer
            .channel(address, Peer::Worker(&version))
            .expect("a channel");
        let reply = InvokeClient::new(channel).call(call).await?;
        Ok(reply.into_inner().payload.to_vec())
    })
}

/// A call of hello's `greet` as component `caller`, with a fingerprint that
/// no function has: one that passes every check before the type's fails
/// with `FailedPrecondition`.
pub fn greet_call(version: &str, caller: &str) -> CallRequest {
    CallRequest {
        version: version.into(),
        caller: caller.into(),
        target: "greeter".into(),
        interface: "demo:hello/greeter@0.1.0".into(),
        function: "greet".into(),
        fingerprint: "not-a-fingerprint".into(),
        ..CallRequest::default()
    }
}

/// [`greet_call`] from `frontend`, sent to the greeter of `version` at
/// `address`; the status it was refused with.
pub fn greet_as(dialer: &Dialer, address: &str, version: &str) -> Status {
    invoke(dialer, address, version, greet_call(version, "frontend"))
        .expect_err("the call must be refused")
}

/// `Store.Get` of `bucket`/`key` on the manager at `address`, as a worker of
/// `version` sends it.
pub fn store_get(
    dialer: &Dialer,
    address: &str,
    version: &str,
    bucket: &str,
) -> Result<Option<Vec<u8>>, Status> {
    let mut request = tonic::Request::new(KeyRequest {
        bucket: bucket.into(),
        key: "apples".into(),
    });
    request
        .metadata_mut()
        .insert(weft_proto::VERSION_HEADER, version.parse().expect("ASCII"));
    block_on(async move {
        let channel = dialer.channel(address, Peer::Manager).expect("a channel");
        let reply = StoreClient::new(channel).get(request).await?;
        Ok(reply.into_inner().value)
    })
}

/// `Store.Set` of `bucket`/`apples` to `value` on the manager at
/// `address`, as a worker of `version` sends it.
pub fn store_set(
    dialer: &Dialer,
    address: &str,
    version: &str,
    bucket: &str,
    value: Vec<u8>,
) -> Result<(), Status> {
    let mut request = tonic::Request::new(SetRequest {
        bucket: bucket.into(),
        key: "apples".into(),
        value,
    });
    request
        .metadata_mut()
        .insert(weft_proto::VERSION_HEADER, version.parse().expect("ASCII"));
    block_on(async move {
        let channel = dialer.channel(address, Peer::Manager).expect("a channel");
        StoreClient::new(channel)
            .max_encoding_message_size(weft_runtime::rpc::MAX_MESSAGE)
            .set(request)
            .await?;
        Ok(())
    })
}

/// `Control.Health` of the worker of `version` at `address`.
pub fn control_health(dialer: &Dialer, address: &str, version: &str) -> Result<(), Status> {
    let version = Version::parse(version).expect("a version");
    block_on(async move {
        let channel = dialer
            .channel(address, Peer::Worker(&version))
            .expect("a channel");
        ControlClient::new(channel).health(HealthRequest {}).await?;
        Ok(())
    })
}

/// `Control.Drain` of the worker at `address` (of `version`).
pub fn control_drain(dialer: &Dialer, address: &str, version: &str) -> Result<(), Status> {
    let version = Version::parse(version).expect("a version");
    block_on(async move {
        let channel = dialer
            .channel(address, Peer::Worker(&version))
            .expect("a channel");
        ControlClient::new(channel)
            .drain(weft_proto::v1::DrainRequest {})
            .await?;
        Ok(())
    })
}

/// `Manager.Status` of the manager at `address`.
pub fn manager_status(dialer: &Dialer, address: &str) -> Result<String, Status> {
    block_on(async move {
        let channel = dialer.channel(address, Peer::Manager).expect("a channel");
        let reply = ManagerClient::new(channel).status(StatusRequest {}).await?;
        Ok(reply.into_inner().json)
    })
}

/// `Control.Health` at `address` over a channel that presents no client
/// certificate: plain HTTP/2 when `tls` is `None`, else TLS that trusts
/// the CA certificates `ca_pem` and expects `server_name`. The error,
/// which never comes from the service: the handshake or the connection
/// fails first.
pub fn without_certificate(address: &str, tls: Option<(&str, &str)>) -> String {
    block_on(async move {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{address}"))
            .expect("an address")
            .connect_timeout(Duration::from_secs(2));
        if let Some((ca_pem, server_name)) = tls {
            let config = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
                .domain_name(server_name);
            endpoint = endpoint.tls_config(config).expect("a TLS config");
        }
        let answer = async {
            let channel = endpoint.connect().await?;
            ControlClient::new(channel)
                .health(HealthRequest {})
                .await
                .map_err(anyhow::Error::from)?;
            anyhow::Ok(())
        };
        match answer.await {
            Ok(()) => panic!("{address} answered a client without a certificate"),
            Err(e) => {
                if let Some(status) = e.downcast_ref::<Status>() {
                    assert!(
                        !matches!(
                            status.code(),
                            tonic::Code::PermissionDenied
                                | tonic::Code::Unauthenticated
                                | tonic::Code::Ok
                        ),
                        "the service itself answered: {status:?}"
                    );
                }
                format!("{e:?}")
            }
        }
    })
}
