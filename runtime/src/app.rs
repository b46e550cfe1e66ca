//! Loading an app: from a manifest to linked, warm instance pools.
//!
//! [`App::load`] runs call-path steps 1 to 3 and 5 of the design: it reads
//! and compiles every component (through the compile cache), reflects its
//! imports and exports, resolves every import (failing with every problem at
//! once, before anything runs), links each component, and warms one instance
//! of each. [`App::serve`] then serves the listeners until shutdown.
//!
//! The steps are also usable apart, which is what `weft deploy` does:
//! [`Prepared::load`] compiles and resolves (the manager checks an app and
//! computes its version with it), and [`App::start`] links only the
//! components a [`Placement`] puts in this process, with forwarders to the
//! others' replicas (a worker does that).

use crate::cache::{CacheOutcome, CompileCache};
use crate::capability::{
    self, CapabilityRef, ComponentContext, EmbeddedStores, Parts, Process, Shared,
};
use crate::engine::{Concurrency, Engines};
use crate::handoff::Turn;
use crate::host::Sandbox;
use crate::kv::redb::RedbStore;
use crate::link::{self, Callee, Caller, PoolSlot};
use crate::listener::{self, HttpEntry, ListenerLabels};
use crate::manifest::ManifestFile;
use crate::pool::InstancePool;
use crate::resolve::{self, Resolution};
use crate::rpc::authorize::Edges;
use crate::rpc::client::Replicas;
use crate::rpc::server::Exports;
use crate::telemetry::metrics::{ListenerKey, Metrics};
use crate::version::Version;
use crate::world::World;
use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use wasmtime::component::Component;
use weft_placer::Plan;

/// How to load an app.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where embedded capabilities keep data; `None` means `.weft/data`
    /// beside the manifest.
    pub data_dir: Option<PathBuf>,
    /// The compile cache.
    pub cache: CompileCache,
}

/// One component after compilation and reflection.
pub struct Compiled {
    /// Its compiled code.
    pub component: Component,
    /// Its imports and exports.
    pub world: World,
    /// Where its compiled code came from.
    pub cache: CacheOutcome,
    /// How long reading and compiling (or loading) it took.
    pub load_time: std::time::Duration,
    /// The SHA-256 of its binary, for the version.
    pub digest: Vec<u8>,
    /// Whether it runs on the concurrent engine (it uses the component
    /// model's async).
    pub concurrency: Concurrency,
}

/// An app compiled and resolved, not yet linked: what both `weft run` and
/// the manager of `weft deploy` check before anything starts.
pub struct Prepared {
    /// The manifest it was loaded from.
    pub manifest: ManifestFile,
    /// Every component, by name.
    pub compiled: BTreeMap<String, Compiled>,
    /// Who serves each import.
    pub resolution: Resolution,
    /// The engines it was compiled for, and the cache it was compiled
    /// through: a fused group is compiled with them when it links.
    engines: Arc<Engines>,
    cache: CompileCache,
}

impl Prepared {
    /// Reads and compiles every component of `manifest` and resolves every
    /// import, failing with every problem at once.
    pub fn load(manifest: ManifestFile, cache: &CompileCache) -> anyhow::Result<Prepared> {
        let engines = Engines::new().map_err(anyhow::Error::from)?;
        let compiled = compile_all(&engines, &manifest, cache)?;
        let worlds: BTreeMap<String, World> = compiled
            .iter()
            .map(|(name, c)| (name.clone(), c.world.clone()))
            .collect();
        let resolution = resolve::resolve(&manifest.path, &manifest.manifest, &worlds)?;
        Ok(Prepared {
            manifest,
            compiled,
            resolution,
            engines: Arc::new(engines),
            cache: cache.clone(),
        })
    }

    /// The capabilities that some component links.
    pub fn capabilities(&self) -> BTreeSet<CapabilityRef> {
        self.resolution
            .wires
            .values()
            .flatten()
            .filter_map(|w| match w.provider {
                resolve::Provider::Capability(cap) => Some(cap),
                _ => None,
            })
            .collect()
    }

