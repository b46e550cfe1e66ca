//! `weft deploy`: the app split over worker processes by a plan, with this
//! process as their manager.

use crate::app::{Prepared, bind_listener, listener_addresses};
use crate::cache::CompileCache;
use crate::deploy::manager::{self, Deployment, Manager};
use crate::deploy::proxy::Proxy;
use crate::deploy::state::DeployState;
use crate::kv::KeyValueStore;
use crate::kv::redb::RedbStore;
use crate::listener;
use crate::manifest::ManifestFile;
use crate::rpc::store::StoreService;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weft_placer::Plan;
use weft_proto::v1::store_server::StoreServer;

/// Deploy an app as several processes on this machine: one worker per
/// replica of every group of a plan, managed by this process.
#[derive(Debug, clap::Args)]
pub struct DeployCommand {
    /// A weft.toml, or a folder that holds one.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The plan: `monolith`, `split`, or a plan file [default: the manifest's [deploy] table, else monolith].
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<String>,
    /// Run each component's `build` command first.
    #[arg(long)]
    pub build: bool,
    /// Where embedded capabilities keep their data [default: .weft/data beside the manifest].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen for listener NAME on ADDR instead of the manifest's address (repeatable).
    #[arg(long, value_name = "NAME=ADDR", value_parser = super::run::parse_listen)]
    pub listen: Vec<(String, SocketAddr)>,
    /// Where compiled components are cached [default: $WEFT_CACHE_DIR, else ~/.cache/weft].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// The plan named by `--plan`, else the manifest's `[deploy]` table, else
/// the monolith.
pub fn choose_plan(choice: Option<&str>, manifest: &ManifestFile) -> anyhow::Result<Plan> {
    let components = manifest.manifest.components.keys();
    if let Some(plan) = choice.and_then(|name| Plan::builtin(name, components.clone())) {
        return Ok(plan);
    }
    match choice {
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| {
                format!(
                    "--plan {file}: cannot read the plan file; give `monolith`, `split` or the \
                     path of a plan file"
                )
            })?;
            Ok(Plan::from_str(&text, file, components)?)
        }
        None => Ok(manifest
            .manifest
            .deploy
            .clone()
            .unwrap_or_else(|| Plan::monolith(components))),
    }
}

