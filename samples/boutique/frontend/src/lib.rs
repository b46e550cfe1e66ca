//! The boutique's frontend: the shop's pages over `wasi:http`, after Online
//! Boutique's frontend as Service Weaver ported it. Each page makes the
//! same calls as Weaver's:
//!
//! - `GET /`: get-supported-currencies, list-products, get-cart, convert
//!   for each product, get-ads;
//! - `GET /product/ID`: get-product, get-supported-currencies, get-cart,
//!   convert, list-recommendations (and get-product for each), get-ads;
//! - `GET /cart`: get-supported-currencies, get-cart,
//!   list-recommendations, get-quote, convert the quote, and get-product
//!   and convert for each item;
//! - `POST /cart` adds an item, `POST /cart/empty` empties the cart, `POST
//!   /setCurrency` sets the currency cookie;
//! - `POST /cart/checkout`: place-order, list-recommendations,
//!   get-supported-currencies; a declined card is a 402 page that says why,
//!   and leaves the cart as it was;
//! - `GET /static/...` serves the style sheet and the product pictures,
//!   and `GET /healthz` answers `ok`.
//!
//! The user is whoever holds the `shop_session-id` cookie, which the first
//! answer sets; the currency is the `shop_currency` cookie (USD if none).
//! Rendering is pure ([`pages`]), and so is what the routes, cookies and
//! forms mean ([`shop`], which the concurrent frontend in
//! `samples/boutique/frontend-async` shares); this module makes the calls,
//! one after another.

boutique_shared::bindings!("boutique:shop/frontend-component");

mod assets;
mod pages;
mod shop;

use boutique::shop::types::{CartItem, Money, Product};
use boutique::shop::{ads, cart, checkout, currency, product_catalog, recommendation, shipping};
use guest_http::{Request, respond_with};
use pages::{Page, Priced};
use shop::{Answer, Failure, Route, Session};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Frontend;

impl wasip2::exports::http::incoming_handler::Guest for Frontend {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let req = Request::of(&request);
        let route = match Route::of(&req) {
            Ok(Route::Asset(path)) => {
                let (status, headers, body) = assets::answer(&path);
                return respond_with(out, status, &headers, &body);
            }
            Ok(Route::Health) => {
                return respond_with(out, 200, &[("content-type", "text/plain")], b"ok\n");
            }
            other => other,
        };
        let session = Session::of(&req);
        let answer = route
            .and_then(|route| answer(route, &req, &request, &session))
            .unwrap_or_else(|failure| Answer::failed(failure, &header_anyway(&session)));
        let headers = answer.headers_for(&session);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        respond_with(out, answer.status, &headers, answer.body.as_bytes());
    }
}

fn answer(
    route: Route,
    req: &Request,
    request: &IncomingRequest,
    session: &Session,
) -> Result<Answer, Failure> {
    let form = || shop::form_of(guest_http::read_body(request, shop::FORM_LIMIT));
    match route {
        Route::Home => home(session),
        Route::ViewCart => view_cart(session),
        Route::AddToCart => add_to_cart(session, &form()?),
        Route::EmptyCart => {
            cart::empty_cart(&session.user_id).map_err(Failure::of_cart)?;
            Ok(Answer::redirect("/"))
        }
        Route::Checkout => place_order(session, &form()?),
        Route::SetCurrency => shop::set_currency(req, &form()?),
        Route::Logout => Ok(shop::logout()),
        Route::Product(id) => product(session, &id),
        Route::Asset(_) | Route::Health => unreachable!("answered before the session"),
    }
}

/// The header of a failure's page: as much of it as the services give.
fn header_anyway(session: &Session) -> Page {
    let cart_size = cart::get_cart(&session.user_id)
        .map(|items| shop::size(&items))
        .unwrap_or(0);
    session.page(cart_size, currencies())
}

/// The currencies the shop offers that the currency service supports.
fn currencies() -> Vec<String> {
    shop::offered(&currency::get_supported_currencies())
}

