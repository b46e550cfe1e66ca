//! The boutique's checkout service: places an order the way Online
//! Boutique's does. It reads the cart, prices each item in the user's
//! currency (get-product, convert), quotes and converts shipping, charges
//! the card for the total, ships, empties the cart and sends the
//! confirmation. Only a failure of that last step is forgiven: it is
//! logged, and the order stands.

boutique_shared::bindings!("boutique:shop/checkout-component");

use boutique::shop::types::{Money, Order, OrderItem};
use boutique::shop::{cart, currency, email, payment, product_catalog, shipping};
use boutique_shared::money::Amount;
use exports::boutique::shop::checkout::{CheckoutError, Guest, PlaceOrderRequest};
use wasi::logging::logging::{Level, log};

fn amount(money: &Money) -> Amount {
    Amount {
        units: money.units,
        nanos: money.nanos,
    }
}

/// `money` in currency `to`, rounded to the coin: the prices the cart page
/// showed, so that the charge is the total it showed.
fn convert(money: Money, to: &str) -> Result<Money, CheckoutError> {
    let converted = currency::convert(&money, to).map_err(|e| {
        let currency::CurrencyError::Unsupported(why) = e;
        CheckoutError::Failed(format!("cannot convert to {to}: {why}"))
    })?;
    let exact = amount(&converted);
    let coins = exact.rounded_for(&converted.currency_code);
    Ok(Money {
        units: coins.units,
        nanos: coins.nanos,
        ..converted
    })
}

struct Checkout;

impl Guest for Checkout {
    fn place_order(request: PlaceOrderRequest) -> Result<Order, CheckoutError> {
        let user_currency = request.user_currency.clone();
        let cart = cart::get_cart(&request.user_id).map_err(|e| {
            let cart::CartError::Storage(why) = e;
            CheckoutError::Failed(format!("cannot read the cart: {why}"))
        })?;
        if cart.is_empty() {
            return Err(CheckoutError::EmptyCart);
        }

        let mut items = Vec::with_capacity(cart.len());
        for item in &cart {
            let product = product_catalog::get_product(&item.product_id).map_err(|e| {
                let product_catalog::CatalogError::NotFound(id) = e;
                CheckoutError::Failed(format!(
                    "the cart holds product '{id}', which the catalog does not have"
                ))
            })?;
            let cost = convert(product.price_usd, &user_currency)?;
            items.push(OrderItem {
                item: item.clone(),
                cost,
            });
        }
        let quote = shipping::get_quote(&request.address, &cart);
        let shipping_cost = convert(quote, &user_currency)?;

        let total = items.iter().fold(amount(&shipping_cost), |sum, i| {
            sum.plus(amount(&i.cost).times(i64::from(i.item.quantity)))
        });
        let total = Money {
            currency_code: user_currency.clone(),
            units: total.units,
            nanos: total.nanos,
        };
        let transaction = payment::charge(&total, &request.credit_card).map_err(|e| {
            CheckoutError::Payment(match e {
                payment::PaymentError::InvalidCard(why)
                | payment::PaymentError::UnacceptedCard(why)
                | payment::PaymentError::ExpiredCard(why) => why,
            })
        })?;
        let charged = boutique_shared::money::format(&total.currency_code, amount(&total));
        log(
            Level::Info,
            "checkout",
            &format!("charged {charged} to the card: transaction {transaction}"),
        );

        let tracking = shipping::ship_order(&request.address, &cart);
        if let Err(cart::CartError::Storage(why)) = cart::empty_cart(&request.user_id) {
            // The card is charged and the order shipped: say so, and keep the order.
            log(
                Level::Error,
                "checkout",
                &format!("could not empty the cart of {}: {why}", request.user_id),
            );
        }
        let order = Order {
            order_id: boutique_shared::ids::uuid(),
            shipping_tracking_id: tracking,
            shipping_cost,
            shipping_address: request.address.clone(),
            items,
        };
        if let Err(why) = email::send_order_confirmation(&request.email, &order) {
            log(
                Level::Warn,
                "checkout",
                &format!(
                    "order {} placed, but its confirmation to {} was not sent: {why}",
                    order.order_id, request.email
                ),
            );
        }
        Ok(order)
    }
}

export!(Checkout);
