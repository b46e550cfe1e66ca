//! The sandbox: a trap or an endless loop costs one request, memory is
//! limited, and capabilities reach only what was granted, at run time too;
//! in one process and in a worker of a deployment alike.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use weft_tests::{Mode, Weft, app_dir, each_mode, http_get};

/// A one-request-at-a-time HTTP server that answers `fetched`, for
/// outgoing calls.
fn tiny_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok).take(20) {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nfetched",
            );
        }
    });
    addr
}

/// Runs the faulty fixture in `mode`; it may send HTTP requests to
/// `outgoing` only.
fn faulty(mode: Mode, outgoing: &str) -> (tempfile::TempDir, Weft) {
    let dir = app_dir(&format!(
        "[app]\nname = \"faulty\"\n\
         [components.faulty]\nwasm = \"{{wasm:fixture_faulty}}\"\ncall-timeout = \"1s\"\nmemory-limit = \"16MiB\"\n\
         [components.faulty.grants]\nkeyvalue = [\"allowed\"]\nenv = [\"WEFT_TEST_VISIBLE\"]\noutgoing-http = [\"{outgoing}\"]\n\
         [listeners.web]\ncomponent = \"faulty\"\naddress = \"127.0.0.1:0\"\n"
    ));
    let app = Weft::start_with_env(
        mode,
        &[dir.path().to_str().unwrap()],
        &[
            ("WEFT_TEST_VISIBLE", "seen"),
            ("WEFT_TEST_HIDDEN", "secret"),
        ],
    );
    (dir, app)
}

/// A granted host that nothing uses.
const UNUSED: &str = "127.0.0.1:9";

#[test]
fn a_trap_costs_one_request() {
    each_mode(|mode| {
        let (_dir, app) = faulty(mode, UNUSED);
        let (status, body) = http_get(&app.url("web", "/trap"));
        assert_eq!(status, 500);
        assert!(
            body.contains("component 'faulty' could not answer"),
            "{body}"
        );
        assert_eq!(http_get(&app.url("web", "/ok")), (200, "ok".into()));
        let output = app.wait_for_output("wasm trap");
        assert!(
            output.contains("[faulty] the fixture was asked to trap"),
            "{output}"
        );
        assert!(output.contains("wasm trap"), "{output}");
    });
}

#[test]
fn an_endless_loop_is_stopped_at_its_timeout() {
    each_mode(|mode| {
        let (_dir, app) = faulty(mode, UNUSED);
        let started = Instant::now();
        assert_eq!(http_get(&app.url("web", "/loop")).0, 500);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(1),
            "stopped before its 1s timeout: {took:?}"
        );
        assert_eq!(http_get(&app.url("web", "/ok")), (200, "ok".into()));
        let output = app.wait_for_output("did not finish within");
        assert!(
            output.contains("did not finish within its call-timeout of 1s"),
            "{output}"
        );
    });
}

#[test]
fn a_handler_that_never_answers_gets_a_500_not_a_hang() {
    each_mode(|mode| {
        let (_dir, app) = faulty(mode, UNUSED);
        let (status, body) = http_get(&app.url("web", "/no-response"));
        assert_eq!(status, 500);
        assert!(
            body.contains("returned without sending a response"),
            "{body}"
        );
        assert_eq!(http_get(&app.url("web", "/ok")), (200, "ok".into()));
    });
}

#[test]
fn a_loop_does_not_block_other_requests() {
    each_mode(|mode| {
        let (_dir, app) = faulty(mode, UNUSED);
        let url = app.url("web", "/loop");
        let looping = std::thread::spawn(move || http_get(&url).0);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(http_get(&app.url("web", "/ok")), (200, "ok".into()));
        assert_eq!(looping.join().unwrap(), 500);
    });
}

#[test]
fn memory_is_limited_per_instance() {
    each_mode(|mode| {
        let (_dir, app) = faulty(mode, UNUSED);
        assert_eq!(http_get(&app.url("web", "/alloc?mib=4")), (200, "4".into()));
        assert_eq!(http_get(&app.url("web", "/alloc?mib=64")).0, 500);
        assert_eq!(http_get(&app.url("web", "/ok")), (200, "ok".into()));
    });
}

#[test]
fn keyvalue_reaches_only_granted_buckets() {
    each_mode(|mode| {
        let (_dir, app) = faulty(mode, UNUSED);
        assert_eq!(
            http_get(&app.url("web", "/kv?bucket=allowed")),
            (200, "1".into())
        );
        assert_eq!(
            http_get(&app.url("web", "/kv?bucket=allowed")),
            (200, "2".into())
        );
        assert_eq!(
            http_get(&app.url("web", "/kv?bucket=secrets")),
            (403, "access-denied".into())
        );
    });
}

#[test]
fn only_granted_environment_variables_are_visible() {
    each_mode(|mode| {
        let (_dir, app) = faulty(mode, UNUSED);
        assert_eq!(
            http_get(&app.url("web", "/env?name=WEFT_TEST_VISIBLE")),
            (200, "seen".into())
        );
        assert_eq!(
            http_get(&app.url("web", "/env?name=WEFT_TEST_HIDDEN")),
            (404, "unset".into())
        );
    });
}

#[test]
fn outgoing_http_reaches_only_granted_hosts() {
    each_mode(|mode| {
        let allowed = tiny_server();
        let denied = tiny_server();
        let (_dir, app) = faulty(mode, &allowed.to_string());
        assert_eq!(
            http_get(&app.url("web", &format!("/fetch?authority={allowed}"))),
            (200, "200 fetched".into())
        );
        let (status, body) = http_get(&app.url("web", &format!("/fetch?authority={denied}")));
        assert_eq!(status, 502);
        assert!(body.contains("HttpRequestDenied"), "{body}");
    });
}

#[test]
fn outgoing_http_needs_a_grant_to_link_at_all() {
    // The fixture imports wasi:http/outgoing-handler; without any
    // outgoing-http grant it must not load.
    let dir = app_dir(
        "[app]\nname = \"faulty\"\n[components.faulty]\nwasm = \"{wasm:fixture_faulty}\"\n\
         [components.faulty.grants]\nkeyvalue = [\"allowed\"]\n",
    );
    let (status, _, stderr) = weft_tests::weft_once(&["run", dir.path().to_str().unwrap()]);
    assert!(!status.success());
    assert!(
        stderr.contains("import 'wasi:http/outgoing-handler@0.2.12': the 'outgoing-http' capability is not granted"),
        "{stderr}"
    );
}
