//! The harness of weft's integration tests: it builds the `weft` binary and
//! the guest components once, runs an app as a child process, and talks HTTP
//! to its listeners.
//!
//! Like Service Weaver's `weavertest` runners, [`Mode`] runs one test body
//! three ways: `weft run` (one process), `weft deploy --plan monolith` (one
//! worker behind a manager) and `weft deploy --plan split` (a worker per
//! component, every cross-component call over gRPC). [`each_mode`] runs a
//! body in all three.
//!
//! Tests read like the README: build, run, curl, compare.
//!
//! ```no_run
//! let app = weft_tests::Weft::run(&["samples/hello"]);
//! let (status, body) = weft_tests::http_get(&app.url("web", "/?name=Ada"));
//! assert_eq!((status, body.as_str()), (200, "en: Hello, Ada!\n"));
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

mod boutique;
pub mod browser;
mod cluster;
mod http;
pub mod metrics;
pub mod otlp;
mod python;
mod redis;
pub mod security;
mod worker;
pub use boutique::{Shopper, boutique_app, checkout_form};
pub use cluster::{Cluster, NAMESPACE, NODES, PodInfo, Shared};
pub use http::{Connection, Reply, http_get, parse_response};
pub use python::{COMPONENTIZE_PY, KUBERNETES_VALIDATE, PYTHON_GUESTS, kubernetes_validate};
pub use redis::{RedisServer, kvcounter_on_redis};
pub use worker::{Assign, AssignedWorker, fingerprint};

/// Every Rust guest the tests use, by cargo package name; the Python ones
/// are in [`PYTHON_GUESTS`].
pub const GUESTS: &[&str] = &[
    "hello-frontend",
    "hello-greeter",
    "kvcounter-http",
    "kvcounter-counter",
    "fixture-faulty",
    "fixture-bench-callee",
    "fixture-bench-caller",
    "fixture-ping",
    "fixture-values-callee",
    "fixture-values-caller",
    "fixture-shop-front",
    "fixture-shop-cart",
    "fixture-shop-pricing",
    "fixture-shop-pricing-next",
    "fixture-refused-clerk",
    "fixture-refused-streamer",
    "fixture-bad-greeter",
    "fixture-counters-keeper",
    "fixture-counters-front",
    "fixture-kvstore",
    "fixture-blobs",
    "fixture-flow-front",
    "fixture-flow-worker",
    "boutique-frontend",
    "boutique-frontend-async",
    "boutique-productcatalog",
    "boutique-currency",
    "boutique-cart",
    "boutique-shipping",
    "boutique-payment",
    "boutique-email",
    "boutique-checkout",
    "boutique-ad",
];

/// `samples/hello`'s components in an app of their own (for [`app_dir`]),
/// so that tests may deploy it beside the sample.
pub const HELLO_APP: &str = "[app]\nname = \"hello\"\n\
     [components.frontend]\nwasm = \"{wasm:hello_frontend}\"\n\
     [components.greeter]\nwasm = \"{wasm:hello_greeter}\"\n\
     [listeners.web]\ncomponent = \"frontend\"\naddress = \"127.0.0.1:0\"\n";

/// `samples/kvcounter` (for [`app_dir`]) with its counter's memory limit
/// `limit`: another limit makes another version of the same app.
pub fn kvcounter_with_limit(limit: &str) -> String {
    format!(
        "[app]\nname = \"kvcounter\"\n\
         [components.http]\nwasm = \"{{wasm:kvcounter_http}}\"\n\
         [components.counter]\nwasm = \"{{wasm:kvcounter_counter}}\"\nmemory-limit = \"{limit}\"\n\
         [components.counter.grants]\nkeyvalue = [\"counts\"]\n\
         [listeners.web]\ncomponent = \"http\"\naddress = \"127.0.0.1:0\"\n"
    )
}

/// The value fixtures: a front whose routes call `values` with fixed
/// arguments, one of which traps (`/trap`).
pub const VALUES_APP: &str = "[app]\nname = \"values\"\n\
     [components.front]\nwasm = \"{wasm:fixture_values_caller}\"\n\
     [components.values]\nwasm = \"{wasm:fixture_values_callee}\"\n\
     [listeners.web]\ncomponent = \"front\"\naddress = \"127.0.0.1:0\"\n";

