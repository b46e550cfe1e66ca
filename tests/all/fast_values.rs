//! Values on the typed path (issue 10), where the other tests cannot reach:
//! a callee that returns values no honest guest would (invalid UTF-8, a
//! list pointing past its memory), and typed and `Val` ends of one call in
//! different processes.
//!
//! The caller is the benchmark's `caller`, whose `driver` loops call
//! `demo:fixtures/target`; this test's process hosts it and calls its
//! exports directly. Split, the callee runs in a `weft worker` that the test
//! assigns itself, so that two processes of one call can differ in one
//! setting (`WEFT_VAL_PATH`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{ComponentNamedList, Lift, Lower, Val};
use weft_placer::Plan;
use weft_proto::v1::CallRequest;
use weft_proto::v1::invoke_client::InvokeClient;
use weft_runtime::app::{App, Placement, Prepared};
use weft_runtime::cache::CompileCache;
use weft_runtime::codec::{self, ValueType};
use weft_runtime::discovery::Peers;
use weft_runtime::manifest::ManifestFile;
use weft_runtime::pool::InstancePool;
use weft_runtime::rpc::Dialer;
use weft_runtime::rpc::client::Replicas;
use weft_runtime::rpc::identity::{Authority, Identity};
use weft_tests::{
    Assign, AssignedWorker, app_dir, fingerprint, shared_cache, target_dir, weft_bin,
};

const DRIVER: &str = "demo:fixtures/driver@0.1.0";
const TARGET: &str = "demo:fixtures/target@0.1.0";

/// The lying callee (`tests/fixtures/liar/liar.wat`), as a component file.
fn liar_wasm() -> PathBuf {
    let source = weft_tests::root().join("tests/fixtures/liar/liar.wat");
    let binary = wat::parse_file(&source)
        .unwrap_or_else(|e| panic!("{} does not assemble: {e}", source.display()));
    let path = target_dir().join("liar.wasm");
    std::fs::write(&path, binary).expect("write liar.wasm");
    path
}

/// An app of the benchmark's caller and `callee`.
fn app(callee: &Path) -> tempfile::TempDir {
    app_dir(&format!(
        "[app]\nname = \"fast-values\"\n\
         [components.caller]\nwasm = \"{{wasm:fixture_bench_caller}}\"\n\
         [components.callee]\nwasm = \"{}\"\n",
        callee.display()
    ))
}

