//! `wasi:blobstore` (blobstore, container, types) for a component, limited
//! to the containers it was granted, on the embedded file backend
//! ([`crate::blob::fs`]).
//!
//! Objects stream both ways through `wasi:io` streams, a chunk at a time:
//! a written object goes to a temporary file and replaces the old one when
//! the guest finishes it (`outgoing-value.finish`), and a read object is
//! read from its file as the guest reads the stream. Only
//! `incoming-value-consume-sync`, which hands the whole object over as one
//! list, holds it in memory, up to [`SYNC_LIMIT`].

use super::bindings::wasi::blobstore::{blobstore, container, types};
use super::{HostState, Sandbox};
use crate::blob::fs::FsBlobs;
use crate::capability::{Capability, ComponentContext, Embedded, Parts, Process, Shared};
use crate::engine::Concurrency;
use crate::manifest::{ComponentSpec, Grants, Manifest};
use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, InputStream, OutputStream, Pollable};
use wasmtime_wasi::p2::{StreamError, StreamResult};

/// The most `incoming-value-consume-sync` hands over; larger objects are
/// read through `incoming-value-consume-async`'s stream.
pub const SYNC_LIMIT: u64 = 64 << 20;

/// The largest chunk one stream read or write moves.
const CHUNK: usize = 1 << 20;

/// `wasi:blobstore`: the granted containers only.
pub struct Blobstore;

/// What one component may open, and where the objects are.
struct Granted {
    containers: Vec<String>,
    blobs: Arc<FsBlobs>,
}

impl Capability for Blobstore {
    fn name(&self) -> &'static str {
        "blobstore"
    }

    fn serves(&self, interface: &str) -> bool {
        interface.starts_with("wasi:blobstore/")
    }

    fn is_granted(&self, grants: &Grants) -> bool {
        !grants.blobstore.is_empty()
    }

    fn grant_example(&self) -> Option<&'static str> {
        Some("blobstore = [\"CONTAINER\"]")
    }

    fn link(&self, linker: &mut Linker<HostState>, _: Concurrency) -> wasmtime::Result<()> {
        fn view(state: &mut HostState) -> BlobView<'_> {
            BlobView {
                sandbox: &state.sandbox,
                table: &mut state.table,
            }
        }
        blobstore::add_to_linker::<_, BlobData>(linker, view)?;
        container::add_to_linker::<_, BlobData>(linker, view)?;
        types::add_to_linker::<_, BlobData>(linker, view)?;
        Ok(())
    }

    fn open(&self, process: &Process<'_>) -> anyhow::Result<Option<Shared>> {
        Ok(process
            .embedded
            .blobs
            .clone()
            .map(|root| Arc::new(FsBlobs::new(root)) as Shared))
    }

    fn sandbox(&self, component: &ComponentContext<'_>, parts: &mut Parts) {
        let Some(blobs) = component
            .shared
            .and_then(|s| s.clone().downcast::<FsBlobs>().ok())
        else {
            return;
        };
        parts.insert(Granted {
            containers: component.spec.grants.blobstore.clone(),
            blobs,
        });
    }

    fn embedded_stores(&self, manifest: &Manifest, component: &ComponentSpec) -> Vec<Embedded> {
        component
            .grants
            .blobstore
            .iter()
            .filter(|c| manifest.container_backend(c).embedded)
            .map(|container| Embedded {
                field: format!("blobstore.{container}"),
                what: format!("container '{container}'"),
                kind: "container",
                backend: manifest.container_backend(container).name,
                fix: "weft has no blob backend on a server yet, so keep components that use \
                      wasi:blobstore off Kubernetes and other machines (weft run and weft deploy \
                      on one machine serve them)"
                    .into(),
            })
            .collect()
    }
}

/// The part of a store's data that the blobstore bindings use.
pub struct BlobView<'a> {
    sandbox: &'a Sandbox,
    table: &'a mut ResourceTable,
}

struct BlobData;

impl HasData for BlobData {
    type Data<'a> = BlobView<'a>;
}

/// An open container: only its name; the objects are files.
pub struct Container {
    name: String,
}

/// The names of a container's objects, as listed when asked.
pub struct ObjectNames {
    names: VecDeque<String>,
}

