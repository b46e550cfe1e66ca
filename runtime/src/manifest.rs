//! The app manifest, `weft.toml`: its schema, parsing and field checks.
//!
//! Parsing is pure: [`Manifest::from_str`] takes the text and the path it
//! came from (used only in error messages), and [`Manifest::from_file`] is a
//! thin reader around it. Paths inside the manifest stay as written; they are
//! relative to the manifest's folder, which [`ManifestFile`] remembers.
//!
//! ```toml
//! [app]
//! name = "hello"
//!
//! [components.frontend]
//! wasm = "../../target/wasm32-wasip2/release/hello_frontend.wasm"
//! build = "cargo build --release --target wasm32-wasip2 -p hello-frontend"
//! call-timeout = "30s"
//! memory-limit = "128MiB"
//! [components.frontend.grants]
//! keyvalue = ["counts"]
//! outgoing-http = ["example.com:443"]
//! env = ["RUST_LOG"]
//! [components.frontend.config]
//! greeting = "Hello"
//!
//! [listeners.web]
//! component = "frontend"
//! address = "127.0.0.1:8080"
//!
//! [links]
//! "frontend/demo:hello/greeter" = "greeter"
//!
//! [keyvalue.counts]
//! backend = "redis"
//! url = "redis://127.0.0.1:6379/0"
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one call into a component may run when the manifest says nothing.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How much linear memory one instance may grow to when the manifest says nothing.
pub const DEFAULT_MEMORY_LIMIT: u64 = 256 << 20;
/// The largest component binary weft reads, unless `wasm-size-limit` says
/// otherwise.
pub const DEFAULT_WASM_SIZE_LIMIT: u64 = 256 << 20;
/// The largest `wasm-size-limit`.
const MAX_WASM_SIZE_LIMIT: u64 = 4 << 30;
/// The largest manifest weft reads.
pub const MANIFEST_SIZE_LIMIT: u64 = 4 << 20;
/// The longest `call-timeout` accepted.
pub const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(3600);
/// The largest `memory-limit` accepted: a 32-bit linear memory's 4GiB.
pub const MAX_MEMORY_LIMIT: u64 = 4 << 30;

/// A parsed `weft.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The `[app]` table.
    pub app: AppSection,
    /// The `[components.NAME]` tables, by name.
    #[serde(default)]
    pub components: BTreeMap<String, ComponentSpec>,
    /// The `[listeners.NAME]` tables, by name.
    #[serde(default)]
    pub listeners: BTreeMap<String, ListenerSpec>,
    /// The `[links]` table: `"COMPONENT/INTERFACE" = "PROVIDER"`.
    #[serde(default)]
    pub links: BTreeMap<String, String>,
    /// The `[keyvalue.BUCKET]` tables: where a bucket's data lives, when not
    /// in the embedded default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keyvalue: BTreeMap<String, BucketSpec>,
    /// The `[blobstore.CONTAINER]` tables: which backend keeps a
    /// container, when not the embedded default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub blobstore: BTreeMap<String, ContainerSpec>,
    /// The `[deploy]` table: the default plan of `weft deploy` and `weft
    /// rollout`, and how the deployment behaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeploySection>,
    /// The `[placement]` table: what every plan of a deployment must
    /// honour (`colocate`, `separate`, `pin`, `max-components-per-group`).
    #[serde(default, skip_serializing_if = "weft_placer::Constraints::is_empty")]
    pub placement: weft_placer::Constraints,
}

/// The `[deploy]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeploySection {
    /// The plan's groups (`[deploy.groups.NAME]`), in plan-file form; none
    /// means the monolith.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, weft_placer::Group>,
    /// Whether a client keeps the version it first got, through a cookie,
    /// for as long as that version serves.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sticky_sessions: bool,
    /// A rollout goes back when the new version's failure rate is this many
    /// percentage points above the old one's...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_failure_points: Option<f64>,
    /// ... over at least this many of the new version's requests or calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_min_requests: Option<u64>,
    /// How long a replica keeps the resources that a caller process holds
    /// handles to, once that process stops renewing them (it died, or was
    /// cut off); 30 s unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle_lease: Option<Timeout>,
    /// How often the manager re-plans from the last minute's counts and
    /// proposes a better plan; a minute unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replan_every: Option<Timeout>,
}

