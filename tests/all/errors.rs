//! Every way an app can fail to link is reported before anything runs, and
//! names the manifest, the component, the import and the candidates; by
//! `weft run` and by `weft deploy` alike.

use weft_tests::{app_dir, weft_once};

/// Runs `weft run` on `manifest` and returns what it printed on stderr,
/// checking that it failed before serving anything, and that `weft deploy`
/// refuses it the same way before starting any worker.
fn refused(manifest: &str) -> String {
    let dir = app_dir(manifest);
    let (status, stdout, stderr) = weft_once(&["run", dir.path().to_str().unwrap()]);
    assert!(
        !status.success(),
        "weft run should have failed:\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("weft: listener"),
        "it served before failing:\n{stdout}"
    );
    let manifest_path = dir.path().join("weft.toml");
    assert!(
        stderr.contains(&manifest_path.display().to_string()),
        "the error should name the manifest:\n{stderr}"
    );
    let deploy = ["deploy", dir.path().to_str().unwrap(), "--plan", "split"];
    let (status, stdout, deploy_stderr) = weft_once(&deploy);
    assert!(
        !status.success(),
        "weft deploy should have failed:\n{stdout}"
    );
    assert!(
        !stdout.contains("starting"),
        "it started workers:\n{stdout}"
    );
    assert_eq!(deploy_stderr, stderr, "weft deploy and weft run disagree");
    stderr
}

const FRONTEND: &str = "[components.frontend]\nwasm = \"{wasm:hello_frontend}\"\n";
const GREETER: &str = "[components.greeter]\nwasm = \"{wasm:hello_greeter}\"\n";
const APP: &str = "[app]\nname = \"t\"\n";

#[test]
fn an_import_nobody_provides() {
    let err = refused(&format!("{APP}{FRONTEND}"));
    assert!(
        err.contains(
            "component 'frontend', import 'demo:hello/greeter@0.1.0': no component exports it"
        ),
        "{err}"
    );
}

#[test]
fn an_import_two_components_provide() {
    let twin = "[components.twin]\nwasm = \"{wasm:hello_greeter}\"\n";
    let err = refused(&format!("{APP}{FRONTEND}{GREETER}{twin}"));
    assert!(
        err.contains("component 'frontend', import 'demo:hello/greeter@0.1.0': greeter and twin export it; choose one with [links] \"frontend/demo:hello/greeter\" = \"greeter\""),
        "{err}"
    );
}

#[test]
fn a_link_settles_two_providers() {
    let twin = "[components.twin]\nwasm = \"{wasm:hello_greeter}\"\n";
    let links = "[links]\n\"frontend/demo:hello/greeter\" = \"twin\"\n";
    let listener = "[listeners.web]\ncomponent = \"frontend\"\naddress = \"127.0.0.1:0\"\n";
    let dir = app_dir(&format!("{APP}{FRONTEND}{GREETER}{twin}{links}{listener}"));
    let app = weft_tests::Weft::run(&[dir.path().to_str().unwrap()]);
    assert_eq!(weft_tests::http_get(&app.url("web", "/?name=Di")).0, 200);
    let (_, output) = app.stop();
    assert!(output.contains("[twin] INFO greet: greeted Di"), "{output}");
}

#[test]
fn a_capability_that_is_not_granted() {
    let counter = "[components.counter]\nwasm = \"{wasm:kvcounter_counter}\"\n";
    let err = refused(&format!("{APP}{counter}"));
    assert!(
        err.contains("component 'counter', import 'wasi:keyvalue/store@0.2.0-draft': the 'keyvalue' capability is not granted; add it under [components.counter.grants], such as keyvalue = [\"BUCKET\"]"),
        "{err}"
    );
}

#[test]
fn a_link_to_an_unknown_component() {
    let links = "[links]\n\"frontend/demo:hello/greeter\" = \"gretter\"\n";
    let err = refused(&format!("{APP}{FRONTEND}{GREETER}{links}"));
    assert!(
        err.contains("links.\"frontend/demo:hello/greeter\": the providing component 'gretter' is not in [components]; the components are: frontend, greeter"),
        "{err}"
    );
}

