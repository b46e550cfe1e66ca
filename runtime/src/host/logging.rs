//! `wasi:logging`: guest log lines on the host's stderr, as
//! `[component] LEVEL context: message`, or JSON objects with JSON logs.
//!
//! Info and above are always printed; debug and trace only when
//! `WEFT_GUEST_LOG` is `debug` or `trace`.

use super::bindings::wasi::logging::logging::{self, Level};
use super::{HostState, Sandbox};
use crate::capability::Capability;
use crate::engine::Concurrency;
use crate::telemetry::logs::{self, GuestLabels};
use std::io::Write;
use std::sync::OnceLock;
use wasmtime::component::{HasData, Linker};

/// `wasi:logging`: log lines prefixed with the component's name.
pub struct Logging;

impl Capability for Logging {
    fn name(&self) -> &'static str {
        "logging"
    }

    fn serves(&self, interface: &str) -> bool {
        interface.starts_with("wasi:logging/")
    }

    fn link(&self, linker: &mut Linker<HostState>, _: Concurrency) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }
}

struct LoggingData;

impl HasData for LoggingData {
    type Data<'a> = &'a Sandbox;
}

/// Links `wasi:logging/logging`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    logging::add_to_linker::<_, LoggingData>(linker, |state| &*state.sandbox)
}

fn rank(level: Level) -> u8 {
    match level {
        Level::Trace => 0,
        Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
        Level::Critical => 5,
    }
}

fn threshold() -> u8 {
    static THRESHOLD: OnceLock<u8> = OnceLock::new();
    *THRESHOLD.get_or_init(|| match std::env::var("WEFT_GUEST_LOG").as_deref() {
        Ok("trace") => 0,
        Ok("debug") => 1,
        _ => 2,
    })
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "TRACE",
        Level::Debug => "DEBUG",
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
        Level::Critical => "CRITICAL",
    }
}

/// The line printed for one log call.
/// The guest's context and message are escaped, so that a newline in them
/// cannot forge a line of the log.
pub fn format_line(component: &str, level: Level, context: &str, message: &str) -> String {
    let level = level_name(level);
    let message = logs::escaped_whole(message);
    if context.is_empty() {
        format!("[{component}] {level} {message}\n")
    } else {
        let context = logs::escaped(context);
        format!("[{component}] {level} {context}: {message}\n")
    }
}

impl logging::Host for &Sandbox {
    fn log(&mut self, level: Level, context: String, message: String) {
        if rank(level) < threshold() {
            return;
        }
        let line = if logs::json() {
            let labels = GuestLabels {
                component: &self.name,
                group: &self.group,
                version: &self.version,
            };
            let text = match context.is_empty() {
                true => message,
                false => format!("{context}: {message}"),
            };
            logs::guest_line(&labels, level_name(level), "log", &text)
        } else {
            format_line(&self.name, level, &context, &message)
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_component_name() {
        assert_eq!(
            format_line("greeter", Level::Info, "greet", "hi"),
            "[greeter] INFO greet: hi\n"
        );
        assert_eq!(format_line("c", Level::Error, "", "x"), "[c] ERROR x\n");
        assert_eq!(
            format_line("c", Level::Info, "", "ok\n[admin] INFO granted"),
            "[c] INFO ok\\u{a}[admin] INFO granted\n",
            "a guest cannot forge a line"
        );
    }
}
