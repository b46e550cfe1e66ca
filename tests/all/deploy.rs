//! `weft deploy`: values across processes, failures across processes, the
//! manager's supervision, version and type checks on every call, and plans.

use std::time::{Duration, Instant};
use weft_runtime::deploy::state::DeployState;
use weft_tests::{HELLO_APP, Mode, VALUES_APP, Weft, app_dir, each_mode, http_get, weft_once};

/// Every value type, a 4 MiB list each way and a five-parameter function
/// come back equal to what was sent, and the answers are byte-identical in
/// every mode.
#[test]
fn every_value_type_crosses_processes_unchanged() {
    let dir = app_dir(VALUES_APP);
    let mut answers: Vec<(Mode, Vec<String>)> = Vec::new();
    each_mode(|mode| {
        let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
        let bodies: Vec<String> = ["/echo", "/many", "/big?mib=4", "/typed"]
            .iter()
            .map(|path| {
                let (status, body) = http_get(&app.url("web", path));
                assert_eq!(status, 200, "{mode:?} {path}: {body}");
                assert!(!body.contains("same: false"), "{mode:?} {path}: {body}");
                body
            })
            .collect();
        assert!(bodies[0].starts_with("same: true\n"), "{}", bodies[0]);
        assert!(
            bodies[2].starts_with("bytes: 4194304 same: true"),
            "{}",
            bodies[2]
        );
        assert!(
            bodies[2].contains("words: 1048576 same: true"),
            "{}",
            bodies[2]
        );
        assert_eq!(
            bodies[3],
            "text \"\" same: true\ntext \"plain\" same: true\n\
             text \"héllo, 世界 🦀\" same: true\n\
             add: 18446744073709551615\nadd wraps: 1\n\
             tag: 0 bytes, first None, n 0\ntag: 3 bytes, first Some(9), n 4294967295\n"
        );
        answers.push((mode, bodies));
    });
    // The same through the Val path everywhere: the typed forwarders and
    // codec must not change a byte.
    for mode in [Mode::Run, Mode::Split] {
        let app = Weft::start_with_env(
            mode,
            &[dir.path().to_str().unwrap()],
            &[("WEFT_VAL_PATH", "1")],
        );
        for (path, typed) in ["/echo", "/many", "/big?mib=4", "/typed"]
            .iter()
            .zip(&answers[0].1)
        {
            assert_eq!(
                &http_get(&app.url("web", path)),
                &(200, typed.clone()),
                "Val path, {mode:?} {path}"
            );
        }
    }
    let (first_mode, first) = &answers[0];
    for (mode, bodies) in &answers[1..] {
        assert_eq!(
            bodies, first,
            "{mode:?} answered differently from {first_mode:?}"
        );
    }
}

/// A callee that traps in another process costs its caller one request (a
/// 500 at the listener, the cause in the log); every process lives on.
#[test]
fn a_remote_trap_fails_one_request() {
    let dir = app_dir(VALUES_APP);
    each_mode(|mode| {
        let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
        let (status, body) = http_get(&app.url("web", "/trap"));
        assert_eq!(status, 500, "{mode:?}: {body}");
        assert!(
            body.contains("component 'front' could not answer"),
            "{body}"
        );
        assert_eq!(http_get(&app.url("web", "/many")).0, 200, "{mode:?}");
        let output = app.wait_for_output("fails on purpose");
        assert!(output.contains("fails on purpose"), "{mode:?}: {output}");
        assert!(
            !output.contains("exited"),
            "{mode:?}: no process died: {output}"
        );
    });
}

/// The state file of a deployment in `dir`.
fn state(dir: &std::path::Path) -> DeployState {
    DeployState::read(&DeployState::path(dir)).expect("the manager writes .weft/deploy.json")
}

