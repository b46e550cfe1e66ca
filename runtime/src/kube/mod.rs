//! `weft kube`: the Kubernetes objects that run one version of an app.
//!
//! This module is pure: it takes the manifest, the plan, the version and
//! each component binary's digest ([`AppVersion`]) and returns typed
//! `k8s-openapi` objects ([`objects`]), and the YAML text of them
//! ([`manifests`]). The command (`commands/kube.rs`) reads the files,
//! snapshots the binaries and prints.
//!
//! For app `A`, version `V` (`v8` is its first 8 characters), and every
//! group `G` and listener `L` of the plan:
//!
//! | object | name | what for |
//! |---|---|---|
//! | ConfigMap | `A-v8` | `weft.toml`, `plan.toml` and `cluster.toml`, mounted at `/etc/weft` |
//! | Deployment | `A-G-v8` | the replicas of group `G`, each a `weft worker` |
//! | Service (headless) | `A-G-v8` | how workers of `V` find the ready replicas of `G` |
//! | Service | `A-L` | the stable entry of listener `L`; its selector picks one version |
//! | Secret (TLS) | `A-G-v8-tls` | group `G`'s key and certificate for `V`, mounted at `/etc/weft-tls` |
//!
//! Every object of a version carries `weft.dev/app=A` and
//! `weft.dev/version=V`, so one label selector deletes a version. The
//! listener Services do not carry the version label: they outlive every
//! version, and applying the next version's objects moves their selector,
//! which is the cut-over. Each group's TLS Secret `A-G-v8-tls`
//! ([`secrets`]) holds its key and certificate, issued by the app's CA for
//! that group and version only, so versions overlap without sharing a
//! secret, and a pod of one version cannot call a pod of another.
//!
//! Before writing anything, [`check`] finds every reason the app cannot run
//! on Kubernetes (names that are not DNS labels, listener names that cannot
//! name a port, key-value buckets in an embedded store that pods cannot
//! share) and reports them all at once.
//!
//! ```
//! # use std::collections::BTreeMap;
//! # use std::path::Path;
//! use weft_runtime::kube::{self, AppVersion, KubeOptions, PlanOrigin};
//! use weft_runtime::manifest::Manifest;
//! use weft_runtime::version::Version;
//!
//! let text = "[app]\nname = \"hello\"\n[components.web]\nwasm = \"web.wasm\"\n";
//! let manifest = Manifest::from_str(text, Path::new("weft.toml")).unwrap();
//! let plan = weft_placer::Plan::monolith(["web"]);
//! let digests = BTreeMap::from([("web".to_string(), "ab".repeat(32))]);
//! let app = AppVersion {
//!     source: Path::new("."),
//!     manifest_path: Path::new("weft.toml"),
//!     manifest: &manifest,
//!     plan: &plan,
//!     plan_origin: PlanOrigin::Builtin("monolith".into()),
//!     version: Version::parse("0123456789abcdef").unwrap(),
//!     digests: &digests,
//! };
//! let options = KubeOptions { image: "registry.example/hello:1".into(), ..Default::default() };
//! let yaml = kube::manifests(&app, &options).unwrap();
//! assert!(yaml.contains("name: hello-main-01234567"));
//! ```

mod check;
mod containerfile;
pub mod edge;
mod objects;
#[cfg(test)]
mod tests;
pub mod traffic;

pub use check::{Problem, Problems, check};
pub use containerfile::{COMPILED_IN_CONTEXT, EXE_IN_CONTEXT, containerfile};
pub use objects::IMAGE_ANNOTATION;

use crate::deploy::cluster::{
    CLUSTER_FILE, ClusterConfig, GroupPeers, ListenerBinding, MANIFEST_FILE, PLAN_FILE, WORKER_PORT,
};
use crate::manifest::Manifest;
use crate::version::Version;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use weft_placer::Plan;

/// Where a worker's config folder (the ConfigMap) is mounted.
pub const CONFIG_DIR: &str = "/etc/weft";
/// Where a group's TLS Secret is mounted.
pub const TLS_DIR: &str = "/etc/weft-tls";
/// Where the image keeps the component binaries, as `<sha256>.wasm`.
pub const COMPONENTS_DIR: &str = "/opt/weft/components";
/// Where the image keeps each component's compiled code, for the engine
/// of the `weft` it carries.
pub const COMPILED_DIR: &str = "/opt/weft/compiled";
/// Where the image keeps the `weft` executable.
pub const WEFT_BIN: &str = "/usr/local/bin/weft";
/// The `grpc.health.v1` service name that the liveness probe asks; the
/// readiness probe asks for the overall status (`""`).
pub const LIVENESS_SERVICE: &str = "weft.liveness";