impl DeployCommand {
    /// Starts the workers, serves the listeners, and returns after Ctrl-C
    /// (or SIGTERM) once everything has drained.
    pub async fn execute(self) -> anyhow::Result<()> {
        let shutdown = super::run::shutdown_signal()?;
        let mut manifest = ManifestFile::load(&self.path)?;
        manifest.path = std::path::absolute(&manifest.path)
            .with_context(|| format!("cannot resolve {}", manifest.path.display()))?;
        manifest.dir = manifest
            .path
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf();
        if self.build {
            crate::builder::build_components(&manifest)?;
        }
        let plan = choose_plan(self.plan.as_deref(), &manifest)?;
        let cache_dir =
            std::path::absolute(self.cache_dir.unwrap_or_else(CompileCache::default_dir))
                .context("cannot resolve the cache directory")?;
        let name = manifest.manifest.app.name.clone();
        say!(
            "weft: loading app '{name}' from {}",
            manifest.path.display()
        );
        // Compiling here checks the whole app before any worker starts, and
        // fills the compile cache the workers then load from.
        let prepared = Prepared::load(manifest.clone(), &CompileCache::new(cache_dir.clone()))?;
        let version = prepared.version(&plan);
        let uses_keyvalue = prepared.uses_keyvalue();
        drop(prepared);
        say!("weft: version {version}, plan:");
        for (group, g) in &plan.groups {
            say!(
                "weft:   group {group} ×{}: {}",
                g.replicas,
                g.components.join(", ")
            );
        }

        // The manager's gRPC service, with the key-value store workers share.
        let store: Option<Arc<dyn KeyValueStore>> = if uses_keyvalue {
            let dir = self
                .data_dir
                .clone()
                .unwrap_or_else(|| manifest.dir.join(".weft").join("data"));
            let file = RedbStore::file_in(&dir);
            let store = RedbStore::open(&file)?;
            say!(
                "weft: key-value data in {} (served to the workers)",
                file.display()
            );
            Some(Arc::new(store))
        } else {
            None
        };
        let control_socket = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the manager's control address on 127.0.0.1")?;
        let control = control_socket.local_addr()?;
        let (stop_control, control_stopped) = tokio::sync::watch::channel(false);
        let store_service = store.map(|s| {
            StoreServer::new(StoreService::new(s, version.clone()))
                .max_decoding_message_size(crate::rpc::MAX_MESSAGE)
                .max_encoding_message_size(crate::rpc::MAX_MESSAGE)
        });
        let control_server = tokio::spawn(async move {
            let mut stopped = control_stopped;
            tonic::transport::Server::builder()
                .add_optional_service(store_service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(control_socket)
                        .with_nodelay(Some(true)),
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                )
                .await
        });

        // Listeners are bound before any worker starts, so a busy port fails fast.
        let overrides = super::run::listen_overrides(self.listen)?;
        let addresses = listener_addresses(&manifest, &overrides)?;
        let mut sockets = Vec::new();
        for (listener, address) in &addresses {
            let socket = bind_listener(listener, *address).await?;
            sockets.push((listener.clone(), socket.local_addr()?, socket));
        }
        let listener_components: BTreeMap<String, String> = manifest
            .manifest
            .listeners
            .iter()
            .map(|(n, l)| (n.clone(), l.component.clone()))
            .collect();
        let replicas = manager::layout_on_free_ports(&plan, &listener_components)
            .context("cannot find free loopback ports for the workers")?;
        let deployment = Deployment {
            app: name.clone(),
            manifest: manifest.path.clone(),
            plan,
            version: version.clone(),
            cache_dir,
            control,
            serves_store: uses_keyvalue,
        };
        let manager = Manager::new(deployment, replicas, DeployState::path(&manifest.dir))?;
        say!(
            "weft: starting {} worker(s); manager on {control}",
            manager.replicas().len()
        );
        manager.write_state();
        // Ctrl-C while the workers load stops the deployment there.
        tokio::pin!(shutdown);
        let started = tokio::select! {
            started = manager.start() => started,
            () = &mut shutdown => Err(anyhow::anyhow!("stopped while the workers were starting")),
        };
        if let Err(e) = started {
            manager.stop().await;
            return Err(e);
        }
        for r in manager.replicas() {
            say!("weft: worker {} serving on {}", r.name(), r.address);
        }

        let (stop_listeners, listeners_stopped) = tokio::sync::watch::channel(false);
        let mut serving = tokio::task::JoinSet::new();
        for (listener, address, socket) in sockets {
            let component = &listener_components[&listener];
            let behind: Vec<SocketAddr> = manager
                .replicas()
                .iter()
                .filter_map(|r| r.listeners.get(&listener).copied())
                .collect();
            let proxy = Arc::new(Proxy::new(&listener, component, behind));
            say!("weft: listener {listener} on http://{address} (component {component})");
            let handler = move |request| proxy.clone().handle(request);
            let mut stopped = listeners_stopped.clone();
            serving.spawn(listener::serve(socket, listener, handler, async move {
                let _ = stopped.wait_for(|s| *s).await;
            }));
        }
        say!("weft: app '{name}' is running, version {version}; press Ctrl-C to stop");
        shutdown.await;
        say!("weft: stopping: draining requests, then the workers");
        let _ = stop_listeners.send(true);
        while serving.join_next().await.is_some() {}
        manager.stop().await;
        let _ = stop_control.send(true);
        if let Ok(Err(e)) = control_server.await {
            tracing::warn!("the manager's gRPC server failed: {e}");
        }
        say!("weft: stopped");
        Ok(())
    }
}