impl DeploySection {
    /// How long lent handles live without a renewal.
    pub fn handle_lease(section: Option<&DeploySection>) -> Duration {
        section
            .and_then(|d| d.handle_lease)
            .map_or(crate::link::handles::LEASE, |t| t.0)
    }

    /// The plan its groups make, if it names any.
    pub fn plan(&self) -> Option<weft_placer::Plan> {
        (!self.groups.is_empty()).then(|| weft_placer::Plan {
            groups: self.groups.clone(),
        })
    }
}

/// One `[keyvalue.BUCKET]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BucketSpec {
    /// Which backend holds the bucket: a name in [`crate::kv::BACKENDS`].
    pub backend: String,
    /// The server, for `redis`: `redis://HOST:PORT/DB` (or `rediss://` for
    /// TLS). It must hold no password: the manifest goes into the version
    /// store, the version hash and Kubernetes' ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For `redis`, instead of `url`: the environment variable that holds
    /// the url, which may hold a password (on Kubernetes, from a Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
}

impl BucketSpec {
    /// The server url of bucket `bucket`: `url`, or the value of `url-env`
    /// in this process's environment.
    pub fn server_url(&self, bucket: &str) -> anyhow::Result<Option<String>> {
        match (&self.url, &self.url_env) {
            (Some(url), _) => Ok(Some(url.clone())),
            (None, Some(var)) => match std::env::var(var) {
                Ok(url) if !url.trim().is_empty() => Ok(Some(url.trim().to_string())),
                _ => anyhow::bail!(
                    "keyvalue.{bucket}.url-env: the environment variable {var} holds no Redis \
                     url; set it (redis://[:PASSWORD@]HOST:PORT/DB) in the environment of every \
                     process that serves the bucket (on Kubernetes, in the Secret that \
                     `weft kube` names)"
                ),
            },
            (None, None) => Ok(None),
        }
    }
}

/// Checks the `url` and `url-env` of store `field` (a bucket) against what
/// its backend `kind` takes: a server backend needs one of them, an
/// embedded one neither, and no url may hold a password.
fn check_store_url(
    field: &str,
    what: &str,
    kind: &crate::kv::BackendKind,
    spec: &BucketSpec,
) -> Result<(), (String, String)> {
    let invalid = |field: String, message: String| (field, message);
    use crate::kv::Location;
    let name = kind.name;
    if let Some(var) = &spec.url_env {
        let valid = !var.is_empty()
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !var.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(invalid(
                format!("{field}.url-env"),
                format!(
                    "'{}' is not an environment variable's name, such as CARTS_REDIS_URL",
                    crate::telemetry::logs::escaped(var)
                ),
            ));
        }
        if spec.url.is_some() || kind.is_embedded() {
            return Err(invalid(
                format!("{field}.url-env"),
                format!(
                    "give a server {what} either url or url-env, and an embedded {what} neither"
                ),
            ));
        }
    }
    if spec.url.as_deref().is_some_and(has_password) {
        return Err(invalid(
            format!("{field}.url"),
            "the url holds a password, which would be kept in the version store and sent \
             in Kubernetes' ConfigMap; put the url in an environment variable and name \
             it with url-env = \"NAME\" instead"
                .into(),
        ));
    }
    match (&kind.location, &spec.url) {
        (Location::Server { example, .. }, None) if spec.url_env.is_none() => Err(invalid(
            format!("{field}.url"),
            format!(
                "a {name} {what} needs the server's url, such as \"{example}\", or url-env = \
                 \"NAME\", the environment variable that holds it"
            ),
        )),
        (
            Location::Server {
                schemes, example, ..
            },
            Some(url),
        ) if !schemes.iter().any(|s| url.starts_with(s)) => Err(invalid(
            format!("{field}.url"),
            format!(
                "'{url}' is not a {name} url; write it as {example} (schemes: {})",
                schemes.join(", ")
            ),
        )),
        (Location::Embedded, Some(_)) => Err(invalid(
            format!("{field}.url"),
            format!(
                "a {name} {what} lives in weft's data directory and takes no url; remove \
                 it, or set backend = \"{}\"",
                crate::kv::BACKENDS
                    .iter()
                    .find(|b| !b.is_embedded())
                    .map_or("", |b| b.name)
            ),
        )),
        _ => Ok(()),
    }
}