/// One version of an app: everything its objects are made from.
#[derive(Debug, Clone)]
pub struct AppVersion<'a> {
    /// The app's folder as the user named it, for the commands written in
    /// the headers (it is also the image's build context).
    pub source: &'a Path,
    /// The manifest file, for error messages.
    pub manifest_path: &'a Path,
    /// What it says.
    pub manifest: &'a Manifest,
    /// The plan.
    pub plan: &'a Plan,
    /// Where the plan came from.
    pub plan_origin: PlanOrigin,
    /// The version that the manifest, the plan and the binaries make.
    pub version: Version,
    /// Each component binary's SHA-256, as 64 hex digits, by component.
    pub digests: &'a BTreeMap<String, String>,
}

impl AppVersion<'_> {
    /// The app as the `weft kube` commands in headers name it: its folder,
    /// or the manifest file in it when that is not `weft.toml`.
    fn named(&self) -> std::path::PathBuf {
        match self.manifest_path.file_name() {
            Some(file) if file != "weft.toml" => self.source.join(file),
            _ => self.source.to_path_buf(),
        }
    }
}

/// Where a plan came from: it says where a group is named, so an error can
/// say what to rename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanOrigin {
    /// A built-in plan (`monolith` or `split`); its groups are `main` or
    /// named after the components.
    Builtin(String),
    /// A plan file given with `--plan`.
    File(PathBuf),
    /// The manifest's `[deploy]` table.
    Manifest,
}

impl PlanOrigin {
    /// The `--plan` flag that chooses this plan again, if one is needed.
    fn flag(&self) -> Option<String> {
        match self {
            PlanOrigin::Builtin(name) => Some(format!(" --plan {name}")),
            PlanOrigin::File(path) => Some(format!(" --plan {}", path.display())),
            PlanOrigin::Manifest => None,
        }
    }

    /// How the header names the plan.
    fn describe(&self) -> String {
        match self {
            PlanOrigin::Builtin(name) => name.clone(),
            PlanOrigin::File(path) => format!("from {}", path.display()),
            PlanOrigin::Manifest => "from the manifest's [deploy] table".into(),
        }
    }
}

/// How `weft kube` writes the objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeOptions {
    /// The container image, built from [`containerfile`].
    pub image: String,
    /// The namespace written into every object; none leaves it to kubectl.
    pub namespace: Option<String>,
    /// Whether each Deployment says how many replicas to run (the plan's
    /// count); without it the cluster owns the count.
    pub replicas_from_plan: bool,
    /// How many replicas of weft's ingress run; 0 means the default, 2.
    pub ingress_replicas: u32,
}

/// How many replicas of weft's ingress run unless told otherwise: two, so
/// that one can restart while the other serves.
pub const DEFAULT_INGRESS_REPLICAS: u32 = 2;

/// One Kubernetes object (the large ones boxed).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    /// The version's config files, the ingress's, or the traffic table.
    ConfigMap(ConfigMap),
    /// A group's replicas, or the ingress's.
    Deployment(Box<Deployment>),
    /// A group's autoscaler, for a plan that gives it a range of replicas.
    HorizontalPodAutoscaler(Box<HorizontalPodAutoscaler>),
    /// What the ingress may read.
    Role(Role),
    /// The ingress's ServiceAccount's right to read the traffic table.
    RoleBinding(RoleBinding),
    /// A group's TLS Secret, or the ingress's.
    Secret(Secret),
    /// A group's headless Service, the ingress's, or a listener's stable one.
    Service(Box<Service>),
    /// The ingress's identity towards the API server.
    ServiceAccount(ServiceAccount),
}

impl Object {
    /// Its kind, such as `Deployment`.
    pub fn kind(&self) -> &'static str {
        use k8s_openapi::Resource;
        match self {
            Object::ConfigMap(_) => ConfigMap::KIND,
            Object::Deployment(_) => Deployment::KIND,
            Object::HorizontalPodAutoscaler(_) => HorizontalPodAutoscaler::KIND,
            Object::Role(_) => Role::KIND,
            Object::RoleBinding(_) => RoleBinding::KIND,
            Object::Secret(_) => Secret::KIND,
            Object::Service(_) => Service::KIND,
            Object::ServiceAccount(_) => ServiceAccount::KIND,
        }
    }

    /// Its metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::ConfigMap(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::HorizontalPodAutoscaler(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }
}

/// The names of a version's objects.
pub(crate) struct Names<'a> {
    app: &'a str,
    version8: &'a str,
}

