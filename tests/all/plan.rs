//! `weft profile` and `weft plan`: a profile of hello under load, from one
//! process (its admin address) and from a deployment (its manager), with
//! every edge counted where it ran; the plan chosen from it, and from the
//! static graph; and the errors of both.

use weft_placer::{Choice, Profile};
use weft_tests::{HELLO_APP, Load, Mode, Weft, app_dir, each_mode, free_address, weft_once};

/// `weft ARGS` must succeed; its stdout.
fn weft_ok(args: &[&str]) -> String {
    let (status, stdout, stderr) = weft_once(args);
    assert!(status.success(), "weft {args:?}: {stdout}{stderr}");
    stdout
}

/// Under load, in every mode, a profile counts frontend → greeter as local
/// or remote as it ran, and the plan chosen from it is the monolith, whose
/// predicted latency is below the measured one when the profile was split
/// and equal to it otherwise.
#[test]
fn a_profile_counts_each_edge_where_it_ran_and_the_plan_follows_it() {
    let dir = app_dir(HELLO_APP);
    let path = dir.path().to_str().unwrap();
    each_mode(|mode| {
        let admin = free_address().to_string();
        let app = Weft::start(mode, &[path, "--admin", &admin]);
        let load = Load::start(app.listeners["web"], "/?name=Ada", 1);
        let out = dir.path().join(format!("{mode:?}.json"));
        let out = out.to_str().unwrap();
        // One process is read at its admin address; a deployment through
        // its manager.
        let mut args = vec!["profile", path, "--window", "2s", "-o", out];
        if mode == Mode::Run {
            args.extend(["--admin", admin.as_str()]);
        }
        weft_ok(&args);
        let replies = load.stop();
        assert!(replies.iter().flatten().all(|r| r.status == 200));
        let profile: Profile =
            serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
        assert!(profile.measured);
        assert_eq!(profile.app, "hello");
        let greet = profile
            .edges
            .iter()
            .find(|e| e.caller == "frontend" && e.callee == "greeter")
            .unwrap_or_else(|| panic!("{mode:?}: no frontend -> greeter in {profile:?}"));
        assert_eq!(greet.remote, mode == Mode::Split, "{mode:?}");
        // Split, the greeter counted its side of each call: the rest is
        // the time between the processes, which plans are costed with.
        match greet.rpc_mean_ms {
            Some(rpc) => assert!(mode == Mode::Split && rpc > 0.0 && rpc < greet.mean_ms),
            None => assert_ne!(mode, Mode::Split, "no callee-side time: {greet:?}"),
        }
        assert!(greet.calls_per_s > 10.0, "{mode:?}: {greet:?}");
        assert!(greet.request_bytes_per_s > 0.0 && greet.mean_ms > 0.0);
        let web = &profile.listeners[0];
        assert_eq!(
            (web.listener.as_str(), web.component.as_str()),
            ("web", "frontend")
        );
        // One greet per request.
        assert!(
            (greet.calls_per_s / web.requests_per_s - 1.0).abs() < 0.05,
            "{profile:?}"
        );
        let group = if mode == Mode::Split {
            "greeter"
        } else {
            "main"
        };
        assert_eq!(profile.groups["greeter"], group, "{mode:?}");
        assert!(profile.components["frontend"].busy_cores > 0.0);

        let choice: Choice =
            serde_json::from_str(&weft_ok(&["plan", path, "--profile", out, "--json"])).unwrap();
        assert!(choice.measured && choice.search.exact);
        assert_eq!(choice.plan.groups.keys().collect::<Vec<_>>(), ["main"]);
        assert!(choice.cut.is_empty());
        assert!(choice.costs.per_call_us > 0.0);
        assert_eq!(
            choice.costs_from.starts_with("per call from the profile"),
            mode == Mode::Split,
            "{}",
            choice.costs_from
        );
        let latency = &choice.latency[0];
        if mode == Mode::Split {
            assert!(
                latency.predicted_ms.monolith < latency.measured_ms,
                "{latency:?}"
            );
        } else {
            assert_eq!(latency.predicted_ms.monolith, latency.measured_ms);
            assert!(
                latency.predicted_ms.split > latency.measured_ms,
                "{latency:?}"
            );
        }
        let (status, output) = app.stop();
        assert!(status.success(), "{output}");
    });
}

