//! `samples/boutique`, Online Boutique as ten components (one in Python),
//! driven over real HTTP the way a shopper's browser drives it, in each of
//! its placements: `weft run` with the carts in redb, `weft deploy --plan
//! split` with every component in its own worker, and the three-group plan
//! of `three-groups.toml` with the carts on a real Redis. Each asserts on
//! the pages' content, and on the call counters that show where each call
//! ran: in the caller's process, or across to another.

use weft_runtime::deploy::state::DeployState;
use weft_tests::browser::Browser;
use weft_tests::metrics::{scrape, value};
use weft_tests::{
    Connection, Load, Mode, RedisServer, Reply, Shopper, Weft, assert_shifted, boutique_app,
    checkout_form, each_mode, free_address, weft_once,
};

const SUNGLASSES: &str = "OLJCESPC7Z";
const MUG: &str = "6E92ZMYYFZ";

/// What a shopper saw, for the checks that depend on the placement.
pub(crate) struct Visit {
    pub(crate) shopper: Shopper,
    pub(crate) user_id: String,
}

/// Browses, fills a cart, checks out with a bad card and then a good one,
/// and asserts on every page on the way.
fn shop(app: &Weft) -> Visit {
    shop_at(app.listeners["web"], &|| app.output())
}

/// [`shop`] at the shop's `address`, where `output` reads what the app's
/// processes logged.
pub(crate) fn shop_at(address: std::net::SocketAddr, output: &dyn Fn() -> String) -> Visit {
    let mut shopper = Shopper::open(address);

    let home = shopper.get("/");
    assert_eq!(home.status, 200, "{}", home.body);
    assert_shows(
        &home,
        "the home page shows",
        &[
            "Sunglasses",
            "$19.99",
            "Salt &amp; Pepper Shakers",
            "$109.99",
            "<span id=\"cart-size\">0</span>",
        ],
    );
    let user_id = shopper
        .cookie("shop_session-id")
        .expect("a session cookie")
        .to_string();

    // The second currency: every price is converted through EUR.
    let set = shopper.post("/setCurrency", &[("currency_code", "EUR")]);
    assert_eq!(set.status, 303, "{}", set.body);
    // Back to the page the user came from, and never to another site.
    let mut raw = Connection::open(address);
    for (referer, back) in [
        ("http://127.0.0.1/product/OLJCESPC7Z", "/product/OLJCESPC7Z"),
        ("http://shop.example//evil.example/", "/"),
    ] {
        let form = "application/x-www-form-urlencoded";
        let headers = [("Referer", referer), ("Content-Type", form)];
        let reply = raw.send("POST", "/setCurrency", &headers, b"currency_code=GBP");
        assert_eq!(reply.header("location"), Some(back), "{referer}");
    }
    let home = shopper.get("/");
    assert_shows(
        &home,
        "in euros, the home page shows",
        &["€17.68", "€97.29", "<option value=\"EUR\" selected>"],
    );
    assert!(!home.body.contains("$19.99"), "{}", home.body);

    let product = shopper.get(&format!("/product/{SUNGLASSES}"));
    assert_eq!(product.status, 200, "{}", product.body);
    assert_shows(
        &product,
        "the product page shows",
        &[
            "<h1>Sunglasses</h1>",
            "Add a modern touch",
            "€17.68",
            "You may also like",
            "Ad</strong>",
        ],
    );
    // The Python recommendations leave out the product on show.
    let recommended = &product.body[product.body.find("You may also like").unwrap()..];
    assert!(!recommended.contains(SUNGLASSES), "{recommended}");

    for (id, quantity) in [(SUNGLASSES, "2"), (MUG, "1")] {
        let added = shopper.post("/cart", &[("product_id", id), ("quantity", quantity)]);
        assert_eq!(
            (added.status, added.header("location")),
            (303, Some("/cart")),
            "{}",
            added.body
        );
    }
    let cart = shopper.get("/cart");
    let full_cart = &[
        "Cart (3 items)",
        "Sunglasses</a></td><td class=\"qty\">2</td><td class=\"num\">€17.68</td><td class=\"num\">€35.36</td>",
        "Mug</a></td><td class=\"qty\">1</td><td class=\"num\">€7.95</td>",
        "id=\"shipping\">€7.95<",
        "id=\"total\">€51.26<",
    ];
    assert_shows(&cart, "the cart shows", full_cart);

    // A card that fails the Luhn check, then one of a brand not taken.
    let declined = shopper.post("/cart/checkout", &checkout_form("4111-1111-1111-1112"));
    assert_eq!(declined.status, 402, "{}", declined.body);
    assert_shows(
        &declined,
        "the error page says",
        &[
            "Your payment was declined",
            "The credit card number is not valid",
            "your cart is kept",
        ],
    );
    let amex = shopper.post("/cart/checkout", &checkout_form("3782-822463-10005"));
    assert_eq!(amex.status, 402, "{}", amex.body);
    assert_shows(
        &amex,
        "the page shows",
        &["only Visa and Mastercard are accepted"],
    );
    let cart = shopper.get("/cart");
    assert_shows(
        &cart,
        "after a declined card the cart still shows",
        full_cart,
    );

    let placed = shopper.post("/cart/checkout", &checkout_form("4432-8015-6152-0454"));
    assert_eq!(placed.status, 200, "{}", placed.body);
    assert_shows(&placed, "the page shows", &["Your order is complete!"]);
    assert_shows(&placed, "the page shows", &["id=\"total-paid\">€51.26<"]);
    let order_id = between(&placed.body, "id=\"order-id\">", "<");
    assert_eq!(order_id.len(), 36, "an order id like a UUID: {order_id}");
    assert!(!between(&placed.body, "id=\"tracking-id\">", "<").is_empty());

    let cart = shopper.get("/cart");
    assert_shows(&cart, "the page shows", &["Your shopping cart is empty!"]);
    assert_shows(
        &cart,
        "the page shows",
        &["<span id=\"cart-size\">0</span>"],
    );

    let missing = shopper.get("/product/NOPE");
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_shows(&missing, "the page shows", &["Product not found"]);
    assert_shows(
        &missing,
        "the page shows",
        &["no product with id &#39;NOPE&#39;"],
    );

    // Wrong methods and oversized forms get their own statuses.
    let wrong = raw.send("GET", "/cart/checkout", &[], b"");
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("POST")));
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let huge = format!("product_id={}", "X".repeat(20_000));
    assert_eq!(
        raw.send("POST", "/cart", &form, huge.as_bytes()).status,
        413
    );

    let styles = shopper.get("/static/styles.css");
    assert_eq!(
        (styles.status, styles.header("content-type")),
        (200, Some("text/css; charset=utf-8"))
    );
    let picture = shopper.get("/static/img/products/mug.svg");
    assert!(picture.body.starts_with("<svg"), "{}", picture.body);
    assert_eq!(shopper.get("/healthz").body, "ok\n");

    // The confirmation was rendered and logged by the email component.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !output().contains(order_id) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = output();
    assert!(
        output.contains("confirmation to someone@example.com"),
        "{output}"
    );
    assert!(
        output.contains(&format!("Your order {order_id} is complete.")),
        "{output}"
    );
    assert!(output.contains("Total: €51.26"), "{output}");
    // What checkout charged is what the pages showed.
    assert!(output.contains("charged €51.26 to the card"), "{output}");
    Visit { shopper, user_id }
}