    /// Whether any component links `wasi:blobstore`.
    pub fn uses_blobstore(&self) -> bool {
        self.capabilities().iter().any(|c| c.name() == "blobstore")
    }

    /// Whether any component that uses key-value keeps a bucket in the
    /// embedded store (rather than on a server named by `[keyvalue]`).
    pub fn uses_embedded_keyvalue(&self) -> bool {
        let manifest = &self.manifest.manifest;
        let uses_keyvalue = self
            .capabilities()
            .iter()
            .any(crate::host::keyvalue::is_keyvalue);
        uses_keyvalue
            && manifest
                .components
                .values()
                .flat_map(|c| &c.grants.keyvalue)
                .any(|b| manifest.bucket_backend(b).is_embedded())
    }

    /// The version of this app deployed with `plan`.
    pub fn version(&self, plan: &Plan) -> Version {
        Version::compute(
            &self.manifest.manifest.canonical(),
            &plan.to_toml(),
            self.compiled
                .iter()
                .map(|(name, c)| (name.as_str(), c.digest.as_slice())),
        )
    }

    /// The table of functions that `app`'s components serve to other
    /// processes of deployment `version`.
    pub fn exports(&self, app: &App, version: Version, edges: Edges) -> Exports {
        let components: Vec<_> = app
            .pools
            .iter()
            .map(|(name, pool)| {
                let c = &self.compiled[name];
                // A fused group's member is served by the fused component,
                // which exports what the member does, under the same names.
                let component = match &app.fused {
                    Some(fused) if fused.members.contains(name) => &fused.component,
                    _ => &c.component,
                };
                (name.as_str(), component, &c.world, pool.clone())
            })
            .collect();
        let app_name = &self.manifest.manifest.app.name;
        Exports::of(
            (app_name, &app.group, version),
            &components,
            edges,
            app.handles.clone(),
            &app.metrics,
        )
    }
}

/// Which components run here, and where the others are: one worker's share
/// of a plan. `None` in [`App::start`] means every component runs here.
pub struct Placement {
    /// The name of this process's group.
    pub group: String,
    /// The components of this process's group.
    pub local: BTreeSet<String>,
    /// Every other component, with the replicas of its group.
    pub remote: BTreeMap<String, Arc<Replicas>>,
    /// The deployment's version, sent with every remote call.
    pub version: Version,
    /// Whether the group's components are composed into one ([`crate::fuse`]).
    pub fuse: bool,
}

/// A loaded app: its components linked, with a warm pool each.
pub struct App {
    /// The manifest it was loaded from.
    pub manifest: ManifestFile,
    /// The pool of every component that runs in this process, by name.
    pub pools: BTreeMap<String, Arc<InstancePool>>,
    /// How each component was compiled, by name.
    pub compiled: BTreeMap<String, CacheOutcome>,
    /// Where embedded key-value data lives, if any component keeps a
    /// bucket there.
    pub data_file: Option<PathBuf>,
    /// Where embedded blob containers live, if any component uses them.
    pub blob_dir: Option<PathBuf>,
    /// The version its metrics carry: the deployment's, or under `weft
    /// run` that of the app as one group.
    pub version: Version,
    /// The group this process runs (`main` under `weft run`).
    pub group: String,
    /// Its calls and requests, counted.
    pub metrics: Arc<Metrics>,
    /// The handles its components hold to each other's resources.
    pub handles: Arc<crate::link::handles::Handles>,
    /// Its fused group's component, when its group is fused.
    pub fused: Option<Fused>,
}