/// A range of an object, open for reading: the bytes stay readable even if
/// the object is replaced or deleted meanwhile.
pub struct IncomingValue {
    file: File,
    len: u64,
}

/// An object being written, to a temporary file until it is finished.
pub struct OutgoingValue {
    temp: PathBuf,
    file: File,
    stream_taken: bool,
    /// Where `write-data` said it goes: the container and object name.
    target: Option<(String, String)>,
}

impl Drop for OutgoingValue {
    fn drop(&mut self) {
        // Unfinished (or already renamed: then this finds nothing).
        let _ = std::fs::remove_file(&self.temp);
    }
}

type Answer<T> = wasmtime::Result<Result<T, String>>;

impl BlobView<'_> {
    fn granted(&self) -> Result<&Granted, String> {
        self.sandbox
            .parts
            .get::<Granted>()
            .ok_or_else(|| "no blob store is configured for this component".to_string())
    }

    /// The blobs, if this component may use container `name`.
    fn allowed(&self, name: &str) -> Result<Arc<FsBlobs>, String> {
        crate::blob::check_name("a container", name)?;
        let granted = self.granted()?;
        if !granted.containers.iter().any(|c| c == name) {
            tracing::warn!(
                component = %self.sandbox.name,
                container = %crate::telemetry::logs::escaped(name),
                "blob container denied: it is not in grants.blobstore"
            );
            return Err(format!("access to container '{name}' is not granted"));
        }
        Ok(granted.blobs.clone())
    }

    fn container(
        &self,
        container: &Resource<Container>,
    ) -> wasmtime::Result<(String, Arc<FsBlobs>)> {
        let name = self.table.get(container)?.name.clone();
        let blobs = self.granted().map_err(wasmtime::Error::msg)?.blobs.clone();
        Ok((name, blobs))
    }
}

impl blobstore::Host for BlobView<'_> {
    async fn create_container(&mut self, name: String) -> Answer<Resource<Container>> {
        let blobs = match self.allowed(&name) {
            Ok(blobs) => blobs,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = blobs.create_container(&name) {
            return Ok(Err(e));
        }
        Ok(Ok(self.table.push(Container { name })?))
    }

    async fn get_container(&mut self, name: String) -> Answer<Resource<Container>> {
        let blobs = match self.allowed(&name) {
            Ok(blobs) => blobs,
            Err(e) => return Ok(Err(e)),
        };
        if !blobs.container_exists(&name) {
            return Ok(Err(format!("container '{name}' does not exist")));
        }
        Ok(Ok(self.table.push(Container { name })?))
    }

    async fn delete_container(&mut self, name: String) -> Answer<()> {
        Ok(self.allowed(&name).and_then(|b| b.delete_container(&name)))
    }

    async fn container_exists(&mut self, name: String) -> Answer<bool> {
        Ok(self.allowed(&name).map(|b| b.container_exists(&name)))
    }

    async fn copy_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> Answer<()> {
        Ok(self.copy(&src, &dest))
    }

    async fn move_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> Answer<()> {
        Ok(self.copy(&src, &dest).and_then(|()| {
            let blobs = self.allowed(&src.container)?;
            blobs.delete(&src.container, &src.object)
        }))
    }
}

impl BlobView<'_> {
    fn copy(&self, src: &types::ObjectId, dest: &types::ObjectId) -> Result<(), String> {
        let blobs = self.allowed(&src.container)?;
        self.allowed(&dest.container)?;
        crate::blob::check_name("an object", &src.object)?;
        crate::blob::check_name("an object", &dest.object)?;
        blobs.copy(
            (&src.container, &src.object),
            (&dest.container, &dest.object),
        )
    }
}

impl container::Host for BlobView<'_> {}