/// The resource fixtures: a front that drives `counters` through handles
/// to the `counter` resource that `keeper` exports.
pub const COUNTERS_APP: &str = "[app]\nname = \"counters\"\n\
     [components.front]\nwasm = \"{wasm:fixture_counters_front}\"\n\
     [components.keeper]\nwasm = \"{wasm:fixture_counters_keeper}\"\n\
     [listeners.web]\ncomponent = \"front\"\naddress = \"127.0.0.1:0\"\n";

/// The WASI 0.3 fixtures: a `wasi:http@0.3` front that calls a worker's
/// async functions (streams, futures, concurrent calls) and the hello
/// sample's greeter, a WASI 0.2 component.
pub const FLOW_APP: &str = "[app]\nname = \"flow\"\n\
     [components.front]\nwasm = \"{wasm:fixture_flow_front}\"\n\
     [components.worker]\nwasm = \"{wasm:fixture_flow_worker}\"\n\
     [components.worker.grants]\nkeyvalue = [\"flow\"]\n\
     [components.greeter]\nwasm = \"{wasm:hello_greeter}\"\n\
     [components.greeter.config]\ngreeting = \"Hello\"\n\
     [listeners.web]\ncomponent = \"front\"\naddress = \"127.0.0.1:0\"\n";

/// How long an app may take to come up (a cold compile included).
const STARTUP: Duration = Duration::from_secs(180);

/// The dialer of weft's commands for the app deployed from `dir` by
/// `weft deploy` (`.weft/cli`).
pub fn cli_dialer(dir: &Path) -> weft_runtime::rpc::Dialer {
    credentials_in(&dir.join(".weft").join("cli"))
}

/// The dialer of weft's commands for the app's pods, as `weft kube
/// --secret` wrote it (`.weft/kube/cli`).
pub fn kube_cli_dialer(dir: &Path) -> weft_runtime::rpc::Dialer {
    credentials_in(&dir.join(".weft").join("kube").join("cli"))
}

fn credentials_in(dir: &Path) -> weft_runtime::rpc::Dialer {
    let credentials =
        weft_runtime::rpc::identity::Credentials::read_dir(dir).unwrap_or_else(|e| panic!("{e:#}"));
    weft_runtime::rpc::Dialer::new(credentials)
}

/// Copies folder `from` (files and folders) to `to`.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// A loopback address with a port that is free now.
pub fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// A command without the variables cargo set for this test process: a
/// nested cargo that inherited them would rebuild crates whose build scripts
/// read them, and the outer run would then rebuild them again.
fn scrubbed(mut command: Command) -> Command {
    weft_runtime::builder::without_cargo_run_vars(&mut command);
    command
}

/// Runs `cargo ARGS...` in the repository root and checks that it succeeded.
pub fn cargo(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = scrubbed(Command::new(cargo))
        .args(args)
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo {} failed", args.join(" "));
}

/// Where cargo puts what it builds: `$CARGO_TARGET_DIR`, else `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// The `weft` binary, with every guest built; built on first use.
pub fn weft_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut args = vec!["build", "--release", "--target", "wasm32-wasip2"];
        for guest in GUESTS {
            args.extend(["-p", guest]);
        }
        cargo(&args);
        python::build_all();
        cargo(&["build", "-p", "weft-runtime", "--bin", "weft"]);
        target_dir().join("debug").join("weft")
    })
}

/// The path of a built guest, such as `wasm("hello_greeter")`.
pub fn wasm(file_stem: &str) -> PathBuf {
    weft_bin();
    target_dir()
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{file_stem}.wasm"))
}

/// The compile cache the tests share, so that each component compiles once.
pub fn shared_cache() -> PathBuf {
    target_dir().join("weft-test-cache")
}

/// A folder holding a `weft.toml`; `{wasm:NAME}` in the text becomes the
/// path of guest NAME.
pub fn app_dir(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = manifest.to_string();
    while let Some(start) = text.find("{wasm:") {
        let end = start + text[start..].find('}').expect("closing brace");
        let path = wasm(&text[start + 6..end]);
        text.replace_range(start..=end, &path.display().to_string());
    }
    std::fs::write(dir.path().join("weft.toml"), text).expect("write manifest");
    dir
}

/// How a test runs an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `weft run`: everything in one process.
    Run,
    /// `weft deploy --plan monolith`: every component in one worker.
    Monolith,
    /// `weft deploy --plan split`: one worker per component.
    Split,
}