impl App {
    /// Loads, resolves, links and warms the app in `manifest`, all in this
    /// process, with key-value data in an embedded store (and on the
    /// servers that `[keyvalue]` names).
    pub async fn load(manifest: ManifestFile, options: &LoadOptions) -> anyhow::Result<App> {
        // Off the async threads: reading and compiling take long, and a
        // signal must still be able to stop weft meanwhile.
        let cache = options.cache.clone();
        let prepared = tokio::task::spawn_blocking(move || Prepared::load(manifest, &cache))
            .await
            .context("loading the app panicked")??;
        let data_file = prepared.uses_embedded_keyvalue().then(|| {
            let dir = options
                .data_dir
                .clone()
                .unwrap_or_else(|| prepared.manifest.dir.join(".weft").join("data"));
            RedbStore::file_in(&dir)
        });
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| prepared.manifest.dir.join(".weft").join("data"));
        let embedded = EmbeddedStores {
            keyvalue: match &data_file {
                Some(file) => Some(Arc::new(RedbStore::open(file)?)),
                None => None,
            },
            blobs: prepared
                .uses_blobstore()
                .then(|| crate::blob::fs::FsBlobs::root_in(&data_dir)),
        };
        let mut app = App::start(&prepared, None, &embedded).await?;
        app.data_file = data_file;
        app.blob_dir = embedded.blobs;
        Ok(app)
    }

    /// Links and warms the components `placement` puts here (all of them
    /// when it is `None`). Their stores go to the servers that the manifest
    /// names, and the others to `embedded`.
    pub async fn start(
        prepared: &Prepared,
        placement: Option<&Placement>,
        embedded: &EmbeddedStores,
    ) -> anyhow::Result<App> {
        let process = Process {
            manifest: &prepared.manifest,
            embedded,
        };
        let mut shared = BTreeMap::new();
        for cap in prepared.capabilities() {
            if let Some(state) = cap.open(&process)? {
                shared.insert(cap, state);
            }
        }
        let version = match placement {
            Some(p) => p.version.clone(),
            None => prepared.version(&Plan::monolith(prepared.compiled.keys().cloned())),
        };
        let metrics = Arc::new(Metrics::default());
        let group = placement.map_or(weft_placer::MONOLITH_GROUP, |p| p.group.as_str());
        let handles = Arc::new(crate::link::handles::Handles::new(
            metrics.clone(),
            group,
            version.as_str(),
            crate::manifest::DeploySection::handle_lease(
                prepared.manifest.manifest.deploy.as_ref(),
            ),
        ));
        let (pools, fused) = link_all(prepared, placement, &shared, &version, &metrics, &handles)?;
        let mut warmed: Vec<&Arc<InstancePool>> = Vec::new();
        for pool in pools.values() {
            // A fused group's pool serves several names; it warms once.
            if warmed.iter().any(|w| Arc::ptr_eq(w, pool)) {
                continue;
            }
            warmed.push(pool);
            pool.warm_up()
                .await
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "{}: component '{}' failed to start",
                        prepared.manifest.path.display(),
                        pool.name()
                    )
                })?;
        }
        Ok(App {
            compiled: prepared
                .compiled
                .iter()
                .filter(|(n, _)| pools.contains_key(*n))
                .map(|(n, c)| (n.clone(), c.cache))
                .collect(),
            manifest: prepared.manifest.clone(),
            pools,
            data_file: None,
            blob_dir: None,
            version,
            group: placement
                .map_or(weft_placer::MONOLITH_GROUP, |p| p.group.as_str())
                .to_string(),
            metrics,
            handles,
            fused,
        })
    }

    /// Binds every listener, at its manifest address unless `overrides` has
    /// one for its name.
    pub async fn bind(
        &self,
        overrides: &BTreeMap<String, SocketAddr>,
    ) -> anyhow::Result<Vec<BoundListener>> {
        let addresses = listener_addresses(&self.manifest, overrides)?;
        self.bind_exactly(&addresses).await
    }

    /// Binds the listeners named in `addresses`, each at its address; their
    /// components must run here.
    pub async fn bind_exactly(
        &self,
        addresses: &BTreeMap<String, SocketAddr>,
    ) -> anyhow::Result<Vec<BoundListener>> {
        let mut bound = Vec::new();
        for (name, address) in addresses {
            let spec = self
                .manifest
                .manifest
                .listeners
                .get(name)
                .with_context(|| {
                    format!(
                        "{}: there is no listener '{name}'",
                        self.manifest.path.display()
                    )
                })?;
            let pool = self.pools.get(&spec.component).with_context(|| {
                format!(
                    "listener '{name}': component '{}' does not run in this process",
                    spec.component
                )
            })?;
            let socket = bind_listener(name, *address).await?;
            let stats = self.metrics.listener(ListenerKey {
                listener: name.clone(),
                version: self.version.to_string(),
            });
            let labels = ListenerLabels {
                app: &self.manifest.manifest.app.name,
                version: self.version.as_str(),
                group: &self.group,
            };
            let entry = HttpEntry::new(name, pool.clone(), stats, labels)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "{}: listener '{name}': component '{}' cannot serve HTTP",
                        self.manifest.path.display(),
                        spec.component
                    )
                })?;
            bound.push(BoundListener {
                name: name.clone(),
                component: spec.component.clone(),
                address: socket.local_addr()?,
                socket,
                entry: Arc::new(entry),
                limits: spec.limits(),
            });
        }
        Ok(bound)
    }

    /// Serves `listeners` until `shutdown` resolves, then drains them.
    pub async fn serve(&self, listeners: Vec<BoundListener>, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = serve_bound(listeners, stopped);
        shutdown.await;
        let _ = stop.send(true);
        while tasks.join_next().await.is_some() {}
    }
}

