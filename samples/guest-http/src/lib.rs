//! Small `wasi:http` helpers for the sample and fixture guests: read a
//! request's method, path, query, headers, cookies and form body, answer
//! with a status, headers and a body, and send a GET.

use std::io::{Read as _, Write as _};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

/// The parts of a request the guests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The headers, in order, names in lower case; values that are not
    /// UTF-8 are left out.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// Reads `request`'s method, path, query and headers.
    pub fn of(request: &IncomingRequest) -> Request {
        let method = match request.method() {
            Method::Get => "GET".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            other => format!("{other:?}").to_uppercase(),
        };
        let target = request.path_with_query().unwrap_or_else(|| "/".into());
        Request::from_parts(method, &target, request.headers().entries())
    }

    /// A request of `method` for `target` (path and query) with `headers`,
    /// as any version of `wasi:http` gives them.
    pub fn from_parts(
        method: String,
        target: &str,
        headers: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = headers
            .into_iter()
            .filter_map(|(name, value)| {
                Some((name.to_ascii_lowercase(), String::from_utf8(value).ok()?))
            })
            .collect();
        Request {
            method,
            path: path.to_string(),
            query: parse_query(query),
            headers,
        }
    }

    /// The first value of header `name` (in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name`, from the `cookie` headers.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits and percent-decodes `a=1&b=x%20y`.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path (with its query) of `url`, such as a `referer`, to send a
/// user back to on this site: `None` unless it is a plain absolute path of
/// printable ASCII, so that no `Location` made from it leads elsewhere
/// (`//host`, a backslash, or a tab that browsers drop).
pub fn path_of(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let path = &rest[rest.find('/')?..];
    let plain = path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    (plain && !path.starts_with("//")).then_some(path)
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// It is longer than the limit.
    TooLarge(usize),
    /// The stream failed.
    Broken(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(limit) => write!(f, "the body is longer than {limit} bytes"),
            BodyError::Broken(why) => f.write_str(why),
        }
    }
}

/// Reads `request`'s body, up to `limit` bytes; a longer body is an error.
pub fn read_body(request: &IncomingRequest, limit: usize) -> Result<Vec<u8>, BodyError> {
    let broken = |why: &str| BodyError::Broken(why.to_string());
    let body = request
        .consume()
        .map_err(|()| broken("the body was already read"))?;
    let mut bytes = Vec::new();
    {
        let mut stream = body.stream().map_err(|()| broken("no body stream"))?;
        let read = std::io::Read::by_ref(&mut stream)
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| BodyError::Broken(format!("reading the body: {e}")));
        drop(stream);
        read?;
    }
    if bytes.len() > limit {
        return Err(BodyError::TooLarge(limit));
    }
    Ok(bytes)
}

/// Answers with `status`, a `content-type` and `body`.
pub fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    respond_with(out, status, &[("content-type", content_type)], body);
}

/// Answers with `status`, `headers` (such as `set-cookie` or `location`)
/// and `body`.
pub fn respond_with(out: ResponseOutparam, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&list).expect("the guests send allowed headers");
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .expect("the guests answer with valid statuses");
    let body_handle = response.body().expect("a new response has a body");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = body_handle.write().expect("a new body has a stream");
    // The host may have gone away (the client hung up); nothing to do then.
    let _ = stream
        .write_all(body)
        .and_then(|()| std::io::Write::flush(&mut stream));
    drop(stream);
    let _ = OutgoingBody::finish(body_handle, None);
}

/// Sends `GET http://AUTHORITY/PATH` and returns the status and body, or
/// the host's error code as text (for example `HttpRequestDenied`).
pub fn get(authority: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|()| "bad scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("bad authority '{authority}'"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| format!("bad path '{path}'"))?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|()| "no body")?;
    let mut bytes = Vec::new();
    {
        let mut stream = body.stream().map_err(|()| "no body stream")?;
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading the body: {e}"))?;
    }
    Ok((status, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_path_of_this_site_is_kept() {
        assert_eq!(path_of("http://shop/product/X?a=1"), Some("/product/X?a=1"));
        assert_eq!(path_of("https://127.0.0.1:8090/"), Some("/"));
        assert_eq!(path_of("http://shop"), None);
        assert_eq!(path_of("/cart"), None);
        for forged in [
            "http://x//evil.example/",
            "http://x/\\evil",
            "http://x/\t/evil.example",
            "http://x/a b",
        ] {
            assert_eq!(path_of(forged), None, "{forged:?}");
        }
    }

    #[test]
    fn query_is_split_and_decoded() {
        assert_eq!(
            parse_query("name=Ada%20L&lang=en,fr&x"),
            vec![
                ("name".into(), "Ada L".into()),
                ("lang".into(), "en,fr".into()),
                ("x".into(), "".into())
            ]
        );
    }
}
