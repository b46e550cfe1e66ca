//! `wasi:config/store`: the component's `[components.NAME.config]` table.

use super::bindings::wasi::config::store;
use super::{HostState, Sandbox};
use crate::capability::{Capability, ComponentContext, Parts};
use crate::engine::Concurrency;
use wasmtime::component::{HasData, Linker};

/// `wasi:config/store`: the component's `[config]` table.
pub struct Config;

/// The component's `[config]` values.
struct Values(Vec<(String, String)>);

impl Capability for Config {
    fn name(&self) -> &'static str {
        "config"
    }

    fn serves(&self, interface: &str) -> bool {
        interface.starts_with("wasi:config/")
    }

    fn link(&self, linker: &mut Linker<HostState>, _: Concurrency) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }

    fn sandbox(&self, component: &ComponentContext<'_>, parts: &mut Parts) {
        let values = component.spec.config.iter();
        parts.insert(Values(
            values.map(|(k, v)| (k.clone(), v.clone())).collect(),
        ));
    }
}

impl Sandbox {
    fn config(&self) -> &[(String, String)] {
        self.parts.get::<Values>().map_or(&[], |v| &v.0)
    }
}

struct ConfigData;

impl HasData for ConfigData {
    type Data<'a> = &'a Sandbox;
}

/// Links `wasi:config/store`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    store::add_to_linker::<_, ConfigData>(linker, |state| &*state.sandbox)
}

impl store::Host for &Sandbox {
    fn get(&mut self, key: String) -> Result<Option<String>, store::Error> {
        Ok(self
            .config()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone()))
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store::Error> {
        Ok(self.config().to_vec())
    }
}
