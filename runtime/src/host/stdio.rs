//! Guest stdout and stderr, line by line, prefixed with the component's
//! name; or, with JSON logs, each line a JSON object on stderr.

use super::Sandbox;
use crate::telemetry::logs::{self, GuestLabels};
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// The longest partial line kept before it is printed anyway.
const MAX_LINE: usize = 8 << 10;

/// A guest output stream that prints `[name] line` to the host's stdout or stderr.
#[derive(Clone)]
pub struct PrefixedOutput {
    prefix: String,
    to_stderr: bool,
    sandbox: Arc<Sandbox>,
}

impl PrefixedOutput {
    /// The component's stdout.
    pub fn stdout(sandbox: &Arc<Sandbox>) -> PrefixedOutput {
        PrefixedOutput {
            prefix: format!("[{}] ", sandbox.name),
            to_stderr: false,
            sandbox: sandbox.clone(),
        }
    }

    /// The component's stderr.
    pub fn stderr(sandbox: &Arc<Sandbox>) -> PrefixedOutput {
        PrefixedOutput {
            prefix: format!("[{}] ", sandbox.name),
            to_stderr: true,
            sandbox: sandbox.clone(),
        }
    }
}

impl IsTerminal for PrefixedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PrefixedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            out: self.clone(),
            partial: Vec::new(),
        })
    }
}

/// Buffers a partial line until its newline arrives, so that lines from
/// concurrent instances never interleave mid-line.
struct LineWriter {
    out: PrefixedOutput,
    partial: Vec<u8>,
}

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        if logs::json() {
            let sandbox = &self.out.sandbox;
            let labels = GuestLabels {
                component: &sandbox.name,
                group: &sandbox.group,
                version: &sandbox.version,
            };
            let (level, stream) = match self.out.to_stderr {
                true => ("ERROR", "stderr"),
                false => ("INFO", "stdout"),
            };
            let line = logs::guest_line(&labels, level, stream, &String::from_utf8_lossy(line));
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            return;
        }
        // The line ends at the guest's newline; a carriage return or an
        // escape sequence inside it is written escaped, so that it cannot
        // overwrite another line on a terminal.
        let line = String::from_utf8_lossy(line);
        let line = logs::escaped_whole(&line).to_string();
        let mut text = Vec::with_capacity(self.out.prefix.len() + line.len() + 1);
        text.extend_from_slice(self.out.prefix.as_bytes());
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
        // A closed host stdout must not fail the guest's call.
        let _ = if self.out.to_stderr {
            std::io::stderr().lock().write_all(&text)
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&text).and_then(|()| out.flush())
        };
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.partial.extend_from_slice(buf);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        // A guest that never writes a newline must not grow host memory.
        if self.partial.len() > MAX_LINE {
            let long = std::mem::take(&mut self.partial);
            self.emit(&long);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.emit(&rest);
        }
    }
}
