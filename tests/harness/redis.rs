//! A real `redis-server` for a test: its own free port, its own temporary
//! folder, no persistence, stopped when dropped.
//!
//! A missing `redis-server` fails the test with what to install; it never
//! skips it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Where it listens.
    pub address: SocketAddr,
    /// The password it asks for, if any.
    password: Option<String>,
}

impl RedisServer {
    /// Starts a server on a free loopback port.
    pub fn start() -> RedisServer {
        RedisServer::start_on(crate::free_address())
    }

    /// Starts a server at `address`, which may be any local address (a
    /// bridge's, for the cluster tests).
    pub fn start_on(address: SocketAddr) -> RedisServer {
        RedisServer::start_with(address, None)
    }

    /// Starts a server on a free loopback port that asks for `password`.
    pub fn start_with_password(password: &str) -> RedisServer {
        RedisServer::start_with(crate::free_address(), Some(password.to_string()))
    }

    fn start_with(address: SocketAddr, password: Option<String>) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = spawn(address, dir.path(), password.as_deref());
        let server = RedisServer {
            child: Some(child),
            dir,
            address,
            password,
        };
        server.wait_until_up();
        server
    }

    /// The url a manifest names it by, with database `db`.
    pub fn url(&self, db: u32) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@{}/{db}", self.address),
            None => format!("redis://{}/{db}", self.address),
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server, as a crash would: at once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(spawn(
            self.address,
            self.dir.path(),
            self.password.as_deref(),
        ));
        self.wait_until_up();
    }

    /// Sends one command in Redis's inline form and returns the raw answer.
    pub fn command(&self, line: &str) -> String {
        let mut stream = TcpStream::connect(self.address).expect("connect to redis-server");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let auth = self.auth();
        stream
            .write_all(format!("{auth}{line}\r\n").as_bytes())
            .unwrap();
        let mut answer = vec![0; 64 * 1024];
        let mut n = stream.read(&mut answer).unwrap_or(0);
        if !auth.is_empty() && n == 5 {
            // "+OK\r\n" to AUTH came alone; the answer follows.
            n += stream.read(&mut answer[n..]).unwrap_or(0);
        }
        let text = String::from_utf8_lossy(&answer[..n]).into_owned();
        match text.strip_prefix("+OK\r\n") {
            Some(rest) if !auth.is_empty() => rest.to_string(),
            _ => text,
        }
    }

    /// The AUTH line to send first, if the server asks for a password.
    fn auth(&self) -> String {
        self.password
            .as_ref()
            .map(|p| format!("AUTH {p}\r\n"))
            .unwrap_or_default()
    }

    fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(self.address) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let auth = self.auth();
                let expected: &[u8] = if auth.is_empty() {
                    b"+PONG\r\n"
                } else {
                    b"+OK\r\n+PONG\r\n"
                };
                let mut pong = vec![0u8; expected.len()];
                if stream
                    .write_all(format!("{auth}PING\r\n").as_bytes())
                    .is_ok()
                    && stream.read_exact(&mut pong).is_ok()
                    && pong == expected
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server did not answer on {} within 10 s",
            self.address
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(address: SocketAddr, dir: &Path, password: Option<&str>) -> Child {
    let mut command = Command::new("redis-server");
    if let Some(password) = password {
        command.args(["--requirepass", password]);
    }
    command
        .args(["--bind", &address.ip().to_string()])
        .args(["--port", &address.port().to_string()])
        .args(["--dir", &dir.display().to_string()])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start redis-server ({e}); install it with `apt-get install -y \
                 redis-server` (.ci/run does)"
            )
        })
}

/// The kvcounter sample, with its `counts` bucket on the Redis server at
/// `url` and its listener at `address`.
pub fn kvcounter_on_redis(url: &str, address: &str) -> tempfile::TempDir {
    crate::app_dir(&format!(
        "[app]\nname = \"kvcounter\"\n\
         [components.http]\nwasm = \"{{wasm:kvcounter_http}}\"\n\
         [components.counter]\nwasm = \"{{wasm:kvcounter_counter}}\"\n\
         [components.counter.grants]\nkeyvalue = [\"counts\"]\n\
         [listeners.web]\ncomponent = \"http\"\naddress = \"{address}\"\n\
         [keyvalue.counts]\nbackend = \"redis\"\nurl = \"{url}\"\n"
    ))
}