fn user_cart(session: &Session) -> Result<Vec<CartItem>, Failure> {
    cart::get_cart(&session.user_id).map_err(Failure::of_cart)
}

/// `money` in currency `to`, rounded to the coin, as the checkout charges it.
fn convert(money: &Money, to: &str) -> Result<Money, Failure> {
    currency::convert(money, to)
        .map(shop::rounded)
        .map_err(|e| Failure::of_currency(e, to))
}

fn get_product(id: &str) -> Result<Product, Failure> {
    product_catalog::get_product(id).map_err(Failure::of_catalog)
}

/// Up to four recommended products, for users looking at `ids`.
fn recommendations(session: &Session, ids: &[String]) -> Vec<Product> {
    recommendation::list_recommendations(&session.user_id, ids)
        .iter()
        .take(4)
        .filter_map(|id| product_catalog::get_product(id).ok())
        .collect()
}

/// One ad for `categories`, picked at random.
fn ad(categories: &[String]) -> Option<pages::AdView> {
    shop::pick_ad(ads::get_ads(categories))
}

fn home(session: &Session) -> Result<Answer, Failure> {
    let currencies = currencies();
    let products = product_catalog::list_products();
    let items = user_cart(session)?;
    let mut priced = Vec::with_capacity(products.len());
    for product in products {
        let price = convert(&product.price_usd, &session.currency)?;
        priced.push(Priced { product, price });
    }
    let ad = ad(&[]);
    let page = session.page(shop::size(&items), currencies);
    Ok(Answer::html(200, pages::home(&page, &priced, ad.as_ref())))
}

fn product(session: &Session, id: &str) -> Result<Answer, Failure> {
    let product = get_product(id)?;
    let currencies = currencies();
    let items = user_cart(session)?;
    let price = convert(&product.price_usd, &session.currency)?;
    let recommended = recommendations(session, std::slice::from_ref(&product.id));
    let ad = ad(&product.categories);
    let page = session.page(shop::size(&items), currencies);
    Ok(Answer::html(
        200,
        pages::product(&page, &Priced { product, price }, &recommended, ad.as_ref()),
    ))
}

fn view_cart(session: &Session) -> Result<Answer, Failure> {
    let currencies = currencies();
    let items = user_cart(session)?;
    let ids: Vec<String> = items.iter().map(|i| i.product_id.clone()).collect();
    let recommended = recommendations(session, &ids);
    let quote = shipping::get_quote(&shop::quote_address(), &items);
    let shipping_cost = convert(&quote, &session.currency)?;
    let mut lines = Vec::with_capacity(items.len());
    for item in &items {
        let product = get_product(&item.product_id)?;
        let price = convert(&product.price_usd, &session.currency)?;
        lines.push((Priced { product, price }, item.quantity));
    }
    let page = session.page(shop::size(&items), currencies);
    let year = pages::this_year();
    Ok(Answer::html(
        200,
        pages::cart(&page, &lines, &shipping_cost, &recommended, year),
    ))
}

fn add_to_cart(session: &Session, form: &[(String, String)]) -> Result<Answer, Failure> {
    let (id, quantity) = shop::item_to_add(form)?;
    let product = get_product(id)?;
    let item = CartItem {
        product_id: product.id,
        quantity,
    };
    cart::add_item(&session.user_id, &item).map_err(Failure::of_cart)?;
    Ok(Answer::redirect("/cart"))
}

fn place_order(session: &Session, form: &[(String, String)]) -> Result<Answer, Failure> {
    let request = shop::order_request(session, form)?;
    let order = checkout::place_order(&request).map_err(Failure::of_checkout)?;
    let ids: Vec<String> = order
        .items
        .iter()
        .map(|i| i.item.product_id.clone())
        .collect();
    let recommended = recommendations(session, &ids);
    let page = session.page(0, currencies());
    Ok(Answer::html(200, pages::order(&page, &order, &recommended)))
}

wasip2::http::proxy::export!(Frontend);