impl<'a> Names<'a> {
    fn new(app: &'a AppVersion<'_>) -> Names<'a> {
        Names {
            app: &app.manifest.app.name,
            version8: &app.version.as_str()[..8],
        }
    }

    /// The ConfigMap: `A-v8`.
    fn config(&self) -> String {
        format!("{}-{}", self.app, self.version8)
    }

    /// A group's Deployment and headless Service: `A-G-v8`.
    fn group(&self, group: &str) -> String {
        format!("{}-{group}-{}", self.app, self.version8)
    }

    /// A group's TLS Secret: `A-G-v8-tls`.
    fn secret(&self, group: &str) -> String {
        format!("{}-tls", self.group(group))
    }

    /// A listener's Service: `A-L`.
    fn listener(&self, listener: &str) -> String {
        format!("{}-{listener}", self.app)
    }
}

/// Every object of the version, and the app's own objects (its ingress,
/// and a traffic table that gives this version every request), sorted by
/// kind, then name; or every reason it cannot run on Kubernetes.
pub fn objects(app: &AppVersion<'_>, options: &KubeOptions) -> Result<Vec<Object>, Problems> {
    let mut objects = version_objects(app, options)?;
    objects.extend(edge::build(app, options));
    objects.sort_by(|a, b| (a.kind(), a.name()).cmp(&(b.kind(), b.name())));
    Ok(objects)
}

/// The objects of the version alone, sorted by kind, then name, as
/// `weft rollout --kube` applies them beside a running version.
pub fn version_objects(
    app: &AppVersion<'_>,
    options: &KubeOptions,
) -> Result<Vec<Object>, Problems> {
    let mut problems = check(app, options.namespace.as_deref())
        .err()
        .unwrap_or_default();
    if options.image.trim().is_empty() {
        problems.0.push(Problem {
            file: None,
            field: "--image".into(),
            message: "give the image built from `weft kube --containerfile`, such as \
                      registry.example/app:1"
                .into(),
        });
    }
    if !problems.0.is_empty() {
        return Err(problems);
    }
    let mut objects = objects::build(app, options);
    objects.sort_by(|a, b| (a.kind(), a.name()).cmp(&(b.kind(), b.name())));
    Ok(objects)
}

/// The YAML stream of the version's objects, after a header that says how
/// to build, apply and delete them.
pub fn manifests(app: &AppVersion<'_>, options: &KubeOptions) -> Result<String, Problems> {
    let objects = objects(app, options)?;
    Ok(render(&header(app, options), &objects))
}

/// `header` (comment lines), then each object as YAML after a `---` line.
pub fn render(header: &str, objects: &[Object]) -> String {
    let mut out = header.to_string();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(object).expect("Kubernetes objects serialize"));
    }
    out
}

/// The comment that opens the version's YAML: what it is, and the commands
/// that build its image, make its Secrets, apply it and later delete it.
pub fn header(app: &AppVersion<'_>, options: &KubeOptions) -> String {
    let name = &app.manifest.app.name;
    let version = &app.version;
    let source = app.source.display();
    let named = app.named();
    let named = named.display();
    let plan = app.plan_origin.flag().unwrap_or_default();
    let ns = namespace_flag(options.namespace.as_deref());
    let weft_ns = weft_namespace_flag(options.namespace.as_deref());
    let image = &options.image;
    let mut h = String::new();
    let mut line = |text: &str| {
        let _ = writeln!(h, "{}", format!("# {text}").trim_end());
    };
    line(&format!(
        "Kubernetes objects of app '{name}', version {version}, plan {}.",
        app.plan_origin.describe()
    ));
    line("Written by `weft kube`; write them again rather than edit them.");
    line("");
    line("1. Build and push the image (the build context is the app's folder):");
    line(&format!(
        "     weft kube {named}{plan} --containerfile > Containerfile"
    ));
    line(&format!(
        "     podman build -f Containerfile -t {image} {source}"
    ));
    line(&format!("     podman push {image}"));
    line("2. The keys and certificates of this version's groups and of the app's ingress,");
    line("   from the app's CA (kept in .weft/kube/ca; every version's pods trust it):");
    line(&format!(
        "     weft kube {named}{plan} --secret{weft_ns} | kubectl apply -f -"
    ));
    let vars = url_envs(app.manifest, None);
    if !vars.is_empty() {
        let secret = keyvalue_secret(name);
        line("   Once per namespace, the Redis urls (with their passwords) that url-env names, in");
        line(&format!("   the Secret {secret}:"));
        let literals: Vec<String> = vars
            .iter()
            .map(|v| format!("--from-literal={v}=redis://:PASSWORD@HOST:6379/0"))
            .collect();
        line(&format!(
            "     kubectl create secret generic {secret}{ns} {}",
            literals.join(" ")
        ));
    }
    line("3. Apply this file. The app's ingress then sends every new request to this");
    line("   version, at once:");
    line("     kubectl apply -f FILE");
    line("   To move a running app to this version in steps instead, rolling back by");
    line("   itself if it fails more, let weft apply it:");
    line(&format!(
        "     weft rollout --kube {named}{plan}{weft_ns} --image {image}"
    ));
    line("4. `weft rollout --kube` deletes the version it replaces. When a later version");
    line("   is applied at once instead, delete this one once the later one is ready (the");
    line("   app's own objects have no version label and stay):");
    line(&format!(
        "     kubectl delete deployment,service,configmap,secret,horizontalpodautoscaler{ns} -l weft.dev/app={name},weft.dev/version={version}"
    ));
    h
}

