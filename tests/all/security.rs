//! Trusted calls between processes, probed as an attacker on the same
//! machine would: every gRPC connection of a split deployment is mutual
//! TLS with the deployment's own CA, and each call is authorized by who the
//! caller's certificate says it is — a group of the same version, along an
//! edge of the app's call graph, using only its own buckets.
//!
//! In one process there is no connection to attack: the same rules are the
//! linker's (an import is served only by the component it resolved to) and
//! the host's (a bucket only to a component granted it), which the sandbox
//! and linking tests cover.

use std::path::Path;
use weft_runtime::deploy::state::{DeployState, WorkerState};
use weft_runtime::rpc::Dialer;
use weft_runtime::rpc::identity::{Authority, Credentials, Identity, worker_name};
use weft_tests::security::{
    control_drain, control_health, greet_as, greet_call, invoke, manager_status, store_get,
    store_set, without_certificate,
};
use weft_tests::{HELLO_APP, Mode, Weft, app_dir, cli_dialer, http_get};

/// hello: `frontend` calls `greeter`.
fn hello() -> tempfile::TempDir {
    app_dir(HELLO_APP)
}

fn state(dir: &Path) -> DeployState {
    DeployState::read(&DeployState::path(dir)).expect("the deployment's state")
}

/// The deployment's own CA, as `weft deploy` keeps it in `.weft/ca`.
fn authority(dir: &Path) -> Authority {
    Authority::load(&dir.join(".weft").join("ca"), &state(dir).app).expect("the deployment's CA")
}

/// A dialer with a worker certificate for `group` of `version`, issued by
/// the deployment's CA.
fn worker_dialer(dir: &Path, version: &str, group: &str) -> Dialer {
    let credentials = authority(dir)
        .issue(&Identity::worker(&state(dir).app, version, group))
        .unwrap();
    Dialer::new(credentials)
}

/// The first worker of `group`.
fn worker_of<'a>(deployed: &'a DeployState, group: &str) -> &'a WorkerState {
    deployed
        .workers
        .iter()
        .find(|w| w.group == group)
        .unwrap_or_else(|| panic!("no worker of group {group}"))
}

#[test]
fn only_the_deployments_certificates_complete_a_handshake() {
    let dir = hello();
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let deployed = state(dir.path());
    let greeter = worker_of(&deployed, "greeter");
    let ca = authority(dir.path());

    // No TLS, and TLS without a client certificate: on a worker and on the
    // manager, nothing answers.
    for address in [&greeter.address, &deployed.control] {
        let plain = without_certificate(address, None);
        assert!(!plain.contains("PermissionDenied"), "{plain}");
    }
    let anonymous = without_certificate(
        &greeter.address,
        Some((ca.trusted_pem(), &worker_name(&deployed.version))),
    );
    assert!(!anonymous.contains("PermissionDenied"), "{anonymous}");

    // A certificate of another deployment's CA naming the very same
    // identity, trusting this deployment's CA: refused at the handshake.
    let stranger = Authority::generate("hello").unwrap();
    let forged = stranger
        .issue(&Identity::worker("hello", &deployed.version, "frontend"))
        .unwrap();
    let forged = Credentials::from_pem(
        ca.trusted_pem().to_string(),
        forged.cert_pem,
        forged.key_pem,
    )
    .unwrap();
    let status = greet_as(&Dialer::new(forged), &greeter.address, &deployed.version);
    // TLS 1.3 lets the client finish first, so it learns of the refusal as
    // an alert or as the connection closing: a transport error either way,
    // never an answer of the service.
    let transport = std::error::Error::source(&status)
        .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some());
    assert!(
        transport,
        "the connection, not the service, refused it: {status:?}"
    );

    // The real frontend's calls still work.
    let (code, body) = http_get(&app.url("web", "/?name=Ada"));
    assert_eq!((code, body.as_str()), (200, "en: Hello, Ada!\n"));
    let served = weft_tests::served_calls(dir.path());
    assert_eq!(
        served["greeter/0 greeter: demo:hello/greeter@0.1.0#greet"], 1,
        "the call crossed to the greeter's process: {served:?}"
    );
}

