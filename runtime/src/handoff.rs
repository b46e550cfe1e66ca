//! Listener hand-off: one listening socket per listener, bound once by the
//! manager of `weft deploy`, accepted on by whichever side serves it now.
//!
//! Outside a rollout, the workers of the one running version accept the
//! listener's connections themselves, so a request costs no hop through the
//! manager: the manager passed them its socket when it started them (an
//! inherited file descriptor, `weft worker --listener-fd NAME=FD`). During a
//! rollout the manager's ingress accepts instead, because only it can split
//! new requests between two versions by weight.
//!
//! The socket, with its queue of connections not yet accepted, is the same
//! throughout, so a switch loses no connection: the side that takes over
//! starts accepting before the other stops ([`Turn::accept`]). The side
//! that stops ends its kept-alive connections gently
//! ([`crate::listener::serve`]): the next answer on each says
//! `Connection: close`, and its client reconnects to the side that serves.

use crate::listener::{self, ConnectionLimits};
use anyhow::Context as _;
use bytes::Bytes;
use std::os::fd::{AsRawFd as _, FromRawFd as _, RawFd};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Starts serving a socket until the receiver turns true.
type Start =
    Box<dyn Fn(tokio::net::TcpListener, watch::Receiver<bool>) -> JoinHandle<()> + Send + Sync>;

/// One side's turn at a shared listening socket: it accepts on it, or not.
pub struct Turn {
    listener: String,
    socket: std::net::TcpListener,
    start: Start,
    /// While it accepts: how to stop, and the serving task.
    serving: tokio::sync::Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl Turn {
    /// A turn at `socket`, the socket of `listener`, that serves each
    /// connection it accepts with `handler` within `limits`. It does not
    /// accept until told to.
    pub fn new<H, F, B>(
        listener: &str,
        socket: std::net::TcpListener,
        handler: H,
        limits: ConnectionLimits,
    ) -> Turn
    where
        H: Fn(hyper::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = hyper::Response<B>> + Send + 'static,
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let name = listener.to_string();
        let start: Start = Box::new(move |socket, mut stopped| {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            tokio::spawn(listener::serve(
                socket,
                name.clone(),
                handler.clone(),
                limits,
                shutdown,
            ))
        });
        Turn {
            listener: listener.to_string(),
            socket,
            start,
            serving: tokio::sync::Mutex::new(None),
        }
    }

    /// The listener's name.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The socket's descriptor, open for as long as the turn is, to pass
    /// to other processes with [`pass_to`].
    pub fn descriptor(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Starts accepting (`true`), or stops and returns once the
    /// connections it accepted have ended (`false`). Either is a no-op
    /// when it already is so.
    pub async fn accept(&self, on: bool) -> anyhow::Result<()> {
        let mut serving = self.serving.lock().await;
        match (on, serving.take()) {
            (true, Some(running)) => *serving = Some(running),
            (true, None) => {
                // A descriptor of its own for this turn: serving one ends
                // by closing it, and the socket itself must stay open.
                let socket = self
                    .socket
                    .try_clone()
                    .and_then(|s| {
                        s.set_nonblocking(true)?;
                        tokio::net::TcpListener::from_std(s)
                    })
                    .with_context(|| format!("listener '{}': cannot accept", self.listener))?;
                let (stop, stopped) = watch::channel(false);
                *serving = Some((stop, (self.start)(socket, stopped)));
            }
            (false, Some((stop, task))) => {
                let _ = stop.send(true);
                let _ = task.await;
            }
            (false, None) => {}
        }
        Ok(())
    }

    /// Whether it accepts now.
    pub async fn accepting(&self) -> bool {
        self.serving.lock().await.is_some()
    }
}

/// The flag a worker takes a listener's socket with.
pub const FLAG: &str = "--listener-fd";

/// Makes `command`'s process inherit each of `sockets` (by listener name)
/// at the same descriptor number, and tells it which is which with
/// [`FLAG`]. No other process the caller starts inherits them.
pub fn pass_to(command: &mut tokio::process::Command, sockets: &[(String, RawFd)]) {
    for (name, fd) in sockets {
        command.arg(FLAG).arg(format!("{name}={fd}"));
    }
    let fds: Vec<RawFd> = sockets.iter().map(|(_, fd)| *fd).collect();
    if fds.is_empty() {
        return;
    }
    // SAFETY: the closure runs in the child between fork and exec, and
    // calls only fcntl, which is async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            for fd in &fds {
                let flags = libc::fcntl(*fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(*fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Takes the socket that a `FLAG` value (`NAME=FD`) names: checks that the
/// descriptor is open and a listening TCP socket before owning it.
///
/// # Safety
///
/// Nothing else in this process may own or use the descriptor: it was
/// passed to this process for this, and each one is adopted once.
pub unsafe fn adopt(value: &str) -> anyhow::Result<(String, std::net::TcpListener)> {
    let (name, fd) = value
        .split_once('=')
        .and_then(|(n, fd)| Some((n, fd.parse::<RawFd>().ok()?)))
        .filter(|(n, fd)| !n.is_empty() && *fd > 2)
        .with_context(|| format!("{FLAG} {value}: expected LISTENER=FD, such as web=5"))?;
    let listening = {
        let mut accepting: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `accepting`;
        // on a descriptor that is not an open socket it fails and writes
        // nothing.
        let got = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                (&raw mut accepting).cast(),
                &mut len,
            )
        };
        got == 0 && accepting == 1
    };
    anyhow::ensure!(
        listening,
        "{FLAG} {value}: descriptor {fd} is not a listening socket; this flag is how a manager \
         passes a listener's socket to the workers it starts, and is not for use by hand"
    );
    // SAFETY: the descriptor is open and a listening socket (checked
    // above), and the caller owns it alone (this function's contract).
    let socket = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    socket
        .local_addr()
        .with_context(|| format!("{FLAG} {value}: descriptor {fd} is not a TCP socket"))?;
    Ok((name.to_string(), socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_that_is_not_a_listening_socket_is_refused() {
        let file = tempfile::tempfile().expect("a file");
        // SAFETY (here and below): each is refused before it is owned.
        let e = unsafe { adopt(&format!("web={}", file.as_raw_fd())) }.unwrap_err();
        assert!(e.to_string().contains("is not a listening socket"), "{e}");
        let e = unsafe { adopt("web") }.unwrap_err();
        assert!(e.to_string().contains("expected LISTENER=FD"), "{e}");
        let e = unsafe { adopt("web=1") }.unwrap_err();
        assert!(e.to_string().contains("expected LISTENER=FD"), "{e}");
    }

    #[test]
    fn a_listening_socket_is_adopted() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = socket.local_addr().expect("address");
        // Adopting takes ownership of the descriptor.
        let fd = std::os::fd::IntoRawFd::into_raw_fd(socket);
        // SAFETY: the descriptor was just released by its only owner.
        let (name, adopted) = unsafe { adopt(&format!("web={fd}")) }.expect("adopted");
        assert_eq!(name, "web");
        assert_eq!(adopted.local_addr().expect("address"), address);
    }
}
