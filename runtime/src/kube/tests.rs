use super::*;
use crate::manifest::Manifest;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

const VERSION: &str = "0123456789abcdef";

/// Builds the objects of `manifest` (TOML text) under `plan`, with fake
/// digests, and hands them to `body`.
fn with_app<R>(manifest: &str, plan: Option<Plan>, body: impl FnOnce(&AppVersion<'_>) -> R) -> R {
    let manifest = Manifest::from_str(manifest, Path::new("app/weft.toml")).unwrap();
    let plan = plan.unwrap_or_else(|| Plan::split(manifest.components.keys()));
    let digests: BTreeMap<String, String> = manifest
        .components
        .keys()
        .enumerate()
        .map(|(i, name)| (name.clone(), format!("{i:x}").repeat(64)))
        .collect();
    let app = AppVersion {
        source: Path::new("app"),
        manifest_path: Path::new("app/weft.toml"),
        manifest: &manifest,
        plan: &plan,
        plan_origin: PlanOrigin::Builtin("split".into()),
        version: Version::parse(VERSION).unwrap(),
        digests: &digests,
    };
    body(&app)
}

fn options() -> KubeOptions {
    KubeOptions {
        image: "registry.example/shop:1".into(),
        namespace: None,
        replicas_from_plan: false,
        ..KubeOptions::default()
    }
}

const SHOP: &str = "[app]\nname = \"shop\"\n\
    [components.front]\nwasm = \"front.wasm\"\n\
    [components.cart]\nwasm = \"cart.wasm\"\ncall-timeout = \"2500ms\"\n\
    [listeners.web]\ncomponent = \"front\"\naddress = \"127.0.0.1:8080\"\n";

/// A plan of one group, `name`, holding both of SHOP's components.
fn one_group(name: &str, replicas: u32) -> Plan {
    let mut plan = Plan::monolith(["front", "cart"]);
    let mut group = plan.groups.remove("main").unwrap();
    group.replicas = weft_placer::Replicas::fixed(replicas);
    plan.groups.insert(name.to_string(), group);
    plan
}

fn first_deployment(objects: &[Object]) -> &k8s_openapi::api::apps::v1::Deployment {
    objects
        .iter()
        .find_map(|o| match o {
            Object::Deployment(d) => Some(&**d),
            _ => None,
        })
        .expect("a Deployment")
}

fn problems(manifest: &str, plan: Option<Plan>) -> String {
    with_app(manifest, plan, |app| objects(app, &options()))
        .unwrap_err()
        .to_string()
}

fn labels(object: &Object) -> BTreeMap<String, String> {
    object.metadata().labels.clone().unwrap_or_default()
}

#[test]
fn objects_are_sorted_by_kind_then_name() {
    let all = with_app(SHOP, None, |app| objects(app, &options())).unwrap();
    let names: Vec<(&str, &str)> = all.iter().map(|o| (o.kind(), o.name())).collect();
    assert_eq!(
        names,
        [
            ("ConfigMap", "shop-01234567"),
            ("ConfigMap", "shop-ingress"),
            ("ConfigMap", "shop-traffic"),
            ("Deployment", "shop-cart-01234567"),
            ("Deployment", "shop-front-01234567"),
            ("Deployment", "shop-ingress"),
            ("Role", "shop-ingress"),
            ("RoleBinding", "shop-ingress"),
            ("Service", "shop-cart-01234567"),
            ("Service", "shop-front-01234567"),
            ("Service", "shop-ingress"),
            ("Service", "shop-web"),
            ("ServiceAccount", "shop-ingress"),
        ]
    );
}

#[test]
fn deployments_select_exactly_their_group_and_version() {
    let all = with_app(SHOP, None, |app| objects(app, &options())).unwrap();
    let d = first_deployment(&all);
    let spec = d.spec.as_ref().unwrap();
    let selector = spec.selector.match_labels.clone().unwrap();
    assert_eq!(
        selector,
        BTreeMap::from([
            ("weft.dev/app".to_string(), "shop".to_string()),
            ("weft.dev/group".to_string(), "cart".to_string()),
            ("weft.dev/version".to_string(), VERSION.to_string()),
        ])
    );
    // The pods carry every label, so the selector matches them.
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    assert_eq!(pod_labels["app.kubernetes.io/component"], "cart");
    // The cluster owns the count unless asked otherwise.
    assert_eq!(spec.replicas, None);
    let pod = spec.template.spec.as_ref().unwrap();
    // 3 s before the drain, the 2.5 s call rounded up to 3, and 5 s of slack.
    assert_eq!(pod.termination_grace_period_seconds, Some(11));
    let replicas = KubeOptions {
        replicas_from_plan: true,
        ..options()
    };
    let all = with_app(SHOP, Some(one_group("all", 3)), |app| {
        objects(app, &replicas)
    })
    .unwrap();
    let d = first_deployment(&all);
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(3));
}