impl Mode {
    /// Every mode, in the order [`each_mode`] runs them.
    pub const ALL: [Mode; 3] = [Mode::Run, Mode::Monolith, Mode::Split];

    /// The `weft` arguments that start an app this way.
    pub fn command(self) -> &'static [&'static str] {
        match self {
            Mode::Run => &["run"],
            Mode::Monolith => &["deploy", "--plan", "monolith"],
            Mode::Split => &["deploy", "--plan", "split"],
        }
    }
}

/// Runs `body` once in every [`Mode`]; a failure's output says which.
pub fn each_mode(mut body: impl FnMut(Mode)) {
    for mode in Mode::ALL {
        eprintln!("--- mode {mode:?}");
        body(mode);
    }
}

/// A running `weft run` or `weft deploy`.
pub struct Weft {
    child: Child,
    output: Arc<Mutex<String>>,
    /// Listener addresses, by listener name.
    pub listeners: BTreeMap<String, SocketAddr>,
    /// Declared after `child`, so that it is let go once weft has exited.
    _claim: Option<AppClaim>,
}

/// The tests' turn at deploying one app. weft allows one manager per app,
/// and tests run in parallel, so tests that deploy the same app (a sample)
/// take turns; each holds its claim until its weft has exited.
struct AppClaim(PathBuf);

static CLAIMED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static RELEASED: std::sync::Condvar = std::sync::Condvar::new();

impl AppClaim {
    fn take(app: &Path) -> AppClaim {
        let app = std::fs::canonicalize(root().join(app)).unwrap_or_else(|_| app.to_path_buf());
        let mut claimed = CLAIMED.lock().unwrap();
        while claimed.contains(&app) {
            claimed = RELEASED.wait(claimed).unwrap();
        }
        claimed.push(app.clone());
        AppClaim(app)
    }
}

impl Drop for AppClaim {
    fn drop(&mut self) {
        CLAIMED.lock().unwrap().retain(|a| a != &self.0);
        RELEASED.notify_all();
    }
}

impl Weft {
    /// Starts `weft run ARGS...` with every listener on a free port, and
    /// waits until it serves.
    pub fn run(args: &[&str]) -> Weft {
        Weft::run_with_env(args, &[])
    }

    /// Starts the app in `args` in `mode`, and waits until it serves.
    pub fn start(mode: Mode, args: &[&str]) -> Weft {
        Weft::spawn(mode.command(), args, &[])
    }

    /// Like [`Weft::start`], with extra environment variables.
    pub fn start_with_env(mode: Mode, args: &[&str], env: &[(&str, &str)]) -> Weft {
        Weft::spawn(mode.command(), args, env)
    }

    /// Starts `weft deploy --plan PLAN ARGS...`, where PLAN is a built-in
    /// plan's name or a plan file.
    pub fn deploy(plan: &str, args: &[&str]) -> Weft {
        Weft::spawn(&["deploy", "--plan", plan], args, &[])
    }

    /// Starts `weft deploy ARGS...` with the manifest's own plan.
    pub fn deploy_default(args: &[&str]) -> Weft {
        Weft::spawn(&["deploy"], args, &[])
    }

    /// Like [`Weft::run`], with extra environment variables.
    pub fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Weft {
        Weft::spawn(&["run"], args, env)
    }

    /// Starts `weft COMMAND... ARGS...` and waits until it serves.
    pub fn spawn(command_args: &[&str], args: &[&str], env: &[(&str, &str)]) -> Weft {
        Weft::spawn_binary(weft_bin(), command_args, args, env)
    }

