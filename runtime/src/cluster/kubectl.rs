//! `kubectl`, as `weft rollout --kube` and `weft rollback --kube` use it:
//! with the user's own context, credentials and namespace, and nothing of
//! the cluster's API that kubectl does not already speak.
//!
//! The few commands weft runs:
//!
//! | what | command |
//! |---|---|
//! | apply objects | `kubectl apply -f -` |
//! | read objects | `kubectl get KIND [NAME] [-l SELECTOR] -o json --ignore-not-found` |
//! | delete objects | `kubectl delete KINDS -l SELECTOR --ignore-not-found` |
//! | ask the ingress | `kubectl get --raw /api/v1/namespaces/NS/services/http:A-ingress:status/proxy/traffic` |
//! | the current namespace | `kubectl config view --minify -o jsonpath={..namespace}` |

use anyhow::Context as _;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::AsyncWriteExt as _;

/// How long one kubectl command may take.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The kubectl that weft runs.
#[derive(Debug, Clone)]
pub struct Kubectl {
    /// The program: `--kubectl`, else `$WEFT_KUBECTL`, else `kubectl`.
    pub program: PathBuf,
    /// The namespace (`-n`), if one was given.
    pub namespace: Option<String>,
}

impl Kubectl {
    /// `program` (else `$WEFT_KUBECTL`, else `kubectl`) in `namespace`.
    pub fn new(program: Option<PathBuf>, namespace: Option<String>) -> Kubectl {
        let program = program
            .or_else(|| std::env::var_os("WEFT_KUBECTL").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("kubectl"));
        Kubectl { program, namespace }
    }

    /// Runs `kubectl [-n NS] ARGS`, with `input` on its standard input, and
    /// returns what it printed; a failure says what kubectl said.
    pub async fn run(&self, args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
        let mut command = tokio::process::Command::new(&self.program);
        if let Some(ns) = &self.namespace {
            command.args(["-n", ns]);
        }
        command
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let shown = format!("{} {}", self.program.display(), args.join(" "));
        let mut child = command.spawn().with_context(|| {
            format!(
                "cannot run {}; install kubectl, or name it with --kubectl (or $WEFT_KUBECTL)",
                self.program.display()
            )
        })?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(text.as_bytes())
                .await
                .with_context(|| format!("{shown}: cannot write its input"))?;
        }
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| {
                format!(
                    "{shown} did not finish within {} s",
                    COMMAND_TIMEOUT.as_secs()
                )
            })?
            .with_context(|| format!("{shown} failed to run"))?;
        if !out.status.success() {
            anyhow::bail!(
                "{shown} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8(out.stdout).with_context(|| format!("{shown} printed no text"))
    }

    /// `kubectl apply -f -` of a YAML stream.
    pub async fn apply(&self, yaml: &str) -> anyhow::Result<()> {
        self.run(&["apply", "-f", "-"], Some(yaml)).await.map(drop)
    }

    /// Object `name` of `kind`, if it exists.
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        name: &str,
    ) -> anyhow::Result<Option<T>> {
        let text = self
            .run(
                &["get", kind, name, "-o", "json", "--ignore-not-found"],
                None,
            )
            .await?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("kubectl get {kind} {name}: not the object weft expected"))
    }

    /// Every object of `kind` that `selector` picks.
    pub async fn list<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        selector: &str,
    ) -> anyhow::Result<Vec<T>> {
        #[derive(serde::Deserialize)]
        struct List<T> {
            items: Vec<T>,
        }
        let text = self
            .run(&["get", kind, "-l", selector, "-o", "json"], None)
            .await?;
        let list: List<T> = serde_json::from_str(&text)
            .with_context(|| format!("kubectl get {kind} -l {selector}: not a list of objects"))?;
        Ok(list.items)
    }

    /// Deletes every object of `kinds` (comma-separated) that `selector` picks.
    pub async fn delete(&self, kinds: &str, selector: &str) -> anyhow::Result<()> {
        self.run(
            &[
                "delete",
                kinds,
                "-l",
                selector,
                "--ignore-not-found",
                "--wait=false",
            ],
            None,
        )
        .await
        .map(drop)
    }

    /// Deletes object `name` of `kind`.
    pub async fn delete_named(&self, kind: &str, name: &str) -> anyhow::Result<()> {
        self.run(
            &["delete", kind, name, "--ignore-not-found", "--wait=false"],
            None,
        )
        .await
        .map(drop)
    }

    /// `GET path` of the API server, such as a service proxy's.
    pub async fn raw(&self, path: &str) -> anyhow::Result<String> {
        self.run(&["get", "--raw", path], None).await
    }

    /// The namespace commands act in: `-n`, else the context's, else `default`.
    pub async fn namespace(&self) -> anyhow::Result<String> {
        if let Some(ns) = &self.namespace {
            return Ok(ns.clone());
        }
        let current = self
            .run(
                &["config", "view", "--minify", "-o", "jsonpath={..namespace}"],
                None,
            )
            .await?;
        Ok(match current.trim() {
            "" => "default".to_string(),
            ns => ns.to_string(),
        })
    }
}
