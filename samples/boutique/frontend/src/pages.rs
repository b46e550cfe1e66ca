//! The shop's pages as HTML: pure functions of what the services answered.
//! Every text that came from a service or a user is escaped.

use crate::boutique::shop::types::{Money, Order, Product};
use boutique_shared::money::{Amount, format};

/// What every page shows in its header.
pub(crate) struct Page {
    /// The user's currency.
    pub(crate) currency: String,
    /// The currencies the user may choose.
    pub(crate) currencies: Vec<String>,
    /// How many items the cart holds.
    pub(crate) cart_size: i32,
}

/// A product with its price in the user's currency.
pub(crate) struct Priced {
    pub(crate) product: Product,
    pub(crate) price: Money,
}

/// An ad, as the page shows it.
pub(crate) struct AdView {
    pub(crate) redirect_url: String,
    pub(crate) text: String,
}

/// `text` safe inside HTML text and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn amount(money: &Money) -> Amount {
    Amount {
        units: money.units,
        nanos: money.nanos,
    }
}

fn money(money: &Money) -> String {
    escape(&format(&money.currency_code, amount(money)))
}

/// The current year (UTC), for the card's expiry choices.
pub(crate) fn this_year() -> i32 {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    // Good to the day for centuries: 365.2425 days a year.
    1970 + (seconds as f64 / (365.2425 * 86_400.0)) as i32
}

/// A whole page: the header, `main`, and the footer.
fn layout(page: &Page, title: &str, main: &str) -> String {
    let options: String = page
        .currencies
        .iter()
        .map(|c| {
            let selected = if *c == page.currency { " selected" } else { "" };
            format!("<option value=\"{0}\"{selected}>{0}</option>", escape(c))
        })
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · Online Boutique</title>\
<link rel=\"stylesheet\" href=\"/static/styles.css\"><link rel=\"icon\" href=\"/static/favicon.svg\"></head>\n\
<body><header><a class=\"logo\" href=\"/\">Online Boutique</a><span class=\"by\">on weft</span>\
<form class=\"currency\" method=\"post\" action=\"/setCurrency\"><label>Currency \
<select name=\"currency_code\" onchange=\"this.form.submit()\">{options}</select></label>\
<noscript><button>Set</button></noscript></form>\
<a class=\"cart-link\" href=\"/cart\">Cart <span id=\"cart-size\">{size}</span></a></header>\n\
<main>{main}</main>\n\
<footer>A demo shop: nothing here is for sale. Online Boutique's services as WebAssembly components, \
linked by weft.</footer></body></html>\n",
        title = escape(title),
        size = page.cart_size,
    )
}

fn card(priced: &Priced) -> String {
    let p = &priced.product;
    format!(
        "<a class=\"card\" href=\"/product/{id}\"><img src=\"{picture}\" alt=\"{name}\">\
<span class=\"name\">{name}</span><span class=\"price\">{price}</span></a>",
        id = escape(&p.id),
        picture = escape(&p.picture),
        name = escape(&p.name),
        price = money(&priced.price),
    )
}

fn ad_box(ad: Option<&AdView>) -> String {
    ad.map(|a| {
        format!(
            "<aside class=\"ad\"><strong>Ad</strong> <a href=\"{}\">{}</a></aside>",
            escape(&a.redirect_url),
            escape(&a.text)
        )
    })
    .unwrap_or_default()
}

fn recommended(products: &[Product]) -> String {
    if products.is_empty() {
        return String::new();
    }
    let cards: String = products
        .iter()
        .map(|p| {
            format!(
                "<a class=\"card small\" href=\"/product/{id}\"><img src=\"{picture}\" alt=\"{name}\">\
<span class=\"name\">{name}</span></a>",
                id = escape(&p.id),
                picture = escape(&p.picture),
                name = escape(&p.name),
            )
        })
        .collect();
    format!(
        "<section class=\"recommended\"><h2>You may also like</h2><div class=\"grid\">{cards}</div></section>"
    )
}

/// The home page: every product with its price, and an ad.
pub(crate) fn home(page: &Page, products: &[Priced], ad: Option<&AdView>) -> String {
    let cards: String = products.iter().map(card).collect();
    let main = format!(
        "<section class=\"hero\"><h1>Hot products</h1></section><div class=\"grid\">{cards}</div>{}",
        ad_box(ad)
    );
    layout(page, "Shop", &main)
}

/// A product's page, with its add-to-cart form.
pub(crate) fn product(
    page: &Page,
    priced: &Priced,
    others: &[Product],
    ad: Option<&AdView>,
) -> String {
    let p = &priced.product;
    let quantities: String = (1..=10).map(|n| format!("<option>{n}</option>")).collect();
    let main = format!(
        "<article class=\"product\"><img src=\"{picture}\" alt=\"{name}\"><div>\
<h1>{name}</h1><p class=\"price\">{price}</p><p>{description}</p>\
<form method=\"post\" action=\"/cart\"><input type=\"hidden\" name=\"product_id\" value=\"{id}\">\
<label>Quantity <select name=\"quantity\">{quantities}</select></label> \
<button type=\"submit\">Add to cart</button></form></div></article>{others}{ad}",
        id = escape(&p.id),
        picture = escape(&p.picture),
        name = escape(&p.name),
        price = money(&priced.price),
        description = escape(&p.description),
        others = recommended(others),
        ad = ad_box(ad),
    );
    layout(page, &p.name, &main)
}

