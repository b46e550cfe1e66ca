//! Log lines: text for people, or with `--log-format json` one JSON object
//! per line on stderr, for log collectors. A JSON line carries the
//! component, group and version it belongs to, and the trace id of the
//! request it served, so that a collector can join logs to traces.
//!
//! Three kinds of lines go through here: weft's own log
//! (`tracing` events, [`JsonEvents`]), guests' `wasi:logging` calls, and
//! guests' stdout and stderr. weft's progress lines for people (`weft:
//! listener web on …`) stay text on stdout.

use super::trace;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, format::Writer};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Text, for people.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The group and version of this process, once it knows them.
static PROCESS: OnceLock<(String, String)> = OnceLock::new();

/// Sets the format of this process's log lines; the first call wins.
pub fn set_format(format: LogFormat) {
    let _ = FORMAT.set(format);
}

/// Whether log lines are JSON.
pub fn json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// Tells weft's own log lines which group and version this process runs.
pub fn set_process(group: &str, version: &str) {
    let _ = PROCESS.set((group.to_string(), version.to_string()));
}

/// Text from the network or a guest, fit for a log line or an error: every
/// control character (a newline, a carriage return, an escape) is written
/// as `\u{..}`, and a backslash as `\\`, so no value can forge a line or
/// move the terminal's cursor; past [`SHOWN_CHARS`] characters the rest
/// is cut and counted, so no value can make a line or a status huge.
pub fn escaped(text: &str) -> Escaped<'_> {
    Escaped(text, SHOWN_CHARS)
}

/// [`escaped`], but whole however long: a guest's own log line.
pub fn escaped_whole(text: &str) -> Escaped<'_> {
    Escaped(text, usize::MAX)
}

/// [`escaped`] text, written as it is displayed, with at most this many
/// characters shown.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(&'a str, usize);

/// How many characters of a value [`escaped`] shows.
pub const SHOWN_CHARS: usize = 200;

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(self.1) {
            match c {
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        let rest = chars.count();
        if rest > 0 {
            write!(f, "…({rest} more characters)")?;
        }
        Ok(())
    }
}

/// Who wrote a guest's line.
pub struct GuestLabels<'a> {
    /// The component.
    pub component: &'a str,
    /// Its group.
    pub group: &'a str,
    /// The version it belongs to.
    pub version: &'a str,
}

/// One guest log line as a JSON object, with a newline: `level` (such as
/// `INFO`), `stream` (`log`, `stdout` or `stderr`), and the trace id of the
/// current context, if it is in a trace.
pub fn guest_line(labels: &GuestLabels<'_>, level: &str, stream: &str, message: &str) -> String {
    let mut object = Map::new();
    object.insert("timestamp".into(), now().into());
    object.insert("level".into(), level.into());
    object.insert("source".into(), "guest".into());
    object.insert("stream".into(), stream.into());
    object.insert("component".into(), labels.component.into());
    object.insert("group".into(), labels.group.into());
    object.insert("version".into(), labels.version.into());
    if let Some(trace_id) = trace::current_trace_id() {
        object.insert("trace_id".into(), trace_id.into());
    }
    object.insert("message".into(), message.into());
    let mut line = Value::Object(object).to_string();
    line.push('\n');
    line
}

/// weft's own `tracing` events as JSON objects: `timestamp`, `level`,
/// `source: "weft"`, `group` and `version` once known, `trace_id`, the
/// event's fields (`component`, `listener`, …) and its `message`.
pub struct JsonEvents;

impl<S, N> FormatEvent<S, N> for JsonEvents
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut object = Map::new();
        object.insert("timestamp".into(), now().into());
        object.insert("level".into(), event.metadata().level().as_str().into());
        object.insert("source".into(), "weft".into());
        if let Some((group, version)) = PROCESS.get() {
            object.insert("group".into(), group.as_str().into());
            object.insert("version".into(), version.as_str().into());
        }
        if let Some(trace_id) = trace::current_trace_id() {
            object.insert("trace_id".into(), trace_id.into());
        }
        event.record(&mut Fields(&mut object));
        writeln!(writer, "{}", Value::Object(object))
    }
}

/// Collects an event's fields as strings.
struct Fields<'a>(&'a mut Map<String, Value>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.into());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.0.insert(field.name().to_string(), text.into());
    }
}

/// Now, as RFC 3339 UTC with milliseconds.
fn now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since.as_secs(), since.subsec_millis())
}

/// `secs` after the Unix epoch, and `millis`, as `2026-11-23T01:02:03.004Z`.
fn rfc3339(secs: u64, millis: u32) -> String {
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_cannot_forge_a_line() {
        let forged = "nobody\n2026-12-04T00:00:00Z INFO admin logged in\x1b[2K\\";
        let written = escaped(forged).to_string();
        assert!(!written.chars().any(char::is_control), "{written}");
        assert_eq!(
            written,
            "nobody\\u{a}2026-12-04T00:00:00Z INFO admin logged in\\u{1b}[2K\\\\"
        );
        assert_eq!(escaped("greeter").to_string(), "greeter");
        let huge = "x".repeat(1 << 20);
        let shown = escaped(&huge).to_string();
        assert!(shown.len() < 300, "{shown}");
        assert!(shown.ends_with(&format!("…({} more characters)", (1 << 20) - SHOWN_CHARS)));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_795_395_723, 42), "2026-11-23T01:02:03.042Z");
    }

    #[test]
    fn a_guest_line_is_one_json_object() {
        let labels = GuestLabels {
            component: "greeter",
            group: "main",
            version: "abc",
        };
        let line = guest_line(&labels, "INFO", "log", "greet: hi \"there\"");
        assert!(line.ends_with('\n') && line.lines().count() == 1);
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["component"], "greeter");
        assert_eq!(value["message"], "greet: hi \"there\"");
        assert_eq!(value["source"], "guest");
        assert!(value.get("trace_id").is_none());
    }
}
