//! The app's own objects, which outlive its versions: weft's ingress and
//! the traffic table it follows.
//!
//! For app `A`:
//!
//! | object | name | what for |
//! |---|---|---|
//! | ConfigMap | `A-traffic` | the traffic table: each version's share of new requests |
//! | ConfigMap | `A-ingress` | `ingress.toml`: the listeners, and where the table is |
//! | Deployment | `A-ingress` | the ingress's replicas, each a `weft ingress` |
//! | Service (headless) | `A-ingress` | how the replicas find each other, and the status port |
//! | Service | `A-L` | listener `L`'s stable address: every ingress replica |
//! | ServiceAccount, Role, RoleBinding | `A-ingress` | the right to read `A-traffic`, and nothing else |
//! | Secret (TLS) | `A-ingress-tls` | the ingress's key and certificate, to ask workers what they served |
//!
//! None of them carries a version label, so deleting a version never
//! deletes them.

use super::check::PROBE_PORT_NAME;
use super::objects::{meta, port, pre_stop, probe};
use super::traffic::{
    INGRESS_FILE, IngressConfig, IngressListener, TRAFFIC_FILE, TrafficTable, VersionRoute,
};
use super::{AppVersion, KubeOptions, Object, TLS_DIR, WEFT_BIN, listener_port};
use crate::deploy::cluster::PROBE_PORT;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, ObjectFieldSelector,
    PodSpec, PodTemplateSpec, SecretVolumeSource, Service, ServiceAccount, ServicePort,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The port of each ingress replica's status answers (`GET /traffic`).
pub const INGRESS_STATUS_PORT: u16 = 7072;
/// That port's name, in the pods and the headless Service.
pub const STATUS_PORT_NAME: &str = "status";
/// Where the ingress's ConfigMap is mounted.
pub const INGRESS_CONFIG_DIR: &str = "/etc/weft-ingress";
/// Where Kubernetes mounts a pod's ServiceAccount credentials.
const SERVICE_ACCOUNT_DIR: &str = crate::cluster::api::SERVICE_ACCOUNT_DIR;
/// How long a stopping ingress replica lets its requests finish.
const INGRESS_GRACE_SECONDS: i64 = 30;

/// The names of the app's own objects.
pub(crate) struct EdgeNames<'a> {
    app: &'a str,
}

impl<'a> EdgeNames<'a> {
    pub(crate) fn new(app: &'a str) -> EdgeNames<'a> {
        EdgeNames { app }
    }

    /// The traffic table's ConfigMap: `A-traffic`.
    pub(crate) fn traffic(&self) -> String {
        format!("{}-traffic", self.app)
    }

    /// The ingress's Deployment, headless Service, ConfigMap and
    /// ServiceAccount: `A-ingress`.
    pub(crate) fn ingress(&self) -> String {
        format!("{}-ingress", self.app)
    }

    /// The ingress's TLS Secret: `A-ingress-tls`.
    pub(crate) fn ingress_secret(&self) -> String {
        format!("{}-ingress-tls", self.app)
    }
}

/// The labels of the app's own objects (no version).
fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), app.to_string()),
        ("app.kubernetes.io/instance".to_string(), app.to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            "ingress".to_string(),
        ),
        ("app.kubernetes.io/part-of".to_string(), app.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "weft".to_string(),
        ),
        ("weft.dev/app".to_string(), app.to_string()),
        ("weft.dev/role".to_string(), "ingress".to_string()),
    ])
}

/// What selects the ingress's pods.
fn selector(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("weft.dev/app".to_string(), app.to_string()),
        ("weft.dev/role".to_string(), "ingress".to_string()),
    ])
}

/// The ingress's config: the app's listeners, the table, its peers.
pub fn ingress_config(app: &AppVersion<'_>) -> IngressConfig {
    let name = &app.manifest.app.name;
    let names = EdgeNames::new(name);
    IngressConfig {
        app: name.clone(),
        traffic: names.traffic(),
        peers: names.ingress(),
        status_port: INGRESS_STATUS_PORT,
        sticky_sessions: app
            .manifest
            .deploy
            .as_ref()
            .is_some_and(|d| d.sticky_sessions),
        listeners: app
            .manifest
            .listeners
            .iter()
            .map(|(n, l)| (n.clone(), IngressListener::of(l)))
            .collect(),
    }
}

/// The traffic table in which `app`'s version takes every request.
pub fn only_this_version(app: &AppVersion<'_>) -> TrafficTable {
    TrafficTable::only(app.version.as_str(), VersionRoute::of(app))
}

/// The traffic table's ConfigMap, holding `table`.
pub fn traffic_object(app: &str, table: &TrafficTable, namespace: Option<&str>) -> Object {
    Object::ConfigMap(ConfigMap {
        metadata: meta(EdgeNames::new(app).traffic(), namespace, labels(app)),
        data: Some(BTreeMap::from([(
            TRAFFIC_FILE.to_string(),
            table.to_toml(),
        )])),
        ..Default::default()
    })
}