/// With no profile, `weft plan` plans on the static call graph and says
/// so; a constraint that keeps the two apart gives two groups, cutting the
/// one wire between them.
#[test]
fn without_a_profile_the_plan_comes_from_the_static_graph() {
    let dir = app_dir(HELLO_APP);
    let path = dir.path().to_str().unwrap();
    let choice: Choice = serde_json::from_str(&weft_ok(&["plan", path, "--json"])).unwrap();
    assert!(!choice.measured);
    assert_eq!(choice.plan.groups.len(), 1);
    assert!(choice.latency.is_empty());

    let manifest = dir.path().join("weft.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[placement]\nseparate = [[\"frontend\", \"greeter\"]]\n");
    std::fs::write(&manifest, text).unwrap();
    let plan_file = dir.path().join("plan.toml");
    let choice: Choice = serde_json::from_str(&weft_ok(&[
        "plan",
        path,
        "--json",
        "-o",
        plan_file.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(choice.cut_pairs(), [("frontend", "greeter")]);
    assert_eq!(choice.plan.groups.len(), 2);
    // The plan file it wrote is the plan, and reads as one.
    let written = std::fs::read_to_string(&plan_file).unwrap();
    assert_eq!(written, choice.plan.to_toml());
}

/// A profile of another app, `--plan auto` where no app runs, and a budget
/// of no cores are refused, each saying what to do.
#[test]
fn plans_from_the_wrong_inputs_are_refused_with_what_to_do() {
    let dir = app_dir(HELLO_APP);
    let path = dir.path().to_str().unwrap();
    let other = dir.path().join("other.json");
    let profile = Profile::static_graph("shop", ["web", "payment"], [("web", "payment")], []);
    std::fs::write(&other, serde_json::to_string(&profile).unwrap()).unwrap();
    let (status, _, stderr) = weft_once(&["plan", path, "--profile", other.to_str().unwrap()]);
    assert!(!status.success());
    assert!(
        stderr.contains("the profile names components that")
            && stderr.contains("payment, web")
            && stderr.contains("take a new one with weft profile"),
        "{stderr}"
    );

    let (status, _, stderr) = weft_once(&["deploy", path, "--plan", "auto"]);
    assert!(!status.success());
    assert!(
        stderr.contains("weft plan --profile FILE -o plan.toml"),
        "{stderr}"
    );

    let (status, _, stderr) = weft_once(&["plan", path, "--cpu-budget", "0"]);
    assert!(!status.success());
    assert!(stderr.contains("not a number of cores above 0"), "{stderr}");

    let (status, _, stderr) = weft_once(&["profile", path, "--window", "0"]);
    assert!(!status.success());
    assert!(stderr.contains("too short to count calls over"), "{stderr}");

    let (status, _, stderr) = weft_once(&["rollout", path, "--kube", "--plan", "auto"]);
    assert!(!status.success());
    assert!(
        stderr.contains("--plan auto is not supported with --kube"),
        "{stderr}"
    );

    // A profile with a figure that is no rate.
    let mut broken = Profile::static_graph(
        "hello",
        ["frontend", "greeter"],
        [("frontend", "greeter")],
        [],
    );
    broken.edges[0].calls_per_s = -1.0;
    std::fs::write(&other, serde_json::to_string(&broken).unwrap()).unwrap();
    let (status, _, stderr) = weft_once(&["plan", path, "--profile", other.to_str().unwrap()]);
    assert!(!status.success());
    assert!(stderr.contains("edges[0].calls-per-s is -1"), "{stderr}");

    let (status, _, stderr) = weft_once(&["plan", path, "--profile", "/nonexistent.json"]);
    assert!(!status.success());
    assert!(
        stderr.contains("--profile /nonexistent.json: cannot read it"),
        "{stderr}"
    );
}

/// A split deployment whose components call each other much: the
/// manager's re-planning proposes the monolith in `weft status`, one
/// command applies it, and then nothing more is proposed.
#[test]
fn the_manager_proposes_a_better_plan_that_one_command_applies() {
    use weft_runtime::deploy::state::DeployState;
    let dir = app_dir(HELLO_APP);
    let path = dir.path().to_str().unwrap();
    let manifest = dir.path().join("weft.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[deploy]\nreplan-every = \"1s\"\n");
    std::fs::write(&manifest, text).unwrap();
    let app = Weft::start(Mode::Split, &[path]);
    let load = Load::start(app.listeners["web"], "/?name=Ada", 2);
    let status =
        || -> DeployState { serde_json::from_str(&weft_ok(&["status", path, "--json"])).unwrap() };
    let wait_for = |what: &str, done: &dyn Fn(&DeployState) -> bool| -> DeployState {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let state = status();
            if done(&state) {
                return state;
            }
            assert!(std::time::Instant::now() < deadline, "no {what}: {state:?}");
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    };
    let state = wait_for("proposal", &|s| s.proposal.is_some());
    let proposal = state.proposal.unwrap();
    assert_eq!(
        proposal.groups,
        std::collections::BTreeMap::from([(
            "main".to_string(),
            vec!["frontend".to_string(), "greeter".to_string()]
        )])
    );
    assert!(proposal.running_ms_per_s > proposal.proposed_ms_per_s);
    assert!(std::path::Path::new(&proposal.plan_file).exists());

    weft_ok(&[
        "rollout",
        path,
        "--plan",
        &proposal.plan_file,
        "--over",
        "1s",
    ]);
    let state = wait_for("move and no proposal", &|s| {
        s.proposal.is_none() && s.versions.iter().all(|v| v.groups.len() == 1)
    });
    assert_eq!(state.versions.len(), 1);
    let replies = load.stop();
    assert!(replies.iter().flatten().all(|r| r.status == 200));
    let (status, output) = app.stop();
    assert!(status.success(), "{output}");
}
