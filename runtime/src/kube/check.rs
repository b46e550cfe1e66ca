//! Why an app cannot run on Kubernetes: every reason at once, each naming
//! the file and the field, and saying what to rename or set.

use super::{AppVersion, Names, PlanOrigin, listener_port};
use crate::deploy::cluster::{PROBE_PORT, WORKER_PORT};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The longest name Kubernetes gives a Service or a label value.
const MAX_NAME: usize = 63;
/// The longest port name (IANA_SVC_NAME).
const MAX_PORT_NAME: usize = 15;
/// The worker's own port's name in every pod.
pub(super) const GRPC_PORT_NAME: &str = "grpc";
/// The name of the probe-only health port of every worker container.
pub(super) const PROBE_PORT_NAME: &str = "probe";

/// One reason an app cannot run on Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file that says it: the manifest or the plan file; none for a
    /// flag.
    pub file: Option<PathBuf>,
    /// The field or flag, such as `app.name` or `--image`.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Every reason an app cannot run on Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the app cannot run on Kubernetes ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// What Kubernetes asks of a name, for messages.
const DNS_LABEL: &str =
    "lowercase letters, digits and '-', starting and ending with a letter or digit";

/// Checks everything about the app that Kubernetes cares about: names,
/// ports, and key-value buckets that pods cannot share. `namespace` is the
/// `--namespace` flag.
pub fn check(app: &AppVersion<'_>, namespace: Option<&str>) -> Result<(), Problems> {
    let mut problems = Vec::new();
    let manifest_file = || Some(app.manifest_path.to_path_buf());
    let mut problem = |file: Option<PathBuf>, field: String, message: String| {
        problems.push(Problem {
            file,
            field,
            message,
        });
    };
    let names = Names::new(app);
    let app_name = &app.manifest.app.name;

    // The app's name starts every Service name, which must begin with a letter.
    let longest_fixed = names.config();
    let app_ok = if !is_dns_label(app_name)
        || !app_name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        problem(
            manifest_file(),
            "app.name".into(),
            format!(
                "'{app_name}' cannot start a Kubernetes name, which uses {DNS_LABEL}, and starts \
                 with a letter; rename the app{}",
                suggestion(app_name)
            ),
        );
        false
    } else if longest_fixed.len() > MAX_NAME {
        problem(
            manifest_file(),
            "app.name".into(),
            format!(
                "'{app_name}' is too long: the ConfigMap '{longest_fixed}' would have {} characters, \
                 and Kubernetes allows {MAX_NAME}; shorten the app's name to at most {}",
                longest_fixed.len(),
                MAX_NAME - (longest_fixed.len() - app_name.len())
            ),
        );
        false
    } else {
        true
    };

    for (group, g) in &app.plan.groups {
        let (file, field, what) = match &app.plan_origin {
            PlanOrigin::Builtin(_) => (
                manifest_file(),
                format!("components.{group}"),
                "the component (the built-in plan names its groups after them)",
            ),
            PlanOrigin::Manifest => (
                manifest_file(),
                format!("deploy.groups.{group}"),
                "the group",
            ),
            PlanOrigin::File(path) => (Some(path.clone()), format!("groups.{group}"), "the group"),
        };
        if !is_dns_label(group) {
            problem(
                file,
                field,
                format!(
                    "group '{group}' names Kubernetes objects and labels, which use {DNS_LABEL}; \
                     rename {what}{}",
                    suggestion(group)
                ),
            );
        } else if app_ok && names.secret(group).len() > MAX_NAME {
            let name = names.secret(group);
            problem(
                file,
                field,
                format!(
                    "the group's TLS Secret '{name}' would have {} characters, and Kubernetes \
                     allows {MAX_NAME}; shorten {what} or the app's name",
                    name.len()
                ),
            );
        }
        // Listeners served in this group's pods are ports of its container.
        let mut ports: BTreeMap<u16, &str> =
            BTreeMap::from([(WORKER_PORT, GRPC_PORT_NAME), (PROBE_PORT, PROBE_PORT_NAME)]);
        for (listener, l) in &app.manifest.listeners {
            if !g.components.contains(&l.component) {
                continue;
            }
            let port = listener_port(l);
            if port == 0 {
                problem(
                    manifest_file(),
                    format!("listeners.{listener}.address"),
                    "port 0 picks any free port, but a pod's listener needs a fixed one; give \
                     a port, such as 0.0.0.0:8080"
                        .into(),
                );
            } else if let Some(other) = ports.insert(port, listener) {
                let other = if other == GRPC_PORT_NAME {
                    "the worker's own gRPC port".to_string()
                } else if other == PROBE_PORT_NAME {
                    "the worker's probe port".to_string()
                } else {
                    format!("listener '{other}'")
                };
                problem(
                    manifest_file(),
                    format!("listeners.{listener}.address"),
                    format!(
                        "port {port} is {other} in the pods of group '{group}'; give this \
                         listener another port"
                    ),
                );
            }
        }
    }

    for (listener, l) in &app.manifest.listeners {
        if listener_port(l) == super::edge::INGRESS_STATUS_PORT {
            problem(
                manifest_file(),
                format!("listeners.{listener}.address"),
                format!(
                    "port {} is the status port of the app's ingress, which serves every \
                     listener; give this listener another port",
                    super::edge::INGRESS_STATUS_PORT
                ),
            );
        }
    }
    for listener in app.manifest.listeners.keys() {
        let field = format!("listeners.{listener}");
        if !is_port_name(listener) {
            problem(
                manifest_file(),
                field,
                format!(
                    "'{listener}' names its port in the pod, which Kubernetes limits to \
                     {MAX_PORT_NAME} lowercase letters, digits and '-', with a letter, and no '-' \
                     at either end or twice in a row; rename the listener"
                ),
            );
        } else if listener == GRPC_PORT_NAME {
            problem(
                manifest_file(),
                field,
                format!(
                    "'{GRPC_PORT_NAME}' is the name of the worker's own port in every pod; rename \
                     the listener"
                ),
            );
        } else if app_ok && names.listener(listener).len() > MAX_NAME {
            let name = names.listener(listener);
            problem(
                manifest_file(),
                field,
                format!(
                    "the Service '{name}' would have {} characters, and Kubernetes allows \
                     {MAX_NAME}; shorten the listener's or the app's name",
                    name.len()
                ),
            );
        }
    }

    // An autoscaler on CPU measures use against the pods' CPU request.
    for (group, g) in &app.plan.groups {
        if g.replicas.is_range() && g.resources.cpu.is_none() {
            let (file, field) = match &app.plan_origin {
                PlanOrigin::File(path) => (Some(path.clone()), format!("groups.{group}")),
                _ => (manifest_file(), format!("deploy.groups.{group}")),
            };
            problem(
                file,
                format!("{field}.resources.cpu"),
                format!(
                    "group '{group}' has replicas = {}, which weft kube makes an autoscaler on \
                     CPU, and that measures use against the pods' CPU request; give the group \
                     resources.cpu, such as \"250m\"",
                    g.replicas
                ),
            );
        }
    }

    // The embedded store is a file inside one process. On Kubernetes each
    // replica is a pod of its own, and a rollout runs the next version in
    // other pods beside this one's, so any redb bucket would be split.
    let mut embedded: BTreeMap<String, (crate::capability::Embedded, Vec<&str>)> = BTreeMap::new();
    for (component, spec) in &app.manifest.components {
        for store in crate::capability::embedded_stores(app.manifest, spec) {
            embedded
                .entry(store.field.clone())
                .or_insert_with(|| (store, Vec::new()))
                .1
                .push(component);
        }
    }
    for (field, (store, components)) in embedded {
        problem(
            manifest_file(),
            field,
            format!(
                "{} (granted to {}) is in the embedded {} store, a file that only one process \
                 can hold; on Kubernetes every replica, and the next version during a rollout, \
                 run in pods of their own and would each see another {}. {}",
                store.what,
                components.join(", "),
                store.backend,
                store.kind,
                upper_first(&store.fix)
            ),
        );
    }

    if let Some(ns) = namespace.filter(|ns| !is_dns_label(ns)) {
        problem(
            None,
            "--namespace".into(),
            format!("'{ns}' is not a namespace name, which uses {DNS_LABEL}"),
        );
    }
    for component in app.manifest.components.keys() {
        if !app.digests.get(component).is_some_and(|d| is_sha256(d)) {
            problem(
                manifest_file(),
                format!("components.{component}"),
                "its binary's SHA-256 is missing; it is read when the app is loaded".into(),
            );
        }
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems(problems))
    }
}

/// A DNS-1123 label: at most 63 lowercase letters, digits and '-', starting
/// and ending with a letter or digit.
pub(super) fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// An IANA service name, as a port's name must be: at most 15 lowercase
/// letters, digits and '-', with at least one letter, and no '-' at either
/// end or twice in a row.
pub(super) fn is_port_name(name: &str) -> bool {
    is_dns_label(name)
        && name.len() <= MAX_PORT_NAME
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.contains("--")
}

fn is_sha256(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `, such as 'back-end'`: `name` made into a DNS label, if that works.
fn suggestion(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let fixed = mapped.trim_matches('-');
    if is_dns_label(fixed) && fixed.starts_with(|c: char| c.is_ascii_lowercase()) {
        format!(", such as '{fixed}'")
    } else {
        String::new()
    }
}

/// `text` with its first letter in upper case, to start a sentence.
fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
