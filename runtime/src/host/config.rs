//! `wasi:config/store`: the component's `[components.NAME.config]` table.

use super::bindings::wasi::config::store;
use super::{HostState, Sandbox};
use wasmtime::component::{HasData, Linker};

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
            .config
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone()))
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store::Error> {
        Ok(self.config.clone())
    }
}