    /// Like [`Weft::spawn`], with the `weft` binary at `bin` (the benchmark
    /// runs a release build).
    pub fn spawn_binary(
        bin: &Path,
        command_args: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Weft {
        Weft::spawn_waiting(bin, command_args, args, env, "is running")
    }

    /// Starts `weft ARGS...` and waits until it prints a line holding
    /// `ready` (a worker started by hand says "serving group").
    pub fn spawn_until(args: &[&str], ready: &str) -> Weft {
        Weft::spawn_waiting(weft_bin(), args, &[], &[], ready)
    }

    fn spawn_waiting(
        bin: &Path,
        command_args: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        ready: &str,
    ) -> Weft {
        let claim = (command_args.first() == Some(&"deploy"))
            .then(|| args.iter().find(|a| !a.starts_with('-')))
            .flatten()
            .map(|app| AppClaim::take(Path::new(app)));
        let mut command = scrubbed(Command::new(bin));
        command
            .args(command_args)
            .args(args)
            .current_dir(root())
            .env("WEFT_CACHE_DIR", shared_cache())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A process group of its own, as a shell gives a foreground job, so
        // that `interrupt` can signal it like a terminal's Ctrl-C.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().expect("weft starts");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        collect_lines(child.stderr.take().expect("piped stderr"), &output, None);
        collect_lines(
            child.stdout.take().expect("piped stdout"),
            &output,
            Some(tx),
        );
        let mut listeners = BTreeMap::new();
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(ready) => break,
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("weft: listener ") {
                        let mut words = rest.split_whitespace();
                        let name = words.next().unwrap().to_string();
                        let url = words.nth(1).unwrap();
                        let addr = url.trim_start_matches("http://").parse().unwrap();
                        listeners.insert(name, addr);
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    std::thread::sleep(Duration::from_millis(200));
                    panic!(
                        "weft {} {} did not come up:\n{}",
                        command_args.join(" "),
                        args.join(" "),
                        output.lock().unwrap()
                    );
                }
            }
        }
        Weft {
            child,
            output,
            listeners,
            _claim: claim,
        }
    }

    /// `http://ADDR/PATH` of listener `name`.
    pub fn url(&self, name: &str, path: &str) -> String {
        format!("http://{}{path}", self.listeners[name])
    }

    /// The process id of weft (the manager, under `weft deploy`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything weft printed so far, stdout and stderr.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits up to 10 s for weft to print `needle`, and returns everything it
    /// printed; output arrives through pipes, a little after the fact.
    pub fn wait_for_output(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let output = self.output();
            if output.contains(needle) || Instant::now() > deadline {
                return output;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops weft with SIGTERM and returns how it exited and everything it
    /// printed.
    pub fn stop(self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        self.signal_and_wait(&["-TERM", &pid])
    }

    /// Stops weft as a terminal's Ctrl-C does: SIGINT to its whole process
    /// group, workers included.
    pub fn interrupt(self) -> (ExitStatus, String) {
        let group = format!("-{}", self.child.id());
        self.signal_and_wait(&["-INT", "--", &group])
    }

    fn signal_and_wait(mut self, kill_args: &[&str]) -> (ExitStatus, String) {
        Command::new("kill")
            .args(kill_args)
            .status()
            .expect("kill (from procps) runs");
        let deadline = Instant::now() + Duration::from_secs(40);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "weft did not stop within 40s of SIGTERM:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Let the reader threads drain the pipes.
        std::thread::sleep(Duration::from_millis(100));
        (status, self.output())
    }
}

impl Drop for Weft {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many calls from other processes each worker of the deployment whose
/// manifest is in `dir` has run, by `"WORKER COMPONENT: INTERFACE#FUNCTION"`
/// (`Control.Served`); the proof that a call crossed a process.
pub fn served_calls(dir: &Path) -> BTreeMap<String, u64> {
    use weft_runtime::deploy::state::DeployState;
    let path = DeployState::path(dir);
    let state =
        DeployState::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let dialer = cli_dialer(dir);
    let mut served = BTreeMap::new();
    for worker in state.workers {
        for (function, calls) in served_at(&worker.address, &dialer, &worker.version) {
            served.insert(format!("{} {function}", worker.name), calls);
        }
    }
    served
}

/// How many calls from other processes the worker of `version` at
/// `address` has run, by `"COMPONENT: INTERFACE#FUNCTION"`
/// (`Control.Served`), asked through `dialer`.
pub fn served_at(
    address: &str,
    dialer: &weft_runtime::rpc::Dialer,
    version: &str,
) -> BTreeMap<String, u64> {
    let version = weft_runtime::version::Version::parse(version).expect("a version");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime
        .block_on(worker::served_by(address, dialer, &version))
        .unwrap_or_else(|e| panic!("worker at {address}: Served failed: {e}"))
        .into_iter()
        .map(|(function, f)| (function, f.calls))
        .collect()
}

/// How the worker at `address` (of `version`) loaded each component, by
/// component: `image`, `cache`, `compiled` or `compiled-over-image`, with
/// how long it took (`Control.Health`).
pub fn loads_at(
    address: &str,
    dialer: &weft_runtime::rpc::Dialer,
    version: &str,
) -> BTreeMap<String, (String, Duration)> {
    use weft_proto::v1::HealthRequest;
    use weft_proto::v1::control_client::ControlClient;
    let version = weft_runtime::version::Version::parse(version).expect("a version");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let reply = runtime
        .block_on(async {
            let channel = dialer.channel(address, weft_runtime::rpc::Peer::Worker(&version))?;
            let reply = ControlClient::new(channel).health(HealthRequest {}).await?;
            Ok::<_, anyhow::Error>(reply.into_inner())
        })
        .unwrap_or_else(|e| panic!("worker at {address}: Health failed: {e:#}"));
    reply
        .loads
        .into_iter()
        .map(|l| (l.component, (l.source, Duration::from_micros(l.micros))))
        .collect()
}

/// Appends every line `from` prints to `sink` (and sends it to `lines`) on a
/// thread of its own.
fn collect_lines(
    from: impl Read + Send + 'static,
    sink: &Arc<Mutex<String>>,
    lines: Option<std::sync::mpsc::Sender<String>>,
) {
    let sink = sink.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            {
                let mut out = sink.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
            if let Some(lines) = &lines {
                let _ = lines.send(line);
            }
        }
    });
}

