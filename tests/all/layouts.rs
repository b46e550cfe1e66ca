//! WIT layouts that real packages use, linked in every mode: the shop
//! fixture (`tests/fixtures/shop`) has
//!
//! - a `types` interface of records and variants that `catalog`, `stock`
//!   and `cart` all `use`, and that no component exports;
//! - a `use` from another package (`demo:common/money`), inside `types`;
//! - one component (`inventory`, written in Python) exporting two
//!   interfaces, `catalog` and `stock`, that two different components call;
//! - three components (`front`, `cart`, `pricing`) importing `catalog`;
//! - callers built against `demo:pricing@0.1.0` served by `pricing` built
//!   against 0.1.2, which semver says is compatible.
//!
//! The layouts weft refuses, with their errors, are in `errors.rs`.

use weft_tests::{Mode, Weft, app_dir, each_mode, http_get, served_calls};

/// The shop app; `{pricing}` is the pricing component to use.
pub(crate) fn shop_manifest(pricing: &str) -> String {
    format!(
        "[app]\nname = \"shop\"\n\
         [components.front]\nwasm = \"{{wasm:fixture_shop_front}}\"\n\
         [components.cart]\nwasm = \"{{wasm:fixture_shop_cart}}\"\n\
         [components.inventory]\nwasm = \"{{wasm:fixture_shop_inventory}}\"\n\
         [components.pricing]\nwasm = \"{{wasm:{pricing}}}\"\n\
         [listeners.web]\ncomponent = \"front\"\naddress = \"127.0.0.1:0\"\n"
    )
}

/// Asserts the shop at `app` answers every route as it should: front's
/// calls to the catalog (Python), to pricing (imported at 0.1.0, served at
/// 0.1.2), and to the cart, which calls the catalog, stock and pricing.
pub(crate) fn shop_answers(app: &Weft) {
    let get = |path: &str| http_get(&app.url("web", path));
    // front -> catalog (Python), through types from two packages.
    assert_eq!(
        get("/item?sku=apple"),
        (200, "apple: Apple, 0.50 EUR\n".into()),
        "{}",
        app.output()
    );
    assert_eq!(get("/items"), (200, "apple,pear\n".into()));
    // The error side of a result, a variant case from `types`.
    assert_eq!(get("/item?sku=kiwi"), (404, "unknown sku 'kiwi'\n".into()));
    // front -> pricing, which asks the catalog in turn.
    assert_eq!(
        get("/quote?sku=apple&qty=12"),
        (200, "12 apple: 5.40 EUR\n".into())
    );
    // front -> cart -> catalog, stock (the Python component's second
    // interface) and pricing.
    assert_eq!(
        get("/add?sku=pear&qty=2"),
        (200, "added 2 pear: 1.50 EUR, 1 left\n".into())
    );
    assert_eq!(
        get("/add?sku=pear&qty=5"),
        (409, "sold out: 3 left\n".into())
    );
}

#[test]
fn the_shop_links_every_layout_in_every_mode() {
    let dir = app_dir(&shop_manifest("fixture_shop_pricing"));
    each_mode(|mode| {
        let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
        shop_answers(&app);

        match mode {
            Mode::Run => {}
            Mode::Monolith => {
                // One process: no call crossed one.
                let served = served_calls(dir.path());
                assert!(served.values().all(|n| *n == 0), "{served:#?}");
            }
            Mode::Split => {
                // Every interface was served by its own worker process.
                let served = served_calls(dir.path());
                let calls = |key: &str| served.get(key).copied().unwrap_or_default();
                let catalog = "inventory/0 inventory: demo:shop/catalog@0.1.0";
                // Twice each from front, pricing and cart.
                assert_eq!(calls(&format!("{catalog}#lookup")), 6, "{served:#?}");
                assert_eq!(calls(&format!("{catalog}#all-items")), 1, "{served:#?}");
                assert_eq!(
                    calls("inventory/0 inventory: demo:shop/stock@0.1.0#reserve"),
                    2,
                    "{served:#?}"
                );
                assert_eq!(
                    calls("pricing/0 pricing: demo:pricing/pricing@0.1.2#quote"),
                    2,
                    "{served:#?}"
                );
                assert_eq!(
                    calls("cart/0 cart: demo:shop/cart@0.1.0#add"),
                    2,
                    "{served:#?}"
                );
            }
        }
        let (status, output) = app.stop();
        assert!(status.success(), "{output}");
    });
}
