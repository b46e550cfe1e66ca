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
//! Rendering is pure ([`pages`]); this module does the calls.

boutique_shared::bindings!("boutique:shop/frontend-component");

mod assets;
mod pages;

use boutique::shop::types::{Address, CartItem, CreditCard, Money, Product};
use boutique::shop::{ads, cart, checkout, currency, product_catalog, recommendation, shipping};
use boutique_shared::money::Amount;
use guest_http::{Request, respond_with};
use pages::{Page, Priced};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

/// The cookie that holds the user's id.
const SESSION_COOKIE: &str = "shop_session-id";
/// The cookie that holds the user's currency.
const CURRENCY_COOKIE: &str = "shop_currency";
/// The currencies the shop offers, of those the currency service supports.
const OFFERED: &[&str] = &["USD", "EUR", "CAD", "JPY", "GBP", "TRY"];
/// How long the session and currency cookies last: 48 hours.
const COOKIE_MAX_AGE: u32 = 48 * 3600;
/// The largest form the shop reads.
const FORM_LIMIT: usize = 16 * 1024;

/// An answer: status, extra headers, and an HTML body.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Answer {
    fn html(status: u16, body: String) -> Answer {
        Answer {
            status,
            headers: vec![("content-type", "text/html; charset=utf-8".into())],
            body,
        }
    }

    fn redirect(to: &str) -> Answer {
        Answer {
            status: 303,
            headers: vec![("location", to.into())],
            body: String::new(),
        }
    }
}

/// Why a page could not be made: its status and what to tell the user.
struct Failure {
    status: u16,
    title: &'static str,
    message: String,
    /// The methods the path takes, for a 405's `allow` header.
    allow: Option<&'static str>,
}

impl Failure {
    fn new(status: u16, title: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            title,
            message: message.into(),
            allow: None,
        }
    }

    fn not_allowed(req: &Request, allow: &'static str) -> Failure {
        let message = format!("{} is not allowed on {}; use {allow}", req.method, req.path);
        Failure {
            allow: Some(allow),
            ..Failure::new(405, "Method not allowed", message)
        }
    }

    fn internal(message: impl Into<String>) -> Failure {
        Failure::new(500, "Something has failed", message)
    }
}

/// Who is asking, and in which currency.
struct Session {
    user_id: String,
    currency: String,
    /// Whether the user id is new, so that the answer must set its cookie.
    new: bool,
}

impl Session {
    fn of(request: &Request) -> Session {
        let existing = request.cookie(SESSION_COOKIE).filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        let (user_id, new) = match existing {
            Some(id) => (id.to_string(), false),
            None => (boutique_shared::ids::uuid(), true),
        };
        let currency = request
            .cookie(CURRENCY_COOKIE)
            .filter(|c| OFFERED.contains(c))
            .unwrap_or("USD")
            .to_string();
        Session {
            user_id,
            currency,
            new,
        }
    }
}

struct Frontend;

impl wasip2::exports::http::incoming_handler::Guest for Frontend {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let req = Request::of(&request);
        if let Some(asset) = req.path.strip_prefix("/static/") {
            return match assets::find(asset) {
                Some((content_type, body)) => respond_with(
                    out,
                    200,
                    &[
                        ("content-type", content_type),
                        ("cache-control", "max-age=3600"),
                    ],
                    body.as_bytes(),
                ),
                None => respond_with(
                    out,
                    404,
                    &[("content-type", "text/plain")],
                    b"no such file\n",
                ),
            };
        }
        if req.path == "/healthz" {
            return respond_with(out, 200, &[("content-type", "text/plain")], b"ok\n");
        }
        let session = Session::of(&req);
        let answer = route(&req, &request, &session).unwrap_or_else(|failure| {
            let mut answer = Answer::html(
                failure.status,
                pages::failure(&header_anyway(&session), failure.title, &failure.message),
            );
            if let Some(allow) = failure.allow {
                answer.headers.push(("allow", allow.into()));
            }
            answer
        });
        let mut headers: Vec<(&str, String)> = answer.headers;
        if session.new {
            headers.push((
                "set-cookie",
                format!(
                    "{SESSION_COOKIE}={}; Max-Age={COOKIE_MAX_AGE}; Path=/; HttpOnly; SameSite=Lax",
                    session.user_id
                ),
            ));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        respond_with(out, answer.status, &headers, answer.body.as_bytes());
    }
}