/// A listener bound to its socket, ready to serve.
pub struct BoundListener {
    /// Its name in the manifest.
    pub name: String,
    /// The component that serves it.
    pub component: String,
    /// The address it really listens on (port 0 resolved).
    pub address: SocketAddr,
    socket: TcpListener,
    entry: Arc<HttpEntry>,
    limits: listener::ConnectionLimits,
}

impl BoundListener {
    /// A turn at `socket`, this listener's socket as the manager shares it
    /// ([`crate::handoff`]), serving as this listener does; every answer
    /// names `version` as the manager's ingress would (with `sticky`
    /// sessions, in a cookie too).
    pub fn turn(&self, socket: std::net::TcpListener, version: &str, sticky: bool) -> Turn {
        let entry = self.entry.clone();
        let version = version.to_string();
        let handler = move |request: hyper::Request<hyper::body::Incoming>| {
            let named = sticky.then(|| crate::deploy::ingress::cookie_version(&request));
            let answer = entry.clone().handle(request);
            let version = version.clone();
            async move {
                let mut answer = answer.await;
                let sticky = named.as_ref().map(|n| n.as_deref());
                crate::deploy::ingress::stamp(answer.headers_mut(), &version, sticky);
                answer
            }
        };
        Turn::new(&self.name, socket, handler, self.limits)
    }
}

/// Serves each of `listeners` in a task of its own, until `stopped` turns
/// true; each task ends once its listener has drained.
pub fn serve_bound(
    listeners: Vec<BoundListener>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        let mut stopped = stopped.clone();
        let entry = l.entry;
        let handler = move |request| entry.clone().handle(request);
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        tasks.spawn(listener::serve(
            l.socket, l.name, handler, l.limits, shutdown,
        ));
    }
    tasks
}

/// Every listener's address: its manifest address unless `overrides` has
/// one for its name. An override for a listener the app lacks is an error.
pub fn listener_addresses(
    manifest: &ManifestFile,
    overrides: &BTreeMap<String, SocketAddr>,
) -> anyhow::Result<BTreeMap<String, SocketAddr>> {
    let listeners = &manifest.manifest.listeners;
    if let Some(name) = overrides.keys().find(|n| !listeners.contains_key(*n)) {
        bail!(
            "--listen {name}=...: {} has no listener '{name}'; its listeners are: {}",
            manifest.path.display(),
            listeners.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(listeners
        .iter()
        .map(|(name, spec)| {
            let address = match overrides.get(name) {
                Some(a) => *a,
                None => spec.address.parse().expect("checked by the manifest"),
            };
            (name.clone(), address)
        })
        .collect())
}

/// Binds listener `name`'s socket, with an error that says what to do.
pub async fn bind_listener(name: &str, address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| {
        format!(
            "listener '{name}': cannot listen on {address}; is another process using it? \
             Pick another with --listen {name}=127.0.0.1:PORT"
        )
    })
}

fn compile_all(
    engines: &Engines,
    manifest: &ManifestFile,
    cache: &CompileCache,
) -> anyhow::Result<BTreeMap<String, Compiled>> {
    let mut compiled = BTreeMap::new();
    for (name, spec) in &manifest.manifest.components {
        let started = std::time::Instant::now();
        let path = manifest.wasm_path(spec);
        let bytes = manifest.read_wasm(name, spec)?;
        let (component, outcome, concurrency) = cache
            .component(engines, &bytes, &path)
            .with_context(|| format!("{}: component '{name}'", manifest.path.display()))?;
        let world = World::reflect(component.engine(), &component.component_type());
        compiled.insert(
            name.clone(),
            Compiled {
                component,
                world,
                cache: outcome,
                load_time: started.elapsed(),
                digest: Sha256::digest(&bytes).to_vec(),
                concurrency,
            },
        );
    }
    Ok(compiled)
}

/// What every pool of one process is linked with.
struct Linking<'a> {
    prepared: &'a Prepared,
    placement: Option<&'a Placement>,
    shared: &'a BTreeMap<CapabilityRef, Shared>,
    version: String,
    metrics: &'a Metrics,
    handles: &'a Arc<crate::link::handles::Handles>,
    /// A slot per component of this process, filled once it is linked.
    slots: BTreeMap<String, PoolSlot>,
}