#[test]
fn resources_come_from_the_plan() {
    let mut plan = one_group("all", 1);
    let resources = &mut plan.groups.get_mut("all").unwrap().resources;
    resources.cpu = Some("500m".into());
    resources.memory = Some("256Mi".into());
    let all = with_app(SHOP, Some(plan), |app| objects(app, &options())).unwrap();
    let d = first_deployment(&all);
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let resources = pod.containers[0].resources.clone().unwrap();
    let quantity = |q: &str| Quantity(q.into());
    assert_eq!(
        resources.requests,
        Some(BTreeMap::from([
            ("cpu".into(), quantity("500m")),
            ("memory".into(), quantity("256Mi")),
        ]))
    );
    // A memory limit only: a cpu limit would throttle.
    assert_eq!(
        resources.limits,
        Some(BTreeMap::from([("memory".into(), quantity("256Mi"))]))
    );
    // Without resources in the plan, none are written.
    let all = with_app(SHOP, Some(one_group("all", 1)), |app| {
        objects(app, &options())
    })
    .unwrap();
    let d = first_deployment(&all);
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.containers[0].resources, None);
}

#[test]
fn the_app_objects_outlive_versions_and_listeners_reach_the_ingress() {
    let all = with_app(SHOP, None, |app| objects(app, &options())).unwrap();
    let web = all.iter().find(|o| o.name() == "shop-web").unwrap();
    let Object::Service(service) = web else {
        panic!("{web:?}")
    };
    let spec = service.spec.as_ref().unwrap();
    let selector = spec.selector.clone().unwrap();
    assert_eq!(
        selector,
        BTreeMap::from([
            ("weft.dev/app".to_string(), "shop".to_string()),
            ("weft.dev/role".to_string(), "ingress".to_string()),
        ]),
        "the listener's Service selects weft's ingress, never one version"
    );
    assert_eq!(spec.ports.as_ref().unwrap()[0].port, 8080);
    // The ingress's pods carry what the Service selects.
    let ingress = all
        .iter()
        .find_map(|o| match o {
            Object::Deployment(d) if o.name() == "shop-ingress" => Some(d),
            _ => None,
        })
        .unwrap();
    let template = &ingress.spec.as_ref().unwrap().template;
    let pod_labels = template.metadata.as_ref().unwrap().labels.clone().unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    let pod = template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("shop-ingress"));
    assert_eq!(ingress.spec.as_ref().unwrap().replicas, Some(2));
    // The traffic table gives this version every request.
    let Some(Object::ConfigMap(traffic)) = all.iter().find(|o| o.name() == "shop-traffic") else {
        panic!("a traffic table")
    };
    let table = traffic::TrafficTable::from_str(
        &traffic.data.as_ref().unwrap()[traffic::TRAFFIC_FILE],
        "shop-traffic",
    )
    .unwrap();
    assert_eq!(table.serving(), Some(VERSION));
    assert_eq!(table.versions[VERSION].weight, 100);
    assert_eq!(
        table.versions[VERSION].listeners["web"].service,
        "shop-front-01234567"
    );
    // The ingress may read that table, and nothing else.
    let Some(Object::Role(role)) = all.iter().find(|o| o.kind() == "Role") else {
        panic!("a Role")
    };
    let rules = role.rules.as_ref().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].resource_names,
        Some(vec!["shop-traffic".to_string()])
    );
    assert_eq!(rules[0].verbs, ["get"]);
    // The app's own objects carry no version, so deleting a version
    // leaves them; everything else carries it.
    let apps = ["shop-ingress", "shop-traffic", "shop-web"];
    for o in &all {
        let expected = (!apps.contains(&o.name())).then_some(VERSION);
        assert_eq!(labels_of(o, "weft.dev/version"), expected, "{}", o.name());
    }
}

fn labels_of<'a>(object: &'a Object, key: &str) -> Option<&'a str> {
    object
        .metadata()
        .labels
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

