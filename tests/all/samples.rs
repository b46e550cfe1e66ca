//! The samples, run the way the README runs them: each test body runs as
//! `weft run`, as `weft deploy --plan monolith` and as `weft deploy --plan
//! split`.

use std::io::{Read, Write};
use weft_tests::{Mode, Weft, app_dir, each_mode, http_get, parse_response, target_dir};

#[test]
fn hello_greets_through_two_components() {
    each_mode(hello_greets);
}

fn hello_greets(mode: Mode) {
    let app = Weft::start(mode, &["samples/hello", "--listen", "web=127.0.0.1:0"]);
    let get = |path: &str| http_get(&app.url("web", path));

    assert_eq!(get("/?name=Ada"), (200, "en: Hello, Ada!\n".into()));
    // A list, an option holding a variant, and a record per result.
    assert_eq!(
        get("/?name=Ada&lang=en,fr&style=shout"),
        (200, "en: HELLO, ADA!\nfr: BONJOUR, ADA!\n".into())
    );
    // A variant case with a payload.
    assert_eq!(
        get("/?name=Bo&lang=es&style=repeat2"),
        (200, "es: Hola, Bo! Hola, Bo!\n".into())
    );
    // The result's error side, with and without a payload.
    assert_eq!(
        get("/?name=Ada&lang=xx"),
        (400, "unknown language 'xx'\n".into())
    );
    assert_eq!(get("/?name=%20"), (400, "name must not be empty\n".into()));

    let (status, output) = app.stop();
    assert!(status.success(), "{output}");
    assert!(
        output.contains("[greeter] INFO greet: greeted Ada in 2 language(s)"),
        "{output}"
    );
    assert!(output.contains("weft: stopped"), "{output}");
}

#[test]
fn kvcounter_counts_and_survives_a_restart() {
    each_mode(kvcounter_counts);
}

fn kvcounter_counts(mode: Mode) {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let args = [
        "samples/kvcounter",
        "--listen",
        "web=127.0.0.1:0",
        "--data-dir",
        data_dir,
    ];

    let app = Weft::start(mode, &args);
    for expected in 1..=3 {
        let body = format!("{{\"counter\":\"apples\",\"value\":{expected}}}\n");
        assert_eq!(http_get(&app.url("web", "/counter/apples")), (200, body));
    }
    assert_eq!(
        http_get(&app.url("web", "/counter/pears")),
        (200, "{\"counter\":\"pears\",\"value\":1}\n".into())
    );
    let (status, output) = app.stop();
    assert!(status.success(), "{output}");

    let app = Weft::start(mode, &args);
    assert_eq!(
        http_get(&app.url("web", "/counter/apples?peek")),
        (200, "{\"counter\":\"apples\",\"value\":3}\n".into())
    );
    assert_eq!(
        http_get(&app.url("web", "/counter/apples")),
        (200, "{\"counter\":\"apples\",\"value\":4}\n".into())
    );
    assert_eq!(http_get(&app.url("web", "/counter/no%20spaces")).0, 400);
}

#[test]
fn concurrent_increments_are_not_lost() {
    each_mode(|mode| {
        let data = tempfile::tempdir().unwrap();
        let app = Weft::start(
            mode,
            &[
                "samples/kvcounter",
                "--listen",
                "web=127.0.0.1:0",
                "--data-dir",
                data.path().to_str().unwrap(),
            ],
        );
        increment_concurrently(&app, 4, 10);
    });
}

/// Two replicas of the counter (and of the HTTP front), each its own
/// process, increment one counter: the store, owned by the manager, must not
/// lose an increment.
#[test]
fn replicated_counters_do_not_lose_increments() {
    let data = tempfile::tempdir().unwrap();
    let plan = data.path().join("plan.toml");
    std::fs::write(
        &plan,
        "[groups.front]\ncomponents = [\"http\"]\nreplicas = 2\n\
         [groups.counter]\ncomponents = [\"counter\"]\nreplicas = 2\n",
    )
    .unwrap();
    let app = Weft::deploy(
        plan.to_str().unwrap(),
        &[
            "samples/kvcounter",
            "--listen",
            "web=127.0.0.1:0",
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
    );
    let output = app.output();
    assert!(
        output.contains("weft: worker counter/1 serving"),
        "{output}"
    );
    assert!(output.contains("weft: worker front/1 serving"), "{output}");
    increment_concurrently(&app, 6, 25);
}

/// `clients` threads each increment counter `shared` `each` times; the
/// counter must end at exactly their product.
fn increment_concurrently(app: &Weft, clients: usize, each: usize) {
    let url = app.url("web", "/counter/shared");
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                for _ in 0..each {
                    let (status, body) = http_get(&url);
                    assert_eq!(status, 200, "{body}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let expected = clients * each;
    assert_eq!(
        http_get(&app.url("web", "/counter/shared?peek")),
        (
            200,
            format!("{{\"counter\":\"shared\",\"value\":{expected}}}\n")
        )
    );
}

#[test]
fn second_start_uses_the_compile_cache() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let args = [
        "samples/hello",
        "--listen",
        "web=127.0.0.1:0",
        "--cache-dir",
        cache_dir,
    ];
    let (_, cold) = Weft::run(&args).stop();
    assert!(
        cold.contains("component greeter ready (compiled)"),
        "{cold}"
    );
    let (_, warm) = Weft::run(&args).stop();
    assert!(
        warm.contains("component greeter ready (from the compile cache)"),
        "{warm}"
    );
    assert!(
        warm.contains("component frontend ready (from the compile cache)"),
        "{warm}"
    );
}

#[test]
fn build_flag_runs_the_build_commands() {
    let app = Weft::run(&["--build", "samples/hello", "--listen", "web=127.0.0.1:0"]);
    let output = app.output();
    assert!(
        output.contains("weft: building frontend: cargo build --release --target wasm32-wasip2 -p hello-frontend"),
        "{output}"
    );
    assert_eq!(http_get(&app.url("web", "/?name=Cy")).0, 200);
    assert!(
        output.contains(
            "weft: building greeter: cargo build --release --target wasm32-wasip2 -p hello-greeter"
        ),
        "{output}"
    );
    assert!(
        target_dir()
            .join("wasm32-wasip2/release/hello_frontend.wasm")
            .exists()
    );
}

#[test]
fn config_values_reach_the_component() {
    each_mode(|mode| {
        let dir = app_dir(
            "[app]\nname = \"hello\"\n\
         [components.frontend]\nwasm = \"{wasm:hello_frontend}\"\n\
         [components.greeter]\nwasm = \"{wasm:hello_greeter}\"\n\
         [components.greeter.config]\ngreeting = \"Howdy\"\n\
         [listeners.web]\ncomponent = \"frontend\"\naddress = \"127.0.0.1:0\"\n",
        );
        let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
        assert_eq!(
            http_get(&app.url("web", "/?name=Ada&lang=en,de")),
            (200, "en: Howdy, Ada!\nde: Hallo, Ada!\n".into())
        );
    });
}

#[test]
fn a_request_without_a_host_is_refused_before_any_guest_runs() {
    each_mode(refuse_without_host);
}

fn refuse_without_host(mode: Mode) {
    let app = Weft::start(mode, &["samples/hello", "--listen", "web=127.0.0.1:0"]);
    let mut stream = std::net::TcpStream::connect(app.listeners["web"]).unwrap();
    stream
        .write_all(b"GET /?name=Ada HTTP/1.0\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let (status, body) = parse_response(&raw);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("no Host header"), "{body}");
    assert_eq!(http_get(&app.url("web", "/?name=Ada")).0, 200);
}