/// Whether a Redis url holds a password (`redis://:PASSWORD@HOST` or
/// `redis://USER:PASSWORD@HOST`).
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(user_info, _)| user_info.contains(':'))
}

/// One `[blobstore.CONTAINER]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ContainerSpec {
    /// Which backend keeps the container: a name in [`crate::blob::BACKENDS`].
    pub backend: String,
}

impl Manifest {
    /// The backend that keeps blob container `container`: the default (fs)
    /// unless `[blobstore.CONTAINER]` names another.
    pub fn container_backend(&self, container: &str) -> &'static crate::blob::BackendKind {
        self.blobstore
            .get(container)
            .and_then(|c| crate::blob::backend(&c.backend))
            .unwrap_or(crate::blob::BACKENDS[0])
    }

    /// The backend that holds `bucket`: the default (redb) unless
    /// `[keyvalue.BUCKET]` names another.
    pub fn bucket_backend(&self, bucket: &str) -> &'static crate::kv::BackendKind {
        self.keyvalue
            .get(bucket)
            .and_then(|b| crate::kv::backend(&b.backend))
            .unwrap_or_else(crate::kv::default_backend)
    }
}

/// The `[app]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// The app's name, used in logs and, later, in deployment names.
    pub name: String,
}

/// One `[components.NAME]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ComponentSpec {
    /// The component binary, relative to the manifest's folder.
    pub wasm: PathBuf,
    /// A shell command that builds `wasm`, run in the manifest's folder by `--build`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// What the component may use beyond clocks, random, stdout and stderr.
    #[serde(default)]
    pub grants: Grants,
    /// Values served to the component through `wasi:config/store`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// How long one call into the component may run, such as `"30s"` or `"500ms"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout: Option<Timeout>,
    /// How far one instance's linear memory may grow, such as `"64MiB"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<ByteSize>,
    /// The largest binary `wasm` may be, such as `"512MiB"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_size_limit: Option<ByteSize>,
}

impl ComponentSpec {
    /// The call timeout in force for this component.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout.map_or(DEFAULT_CALL_TIMEOUT, |t| t.0)
    }

    /// The memory limit in force for this component, in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit.map_or(DEFAULT_MEMORY_LIMIT, |m| m.0)
    }

    /// The size limit in force for this component's binary, in bytes.
    pub fn wasm_size_limit(&self) -> u64 {
        self.wasm_size_limit
            .map_or(DEFAULT_WASM_SIZE_LIMIT, |m| m.0)
    }
}

/// A component's `[grants]`: every capability beyond the ambient ones.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    /// Key-value buckets the component may open.
    #[serde(default)]
    pub keyvalue: Vec<String>,
    /// Blob containers it may use (`wasi:blobstore`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobstore: Vec<String>,
    /// `host:port` (or `host`, meaning ports 80 and 443) it may send HTTP requests to.
    #[serde(default)]
    pub outgoing_http: Vec<String>,
    /// Host environment variables passed into the component.
    #[serde(default)]
    pub env: Vec<String>,
}

/// One `[listeners.NAME]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ListenerSpec {
    /// The component that serves it; it must export `wasi:http/incoming-handler`.
    pub component: String,
    /// Where to listen, such as `127.0.0.1:8080`.
    pub address: String,
    /// How long a client may take to send a request's head, such as `"10s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_timeout: Option<Timeout>,
    /// How long a kept-alive connection may sit idle, such as `"60s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Timeout>,
    /// How many connections it keeps open at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

impl ListenerSpec {
    /// The connection limits in force for this listener.
    pub fn limits(&self) -> crate::listener::ConnectionLimits {
        crate::listener::ConnectionLimits::of(
            self.header_timeout.map(|t| t.0),
            self.idle_timeout.map(|t| t.0),
            self.max_connections,
        )
    }
}