#[test]
fn names_that_are_not_dns_labels_are_refused() {
    let err = problems(SHOP, Some(one_group("Back_End", 1)));
    assert!(
        err.contains("app/weft.toml: components.Back_End: group 'Back_End'")
            && err.contains("rename the component")
            && err.contains("such as 'back-end'"),
        "{err}"
    );

    let err = problems(&SHOP.replace("name = \"shop\"", "name = \"Shop\""), None);
    assert!(
        err.contains("app/weft.toml: app.name: 'Shop'") && err.contains("such as 'shop'"),
        "{err}"
    );

    let long = SHOP.replace("[listeners.web]", "[listeners.storefront-public]");
    let err = problems(&long, None);
    assert!(
        err.contains("listeners.storefront-public: 'storefront-public' names its port")
            && err.contains("rename the listener"),
        "{err}"
    );
    let grpc = SHOP.replace("[listeners.web]", "[listeners.grpc]");
    assert!(problems(&grpc, None).contains("rename the listener"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = SHOP
        .replace("name = \"shop\"", "name = \"Shop\"")
        .replace("127.0.0.1:8080", "127.0.0.1:7070");
    let err = with_app(&text, None, |app| {
        objects(
            app,
            &KubeOptions {
                image: " ".into(),
                namespace: Some("Prod".into()),
                ..options()
            },
        )
    })
    .unwrap_err();
    let fields: Vec<&str> = err.0.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "app.name",
            "listeners.web.address",
            "--namespace",
            "--image"
        ],
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("the app cannot run on Kubernetes (4 problems):")
    );
}

#[test]
fn long_names_are_refused() {
    let app = "a".repeat(55);
    let err = problems(
        &SHOP.replace("name = \"shop\"", &format!("name = \"{app}\"")),
        None,
    );
    assert!(
        err.contains("shorten the app's name to at most 54"),
        "{err}"
    );
    let group = "g".repeat(60);
    let plan = one_group(&group, 1);
    let err = problems(SHOP, Some(plan));
    assert!(
        err.contains(&format!("components.{group}: the group's TLS Secret 'shop-{group}-01234567-tls' would have 78 characters")),
        "{err}"
    );
}

#[test]
fn redb_buckets_are_refused_with_the_redis_advice() {
    let text = format!("{SHOP}[components.cart.grants]\nkeyvalue = [\"carts\"]\n");
    let err = problems(&text, None);
    assert!(
        err.contains("app/weft.toml: keyvalue.carts: bucket 'carts' (granted to cart)")
            && err.contains("[keyvalue.carts] with backend = \"redis\""),
        "{err}"
    );
    let redis =
        format!("{text}[keyvalue.carts]\nbackend = \"redis\"\nurl = \"redis://r:6379/0\"\n");
    assert!(with_app(&redis, None, |app| objects(app, &options())).is_ok());
}

#[test]
fn a_range_of_replicas_is_an_autoscaler_on_cpu() {
    let mut plan = one_group("all", 1);
    let group = plan.groups.get_mut("all").unwrap();
    group.replicas = weft_placer::Replicas { min: 2, max: 5 };
    let refused = problems(SHOP, Some(plan.clone()));
    assert!(
        refused.contains("deploy.groups.all.resources.cpu") && refused.contains("\"2..5\""),
        "{refused}"
    );
    plan.groups.get_mut("all").unwrap().resources.cpu = Some("250m".into());
    let replicas = KubeOptions {
        replicas_from_plan: true,
        ..options()
    };
    let all = with_app(SHOP, Some(plan), |app| objects(app, &replicas)).unwrap();
    let Some(Object::HorizontalPodAutoscaler(hpa)) =
        all.iter().find(|o| o.kind() == "HorizontalPodAutoscaler")
    else {
        panic!("an autoscaler")
    };
    assert_eq!(hpa.metadata.name.as_deref(), Some("shop-all-01234567"));
    let spec = hpa.spec.as_ref().unwrap();
    assert_eq!(spec.scale_target_ref.kind, "Deployment");
    assert_eq!(spec.scale_target_ref.name, "shop-all-01234567");
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 5));
    let metric = &spec.metrics.as_ref().unwrap()[0];
    let resource = metric.resource.as_ref().unwrap();
    assert_eq!(resource.name, "cpu");
    assert_eq!(resource.target.average_utilization, Some(70));
    // It is the version's: deleted with it, as each version scales alone.
    assert_eq!(labels_of(&all[0], "weft.dev/version"), Some(VERSION));
    assert_eq!(
        hpa.metadata.labels.as_ref().unwrap()["weft.dev/version"],
        VERSION
    );
    // The Deployment starts at the least.
    assert_eq!(
        first_deployment(&all).spec.as_ref().unwrap().replicas,
        Some(2)
    );
}