/// A worker killed in the middle of a request loop is restarted, and
/// requests succeed again within seconds; the ones in between fail with a
/// clear status.
#[test]
fn a_killed_worker_is_restarted() {
    let dir = app_dir(HELLO_APP);
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let url = app.url("web", "/?name=Ada");
    for victim in ["greeter/0", "frontend/0"] {
        let before = state(dir.path());
        let worker = before.workers.iter().find(|w| w.name == victim).unwrap();
        let pid = worker.pid.expect("a running worker has a pid");
        assert_eq!(http_get(&url), (200, "en: Hello, Ada!\n".into()));
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());

        let killed = Instant::now();
        let mut failures = Vec::new();
        let recovered = loop {
            let (status, body) = http_get(&url);
            // Back once a request succeeds after failures, or after 2 s if
            // the kill fell between requests and none failed.
            if status == 200 && (!failures.is_empty() || killed.elapsed() > Duration::from_secs(2))
            {
                break killed.elapsed();
            }
            if status != 200 {
                failures.push((status, body));
            }
            assert!(
                killed.elapsed() < Duration::from_secs(15),
                "{victim} was not back within 15 s: {failures:?}\n{}",
                app.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        for (status, body) in &failures {
            assert!([500, 502, 503].contains(status), "{status}: {body}");
            assert!(body.contains("could not"), "a failure says why: {body}");
        }
        eprintln!(
            "{victim}: {} failed request(s), back after {recovered:?}",
            failures.len()
        );
        let output = app.wait_for_output(&format!("weft: worker {victim} restarted"));
        assert!(
            output.contains(&format!("weft: worker {victim} (pid {pid}) exited")),
            "{output}"
        );
        assert!(
            output.contains(&format!("weft: worker {victim} restarted")),
            "{output}"
        );
        let after = state(dir.path());
        let new_pid = after.workers.iter().find(|w| w.name == victim).unwrap().pid;
        assert!(new_pid.is_some() && new_pid != Some(pid), "{after:?}");
    }
    for _ in 0..5 {
        assert_eq!(http_get(&url), (200, "en: Hello, Ada!\n".into()));
    }
    let (status, output) = app.stop();
    assert!(status.success(), "{output}");
    assert!(
        !DeployState::path(dir.path()).exists(),
        "the state file goes with the deployment"
    );
}

/// A worker that is alive but hung (here, stopped with SIGSTOP) fails its
/// health checks and is killed and restarted.
#[test]
fn a_hung_worker_is_replaced() {
    // A short call-timeout, so that requests waiting on the hung worker end soon.
    let dir = app_dir(&HELLO_APP.replace(
        "wasm = \"{wasm:hello_frontend}\"\n",
        "wasm = \"{wasm:hello_frontend}\"\ncall-timeout = \"1s\"\n",
    ));
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let url = app.url("web", "/?name=Ada");
    assert_eq!(http_get(&url).0, 200);
    let pid = state(dir.path())
        .workers
        .iter()
        .find(|w| w.name == "greeter/0")
        .and_then(|w| w.pid)
        .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (status, body) = http_get(&url);
    assert_eq!(
        status, 500,
        "a call to a hung worker fails at its deadline: {body}"
    );
    let stopped = Instant::now();
    while http_get(&url).0 != 200 {
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "the hung worker was not replaced:\n{}",
            app.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The manager says so just after the new worker serves.
    let output = app.wait_for_output("weft: worker greeter/0 restarted");
    assert!(
        output.contains(&format!(
            "weft: worker greeter/0 (pid {pid}) did not answer 3 health checks"
        )),
        "{output}"
    );
    assert!(
        output.contains("weft: worker greeter/0 restarted"),
        "{output}"
    );
}

/// Ctrl-C in a terminal signals the whole process group: the manager
/// drains and stops the workers, and restarts none of them.
#[test]
fn ctrl_c_stops_a_deployment_cleanly() {
    let dir = app_dir(HELLO_APP);
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    assert_eq!(http_get(&app.url("web", "/?name=Ada")).0, 200);
    let (status, output) = app.interrupt();
    assert!(status.success(), "{output}");
    assert!(output.contains("weft: stopped"), "{output}");
    assert!(!output.contains("restarting"), "{output}");
    assert!(
        output.contains("weft worker greeter/0: stopped"),
        "{output}"
    );
    assert!(!DeployState::path(dir.path()).exists());
}

/// Plans that cannot work are refused before any worker starts, naming the
/// plan file and the component or group.
#[test]
fn bad_plans_are_refused() {
    let dir = app_dir(HELLO_APP);
    let app = dir.path().to_str().unwrap();
    let plan = dir.path().join("plan.toml");
    let plan_arg = plan.to_str().unwrap();
    let refused = |text: &str| {
        std::fs::write(&plan, text).unwrap();
        let (status, _, stderr) = weft_once(&["deploy", app, "--plan", plan_arg]);
        assert!(!status.success(), "{stderr}");
        assert!(
            stderr.contains(plan_arg),
            "the error names the plan file: {stderr}"
        );
        stderr
    };
    let stderr = refused("[groups.a]\ncomponents = [\"frontend\"]\n");
    assert!(
        stderr.contains("component 'greeter' is in no group"),
        "{stderr}"
    );
    let stderr = refused("[groups.a]\ncomponents = [\"frontend\", \"greeter\", \"welcome\"]\n");
    assert!(
        stderr.contains("group 'a' names component 'welcome'"),
        "{stderr}"
    );
    let stderr = refused(
        "[groups.a]\ncomponents = [\"frontend\", \"greeter\"]\n[groups.b]\ncomponents = [\"greeter\"]\n",
    );
    assert!(
        stderr.contains("component 'greeter' is in groups 'a' and 'b'"),
        "{stderr}"
    );
    let stderr = refused("[groups.a]\ncomponents = [\"frontend\", \"greeter\"]\nreplicas = 0\n");
    assert!(stderr.contains("group 'a' has replicas = 0"), "{stderr}");

    let (status, _, stderr) = weft_once(&["deploy", app, "--plan", "sideways"]);
    assert!(!status.success());
    assert!(
        stderr.contains("--plan sideways: cannot read the plan file"),
        "{stderr}"
    );
}

/// The manifest's `[deploy]` table is the plan when `--plan` is not given.
#[test]
fn the_manifest_deploy_table_is_the_default_plan() {
    let dir = app_dir(&format!(
        "{HELLO_APP}[deploy.groups.front]\ncomponents = [\"frontend\"]\nreplicas = 2\n\
         [deploy.groups.back]\ncomponents = [\"greeter\"]\n"
    ));
    let app = Weft::spawn(&["deploy"], &[dir.path().to_str().unwrap()], &[]);
    let output = app.output();
    assert!(
        output.contains("weft:   group front ×2: frontend"),
        "{output}"
    );
    let names: Vec<String> = state(dir.path())
        .workers
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["back/0", "front/0", "front/1"]);
    for _ in 0..4 {
        assert_eq!(
            http_get(&app.url("web", "/?name=Ada")),
            (200, "en: Hello, Ada!\n".into())
        );
    }
}

/// One manager per app: a second `weft deploy` of a running app is refused
/// and names the running manager, and changes nothing of it.
#[test]
fn a_second_deploy_of_a_running_app_is_refused() {
    let dir = app_dir(HELLO_APP);
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let deployed = state(dir.path());
    let (status, _, stderr) = weft_once(&["deploy", dir.path().to_str().unwrap()]);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "this app is already deployed (manager pid {})",
            deployed.pid
        )),
        "{stderr}"
    );
    assert_eq!(state(dir.path()), deployed);
    assert_eq!(
        http_get(&app.url("web", "/?name=Ada")),
        (200, "en: Hello, Ada!\n".into())
    );
}

