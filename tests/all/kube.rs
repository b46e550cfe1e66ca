//! `weft kube`: the Kubernetes objects of the samples, as golden YAML
//! (`tests/kube/SAMPLE-PLAN.yaml`), checked against the Kubernetes schemas
//! with kubernetes-validate; and the command itself, end to end.
//!
//! The golden files come from the pure generator with a fixed version and
//! fake digests, so they never depend on built binaries.
//! `WEFT_BLESS=1 cargo test --test all kube` rewrites them after a
//! deliberate change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use weft_placer::Plan;
use weft_runtime::kube::{self, AppVersion, KubeOptions, PlanOrigin};
use weft_runtime::manifest::{BucketSpec, Manifest, ManifestFile};
use weft_runtime::version::Version;

/// The sample's manifest, as `weft kube` reads it.
fn sample(name: &str) -> Manifest {
    ManifestFile::load(&weft_tests::root().join("samples").join(name))
        .unwrap()
        .manifest
}

/// kvcounter with its bucket on Redis, as it must be on Kubernetes.
fn kvcounter_on_redis() -> Manifest {
    let mut manifest = sample("kvcounter");
    manifest.keyvalue.insert(
        "counts".into(),
        BucketSpec {
            backend: "redis".into(),
            url: Some("redis://redis:6379/0".into()),
            url_env: None,
        },
    );
    manifest
}

/// A stand-in for each binary's SHA-256: the component's name in hex,
/// padded with zeros.
fn fake_digests(manifest: &Manifest) -> BTreeMap<String, String> {
    manifest
        .components
        .keys()
        .map(|name| {
            let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
            (name.clone(), format!("{hex:0<64}"))
        })
        .collect()
}

/// The boutique as it runs on Kubernetes: `three-groups.toml`, its carts on
/// the Redis Service `redis`.
fn boutique() -> Manifest {
    let path = weft_tests::root().join("samples/boutique/three-groups.toml");
    let mut manifest = ManifestFile::load(&path).unwrap().manifest;
    let carts = manifest
        .keyvalue
        .get_mut("carts")
        .expect("[keyvalue.carts]");
    carts.url = Some("redis://redis:6379/0".into());
    manifest
}

/// Calls `body` with the version of `manifest` (sample `app`) under `plan`
/// (a built-in plan's name, or `deploy` for the manifest's own), with a
/// fixed version and fake digests.
fn with_version<R>(
    app: &str,
    manifest: &Manifest,
    plan: &str,
    body: impl FnOnce(&AppVersion<'_>) -> R,
) -> R {
    let digests = fake_digests(manifest);
    let (plan_value, plan_origin) = match plan {
        "deploy" => (
            manifest
                .deploy
                .as_ref()
                .and_then(|d| d.plan())
                .expect("a [deploy] plan"),
            PlanOrigin::Manifest,
        ),
        _ => (
            Plan::builtin(plan, manifest.components.keys()).unwrap(),
            PlanOrigin::Builtin(plan.into()),
        ),
    };
    let source = PathBuf::from(format!("samples/{app}"));
    // Only the boutique has a plan of its own, in three-groups.toml.
    let file = match plan_origin {
        PlanOrigin::Manifest => "three-groups.toml",
        _ => "weft.toml",
    };
    let manifest_path = source.join(file);
    body(&AppVersion {
        source: &source,
        manifest_path: &manifest_path,
        manifest,
        plan: &plan_value,
        plan_origin,
        version: Version::parse("0123456789abcdef").unwrap(),
        digests: &digests,
    })
}

/// The objects of `manifest` (sample `app`) under the built-in plan `plan`.
fn generate(app: &str, manifest: &Manifest, plan: &str) -> Result<String, kube::Problems> {
    let options = KubeOptions {
        image: format!("registry.example/{app}:1"),
        namespace: None,
        replicas_from_plan: true,
        ..KubeOptions::default()
    };
    with_version(app, manifest, plan, |version| {
        kube::manifests(version, &options)
    })
}

/// The golden files, by file name, with what the generator writes now.
fn goldens() -> Vec<(PathBuf, String)> {
    let dir = weft_tests::root().join("tests").join("kube");
    let mut out = Vec::new();
    for (app, manifest, plans) in [
        ("hello", sample("hello"), &["split", "monolith"][..]),
        ("kvcounter", kvcounter_on_redis(), &["split", "monolith"]),
        ("boutique", boutique(), &["deploy", "split"]),
    ] {
        for plan in plans {
            let yaml = generate(app, &manifest, plan).unwrap();
            let name = if *plan == "deploy" {
                "three-groups"
            } else {
                plan
            };
            out.push((dir.join(format!("{app}-{name}.yaml")), yaml));
        }
    }
    out
}

#[test]
fn kube_yaml_matches_golden_files() {
    let bless = std::env::var_os("WEFT_BLESS").is_some();
    for (golden, actual) in goldens() {
        if bless {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!(
                "no golden file {}; run with WEFT_BLESS=1 to write it",
                golden.display()
            )
        });
        assert_eq!(actual, expected, "{} differs", golden.display());
    }
}

