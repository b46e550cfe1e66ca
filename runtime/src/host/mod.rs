//! What the host gives each component instance: the store data and the
//! capabilities behind its imports.
//!
//! Every component has one [`Sandbox`], built from its manifest entry: its
//! name, environment variables and limits, and what each capability keeps
//! for it ([`Parts`]: its granted buckets, hosts, config values). Every
//! instance of the component has its own [`HostState`] (the `T` of its
//! `Store<T>`), made from that sandbox.
//!
//! Each capability is a [`Capability`](crate::capability::Capability)
//! implemented here:
//! - [`Wasi`] and [`HttpTypes`]: wasmtime-wasi's interfaces, granting nothing.
//! - [`stdio`]: guest stdout and stderr, prefixed with the component's name.
//! - [`outgoing`]: `wasi:http` hooks that allow only the granted hosts.
//! - [`keyvalue`], [`blobstore`], [`config`], [`logging`]: weft's own
//!   capability bindings, generated from `wit/host.wit`.

pub mod blobstore;
pub mod config;
pub mod keyvalue;
pub mod logging;
pub mod outgoing;
pub mod stdio;

use crate::capability::{Capability, CapabilityRef, Parts};
use crate::engine::Concurrency;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "weft:host/capabilities",
        imports: {
            "wasi:keyvalue": async | trappable,
            "wasi:blobstore": async | trappable,
        },
        with: {
            "wasi:keyvalue/store.bucket": super::keyvalue::Bucket,
            "wasi:blobstore/container.container": super::blobstore::Container,
            "wasi:blobstore/container.stream-object-names": super::blobstore::ObjectNames,
            "wasi:blobstore/types.incoming-value": super::blobstore::IncomingValue,
            "wasi:blobstore/types.outgoing-value": super::blobstore::OutgoingValue,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => crate::kv::KvError,
        },
    });
}

/// What one component may do and see; shared by all its instances.
pub struct Sandbox {
    /// The component's name in the manifest.
    pub name: String,
    /// The group it runs in, and the version: what its log lines carry.
    pub group: String,
    /// The deployment's version (under `weft run`, the app's own).
    pub version: String,
    /// Environment variables passed in (only the granted ones that are set).
    pub env: Vec<(String, String)>,
    /// What each capability keeps for it.
    pub parts: Parts,
    /// How long one call into it may run.
    pub call_timeout: Duration,
    /// How far one instance's memory may grow, in bytes.
    pub memory_limit: u64,
}

/// The data of one instance's `Store`.
pub struct HostState {
    pub(crate) sandbox: Arc<Sandbox>,
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outgoing: outgoing::OutgoingPolicy,
    pub(crate) limits: StoreLimits,
    /// When the call in progress must end; checked on every epoch tick.
    pub(crate) deadline: Instant,
    /// Handles it holds to other components' resources.
    pub(crate) held: crate::link::handles::Held,
}

impl HostState {
    /// Fresh state for a new instance of the sandbox's component.
    pub fn new(sandbox: Arc<Sandbox>) -> HostState {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdio::PrefixedOutput::stdout(&sandbox))
            .stderr(stdio::PrefixedOutput::stderr(&sandbox))
            .envs(&sandbox.env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(sandbox.memory_limit).unwrap_or(usize::MAX))
            .build();
        HostState {
            outgoing: outgoing::OutgoingPolicy::new(&sandbox),
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            limits,
            deadline: Instant::now() + sandbox.call_timeout,
            held: Default::default(),
            sandbox,
        }
    }

    /// Starts the clock of a new call.
    pub(crate) fn begin_call(&mut self) {
        self.deadline = Instant::now() + self.sandbox.call_timeout;
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outgoing,
        }
    }
}

/// Adds the capabilities in `caps` to a component's linker. Interfaces of
/// capabilities that are not in `caps` stay unlinked, so a component can
/// never reach them, whatever its imports say.
pub fn add_capabilities<'a>(
    linker: &mut Linker<HostState>,
    caps: impl IntoIterator<Item = &'a CapabilityRef>,
    concurrency: Concurrency,
) -> wasmtime::Result<()> {
    // wasi:cli and friends are linked for everyone: ordinary toolchains import
    // them, and the WasiCtx above grants nothing through them. Components
    // on the concurrent engine get WASI 0.3's as well (Rust's standard
    // library still imports WASI 0.2's).
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    if concurrency == Concurrency::On {
        wasmtime_wasi::p3::add_to_linker(linker)?;
    }
    for cap in caps {
        cap.link(linker, concurrency)?;
    }
    Ok(())
}

/// `wasi:cli`, `wasi:io`, `wasi:clocks`, `wasi:random`, `wasi:filesystem`
/// and `wasi:sockets`: linked for every component (see
/// [`add_capabilities`]), and empty but for what the sandbox grants.
pub struct Wasi;

impl Capability for Wasi {
    fn name(&self) -> &'static str {
        "wasi"
    }

    fn serves(&self, interface: &str) -> bool {
        let package = interface.rsplit_once('/').map_or(interface, |(p, _)| p);
        matches!(
            package,
            "wasi:cli"
                | "wasi:io"
                | "wasi:clocks"
                | "wasi:random"
                | "wasi:filesystem"
                | "wasi:sockets"
        )
    }

    fn link(&self, _linker: &mut Linker<HostState>, _: Concurrency) -> wasmtime::Result<()> {
        Ok(())
    }
}

/// `wasi:http/types`, used by every HTTP handler.
pub struct HttpTypes;

impl Capability for HttpTypes {
    fn name(&self) -> &'static str {
        "http"
    }

    fn serves(&self, interface: &str) -> bool {
        interface == "wasi:http/types"
    }

    fn link(
        &self,
        linker: &mut Linker<HostState>,
        concurrency: Concurrency,
    ) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::bindings::http::types::add_to_linker::<
            _,
            wasmtime_wasi_http::WasiHttp,
        >(linker, &Default::default(), HostState::http)?;
        if concurrency == Concurrency::On {
            wasmtime_wasi_http::p3::bindings::http::types::add_to_linker::<
                _,
                wasmtime_wasi_http::WasiHttp,
            >(linker, HostState::http)?;
        }
        Ok(())
    }
}