/// kubectl's namespace flag, ` -n NS`, if one is given.
fn namespace_flag(namespace: Option<&str>) -> String {
    namespace.map(|ns| format!(" -n {ns}")).unwrap_or_default()
}

/// weft's own namespace flag, ` --namespace NS`, if one is given.
fn weft_namespace_flag(namespace: Option<&str>) -> String {
    namespace
        .map(|ns| format!(" --namespace {ns}"))
        .unwrap_or_default()
}

/// The files of a worker's config folder, by file name: the manifest whose
/// `wasm` paths are `<sha256>.wasm` in the components folder, the plan, and
/// `cluster.toml`. The ConfigMap holds them, and `--write-config` writes
/// them for plain machines.
pub fn config_files(app: &AppVersion<'_>) -> BTreeMap<String, String> {
    let names = Names::new(app);
    let mut manifest = app.manifest.clone();
    for (name, spec) in &mut manifest.components {
        let digest = app.digests.get(name).map_or("", String::as_str);
        spec.wasm = PathBuf::from(format!("{digest}.wasm"));
        spec.build = None;
    }
    let cluster = ClusterConfig {
        app: app.manifest.app.name.clone(),
        version: app.version.to_string(),
        port: WORKER_PORT,
        groups: app
            .plan
            .groups
            .keys()
            .map(|g| {
                let service = names.group(g);
                (g.clone(), GroupPeers { service })
            })
            .collect(),
        listeners: app
            .manifest
            .listeners
            .iter()
            .map(|(name, l)| {
                let port = listener_port(l);
                let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
                (name.clone(), ListenerBinding { address })
            })
            .collect(),
    };
    BTreeMap::from([
        (MANIFEST_FILE.to_string(), manifest.to_toml()),
        (PLAN_FILE.to_string(), app.plan.to_toml()),
        (CLUSTER_FILE.to_string(), cluster.to_toml()),
    ])
}

/// The port of a listener's manifest address (0 where it does not parse,
/// which the manifest's own checks have refused already).
fn listener_port(listener: &crate::manifest::ListenerSpec) -> u16 {
    listener
        .address
        .parse::<SocketAddr>()
        .map_or(0, |a| a.port())
}

/// The Secret that holds the Redis urls that `url-env` names: `A-keyvalue`,
/// made by the user (it holds passwords weft never sees).
pub fn keyvalue_secret(app: &str) -> String {
    format!("{app}-keyvalue")
}

/// The environment variables that buckets granted to `group`'s components
/// (every bucket, for `None`) name with `url-env`, sorted.
pub fn url_envs(manifest: &Manifest, group: Option<&weft_placer::Group>) -> Vec<String> {
    let granted = |bucket: &String| {
        group.is_none_or(|g| {
            g.components.iter().any(|c| {
                manifest
                    .components
                    .get(c)
                    .is_some_and(|spec| spec.grants.keyvalue.contains(bucket))
            })
        })
    };
    let vars: std::collections::BTreeSet<String> = manifest
        .keyvalue
        .iter()
        .filter(|(bucket, _)| granted(bucket))
        .filter_map(|(_, spec)| spec.url_env.clone())
        .collect();
    vars.into_iter().collect()
}

/// The TLS Secrets of the version, one per group, with the credentials
/// issued for each group (by group name), sorted by name.
pub fn secrets(app: &AppVersion<'_>, issued: &Issued, namespace: Option<&str>) -> Vec<Object> {
    let mut secrets = group_secrets(app, issued, namespace);
    secrets.push(edge::secret(
        &app.manifest.app.name,
        &issued.ingress,
        namespace,
    ));
    secrets.sort_by(|a, b| a.name().cmp(b.name()));
    secrets
}

