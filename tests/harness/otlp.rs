//! A real OTLP/gRPC receiver of traces and metrics, on a free port of this
//! process: what a collector would get from weft's exporters.

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One span as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// Its name, such as `demo:hello/greeter@0.1.0/greet`.
    pub name: String,
    /// Its kind, as OTLP numbers it (2 server, 3 client, 1 internal).
    pub kind: i32,
    /// Its trace id, in hex.
    pub trace_id: String,
    /// Its span id, in hex.
    pub span_id: String,
    /// Its parent's span id, in hex; empty for a root.
    pub parent_span_id: String,
    /// Its string and integer attributes, as text.
    pub attributes: BTreeMap<String, String>,
}

/// A span of work inside one process, as OTLP numbers kinds.
pub const INTERNAL: i32 = 1;
/// The side of a call or request that answers it.
pub const SERVER: i32 = 2;
/// The side of a call that makes it.
pub const CLIENT: i32 = 3;

/// One point of a sum as received: its metric, attributes and value.
#[derive(Debug, Clone)]
pub struct ReceivedPoint {
    /// The metric's name, such as `weft.calls`.
    pub metric: String,
    /// Its attributes, as text.
    pub attributes: BTreeMap<String, String>,
    /// Its value.
    pub value: i64,
}

#[derive(Default, Clone)]
struct Collector(Arc<Mutex<Vec<ReceivedSpan>>>);

#[derive(Default, Clone)]
struct MetricsCollector(Arc<Mutex<Vec<ReceivedPoint>>>);

#[tonic::async_trait]
impl MetricsService for MetricsCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut points = self.0.lock().unwrap();
        for resource in request.into_inner().resource_metrics {
            for scope in resource.scope_metrics {
                for metric in scope.metrics {
                    let Some(Data::Sum(sum)) = metric.data else {
                        continue;
                    };
                    for point in sum.data_points {
                        let Some(number_data_point::Value::AsInt(value)) = point.value else {
                            continue;
                        };
                        points.push(ReceivedPoint {
                            metric: metric.name.clone(),
                            attributes: text_attributes(&point.attributes),
                            value,
                        });
                    }
                }
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn text_attributes(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => s.clone(),
                Value::IntValue(i) => i.to_string(),
                Value::BoolValue(b) => b.to_string(),
                other => format!("{other:?}"),
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let attributes = text_attributes(&span.attributes);
                    spans.push(ReceivedSpan {
                        name: span.name,
                        kind: span.kind,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A receiver serving on its own thread and runtime until dropped.
pub struct OtlpReceiver {
    /// Where it listens, as `http://127.0.0.1:PORT`, for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    points: Arc<Mutex<Vec<ReceivedPoint>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl OtlpReceiver {
    /// Starts a receiver on a free port.
    pub fn start() -> OtlpReceiver {
        let collector = Collector::default();
        let spans = collector.0.clone();
        let metrics = MetricsCollector::default();
        let points = metrics.0.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                let _ = tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(collector))
                    .add_service(MetricsServiceServer::new(metrics))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        OtlpReceiver {
            endpoint,
            spans,
            points,
            stop: Some(stop),
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// Every point of a sum received so far, oldest first.
    pub fn points(&self) -> Vec<ReceivedPoint> {
        self.points.lock().unwrap().clone()
    }

    /// Waits up to 30 s until `done` holds for the spans received.
    pub fn wait_until(&self, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() >= deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
