//! The one wasmtime [`Engine`] of a weft process, and its epoch ticker.
//!
//! Instances come from the pooling allocator, so making a fresh one is a few
//! microseconds. Epoch interruption drives the per-call timeout: a thread
//! bumps the epoch every [`EPOCH_TICK`], and each store checks its deadline
//! then (see `pool`), yielding to the executor in between so that one busy
//! guest cannot starve the others.

use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances, and so how late a timeout can fire.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances (and memories) that may be alive at once, across all components.
pub const MAX_INSTANCES: u32 = 512;

/// Builds the engine and starts its epoch ticker, which stops by itself when
/// the last clone of the engine is dropped.
pub fn new_engine() -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_INSTANCES)
        .total_memories(MAX_INSTANCES)
        .total_tables(MAX_INSTANCES * 4)
        .total_core_instances(MAX_INSTANCES * 8)
        .total_stacks(MAX_INSTANCES);
    let mut config = Config::new();
    // No component-model async (streams, futures, `call_concurrent`): weft
    // refuses such imports, and leaving it on makes every store set up the
    // concurrent-call machinery and every call go through it.
    config
        .wasm_component_model(true)
        .concurrency_support(false)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
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
