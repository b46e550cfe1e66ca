//! One key-value store for all the workers of a deployment.
//!
//! redb lets one process open a file, and two replicas that increment one
//! counter must both see every increment, so under `weft deploy` the manager
//! holds the store and serves it ([`StoreService`]), and every worker uses it
//! through [`RemoteStore`], unless one worker is the only process that uses
//! it and holds the file itself ([`crate::deploy::store_home`]). Bucket grants are checked by the worker's host
//! bindings before a call is sent, as they are in one process, and again by
//! the store: a worker may use only the buckets granted to a component of
//! its own group, as its certificate names it, in a running version.

use super::{Channel, Dialer, Peer};
use crate::deploy::store_home::StoreHome;
use crate::kv::{KeyPage, KeyValueStore, KvError};
use crate::rpc::authorize::Buckets;
use crate::rpc::identity::Role;
use crate::telemetry::logs::escaped;
use crate::version::Version;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use weft_proto::VERSION_HEADER;
use weft_proto::v1::store_client::StoreClient;
use weft_proto::v1::store_server::Store;
use weft_proto::v1::{
    Empty, ExistsReply, GetReply, IncrementReply, IncrementRequest, KeyRequest, ListKeysReply,
    ListKeysRequest, SetRequest,
};

/// The versions whose workers may use the store (those that run now), with
/// the buckets each of their groups may use. Data outlives versions, so
/// every running version shares one store.
pub type LiveVersions = Arc<RwLock<BTreeMap<String, Buckets>>>;

/// The manager's side: the store at its [`StoreHome`], served over gRPC to
/// the workers of the running versions.
pub struct StoreService {
    home: Arc<StoreHome>,
    live: LiveVersions,
}

impl StoreService {
    /// Serves the store at `home` to workers of the `live` versions.
    pub fn new(home: Arc<StoreHome>, live: LiveVersions) -> StoreService {
        StoreService { home, live }
    }

    /// The store, if the caller of `request` may use `bucket`.
    async fn check<T>(
        &self,
        request: &Request<T>,
        bucket: &str,
    ) -> Result<crate::kv::redb::RedbStore, Status> {
        let (version, group) = self.worker_of(request)?;
        {
            let live = self.live.read().expect("live versions lock");
            let Some(buckets) = live.get(version.as_str()) else {
                return Err(Status::failed_precondition(format!(
                    "version mismatch: this store serves the running versions ({}), the request \
                     carries {}",
                    live.keys().cloned().collect::<Vec<_>>().join(", "),
                    escaped(&version)
                )));
            };
            buckets
                .allows(&group, bucket)
                .map_err(Status::permission_denied)?;
        }
        self.home.for_call().await.map_err(Status::unavailable)
    }

