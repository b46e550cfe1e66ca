//! What the shop's pages mean, apart from the calls that fill them: the
//! routes, the session cookies, forms, failures and answers. Pure, and
//! shared by the sequential frontend (`lib.rs`, WASI 0.2) and the
//! concurrent one (`frontend-async`, WASI 0.3), which differ only in how
//! they call the services.

use crate::boutique::shop::types::{Address, CartItem, CreditCard, Money};
use crate::boutique::shop::{cart, checkout, currency, product_catalog};
use crate::pages::{self, Page};
use boutique_shared::money::Amount;
use guest_http::Request;

/// The cookie that holds the user's id.
pub(crate) const SESSION_COOKIE: &str = "shop_session-id";
/// The cookie that holds the user's currency.
pub(crate) const CURRENCY_COOKIE: &str = "shop_currency";
/// The currencies the shop offers, of those the currency service supports.
pub(crate) const OFFERED: &[&str] = &["USD", "EUR", "CAD", "JPY", "GBP", "TRY"];
/// How long the session and currency cookies last: 48 hours.
pub(crate) const COOKIE_MAX_AGE: u32 = 48 * 3600;
/// The largest form the shop reads.
pub(crate) const FORM_LIMIT: usize = 16 * 1024;

/// An answer: status, extra headers, and an HTML body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn html(status: u16, body: String) -> Answer {
        Answer {
            status,
            headers: vec![("content-type", "text/html; charset=utf-8".into())],
            body,
        }
    }

    pub(crate) fn redirect(to: &str) -> Answer {
        Answer {
            status: 303,
            headers: vec![("location", to.into())],
            body: String::new(),
        }
    }

    /// A failure's page, with the header the services could give.
    pub(crate) fn failed(failure: Failure, header: &Page) -> Answer {
        let mut answer = Answer::html(
            failure.status,
            pages::failure(header, failure.title, &failure.message),
        );
        if let Some(allow) = failure.allow {
            answer.headers.push(("allow", allow.into()));
        }
        answer
    }

    /// The headers to send: the answer's, and the session cookie when the
    /// session is new.
    pub(crate) fn headers_for(&self, session: &Session) -> Vec<(&'static str, String)> {
        let mut headers = self.headers.clone();
        if session.new {
            headers.push((
                "set-cookie",
                format!(
                    "{SESSION_COOKIE}={}; Max-Age={COOKIE_MAX_AGE}; Path=/; HttpOnly; SameSite=Lax",
                    session.user_id
                ),
            ));
        }
        headers
    }
}

/// Why a page could not be made: its status and what to tell the user.
pub(crate) struct Failure {
    pub(crate) status: u16,
    pub(crate) title: &'static str,
    pub(crate) message: String,
    /// The methods the path takes, for a 405's `allow` header.
    pub(crate) allow: Option<&'static str>,
}