/// A manifest together with where it was read from.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    /// The manifest file itself.
    pub path: PathBuf,
    /// The folder that relative paths in the manifest start from.
    pub dir: PathBuf,
    /// What it says.
    pub manifest: Manifest,
}

impl ManifestFile {
    /// Reads `path`, which is either a manifest or a folder holding `weft.toml`.
    pub fn load(path: &Path) -> Result<ManifestFile, ManifestError> {
        let path = if path.is_dir() {
            path.join("weft.toml")
        } else {
            path.to_path_buf()
        };
        let manifest = Manifest::from_file(&path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(ManifestFile {
            path,
            dir,
            manifest,
        })
    }

    /// The absolute-or-relative path of a component's binary.
    pub fn wasm_path(&self, spec: &ComponentSpec) -> PathBuf {
        self.dir.join(&spec.wasm)
    }

    /// The binary of component `name`: a regular file within its size limit.
    pub fn read_wasm(&self, name: &str, spec: &ComponentSpec) -> anyhow::Result<Vec<u8>> {
        let path = self.wasm_path(spec);
        crate::file_input::read_bounded(&path, spec.wasm_size_limit()).map_err(|e| {
            let fix = match e {
                crate::file_input::InputError::Io(_) => {
                    format!("build it first (weft run --build) or fix components.{name}.wasm")
                }
                crate::file_input::InputError::NotRegular(_) => {
                    format!("point components.{name}.wasm at a component's .wasm file")
                }
                crate::file_input::InputError::TooLarge { .. } => format!(
                    "if the binary is right, raise components.{name}.wasm-size-limit, such as \
                     \"512MiB\""
                ),
            };
            anyhow::anyhow!(
                "{}: component '{name}': cannot read {}: {e}; {fix}",
                self.path.display(),
                path.display()
            )
        })
    }
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read at all.
    #[error("cannot read manifest {path}: {source} (pass a weft.toml or a folder that holds one)")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The TOML is malformed or does not fit the schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field has a value that cannot work.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted path of the field, such as `listeners.web.address`.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
}

impl Manifest {
    /// Reads and parses a manifest file.
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        let bytes = crate::file_input::read_bounded(path, MANIFEST_SIZE_LIMIT).map_err(|e| {
            let source = match e {
                crate::file_input::InputError::Io(e) => e,
                other => std::io::Error::new(std::io::ErrorKind::InvalidInput, other),
            };
            ManifestError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|_| ManifestError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"),
        })?;
        Manifest::from_str(&text, path)
    }

