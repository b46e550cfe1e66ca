//! The boutique's email service: renders an order's confirmation and, as
//! in Online Boutique, "sends" it by logging it (through wasi:logging).

boutique_shared::bindings!("boutique:shop/email-component");

use boutique::shop::types::{Money, Order};
use boutique_shared::money::{Amount, format};
use exports::boutique::shop::email::Guest;
use wasi::logging::logging::{Level, log};

fn amount(money: &Money) -> Amount {
    Amount {
        units: money.units,
        nanos: money.nanos,
    }
}

/// The confirmation's text.
fn render(order: &Order) -> String {
    let code = &order.shipping_cost.currency_code;
    let mut total = amount(&order.shipping_cost);
    let mut lines = vec![
        format!("Your order {} is complete.", order.order_id),
        format!("Tracking id: {}", order.shipping_tracking_id),
    ];
    for item in &order.items {
        total = total.plus(amount(&item.cost).times(i64::from(item.item.quantity)));
        lines.push(format!(
            "  {} x {} at {}",
            item.item.quantity,
            item.item.product_id,
            format(code, amount(&item.cost))
        ));
    }
    lines.push(format!(
        "Shipping: {}",
        format(code, amount(&order.shipping_cost))
    ));
    lines.push(format!("Total: {}", format(code, total)));
    let a = &order.shipping_address;
    lines.push(format!(
        "Shipping to {}, {} {} {}, {}",
        a.street_address, a.zip_code, a.city, a.state, a.country
    ));
    lines.join("\n")
}

struct Email;

impl Guest for Email {
    fn send_order_confirmation(email: String, order: Order) -> Result<(), String> {
        let Some((user, domain)) = email.split_once('@') else {
            return Err(format!("'{email}' is not an email address"));
        };
        if user.is_empty() || !domain.contains('.') || email.chars().any(char::is_control) {
            return Err(format!("'{email}' is not an email address"));
        }
        log(
            Level::Info,
            "email",
            &format!("confirmation to {email}:\n{}", render(&order)),
        );
        Ok(())
    }
}

export!(Email);