#[test]
fn kube_refuses_kvcounter_on_redb() {
    let err = generate("kvcounter", &sample("kvcounter"), "split")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "the app cannot run on Kubernetes (1 problem):\n  - samples/kvcounter/weft.toml: \
         keyvalue.counts: bucket 'counts' (granted to counter) is in the embedded redb store, a \
         file that only one process can hold; on Kubernetes every replica, and the next version \
         during a rollout, run in pods of their own and would each see another bucket. Add \
         [keyvalue.counts] with backend = \"redis\" and url = \"redis://HOST:6379/0\""
    );
}

/// Runs kubernetes-validate in strict mode on `yaml` and returns whether it
/// passed, with what it said.
fn validate(yaml: &str) -> (bool, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), yaml).unwrap();
    let out = Command::new(weft_tests::kubernetes_validate())
        .args(["--strict", "--kubernetes-version", "1.37.0"])
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run kubernetes-validate ({e}); install {}",
                weft_tests::KUBERNETES_VALIDATE
            )
        });
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[test]
fn kube_yaml_passes_the_kubernetes_schemas() {
    for (golden, yaml) in goldens() {
        let (ok, said) = validate(&yaml);
        assert!(ok, "{} does not validate:\n{said}", golden.display());
        // Every object was looked at: one "passed" line each.
        let objects = yaml.matches("\n---\n").count() + usize::from(yaml.starts_with("---\n"));
        assert_eq!(said.matches(" passed ").count(), objects, "{said}");
    }
}

#[test]
fn kube_schema_check_can_fail() {
    let (_, yaml) = goldens().swap_remove(0);
    let broken = yaml.replacen("  replicas: 1\n", "  replicas: 1\n  colour: red\n", 1);
    assert_ne!(broken, yaml);
    let (ok, said) = validate(&broken);
    assert!(!ok && said.contains("'colour' was unexpected"), "{said}");
}

#[test]
fn kube_containerfile_copies_each_sample_blob() {
    let manifest = sample("hello");
    let digests = fake_digests(&manifest);
    let text = with_version("hello", &manifest, "split", |v| {
        kube::containerfile(v, None, &BTreeMap::new())
    });
    let copies: Vec<&str> = text.lines().filter(|l| l.starts_with("COPY ")).collect();
    let blob =
        |d: &str| format!("COPY .weft/versions/blobs/{d}.wasm /opt/weft/components/{d}.wasm");
    assert_eq!(
        copies,
        [
            "COPY .weft/kube/weft /usr/local/bin/weft".to_string(),
            blob(&digests["frontend"]),
            blob(&digests["greeter"]),
        ]
    );
    assert!(
        text.contains("\nFROM ${BASE}\n")
            && text.ends_with("ENTRYPOINT [\"/usr/local/bin/weft\"]\n")
    );
    assert!(text.contains("podman build -f Containerfile -t IMAGE samples/hello"));
}