    /// Parses manifest text; `origin` names the file in error messages.
    pub fn from_str(text: &str, origin: &Path) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        manifest.check(origin)?;
        Ok(manifest)
    }

    /// The manifest as the version hashes it: what it says about the app,
    /// without where its binaries are or how they are built (the binaries
    /// themselves are hashed apart). Moving or rebuilding identical
    /// binaries, or reformatting the file, keeps the version.
    pub fn canonical(&self) -> Vec<u8> {
        let mut m = self.clone();
        for spec in m.components.values_mut() {
            spec.wasm = PathBuf::new();
            spec.build = None;
        }
        serde_json::to_vec(&m).expect("a manifest serializes")
    }

    /// The manifest as TOML that reads back to the same value.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a manifest serializes")
    }

    /// Checks what the schema alone cannot: names, references and addresses.
    fn check(&self, origin: &Path) -> Result<(), ManifestError> {
        let invalid = |field: String, message: String| ManifestError::Invalid {
            path: origin.to_path_buf(),
            field,
            message,
        };
        if self.app.name.trim().is_empty() {
            return Err(invalid("app.name".into(), "must not be empty".into()));
        }
        if self.components.is_empty() {
            return Err(invalid(
                "components".into(),
                "the app has no components; add a [components.NAME] table with a `wasm` path"
                    .into(),
            ));
        }
        for (name, spec) in &self.components {
            if !is_name(name) {
                return Err(invalid(
                    format!("components.{name}"),
                    "a component name uses lowercase letters, digits and '-', and starts with a letter".into(),
                ));
            }
            for (i, target) in spec.grants.outgoing_http.iter().enumerate() {
                if let Err(message) = HostPattern::parse(target) {
                    return Err(invalid(
                        format!("components.{name}.grants.outgoing-http[{i}]"),
                        message,
                    ));
                }
            }
            if spec
                .call_timeout
                .is_some_and(|t| t.0.is_zero() || t.0 > MAX_CALL_TIMEOUT)
            {
                return Err(invalid(
                    format!("components.{name}.call-timeout"),
                    "must be more than zero and at most \"60m\"".into(),
                ));
            }
            if spec
                .memory_limit
                .is_some_and(|m| m.0 < (1 << 20) || m.0 > MAX_MEMORY_LIMIT)
            {
                return Err(invalid(
                    format!("components.{name}.memory-limit"),
                    "must be at least \"1MiB\" and at most \"4GiB\"".into(),
                ));
            }
            if spec
                .wasm_size_limit
                .is_some_and(|m| m.0 < (1 << 10) || m.0 > MAX_WASM_SIZE_LIMIT)
            {
                return Err(invalid(
                    format!("components.{name}.wasm-size-limit"),
                    "must be at least \"1KiB\" and at most \"4GiB\"".into(),
                ));
            }
            for (field, names) in [
                ("keyvalue", &spec.grants.keyvalue),
                ("env", &spec.grants.env),
            ] {
                if let Some(i) = names.iter().position(|n| n.trim().is_empty()) {
                    return Err(invalid(
                        format!("components.{name}.grants.{field}[{i}]"),
                        "must not be empty".into(),
                    ));
                }
                if let Some(i) = names.iter().position(|n| n.chars().any(char::is_control)) {
                    return Err(invalid(
                        format!("components.{name}.grants.{field}[{i}]"),
                        "must not hold control characters (such as a newline)".into(),
                    ));
                }
            }
        }
        for (name, listener) in &self.listeners {
            if !self.components.contains_key(&listener.component) {
                return Err(invalid(
                    format!("listeners.{name}.component"),
                    format!(
                        "no component is named '{}'; the components are: {}",
                        listener.component,
                        self.component_names()
                    ),
                ));
            }
            let Ok(address) = listener.address.parse::<SocketAddr>() else {
                return Err(invalid(
                    format!("listeners.{name}.address"),
                    format!(
                        "'{}' is not an IP address with a port, such as 127.0.0.1:8080",
                        listener.address
                    ),
                ));
            };
            for (field, timeout) in [
                ("header-timeout", listener.header_timeout),
                ("idle-timeout", listener.idle_timeout),
            ] {
                if timeout.is_some_and(|t| t.0.is_zero() || t.0 > MAX_CALL_TIMEOUT) {
                    return Err(invalid(
                        format!("listeners.{name}.{field}"),
                        "must be more than zero and at most \"60m\"".into(),
                    ));
                }
            }
            if listener.max_connections == Some(0) {
                return Err(invalid(
                    format!("listeners.{name}.max-connections"),
                    "must be at least 1".into(),
                ));
            }
            let twin = self.listeners.iter().find(|(other, l)| {
                *other < name && address.port() != 0 && l.address.parse() == Ok(address)
            });
            if let Some((other, _)) = twin {
                return Err(invalid(
                    format!("listeners.{name}.address"),
                    format!(
                        "listener '{other}' already uses {address}; give each listener its own"
                    ),
                ));
            }
        }
        if let Some(problem) = self.placement.conflicts(self.components.keys()).first() {
            let rules: Vec<String> = problem.rules.iter().map(ToString::to_string).collect();
            return Err(invalid(rules.join(" and "), problem.message.clone()));
        }
        for (key, provider) in &self.links {
            let field = format!("links.\"{key}\"");
            let parts = key.split_once('/').filter(|(c, _)| is_name(c));
            let Some((component, interface)) = parts else {
                return Err(invalid(
                    field,
                    "a link key is \"COMPONENT/INTERFACE\", such as \"frontend/demo:hello/greeter\""
                        .into(),
                ));
            };
            for (role, name) in [("importing", component), ("providing", provider.as_str())] {
                if !self.components.contains_key(name) {
                    return Err(invalid(
                        field.clone(),
                        format!(
                            "the {role} component '{name}' is not in [components]; the components are: {}",
                            self.component_names()
                        ),
                    ));
                }
            }
            if !interface.contains(':') {
                return Err(invalid(
                    field,
                    format!("'{interface}' is not an interface name such as demo:hello/greeter"),
                ));
            }
        }
        for (bucket, spec) in &self.keyvalue {
            let field = format!("keyvalue.{bucket}");
            if bucket.trim().is_empty() || bucket.chars().any(char::is_control) {
                return Err(invalid(
                    format!("keyvalue.{bucket:?}"),
                    "a bucket's name must not be empty or hold control characters".into(),
                ));
            }
            let Some(kind) = crate::kv::backend(&spec.backend) else {
                return Err(invalid(
                    format!("{field}.backend"),
                    format!(
                        "weft has no key-value backend '{}'; use one of: {}",
                        crate::telemetry::logs::escaped(&spec.backend),
                        crate::kv::backend_names()
                    ),
                ));
            };
            check_store_url(&field, "bucket", kind, spec).map_err(|(f, m)| invalid(f, m))?;
        }
        for (container, spec) in &self.blobstore {
            if let Err(e) = crate::blob::check_name("a container", container) {
                return Err(invalid(format!("blobstore.{container:?}"), e));
            }
            if crate::blob::backend(&spec.backend).is_none() {
                return Err(invalid(
                    format!("blobstore.{container}.backend"),
                    format!(
                        "weft has no blob backend '{}'; use one of: {}",
                        crate::telemetry::logs::escaped(&spec.backend),
                        crate::blob::backend_names()
                    ),
                ));
            }
        }
        if let Some(plan) = self.deploy.as_ref().and_then(DeploySection::plan) {
            plan.check(self.components.keys())
                .map_err(|e| invalid("deploy".into(), e.to_string()))?;
        }
        if let Some(lease) = self.deploy.as_ref().and_then(|d| d.handle_lease)
            && !(Duration::from_millis(300)..=MAX_CALL_TIMEOUT).contains(&lease.0)
        {
            return Err(invalid(
                "deploy.handle-lease".into(),
                format!(
                    "{:?} is out of range; give at least \"300ms\" and at most \"60m\", such as \"30s\"",
                    lease.0
                ),
            ));
        }
        if let Some(every) = self.deploy.as_ref().and_then(|d| d.replan_every)
            && !(Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&every.0)
        {
            return Err(invalid(
                "deploy.replan-every".into(),
                format!(
                    "{:?} is out of range; give at least \"1s\" and at most \"24h\", such as \"60s\"",
                    every.0
                ),
            ));
        }
        if let Some(points) = self.deploy.as_ref().and_then(|d| d.rollback_failure_points)
            && !(points > 0.0 && points <= 100.0)
        {
            return Err(invalid(
                "deploy.rollback-failure-points".into(),
                format!(
                    "{points} is out of range; give more than 0 and at most 100 percentage points, such as 1"
                ),
            ));
        }
        Ok(())
    }

    fn component_names(&self) -> String {
        self.components
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The provider named by `[links]` for `component`'s import of
    /// `interface`. A key written without a version matches any version.
    pub fn link_for(&self, component: &str, interface: &str) -> Option<&str> {
        self.links.iter().find_map(|(key, provider)| {
            let (c, i) = key.split_once('/')?;
            (c == component && names_interface(i, interface)).then_some(provider.as_str())
        })
    }
}

