//! Traces: a span for every request a listener answers and every
//! cross-component call, local or remote, exported over OTLP.
//!
//! Spans follow OpenTelemetry's RPC conventions: a call is named
//! `INTERFACE/METHOD`, with `rpc.system = "weft"`, `rpc.service` and
//! `rpc.method`, and weft's own `weft.app`, `weft.version`, `weft.group`,
//! `weft.caller` and `weft.callee`. A call in one process is one span
//! (kind internal); a call to another process is a client span in the
//! caller and a server span in the callee, linked by the W3C `traceparent`
//! and `tracestate` in the call's gRPC metadata. A listener continues the
//! `traceparent` of the request it answers.
//!
//! The current span travels as OpenTelemetry's current [`Context`]: each
//! span's work runs under `with_context`, so the guest's calls, which run
//! inside that work, see their parent.
//!
//! Tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the exporter reads the
//! standard `OTEL_*` variables. Sampling is parent-based: a request that
//! arrives with a sampled `traceparent` is traced, and a new trace is
//! sampled with the ratio `OTEL_TRACES_SAMPLER_ARG` (with
//! `OTEL_TRACES_SAMPLER=parentbased_traceidratio`; every trace by
//! default). A span whose parent is not sampled is not even built: the
//! parent's context is passed on as it is, so logs and other processes
//! still see the trace id.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::sync::OnceLock;
use std::time::Duration;

/// The tracer of this process, once tracing is on.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Keeps the exporter running; shuts it down, flushing spans, when dropped.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Drop for Tracing {
    fn drop(&mut self) {
        let _ = self.provider.shutdown_with_timeout(Duration::from_secs(5));
    }
}

/// Whether the environment asks for traces.
pub fn wanted() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
        && std::env::var("OTEL_TRACES_EXPORTER").map_or(true, |e| e != "none")
}

/// Starts exporting spans over OTLP/gRPC as `service` (the process's
/// `service.name`, unless `OTEL_SERVICE_NAME` says otherwise), if the
/// environment asks for traces. Must run inside the tokio runtime, which
/// carries the exporter's connection; keep the result until exit.
pub fn init(service: &str) -> anyhow::Result<Option<Tracing>> {
    if !wanted() {
        return Ok(None);
    }
    start(service, None).map(Some)
}

/// Starts exporting spans to the OTLP/gRPC `endpoint`, whatever the
/// environment says: for the benchmark.
pub fn export_to(endpoint: &str, service: &str) -> anyhow::Result<Tracing> {
    start(service, Some(endpoint))
}

fn start(service: &str, endpoint: Option<&str>) -> anyhow::Result<Tracing> {
    use opentelemetry_otlp::WithExportConfig as _;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    let exporter = exporter.build().map_err(|e| {
        anyhow::anyhow!("cannot export traces over OTLP: {e}; check OTEL_EXPORTER_OTLP_ENDPOINT")
    })?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_string());
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let _ = TRACER.set(provider.tracer("weft"));
    Ok(Tracing { provider })
}

/// What a span is about: its name, kind and attributes, made only for a
/// span that records.
pub(crate) struct SpanSpec<'a> {
    pub name: &'a str,
    pub kind: SpanKind,
    pub attributes: &'a (dyn Fn() -> Vec<KeyValue> + Sync),
}

/// A span as `spec` says, child of `parent`, in a context of its own;
/// `None` when no span is made: tracing is off, or the parent's trace is
/// not sampled (parent-based sampling, decided without building a span).
pub(crate) fn child(parent: &Context, spec: &SpanSpec<'_>) -> Option<Context> {
    let tracer = TRACER.get()?;
    let parent_span = parent.span();
    let parent_span = parent_span.span_context();
    if parent_span.is_valid() && !parent_span.is_sampled() {
        return None;
    }
    let span = tracer
        .span_builder(spec.name.to_string())
        .with_kind(spec.kind.clone())
        .start_with_context(tracer, parent);
    let cx = parent.with_span(span);
    let span = cx.span();
    if span.is_recording() {
        span.set_attributes((spec.attributes)());
    }
    Some(cx)
}

