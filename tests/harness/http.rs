//! A small HTTP/1.1 client for the tests and the benchmark: [`http_get`]
//! makes one request on a connection of its own, and a [`Connection`] sends
//! requests one after another on one kept-alive socket, as a load generator
//! such as `wrk` does.
//!
//! Every request leaves in one write on a socket with `TCP_NODELAY`, so that
//! the client never adds a Nagle delay of its own to what a test measures.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a test waits for any one response.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// `GET url` over HTTP/1.1 on a new connection; returns the status and the
/// body as text.
pub fn http_get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = connect(authority);
    stream
        .write_all(request(authority, path, "close").as_bytes())
        .expect("send the request");
    let reply = read_response(&mut BufReader::new(stream), true);
    (reply.status, reply.body)
}

/// One kept-alive HTTP/1.1 connection.
pub struct Connection {
    authority: String,
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// The connection's socket, for a test that reads it raw.
    pub fn into_stream(self) -> TcpStream {
        self.reader.into_inner()
    }

    /// Connects to `address`.
    pub fn open(address: SocketAddr) -> Connection {
        let authority = address.to_string();
        let stream = connect(&authority);
        Connection {
            authority,
            reader: BufReader::new(stream),
        }
    }

    /// `GET path` on this connection; returns the status and the body as
    /// text, and leaves the connection open for the next request.
    pub fn get(&mut self, path: &str) -> (u16, String) {
        let reply = self.request(path);
        (reply.status, reply.body)
    }

    /// `GET path` on this connection, with the answer's headers.
    pub fn request(&mut self, path: &str) -> Reply {
        self.request_with(path, &[])
    }

    /// `GET path` with extra request headers, such as a cookie.
    pub fn request_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("GET", path, headers, b"")
    }

    /// `METHOD path` with extra request headers and a body (sent with its
    /// length when it is not empty).
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut text = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\n",
            self.authority
        );
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            text.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(body);
        // As an HTTP client's pool does: a kept-alive connection that the
        // server has closed meanwhile is not reused.
        if self.closed_by_server() {
            self.reader = BufReader::new(connect(&self.authority));
        }
        self.reader
            .get_mut()
            .write_all(&bytes)
            .expect("send the request");
        let reply = read_response(&mut self.reader, false);
        // As an HTTP/1.1 client does: a server that ends the connection
        // says so, and the next request goes on a new one.
        if reply
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            self.reader = BufReader::new(connect(&self.authority));
        }
        reply
    }
}

impl Connection {
    /// Whether the server has closed this connection (it is readable, at
    /// its end, with nothing buffered).
    fn closed_by_server(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        let stream = self.reader.get_mut();
        if stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        let closed = match stream.peek(&mut byte) {
            Ok(n) => n == 0,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        stream.set_nonblocking(false).is_err() || closed
    }
}

/// An answer: its status, headers (names in lower case) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers, in order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// The first value of header `name` (in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn connect(authority: &str) -> TcpStream {
    let stream = TcpStream::connect(authority).expect("connect");
    stream.set_nodelay(true).expect("set TCP_NODELAY");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("set a read timeout");
    stream
}

fn request(authority: &str, path: &str, connection: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: {connection}\r\n\r\n")
}

/// Splits a raw HTTP/1.1 response into its status and (de-chunked) body.
pub fn parse_response(raw: &[u8]) -> (u16, String) {
    let reply = read_response(&mut &raw[..], true);
    (reply.status, reply.body)
}

/// Reads one response from `from`. Without a length or chunks, the body
/// runs to the end of the stream, which only a closing connection allows.
fn read_response(from: &mut impl BufRead, closing: bool) -> Reply {
    let status_line = line(from);
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {status_line:?}"));
    let (mut length, mut chunked) = (None, false);
    let mut headers = Vec::new();
    loop {
        let header = line(from);
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').expect("a header line");
        let value = value.trim();
        headers.push((name.to_ascii_lowercase(), value.to_string()));
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().expect("a content length"));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body = match (length, chunked) {
        (_, true) => chunked_body(from),
        (Some(n), false) => exactly(from, n),
        (None, false) if closing => {
            let mut rest = Vec::new();
            from.read_to_end(&mut rest).expect("read the body");
            rest
        }
        (None, false) => panic!("a kept-alive response needs a length or chunks"),
    };
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn chunked_body(from: &mut impl BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let size_line = line(from);
        let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("not a chunk size: {size_line:?}"));
        if size == 0 {
            // Trailers, if any, end with an empty line.
            while !line(from).is_empty() {}
            return body;
        }
        body.extend(exactly(from, size));
        assert!(line(from).is_empty(), "a chunk ends with CRLF");
    }
}

/// One line, without its CRLF.
fn line(from: &mut impl BufRead) -> String {
    let mut line = String::new();
    let n = from.read_line(&mut line).expect("read a line");
    assert!(n > 0, "the connection closed mid-response");
    line.trim_end_matches(['\r', '\n']).to_string()
}

fn exactly(from: &mut impl BufRead, n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    from.read_exact(&mut bytes).expect("read the body");
    bytes
}