/// [`app`] with a `tester` that imports the caller's driver
/// (`tests/fixtures/driver-client`), so that the test may call the driver
/// over gRPC as the tester's group: the call graph has that edge.
fn app_with_tester(callee: &Path) -> tempfile::TempDir {
    let source = weft_tests::root().join("tests/fixtures/driver-client/driver-client.wat");
    let binary = wat::parse_file(&source)
        .unwrap_or_else(|e| panic!("{} does not assemble: {e}", source.display()));
    let tester = target_dir().join("driver-client.wasm");
    std::fs::write(&tester, binary).expect("write driver-client.wasm");
    app_dir(&format!(
        "[app]\nname = \"fast-values\"\n\
         [components.caller]\nwasm = \"{{wasm:fixture_bench_caller}}\"\n\
         [components.callee]\nwasm = \"{}\"\n\
         [components.tester]\nwasm = \"{}\"\n",
        callee.display(),
        tester.display()
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn prepared(dir: &Path) -> Prepared {
    weft_bin();
    let manifest = ManifestFile::load(dir).expect("the manifest loads");
    Prepared::load(manifest, &CompileCache::new(shared_cache())).expect("the app compiles")
}

/// Calls `function` of the caller's `driver` in an instance of `pool`.
async fn drive<P, R>(pool: &InstancePool, function: &str, params: P) -> anyhow::Result<R>
where
    P: ComponentNamedList + Lower + Send + Sync + 'static,
    R: ComponentNamedList + Lift + Send + Sync + 'static,
{
    let component = pool.instance_pre().component();
    let driver = component.get_export_index(None, DRIVER).expect("driver");
    let index = component
        .get_export_index(Some(&driver), function)
        .expect("a driver function");
    Ok(pool
        .with_instance(async |w| {
            let f = w.instance.get_typed_func::<P, R>(&mut w.store, index)?;
            f.call_async(&mut w.store, params).await
        })
        .await?)
}

/// The caller's group in this process, its calls to `callee` sent to the
/// worker at `address` with a certificate of the caller's group from
/// `authority`.
fn placed(prepared: &Prepared, plan: &Plan, address: &str, authority: &Authority) -> Placement {
    let version = prepared.version(plan);
    let identity = Identity::worker(authority.app(), version.as_str(), "caller");
    let dialer = Dialer::new(authority.issue(&identity).expect("a certificate"));
    Placement {
        group: "caller".into(),
        local: BTreeSet::from(["caller".to_string()]),
        remote: BTreeMap::from([(
            "callee".to_string(),
            Arc::new(Replicas::new(
                Peers::fixed(vec![address.to_string()]),
                &dialer,
                &version,
            )),
        )]),
        version,
        fuse: false,
    }
}

/// Both lies fail the call that met them, with an error that says what was
/// wrong; the process, and the same function with honest results, go on.
async fn lies_fail_one_call(caller: &InstancePool, remote: bool) {
    let err = drive::<_, (u64,)>(caller, "bytes-loop", (1u32, 13u32))
        .await
        .expect_err("a list past the callee's memory fails the call");
    let text = format!("{err:#}");
    assert!(text.contains("out of bounds"), "{text}");
    assert!(text.contains("echo-bytes"), "{text}");
    assert_eq!(text.contains("in another process"), remote, "{text}");

    let err = drive::<_, (u64,)>(caller, "echo-loop", (1u32, "abc".to_string()))
        .await
        .expect_err("text that is not UTF-8 fails the call");
    let text = format!("{err:#}");
    assert!(text.to_lowercase().contains("utf-8"), "{text}");
    assert!(text.contains("echo"), "{text}");

    // Honest answers from the same functions, in the same process.
    let (n,) = drive::<_, (u64,)>(caller, "bytes-loop", (2u32, 70_000u32))
        .await
        .expect("honest bytes");
    assert_eq!(n, 140_000);
    let (n,) = drive::<_, (u64,)>(caller, "echo-loop", (2u32, "héllo".to_string()))
        .await
        .expect("honest text");
    assert_eq!(n, 12);
    let (sum,) = drive::<_, (u64,)>(caller, "add-loop", (10u32,))
        .await
        .expect("add");
    assert_eq!(sum, 45);
}

#[test]
fn a_callee_returning_invalid_values_fails_only_that_call() {
    let dir = app(&liar_wasm());
    let prepared = prepared(dir.path());
    let runtime = runtime();
    runtime.block_on(async {
        // In one process: the typed forwarder lifts the lie.
        let app = App::start(&prepared, None, &Default::default())
            .await
            .expect("starts");
        lies_fail_one_call(&app.pools["caller"], false).await;

        // Split: the callee's worker lifts it, and answers with an error.
        let plan = Plan::split(["caller", "callee"]);
        let authority = Authority::generate("fast-values").expect("a CA");
        let cache = shared_cache();
        let worker = AssignedWorker::start(
            weft_bin(),
            &[],
            &authority,
            Assign {
                app: dir.path(),
                plan: &plan,
                version: &prepared.version(&plan),
                group: "callee",
                routes: &[],
                cache: &cache,
            },
        )
        .await
        .expect("the callee's worker starts");
        let placement = placed(&prepared, &plan, &worker.address, &authority);
        let app = App::start(&prepared, Some(&placement), &Default::default())
            .await
            .expect("starts");
        lies_fail_one_call(&app.pools["caller"], true).await;
        // Every call reached the worker's callee: the lies and the honest ones.
        let served = worker.served().await.expect("Served");
        assert_eq!(
            served[&format!("callee: {TARGET}#echo-bytes")],
            3,
            "{served:?}"
        );
        assert_eq!(served[&format!("callee: {TARGET}#echo")], 3, "{served:?}");
    });
}

/// `WEFT_VAL_PATH=1` for a worker.
const VAL_PATH: (&str, &str) = ("WEFT_VAL_PATH", "1");

#[test]
fn typed_and_val_ends_of_a_call_understand_each_other() {
    let dir = app_with_tester(&weft_tests::wasm("fixture_bench_callee"));
    let prepared = prepared(dir.path());
    let plan = Plan::split(["caller", "callee", "tester"]);
    let version = prepared.version(&plan);
    let authority = Authority::generate("fast-values").expect("a CA");
    let cache = shared_cache();
    let callee = Assign {
        app: dir.path(),
        plan: &plan,
        version: &version,
        group: "callee",
        routes: &[],
        cache: &cache,
    };
    runtime().block_on(async {
        // A typed caller here, a Val callee there.
        let val_callee = AssignedWorker::start(weft_bin(), &[VAL_PATH], &authority, callee)
            .await
            .expect("the callee's worker starts");
        // It serves everything on the Val path, as it was told.
        let typed = val_callee.typed().await.expect("Served");
        assert!(typed.is_empty(), "{typed:?}");
        let placement = placed(&prepared, &plan, &val_callee.address, &authority);
        let app = App::start(&prepared, Some(&placement), &Default::default())
            .await
            .expect("starts");
        let caller = &app.pools["caller"];
        let big: u32 = 4 << 20;
        let bytes_loop = drive::<_, (u64,)>(caller, "bytes-loop", (2u32, big));
        assert_eq!(bytes_loop.await.expect("bytes").0, 2 * u64::from(big));
        let empty = drive::<_, (u64,)>(caller, "bytes-loop", (1u32, 0u32));
        assert_eq!(empty.await.expect("no bytes").0, 0);
        let add_loop = drive::<_, (u64,)>(caller, "add-loop", (100u32,));
        assert_eq!(add_loop.await.expect("add").0, 4950);
        let served = val_callee.served().await.expect("Served");
        assert_eq!(
            served[&format!("callee: {TARGET}#echo-bytes")],
            3,
            "{served:?}"
        );
        assert_eq!(served[&format!("callee: {TARGET}#add")], 100, "{served:?}");

        // A Val caller in one worker, a typed callee in another; the test
        // calls the caller's driver over gRPC, as another group would.
        let typed_callee = AssignedWorker::start(weft_bin(), &[], &authority, callee)
            .await
            .expect("the callee's worker starts");
        let typed = typed_callee.typed().await.expect("Served");
        let echo_bytes = format!("callee: {TARGET}#echo-bytes");
        assert!(typed.contains(&echo_bytes), "{typed:?}");
        let routes = [("callee", typed_callee.address.as_str())];
        let caller = Assign {
            group: "caller",
            routes: &routes,
            ..callee
        };
        let val_caller = AssignedWorker::start(weft_bin(), &[VAL_PATH], &authority, caller)
            .await
            .expect("the caller's worker starts");
        let typed = val_caller.typed().await.expect("Served");
        assert!(typed.is_empty(), "{typed:?}");
        let fingerprint = fingerprint(&prepared, "caller", "bytes-loop");
        let mut payload = Vec::new();
        codec::encode_all(
            &[ValueType::U32, ValueType::U32],
            &[Val::U32(2), Val::U32(big)],
            &mut payload,
        )
        .expect("encodes");
        let tester = Identity::worker("fast-values", version.as_str(), "tester");
        let channel = Dialer::new(authority.issue(&tester).expect("a certificate"))
            .channel(
                &val_caller.address,
                weft_runtime::rpc::Peer::Worker(&version),
            )
            .expect("a channel");
        let reply = InvokeClient::new(channel)
            .max_decoding_message_size(weft_runtime::rpc::MAX_MESSAGE)
            .call(CallRequest {
                version: version.to_string(),
                caller: "tester".into(),
                target: "caller".into(),
                interface: DRIVER.into(),
                function: "bytes-loop".into(),
                fingerprint,
                payload: payload.into(),
                ..CallRequest::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", val_caller.output()));
        let results = codec::decode_all(&[ValueType::U64], &reply.into_inner().payload);
        assert_eq!(results.expect("decodes"), [Val::U64(2 * u64::from(big))]);
        let served = typed_callee.served().await.expect("Served");
        assert_eq!(
            served[&format!("callee: {TARGET}#echo-bytes")],
            2,
            "{served:?}"
        );
    });
}