/// Asserts that the page in `reply` shows each of `texts`; `what` says
/// which page, in the failure's message.
fn assert_shows(reply: &Reply, what: &str, texts: &[&str]) {
    for text in texts {
        assert!(reply.body.contains(text), "{what} {text}: {}", reply.body);
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {text}"))
        + start.len();
    &text[from..from + text[from..].find(end).expect("an end")]
}

/// How many times `caller` called `method` of `boutique:shop/INTERFACE`
/// from `group`, with `remote` saying whether the call left the process.
fn calls(
    admin: &str,
    caller: &str,
    interface: &str,
    method: &str,
    group: &str,
    remote: bool,
) -> Option<f64> {
    let interface = format!("boutique:shop/{interface}@0.1.0");
    let labels = [
        ("caller", caller),
        ("interface", interface.as_str()),
        ("method", method),
        ("group", group),
        ("remote", if remote { "true" } else { "false" }),
    ];
    value(&scrape(admin), "weft_calls_total", &labels)
}

/// Three orders were tried (two cards declined, one charged): each is one
/// place-order from the frontend and one charge from checkout.
fn assert_three_orders(admin: &str, frontend: (&str, bool), checkout: (&str, bool)) {
    assert_eq!(
        calls(
            admin,
            "frontend",
            "checkout",
            "place-order",
            frontend.0,
            frontend.1
        ),
        Some(3.0)
    );
    assert_eq!(
        calls(
            admin, "checkout", "payment", "charge", checkout.0, checkout.1
        ),
        Some(3.0)
    );
}

#[test]
fn the_shop_in_one_process_keeps_carts_in_redb() {
    let data = tempfile::tempdir().unwrap();
    let admin = free_address().to_string();
    // As the README runs it, with --build: cargo, and the Python build script.
    let app = Weft::run(&[
        "samples/boutique",
        "--build",
        "--listen",
        "web=127.0.0.1:0",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--admin",
        &admin,
    ]);
    shop(&app);
    assert_three_orders(&admin, ("main", false), ("main", false));
    let recommended = calls(
        &admin,
        "recommendation",
        "product-catalog",
        "list-products",
        "main",
        false,
    );
    assert!(recommended.is_some_and(|n| n >= 1.0), "{recommended:?}");
    let (status, output) = app.stop();
    assert!(status.success(), "{output}");
    assert!(
        output.contains("weft: building recommendation: sh recommendation/build.sh"),
        "{output}"
    );
    assert!(data.path().join("keyvalue.redb").exists(), "{output}");
}

#[test]
fn the_shop_split_calls_every_component_across_processes() {
    let dir = boutique_app("weft.toml", None);
    let admin = free_address().to_string();
    let app = Weft::start(
        Mode::Split,
        &[dir.path().to_str().unwrap(), "--admin", &admin],
    );
    shop(&app);
    // Each caller in its own group, and every call remote: the Python
    // component's calls too.
    assert_three_orders(&admin, ("frontend", true), ("checkout", true));
    for (caller, interface, method) in [
        ("frontend", "product-catalog", "list-products"),
        ("frontend", "currency", "convert"),
        ("frontend", "cart", "get-cart"),
        ("frontend", "recommendation", "list-recommendations"),
        ("frontend", "shipping", "get-quote"),
        ("frontend", "ads", "get-ads"),
        ("recommendation", "product-catalog", "list-products"),
        ("checkout", "cart", "empty-cart"),
        ("checkout", "shipping", "ship-order"),
        ("checkout", "email", "send-order-confirmation"),
    ] {
        let n = calls(&admin, caller, interface, method, caller, true);
        assert!(
            n.is_some_and(|n| n >= 1.0),
            "{caller} -> {interface}.{method} over gRPC: {n:?}"
        );
        assert_eq!(
            calls(&admin, caller, interface, method, caller, false),
            None
        );
    }
    let (status, output) = app.stop();
    assert!(status.success(), "{output}");
}

#[test]
fn the_shop_in_three_groups_keeps_carts_on_redis() {
    let redis = RedisServer::start();
    let dir = boutique_app("three-groups.toml", Some(&redis.url(0)));
    let admin = free_address().to_string();
    let app = Weft::deploy_default(&[dir.path().to_str().unwrap(), "--admin", &admin]);
    let Visit {
        mut shopper,
        user_id,
    } = shop(&app);
    // web -> orders is remote; checkout -> payment stays in the orders
    // group; checkout -> cart crosses to the browse group.
    assert_three_orders(&admin, ("web", true), ("orders", false));
    assert_eq!(
        calls(&admin, "checkout", "cart", "get-cart", "orders", true),
        Some(3.0)
    );
    assert_eq!(
        calls(
            &admin,
            "recommendation",
            "product-catalog",
            "list-products",
            "browse",
            true
        ),
        None
    );

    // The checkout emptied the cart in Redis; a new item lands there.
    assert_eq!(
        redis.command(&format!("HEXISTS carts {user_id}")).trim(),
        ":0"
    );
    let added = shopper.post("/cart", &[("product_id", MUG), ("quantity", "3")]);
    assert_eq!(added.status, 303, "{}", added.body);
    let stored = redis.command(&format!("HGET carts {user_id}"));
    assert!(
        stored.contains(&format!("{MUG} 3")),
        "the cart in Redis: {stored:?}"
    );
    let (status, output) = app.stop();
    assert!(status.success(), "{output}");
}

/// The concurrent frontend serves the same shop, page for page, in every
/// mode, and split its calls cross processes as the sequential one's do.
#[test]
fn the_concurrent_frontend_serves_the_same_shop_in_every_mode() {
    let dir = boutique_app("concurrent.toml", None);
    each_mode(|mode| {
        let admin = free_address().to_string();
        let app = Weft::start(mode, &[dir.path().to_str().unwrap(), "--admin", &admin]);
        shop(&app);
        match mode {
            Mode::Split => {
                assert_three_orders(&admin, ("frontend", true), ("checkout", true));
                for (interface, method) in [
                    ("currency", "convert"),
                    ("product-catalog", "get-product"),
                    ("recommendation", "list-recommendations"),
                ] {
                    let n = calls(&admin, "frontend", interface, method, "frontend", true);
                    assert!(n.is_some_and(|n| n >= 1.0), "{interface}.{method}: {n:?}");
                }
            }
            Mode::Run | Mode::Monolith => {
                assert_three_orders(&admin, ("main", false), ("main", false));
            }
        }
        let (status, output) = app.stop();
        assert!(status.success(), "{mode:?}: {output}");
    });
}

/// The concurrent frontend's interfaces are the shop's, every function
/// `async`: one source of truth, `samples/boutique/wit/shop.wit`.
#[test]
fn the_concurrent_frontends_interfaces_are_the_shops() {
    let boutique = weft_tests::root().join("samples/boutique");
    let shop = std::fs::read_to_string(boutique.join("wit/shop.wit")).unwrap();
    let copy = std::fs::read_to_string(boutique.join("frontend-async/wit/shop.wit")).unwrap();
    let body = copy
        .split_once("package ")
        .map(|(_, rest)| format!("package {rest}"))
        .unwrap();
    let expected = shop
        .split_once("package ")
        .map(|(_, rest)| format!("package {rest}"))
        .unwrap()
        .replace(": func(", ": async func(");
    assert_eq!(
        body, expected,
        "frontend-async/wit/shop.wit must be wit/shop.wit with every function async; \
         make it again from wit/shop.wit"
    );
}

/// The manifests are one app: the same components and listener, only the
/// plan, the carts' backend and the frontend's build differ.
#[test]
fn the_three_group_manifest_is_the_same_shop() {
    use weft_runtime::manifest::Manifest;
    let read = |file: &str| {
        Manifest::from_file(&weft_tests::root().join("samples/boutique").join(file)).unwrap()
    };
    let (local, grouped) = (read("weft.toml"), read("three-groups.toml"));
    assert_eq!(local.components, grouped.components);
    // The concurrent shop: its frontend's binary, and builds that make it.
    let mut concurrent = read("concurrent.toml");
    let frontend = concurrent.components.get_mut("frontend").unwrap();
    assert!(frontend.wasm.ends_with("boutique_frontend_async.wasm"));
    frontend.wasm = local.components["frontend"].wasm.clone();
    let unbuilt = |manifest: &Manifest| {
        let mut components = manifest.components.clone();
        components.values_mut().for_each(|c| c.build = None);
        components
    };
    assert_eq!(unbuilt(&local), unbuilt(&concurrent));
    assert_eq!(local.listeners, concurrent.listeners);
    assert_eq!(local.listeners, grouped.listeners);
    assert_eq!(local.bucket_backend("carts").name, "redb");
    assert_eq!(grouped.bucket_backend("carts").name, "redis");
    let plan = grouped
        .deploy
        .and_then(|d| d.plan())
        .expect("a [deploy] plan");
    assert_eq!(
        plan.groups.keys().collect::<Vec<_>>(),
        ["browse", "orders", "web"]
    );
}

/// A new rate for the dollar is a new version of the shop: rolled out under
/// load, split, every home page in euros comes wholly from one version (its
/// prices all at the old rate, or all at the new), and none fails.
#[test]
fn a_rollout_of_a_new_rate_under_load_loses_nothing_and_mixes_nothing() {
    let dir = boutique_app("weft.toml", None);
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let version = || {
        DeployState::read(&DeployState::path(dir.path()))
            .expect("deploy.json")
            .version
    };
    let a = version();
    let load = Load::start_with(
        app.listeners["web"],
        "/",
        &[("Cookie", "shop_currency=EUR")],
        2,
    );
    std::thread::sleep(std::time::Duration::from_millis(500));

    // USD 1.25 to the euro instead of 1.1305: $19.99 is then €15.99.
    let manifest = dir.path().join("weft.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[components.currency.config]\nrates = \"USD=1.25\"\n");
    std::fs::write(&manifest, text).unwrap();
    let (status, stdout, stderr) =
        weft_once(&["rollout", "--over", "3s", dir.path().to_str().unwrap()]);
    assert!(status.success(), "{stdout}{stderr}");
    let b = version();
    assert_ne!(a, b);
    std::thread::sleep(std::time::Duration::from_millis(500));

    for replies in load.stop() {
        for reply in &replies {
            assert_eq!(
                reply.status, 200,
                "no request fails during the rollout: {reply:?}"
            );
            assert_priced_by_its_version(reply, &a, &b);
        }
        assert_shifted(&replies, &a, &b);
    }
    let (status, output) = app.stop();
    assert!(status.success(), "{output}");
}

/// Shoppers who add the sunglasses to a cart and check out, again and
/// again until `stop`: whether each checkout went through, in order. A
/// broken connection is a failed checkout, and the next one reconnects.
fn keep_checking_out(
    address: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut failures = Vec::new();
        let mut shopper = Shopper::open(address);
        let mut rounds = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) && rounds < 5_000 {
            rounds += 1;
            let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let add = shopper.post("/cart", &[("product_id", SUNGLASSES), ("quantity", "1")]);
                let done = shopper.post("/cart/checkout", &checkout_form("4432-8015-6152-0454"));
                (
                    add.status,
                    done.status,
                    done.body.contains("Your order is complete!"),
                )
            }));
            match round {
                Ok((303, 200, true)) => {}
                Ok(other) => failures.push(format!("round {rounds}: {other:?}")),
                Err(_) => {
                    failures.push(format!("round {rounds}: the connection broke"));
                    shopper = Shopper::open(address);
                }
            }
        }
        assert!(rounds > 1, "the checkouts ran");
        failures
    })
}

