//! What a running app tells its operators: metrics at `--admin ADDR`,
//! read with a real Prometheus text parser, and traces, received by a
//! real OTLP receiver.

use weft_tests::browser;
use weft_tests::metrics::{scrape, value};
use weft_tests::otlp::{self, OtlpReceiver};
use weft_tests::{
    Connection, HELLO_APP, Load, Mode, VALUES_APP, Weft, app_dir, each_mode, free_address,
    http_get, weft_once,
};

/// After N requests to hello, the frontend→greeter counter is exactly N,
/// local in one process and remote when split; the listener counted N.
#[test]
fn metrics_count_each_call_where_it_was_placed() {
    let dir = app_dir(HELLO_APP);
    each_mode(|mode| {
        let admin = free_address().to_string();
        let app = Weft::start(mode, &[dir.path().to_str().unwrap(), "--admin", &admin]);
        const N: usize = 7;
        for _ in 0..N {
            let (status, body) = http_get(&app.url("web", "/?name=Ada"));
            assert_eq!(status, 200, "{body}");
        }
        let samples = scrape(&admin);
        let (group, remote, elsewhere) = match mode {
            Mode::Run | Mode::Monolith => ("main", "false", "true"),
            Mode::Split => ("frontend", "true", "false"),
        };
        let greet = [
            ("caller", "frontend"),
            ("component", "greeter"),
            ("interface", "demo:hello/greeter@0.1.0"),
            ("method", "greet"),
            ("group", group),
        ];
        let placed = [greet.as_slice(), &[("remote", remote)]].concat();
        let other = [greet.as_slice(), &[("remote", elsewhere)]].concat();
        assert_eq!(
            value(&samples, "weft_calls_total", &placed),
            Some(N as f64),
            "{mode:?}"
        );
        assert_eq!(
            value(&samples, "weft_calls_total", &other),
            None,
            "{mode:?}"
        );
        assert_eq!(
            value(&samples, "weft_call_errors_total", &placed),
            Some(0.0)
        );
        let sent = value(&samples, "weft_call_request_bytes_total", &placed).unwrap();
        assert!(sent > 0.0, "{mode:?}: the arguments have a size");
        let web = [("listener", "web"), ("code", "2xx")];
        assert_eq!(
            value(&samples, "weft_http_requests_total", &web),
            Some(N as f64),
            "{mode:?}"
        );
        // Every sample names the version that served it.
        assert!(
            samples
                .iter()
                .all(|s| s.labels.get("version").is_some_and(|v| v.len() == 16)),
            "{mode:?}"
        );
    });
}

#[test]
fn a_trapping_call_counts_as_an_error() {
    let dir = app_dir(VALUES_APP);
    let admin = free_address().to_string();
    // Split, so that the trap happens in another process than the count.
    let app = Weft::start(
        Mode::Split,
        &[dir.path().to_str().unwrap(), "--admin", &admin],
    );
    assert_eq!(http_get(&app.url("web", "/trap")).0, 500);
    assert_eq!(http_get(&app.url("web", "/many")).0, 200);
    let samples = scrape(&admin);
    let fail = [
        ("caller", "front"),
        ("component", "values"),
        ("method", "fail"),
    ];
    assert_eq!(value(&samples, "weft_calls_total", &fail), Some(1.0));
    assert_eq!(value(&samples, "weft_call_errors_total", &fail), Some(1.0));
    let many = [("caller", "front"), ("method", "many")];
    assert_eq!(value(&samples, "weft_call_errors_total", &many), Some(0.0));
    let web = [("listener", "web")];
    let by = |code| {
        value(
            &samples,
            "weft_http_requests_total",
            &[web.as_slice(), &[("code", code)]].concat(),
        )
    };
    assert_eq!((by("2xx"), by("5xx")), (Some(1.0), Some(1.0)));
}