fn route(req: &Request, request: &IncomingRequest, session: &Session) -> Result<Answer, Failure> {
    let form = || -> Result<Vec<(String, String)>, Failure> {
        let body = guest_http::read_body(request, FORM_LIMIT).map_err(|e| match e {
            guest_http::BodyError::TooLarge(_) => {
                Failure::new(413, "Form too large", e.to_string())
            }
            guest_http::BodyError::Broken(_) => Failure::new(400, "Bad request", e.to_string()),
        })?;
        Ok(guest_http::parse_query(&String::from_utf8_lossy(&body)))
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") => home(session),
        ("GET", "/cart") => view_cart(session),
        ("POST", "/cart") => add_to_cart(session, &form()?),
        ("POST", "/cart/empty") => {
            cart::empty_cart(&session.user_id).map_err(cart_failure)?;
            Ok(Answer::redirect("/"))
        }
        ("POST", "/cart/checkout") => place_order(session, &form()?),
        ("POST", "/setCurrency") => set_currency(req, &form()?),
        ("GET", "/logout") => {
            let mut answer = Answer::redirect("/");
            for cookie in [SESSION_COOKIE, CURRENCY_COOKIE] {
                answer
                    .headers
                    .push(("set-cookie", format!("{cookie}=; Max-Age=0; Path=/")));
            }
            Ok(answer)
        }
        ("GET", path) if path.starts_with("/product/") => {
            product(session, &path["/product/".len()..])
        }
        (_, "/") => Err(Failure::not_allowed(req, "GET")),
        (_, "/cart") => Err(Failure::not_allowed(req, "GET, POST")),
        (_, "/cart/empty" | "/cart/checkout" | "/setCurrency") => {
            Err(Failure::not_allowed(req, "POST"))
        }
        _ => Err(Failure::new(
            404,
            "Page not found",
            format!("there is no page at {}", req.path),
        )),
    }
}

/// The parts every page shares: currencies, the cart's size, the currency.
fn page(session: &Session, cart_size: i32, currencies: Vec<String>) -> Page {
    Page {
        currency: session.currency.clone(),
        currencies,
        cart_size,
    }
}

/// The header of a failure's page: as much of it as the services give.
fn header_anyway(session: &Session) -> Page {
    let cart_size = cart::get_cart(&session.user_id)
        .map(|items| size(&items))
        .unwrap_or(0);
    page(session, cart_size, currencies())
}

/// The currencies the shop offers that the currency service supports, in
/// the shop's order.
fn currencies() -> Vec<String> {
    let supported = currency::get_supported_currencies();
    OFFERED
        .iter()
        .filter(|c| supported.iter().any(|s| s == *c))
        .map(|c| c.to_string())
        .collect()
}

/// `text` with its first letter in upper case.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn user_cart(session: &Session) -> Result<Vec<CartItem>, Failure> {
    cart::get_cart(&session.user_id).map_err(cart_failure)
}

fn cart_failure(error: cart::CartError) -> Failure {
    let cart::CartError::Storage(why) = error;
    Failure::internal(format!("the cart service failed: {why}"))
}

/// `money` in currency `to`, rounded to the coin, as the checkout charges it.
fn convert(money: &Money, to: &str) -> Result<Money, Failure> {
    let converted = currency::convert(money, to).map_err(|e| {
        let currency::CurrencyError::Unsupported(why) = e;
        Failure::internal(format!(
            "the currency service could not convert to {to}: {why}"
        ))
    })?;
    Ok(rounded(converted))
}

/// `money` rounded to its currency's smallest coin.
fn rounded(money: Money) -> Money {
    let amount = Amount {
        units: money.units,
        nanos: money.nanos,
    }
    .rounded_for(&money.currency_code);
    Money {
        units: amount.units,
        nanos: amount.nanos,
        ..money
    }
}

fn get_product(id: &str) -> Result<Product, Failure> {
    product_catalog::get_product(id).map_err(|e| {
        let product_catalog::CatalogError::NotFound(id) = e;
        Failure::new(
            404,
            "Product not found",
            format!("there is no product with id '{id}'"),
        )
    })
}

fn size(items: &[CartItem]) -> i32 {
    items.iter().map(|i| i.quantity).sum()
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
    let ads = ads::get_ads(categories);
    let pick = (boutique_shared::ids::random_u64() % ads.len().max(1) as u64) as usize;
    ads.into_iter().nth(pick).map(|a| pages::AdView {
        redirect_url: a.redirect_url,
        text: a.text,
    })
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
    let page = page(session, size(&items), currencies);
    Ok(Answer::html(200, pages::home(&page, &priced, ad.as_ref())))
}

fn product(session: &Session, id: &str) -> Result<Answer, Failure> {
    let product = get_product(id)?;
    let currencies = currencies();
    let items = user_cart(session)?;
    let price = convert(&product.price_usd, &session.currency)?;
    let recommended = recommendations(session, std::slice::from_ref(&product.id));
    let ad = ad(&product.categories);
    let page = page(session, size(&items), currencies);
    Ok(Answer::html(
        200,
        pages::product(&page, &Priced { product, price }, &recommended, ad.as_ref()),
    ))
}

