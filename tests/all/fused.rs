//! Fused groups: a plan group with `fuse = true` runs its components
//! composed into one component, so a call between them is a direct call
//! with no host in between. It answers as the unfused group does, and a
//! fused edge leaves no per-call metrics, while a call out of the group
//! still does.

use weft_tests::metrics::{scrape, value};
use weft_tests::{Mode, VALUES_APP, Weft, app_dir, free_address, http_get, served_calls};

/// The values fixtures' routes, whose answers hold every value type.
const ROUTES: [&str; 4] = ["/echo", "/many", "/big?mib=1", "/typed"];

/// The answers of every route of the values app at `app`.
fn answers(app: &Weft) -> Vec<String> {
    ROUTES
        .iter()
        .map(|path| {
            let (status, body) = http_get(&app.url("web", path));
            assert_eq!(status, 200, "{path}: {body}");
            assert!(!body.contains("same: false"), "{path}: {body}");
            body
        })
        .collect()
}

/// Calls from `front` to `values`, as the admin address counts them.
fn front_calls(admin: &str) -> Option<f64> {
    value(
        &scrape(admin),
        "weft_calls_total",
        &[("caller", "front"), ("method", "echo")],
    )
}

#[test]
fn a_fused_group_answers_every_value_type_as_the_unfused_group_does() {
    let dir = app_dir(VALUES_APP);
    let path = dir.path().to_str().unwrap();
    let admin = free_address().to_string();
    let unfused = Weft::start(Mode::Monolith, &[path, "--admin", &admin]);
    let expected = answers(&unfused);
    assert!(
        front_calls(&admin).is_some_and(|n| n >= 1.0),
        "the host counts an unfused call"
    );
    let (exit, output) = unfused.stop();
    assert!(exit.success(), "{output}");

    let plan = dir.path().join("fused.toml");
    std::fs::write(
        &plan,
        "[groups.main]\ncomponents = [\"front\", \"values\"]\nfuse = true\n",
    )
    .unwrap();
    let admin = free_address().to_string();
    let fused = Weft::deploy(plan.to_str().unwrap(), &[path, "--admin", &admin]);
    assert_eq!(answers(&fused), expected, "fused and unfused answer alike");
    let state = weft_runtime::deploy::state::DeployState::read(
        &weft_runtime::deploy::state::DeployState::path(dir.path()),
    )
    .expect("the manager writes its state");
    assert_eq!(state.versions[0].fused, ["main"], "{state:?}");
    // The call is a direct call inside the fused component: the host sees
    // none of it.
    assert_eq!(
        front_calls(&admin),
        None,
        "no host between fused components"
    );
    // A trap in the fused callee costs its request, and the next is served.
    let (status, _) = http_get(&fused.url("web", "/trap"));
    assert_eq!(status, 500);
    assert_eq!(answers(&fused), expected);
    let (exit, output) = fused.stop();
    assert!(exit.success(), "{output}");
}

#[test]
fn a_fused_group_in_its_own_process_serves_calls_from_another() {
    // front alone; cart, pricing and inventory (Python) fused in another
    // process: front's calls cross processes into the fused component,
    // and cart's calls to the others stay inside it.
    let dir = app_dir(&crate::layouts::shop_manifest("fixture_shop_pricing"));
    let plan = dir.path().join("fused.toml");
    std::fs::write(
        &plan,
        "[groups.web]\ncomponents = [\"front\"]\n\
         [groups.back]\ncomponents = [\"cart\", \"pricing\", \"inventory\"]\nfuse = true\n",
    )
    .unwrap();
    let app = Weft::deploy(plan.to_str().unwrap(), &[dir.path().to_str().unwrap()]);
    crate::layouts::shop_answers(&app);
    let served = served_calls(dir.path());
    let calls = |key: &str| served.get(key).copied().unwrap_or_default();
    // front's own calls crossed into the fused worker...
    assert_eq!(
        calls("back/0 cart: demo:shop/cart@0.1.0#add"),
        2,
        "{served:#?}"
    );
    assert_eq!(
        calls("back/0 inventory: demo:shop/catalog@0.1.0#lookup"),
        2,
        "{served:#?}"
    );
    assert_eq!(
        calls("back/0 pricing: demo:pricing/pricing@0.1.2#quote"),
        1,
        "{served:#?}"
    );
    // ...and cart's and pricing's calls to the others did not leave it.
    assert_eq!(
        calls("back/0 inventory: demo:shop/stock@0.1.0#reserve"),
        0,
        "{served:#?}"
    );
    let (status, output) = app.stop();
    assert!(status.success(), "{output}");
}

#[test]
fn members_granted_different_things_are_not_fused() {
    let dir = app_dir(&format!(
        "{VALUES_APP}[components.front.config]\nmode = \"a\"\n\
         [components.values.config]\nmode = \"b\"\n"
    ));
    let plan = dir.path().join("fused.toml");
    std::fs::write(
        &plan,
        "[groups.main]\ncomponents = [\"front\", \"values\"]\nfuse = true\n",
    )
    .unwrap();
    let (status, out, err) = weft_tests::weft_once(&[
        "deploy",
        "--plan",
        plan.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert!(!status.success(), "{out}{err}");
    assert!(
        err.contains(
            "plan group 'main' is fused, but components 'front' and 'values' have different \
             config grants (mode = a and mode = b)"
        ),
        "{err}"
    );
}