#[test]
fn the_header_says_how_to_build_apply_and_delete() {
    let text = with_app(SHOP, None, |app| {
        manifests(
            app,
            &KubeOptions {
                namespace: Some("prod".into()),
                ..options()
            },
        )
    })
    .unwrap();
    let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
    assert!(
        header[0].contains("app 'shop', version 0123456789abcdef, plan split"),
        "{header:?}"
    );
    for needle in [
        "weft kube app --plan split --containerfile > Containerfile",
        "podman build -f Containerfile -t registry.example/shop:1 app",
        "weft kube app --plan split --secret --namespace prod | kubectl apply -f -",
        "kubectl apply -f FILE",
        "weft rollout --kube app --plan split --namespace prod --image registry.example/shop:1",
        "kubectl delete deployment,service,configmap,secret,horizontalpodautoscaler -n prod -l weft.dev/app=shop,weft.dev/version=0123456789abcdef",
    ] {
        assert!(
            header.iter().any(|l| l.contains(needle)),
            "{needle}: {header:?}"
        );
    }
    // Right after the header, the objects; every one in the namespace.
    assert_eq!(text.lines().nth(header.len()), Some("---"));
    // 13 objects, and the ServiceAccount that the RoleBinding names.
    assert_eq!(text.matches("\n  namespace: prod\n").count(), 14);
}

#[test]
fn the_config_map_holds_what_a_worker_reads() {
    let files = with_app(SHOP, None, config_files);
    let manifest = Manifest::from_str(&files["weft.toml"], Path::new("weft.toml")).unwrap();
    assert_eq!(
        manifest.components["cart"].wasm,
        Path::new(&format!("{}.wasm", "0".repeat(64)))
    );
    let original = Manifest::from_str(SHOP, Path::new("weft.toml")).unwrap();
    assert_eq!(manifest.canonical(), original.canonical());
    let cluster = ClusterConfig::from_str(&files["cluster.toml"], Path::new("c")).unwrap();
    assert_eq!(cluster.version, VERSION);
    assert_eq!(cluster.groups["front"].service, "shop-front-01234567");
    assert_eq!(cluster.listeners["web"].address.to_string(), "0.0.0.0:8080");
    assert_eq!(files["plan.toml"], Plan::split(["cart", "front"]).to_toml());
}

#[test]
fn the_containerfile_copies_weft_every_blob_and_its_compiled_code() {
    let zeros = "0".repeat(64);
    let ones = "1".repeat(64);
    let compiled = BTreeMap::from([(
        "cart".to_string(),
        format!("{zeros}-00000000000000aa.cwasm"),
    )]);
    let text = with_app(SHOP, None, |app| {
        containerfile(app, Some("r/shop:1"), &compiled)
    });
    let instructions: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        instructions,
        [
            "ARG BASE=gcr.io/distroless/cc-debian12",
            "FROM ${BASE}",
            "COPY .weft/kube/weft /usr/local/bin/weft",
            &format!("COPY .weft/versions/blobs/{zeros}.wasm /opt/weft/components/{zeros}.wasm"),
            &format!(
                "COPY .weft/kube/compiled/{zeros}-00000000000000aa.cwasm \
                 /opt/weft/compiled/{zeros}-00000000000000aa.cwasm"
            ),
            &format!(
                "COPY .weft/kube/compiled/{zeros}-00000000000000aa.digest \
                 /opt/weft/compiled/{zeros}-00000000000000aa.digest"
            ),
            &format!("COPY .weft/versions/blobs/{ones}.wasm /opt/weft/components/{ones}.wasm"),
            "ENTRYPOINT [\"/usr/local/bin/weft\"]",
        ]
    );
    assert!(text.contains("#     podman build -f Containerfile -t r/shop:1 app\n"));
}

