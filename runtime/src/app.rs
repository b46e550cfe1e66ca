//! Loading an app: from a manifest to linked, warm instance pools.
//!
//! [`App::load`] runs call-path steps 1 to 3 and 5 of the design: it reads
//! and compiles every component (through the compile cache), reflects its
//! imports and exports, resolves every import (failing with every problem at
//! once, before anything runs), links each component, and warms one instance
//! of each. [`App::serve`] then serves the listeners until shutdown.

use crate::cache::{CacheOutcome, CompileCache};
use crate::capability::Capability;
use crate::host::Sandbox;
use crate::kv::KeyValueStore;
use crate::kv::redb::RedbStore;
use crate::link::{self, Callee, PoolSlot};
use crate::listener::{self, HttpEntry};
use crate::manifest::{HostPattern, ManifestFile};
use crate::pool::InstancePool;
use crate::resolve::{self, Resolution};
use crate::world::World;
use anyhow::{Context as _, bail};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::Component;

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
    /// Whether it came from the compile cache.
    pub cache: CacheOutcome,
}

/// A loaded app: every component linked, with a warm pool each.
pub struct App {
    /// The manifest it was loaded from.
    pub manifest: ManifestFile,
    /// Every component's pool, by name.
    pub pools: BTreeMap<String, Arc<InstancePool>>,
    /// How each component was compiled, by name.
    pub compiled: BTreeMap<String, CacheOutcome>,
    /// Where key-value data lives, if any component uses it.
    pub data_file: Option<PathBuf>,
}

impl App {
    /// Loads, resolves, links and warms the app in `manifest`.
    pub async fn load(manifest: ManifestFile, options: &LoadOptions) -> anyhow::Result<App> {
        let engine = crate::engine::new_engine().map_err(anyhow::Error::from)?;
        let compiled = compile_all(&engine, &manifest, &options.cache)?;
        let worlds: BTreeMap<String, World> = compiled
            .iter()
            .map(|(name, c)| (name.clone(), c.world.clone()))
            .collect();
        let resolution = resolve::resolve(&manifest.path, &manifest.manifest, &worlds)?;

        let uses_kv = resolution
            .wires
            .values()
            .flatten()
            .any(|w| w.provider == resolve::Provider::Capability(Capability::KeyValue));
        let data_file = uses_kv.then(|| {
            let dir = options
                .data_dir
                .clone()
                .unwrap_or_else(|| manifest.dir.join(".weft").join("data"));
            RedbStore::file_in(&dir)
        });
        let keyvalue: Option<Arc<dyn KeyValueStore>> = match &data_file {
            Some(file) => Some(Arc::new(RedbStore::open(file)?)),
            None => None,
        };

        let pools = link_all(&engine, &manifest, &compiled, &resolution, keyvalue)?;
        for pool in pools.values() {
            pool.warm_up()
                .await
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "{}: component '{}' failed to start",
                        manifest.path.display(),
                        pool.name()
                    )
                })?;
        }
        Ok(App {
            compiled: compiled.iter().map(|(n, c)| (n.clone(), c.cache)).collect(),
            manifest,
            pools,
            data_file,
        })
    }

    /// Binds every listener, at its manifest address unless `overrides` has
    /// one for its name.
    pub async fn bind(
        &self,
        overrides: &BTreeMap<String, SocketAddr>,
    ) -> anyhow::Result<Vec<BoundListener>> {
        for name in overrides.keys() {
            if !self.manifest.manifest.listeners.contains_key(name) {
                bail!(
                    "--listen {name}=...: {} has no listener '{name}'; its listeners are: {}",
                    self.manifest.path.display(),
                    self.manifest
                        .manifest
                        .listeners
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        let mut bound = Vec::new();
        for (name, spec) in &self.manifest.manifest.listeners {
            let address = match overrides.get(name) {
                Some(a) => *a,
                None => spec.address.parse().expect("checked by the manifest"),
            };
            let socket = tokio::net::TcpListener::bind(address).await.with_context(|| {
                format!(
                    "listener '{name}': cannot listen on {address}; is another process using it? \
                     Pick another with --listen {name}=127.0.0.1:PORT"
                )
            })?;
            let entry = HttpEntry::new(name, self.pools[&spec.component].clone())
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
            });
        }
        Ok(bound)
    }

    /// Serves `listeners` until `shutdown` resolves, then drains them.
    pub async fn serve(&self, listeners: Vec<BoundListener>, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for l in listeners {
            let mut stopped = stopped.clone();
            tasks.spawn(listener::serve(l.socket, l.entry, async move {
                let _ = stopped.wait_for(|s| *s).await;
            }));
        }
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
    socket: tokio::net::TcpListener,
    entry: Arc<HttpEntry>,
}

fn compile_all(
    engine: &Engine,
    manifest: &ManifestFile,
    cache: &CompileCache,
) -> anyhow::Result<BTreeMap<String, Compiled>> {
    let mut compiled = BTreeMap::new();
    for (name, spec) in &manifest.manifest.components {
        let path = manifest.wasm_path(spec);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "{}: component '{name}': cannot read {}; build it first (weft run --build) or fix \
                 components.{name}.wasm",
                manifest.path.display(),
                path.display()
            )
        })?;
        let (component, outcome) = cache
            .component(engine, &bytes, &path)
            .with_context(|| format!("{}: component '{name}'", manifest.path.display()))?;
        let world = World::reflect(engine, &component.component_type());
        compiled.insert(
            name.clone(),
            Compiled {
                component,
                world,
                cache: outcome,
            },
        );
    }
    Ok(compiled)
}

fn link_all(
    engine: &Engine,
    manifest: &ManifestFile,
    compiled: &BTreeMap<String, Compiled>,
    resolution: &Resolution,
    keyvalue: Option<Arc<dyn KeyValueStore>>,
) -> anyhow::Result<BTreeMap<String, Arc<InstancePool>>> {
    let slots: BTreeMap<&str, PoolSlot> = compiled
        .keys()
        .map(|n| (n.as_str(), PoolSlot::default()))
        .collect();
    let mut pools = BTreeMap::new();
    for (name, c) in compiled {
        let spec = &manifest.manifest.components[name];
        let linker = link::linker_for(
            engine,
            &resolution.wires[name],
            &c.world.imports,
            |callee| Callee {
                component: &compiled[callee].component,
                slot: slots[callee].clone(),
            },
        )
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "{}: component '{name}' cannot be linked",
                manifest.path.display()
            )
        })?;
        let pre = linker
            .instantiate_pre(&c.component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "{}: component '{name}' cannot be linked; if it imports a WASI version newer \
                     than weft provides, build it against an older one",
                    manifest.path.display()
                )
            })?;
        let sandbox = Sandbox {
            name: name.clone(),
            buckets: spec.grants.keyvalue.clone(),
            keyvalue: keyvalue.clone(),
            outgoing: spec
                .grants
                .outgoing_http
                .iter()
                .map(|h| HostPattern::parse(h).expect("checked by the manifest"))
                .collect(),
            env: spec
                .grants
                .env
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
                .collect(),
            config: spec
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            call_timeout: spec.call_timeout(),
            memory_limit: spec.memory_limit(),
        };
        let pool = Arc::new(InstancePool::new(Arc::new(sandbox), pre));
        slots[name.as_str()]
            .set(pool.clone())
            .map_err(|_| anyhow::anyhow!("component '{name}' was linked twice"))?;
        pools.insert(name.clone(), pool);
    }
    Ok(pools)
}