/// Split, one request through hello is one trace: the listener's span, the
/// frontend's client span of `greet` and the greeter's server span, each
/// the parent of the next, across three processes' exporters. A request
/// that brings a `traceparent` continues its trace.
#[test]
fn one_request_is_one_trace_across_processes() {
    let receiver = OtlpReceiver::start();
    let dir = app_dir(HELLO_APP);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let app = Weft::start_with_env(Mode::Split, &[dir.path().to_str().unwrap()], &env);
    let (status, body) = http_get(&app.url("web", "/?name=Ada"));
    assert_eq!(status, 200, "{body}");
    let greet = "demo:hello/greeter@0.1.0/greet";
    let spans = receiver.wait_until(|spans| {
        spans.iter().filter(|s| s.name == greet).count() >= 2
            && spans
                .iter()
                .any(|s| s.kind == otlp::SERVER && s.name == "GET")
    });
    let find = |name: &str, kind| {
        spans
            .iter()
            .find(|s| s.name == name && s.kind == kind)
            .unwrap_or_else(|| panic!("no {name} span of kind {kind} in {spans:#?}"))
    };
    let listener = find("GET", otlp::SERVER);
    let client = find(greet, otlp::CLIENT);
    let server = find(greet, otlp::SERVER);
    for span in [client, server] {
        assert_eq!(span.trace_id, listener.trace_id, "one trace: {spans:#?}");
    }
    assert_eq!(client.parent_span_id, listener.span_id, "{spans:#?}");
    assert_eq!(server.parent_span_id, client.span_id, "{spans:#?}");
    // The client and server spans were made in different processes.
    assert_eq!(client.attributes["weft.group"], "frontend");
    assert_eq!(server.attributes["weft.group"], "greeter");
    for span in [client, server] {
        assert_eq!(span.attributes["rpc.system"], "weft");
        assert_eq!(span.attributes["rpc.service"], "demo:hello/greeter@0.1.0");
        assert_eq!(span.attributes["rpc.method"], "greet");
        assert_eq!(span.attributes["weft.caller"], "frontend");
        assert_eq!(span.attributes["weft.callee"], "greeter");
        assert_eq!(span.attributes["weft.app"], "hello");
        assert_eq!(span.attributes["weft.version"].len(), 16);
    }
    assert_eq!(listener.attributes["http.response.status_code"], "200");

    // A traceparent from outside: the listener's span continues it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{parent}-01");
    let reply = Connection::open(app.listeners["web"])
        .request_with("/?name=Bo", &[("traceparent", &traceparent)]);
    assert_eq!(reply.status, 200);
    let spans =
        receiver.wait_until(|spans| spans.iter().filter(|s| s.trace_id == trace_id).count() >= 3);
    let continued: Vec<_> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    assert_eq!(continued.len(), 3, "{spans:#?}");
    assert!(
        continued
            .iter()
            .any(|s| s.name == "GET" && s.parent_span_id == parent),
        "{continued:#?}"
    );
}

/// With `--log-format json`, log lines are JSON objects, and the greeter's
/// line for a request carries that request's trace id: in one process,
/// and split, where the id crossed to the greeter's worker.
#[test]
fn json_logs_carry_the_trace_id_of_their_request() {
    let dir = app_dir(HELLO_APP);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");
    for (mode, group) in [(Mode::Run, "main"), (Mode::Split, "greeter")] {
        let app = Weft::start(
            mode,
            &[dir.path().to_str().unwrap(), "--log-format", "json"],
        );
        let reply = Connection::open(app.listeners["web"])
            .request_with("/?name=Ada", &[("traceparent", &traceparent)]);
        assert_eq!(reply.status, 200, "{mode:?}");
        let output = app.wait_for_output(trace_id);
        let lines: Vec<serde_json::Value> = output
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{mode:?}: {e}: {l}")))
            .collect();
        let greeted = lines
            .iter()
            .find(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("greeted Ada"))
            })
            .unwrap_or_else(|| panic!("{mode:?}: no log line of the greeting in\n{output}"));
        assert_eq!(greeted["trace_id"], trace_id, "{mode:?}");
        assert_eq!(greeted["component"], "greeter", "{mode:?}");
        assert_eq!(greeted["group"], group, "{mode:?}");
        assert_eq!(greeted["source"], "guest", "{mode:?}");
        assert_eq!(
            greeted["version"].as_str().map(str::len),
            Some(16),
            "{mode:?}"
        );
        assert!(
            !output.lines().any(|l| l.starts_with("[greeter]")),
            "{mode:?}: a guest line in text: {output}"
        );
    }
}

