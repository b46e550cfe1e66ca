//! The boutique's concurrent frontend: the same pages as `frontend`, served
//! over WASI 0.3's `wasi:http/handler`, with every call that a page needs
//! and that does not wait on another made at once. Its imports are the
//! same interfaces as the sequential frontend's, declared `async`:
//! `wit/shop.wit` is the shop's `shop.wit` with every function `async`.
//! The services need no change: weft links an async import to a sync
//! export, and serves the calls of one page side by side, in one process
//! or across processes.
//!
//! What a page waits for, in rounds (each line is one round):
//!
//! - `GET /`: currencies, products, cart, ads; then every product's price.
//! - `GET /product/ID`: the product, currencies, cart; then its price,
//!   recommendations, ads; then each recommended product.
//! - `GET /cart`: currencies, cart; then recommendations, the quote, each
//!   item's product; then the quote's and the items' prices, and each
//!   recommended product.
//! - `POST /cart/checkout`: the order; then recommendations and
//!   currencies; then each recommended product.
//!
//! What the routes, cookies and forms mean is the sequential frontend's
//! ([`shop`]), and so is the HTML ([`pages`]).

wit_bindgen::generate!({
    path: "wit",
    world: "boutique:shop/frontend-async-component",
    generate_all,
});

#[path = "../../frontend/src/assets.rs"]
mod assets;
#[path = "../../frontend/src/pages.rs"]
mod pages;
#[path = "../../frontend/src/shop.rs"]
mod shop;

use boutique::shop::types::{CartItem, Money, Product};
use boutique::shop::{ads, cart, checkout, currency, product_catalog, recommendation, shipping};
use futures::future::{join, join_all, join3, join4, try_join_all};
use guest_http::Request;
use pages::{Page, Priced};
use shop::{Answer, Failure, Route, Session};
use wasip3::http::types::{ErrorCode, Fields, Method, Request as HttpRequest, Response};
use wit_bindgen::StreamResult;

struct Frontend;

wasip3::http::service::export!(Frontend);

impl wasip3::exports::http::handler::Guest for Frontend {
    async fn handle(request: HttpRequest) -> Result<Response, ErrorCode> {
        let req = request_of(&request);
        let route = match Route::of(&req) {
            Ok(Route::Asset(path)) => {
                let (status, headers, body) = assets::answer(&path);
                return Ok(respond(status, &headers, body));
            }
            Ok(Route::Health) => {
                return Ok(respond(
                    200,
                    &[("content-type", "text/plain")],
                    b"ok\n".to_vec(),
                ));
            }
            other => other,
        };
        let session = Session::of(&req);
        let answer = match route {
            Ok(route) => answer(route, &req, request, &session).await,
            Err(failure) => Err(failure),
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(failure) => Answer::failed(failure, &header_anyway(&session).await),
        };
        let headers = answer.headers_for(&session);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        Ok(respond(answer.status, &headers, answer.body.into_bytes()))
    }
}

/// The parts of `request` the shop looks at.
fn request_of(request: &HttpRequest) -> Request {
    let method = match request.get_method() {
        Method::Get => "GET".to_string(),
        Method::Post => "POST".to_string(),
        Method::Other(other) => other.to_uppercase(),
        other => format!("{other:?}").to_uppercase(),
    };
    let target = request.get_path_with_query().unwrap_or_else(|| "/".into());
    Request::from_parts(method, &target, request.get_headers().copy_all())
}

/// The body of `request`, up to `limit` bytes.
async fn read_body(request: HttpRequest, limit: usize) -> Result<Vec<u8>, guest_http::BodyError> {
    let (_, done) = wasip3::wit_future::new(|| Ok(()));
    let (mut body, _trailers) = HttpRequest::consume_body(request, done);
    let mut all = Vec::new();
    loop {
        let (result, chunk) = body.read(Vec::with_capacity(16 * 1024)).await;
        all.extend_from_slice(&chunk);
        if all.len() > limit {
            return Err(guest_http::BodyError::TooLarge(limit));
        }
        if matches!(result, StreamResult::Dropped | StreamResult::Cancelled) {
            return Ok(all);
        }
    }
}

/// An answer with `status`, `headers` and `body`.
fn respond(status: u16, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
    let fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&fields).expect("the shop's headers are valid");
    let (mut body_tx, body_rx) = wasip3::wit_stream::new();
    let (trailers_tx, trailers_rx) = wasip3::wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    let _ = response.set_status_code(status);
    drop(trailers_tx);
    wit_bindgen::spawn_local(async move {
        body_tx.write_all(body).await;
    });
    response
}

async fn answer(
    route: Route,
    req: &Request,
    request: HttpRequest,
    session: &Session,
) -> Result<Answer, Failure> {
    match route {
        Route::Home => home(session).await,
        Route::ViewCart => view_cart(session).await,
        Route::AddToCart => {
            let form = shop::form_of(read_body(request, shop::FORM_LIMIT).await)?;
            add_to_cart(session, &form).await
        }
        Route::EmptyCart => {
            cart::empty_cart(session.user_id.clone())
                .await
                .map_err(Failure::of_cart)?;
            Ok(Answer::redirect("/"))
        }
        Route::Checkout => {
            let form = shop::form_of(read_body(request, shop::FORM_LIMIT).await)?;
            place_order(session, &form).await
        }
        Route::SetCurrency => {
            let form = shop::form_of(read_body(request, shop::FORM_LIMIT).await)?;
            shop::set_currency(req, &form)
        }
        Route::Logout => Ok(shop::logout()),
        Route::Product(id) => product(session, &id).await,
        Route::Asset(_) | Route::Health => unreachable!("answered before the session"),
    }
}