/// Whether `written` (from a manifest, with or without a version) names the
/// interface `full` (as a component spells it, usually with a version). A
/// package without an interface (`wasi:keyvalue`) names every interface in
/// it, so that one `[links]` line gives a whole WASI API to a component.
pub fn names_interface(written: &str, full: &str) -> bool {
    let name = unversioned(full);
    written == full
        || written == name
        || (!written.contains('/')
            && name
                .strip_prefix(written)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// `wasi:http/types@0.2.4` without its `@0.2.4`.
pub fn unversioned(interface: &str) -> &str {
    interface
        .split_once('@')
        .map_or(interface, |(name, _)| name)
}

fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// One entry of `grants.outgoing-http`: a host, and a port or any of 80/443.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// The host name or address, lowercase.
    pub host: String,
    /// The one port allowed; `None` allows 80 and 443.
    pub port: Option<u16>,
}

impl HostPattern {
    /// Parses `host` or `host:port`.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let bad = || format!("'{text}' is not HOST or HOST:PORT, such as example.com:443");
        if text.is_empty() || text.contains('/') || text.contains(' ') {
            return Err(bad());
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() => Ok(HostPattern {
                host: host.to_ascii_lowercase(),
                port: Some(port.parse().map_err(|_| bad())?),
            }),
            Some(_) => Err(bad()),
            None => Ok(HostPattern {
                host: text.to_ascii_lowercase(),
                port: None,
            }),
        }
    }

    /// Whether a request to `host` on `port` is allowed by this pattern.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.host.eq_ignore_ascii_case(host)
            && match self.port {
                Some(p) => p == port,
                None => port == 80 || port == 443,
            }
    }
}