#[test]
fn a_listener_on_a_component_without_a_handler() {
    let listener = "[listeners.web]\ncomponent = \"greeter\"\naddress = \"127.0.0.1:0\"\n";
    let err = refused(&format!("{APP}{FRONTEND}{GREETER}{listener}"));
    assert!(
        err.contains(
            "listener 'web': component 'greeter' does not export wasi:http/incoming-handler \
             (WASI 0.2) or wasi:http/handler (WASI 0.3), so it cannot serve HTTP; components \
             that do: frontend"
        ),
        "{err}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let counter = "[components.counter]\nwasm = \"{wasm:kvcounter_counter}\"\n";
    let err = refused(&format!("{APP}{FRONTEND}{counter}"));
    assert!(
        err.contains("the app cannot be linked (3 problems)"),
        "{err}"
    );
}

#[test]
fn a_missing_binary_says_how_to_build_it() {
    let err = refused(&format!("{APP}[components.ghost]\nwasm = \"ghost.wasm\"\n"));
    assert!(err.contains("component 'ghost': cannot read"), "{err}");
    assert!(
        err.contains("build it first (weft run --build) or fix components.ghost.wasm"),
        "{err}"
    );
}

#[test]
fn a_binary_that_is_not_a_regular_file_is_refused_before_it_is_read() {
    // /dev/zero was read until memory ran out, and a FIFO hung the load.
    let err = refused(&format!("{APP}[components.zero]\nwasm = \"/dev/zero\"\n"));
    assert!(
        err.contains("component 'zero': cannot read /dev/zero: it is not a regular file (it is a character device); point components.zero.wasm at a component's .wasm file"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.wasm");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo (coreutils) runs");
    assert!(status.success());
    let err = refused(&format!(
        "{APP}[components.pipe]\nwasm = \"{}\"\n",
        fifo.display()
    ));
    assert!(
        err.contains("it is not a regular file (it is a FIFO)"),
        "{err}"
    );
}

#[test]
fn a_binary_over_its_size_limit_is_refused() {
    let err = refused(&format!("{APP}{GREETER}wasm-size-limit = \"1KiB\"\n"));
    assert!(
        err.contains("it is larger than 1024 bytes; if the binary is right, raise components.greeter.wasm-size-limit"),
        "{err}"
    );
}

#[test]
fn a_failing_build_command_is_named() {
    let manifest = format!("{APP}{GREETER}build = \"exit 3\"\n");
    let dir = app_dir(&manifest);
    let (status, _, stderr) = weft_once(&["run", "--build", dir.path().to_str().unwrap()]);
    assert!(!status.success());
    assert!(
        stderr.contains("component 'greeter': build command `exit 3` failed"),
        "{stderr}"
    );
}

#[test]
fn a_listen_override_for_an_unknown_listener() {
    let (status, _, stderr) = weft_once(&["run", "samples/hello", "--listen", "api=127.0.0.1:0"]);
    assert!(!status.success());
    assert!(stderr.contains("--listen api=...: samples/hello/weft.toml has no listener 'api'; its listeners are: web"), "{stderr}");
}

#[test]
fn an_incompatible_version_is_refused_with_the_reason() {
    // front imports demo:pricing/pricing@0.1.0; this pricing exports 0.2.0.
    let manifest = crate::layouts::shop_manifest("fixture_shop_pricing_next");
    let err = refused(&manifest);
    assert!(
        err.contains(
            "component 'front', import 'demo:pricing/pricing@0.1.0': 'pricing' exports \
             demo:pricing/pricing@0.2.0, which cannot serve demo:pricing/pricing@0.1.0 (before \
             1.0, a new minor version is a breaking change); build both components against the \
             same version of the WIT"
        ),
        "{err}"
    );
    assert!(
        err.contains("the app cannot be linked (2 problems)"),
        "only front and cart import pricing:\n{err}"
    );
}

#[test]
fn a_resource_that_no_component_exports_is_refused() {
    // Each clerk imports `office` from the other; `office` hands out a
    // `ticket` declared in the `types` interface, which both import and
    // neither exports: no component keeps tickets.
    let clerks = "[components.a]\nwasm = \"{wasm:fixture_refused_clerk}\"\n\
                  [components.b]\nwasm = \"{wasm:fixture_refused_clerk}\"\n";
    let err = refused(&format!("{APP}{clerks}"));
    assert!(
        err.contains(
            "component 'a', import 'demo:refused/types@0.1.0': it declares resource 'ticket' and \
             no component exports it; a resource lives in the component that implements it, so \
             export this interface from that component"
        ),
        "{err}"
    );
}

#[test]
fn a_stream_of_records_between_components_is_refused_with_what_to_do() {
    // Each streamer imports `numbers` from the other; `count` returns a
    // stream of records, whose items weft cannot move between stores.
    let streamers = "[components.a]\nwasm = \"{wasm:fixture_refused_streamer}\"\n\
                     [components.b]\nwasm = \"{wasm:fixture_refused_streamer}\"\n";
    let err = refused(&format!("{APP}{streamers}"));
    assert!(
        err.contains(
            "component 'a', import 'demo:refused/numbers@0.1.0': function 'count' passes a \
             stream<record { x: u32, y: u32 }>; weft carries streams and futures of scalars, \
             char and string only; change the interface, or stream bytes (stream<u8>) and \
             decode them on the other side"
        ),
        "{err}"
    );
}