/// The cart: its items, the shipping quote, the total, and the checkout
/// form filled with a test card, as Online Boutique's is.
pub(crate) fn cart(
    page: &Page,
    lines: &[(Priced, i32)],
    shipping: &Money,
    others: &[Product],
    year: i32,
) -> String {
    if lines.is_empty() {
        let main = format!(
            "<section class=\"empty\"><h1>Your shopping cart is empty!</h1>\
<p>Items you add to your shopping cart will appear here.</p>\
<a class=\"button\" href=\"/\">Continue shopping</a></section>{}",
            recommended(others)
        );
        return layout(page, "Cart", &main);
    }
    let code = &shipping.currency_code;
    let mut total = amount(shipping);
    let mut rows = String::new();
    for (priced, quantity) in lines {
        let line = amount(&priced.price).times(i64::from(*quantity));
        total = total.plus(line);
        rows.push_str(&format!(
            "<tr><td><a href=\"/product/{id}\">{name}</a></td><td class=\"qty\">{quantity}</td>\
<td class=\"num\">{each}</td><td class=\"num\">{line}</td></tr>",
            id = escape(&priced.product.id),
            name = escape(&priced.product.name),
            each = money(&priced.price),
            line = escape(&format(code, line)),
        ));
    }
    let months: String = (1..=12).map(|m| format!("<option>{m}</option>")).collect();
    let years: String = (year..year + 5)
        .map(|y| {
            let selected = if y == year + 1 { " selected" } else { "" };
            format!("<option{selected}>{y}</option>")
        })
        .collect();
    let main = format!(
        "<h1>Cart ({count} items)</h1>\
<table class=\"cart\"><thead><tr><th>Product</th><th>Quantity</th><th>Price</th><th>Total</th></tr></thead>\
<tbody>{rows}</tbody><tfoot>\
<tr><td colspan=\"3\">Shipping</td><td class=\"num\" id=\"shipping\">{shipping}</td></tr>\
<tr class=\"total\"><td colspan=\"3\">Total</td><td class=\"num\" id=\"total\">{total}</td></tr></tfoot></table>\
<form method=\"post\" action=\"/cart/empty\"><button class=\"secondary\">Empty cart</button></form>\
<form class=\"checkout\" method=\"post\" action=\"/cart/checkout\"><h2>Shipping address</h2>\
<label>E-mail <input name=\"email\" value=\"someone@example.com\"></label>\
<label>Street address <input name=\"street_address\" value=\"1600 Amphitheatre Parkway\"></label>\
<label>Zip code <input name=\"zip_code\" value=\"94043\"></label>\
<label>City <input name=\"city\" value=\"Mountain View\"></label>\
<label>State <input name=\"state\" value=\"CA\"></label>\
<label>Country <input name=\"country\" value=\"United States\"></label>\
<h2>Payment</h2>\
<label>Credit card number <input name=\"credit_card_number\" value=\"4432-8015-6152-0454\"></label>\
<label>Month <select name=\"credit_card_expiration_month\">{months}</select></label>\
<label>Year <select name=\"credit_card_expiration_year\">{years}</select></label>\
<label>CVV <input name=\"credit_card_cvv\" value=\"672\"></label>\
<button type=\"submit\">Place order</button></form>{others}",
        count = lines.iter().map(|(_, q)| q).sum::<i32>(),
        shipping = money(shipping),
        total = escape(&format(code, total)),
        others = recommended(others),
    );
    layout(page, "Cart", &main)
}

/// The confirmation of a placed order.
pub(crate) fn order(page: &Page, order: &Order, others: &[Product]) -> String {
    let code = &order.shipping_cost.currency_code;
    let total = order
        .items
        .iter()
        .fold(amount(&order.shipping_cost), |sum, i| {
            sum.plus(amount(&i.cost).times(i64::from(i.item.quantity)))
        });
    let main = format!(
        "<section class=\"order\"><h1>Your order is complete!</h1>\
<dl>\
<dt>Confirmation #</dt><dd id=\"order-id\">{id}</dd>\
<dt>Tracking #</dt><dd id=\"tracking-id\">{tracking}</dd>\
<dt>Total paid</dt><dd id=\"total-paid\">{total}</dd></dl>\
<a class=\"button\" href=\"/\">Continue shopping</a></section>{others}",
        id = escape(&order.order_id),
        tracking = escape(&order.shipping_tracking_id),
        total = escape(&format(code, total)),
        others = recommended(others),
    );
    layout(page, "Order complete", &main)
}

/// A page that says what went wrong.
pub(crate) fn failure(page: &Page, title: &str, message: &str) -> String {
    let main = format!(
        "<section class=\"failure\"><h1>{}</h1><p class=\"message\">{}</p>\
<p><a href=\"/cart\">Your cart</a> · <a href=\"/\">Continue shopping</a></p></section>",
        escape(title),
        escape(message)
    );
    layout(page, title, &main)
}