/// Workers load from the version's snapshot in `.weft/versions`, so a
/// worker restarted after the app's binary was rebuilt (here, broken) and
/// its manifest edited comes back as the version it was.
#[test]
fn a_restarted_worker_loads_its_own_version() {
    let dir = tempfile::tempdir().unwrap();
    for stem in ["hello_frontend", "hello_greeter"] {
        std::fs::copy(
            weft_tests::wasm(stem),
            dir.path().join(format!("{stem}.wasm")),
        )
        .unwrap();
    }
    let manifest = "[app]\nname = \"hello\"\n\
         [components.frontend]\nwasm = \"hello_frontend.wasm\"\n\
         [components.greeter]\nwasm = \"hello_greeter.wasm\"\n\
         [components.greeter.config]\ngreeting = \"Hello\"\n\
         [listeners.web]\ncomponent = \"frontend\"\naddress = \"127.0.0.1:0\"\n";
    std::fs::write(dir.path().join("weft.toml"), manifest).unwrap();
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let url = app.url("web", "/?name=Ada");
    assert_eq!(http_get(&url), (200, "en: Hello, Ada!\n".into()));

    std::fs::write(dir.path().join("hello_greeter.wasm"), b"not a component").unwrap();
    std::fs::write(
        dir.path().join("weft.toml"),
        manifest.replace("Hello", "Howdy"),
    )
    .unwrap();
    let greeter = state(dir.path())
        .workers
        .into_iter()
        .find(|w| w.name == "greeter/0")
        .unwrap();
    let pid = greeter.pid.unwrap();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = app.wait_for_output("weft: worker greeter/0 restarted");
    assert!(
        output.contains("weft: worker greeter/0 restarted"),
        "{output}"
    );
    assert_eq!(http_get(&url), (200, "en: Hello, Ada!\n".into()));
}
