//! The objects themselves, built from typed `k8s-openapi` structs; the
//! checks have passed by the time these run.

use super::check::{GRPC_PORT_NAME, PROBE_PORT_NAME};
use super::{
    AppVersion, COMPILED_DIR, COMPONENTS_DIR, CONFIG_DIR, KubeOptions, LIVENESS_SERVICE, Names,
    Object, TLS_DIR, WEFT_BIN, config_files, listener_port,
};
use crate::deploy::cluster::{PROBE_PORT, WORKER_PORT};
use crate::rpc::identity::{CA_FILE, CERT_FILE, Credentials, KEY_FILE};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, GRPCAction,
    Lifecycle, LifecycleHandler, ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, Secret, SecretKeySelector, SecretVolumeSource, Service, ServicePort,
    ServiceSpec, SleepAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use weft_placer::Group;

/// How long a stopping pod waits before its worker drains, so that its
/// endpoints are gone from every Service before it stops taking calls.
pub(super) const PRE_STOP_SECONDS: i64 = 3;
/// Slack on top of the longest call, for the drain itself.
const DRAIN_SLACK_SECONDS: i64 = 5;

/// The annotation of a version's ConfigMap that names its image.
pub const IMAGE_ANNOTATION: &str = "weft.dev/image";

const APP: &str = "weft.dev/app";
const VERSION: &str = "weft.dev/version";
const GROUP: &str = "weft.dev/group";

type Labels = BTreeMap<String, String>;

/// Every object of the version, unsorted.
pub(super) fn build(app: &AppVersion<'_>, options: &KubeOptions) -> Vec<Object> {
    let names = Names::new(app);
    let ns = options.namespace.as_deref();
    let mut config = meta(names.config(), ns, labels(app, None));
    // The image the version's pods run, for `weft rollback --kube`, which
    // makes the objects again from this ConfigMap.
    config.annotations = Some(BTreeMap::from([(
        IMAGE_ANNOTATION.to_string(),
        options.image.clone(),
    )]));
    let mut objects = vec![Object::ConfigMap(ConfigMap {
        metadata: config,
        data: Some(config_files(app)),
        ..Default::default()
    })];
    for (group, g) in &app.plan.groups {
        objects.push(Object::Deployment(Box::new(deployment(
            app, options, group, g,
        ))));
        if g.replicas.is_range() {
            objects.push(Object::HorizontalPodAutoscaler(Box::new(autoscaler(
                app, options, group, g,
            ))));
        }
        objects.push(Object::Service(Box::new(Service {
            metadata: meta(names.group(group), ns, labels(app, Some(group))),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                selector: Some(selector(app, group)),
                ports: Some(vec![ServicePort {
                    name: Some(GRPC_PORT_NAME.into()),
                    port: WORKER_PORT.into(),
                    target_port: Some(IntOrString::String(GRPC_PORT_NAME.into())),
                    ..Default::default()
                }]),
                publish_not_ready_addresses: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        })));
    }
    objects
}

/// The TLS Secret of one group of the version: its key, its certificate
/// and the CA certificates it trusts.
pub(super) fn secret(
    app: &AppVersion<'_>,
    group: &str,
    credentials: &Credentials,
    namespace: Option<&str>,
) -> Object {
    tls_secret(
        Names::new(app).secret(group),
        labels(app, Some(group)),
        credentials,
        namespace,
    )
}

/// A TLS Secret named `name`: a key, its certificate and the CA
/// certificates it trusts.
pub(super) fn tls_secret(
    name: String,
    labels: Labels,
    credentials: &Credentials,
    namespace: Option<&str>,
) -> Object {
    let files = [
        (CA_FILE, &credentials.ca_pem),
        (CERT_FILE, &credentials.cert_pem),
        (KEY_FILE, &credentials.key_pem),
    ];
    Object::Secret(Secret {
        metadata: meta(name, namespace, labels),
        type_: Some("kubernetes.io/tls".into()),
        string_data: Some(
            files
                .iter()
                .map(|(file, text)| (file.to_string(), text.to_string()))
                .collect(),
        ),
        ..Default::default()
    })
}