impl Failure {
    pub(crate) fn new(status: u16, title: &'static str, message: impl Into<String>) -> Failure {
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

    pub(crate) fn internal(message: impl Into<String>) -> Failure {
        Failure::new(500, "Something has failed", message)
    }

    pub(crate) fn of_cart(error: cart::CartError) -> Failure {
        let cart::CartError::Storage(why) = error;
        Failure::internal(format!("the cart service failed: {why}"))
    }

    pub(crate) fn of_currency(error: currency::CurrencyError, to: &str) -> Failure {
        let currency::CurrencyError::Unsupported(why) = error;
        Failure::internal(format!(
            "the currency service could not convert to {to}: {why}"
        ))
    }

    pub(crate) fn of_catalog(error: product_catalog::CatalogError) -> Failure {
        let product_catalog::CatalogError::NotFound(id) = error;
        Failure::new(
            404,
            "Product not found",
            format!("there is no product with id '{id}'"),
        )
    }

    pub(crate) fn of_checkout(error: checkout::CheckoutError) -> Failure {
        match error {
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
        }
    }
}

/// Who is asking, and in which currency.
pub(crate) struct Session {
    pub(crate) user_id: String,
    pub(crate) currency: String,
    /// Whether the user id is new, so that the answer must set its cookie.
    pub(crate) new: bool,
}

impl Session {
    pub(crate) fn of(request: &Request) -> Session {
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

    /// The parts every page shares: currencies, the cart's size, the
    /// currency.
    pub(crate) fn page(&self, cart_size: i32, currencies: Vec<String>) -> Page {
        Page {
            currency: self.currency.clone(),
            currencies,
            cart_size,
        }
    }
}

/// What a request asks for.
pub(crate) enum Route {
    /// A file under `/static/`.
    Asset(String),
    Health,
    Home,
    ViewCart,
    /// Needs the form.
    AddToCart,
    EmptyCart,
    /// Needs the form.
    Checkout,
    /// Needs the form.
    SetCurrency,
    Logout,
    Product(String),
}

impl Route {
    /// The route of `req`, or the failure that answers it.
    pub(crate) fn of(req: &Request) -> Result<Route, Failure> {
        if let Some(asset) = req.path.strip_prefix("/static/") {
            return Ok(Route::Asset(asset.to_string()));
        }
        Ok(match (req.method.as_str(), req.path.as_str()) {
            (_, "/healthz") => Route::Health,
            ("GET", "/") => Route::Home,
            ("GET", "/cart") => Route::ViewCart,
            ("POST", "/cart") => Route::AddToCart,
            ("POST", "/cart/empty") => Route::EmptyCart,
            ("POST", "/cart/checkout") => Route::Checkout,
            ("POST", "/setCurrency") => Route::SetCurrency,
            ("GET", "/logout") => Route::Logout,
            ("GET", path) if path.starts_with("/product/") => {
                Route::Product(path["/product/".len()..].to_string())
            }
            (_, "/") => return Err(Failure::not_allowed(req, "GET")),
            (_, "/cart") => return Err(Failure::not_allowed(req, "GET, POST")),
            (_, "/cart/empty" | "/cart/checkout" | "/setCurrency") => {
                return Err(Failure::not_allowed(req, "POST"));
            }
            _ => {
                return Err(Failure::new(
                    404,
                    "Page not found",
                    format!("there is no page at {}", req.path),
                ));
            }
        })
    }
}

/// A form's fields, from its body; a failure says what was wrong.
pub(crate) fn form_of(
    body: Result<Vec<u8>, guest_http::BodyError>,
) -> Result<Vec<(String, String)>, Failure> {
    let body = body.map_err(|e| match e {
        guest_http::BodyError::TooLarge(_) => Failure::new(413, "Form too large", e.to_string()),
        guest_http::BodyError::Broken(_) => Failure::new(400, "Bad request", e.to_string()),
    })?;
    Ok(guest_http::parse_query(&String::from_utf8_lossy(&body)))
}

/// The answer to `/logout`: both cookies cleared.
pub(crate) fn logout() -> Answer {
    let mut answer = Answer::redirect("/");
    for cookie in [SESSION_COOKIE, CURRENCY_COOKIE] {
        answer
            .headers
            .push(("set-cookie", format!("{cookie}=; Max-Age=0; Path=/")));
    }
    answer
}

/// The currencies the shop offers that the currency service supports, in
/// the shop's order.
pub(crate) fn offered(supported: &[String]) -> Vec<String> {
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

/// `money` rounded to its currency's smallest coin, as the checkout
/// charges it.
pub(crate) fn rounded(money: Money) -> Money {
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

/// How many items `items` hold.
pub(crate) fn size(items: &[CartItem]) -> i32 {
    items.iter().map(|i| i.quantity).sum()
}

/// The ad to show of `ads`, picked at random.
pub(crate) fn pick_ad(ads: Vec<crate::boutique::shop::ads::Ad>) -> Option<pages::AdView> {
    let pick = (boutique_shared::ids::random_u64() % ads.len().max(1) as u64) as usize;
    ads.into_iter().nth(pick).map(|a| pages::AdView {
        redirect_url: a.redirect_url,
        text: a.text,
    })
}

/// The address the cart page quotes shipping for, as Online Boutique's does.
pub(crate) fn quote_address() -> Address {
    Address {
        street_address: "1600 Amphitheatre Parkway".into(),
        city: "Mountain View".into(),
        state: "CA".into(),
        country: "United States".into(),
        zip_code: 94043,
    }
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

/// The product and quantity a cart form adds.
pub(crate) fn item_to_add(form: &[(String, String)]) -> Result<(&str, i32), Failure> {
    let id = field(form, "product_id")?;
    let quantity: i32 = number(form, "quantity")?;
    if !(1..=10).contains(&quantity) {
        return Err(Failure::new(
            400,
            "Bad request",
            format!("a quantity is 1 to 10, not {quantity}"),
        ));
    }
    Ok((id, quantity))
}

/// The answer to a currency form: back to the page the user was on.
pub(crate) fn set_currency(req: &Request, form: &[(String, String)]) -> Result<Answer, Failure> {
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

/// The order a checkout form places.
pub(crate) fn order_request(
    session: &Session,
    form: &[(String, String)],
) -> Result<checkout::PlaceOrderRequest, Failure> {
    Ok(checkout::PlaceOrderRequest {
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
    })
}
