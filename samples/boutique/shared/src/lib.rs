//! What the boutique's Rust components share: money arithmetic
//! ([`money`]), exchange rates ([`rates`]), the payment rules ([`card`]),
//! random ids ([`ids`]) and the [`bindings!`] macro that generates a component's
//! bindings from the shop's WIT package.

pub mod card;
pub mod ids;
pub mod money;
pub mod rates;

/// Generates the bindings of the shop's world `WORLD` (such as
/// `"boutique:shop/cart-component"`) with wit-bindgen, from the shop's WIT
/// and the WASI packages that weft's host provides. Every component sits
/// in `samples/boutique/NAME`, so the paths are the same for all.
#[macro_export]
macro_rules! bindings {
    ($world:literal) => {
        ::wit_bindgen::generate!({
            path: [
                "../../../wit/deps/config",
                "../../../wit/deps/keyvalue",
                "../../../wit/deps/logging",
                "../wit",
            ],
            world: $world,
            generate_all,
        });
    };
}