#[test]
fn a_call_is_allowed_only_along_an_edge_of_the_call_graph() {
    let dir = hello();
    let _app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let deployed = state(dir.path());
    let version = deployed.version.clone();
    let greeter = worker_of(&deployed, "greeter");
    let call = |dialer: &Dialer, caller: &str| {
        invoke(
            dialer,
            &greeter.address,
            &version,
            greet_call(&version, caller),
        )
        .expect_err("a call with a made-up fingerprint never succeeds")
    };

    // The real edge, frontend → greeter#greet, passes authorization: it is
    // refused only for its made-up type fingerprint, which the error
    // repeats, while the callee's own stays unsaid.
    let frontend = worker_dialer(dir.path(), &version, "frontend");
    let status = call(&frontend, "frontend");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().starts_with("type fingerprint mismatch"),
        "{status:?}"
    );
    let manifest = weft_runtime::manifest::ManifestFile::load(dir.path()).unwrap();
    let cache = weft_runtime::cache::CompileCache::new(weft_tests::shared_cache());
    let prepared = weft_runtime::app::Prepared::load(manifest, &cache).unwrap();
    let own = weft_tests::fingerprint(&prepared, "greeter", "greet");
    assert!(!status.message().contains(&own), "{status:?}");

    // The greeter's own certificate calling greet, which it does not import.
    let status = call(&worker_dialer(dir.path(), &version, "greeter"), "greeter");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("no edge from group 'greeter'"),
        "{status:?}"
    );

    // A caller the certificate's group does not hold: made up, empty,
    // huge, or carrying a forged log line.
    let huge = "x".repeat(1 << 20);
    let forged = "frontend\n2026-12-04T00:00:00Z  INFO weft: admin logged in";
    for caller in ["nobody-such", "", huge.as_str(), forged] {
        let status = call(&frontend, caller);
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains("only 'frontend'"), "{status:?}");
        assert!(!status.message().contains('\n'), "{status:?}");
        assert!(status.message().len() < 1024, "the message is bounded");
    }

    // A certificate of another version of the same app, from the same CA.
    let other = worker_dialer(dir.path(), "0123456789abcdef", "frontend");
    let status = invoke(
        &other,
        &greeter.address,
        &version,
        greet_call(&version, "frontend"),
    )
    .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("version 0123456789abcdef"),
        "{status:?}"
    );

    // None of them reached the greeter, and none wrote a line of its own.
    let served = weft_tests::served_calls(dir.path());
    assert_eq!(
        served["greeter/0 greeter: demo:hello/greeter@0.1.0#greet"], 0,
        "{served:?}"
    );
}

/// kvcounter: `http` calls `counter`, which keeps its counts in bucket
/// `counts` of the manager's embedded store (two replicas of `counter` use
/// it, so the manager holds it).
const KV_APP: &str = "[app]\nname = \"kv\"\n\
     [components.http]\nwasm = \"{wasm:kvcounter_http}\"\n\
     [components.counter]\nwasm = \"{wasm:kvcounter_counter}\"\n\
     [components.counter.grants]\nkeyvalue = [\"counts\"]\n\
     [listeners.web]\ncomponent = \"http\"\naddress = \"127.0.0.1:0\"\n\
     [deploy.groups.http]\ncomponents = [\"http\"]\n\
     [deploy.groups.counter]\ncomponents = [\"counter\"]\nreplicas = 2\n";

#[test]
fn services_admit_only_their_callers_and_the_store_only_granted_buckets() {
    let dir = app_dir(KV_APP);
    let _app = Weft::deploy_default(&[dir.path().to_str().unwrap()]);
    let deployed = state(dir.path());
    let version = deployed.version.clone();
    let counter = worker_of(&deployed, "counter");
    let manager = deployed.control.clone();
    let as_counter = worker_dialer(dir.path(), &version, "counter");
    let as_http = worker_dialer(dir.path(), &version, "http");
    let cli = cli_dialer(dir.path());

    // The store: a group's own bucket, and nothing else.
    let own = store_get(&as_counter, &manager, &version, "counts");
    assert!(matches!(own, Ok(None)), "{own:?}");
    for bucket in ["secrets", ""] {
        let status = store_get(&as_counter, &manager, &version, bucket).unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::PermissionDenied,
            "{bucket:?}: {status:?}"
        );
    }
    let status = store_get(&as_http, &manager, &version, "counts").unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("group 'http'"), "{status:?}");
    let status = store_get(&cli, &manager, &version, "counts").unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    // A version header that the certificate does not name.
    let status = store_get(&as_counter, &manager, "0123456789abcdef", "counts").unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    // A value past the limit, in the group's own bucket.
    let huge = vec![7u8; weft_runtime::kv::MAX_VALUE + 1];
    let status = store_set(&as_counter, &manager, &version, "counts", huge).unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("larger than the limit"),
        "{status:?}"
    );
    assert!(store_set(&as_counter, &manager, &version, "counts", b"3".to_vec()).is_ok());

    // A worker's Control: the manager's and the CLI's, not a peer's.
    let health = control_health(&cli, &counter.address, &version);
    assert!(health.is_ok(), "{health:?}");
    let status = control_health(&as_http, &counter.address, &version).unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    // The app's ingress (on Kubernetes) reads a worker's counts, but may
    // not change what it does.
    let ingress = Dialer::new(
        authority(dir.path())
            .issue(&Identity::ingress(&deployed.app))
            .unwrap(),
    );
    let health = control_health(&ingress, &counter.address, &version);
    assert!(health.is_ok(), "{health:?}");
    let status = control_drain(&ingress, &counter.address, &version).unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("the ingress"), "{status:?}");

    // The manager's own service: weft's commands only.
    let json = manager_status(&cli, &manager).expect("weft status's call");
    assert!(json.contains(&version), "{json}");
    let status = manager_status(&as_counter, &manager).unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
}

#[test]
fn keys_never_reach_arguments_the_environment_or_logs() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = hello();
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let deployed = state(dir.path());
    for worker in &deployed.workers {
        let pid = worker.pid.expect("a running worker");
        for file in ["cmdline", "environ"] {
            let text = std::fs::read(format!("/proc/{pid}/{file}")).unwrap();
            let text = String::from_utf8_lossy(&text);
            assert!(!text.contains("PRIVATE KEY"), "{file} of {}", worker.name);
        }
    }
    assert!(!app.output().contains("PRIVATE KEY"), "{}", app.output());
    for folder in ["ca", "cli"] {
        let path = dir.path().join(".weft").join(folder);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", path.display());
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap().path();
            let mode = std::fs::metadata(&entry).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", entry.display());
        }
    }
}
