//! Headless Chromium (Debian's `chromium`), as a user's browser: the DOM
//! of a page after its scripts ran, and screenshots.
//!
//! A [`Browser`] is one user across several pages: its profile folder
//! keeps the cookies sites set, from one Chromium run to the next, and it
//! submits forms as a user would (a page on another loopback port, which
//! is the same site, posts the form and Chromium follows the answer).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Chromium binary; a clear failure when it is missing.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("which").arg(name).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!(
        "the dashboard test needs headless Chromium: apt-get install -y chromium (.ci/run does)"
    );
}

fn headless(extra: &[&str], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().expect("a profile folder");
    headless_in(profile.path(), extra, url)
}

fn headless_in(profile: &Path, extra: &[&str], url: &str) -> std::process::Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs")
}

/// The DOM of `url` after `budget_ms` of the page's (virtual) time, so
/// that its timers and fetches have run.
pub fn dom_after(url: &str, budget_ms: u32) -> String {
    let profile = tempfile::tempdir().expect("a profile folder");
    dom_in(profile.path(), url, budget_ms)
}

fn dom_in(profile: &Path, url: &str, budget_ms: u32) -> String {
    let out = headless_in(
        profile,
        &[&format!("--virtual-time-budget={budget_ms}"), "--dump-dom"],
        url,
    );
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PNG of `url` at `width` × `height`, after the page's first seconds.
pub fn screenshot(url: &str, file: &Path, width: u32, height: u32) {
    let out = headless(
        &[
            &format!("--screenshot={}", file.display()),
            &format!("--window-size={width},{height}"),
            "--virtual-time-budget=3000",
            "--hide-scrollbars",
        ],
        url,
    );
    assert!(
        out.status.success() && file.exists(),
        "chromium made no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One user's browser: a Chromium profile that keeps its cookies between
/// pages.
pub struct Browser {
    profile: tempfile::TempDir,
}

impl Default for Browser {
    fn default() -> Browser {
        Browser::new()
    }
}

impl Browser {
    /// A browser with no cookies yet.
    pub fn new() -> Browser {
        Browser {
            profile: tempfile::tempdir().expect("a profile folder"),
        }
    }

    /// The DOM of `url`, once loaded.
    pub fn open(&self, url: &str) -> String {
        dom_in(self.profile.path(), url, 3000)
    }

    /// Submits a form with `fields` to `action` (an `http://127.0.0.1:PORT/`
    /// address) by POST, as a user's click would, and returns the DOM of
    /// the page the browser ends on (after any redirect).
    pub fn submit(&self, action: &str, fields: &[(&str, impl AsRef<str>)]) -> String {
        let inputs: String = fields
            .iter()
            .map(|(name, value)| {
                format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                    attribute(name),
                    attribute(value.as_ref())
                )
            })
            .collect();
        let page = format!(
            "<!doctype html><html><body><form method=\"post\" action=\"{}\">{inputs}</form>\
             <script>document.forms[0].submit()</script></body></html>",
            attribute(action)
        );
        let server = FormPage::serve(page);
        dom_in(self.profile.path(), &server.url, 3000)
    }
}

/// `text` inside a double-quoted HTML attribute.
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

/// A page served on a free loopback port until dropped.
struct FormPage {
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    address: std::net::SocketAddr,
}

impl FormPage {
    fn serve(page: String) -> FormPage {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let address = listener.local_addr().expect("its address");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                // Read the request's head; every path gets the page.
                let mut reader = BufReader::new(stream.try_clone().expect("a socket"));
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{page}",
                    page.len()
                );
            }
        });
        FormPage {
            url: format!("http://{address}/"),
            stop,
            address,
        }
    }
}

impl Drop for FormPage {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accepting thread so that it sees the flag.
        let _ = std::net::TcpStream::connect(self.address);
    }
}