/// Runs `weft ARGS...` to completion and returns its exit status, stdout and stderr.
pub fn weft_once(args: &[&str]) -> (ExitStatus, String, String) {
    weft_once_with(args, &[])
}

/// Like [`weft_once`], with more environment variables.
pub fn weft_once_with(args: &[&str], env: &[(String, String)]) -> (ExitStatus, String, String) {
    let out = scrubbed(Command::new(weft_bin()))
        .args(args)
        .current_dir(root())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("WEFT_CACHE_DIR", shared_cache())
        .output()
        .expect("weft runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that one client's `replies`, in order, came from version `a`
/// only, then from a mix of `a` and `b` (as a rollout shifts the weights),
/// then from `b` only; each names its version in the `weft-version` header.
pub fn assert_shifted(replies: &[Reply], a: &str, b: &str) {
    let versions: Vec<&str> = replies
        .iter()
        .map(|r| r.header("weft-version").unwrap_or("none"))
        .collect();
    let first_b = versions.iter().position(|v| *v == b).expect("B answered");
    let last_a = versions.iter().rposition(|v| *v == a).expect("A answered");
    assert!(first_b > 0 && versions[..first_b].iter().all(|v| *v == a));
    assert!(first_b < last_a, "the answers were mixed during the shift");
    assert!(versions[last_a + 1..].iter().all(|v| *v == b));
}

/// A bounded load on one listener: clients that each send `GET path`, one
/// request after another on a kept-alive connection, until stopped, and
/// record every answer in order. Each stops by itself after two minutes
/// or 20,000 requests.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<std::thread::JoinHandle<Vec<Reply>>>,
}

impl Load {
    /// Starts `clients` clients against `address`.
    pub fn start(address: SocketAddr, path: &str, clients: usize) -> Load {
        Load::start_with(address, path, &[], clients)
    }

    /// Like [`Load::start`], every request with the extra `headers` (such
    /// as a cookie).
    pub fn start_with(
        address: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        clients: usize,
    ) -> Load {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients = (0..clients)
            .map(|_| {
                let stop = stop.clone();
                let path = path.to_string();
                let headers = headers.clone();
                std::thread::spawn(move || {
                    let headers: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    let started = Instant::now();
                    let mut replies = Vec::new();
                    let mut connection = Connection::open(address);
                    while !stop.load(std::sync::atomic::Ordering::SeqCst)
                        && started.elapsed() < Duration::from_secs(120)
                        && replies.len() < 20_000
                    {
                        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            connection.request_with(&path, &headers)
                        }));
                        match sent {
                            Ok(reply) => replies.push(reply),
                            Err(_) => {
                                // The connection broke: that is a failed
                                // request, and the next one reconnects.
                                replies.push(Reply {
                                    status: 0,
                                    headers: Vec::new(),
                                    body: "the connection broke".into(),
                                });
                                connection = Connection::open(address);
                            }
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    replies
                })
            })
            .collect();
        Load { stop, clients }
    }

    /// Stops the clients and returns each one's answers, in order.
    pub fn stop(self) -> Vec<Vec<Reply>> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.clients
            .into_iter()
            .map(|c| c.join().expect("a load client"))
            .collect()
    }
}
