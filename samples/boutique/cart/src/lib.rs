//! The boutique's cart service: each user's cart is one value in the
//! wasi:keyvalue bucket "carts", under the user's id, written as lines of
//! `PRODUCT-ID QUANTITY`. Adding an item that is already there adds to its
//! quantity.
//!
//! The bucket is redb under `weft run` and whatever the manifest's
//! `[keyvalue.carts]` says otherwise (Redis, in the three-group plan). A
//! read, change and write of one cart is not atomic across processes:
//! like Online Boutique's cart service, this assumes one user's requests
//! come one at a time.

boutique_shared::bindings!("boutique:shop/cart-component");

use boutique::shop::types::CartItem;
use exports::boutique::shop::cart::{CartError, Guest};
use wasi::keyvalue::store;

const BUCKET: &str = "carts";

fn storage(what: &str, error: store::Error) -> CartError {
    CartError::Storage(format!("{what} in bucket '{BUCKET}' failed: {error:?}"))
}

fn bucket() -> Result<store::Bucket, CartError> {
    store::open(BUCKET).map_err(|e| storage("open", e))
}

/// The items written in `text`; lines that do not parse are dropped.
fn parse(text: &str) -> Vec<CartItem> {
    text.lines()
        .filter_map(|line| {
            let (id, quantity) = line.split_once(' ')?;
            Some(CartItem {
                product_id: id.into(),
                quantity: quantity.parse().ok()?,
            })
        })
        .collect()
}

fn write(items: &[CartItem]) -> String {
    items
        .iter()
        .map(|i| format!("{} {}\n", i.product_id, i.quantity))
        .collect()
}

fn check_user(user_id: &str) -> Result<(), CartError> {
    if user_id.is_empty() || user_id.len() > 128 {
        return Err(CartError::Storage(
            "a user id has 1 to 128 characters".into(),
        ));
    }
    Ok(())
}

struct Cart;

impl Guest for Cart {
    fn add_item(user_id: String, item: CartItem) -> Result<(), CartError> {
        check_user(&user_id)?;
        if item.quantity <= 0
            || item.product_id.is_empty()
            || item.product_id.contains(char::is_whitespace)
        {
            return Err(CartError::Storage(format!(
                "cannot add {} of '{}': a quantity is at least 1 and an id has no spaces",
                item.quantity, item.product_id
            )));
        }
        let bucket = bucket()?;
        let mut items = Self::get_cart(user_id.clone())?;
        match items.iter_mut().find(|i| i.product_id == item.product_id) {
            Some(existing) => existing.quantity = existing.quantity.saturating_add(item.quantity),
            None => items.push(item),
        }
        bucket
            .set(&user_id, write(&items).as_bytes())
            .map_err(|e| storage("set", e))
    }

    fn get_cart(user_id: String) -> Result<Vec<CartItem>, CartError> {
        check_user(&user_id)?;
        let value = bucket()?.get(&user_id).map_err(|e| storage("get", e))?;
        Ok(value
            .map(|bytes| parse(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default())
    }

    fn empty_cart(user_id: String) -> Result<(), CartError> {
        check_user(&user_id)?;
        bucket()?.delete(&user_id).map_err(|e| storage("delete", e))
    }
}

export!(Cart);