/// The app's own objects, unsorted, with the traffic table giving `app`'s
/// version every request.
pub(super) fn build(app: &AppVersion<'_>, options: &KubeOptions) -> Vec<Object> {
    let name = &app.manifest.app.name;
    let names = EdgeNames::new(name);
    let ns = options.namespace.as_deref();
    let mut objects = vec![
        traffic_object(name, &only_this_version(app), ns),
        Object::ConfigMap(ConfigMap {
            metadata: meta(names.ingress(), ns, labels(name)),
            data: Some(BTreeMap::from([(
                INGRESS_FILE.to_string(),
                ingress_config(app).to_toml(),
            )])),
            ..Default::default()
        }),
        Object::ServiceAccount(ServiceAccount {
            metadata: meta(names.ingress(), ns, labels(name)),
            ..Default::default()
        }),
        Object::Role(Role {
            metadata: meta(names.ingress(), ns, labels(name)),
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["configmaps".into()]),
                resource_names: Some(vec![names.traffic()]),
                verbs: vec!["get".into()],
                ..Default::default()
            }]),
        }),
        Object::RoleBinding(RoleBinding {
            metadata: meta(names.ingress(), ns, labels(name)),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: names.ingress(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: names.ingress(),
                namespace: ns.map(Into::into),
                ..Default::default()
            }]),
        }),
        Object::Deployment(Box::new(deployment(app, options))),
        Object::Service(Box::new(Service {
            metadata: meta(names.ingress(), ns, labels(name)),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                selector: Some(selector(name)),
                ports: Some(vec![ServicePort {
                    name: Some(STATUS_PORT_NAME.into()),
                    port: INGRESS_STATUS_PORT.into(),
                    target_port: Some(IntOrString::String(STATUS_PORT_NAME.into())),
                    ..Default::default()
                }]),
                publish_not_ready_addresses: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        })),
    ];
    for (listener, l) in &app.manifest.listeners {
        objects.push(Object::Service(Box::new(Service {
            metadata: meta(format!("{name}-{listener}"), ns, labels(name)),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(selector(name)),
                ports: Some(vec![ServicePort {
                    name: Some(listener.clone()),
                    port: listener_port(l).into(),
                    target_port: Some(IntOrString::String(listener.clone())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        })));
    }
    objects
}

/// The ingress's Deployment.
fn deployment(app: &AppVersion<'_>, options: &KubeOptions) -> Deployment {
    let name = &app.manifest.app.name;
    let names = EdgeNames::new(name);
    let ns = options.namespace.as_deref();
    let mut ports = vec![
        port(STATUS_PORT_NAME, INGRESS_STATUS_PORT),
        port(PROBE_PORT_NAME, PROBE_PORT),
    ];
    for (listener, l) in &app.manifest.listeners {
        ports.push(port(listener, listener_port(l)));
    }
    let args = [
        "ingress",
        "--config",
        INGRESS_CONFIG_DIR,
        "--tls-dir",
        TLS_DIR,
        "--service-account",
        SERVICE_ACCOUNT_DIR,
        "--probe-listen",
        &format!("0.0.0.0:{PROBE_PORT}"),
        "--name",
        "$(WEFT_POD_NAME)",
    ];
    let mount = |volume: &str, path: &str| VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    };
    let container = Container {
        name: "ingress".into(),
        image: Some(options.image.clone()),
        command: Some(vec![WEFT_BIN.into()]),
        args: Some(args.iter().map(|a| a.to_string()).collect()),
        env: Some(vec![EnvVar {
            name: "WEFT_POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ports: Some(ports),
        volume_mounts: Some(vec![
            mount("config", INGRESS_CONFIG_DIR),
            mount("tls", TLS_DIR),
        ]),
        readiness_probe: Some(probe(None, 2, 2)),
        liveness_probe: Some(probe(Some(super::LIVENESS_SERVICE), 10, 3)),
        lifecycle: Some(pre_stop()),
        ..Default::default()
    };
    Deployment {
        metadata: meta(names.ingress(), ns, labels(name)),
        spec: Some(DeploymentSpec {
            replicas: Some(
                i32::try_from(match options.ingress_replicas {
                    0 => super::DEFAULT_INGRESS_REPLICAS,
                    n => n,
                })
                .unwrap_or(i32::MAX),
            ),
            selector: LabelSelector {
                match_labels: Some(selector(name)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(name)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(names.ingress()),
                    containers: vec![container],
                    volumes: Some(vec![
                        Volume {
                            name: "config".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: names.ingress(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "tls".into(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(names.ingress_secret()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    termination_grace_period_seconds: Some(
                        super::objects::PRE_STOP_SECONDS + INGRESS_GRACE_SECONDS,
                    ),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ingress's TLS Secret.
pub(super) fn secret(
    app: &str,
    credentials: &crate::rpc::identity::Credentials,
    namespace: Option<&str>,
) -> Object {
    super::objects::tls_secret(
        EdgeNames::new(app).ingress_secret(),
        labels(app),
        credentials,
        namespace,
    )
}