/// The version's own TLS Secrets, one per group, without the ingress's
/// (which outlives versions), sorted by name.
pub fn group_secrets(
    app: &AppVersion<'_>,
    issued: &Issued,
    namespace: Option<&str>,
) -> Vec<Object> {
    issued
        .groups
        .iter()
        .map(|(group, credentials)| objects::secret(app, group, credentials, namespace))
        .collect()
}

/// The credentials of one version: each group's, and the app's ingress's.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Each group's, by group.
    pub groups: BTreeMap<String, crate::rpc::identity::Credentials>,
    /// The ingress's, the same for every version.
    pub ingress: crate::rpc::identity::Credentials,
}

/// The version's TLS Secrets as YAML, after a header that says what they
/// are and how to apply them.
pub fn secrets_yaml(app: &AppVersion<'_>, issued: &Issued, namespace: Option<&str>) -> String {
    let name = &app.manifest.app.name;
    let version = &app.version;
    let named = app.named();
    let named = named.display();
    let plan = app.plan_origin.flag().unwrap_or_default();
    let weft_ns = weft_namespace_flag(namespace);
    let header = format!(
        "# The keys and certificates of app '{name}', version {version}: one Secret per\n\
         # group, and the app's ingress's, issued by the app's CA (kept in .weft/kube/ca),\n\
         # which every version's pods trust. Every call between pods is mutual TLS with them.\n\
         # Written by `weft kube --secret`. Apply them before the version's objects:\n\
         #      weft kube {named}{plan} --secret{weft_ns} | kubectl apply -f -\n\
         # They hold private keys: keep this output out of files and logs.\n"
    );
    render(&header, &secrets(app, issued, namespace))
}

/// A version that the cluster keeps, made again from its ConfigMap (`A-v8`)
/// for `weft rollback --kube`: the manifest, plan and `cluster.toml` in it,
/// and the image its annotation names.
#[derive(Debug, Clone)]
pub struct KeptVersion {
    /// Where it came from, for errors: `ConfigMap A-v8`.
    pub origin: PathBuf,
    /// The manifest, whose binaries are `<sha256>.wasm`.
    pub manifest: Manifest,
    /// The plan.
    pub plan: Plan,
    /// The version.
    pub version: Version,
    /// Each component's binary's SHA-256, by component.
    pub digests: BTreeMap<String, String>,
    /// The image its pods ran.
    pub image: String,
}

impl KeptVersion {
    /// The version that `map` holds.
    pub fn from_config_map(map: &ConfigMap) -> anyhow::Result<KeptVersion> {
        use anyhow::Context as _;
        let name = map.metadata.name.clone().unwrap_or_default();
        let origin = PathBuf::from(format!("ConfigMap {name}"));
        let data = map.data.clone().unwrap_or_default();
        let file = |file: &str| {
            data.get(file)
                .with_context(|| format!("{}: it has no {file}", origin.display()))
        };
        let manifest = Manifest::from_str(file(MANIFEST_FILE)?, &origin.join(MANIFEST_FILE))?;
        let plan = Plan::from_str(
            file(PLAN_FILE)?,
            &origin.join(PLAN_FILE).display().to_string(),
            manifest.components.keys(),
        )?;
        let cluster = ClusterConfig::from_str(file(CLUSTER_FILE)?, &origin.join(CLUSTER_FILE))?;
        let version = Version::parse(&cluster.version).with_context(|| {
            format!(
                "{}: '{}' is not a version",
                origin.display(),
                cluster.version
            )
        })?;
        let digests = manifest
            .components
            .iter()
            .map(|(component, spec)| {
                let digest = spec
                    .wasm
                    .to_string_lossy()
                    .trim_end_matches(".wasm")
                    .to_string();
                (component.clone(), digest)
            })
            .collect();
        let image = map
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IMAGE_ANNOTATION))
            .cloned()
            .with_context(|| {
                format!(
                    "{}: no {IMAGE_ANNOTATION} annotation names its image; it was written by an \
                     older weft, so roll out that version's files with weft rollout --kube instead",
                    origin.display()
                )
            })?;
        Ok(KeptVersion {
            origin,
            manifest,
            plan,
            version,
            digests,
            image,
        })
    }

    /// The version, as its objects are made from it.
    pub fn app(&self) -> AppVersion<'_> {
        AppVersion {
            source: Path::new("."),
            manifest_path: &self.origin,
            manifest: &self.manifest,
            plan: &self.plan,
            plan_origin: PlanOrigin::Manifest,
            version: self.version.clone(),
            digests: &self.digests,
        }
    }
}