/// From a profile to a live move. The shop runs split, with payment kept
/// apart from the frontend by `[placement]`; a profile under load shows
/// every call crossing a process; `weft plan` chooses, from that profile,
/// to keep everything together but payment; `weft rollout --plan auto`
/// moves the running shop there under load, with no failed request; and a
/// second profile shows that only the checkout's call to payment still
/// crosses a process.
#[test]
fn the_shop_moves_live_to_the_plan_its_profile_suggests() {
    use weft_placer::{Choice, Profile};
    let dir = boutique_app("weft.toml", None);
    let path = dir.path().to_str().unwrap();
    let manifest = dir.path().join("weft.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[placement]\nseparate = [[\"payment\", \"frontend\"]]\n");
    std::fs::write(&manifest, text).unwrap();
    let app = Weft::start(Mode::Split, &[path]);
    let web = app.listeners["web"];
    let load = Load::start(web, "/", 2);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let buyer = keep_checking_out(web, stop.clone());
    std::thread::sleep(std::time::Duration::from_millis(500));

    let profile_of = |file: &str| -> Profile {
        let out = dir.path().join(file);
        let (status, stdout, stderr) = weft_once(&[
            "profile",
            path,
            "--window",
            "3s",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(status.success(), "{stdout}{stderr}");
        serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
    };
    let remote = |profile: &Profile, caller: &str, callee: &str| {
        let edge = profile
            .edges
            .iter()
            .find(|e| e.caller == caller && e.callee == callee && e.calls_per_s > 0.0)
            .unwrap_or_else(|| panic!("no calls {caller} -> {callee}: {profile:?}"));
        edge.remote
    };
    let before = profile_of("split.json");
    assert!(remote(&before, "frontend", "productcatalog"));
    assert!(remote(&before, "checkout", "payment"));
    assert!(before.listeners[0].requests_per_s > 0.0, "{before:?}");
    assert!(before.components["frontend"].busy_cores > 0.0, "{before:?}");

    let split_json = dir.path().join("split.json");
    let (status, stdout, stderr) = weft_once(&[
        "plan",
        path,
        "--profile",
        split_json.to_str().unwrap(),
        "--json",
    ]);
    assert!(status.success(), "{stdout}{stderr}");
    let choice: Choice = serde_json::from_str(&stdout).unwrap();
    assert_eq!(choice.plan.groups.len(), 2, "{choice:?}");
    assert_eq!(
        choice.plan.group_of("payment").unwrap().1.components,
        ["payment"],
        "{choice:#?}\n{before:#?}"
    );
    assert_eq!(choice.cut_pairs(), [("checkout", "payment")]);
    assert_eq!(choice.constraints[0].rule, "placement.separate[0]");
    let web_latency = &choice.latency[0];
    assert!(web_latency.predicted_ms.chosen < web_latency.predicted_ms.split);

    // The monolith breaks the constraint: refused.
    let (status, _, stderr) = weft_once(&["rollout", path, "--plan", "monolith"]);
    assert!(!status.success());
    assert!(stderr.contains("placement.separate[0]"), "{stderr}");

    let (status, stdout, stderr) = weft_once(&[
        "rollout",
        path,
        "--plan",
        "auto",
        "--profile",
        split_json.to_str().unwrap(),
        "--over",
        "3s",
    ]);
    assert!(status.success(), "{stdout}{stderr}");
    let state = DeployState::read(&DeployState::path(dir.path())).unwrap();
    let serving = state
        .versions
        .iter()
        .find(|v| v.version == state.version)
        .expect("the serving version");
    let chosen: std::collections::BTreeMap<String, Vec<String>> = choice
        .plan
        .groups
        .iter()
        .map(|(name, g)| (name.clone(), g.components.clone()))
        .collect();
    assert_eq!(serving.groups, chosen);

    let after = profile_of("moved.json");
    assert!(!remote(&after, "frontend", "productcatalog"));
    assert!(!remote(&after, "frontend", "cart"));
    assert!(remote(&after, "checkout", "payment"));

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(buyer.join().unwrap(), Vec::<String>::new());
    for replies in load.stop() {
        for reply in &replies {
            assert_eq!(
                reply.status, 200,
                "no request fails during the move: {reply:?}"
            );
        }
    }
    let (status, output) = app.stop();
    assert!(status.success(), "{output}");
}

/// A home page in euros comes wholly from the version that answered it:
/// version `a` prices at the dollar's first rate, `b` at USD 1.25 (so
/// $19.99 is €17.68 in one and €15.99 in the other), and never both.
pub(crate) fn assert_priced_by_its_version(reply: &Reply, a: &str, b: &str) {
    let (old, new) = ("€17.68", "€15.99");
    let (shows, never) = match reply.header("weft-version") {
        Some(v) if v == a => (old, new),
        Some(v) if v == b => (new, old),
        other => panic!("an answer from version {other:?}"),
    };
    assert!(
        reply.body.contains(shows) && !reply.body.contains(never),
        "{}",
        reply.body
    );
}

/// The shop in a real browser, in every mode: headless Chromium keeps the
/// session cookie, posts the forms and follows the redirects.
#[test]
fn the_shop_works_in_headless_chromium() {
    let dir = boutique_app("weft.toml", None);
    each_mode(|mode| {
        let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
        let shop = |path: &str| app.url("web", path);
        let browser = Browser::new();
        let shows = |dom: &str, texts: &[&str]| {
            for text in texts {
                assert!(
                    dom.contains(text),
                    "{mode:?}: the browser shows {text}: {dom}"
                );
            }
        };
        shows(
            &browser.open(&shop("/")),
            &["Hot products", "Sunglasses", "$19.99"],
        );
        let home = browser.submit(&shop("/setCurrency"), &[("currency_code", "EUR")]);
        shows(&home, &["€17.68", "Hot products"]);
        shows(
            &browser.open(&shop("/product/OLJCESPC7Z")),
            &["Add to cart", "€17.68"],
        );
        let cart = browser.submit(
            &shop("/cart"),
            &[("product_id", "OLJCESPC7Z"), ("quantity", "2")],
        );
        shows(&cart, &["Cart (2 items)", "id=\"total\">€43.31<"]);
        let declined = browser.submit(
            &shop("/cart/checkout"),
            &checkout_form("4111-1111-1111-1112"),
        );
        shows(&declined, &["Your payment was declined"]);
        shows(&browser.open(&shop("/cart")), &["Cart (2 items)"]);
        shows(
            &browser.submit(
                &shop("/cart/checkout"),
                &checkout_form("4432-8015-6152-0454"),
            ),
            &["Your order is complete!", "id=\"total-paid\">€43.31<"],
        );
        shows(
            &browser.open(&shop("/cart")),
            &["Your shopping cart is empty!"],
        );
        let (status, output) = app.stop();
        assert!(status.success(), "{output}");
    });
}