/// `weft status` shows each method's calls per second, error share and
/// latency over the last minute, and where the calls ran.
#[test]
fn status_shows_the_last_minute_per_method() {
    let dir = app_dir(HELLO_APP);
    let path = dir.path().to_str().unwrap();
    let app = Weft::start(Mode::Split, &[path]);
    for _ in 0..20 {
        assert_eq!(http_get(&app.url("web", "/?name=Ada")).0, 200);
    }
    let (status, out, err) = weft_once(&["status", path, "--json"]);
    assert!(status.success(), "{err}");
    let state: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let methods = state["methods"].as_array().expect("a methods list");
    let greet = methods
        .iter()
        .find(|m| m["caller"] == "frontend" && m["method"] == "greet")
        .unwrap_or_else(|| panic!("no greet in {out}"));
    assert_eq!(greet["remote"], true);
    assert!(greet["calls_per_s"].as_f64().unwrap() > 0.0, "{out}");
    assert_eq!(greet["error_pct"].as_f64(), Some(0.0));
    assert!(greet["p99_ms"].as_f64().unwrap() >= greet["p50_ms"].as_f64().unwrap());
    let (status, out, err) = weft_once(&["status", path]);
    assert!(status.success(), "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("frontend -> greeter.greet"))
        .unwrap_or_else(|| panic!("no row for greet in\n{out}"));
    assert!(row.contains("remote"), "{row}");
    drop(app);
}

/// The dashboard of an app under traffic, in headless Chromium, in one
/// process and split: the app, its groups, the call graph with a
/// frontend→greeter edge that carries calls (local, or remote when split),
/// the per-method table, and the page refreshing itself.
#[test]
fn the_dashboard_shows_the_live_call_graph() {
    let dir = app_dir(HELLO_APP);
    for (mode, placed) in [(Mode::Run, "local"), (Mode::Split, "remote")] {
        let admin = free_address().to_string();
        let app = Weft::start(mode, &[dir.path().to_str().unwrap(), "--admin", &admin]);
        let load = Load::start(app.listeners["web"], "/?name=Ada", 2);
        std::thread::sleep(std::time::Duration::from_secs(2));
        let dom = browser::dom_after(&format!("http://{admin}/"), 5000);
        let replies = load.stop();
        assert!(
            replies.iter().flatten().all(|r| r.status == 200),
            "{mode:?}"
        );
        assert!(dom.contains("<h1>hello</h1>"), "{mode:?}: {dom}");
        assert!(dom.contains("1 of 1 healthy"), "{mode:?}: {dom}");
        let edge = dom
            .split("<g class=\"edge\"")
            .nth(1)
            .unwrap_or_else(|| panic!("{mode:?}: no edge in the call graph:\n{dom}"));
        let expected =
            format!(r#"data-caller="frontend" data-callee="greeter" data-where="{placed}""#);
        assert!(edge.contains(&expected), "{mode:?}: {edge}");
        let rate: f64 = edge
            .split("data-rate=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|r| r.parse().ok())
            .expect("a rate");
        assert!(rate > 0.0, "{mode:?}: {edge}");
        let calls = dom.split("id=\"calls\"").nth(1).expect("a calls table");
        assert!(calls.contains("demo:hello/greeter@0.1.0#greet") && calls.contains(placed));
        // The page fetched its live part at least once by itself.
        assert!(
            dom.contains("data-refreshes=\""),
            "{mode:?}: the page did not refresh:\n{dom}"
        );
    }
}

/// With an OTLP endpoint, each process also sends its counts there: after
/// N requests, the frontend→greeter `weft.calls` sum reaches N, local in
/// one process and remote from the frontend's worker when split.
#[test]
fn metrics_go_over_otlp_too() {
    let dir = app_dir(HELLO_APP);
    for (mode, remote) in [(Mode::Run, "false"), (Mode::Split, "true")] {
        let receiver = OtlpReceiver::start();
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ];
        let app = Weft::start_with_env(mode, &[dir.path().to_str().unwrap()], &env);
        const N: i64 = 5;
        for _ in 0..N {
            assert_eq!(http_get(&app.url("web", "/?name=Ada")).0, 200);
        }
        let calls = |points: &[otlp::ReceivedPoint]| {
            points
                .iter()
                .filter(|p| {
                    p.metric == "weft.calls"
                        && p.attributes.get("caller").map(String::as_str) == Some("frontend")
                        && p.attributes.get("method").map(String::as_str) == Some("greet")
                })
                .map(|p| (p.value, p.attributes["remote"].clone()))
                .next_back()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let last = loop {
            let last = calls(&receiver.points());
            if last.as_ref().is_some_and(|(n, _)| *n >= N) || std::time::Instant::now() > deadline {
                break last;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert_eq!(last, Some((N, remote.to_string())), "{mode:?}");
    }
}
