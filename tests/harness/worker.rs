//! A `weft worker` started and assigned by the test itself, as a manager
//! would assign it: one group of an app in a process of its own, which the
//! test's process (or another such worker) calls over gRPC. The benchmark
//! times calls into one; tests mix worker processes that differ in one
//! setting, such as `WEFT_VAL_PATH`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_placer::Plan;
use weft_proto::v1::control_client::ControlClient;
use weft_proto::v1::{Assignment, HealthRequest, Route, ServedFunction, ServedRequest};
use weft_runtime::rpc::identity::{Authority, Identity};
use weft_runtime::rpc::{Dialer, Peer};
use weft_runtime::version::Version;

/// How long a worker may take to start and load its group.
const START: Duration = Duration::from_secs(120);

/// A worker process serving one group; killed when dropped.
pub struct AssignedWorker {
    process: Child,
    /// Where it serves `Invoke` and `Control`.
    pub address: String,
    output: Arc<Mutex<String>>,
    /// The manager's dialer, with which the test drives it.
    manager: Dialer,
    /// The version it serves.
    version: Version,
}

/// Which group of which app a worker hosts, and where the rest is served.
#[derive(Clone, Copy)]
pub struct Assign<'a> {
    /// The folder of the app's `weft.toml`.
    pub app: &'a Path,
    /// The plan the version was computed for.
    pub plan: &'a Plan,
    /// The deployment's version, which every call must carry.
    pub version: &'a Version,
    /// The group it hosts.
    pub group: &'a str,
    /// Where other groups' components are served: component, address.
    pub routes: &'a [(&'a str, &'a str)],
    /// The compile cache.
    pub cache: &'a Path,
}

impl AssignedWorker {
    /// Starts `weft worker` (the binary `bin`) with `env` added, hands it
    /// a certificate from `authority` for its group, and assigns it `assign`
    /// as the manager would.
    pub async fn start(
        bin: &Path,
        env: &[(&str, &str)],
        authority: &Authority,
        assign: Assign<'_>,
    ) -> anyhow::Result<AssignedWorker> {
        let app = authority.app();
        let credentials = authority.issue(&Identity::worker(
            app,
            assign.version.as_str(),
            assign.group,
        ))?;
        let manager = Dialer::new(authority.issue(&Identity::manager(app))?);
        let address = crate::free_address().to_string();
        let mut command = Command::new(bin);
        weft_runtime::builder::without_cargo_run_vars(&mut command);
        command
            .args(["worker", "--listen", &address, "--exit-with-stdin"])
            .args(["--name", &format!("{}/0", assign.group)])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut process = command.spawn()?;
        let output = Arc::new(Mutex::new(String::new()));
        crate::collect_lines(process.stdout.take().expect("piped"), &output, None);
        crate::collect_lines(process.stderr.take().expect("piped"), &output, None);
        // A worker reads its credentials from its standard input, and exits
        // when that closes.
        let stdin = process.stdin.as_mut().expect("piped");
        writeln!(stdin, "{}", credentials.to_line())?;
        stdin.flush()?;
        let worker = AssignedWorker {
            process,
            address,
            output,
            manager,
            version: assign.version.clone(),
        };
        let mut control = ControlClient::new(
            worker
                .manager
                .channel(&worker.address, Peer::Worker(assign.version))?,
        );
        let deadline = Instant::now() + START;
        while control.health(HealthRequest {}).await.is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the worker did not start:\n{}",
                worker.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let assigned = control
            .assign(Assignment {
                manifest: assign.app.join("weft.toml").display().to_string(),
                plan: assign.plan.to_toml(),
                version: assign.version.to_string(),
                group: assign.group.into(),
                replica: 0,
                routes: assign
                    .routes
                    .iter()
                    .map(|(component, address)| Route {
                        component: component.to_string(),
                        addresses: vec![address.to_string()],
                    })
                    .collect(),
                store: String::new(),
                blobs: String::new(),
                listeners: vec![],
                cache_dir: assign.cache.display().to_string(),
                accept_shared: false,
                store_file: String::new(),
            })
            .await;
        if let Err(e) = assigned {
            anyhow::bail!(
                "the worker refused its assignment: {e}\n{}",
                worker.output()
            );
        }
        Ok(worker)
    }

    /// How many calls reached each function it serves, by
    /// "component: interface#function".
    pub async fn served(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(served_by(&self.address, &self.manager, &self.version)
            .await?
            .into_iter()
            .map(|(function, f)| (function, f.calls))
            .collect())
    }

    /// The functions it serves on the typed path, by
    /// "component: interface#function".
    pub async fn typed(&self) -> anyhow::Result<BTreeSet<String>> {
        Ok(served_by(&self.address, &self.manager, &self.version)
            .await?
            .into_iter()
            .filter(|(_, f)| f.typed)
            .map(|(function, _)| function)
            .collect())
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

/// The type fingerprint of `function`, exported by `component` of
/// `prepared`, which a call to it must carry.
pub fn fingerprint(
    prepared: &weft_runtime::app::Prepared,
    component: &str,
    function: &str,
) -> String {
    prepared.compiled[component]
        .world
        .exports
        .iter()
        .flat_map(|i| &i.functions)
        .find(|f| f.name == function)
        .and_then(|f| f.fingerprint.clone())
        .unwrap_or_else(|| panic!("{component} exports no function {function}"))
}

/// What the worker at `address` says of each function it serves, by
/// "component: interface#function", asked through `dialer` (the manager's
/// or the CLI's) of a worker of `version`.
pub(crate) async fn served_by(
    address: &str,
    dialer: &Dialer,
    version: &Version,
) -> anyhow::Result<BTreeMap<String, ServedFunction>> {
    let reply = ControlClient::new(dialer.channel(address, Peer::Worker(version))?)
        .served(ServedRequest {})
        .await?;
    Ok(reply
        .into_inner()
        .functions
        .into_iter()
        .map(|f| {
            (
                format!("{}: {}#{}", f.component, f.interface, f.function),
                f,
            )
        })
        .collect())
}

impl Drop for AssignedWorker {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