#[test]
fn each_group_of_each_version_has_its_own_tls_secret() {
    use crate::rpc::identity::{Authority, Identity};
    let ca = Authority::generate("shop").unwrap();
    with_app(SHOP, Some(Plan::split(["front", "cart"])), |app| {
        let groups: BTreeMap<String, _> = app
            .plan
            .groups
            .keys()
            .map(|g| {
                let identity = Identity::worker("shop", VERSION, g);
                (g.clone(), ca.issue(&identity).unwrap())
            })
            .collect();
        let issued = Issued {
            groups,
            ingress: ca.issue(&Identity::ingress("shop")).unwrap(),
        };
        let secrets = secrets(app, &issued, Some("prod"));
        let names: Vec<&str> = secrets.iter().map(Object::name).collect();
        assert_eq!(
            names,
            [
                "shop-cart-01234567-tls",
                "shop-front-01234567-tls",
                "shop-ingress-tls"
            ]
        );
        for secret in &secrets {
            let labels = labels(secret);
            // The groups' are deleted with their version; the ingress's stays.
            let version = labels.get("weft.dev/version").map(String::as_str);
            let expected = (secret.name() != "shop-ingress-tls").then_some(VERSION);
            assert_eq!(version, expected, "{labels:?}");
            let Object::Secret(s) = secret else {
                panic!("a Secret")
            };
            assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
            let files = s.string_data.as_ref().unwrap();
            let keys: Vec<&str> = files.keys().map(String::as_str).collect();
            assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
        }
        // Each Deployment mounts its own group's Secret, and probes the
        // plain-text probe port.
        let objects = objects(app, &options()).unwrap();
        let yaml = render("", &objects);
        assert!(
            yaml.contains("secretName: shop-cart-01234567-tls"),
            "{yaml}"
        );
        assert!(yaml.contains("- --tls-dir\n"), "{yaml}");
        assert!(yaml.contains("- 0.0.0.0:7071\n"), "{yaml}");
        let text = secrets_yaml(app, &issued, Some("prod"));
        assert!(
            text.contains(
                "weft kube app --plan split --secret --namespace prod | kubectl apply -f -"
            ),
            "{text}"
        );
    });
}

#[test]
fn a_version_of_digits_stays_a_string() {
    let manifest = Manifest::from_str(SHOP, Path::new("weft.toml")).unwrap();
    let plan = Plan::monolith(manifest.components.keys());
    let digests = BTreeMap::from([
        ("cart".to_string(), "0".repeat(64)),
        ("front".to_string(), "1".repeat(64)),
    ]);
    let app = AppVersion {
        source: Path::new("."),
        manifest_path: Path::new("weft.toml"),
        manifest: &manifest,
        plan: &plan,
        plan_origin: PlanOrigin::Manifest,
        version: Version::parse("1234567812345678").unwrap(),
        digests: &digests,
    };
    // YAML would read a bare 1234567812345678 as a number, which is no label.
    let yaml = manifests(&app, &options()).unwrap();
    assert!(
        yaml.contains("weft.dev/version: '1234567812345678'\n"),
        "{yaml}"
    );
    assert!(yaml.contains("name: shop-main-12345678\n"), "{yaml}");
}

#[test]
fn port_names_follow_iana() {
    for good in ["web", "http-2", "a1"] {
        assert!(check::is_port_name(good), "{good}");
    }
    for bad in [
        "",
        "-web",
        "web-",
        "we--b",
        "1234",
        "Web",
        "sixteen-letters1",
    ] {
        assert!(!check::is_port_name(bad), "{bad}");
    }
    assert!(check::is_dns_label("1234") && !check::is_dns_label("a_b"));
}

#[test]
fn a_redis_url_from_the_environment_comes_from_a_secret() {
    let text = format!(
        "{SHOP}[components.cart.grants]\nkeyvalue = [\"carts\"]\n\
         [keyvalue.carts]\nbackend = \"redis\"\nurl-env = \"CARTS_REDIS_URL\"\n"
    );
    let yaml = with_app(&text, None, |app| manifests(app, &options())).unwrap();
    // The cart's pods read it from the app's key-value Secret; the front's
    // pods, which keep no bucket, do not need it.
    let cart = yaml
        .split("\n---\n")
        .find(|o| o.contains("kind: Deployment") && o.contains("name: shop-cart-01234567\n"))
        .expect("the cart's Deployment");
    assert!(cart.contains("name: CARTS_REDIS_URL"), "{cart}");
    assert!(cart.contains("key: CARTS_REDIS_URL"), "{cart}");
    assert!(cart.contains("name: shop-keyvalue"), "{cart}");
    let front = yaml
        .split("\n---\n")
        .find(|o| o.contains("kind: Deployment") && o.contains("name: shop-front-01234567\n"))
        .expect("the front's Deployment");
    assert!(!front.contains("CARTS_REDIS_URL"), "{front}");
    // The ConfigMap names the variable only; the header says how to make
    // the Secret.
    let config = yaml
        .split("\n---\n")
        .find(|o| o.contains("kind: ConfigMap"))
        .expect("the ConfigMap");
    assert!(!config.contains("redis://"), "{config}");
    assert!(
        yaml.contains(
            "kubectl create secret generic shop-keyvalue --from-literal=CARTS_REDIS_URL="
        ),
        "{yaml}"
    );
}