/// The address the cart page quotes shipping for, as Online Boutique's does.
fn quote_address() -> Address {
    Address {
        street_address: "1600 Amphitheatre Parkway".into(),
        city: "Mountain View".into(),
        state: "CA".into(),
        country: "United States".into(),
        zip_code: 94043,
    }
}

fn view_cart(session: &Session) -> Result<Answer, Failure> {
    let currencies = currencies();
    let items = user_cart(session)?;
    let ids: Vec<String> = items.iter().map(|i| i.product_id.clone()).collect();
    let recommended = recommendations(session, &ids);
    let quote = shipping::get_quote(&quote_address(), &items);
    let shipping_cost = convert(&quote, &session.currency)?;
    let mut lines = Vec::with_capacity(items.len());
    for item in &items {
        let product = get_product(&item.product_id)?;
        let price = convert(&product.price_usd, &session.currency)?;
        lines.push((Priced { product, price }, item.quantity));
    }
    let page = page(session, size(&items), currencies);
    let year = pages::this_year();
    Ok(Answer::html(
        200,
        pages::cart(&page, &lines, &shipping_cost, &recommended, year),
    ))
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Result<&'a str, Failure> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Failure::new(400, "Bad request", format!("the form has no {name}")))
}

fn number<T: std::str::FromStr>(form: &[(String, String)], name: &str) -> Result<T, Failure> {
    let text = field(form, name)?;
    text.parse().map_err(|_| {
        Failure::new(
            400,
            "Bad request",
            format!("{name} must be a number, not '{text}'"),
        )
    })
}

fn add_to_cart(session: &Session, form: &[(String, String)]) -> Result<Answer, Failure> {
    let id = field(form, "product_id")?;
    let quantity: i32 = number(form, "quantity")?;
    if !(1..=10).contains(&quantity) {
        return Err(Failure::new(
            400,
            "Bad request",
            format!("a quantity is 1 to 10, not {quantity}"),
        ));
    }
    let product = get_product(id)?;
    let item = CartItem {
        product_id: product.id,
        quantity,
    };
    cart::add_item(&session.user_id, &item).map_err(cart_failure)?;
    Ok(Answer::redirect("/cart"))
}

fn set_currency(req: &Request, form: &[(String, String)]) -> Result<Answer, Failure> {
    let code = field(form, "currency_code")?;
    if !OFFERED.contains(&code) {
        return Err(Failure::new(
            400,
            "Bad request",
            format!(
                "the shop does not offer currency '{code}'; choose one of {}",
                OFFERED.join(", ")
            ),
        ));
    }
    // Back to the page the user was on, on this site.
    let back = req
        .header("referer")
        .and_then(guest_http::path_of)
        .unwrap_or("/")
        .to_string();
    let mut answer = Answer::redirect(&back);
    answer.headers.push((
        "set-cookie",
        format!("{CURRENCY_COOKIE}={code}; Max-Age={COOKIE_MAX_AGE}; Path=/; SameSite=Lax"),
    ));
    Ok(answer)
}

fn place_order(session: &Session, form: &[(String, String)]) -> Result<Answer, Failure> {
    let request = checkout::PlaceOrderRequest {
        user_id: session.user_id.clone(),
        user_currency: session.currency.clone(),
        address: Address {
            street_address: field(form, "street_address")?.into(),
            city: field(form, "city")?.into(),
            state: field(form, "state")?.into(),
            country: field(form, "country")?.into(),
            zip_code: number(form, "zip_code")?,
        },
        email: field(form, "email")?.into(),
        credit_card: CreditCard {
            number: field(form, "credit_card_number")?.into(),
            cvv: number(form, "credit_card_cvv")?,
            expiration_year: number(form, "credit_card_expiration_year")?,
            expiration_month: number(form, "credit_card_expiration_month")?,
        },
    };
    let order = checkout::place_order(&request).map_err(|e| match e {
        checkout::CheckoutError::EmptyCart => Failure::new(
            400,
            "Your cart is empty",
            "add something to your cart before you check out",
        ),
        checkout::CheckoutError::Payment(why) => Failure::new(
            402,
            "Your payment was declined",
            format!(
                "{}. Nothing was charged, and your cart is kept: check the card and try again.",
                sentence(&why)
            ),
        ),
        checkout::CheckoutError::Failed(why) => {
            Failure::internal(format!("the order could not be placed: {why}"))
        }
    })?;
    let ids: Vec<String> = order
        .items
        .iter()
        .map(|i| i.item.product_id.clone())
        .collect();
    let recommended = recommendations(session, &ids);
    let page = page(session, 0, currencies());
    Ok(Answer::html(200, pages::order(&page, &order, &recommended)))
}

wasip2::http::proxy::export!(Frontend);
