//! The kvcounter sample's counter: counters in the "counts" bucket,
//! incremented atomically.

wit_bindgen::generate!({
    path: ["../../../wit/deps/keyvalue", "../wit"],
    world: "demo:kvcounter/counter-component",
    generate_all,
});

use exports::demo::kvcounter::counter::Guest;
use wasi::keyvalue::{atomics, store};

const BUCKET: &str = "counts";

struct Counter;

fn bucket() -> Result<store::Bucket, String> {
    store::open(BUCKET).map_err(|e| format!("cannot open bucket '{BUCKET}': {e:?}"))
}

impl Guest for Counter {
    fn increment(name: String, by: u64) -> Result<u64, String> {
        atomics::increment(&bucket()?, &name, by).map_err(|e| format!("increment failed: {e:?}"))
    }

    fn get(name: String) -> Result<u64, String> {
        match bucket()?
            .get(&name)
            .map_err(|e| format!("get failed: {e:?}"))?
        {
            None => Ok(0),
            Some(bytes) => String::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("counter '{name}' does not hold a number")),
        }
    }
}

export!(Counter);
