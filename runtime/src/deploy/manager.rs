//! The manager: what `weft deploy` runs. It checks the app, starts a
//! [`WorkerSet`] for its version, serves the manager's gRPC service (the
//! key-value store the workers share) and the listeners through the
//! [`Ingress`], and on Ctrl-C drains the listeners, then the workers.

use crate::app::{Prepared, bind_listener, listener_addresses};
use crate::cache::CompileCache;
use crate::deploy::ingress::{Backend, Ingress, Replica};
use crate::deploy::lock::AppLock;
use crate::deploy::state::DeployState;
use crate::deploy::versions::VersionStore;
use crate::deploy::workers::{self, Deployment, WorkerSet};
use crate::kv::KeyValueStore;
use crate::kv::redb::RedbStore;
use crate::listener;
use crate::manifest::ManifestFile;
use crate::rpc::auth::{Check, Token};
use crate::rpc::store::StoreService;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weft_placer::Plan;
use weft_proto::v1::store_server::StoreServer;

/// What `weft deploy` was asked to do.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// A weft.toml, or a folder that holds one.
    pub path: PathBuf,
    /// `monolith`, `split`, a plan file, or `None` for the manifest's `[deploy]` table.
    pub plan: Option<String>,
    /// Whether to run each component's `build` command first.
    pub build: bool,
    /// Where the key-value store keeps its file, instead of `.weft/data`.
    pub data_dir: Option<PathBuf>,
    /// Listener addresses that replace the manifest's, by listener name.
    pub listen: BTreeMap<String, SocketAddr>,
    /// The compile cache directory.
    pub cache_dir: PathBuf,
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

/// Deploys the app, serves it until `shutdown` resolves, then drains the
/// listeners and stops the workers.
pub async fn run(options: DeployOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut manifest = ManifestFile::load(&options.path)?;
    manifest.path = std::path::absolute(&manifest.path)
        .with_context(|| format!("cannot resolve {}", manifest.path.display()))?;
    manifest.dir = manifest
        .path
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    // Taken before anything else, so that a second `weft deploy` of the
    // app changes nothing of the running one.
    let _lock = AppLock::acquire(&manifest.dir, &manifest.path)?;
    if options.build {
        crate::builder::build_components(&manifest)?;
    }
    let plan = choose_plan(options.plan.as_deref(), &manifest)?;
    let cache_dir =
        std::path::absolute(&options.cache_dir).context("cannot resolve the cache directory")?;
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
    // Workers load from the version's snapshot, never from the app's own
    // files, which the user may edit or rebuild while the version runs.
    let snapshot = VersionStore::new(&manifest.dir).snapshot(&manifest, &plan)?;
    anyhow::ensure!(
        snapshot.version == version,
        "{}: the app's files changed while it was being deployed (version {version} was checked, \
         {} was stored); deploy again",
        manifest.path.display(),
        snapshot.version
    );
    say!("weft: version {version}, plan:");
    for (group, g) in &plan.groups {
        say!(
            "weft:   group {group} ×{}: {}",
            g.replicas,
            g.components.join(", ")
        );
    }

    // Every call between this deployment's processes carries its token;
    // `weft rollout` and `weft status` read it from the file.
    let token = Token::generate().context("cannot make the deployment's token")?;
    let token_file = manifest.dir.join(".weft").join("token");
    token
        .write_file(&token_file)
        .with_context(|| format!("cannot write {}", token_file.display()))?;
    let server_token = token.clone();

    // The manager's gRPC service, with the key-value store workers share.
    let store: Option<Arc<dyn KeyValueStore>> = if uses_keyvalue {
        let dir = options
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
            .layer(tonic::service::InterceptorLayer::new(Check(server_token)))
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
    let addresses = listener_addresses(&manifest, &options.listen)?;
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
    let replicas = workers::layout_on_free_ports(&plan, &listener_components)
        .context("cannot find free loopback ports for the workers")?;
    let deployment = Deployment {
        app: name.clone(),
        manifest: snapshot.manifest.clone(),
        plan,
        version: version.clone(),
        cache_dir,
        control,
        serves_store: uses_keyvalue,
        token: token.clone(),
    };
    let workers = WorkerSet::new(deployment, replicas, DeployState::path(&manifest.dir))?;
    say!(
        "weft: starting {} worker(s); manager on {control}",
        workers.replicas().len()
    );
    workers.write_state();
    // Ctrl-C while the workers load stops the deployment there.
    tokio::pin!(shutdown);
    let started = tokio::select! {
        started = workers.start() => started,
        () = &mut shutdown => Err(anyhow::anyhow!("stopped while the workers were starting")),
    };
    if let Err(e) = started {
        workers.stop().await;
        return Err(e);
    }
    for r in workers.replicas() {
        say!("weft: worker {} serving on {}", r.name(), r.address);
    }

    let (stop_listeners, listeners_stopped) = tokio::sync::watch::channel(false);
    let mut serving = tokio::task::JoinSet::new();
    for (listener, address, socket) in sockets {
        let component = &listener_components[&listener];
        let ingress = Arc::new(Ingress::new(&listener, component, false));
        let backend = Arc::new(Backend::new(
            version.clone(),
            replicas_of(&workers, &listener),
        ));
        backend.set_weight(100);
        ingress.add(backend);
        say!("weft: listener {listener} on http://{address} (component {component})");
        let handler = move |request| ingress.clone().handle(request);
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
    workers.stop().await;
    let _ = stop_control.send(true);
    if let Ok(Err(e)) = control_server.await {
        tracing::warn!("the manager's gRPC server failed: {e}");
    }
    say!("weft: stopped");
    Ok(())
}

/// The replicas of `workers` that serve `listener`, for its ingress.
fn replicas_of(workers: &WorkerSet, listener: &str) -> Vec<Arc<Replica>> {
    workers
        .replicas()
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let address = *r.listeners.get(listener)?;
            Some(Arc::new(Replica::new(address, workers.rotation(i))))
        })
        .collect()
}
