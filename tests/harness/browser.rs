//! Headless Chromium (Debian's `chromium`), as a user's browser: the DOM
//! of a page after its scripts ran, and screenshots.

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
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs")
}

/// The DOM of `url` after `budget_ms` of the page's (virtual) time, so
/// that its timers and fetches have run.
pub fn dom_after(url: &str, budget_ms: u32) -> String {
    let out = headless(
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