/// One pool to link: a component of the manifest, or a fused group's.
struct ToLink<'a> {
    /// How logs, errors and its sandbox name it.
    name: &'a str,
    spec: &'a crate::manifest::ComponentSpec,
    component: &'a Component,
    imports: &'a [crate::world::Interface],
    concurrency: crate::engine::Concurrency,
    wires: &'a [resolve::Wire],
    /// For a fused group, the member that imports each import.
    importers: Option<&'a BTreeMap<String, String>>,
}

impl Linking<'_> {
    fn group(&self) -> &str {
        self.placement
            .map_or(weft_placer::MONOLITH_GROUP, |p| p.group.as_str())
    }

    /// Links `one` and makes its pool.
    fn pool(&self, one: &ToLink<'_>) -> anyhow::Result<Arc<InstancePool>> {
        let manifest = &self.prepared.manifest;
        let name = one.name;
        let caller = Caller {
            name,
            group: self.group(),
            component: one.component,
            imports: one.imports,
            app: &manifest.manifest.app.name,
            version: &self.version,
            metrics: self.metrics,
            handles: self.handles,
            concurrency: one.concurrency,
            importers: one.importers,
        };
        let linker = link::linker_for(&caller, one.wires, |callee| {
            match (self.slots.get(callee), self.placement) {
                (Some(slot), _) => Ok(Callee::Local {
                    component: &self.prepared.compiled[callee].component,
                    slot: slot.clone(),
                }),
                (None, Some(p)) => match p.remote.get(callee) {
                    Some(replicas) => Ok(Callee::Remote {
                        transport: replicas.clone(),
                        version: p.version.clone(),
                    }),
                    None => Err(wasmtime::format_err!(
                        "component '{callee}' is called from here but is neither in this \
                         process nor in the routing table it was given"
                    )),
                },
                (None, None) => unreachable!("without a placement every component is local"),
            }
        })
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "{}: component '{name}' cannot be linked",
                manifest.path.display()
            )
        })?;
        let pre = linker
            .instantiate_pre(one.component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "{}: component '{name}' cannot be linked; if it imports a WASI version newer \
                     than weft provides, build it against an older one",
                    manifest.path.display()
                )
            })?;
        let mut parts = Parts::default();
        for cap in capability::ALL {
            let component = ComponentContext {
                name,
                spec: one.spec,
                shared: self.shared.get(&CapabilityRef(*cap)),
            };
            cap.sandbox(&component, &mut parts);
        }
        let sandbox = Sandbox {
            name: name.to_string(),
            group: self.group().to_string(),
            version: self.version.clone(),
            env: one
                .spec
                .grants
                .env
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
                .collect(),
            parts,
            call_timeout: one.spec.call_timeout(),
            memory_limit: one.spec.memory_limit(),
        };
        Ok(Arc::new(InstancePool::new(
            Arc::new(sandbox),
            pre,
            one.concurrency,
        )))
    }
}

/// Every pool of a process, by the name of the component it serves.
type Pools = BTreeMap<String, Arc<InstancePool>>;

