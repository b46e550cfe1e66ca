//! Sending one outgoing request on a connection of its own.
//!
//! weft opens the socket itself, rather than through wasmtime-wasi-http's
//! default sender, to set `TCP_NODELAY` on it: a guest writes the request's
//! body after its head, and with Nagle's algorithm that second write waits
//! for the server's delayed ACK (40 ms on Linux) before it leaves.
//!
//! The guest's `request-options` are honoured: the connect timeout (30 s
//! when unset), the time to the response's head, and the time between the
//! response body's frames. The call's own `call-timeout` bounds all of it.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// How long a connection may take when the guest does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What drives the connection until the exchange is over.
pub(super) type Driver = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// A connection, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Sends `request` and returns the response's head, with its body still
/// arriving, and the future that drives the connection.
pub(super) async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, Driver), Error> {
    let options = options.unwrap_or_default();
    let uri = request.uri();
    let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    // The head names the host already; the request line takes the path.
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = http::Uri::try_from(path).map_err(|_| Error::HttpRequestUriInvalid)?;
    let connect = async {
        let stream = TcpStream::connect(format!("{host}:{port}"))
            .await
            .map_err(Error::Connect)?;
        stream.set_nodelay(true).map_err(Error::Connect)?;
        let io: Box<dyn Io> = if tls {
            // An IPv6 host comes in brackets, which a server name has not.
            let name = host.trim_start_matches('[').trim_end_matches(']');
            let name = rustls::pki_types::ServerName::try_from(name.to_string())
                .map_err(Error::InvalidDnsNameError)?;
            let connector = tokio_rustls::TlsConnector::from(tls_config()?);
            Box::new(connector.connect(name, stream).await.map_err(Error::Tls)?)
        } else {
            Box::new(stream)
        };
        hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(Error::from)
    };
    let timeout = options.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
    let (mut sender, connection) = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    let driver = tokio::spawn(connection);

    *request.uri_mut() = path;
    let sent = sender.send_request(request);
    let response = match options.first_byte_timeout {
        Some(limit) => tokio::time::timeout(limit, sent)
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?,
        None => sent.await,
    }
    .map_err(Error::from)?;
    let gap = options.between_bytes_timeout;
    let response = response.map(|body| match gap {
        Some(limit) => Watched::new(body, limit).boxed_unsync(),
        None => body.map_err(Error::from).boxed_unsync(),
    });
    let driver: Driver = Box::new(async move {
        match driver.await {
            Ok(ended) => ended.map_err(Error::from),
            Err(_) => Err(Error::ConnectionTerminated),
        }
    });
    Ok((response, driver))
}

/// The TLS settings every connection shares: the web's root certificates.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, Error> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| Error::Tls(std::io::Error::other(e)))
}

/// A response body that fails when no frame arrives for `limit`.
struct Watched {
    body: Incoming,
    limit: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Watched {
    fn new(body: Incoming, limit: Duration) -> Watched {
        Watched {
            body,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.limit;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Error::from))),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
