//! weft's runtime: it loads an app of WebAssembly components from its
//! manifest, links the components to each other and to the host's
//! capabilities, and serves the app's listeners.
//!
//! # How it is organised
//!
//! The call path, in the order a `weft run` walks it:
//!
//! - [`manifest`]: `weft.toml`, parsed and checked (pure); [`file_input`]
//!   reads it and the binaries it names only when they are regular files
//!   within a size limit.
//! - [`engine`]: the plain wasmtime engine, and the concurrent one that
//!   runs only the components that use the component model's async
//!   (WASI 0.3).
//! - [`cache`]: compiled components on disk, keyed by content and engine.
//! - [`world`]: what each component imports and exports, as plain data.
//! - [`capability`] and [`resolve`]: who serves each import, and every
//!   reason an app cannot be linked, found before anything runs (pure).
//! - [`link`]: a `Linker` per component, with host capabilities and
//!   forwarders that call other components' exports; `link::handles`
//!   keeps the resource handles that pass between components, here and
//!   across processes, and `link::pipes` moves streams and futures between
//!   stores; [`call`] is a call of a component in another process, apart
//!   from how it travels.
//! - [`pool`]: warm instances per component, with per-call deadlines.
//! - [`heap`]: the C allocator told to keep freed buffers for reuse.
//! - [`capability`], [`host`], [`kv`] and [`blob`]: the capabilities as
//!   plug-ins, the store data each instance gets, and the key-value and
//!   blob backends.
//! - [`listener`]: HTTP into a component's `wasi:http/incoming-handler`
//!   (WASI 0.2) or `wasi:http/handler` (WASI 0.3).
//! - [`app`]: all of the above, from a manifest to a serving app.
//!
//! Split across processes (`weft deploy`):
//!
//! - [`codec`]: component-model values as compact bytes (pure).
//! - [`version`]: deployment versions and function fingerprints (pure).
//! - [`discovery`]: the live set of healthy replicas of a group: pushed by
//!   the manager, a static list, or DNS.
//! - [`rpc`]: the gRPC client and server of cross-process calls (with
//!   `Invoke.Flow` for calls that carry streams and futures), and the
//!   manager's key-value store served to workers.
//! - [`deploy`]: the manager, which spawns and supervises workers and
//!   proxies the listeners, the worker, which hosts one group, and the
//!   rollout driver that both machines and clusters use.
//! - [`kube`]: the Kubernetes objects of one version and of the app's
//!   ingress, and the traffic table (pure), for `weft kube`.
//! - [`cluster`]: weft in a cluster: the ingress that splits listeners
//!   between versions (`weft ingress`), and `weft rollout --kube`.
//!
//! - [`telemetry`]: per-method and per-listener metrics, and the admin
//!   address that serves them; `telemetry::profile` turns two snapshots
//!   into the call profile that `weft profile` writes.
//!
//! Choosing a plan: `weft_placer::choose` (pure) picks it from a profile;
//! `rpc::calibrate` times a call between processes on this machine;
//! `deploy::proposal` is the manager's periodic re-planning.
//!
//! - [`commands`]: the `weft` subcommands.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use weft_runtime::app::{App, LoadOptions};
//! use weft_runtime::cache::CompileCache;
//! use weft_runtime::manifest::ManifestFile;
//!
//! let manifest = ManifestFile::load("samples/hello".as_ref())?;
//! let options = LoadOptions { data_dir: None, cache: CompileCache::new(CompileCache::default_dir()) };
//! let app = App::load(manifest, &options).await?;
//! let listeners = app.bind(&Default::default()).await?;
//! app.serve(listeners, async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

/// Prints a line on stdout, as weft's commands report what they do. A
/// closed stdout (`weft run | head`) must not stop a process that serves,
/// so write errors are ignored. Declared before the modules, so all of them
/// can use it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod app;
pub mod blob;
pub mod builder;
pub mod cache;
pub mod call;
pub mod capability;
pub mod cluster;
pub mod codec;
pub mod commands;
pub mod deploy;
pub mod discovery;
pub mod engine;
pub mod file_input;
pub mod fuse;
pub mod handoff;
pub mod heap;
pub mod host;
pub mod kube;
pub mod kv;
pub mod link;
pub mod listener;
pub mod manifest;
pub mod pool;
pub mod resolve;
pub mod rpc;
pub mod telemetry;
pub mod version;
pub mod world;