/// A fused group's one component, which serves its members.
pub struct Fused {
    /// The members, in name order.
    pub members: Vec<String>,
    /// The composed component.
    pub component: Component,
    /// Whether it runs on the concurrent engine.
    concurrency: crate::engine::Concurrency,
}

/// Links the components of this process: each in a pool of its own, or,
/// when the placement's group is fused, all of them composed into one
/// ([`crate::fuse`]), whose pool serves every member.
fn link_all(
    prepared: &Prepared,
    placement: Option<&Placement>,
    shared: &BTreeMap<CapabilityRef, Shared>,
    version: &Version,
    metrics: &Metrics,
    handles: &Arc<crate::link::handles::Handles>,
) -> anyhow::Result<(Pools, Option<Fused>)> {
    let is_local = |name: &str| placement.is_none_or(|p| p.local.contains(name));
    let linking = Linking {
        prepared,
        placement,
        shared,
        version: version.to_string(),
        metrics,
        handles,
        slots: prepared
            .compiled
            .keys()
            .filter(|n| is_local(n))
            .map(|n| (n.clone(), PoolSlot::default()))
            .collect(),
    };
    let members: Vec<String> = linking.slots.keys().cloned().collect();
    if placement.is_some_and(|p| p.fuse) && members.len() > 1 {
        let fused = fuse_group(prepared, &linking, &members)?;
        let wires = crate::fuse::outer_wires(&members, &prepared.resolution)?;
        let importers = crate::fuse::importers(&members, &prepared.resolution);
        let name = crate::fuse::fused_name(&members);
        let spec = crate::fuse::merged_spec(&prepared.manifest.manifest, linking.group(), &members)
            .with_context(|| prepared.manifest.path.display().to_string())?;
        let world = World::reflect(fused.component.engine(), &fused.component.component_type());
        let pool = linking.pool(&ToLink {
            name: &name,
            spec: &spec,
            component: &fused.component,
            imports: &world.imports,
            concurrency: fused.concurrency,
            wires: &wires,
            importers: Some(&importers),
        })?;
        let mut pools = BTreeMap::new();
        for member in &members {
            let _ = linking.slots[member].set(pool.clone());
            pools.insert(member.clone(), pool.clone());
        }
        return Ok((pools, Some(fused)));
    }
    let mut pools = BTreeMap::new();
    for (name, c) in prepared.compiled.iter().filter(|(n, _)| is_local(n)) {
        let pool = linking.pool(&ToLink {
            name,
            spec: &prepared.manifest.manifest.components[name],
            component: &c.component,
            imports: &c.world.imports,
            concurrency: c.concurrency,
            wires: &prepared.resolution.wires[name],
            importers: None,
        })?;
        linking.slots[name]
            .set(pool.clone())
            .map_err(|_| anyhow::anyhow!("component '{name}' was linked twice"))?;
        pools.insert(name.clone(), pool);
    }
    Ok((pools, None))
}

/// Composes `members`, the components of `linking`'s fused group, and
/// compiles the result (through the compile cache).
fn fuse_group(
    prepared: &Prepared,
    linking: &Linking<'_>,
    members: &[String],
) -> anyhow::Result<Fused> {
    let manifest = &prepared.manifest;
    let group = linking.group();
    let mut binaries = Vec::new();
    for member in members {
        let spec = &manifest.manifest.components[member];
        binaries.push((member.clone(), manifest.read_wasm(member, spec)?));
    }
    let composed = crate::fuse::compose(binaries, &prepared.resolution).with_context(|| {
        format!(
            "{}: plan group '{group}' is fused, and its components cannot be composed",
            manifest.path.display()
        )
    })?;
    let origin = manifest
        .dir
        .join(format!("{}.fused.wasm", crate::fuse::fused_name(members)));
    let (component, _, concurrency) = prepared
        .cache
        .component(&prepared.engines, &composed, &origin)
        .with_context(|| format!("{}: plan group '{group}'", manifest.path.display()))?;
    Ok(Fused {
        members: members.to_vec(),
        component,
        concurrency,
    })
}
