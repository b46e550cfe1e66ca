//! `samples/boutique` as the tests and the benchmark drive it: a
//! [`Shopper`] that keeps its cookies as a browser does and sends forms,
//! and the shop's manifests made for a test ([`boutique_app`]).

use crate::http::{Connection, Reply};
use std::net::SocketAddr;

/// One shopper: a kept-alive connection and the cookies the shop set.
pub struct Shopper {
    connection: Connection,
    cookies: Vec<(String, String)>,
}

impl Shopper {
    /// A new shopper, with no cookies yet, at the shop's `address`.
    pub fn open(address: SocketAddr) -> Shopper {
        Shopper {
            connection: Connection::open(address),
            cookies: Vec::new(),
        }
    }

    /// The value of the cookie `name`, if the shop set it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `GET path`, with the cookies.
    pub fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, "")
    }

    /// `POST path` with `form` url-encoded, with the cookies.
    pub fn post(&mut self, path: &str, form: &[(&str, impl AsRef<str>)]) -> Reply {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v.as_ref())))
            .collect();
        self.send("POST", path, &body.join("&"))
    }

    fn send(&mut self, method: &str, path: &str, body: &str) -> Reply {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let cookie = cookie.join("; ");
        let mut headers = vec![];
        if !cookie.is_empty() {
            headers.push(("Cookie", cookie.as_str()));
        }
        if !body.is_empty() {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        let reply = self
            .connection
            .send(method, path, &headers, body.as_bytes());
        self.remember(&reply);
        reply
    }

    /// Keeps the cookies `reply` sets, and forgets those it expires.
    fn remember(&mut self, reply: &Reply) {
        for (_, value) in reply.headers.iter().filter(|(n, _)| n == "set-cookie") {
            let Some((name, rest)) = value.split_once('=') else {
                continue;
            };
            let cookie_value = rest.split(';').next().unwrap_or("").to_string();
            let expired = rest.contains("Max-Age=0");
            self.cookies.retain(|(n, _)| n != name);
            if !expired {
                self.cookies.push((name.to_string(), cookie_value));
            }
        }
    }
}

/// `text` for a url-encoded form.
fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The checkout form as the cart page fills it in, with card `number`,
/// expiring in January of next year.
pub fn checkout_form(number: &str) -> Vec<(&'static str, String)> {
    let next_year = 1971
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_secs()
            / 31_556_952);
    vec![
        ("email", "someone@example.com".into()),
        ("street_address", "1600 Amphitheatre Parkway".into()),
        ("zip_code", "94043".into()),
        ("city", "Mountain View".into()),
        ("state", "CA".into()),
        ("country", "United States".into()),
        ("credit_card_number", number.into()),
        ("credit_card_expiration_month", "1".into()),
        ("credit_card_expiration_year", next_year.to_string()),
        ("credit_card_cvv", "672".into()),
    ]
}

/// A folder with the shop's manifest `file` (`weft.toml` or
/// `three-groups.toml` in `samples/boutique`) made for a test: the
/// components the tests built, no build commands, the listener on a free
/// port, and the carts' Redis url replaced by `redis_url` when given.
pub fn boutique_app(file: &str, redis_url: Option<&str>) -> tempfile::TempDir {
    const BUILT: &str = "\"../../target/wasm32-wasip2/release/";
    let path = crate::root().join("samples/boutique").join(file);
    let text = std::fs::read_to_string(&path).expect("the boutique's manifest");
    let mut manifest = String::new();
    for line in text.lines() {
        if line.starts_with("build = ") {
            continue;
        }
        let line = match line.split_once(BUILT) {
            Some((before, after)) => {
                format!("{before}\"{{wasm:{}}}\"", after.trim_end_matches(".wasm\""))
            }
            None if line.starts_with("address = ") => "address = \"127.0.0.1:0\"".into(),
            None => match redis_url {
                Some(url) if line.starts_with("url = \"redis://") => format!("url = \"{url}\""),
                _ => line.to_string(),
            },
        };
        manifest.push_str(&line);
        manifest.push('\n');
    }
    crate::app_dir(&manifest)
}