/// `weft kube` on a copy of hello: the YAML validates and names the
/// version the version store holds, the Containerfile's files are in the
/// build context, the TLS Secrets validate, and --write-config writes a folder
/// a worker can load.
#[test]
fn kube_command_end_to_end() {
    let dir = weft_tests::app_dir(
        "[app]\nname = \"hello\"\n\
         [components.frontend]\nwasm = \"{wasm:hello_frontend}\"\n\
         [components.greeter]\nwasm = \"{wasm:hello_greeter}\"\n\
         [components.greeter.config]\ngreeting = \"Hello\"\n\
         [listeners.web]\ncomponent = \"frontend\"\naddress = \"127.0.0.1:8080\"\n",
    );
    let path = dir.path().to_str().unwrap();
    let weft = |args: &[&str]| {
        let (status, out, err) = weft_tests::weft_once(&[&["kube", path], args].concat());
        assert!(status.success(), "weft kube {args:?} failed: {err}");
        out
    };

    let yaml = weft(&["--plan", "split", "--image", "registry.example/hello:1"]);
    let (ok, said) = validate(&yaml);
    assert!(ok, "{said}\n{yaml}");
    let stored: Vec<_> = std::fs::read_dir(dir.path().join(".weft/versions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "blobs")
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let version = &stored[0];
    assert!(
        yaml.contains(&format!("weft.dev/version: {version}\n")),
        "{yaml}"
    );
    assert_eq!(
        yaml.matches("replicas:").count(),
        1,
        "the cluster owns each group's count; only the ingress's is written:\n{yaml}"
    );

    let containerfile = weft(&["--plan", "split", "--containerfile"]);
    assert!(
        containerfile.contains(&format!("version {version}")),
        "{containerfile}"
    );
    for line in containerfile.lines().filter(|l| l.starts_with("COPY ")) {
        let from = line.split(' ').nth(1).unwrap();
        assert!(
            dir.path().join(from).is_file(),
            "{from} is not in the build context"
        );
    }

    let secret = weft(&["--plan", "split", "--secret"]);
    let (ok, said) = validate(&secret);
    assert!(ok, "{said}\n{secret}");
    let v8 = &version[..8];
    for group in ["frontend", "greeter"] {
        assert!(
            secret.contains(&format!("name: hello-{group}-{v8}-tls\n")),
            "{secret}"
        );
    }
    assert!(secret.contains("type: kubernetes.io/tls\n"), "{secret}");
    // One CA for every version, kept private beside the app; new leaves.
    let again = weft(&["--plan", "split", "--secret"]);
    assert_ne!(secret, again, "each key is new");
    let ca_of = |yaml: &str| {
        yaml.lines()
            .skip_while(|l| !l.contains("ca.crt:"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(ca_of(&secret), ca_of(&again), "the same CA signs them");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let key = dir.path().join(".weft/kube/ca/ca.key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }

    let config = dir.path().join("config");
    weft(&[
        "--plan",
        "split",
        "--write-config",
        config.to_str().unwrap(),
    ]);
    let manifest = ManifestFile::load(&config).unwrap();
    for spec in manifest.manifest.components.values() {
        let wasm = config.join("components").join(&spec.wasm);
        assert!(wasm.is_file(), "{} is missing", wasm.display());
    }
    let cluster = std::fs::read_to_string(config.join("cluster.toml")).unwrap();
    assert!(
        cluster.contains(&format!("version = \"{version}\"")),
        "{cluster}"
    );
}

/// Images and containers made with buildah, removed when dropped.
#[derive(Default)]
struct Buildah {
    containers: Vec<String>,
    images: Vec<String>,
}

impl Buildah {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("buildah").args(args).output().unwrap_or_else(|e| {
            panic!("cannot run buildah ({e}); install it with `apt-get install -y buildah` (.ci/run does)")
        });
        assert!(
            out.status.success(),
            "buildah {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn from(&mut self, image: &str) -> String {
        let container = self.run(&["from", "-q", image]);
        self.containers.push(container.clone());
        container
    }

    fn commit(&mut self, container: &str, image: &str) {
        self.run(&["commit", "-q", container, image]);
        self.images.push(image.to_string());
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("buildah").args(["rm", c]).output();
        }
        for i in self.images.iter().rev() {
            let _ = Command::new("buildah").args(["rmi", "-f", i]).output();
        }
    }
}

/// The shared libraries `binary` loads, from `ldd`.
fn libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect()
}

/// The image that `weft kube --containerfile` describes builds without a
/// network (buildah, on a base made of this machine's own C libraries in
/// place of the distroless one), and a worker started from it serves hello.
#[test]
fn the_image_builds_offline_and_serves() {
    let mut buildah = Buildah::default();
    let tag = std::process::id();
    let dir = weft_tests::app_dir(
        "[app]\nname = \"hello\"\n\
         [components.frontend]\nwasm = \"{wasm:hello_frontend}\"\n\
         [components.greeter]\nwasm = \"{wasm:hello_greeter}\"\n\
         [listeners.web]\ncomponent = \"frontend\"\naddress = \"127.0.0.1:8080\"\n",
    );
    let app = dir.path().to_str().unwrap();
    let kube = |args: &[&str]| {
        let (status, stdout, stderr) = weft_tests::weft_once(&[&["kube", app][..], args].concat());
        assert!(status.success(), "{stderr}");
        stdout
    };
    let containerfile = dir.path().join("Containerfile");
    std::fs::write(
        &containerfile,
        kube(&["--plan", "monolith", "--containerfile"]),
    )
    .unwrap();

    let base_image = format!("localhost/weft-test-base-{tag}");
    let base = buildah.from("scratch");
    for library in libraries(weft_tests::weft_bin()) {
        let into = format!("{}/", library.parent().unwrap().display());
        buildah.run(&["copy", "-q", &base, library.to_str().unwrap(), &into]);
    }
    buildah.commit(&base, &base_image);
    let image = format!("localhost/weft-test-hello-{tag}");
    buildah.run(&[
        "bud",
        "-q",
        "--build-arg",
        &format!("BASE={base_image}"),
        "-f",
        containerfile.to_str().unwrap(),
        "-t",
        &image,
        app,
    ]);
    buildah.images.push(image.clone());

    // The image's file system, with the ConfigMap and the Secret where the
    // pod would mount them; the listener on a free port of this machine.
    let container = buildah.from(&image);
    let root = PathBuf::from(buildah.run(&["mount", &container]));
    let config = tempfile::tempdir().unwrap();
    kube(&[
        "--plan",
        "monolith",
        "--write-config",
        config.path().to_str().unwrap(),
    ]);
    let free = weft_tests::free_address;
    let web = free();
    std::fs::create_dir_all(root.join("etc/weft")).unwrap();
    for file in ["weft.toml", "plan.toml", "cluster.toml"] {
        let text = std::fs::read_to_string(config.path().join(file)).unwrap();
        let text = text.replace("0.0.0.0:8080", &web.to_string());
        std::fs::write(root.join("etc/weft").join(file), text).unwrap();
    }
    let tls = tempfile::tempdir().unwrap();
    kube(&[
        "--plan",
        "monolith",
        "--secret",
        "--write-tls",
        tls.path().to_str().unwrap(),
    ]);
    std::fs::create_dir_all(root.join("etc/weft-tls")).unwrap();
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        std::fs::copy(
            tls.path().join("main").join(file),
            root.join("etc/weft-tls").join(file),
        )
        .unwrap();
    }

    let grpc = free().to_string();
    let mut worker = Command::new("/usr/sbin/chroot")
        .arg(&root)
        .args([
            "/usr/local/bin/weft",
            "worker",
            "--config",
            "/etc/weft",
            "--group",
            "main",
        ])
        .args(["--components", "/opt/weft/components"])
        .args(["--tls-dir", "/etc/weft-tls", "--listen", &grpc])
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chroot runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let answer = loop {
        let answer =
            std::panic::catch_unwind(|| weft_tests::http_get(&format!("http://{web}/?name=Ada")));
        if let Ok(answer) = answer {
            break answer;
        }
        if std::time::Instant::now() > deadline || worker.try_wait().unwrap().is_some() {
            let _ = worker.kill();
            let out = worker.wait_with_output().unwrap();
            panic!(
                "the worker in the image never served:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = worker.kill();
    let _ = worker.wait();
    let _ = buildah.run(&["umount", &container]);
    assert_eq!(answer, (200, "en: Hello, Ada!\n".into()));
}