    /// The version and group of the worker that sent `request`, checked
    /// against the version it carries.
    fn worker_of<T>(&self, request: &Request<T>) -> Result<(String, String), Status> {
        let who = super::connect::caller(request)?;
        let Role::Worker { version, group } = &who.role else {
            return Err(Status::permission_denied(format!(
                "{who} may not use the store; only the deployment's workers do"
            )));
        };
        let sent = request
            .metadata()
            .get(VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        if sent != version {
            return Err(Status::permission_denied(format!(
                "the request carries version {}, but the caller's certificate names {who}",
                escaped(sent)
            )));
        }
        Ok((version.clone(), group.clone()))
    }
}

fn status(e: KvError) -> Status {
    match e {
        KvError::AccessDenied(_) => Status::permission_denied(e.to_string()),
        KvError::Unavailable(_) => Status::unavailable(e.to_string()),
        KvError::Invalid(_) => Status::invalid_argument(e.to_string()),
        KvError::Other(_) => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl Store for StoreService {
    async fn get(&self, request: Request<KeyRequest>) -> Result<Response<GetReply>, Status> {
        let store = self.check(&request, &request.get_ref().bucket).await?;
        let KeyRequest { bucket, key } = request.into_inner();
        let value = store.get(&bucket, &key).await.map_err(status)?;
        Ok(Response::new(GetReply { value }))
    }

    async fn set(&self, request: Request<SetRequest>) -> Result<Response<Empty>, Status> {
        let store = self.check(&request, &request.get_ref().bucket).await?;
        let SetRequest { bucket, key, value } = request.into_inner();
        crate::kv::check_sizes(&bucket, &key, Some(&value)).map_err(status)?;
        store.set(&bucket, &key, value).await.map_err(status)?;
        Ok(Response::new(Empty {}))
    }

    async fn delete(&self, request: Request<KeyRequest>) -> Result<Response<Empty>, Status> {
        let store = self.check(&request, &request.get_ref().bucket).await?;
        let KeyRequest { bucket, key } = request.into_inner();
        store.delete(&bucket, &key).await.map_err(status)?;
        Ok(Response::new(Empty {}))
    }

    async fn exists(&self, request: Request<KeyRequest>) -> Result<Response<ExistsReply>, Status> {
        let store = self.check(&request, &request.get_ref().bucket).await?;
        let KeyRequest { bucket, key } = request.into_inner();
        let exists = store.exists(&bucket, &key).await.map_err(status)?;
        Ok(Response::new(ExistsReply { exists }))
    }

    async fn list_keys(
        &self,
        request: Request<ListKeysRequest>,
    ) -> Result<Response<ListKeysReply>, Status> {
        let store = self.check(&request, &request.get_ref().bucket).await?;
        let ListKeysRequest { bucket, cursor } = request.into_inner();
        let page = store.list_keys(&bucket, cursor).await.map_err(status)?;
        Ok(Response::new(ListKeysReply {
            keys: page.keys,
            cursor: page.cursor,
        }))
    }

    async fn increment(
        &self,
        request: Request<IncrementRequest>,
    ) -> Result<Response<IncrementReply>, Status> {
        let store = self.check(&request, &request.get_ref().bucket).await?;
        let IncrementRequest { bucket, key, delta } = request.into_inner();
        let value = store
            .increment(&bucket, &key, delta)
            .await
            .map_err(status)?;
        Ok(Response::new(IncrementReply { value }))
    }

    async fn handover(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        let (version, group) = self.worker_of(&request)?;
        self.home
            .hand_over(&version, &group)
            .await
            .map_err(|e| Status::permission_denied(escaped(&e).to_string()))?;
        Ok(Response::new(Empty {}))
    }
}

/// A worker's side: the manager's store, as a [`KeyValueStore`].
pub struct RemoteStore {
    client: StoreClient<Channel>,
    version: MetadataValue<tonic::metadata::Ascii>,
}

impl RemoteStore {
    /// The store served at `address` to workers of `version`, reached
    /// through `dialer`.
    pub fn new(address: &str, version: &Version, dialer: &Dialer) -> anyhow::Result<RemoteStore> {
        let client = StoreClient::new(dialer.channel(address, Peer::Manager)?)
            .max_decoding_message_size(super::MAX_MESSAGE)
            .max_encoding_message_size(super::MAX_MESSAGE);
        Ok(RemoteStore {
            client,
            version: version
                .as_str()
                .parse()
                .map_err(|e| anyhow::anyhow!("version {version} is not valid metadata: {e}"))?,
        })
    }

    /// Asks the manager to close the file, for this worker to open it (it
    /// was told to take it).
    pub async fn handover(&self) -> anyhow::Result<()> {
        self.client
            .clone()
            .handover(self.request(Empty {}))
            .await
            .map_err(|s| {
                anyhow::anyhow!("the manager kept the key-value store: {}", s.message())
            })?;
        Ok(())
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert(VERSION_HEADER, self.version.clone());
        request
    }
}

fn kv_error(status: Status) -> KvError {
    KvError::Other(format!(
        "the deployment's key-value store failed: {:?}: {}",
        status.code(),
        status.message()
    ))
}

fn key(bucket: &str, key: &str) -> KeyRequest {
    KeyRequest {
        bucket: bucket.to_string(),
        key: key.to_string(),
    }
}

#[async_trait]
impl KeyValueStore for RemoteStore {
    async fn get(&self, bucket: &str, k: &str) -> Result<Option<Vec<u8>>, KvError> {
        let reply = self.client.clone().get(self.request(key(bucket, k))).await;
        Ok(reply.map_err(kv_error)?.into_inner().value)
    }

    async fn set(&self, bucket: &str, k: &str, value: Vec<u8>) -> Result<(), KvError> {
        let message = SetRequest {
            bucket: bucket.to_string(),
            key: k.to_string(),
            value,
        };
        self.client
            .clone()
            .set(self.request(message))
            .await
            .map_err(kv_error)?;
        Ok(())
    }

    async fn delete(&self, bucket: &str, k: &str) -> Result<(), KvError> {
        let reply = self
            .client
            .clone()
            .delete(self.request(key(bucket, k)))
            .await;
        reply.map_err(kv_error)?;
        Ok(())
    }

    async fn exists(&self, bucket: &str, k: &str) -> Result<bool, KvError> {
        let reply = self
            .client
            .clone()
            .exists(self.request(key(bucket, k)))
            .await;
        Ok(reply.map_err(kv_error)?.into_inner().exists)
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        let message = ListKeysRequest {
            bucket: bucket.to_string(),
            cursor,
        };
        let reply = self.client.clone().list_keys(self.request(message)).await;
        let reply = reply.map_err(kv_error)?.into_inner();
        Ok(KeyPage {
            keys: reply.keys,
            cursor: reply.cursor,
        })
    }

    async fn increment(&self, bucket: &str, k: &str, delta: u64) -> Result<u64, KvError> {
        let message = IncrementRequest {
            bucket: bucket.to_string(),
            key: k.to_string(),
            delta,
        };
        let reply = self.client.clone().increment(self.request(message)).await;
        Ok(reply.map_err(kv_error)?.into_inner().value)
    }
}