impl container::HostContainer for BlobView<'_> {
    async fn name(&mut self, this: Resource<Container>) -> Answer<String> {
        Ok(Ok(self.table.get(&this)?.name.clone()))
    }

    async fn info(&mut self, this: Resource<Container>) -> Answer<types::ContainerMetadata> {
        let (name, blobs) = self.container(&this)?;
        Ok(blobs
            .container_created(&name)
            .map(|created_at| types::ContainerMetadata { name, created_at }))
    }

    async fn get_data(
        &mut self,
        this: Resource<Container>,
        name: String,
        start: u64,
        end: u64,
    ) -> Answer<Resource<IncomingValue>> {
        let (container, blobs) = self.container(&this)?;
        if let Err(e) = crate::blob::check_name("an object", &name) {
            return Ok(Err(e));
        }
        let mut file = match blobs.open(&container, &name) {
            Ok(file) => file,
            Err(e) => return Ok(Err(e)),
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        // Offsets are inclusive; a range past the end is cut there.
        let len = if start >= size || end < start {
            0
        } else {
            end.min(size - 1) - start + 1
        };
        if let Err(e) = file.seek(SeekFrom::Start(start.min(size))) {
            return Ok(Err(format!("reading object '{name}': {e}")));
        }
        Ok(Ok(self.table.push(IncomingValue { file, len })?))
    }

    async fn write_data(
        &mut self,
        this: Resource<Container>,
        name: String,
        data: Resource<OutgoingValue>,
    ) -> Answer<()> {
        let (container, _) = self.container(&this)?;
        if let Err(e) = crate::blob::check_name("an object", &name) {
            return Ok(Err(e));
        }
        self.table.get_mut(&data)?.target = Some((container, name));
        Ok(Ok(()))
    }

    async fn list_objects(&mut self, this: Resource<Container>) -> Answer<Resource<ObjectNames>> {
        let (container, blobs) = self.container(&this)?;
        match blobs.list(&container) {
            Ok(names) => Ok(Ok(self.table.push(ObjectNames {
                names: names.into(),
            })?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn delete_object(&mut self, this: Resource<Container>, name: String) -> Answer<()> {
        let (container, blobs) = self.container(&this)?;
        Ok(crate::blob::check_name("an object", &name)
            .and_then(|()| blobs.delete(&container, &name)))
    }

    async fn delete_objects(
        &mut self,
        this: Resource<Container>,
        names: Vec<String>,
    ) -> Answer<()> {
        let (container, blobs) = self.container(&this)?;
        for name in names {
            let deleted = crate::blob::check_name("an object", &name)
                .and_then(|()| blobs.delete(&container, &name));
            if deleted.is_err() {
                return Ok(deleted);
            }
        }
        Ok(Ok(()))
    }

    async fn has_object(&mut self, this: Resource<Container>, name: String) -> Answer<bool> {
        let (container, blobs) = self.container(&this)?;
        Ok(crate::blob::check_name("an object", &name)
            .map(|()| blobs.object_path(&container, &name).is_file()))
    }

    async fn object_info(
        &mut self,
        this: Resource<Container>,
        name: String,
    ) -> Answer<types::ObjectMetadata> {
        let (container, blobs) = self.container(&this)?;
        Ok(crate::blob::check_name("an object", &name)
            .and_then(|()| blobs.info(&container, &name))
            .map(|info| types::ObjectMetadata {
                name,
                container,
                created_at: info.created_at,
                size: info.size,
            }))
    }

    async fn clear(&mut self, this: Resource<Container>) -> Answer<()> {
        let (container, blobs) = self.container(&this)?;
        let names = match blobs.list(&container) {
            Ok(names) => names,
            Err(e) => return Ok(Err(e)),
        };
        for name in names {
            if let Err(e) = blobs.delete(&container, &name) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    async fn drop(&mut self, this: Resource<Container>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl container::HostStreamObjectNames for BlobView<'_> {
    async fn read_stream_object_names(
        &mut self,
        this: Resource<ObjectNames>,
        len: u64,
    ) -> Answer<(Vec<String>, bool)> {
        let names = &mut self.table.get_mut(&this)?.names;
        let n = usize::try_from(len).unwrap_or(usize::MAX).min(names.len());
        let read: Vec<String> = names.drain(..n).collect();
        Ok(Ok((read, names.is_empty())))
    }

    async fn skip_stream_object_names(
        &mut self,
        this: Resource<ObjectNames>,
        num: u64,
    ) -> Answer<(u64, bool)> {
        let names = &mut self.table.get_mut(&this)?.names;
        let n = usize::try_from(num).unwrap_or(usize::MAX).min(names.len());
        names.drain(..n);
        Ok(Ok((n as u64, names.is_empty())))
    }

    async fn drop(&mut self, this: Resource<ObjectNames>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl types::Host for BlobView<'_> {}

impl types::HostOutgoingValue for BlobView<'_> {
    async fn new_outgoing_value(&mut self) -> wasmtime::Result<Resource<OutgoingValue>> {
        let blobs = self.granted().map_err(wasmtime::Error::msg)?.blobs.clone();
        let (temp, file) = blobs.temp_file().map_err(wasmtime::Error::msg)?;
        Ok(self.table.push(OutgoingValue {
            temp,
            file,
            stream_taken: false,
            target: None,
        })?)
    }

    async fn outgoing_value_write_body(
        &mut self,
        this: Resource<OutgoingValue>,
    ) -> wasmtime::Result<Result<Resource<DynOutputStream>, ()>> {
        let value = self.table.get_mut(&this)?;
        if value.stream_taken {
            return Ok(Err(()));
        }
        value.stream_taken = true;
        let file = value.file.try_clone()?;
        let stream: DynOutputStream = Box::new(FileWriter { file: Some(file) });
        Ok(Ok(self.table.push_child(stream, &this)?))
    }

    async fn finish(&mut self, this: Resource<OutgoingValue>) -> Answer<()> {
        let value = self.table.delete(this)?;
        let Some((container, name)) = value.target.clone() else {
            return Ok(Err(
                "the value was finished before write-data named the object it goes to".into(),
            ));
        };
        let blobs = self.granted().map_err(wasmtime::Error::msg)?.blobs.clone();
        // Durable before it replaces the old object.
        let synced = tokio::task::spawn_blocking(move || {
            value
                .file
                .sync_all()
                .map_err(|e| format!("writing object '{name}': {e}"))
                .and_then(|()| blobs.commit(&value.temp, &container, &name))
        })
        .await?;
        Ok(synced)
    }

    async fn drop(&mut self, this: Resource<OutgoingValue>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl types::HostIncomingValue for BlobView<'_> {
    async fn incoming_value_consume_sync(
        &mut self,
        this: Resource<IncomingValue>,
    ) -> Answer<Vec<u8>> {
        let mut value = self.table.delete(this)?;
        if value.len > SYNC_LIMIT {
            return Ok(Err(format!(
                "the object is {} bytes, more than incoming-value-consume-sync hands over \
                 ({SYNC_LIMIT}); read it with incoming-value-consume-async",
                value.len
            )));
        }
        let mut bytes = Vec::with_capacity(value.len as usize);
        let read = (&mut value.file).take(value.len).read_to_end(&mut bytes);
        Ok(read.map(|_| bytes).map_err(|e| format!("reading: {e}")))
    }

    async fn incoming_value_consume_async(
        &mut self,
        this: Resource<IncomingValue>,
    ) -> Answer<Resource<DynInputStream>> {
        let value = self.table.delete(this)?;
        let stream: DynInputStream = Box::new(FileReader {
            file: value.file,
            left: value.len,
        });
        Ok(Ok(self.table.push(stream)?))
    }

    async fn size(&mut self, this: Resource<IncomingValue>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.len)
    }

    async fn drop(&mut self, this: Resource<IncomingValue>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

/// An object's bytes, read a chunk at a time.
struct FileReader {
    file: File,
    left: u64,
}

#[async_trait::async_trait]
impl Pollable for FileReader {
    async fn ready(&mut self) {}
}

impl InputStream for FileReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if self.left == 0 {
            return Err(StreamError::Closed);
        }
        let n = size
            .min(CHUNK)
            .min(usize::try_from(self.left).unwrap_or(CHUNK));
        let mut buf = vec![0; n];
        let got = self
            .file
            .read(&mut buf)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))?;
        if got == 0 {
            return Err(StreamError::Closed);
        }
        buf.truncate(got);
        self.left -= got as u64;
        Ok(buf.into())
    }
}

/// An object's bytes, written a chunk at a time to its temporary file.
struct FileWriter {
    file: Option<File>,
}

#[async_trait::async_trait]
impl Pollable for FileWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for FileWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let file = self.file.as_mut().ok_or(StreamError::Closed)?;
        file.write_all(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        if self.file.is_none() {
            return Err(StreamError::Closed);
        }
        Ok(CHUNK)
    }
}
