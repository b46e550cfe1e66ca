//! The wasmtime engines of a weft process, and their epoch tickers.
//!
//! A process has up to two [`Engines`]: the plain one, without the component
//! model's concurrency support, for components built against WASI 0.2 with
//! plain values in their interfaces; and the concurrent one, made the first
//! time a component needs it, for components that use async functions,
//! `stream`s, `future`s or WASI 0.3. With concurrency support on, every
//! store sets up the machinery of concurrent calls and every call goes
//! through it, which makes a synchronous call slower (wasmtime #12836); so
//! a component runs on the concurrent engine only when it must, and calls
//! between sync components keep the plain path even in an app that mixes
//! both. Calls between components always cross stores through the host,
//! so a component on one engine calls a component on the other freely.
//!
//! Instances come from the pooling allocator, so making a fresh one is a few
//! microseconds. Epoch interruption drives the per-call timeout: a thread
//! bumps the epoch every [`EPOCH_TICK`], and each store checks its deadline
//! then (see `pool`), yielding to the executor in between so that one busy
//! guest cannot starve the others.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances, and so how late a timeout can fire.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances (and memories) that may be alive at once, across all
/// components of one engine.
pub const MAX_INSTANCES: u32 = 512;

/// Whether an engine runs the component model's concurrency: async
/// functions, streams, futures, `error-context` and concurrent calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Synchronous calls only: the fast path.
    Off,
    /// The component model's async, as WASI 0.3 needs.
    On,
}

static CONCURRENT_EVERYWHERE: AtomicBool = AtomicBool::new(false);

/// Compiles every component loaded from now on for the concurrent engine,
/// sync ones too: what the benchmark uses to show what concurrency support
/// costs a synchronous call. `WEFT_CONCURRENT_ENGINE=1` sets it for a
/// `weft` process.
pub fn use_concurrent_everywhere(on: bool) {
    CONCURRENT_EVERYWHERE.store(on, Ordering::Relaxed);
}

/// Whether [`use_concurrent_everywhere`] is on.
pub fn concurrent_everywhere() -> bool {
    CONCURRENT_EVERYWHERE.load(Ordering::Relaxed)
}

/// The engines of one process: the plain one, and the concurrent one once
/// a component needs it.
pub struct Engines {
    plain: Engine,
    concurrent: OnceLock<Engine>,
}

impl Engines {
    /// The plain engine, with its ticker; the concurrent one comes later.
    pub fn new() -> wasmtime::Result<Engines> {
        Ok(Engines {
            plain: new_engine(Concurrency::Off)?,
            concurrent: OnceLock::new(),
        })
    }

    /// The engine without concurrency support.
    pub fn plain(&self) -> &Engine {
        &self.plain
    }

    /// The engine with concurrency support, made on first use.
    pub fn concurrent(&self) -> wasmtime::Result<&Engine> {
        if let Some(engine) = self.concurrent.get() {
            return Ok(engine);
        }
        let engine = new_engine(Concurrency::On)?;
        Ok(self.concurrent.get_or_init(|| engine))
    }

    /// The engine of `concurrency`.
    pub fn get(&self, concurrency: Concurrency) -> wasmtime::Result<&Engine> {
        match concurrency {
            Concurrency::Off => Ok(self.plain()),
            Concurrency::On => self.concurrent(),
        }
    }
}

/// Builds an engine and starts its epoch ticker, which stops by itself when
/// the last clone of the engine is dropped.
pub fn new_engine(concurrency: Concurrency) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_INSTANCES)
        .total_memories(MAX_INSTANCES)
        .total_tables(MAX_INSTANCES * 4)
        .total_core_instances(MAX_INSTANCES * 8)
        .total_stacks(MAX_INSTANCES);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match concurrency {
        Concurrency::Off => {
            config.concurrency_support(false);
        }
        Concurrency::On => {
            config
                .concurrency_support(true)
                .wasm_component_model_async(true)
                .wasm_component_model_more_async_builtins(true)
                .wasm_component_model_async_stackful(true)
                .wasm_component_model_error_context(true);
        }
    }
    let engine = Engine::new(&config)?;
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("weft-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map_err(|e| wasmtime::format_err!("cannot start the epoch thread: {e}"))?;
    Ok(engine)
}