/// A duration written as `"500ms"`, `"30s"` or `"2m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Duration);

impl Timeout {
    /// Parses `"500ms"`, `"30s"` or `"2m"`.
    pub fn parse(text: &str) -> Result<Timeout, String> {
        let (digits, unit) = split_number(text);
        let n: u64 = digits.parse().map_err(|_| {
            format!("'{text}' is not a duration such as \"500ms\", \"30s\" or \"2m\"")
        })?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(
                n.checked_mul(60)
                    .ok_or_else(|| format!("'{text}' is too long"))?,
            ),
            _ => {
                return Err(format!(
                    "'{text}' has no known unit; write \"500ms\", \"30s\" or \"2m\""
                ));
            }
        };
        Ok(Timeout(d))
    }
}

/// A size written as `"512KiB"`, `"64MiB"` or `"1GiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"512KiB"`, `"64MiB"` or `"1GiB"`.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let (digits, unit) = split_number(text);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("'{text}' is not a size such as \"64MiB\""))?;
        let shift = match unit {
            "KiB" => 10,
            "MiB" => 20,
            "GiB" => 30,
            _ => {
                return Err(format!(
                    "'{text}' has no known unit; write \"512KiB\", \"64MiB\" or \"1GiB\""
                ));
            }
        };
        n.checked_mul(1 << shift)
            .map(ByteSize)
            .ok_or_else(|| format!("'{text}' is too large"))
    }
}

fn split_number(text: &str) -> (&str, &str) {
    let text = text.trim();
    let at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(at)
}