/// The header of a failure's page: as much of it as the services give.
async fn header_anyway(session: &Session) -> Page {
    let (items, currencies) = join(cart::get_cart(session.user_id.clone()), currencies()).await;
    let cart_size = items.map(|items| shop::size(&items)).unwrap_or(0);
    session.page(cart_size, currencies)
}

/// The currencies the shop offers that the currency service supports.
async fn currencies() -> Vec<String> {
    shop::offered(&currency::get_supported_currencies().await)
}

async fn user_cart(session: &Session) -> Result<Vec<CartItem>, Failure> {
    cart::get_cart(session.user_id.clone())
        .await
        .map_err(Failure::of_cart)
}

/// `money` in currency `to`, rounded to the coin, as the checkout charges it.
async fn convert(money: Money, to: &str) -> Result<Money, Failure> {
    currency::convert(money, to.to_string())
        .await
        .map(shop::rounded)
        .map_err(|e| Failure::of_currency(e, to))
}

async fn get_product(id: String) -> Result<Product, Failure> {
    product_catalog::get_product(id)
        .await
        .map_err(Failure::of_catalog)
}

/// `products` with their prices in `to`, all converted at once.
async fn priced(products: Vec<Product>, to: &str) -> Result<Vec<Priced>, Failure> {
    let prices = try_join_all(products.iter().map(|p| convert(p.price_usd.clone(), to))).await?;
    Ok(products
        .into_iter()
        .zip(prices)
        .map(|(product, price)| Priced { product, price })
        .collect())
}

/// Up to four recommended products, for users looking at `ids`, fetched
/// at once.
async fn recommendations(session: &Session, ids: Vec<String>) -> Vec<Product> {
    let recommended = recommendation::list_recommendations(session.user_id.clone(), ids).await;
    let products = recommended
        .into_iter()
        .take(4)
        .map(product_catalog::get_product);
    join_all(products)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

/// One ad for `categories`, picked at random.
async fn ad(categories: Vec<String>) -> Option<pages::AdView> {
    shop::pick_ad(ads::get_ads(categories).await)
}

async fn home(session: &Session) -> Result<Answer, Failure> {
    let (currencies, products, items, ad) = join4(
        currencies(),
        product_catalog::list_products(),
        user_cart(session),
        ad(Vec::new()),
    )
    .await;
    let items = items?;
    let priced = priced(products, &session.currency).await?;
    let page = session.page(shop::size(&items), currencies);
    Ok(Answer::html(200, pages::home(&page, &priced, ad.as_ref())))
}

async fn product(session: &Session, id: &str) -> Result<Answer, Failure> {
    let (product, currencies, items) = join3(
        get_product(id.to_string()),
        currencies(),
        user_cart(session),
    )
    .await;
    let (product, items) = (product?, items?);
    let (price, recommended, ad) = join3(
        convert(product.price_usd.clone(), &session.currency),
        recommendations(session, vec![product.id.clone()]),
        ad(product.categories.clone()),
    )
    .await;
    let page = session.page(shop::size(&items), currencies);
    Ok(Answer::html(
        200,
        pages::product(
            &page,
            &Priced {
                product,
                price: price?,
            },
            &recommended,
            ad.as_ref(),
        ),
    ))
}

async fn view_cart(session: &Session) -> Result<Answer, Failure> {
    let (currencies, items) = join(currencies(), user_cart(session)).await;
    let items = items?;
    let ids: Vec<String> = items.iter().map(|i| i.product_id.clone()).collect();
    let shipping_cost = async {
        let quote = shipping::get_quote(shop::quote_address(), items.clone()).await;
        convert(quote, &session.currency).await
    };
    let lines = async {
        let products = try_join_all(ids.iter().cloned().map(get_product)).await?;
        let priced = priced(products, &session.currency).await?;
        Ok::<_, Failure>(
            priced
                .into_iter()
                .zip(items.iter().map(|i| i.quantity))
                .collect::<Vec<_>>(),
        )
    };
    let (recommended, shipping_cost, lines) =
        join3(recommendations(session, ids.clone()), shipping_cost, lines).await;
    let page = session.page(shop::size(&items), currencies);
    let year = pages::this_year();
    Ok(Answer::html(
        200,
        pages::cart(&page, &lines?, &shipping_cost?, &recommended, year),
    ))
}

async fn add_to_cart(session: &Session, form: &[(String, String)]) -> Result<Answer, Failure> {
    let (id, quantity) = shop::item_to_add(form)?;
    let product = get_product(id.to_string()).await?;
    let item = CartItem {
        product_id: product.id,
        quantity,
    };
    cart::add_item(session.user_id.clone(), item)
        .await
        .map_err(Failure::of_cart)?;
    Ok(Answer::redirect("/cart"))
}

async fn place_order(session: &Session, form: &[(String, String)]) -> Result<Answer, Failure> {
    let request = shop::order_request(session, form)?;
    let order = checkout::place_order(request)
        .await
        .map_err(Failure::of_checkout)?;
    let ids: Vec<String> = order
        .items
        .iter()
        .map(|i| i.item.product_id.clone())
        .collect();
    let (recommended, currencies) = join(recommendations(session, ids), currencies()).await;
    let page = session.page(0, currencies);
    Ok(Answer::html(200, pages::order(&page, &order, &recommended)))
}
