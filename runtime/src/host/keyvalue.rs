//! `wasi:keyvalue` (store, atomics, batch) for a component, limited to the
//! buckets it was granted, on whichever [`KeyValueStore`] the app uses.

use super::bindings::wasi::keyvalue::{atomics, batch, store};
use super::{HostState, Sandbox};
use crate::capability::{self, Capability, ComponentContext, Embedded, Parts, Process, Shared};
use crate::engine::Concurrency;
use crate::kv::buckets::Buckets;
use crate::kv::{KeyValueStore, KvError};
use crate::manifest::{ComponentSpec, Grants, Manifest};
use anyhow::Context as _;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

/// `wasi:keyvalue`: the granted buckets only.
pub struct KeyValue;

/// What one component may open, and where its buckets are.
struct Granted {
    buckets: Vec<String>,
    store: Arc<dyn KeyValueStore>,
}

impl Capability for KeyValue {
    fn name(&self) -> &'static str {
        "keyvalue"
    }

    fn serves(&self, interface: &str) -> bool {
        interface.starts_with("wasi:keyvalue/")
    }

    fn is_granted(&self, grants: &Grants) -> bool {
        !grants.keyvalue.is_empty()
    }

    fn grant_example(&self) -> Option<&'static str> {
        Some("keyvalue = [\"BUCKET\"]")
    }

    fn link(&self, linker: &mut Linker<HostState>, _: Concurrency) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }

    fn open(&self, process: &Process<'_>) -> anyhow::Result<Option<Shared>> {
        let buckets = Buckets::new(
            &process.manifest.manifest,
            process.embedded.keyvalue.clone(),
        )
        .with_context(|| format!("{}", process.manifest.path.display()))?;
        Ok(Some(Arc::new(buckets)))
    }

    fn sandbox(&self, component: &ComponentContext<'_>, parts: &mut Parts) {
        let Some(store) = component
            .shared
            .and_then(|s| s.clone().downcast::<Buckets>().ok())
        else {
            return;
        };
        parts.insert(Granted {
            buckets: component.spec.grants.keyvalue.clone(),
            store,
        });
    }

    fn embedded_stores(&self, manifest: &Manifest, component: &ComponentSpec) -> Vec<Embedded> {
        let server = crate::kv::BACKENDS
            .iter()
            .find(|b| !b.is_embedded())
            .map_or("", |b| b.name);
        component
            .grants
            .keyvalue
            .iter()
            .filter(|b| manifest.bucket_backend(b).is_embedded())
            .map(|bucket| Embedded {
                field: format!("keyvalue.{bucket}"),
                what: format!("bucket '{bucket}'"),
                kind: "bucket",
                backend: manifest.bucket_backend(bucket).name,
                fix: format!(
                    "add [keyvalue.{bucket}] with backend = \"{server}\" and url = \"redis://HOST:6379/0\""
                ),
            })
            .collect()
    }
}

/// Whether `capability` is key-value.
pub fn is_keyvalue(capability: &capability::CapabilityRef) -> bool {
    capability.name() == KeyValue.name()
}

/// An open bucket: only its name; the data lives in the backend.
pub struct Bucket {
    name: String,
}

/// The part of a store's data that the key-value bindings use.
pub struct KvView<'a> {
    sandbox: &'a Sandbox,
    table: &'a mut ResourceTable,
}

struct KvData;

impl HasData for KvData {
    type Data<'a> = KvView<'a>;
}

/// Links `wasi:keyvalue/{store,atomics,batch}`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    fn view(state: &mut HostState) -> KvView<'_> {
        KvView {
            sandbox: &state.sandbox,
            table: &mut state.table,
        }
    }
    store::add_to_linker::<_, KvData>(linker, view)?;
    atomics::add_to_linker::<_, KvData>(linker, view)?;
    batch::add_to_linker::<_, KvData>(linker, view)?;
    Ok(())
}

impl KvView<'_> {
    fn granted(&self) -> Result<&Granted, KvError> {
        self.sandbox.parts.get::<Granted>().ok_or_else(|| {
            KvError::Other("no key-value store is configured for this component".into())
        })
    }

    /// The bucket's name and the backend that holds it.
    fn open_bucket(
        &self,
        bucket: &Resource<Bucket>,
    ) -> Result<(String, &dyn KeyValueStore), KvError> {
        let name = self
            .table
            .get(bucket)
            .map_err(|e| KvError::Other(e.to_string()))?
            .name
            .clone();
        let granted = self.granted()?;
        Ok((name, granted.store.as_ref()))
    }
}

impl store::Host for KvView<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KvError> {
        let granted = self.granted().map(|g| g.buckets.contains(&identifier));
        if !granted.unwrap_or(false) {
            tracing::warn!(
                component = %self.sandbox.name,
                bucket = %identifier,
                "key-value bucket denied: it is not in grants.keyvalue"
            );
            return Err(KvError::AccessDenied(identifier));
        }
        self.table
            .push(Bucket { name: identifier })
            .map_err(|e| KvError::Other(e.to_string()))
    }

    fn convert_error(&mut self, err: KvError) -> wasmtime::Result<store::Error> {
        Ok(match err {
            KvError::AccessDenied(_) => store::Error::AccessDenied,
            KvError::Other(message) | KvError::Unavailable(message) | KvError::Invalid(message) => {
                store::Error::Other(message)
            }
        })
    }
}

impl store::HostBucket for KvView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, KvError> {
        let (name, kv) = self.open_bucket(&bucket)?;
        kv.get(&name, &key).await
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        let (name, kv) = self.open_bucket(&bucket)?;
        kv.set(&name, &key, value).await
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), KvError> {
        let (name, kv) = self.open_bucket(&bucket)?;
        kv.delete(&name, &key).await
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, KvError> {
        let (name, kv) = self.open_bucket(&bucket)?;
        kv.exists(&name, &key).await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KvError> {
        let (name, kv) = self.open_bucket(&bucket)?;
        let page = kv.list_keys(&name, cursor).await?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KvView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, KvError> {
        let (name, kv) = self.open_bucket(&bucket)?;
        kv.increment(&name, &key, delta).await
    }
}

impl batch::Host for KvView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        let (name, kv) = self.open_bucket(&bucket)?;
        let values = kv.get_many(&name, &keys).await?;
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|v| (key, v)))
            .collect())
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        let (name, kv) = self.open_bucket(&bucket)?;
        kv.set_many(&name, key_values).await
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), KvError> {
        let (name, kv) = self.open_bucket(&bucket)?;
        kv.delete_many(&name, &keys).await
    }
}