/// Like [`child`], of the current context, which it does not even copy
/// when the current trace is not sampled.
pub(crate) fn child_of_current(spec: &SpanSpec<'_>) -> Option<Context> {
    TRACER.get()?;
    let unsampled = Context::map_current(|cx| {
        let span = cx.span();
        let span = span.span_context();
        span.is_valid() && !span.is_sampled()
    });
    if unsampled {
        return None;
    }
    child(&Context::current(), spec)
}

/// Ends the span that [`child`] made in `cx`, marking it failed with
/// `error`.
pub(crate) fn end(cx: &Context, error: Option<&dyn std::fmt::Display>) {
    let span = cx.span();
    if !span.is_recording() {
        return;
    }
    if let Some(error) = error {
        span.set_status(Status::error(error.to_string()));
    }
    span.end();
}

/// Writes the context's `traceparent` and `tracestate` to `carrier`.
pub(crate) fn inject(cx: &Context, carrier: &mut dyn Injector) {
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(cx, carrier);
    }
}

/// The context a `traceparent` in `carrier` names, as the parent of this
/// side's span; an empty context without one.
pub(crate) fn extract(carrier: &dyn Extractor) -> Context {
    TraceContextPropagator::new().extract_with_context(&Context::new(), carrier)
}

/// The trace id of the current context, if it is in a trace.
pub fn current_trace_id() -> Option<String> {
    Context::map_current(|cx| {
        let span = cx.span();
        let span = span.span_context();
        span.is_valid().then(|| span.trace_id().to_string())
    })
}

/// gRPC metadata as a carrier of trace context, both ways.
pub(crate) struct Metadata<'a>(pub &'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Read-only gRPC metadata as a carrier.
pub(crate) struct MetadataReader<'a>(pub &'a tonic::metadata::MetadataMap);

impl Extractor for MetadataReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// The attributes of a call's span.
pub(crate) struct CallLabels<'a> {
    pub app: &'a str,
    pub version: &'a str,
    pub group: &'a str,
    pub caller: &'a str,
    pub callee: &'a str,
    pub interface: &'a str,
    pub method: &'a str,
}

impl CallLabels<'_> {
    /// The span's attributes, by OpenTelemetry's RPC conventions and weft's.
    pub(crate) fn attributes(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::new("rpc.system", "weft"),
            KeyValue::new("rpc.service", self.interface.to_string()),
            KeyValue::new("rpc.method", self.method.to_string()),
            KeyValue::new("weft.app", self.app.to_string()),
            KeyValue::new("weft.version", self.version.to_string()),
            KeyValue::new("weft.group", self.group.to_string()),
            KeyValue::new("weft.caller", self.caller.to_string()),
            KeyValue::new("weft.callee", self.callee.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    fn remote(sampled: bool) -> Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            flags,
            true,
            TraceState::default(),
        ))
    }

    #[test]
    fn a_traceparent_survives_metadata_both_ways() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        inject(&remote(true), &mut Metadata(&mut metadata));
        assert_eq!(
            metadata.get("traceparent").unwrap().to_str().unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let back = extract(&MetadataReader(&metadata));
        assert_eq!(
            back.span().span_context().trace_id(),
            remote(true).span().span_context().trace_id()
        );
        assert!(back.span().span_context().is_sampled());
    }

    #[test]
    fn no_traceparent_is_written_outside_a_trace() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        inject(&Context::new(), &mut Metadata(&mut metadata));
        assert!(metadata.is_empty());
    }

    #[test]
    fn an_unsampled_parent_is_passed_on_as_it_is() {
        // Without a tracer, and with an unsampled parent, no span is made.
        let parent = remote(false);
        let spec = SpanSpec {
            name: "x/y",
            kind: SpanKind::Client,
            attributes: &Vec::new,
        };
        assert!(child(&parent, &spec).is_none());
    }
}