/// A container's environment: its pod's name, and each Redis url that a
/// bucket of the group names with `url-env`, from the app's key-value
/// Secret (`A-keyvalue`), so no password is in the ConfigMap.
fn environment(app: &AppVersion<'_>, g: &Group) -> Vec<EnvVar> {
    let mut env = vec![EnvVar {
        name: "WEFT_POD_NAME".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }];
    for var in super::url_envs(app.manifest, Some(g)) {
        env.push(EnvVar {
            name: var.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: super::keyvalue_secret(&app.manifest.app.name),
                    key: var,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    env
}

/// The Deployment of one group.
fn deployment(app: &AppVersion<'_>, options: &KubeOptions, group: &str, g: &Group) -> Deployment {
    let names = Names::new(app);
    let labels = labels(app, Some(group));
    let mut ports = vec![
        port(GRPC_PORT_NAME, WORKER_PORT),
        port(PROBE_PORT_NAME, PROBE_PORT),
    ];
    for (listener, l) in &app.manifest.listeners {
        if g.components.contains(&l.component) {
            ports.push(port(listener, listener_port(l)));
        }
    }
    let args = [
        "worker",
        "--config",
        CONFIG_DIR,
        "--group",
        group,
        "--components",
        COMPONENTS_DIR,
        "--compiled",
        COMPILED_DIR,
        "--tls-dir",
        TLS_DIR,
        "--probe-listen",
        &format!("0.0.0.0:{PROBE_PORT}"),
        "--name",
        "$(WEFT_POD_NAME)",
    ];
    let container = Container {
        name: "weft".into(),
        image: Some(options.image.clone()),
        command: Some(vec![WEFT_BIN.into()]),
        args: Some(args.iter().map(|a| a.to_string()).collect()),
        env: Some(environment(app, g)),
        ports: Some(ports),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "config".into(),
                mount_path: CONFIG_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "tls".into(),
                mount_path: TLS_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        // Ready means serving: ask for the overall status. Alive is asked
        // apart, so a worker that is draining is not restarted.
        readiness_probe: Some(probe(None, 2, 2)),
        liveness_probe: Some(probe(Some(LIVENESS_SERVICE), 10, 3)),
        lifecycle: Some(pre_stop()),
        resources: resources(g),
        ..Default::default()
    };
    // Long enough for the pre-stop pause and the longest call to finish.
    let longest_call = g
        .components
        .iter()
        .filter_map(|c| app.manifest.components.get(c))
        .map(|spec| spec.call_timeout())
        .max()
        .unwrap_or_default();
    let grace = PRE_STOP_SECONDS
        + i64::try_from(longest_call.as_millis().div_ceil(1000)).unwrap_or(i64::MAX / 2)
        + DRAIN_SLACK_SECONDS;
    Deployment {
        metadata: meta(
            names.group(group),
            options.namespace.as_deref(),
            labels.clone(),
        ),
        spec: Some(DeploymentSpec {
            replicas: options
                .replicas_from_plan
                .then(|| i32::try_from(g.replicas.count()).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some(selector(app, group)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(vec![
                        Volume {
                            name: "config".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: names.config(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "tls".into(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(names.secret(group)),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    termination_grace_period_seconds: Some(grace),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container's port, by name.
pub(super) fn port(name: &str, number: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number.into(),
        ..Default::default()
    }
}

/// A probe of the pod's probe port: the kubelet cannot present a
/// certificate, so it asks the port that serves grpc.health.v1 alone.
pub(super) fn probe(service: Option<&str>, period: i32, failures: i32) -> Probe {
    Probe {
        grpc: Some(GRPCAction {
            port: PROBE_PORT.into(),
            service: service.map(Into::into),
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// The pause before a pod's process is told to stop, so that its
/// endpoints are gone from every Service first.
pub(super) fn pre_stop() -> Lifecycle {
    Lifecycle {
        pre_stop: Some(LifecycleHandler {
            sleep: Some(SleepAction {
                seconds: PRE_STOP_SECONDS,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The share of its CPU request that a group's pods use on average, above
/// which the autoscaler adds a pod (and below which it takes one away).
const TARGET_CPU_PERCENT: i32 = 70;

/// The autoscaler of a group whose plan gives a range of replicas: on CPU,
/// between the range's ends. It scales the group's Deployment of this
/// version only; each version's pods scale on their own.
fn autoscaler(
    app: &AppVersion<'_>,
    options: &KubeOptions,
    group: &str,
    g: &Group,
) -> HorizontalPodAutoscaler {
    let name = Names::new(app).group(group);
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    HorizontalPodAutoscaler {
        metadata: meta(
            name.clone(),
            options.namespace.as_deref(),
            labels(app, Some(group)),
        ),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name,
            },
            min_replicas: Some(count(g.replicas.min)),
            max_replicas: count(g.replicas.max),
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(TARGET_CPU_PERCENT),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The plan group's resources: requests of cpu and memory, and a limit of
/// memory only (a cpu limit throttles; memory is what must not run over).
fn resources(g: &Group) -> Option<ResourceRequirements> {
    if g.resources.is_empty() {
        return None;
    }
    let quantities = |pairs: &[(&str, &Option<String>)]| {
        let map: BTreeMap<String, Quantity> = pairs
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), Quantity(v.as_ref()?.clone()))))
            .collect();
        (!map.is_empty()).then_some(map)
    };
    Some(ResourceRequirements {
        requests: quantities(&[("cpu", &g.resources.cpu), ("memory", &g.resources.memory)]),
        limits: quantities(&[("memory", &g.resources.memory)]),
        ..Default::default()
    })
}

/// What selects the pods of one group of this version.
fn selector(app: &AppVersion<'_>, group: &str) -> Labels {
    BTreeMap::from([
        (APP.to_string(), app.manifest.app.name.clone()),
        (GROUP.to_string(), group.to_string()),
        (VERSION.to_string(), app.version.to_string()),
    ])
}

/// The labels of a version's objects; `group` for a group's objects.
fn labels(app: &AppVersion<'_>, group: Option<&str>) -> Labels {
    let name = &app.manifest.app.name;
    let version = app.version.to_string();
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), name.clone()),
        (
            "app.kubernetes.io/instance".to_string(),
            Names::new(app).config(),
        ),
        ("app.kubernetes.io/version".to_string(), version.clone()),
        ("app.kubernetes.io/part-of".to_string(), name.clone()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "weft".to_string(),
        ),
        (APP.to_string(), name.clone()),
        (VERSION.to_string(), version),
    ]);
    if let Some(group) = group {
        labels.insert("app.kubernetes.io/component".into(), group.into());
        labels.insert(GROUP.into(), group.into());
    }
    labels
}

pub(super) fn meta(name: String, namespace: Option<&str>, labels: Labels) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: namespace.map(Into::into),
        labels: Some(labels),
        ..Default::default()
    }
}
