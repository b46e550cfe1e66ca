//! The boutique's shipping service: a fixed quote of $8.99 for any cart
//! that holds something (free for an empty one), and a random tracking id.

boutique_shared::bindings!("boutique:shop/shipping-component");

use boutique::shop::types::{Address, CartItem, Money};
use exports::boutique::shop::shipping::Guest;

struct Shipping;

/// A tracking id such as `MO-48213-73120-4412`: two letters from the
/// address, then random digits.
fn tracking_id(address: &Address) -> String {
    let letters: String = address
        .street_address
        .chars()
        .chain(address.city.chars())
        .filter(|c| c.is_ascii_alphabetic())
        .take(2)
        .collect::<String>()
        .to_uppercase();
    let random = boutique_shared::ids::random_u64();
    format!(
        "{letters:A<2}-{:05}-{:05}-{:04}",
        random % 100_000,
        (random >> 20) % 100_000,
        (random >> 40) % 10_000
    )
}

impl Guest for Shipping {
    fn get_quote(_address: Address, items: Vec<CartItem>) -> Money {
        let count: i64 = items.iter().map(|i| i64::from(i.quantity.max(0))).sum();
        let (units, nanos) = if count == 0 { (0, 0) } else { (8, 990_000_000) };
        Money {
            currency_code: "USD".into(),
            units,
            nanos,
        }
    }

    fn ship_order(address: Address, _items: Vec<CartItem>) -> String {
        tracking_id(&address)
    }
}

export!(Shipping);