/// Deserializes a value from a string through its `parse` function.
macro_rules! from_string {
    ($ty:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                <$ty>::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
from_string!(Timeout);
from_string!(ByteSize);

impl Serialize for Timeout {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}ms", self.0.as_millis()))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (n, unit) = match self.0 {
            b if b % (1 << 30) == 0 => (b >> 30, "GiB"),
            b if b % (1 << 20) == 0 => (b >> 20, "MiB"),
            b => (b >> 10, "KiB"),
        };
        s.collect_str(&format_args!("{n}{unit}"))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::from_str(text, Path::new("weft.toml")).map_err(|e| e.to_string())
    }

    const MINIMAL: &str = "[app]\nname = \"a\"\n[components.c]\nwasm = \"c.wasm\"\n";

    #[test]
    fn minimal_manifest_gets_defaults() {
        let m = parse(MINIMAL).unwrap();
        let c = &m.components["c"];
        assert_eq!(c.call_timeout(), DEFAULT_CALL_TIMEOUT);
        assert_eq!(c.memory_limit(), DEFAULT_MEMORY_LIMIT);
        assert!(c.grants.keyvalue.is_empty());
    }

    #[test]
    fn unknown_field_is_named() {
        let err = parse(&format!("{MINIMAL}colour = \"red\"\n")).unwrap_err();
        assert!(err.contains("unknown field `colour`"), "{err}");
        assert!(err.starts_with("weft.toml: "), "{err}");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(
            Timeout::parse("250ms").unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(Timeout::parse("2m").unwrap().0, Duration::from_secs(120));
        assert!(Timeout::parse("2h").unwrap_err().contains("no known unit"));
        assert!(Timeout::parse("soon").is_err());
        assert_eq!(ByteSize::parse("64MiB").unwrap().0, 64 << 20);
        assert!(ByteSize::parse("64MB").is_err());
    }

    #[test]
    fn host_patterns() {
        let exact = HostPattern::parse("Example.com:8443").unwrap();
        assert!(exact.allows("example.com", 8443));
        assert!(!exact.allows("example.com", 443));
        let any = HostPattern::parse("example.com").unwrap();
        assert!(any.allows("example.com", 443) && any.allows("example.com", 80));
        assert!(!any.allows("evil.com", 443));
        assert!(HostPattern::parse("http://example.com").is_err());
        assert!(HostPattern::parse(":80").is_err());
    }

    #[test]
    fn links_match_with_or_without_version() {
        let m = parse(&format!(
            "{MINIMAL}[components.d]\nwasm = \"d.wasm\"\n[links]\n\"c/demo:x/y\" = \"d\"\n"
        ))
        .unwrap();
        assert_eq!(m.link_for("c", "demo:x/y@0.1.0"), Some("d"));
        assert_eq!(m.link_for("c", "demo:x/z"), None);
        assert_eq!(m.link_for("d", "demo:x/y"), None);
    }

    #[test]
    fn a_package_link_names_each_of_its_interfaces() {
        assert!(names_interface(
            "wasi:keyvalue",
            "wasi:keyvalue/store@0.2.0-draft"
        ));
        assert!(names_interface("wasi:keyvalue", "wasi:keyvalue/atomics"));
        assert!(!names_interface("wasi:keyvalue", "wasi:keyvaluex/store"));
        assert!(!names_interface("wasi:key", "wasi:keyvalue/store"));
        assert!(!names_interface(
            "wasi:keyvalue/store",
            "wasi:keyvalue/atomics"
        ));
    }

    #[test]
    fn blob_containers_are_embedded_stores_with_their_grant() {
        let m = parse(&format!(
            "{MINIMAL}[components.d]\nwasm = \"d.wasm\"\n[components.d.grants]\n\
             blobstore = [\"photos\"]\n[blobstore.photos]\nbackend = \"fs\"\n"
        ))
        .unwrap();
        let stores = crate::capability::embedded_stores(&m, &m.components["d"]);
        let fields: Vec<&str> = stores.iter().map(|s| s.field.as_str()).collect();
        assert_eq!(fields, ["blobstore.photos"]);
        let bad = parse(&format!("{MINIMAL}[blobstore.photos]\nbackend = \"s3\"\n"));
        let err = bad.unwrap_err().to_string();
        assert!(
            err.contains("blobstore.photos.backend: weft has no blob backend 's3'"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod placement_tests {
    use super::*;

    const TWO: &str = "[app]\nname = \"a\"\n[components.a]\nwasm = \"a.wasm\"\n\
                       [components.b]\nwasm = \"b.wasm\"\n";

    #[test]
    fn clashing_placement_constraints_are_refused_naming_both() {
        let text =
            format!("{TWO}[placement]\ncolocate = [[\"a\", \"b\"]]\nseparate = [[\"a\", \"b\"]]\n");
        let err = Manifest::from_str(&text, Path::new("weft.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "weft.toml: placement.colocate[0] and placement.separate[0]: 'a' and 'b' must share \
             a process and must not; drop one of these constraints"
        );
    }

    #[test]
    fn placement_constraints_are_in_the_version_only_when_given() {
        let text = format!("{TWO}[placement]\nseparate = [[\"a\", \"b\"]]\n");
        let manifest = Manifest::from_str(&text, Path::new("weft.toml")).unwrap();
        assert_eq!(manifest.placement.separate, [["a", "b"]]);
        let text = |m: &Manifest| String::from_utf8(m.canonical().to_vec()).unwrap();
        assert!(text(&manifest).contains("\"placement\""));
        let plain = Manifest::from_str(TWO, Path::new("weft.toml")).unwrap();
        assert!(!text(&plain).contains("placement"));
    }
}
