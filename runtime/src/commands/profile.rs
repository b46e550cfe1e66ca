//! `weft profile`: what a running app's components did over a window, per
//! edge and per component, written to a file for `weft plan`.
//!
//! The counts come from a deployment's manager (every worker's, added up),
//! or from any weft process's admin address (`--admin`, as `weft run
//! --admin` serves it): one snapshot at the start of the window, one at its
//! end, and their difference as rates.

use super::manager_client;
use crate::deploy::manager::load_absolute;
use crate::manifest::ManifestFile;
use crate::telemetry::metrics::Snapshot;
use crate::telemetry::profile::{self, Layout};
use crate::telemetry::wire;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use weft_placer::Profile;
use weft_proto::v1::{MetricsReply, MetricsRequest};

/// Watch a running app for a while and write what its components did:
/// calls, bytes, errors and latency per edge, requests per listener, and
/// each component's share of the busy time, as rates over the window.
#[derive(Debug, clap::Args)]
pub struct ProfileCommand {
    /// The app: a weft.toml, or a folder that holds one.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Read the counts from this admin address (of `weft run --admin` or
    /// `weft deploy --admin`) instead of the deployment's manager.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// How long to watch, such as 10s or 1m.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_window)]
    pub window: Duration,
    /// Where to write the profile [default: .weft/profile.json beside the manifest].
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `--window`: a duration of at least 100 ms, such as `10s`.
pub(crate) fn parse_window(text: &str) -> Result<Duration, String> {
    let window = super::rollout::parse_duration(text)?;
    if window < Duration::from_millis(100) {
        return Err(format!(
            "'{text}' is too short to count calls over; give at least 100ms, such as 10s"
        ));
    }
    Ok(window)
}

/// Where the counts come from.
enum Counts {
    /// A deployment's manager.
    Manager(weft_proto::v1::manager_client::ManagerClient<crate::rpc::Channel>),
    /// An admin address.
    Admin(String),
}

impl Counts {
    async fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
        let reply = match self {
            Counts::Manager(client) => client
                .metrics(MetricsRequest {})
                .await
                .map_err(|s| anyhow::anyhow!("the manager did not answer: {}", s.message()))?
                .into_inner(),
            Counts::Admin(address) => read_admin(address).await?,
        };
        Ok(wire::from_reply(reply))
    }
}

/// `GET /metrics.pb` from the admin server at `address`.
async fn read_admin(address: &str) -> anyhow::Result<MetricsReply> {
    use http_body_util::BodyExt as _;
    let what = || format!("--admin {address}: cannot read the counts there");
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("{}; is weft running with --admin {address}?", what()))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .with_context(what)?;
    tokio::spawn(connection);
    let request = hyper::Request::get("/metrics.pb")
        .header(hyper::header::HOST, address)
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(request).await.with_context(what)?;
    let status = response.status();
    let body = response.into_body().collect().await.with_context(what)?;
    if !status.is_success() {
        anyhow::bail!("{}: it answered {status}", what());
    }
    prost::Message::decode(body.to_bytes()).with_context(what)
}

impl ProfileCommand {
    /// Takes the two snapshots, writes the profile, and sums it up.
    pub async fn execute(self) -> anyhow::Result<()> {
        let manifest = load_absolute(&self.path)?;
        let mut layout = Layout::of(&manifest);
        let mut counts = match &self.admin {
            Some(address) => Counts::Admin(address.clone()),
            None => {
                let mut client = manager_client(&manifest.dir)?;
                // The groups of the version with the most traffic.
                let (state, _) = super::manager_state(&mut client).await?;
                if let Some(main) = state.versions.iter().max_by_key(|v| v.weight) {
                    for (group, components) in &main.groups {
                        for c in components {
                            layout.groups.insert(c.clone(), group.clone());
                        }
                    }
                }
                Counts::Manager(client)
            }
        };
        let profile = take(&mut counts, &layout, self.window).await?;
        let out = self
            .out
            .unwrap_or_else(|| manifest.dir.join(".weft").join("profile.json"));
        write(&profile, &out)?;
        say!("{}", summary(&profile, &out));
        Ok(())
    }
}

/// A profile over `window`, from two snapshots of `counts`.
async fn take(counts: &mut Counts, layout: &Layout, window: Duration) -> anyhow::Result<Profile> {
    let before = counts.snapshot().await?;
    let start = Instant::now();
    tokio::time::sleep(window).await;
    let after = counts.snapshot().await?;
    Ok(profile::between(
        layout,
        &before,
        &after,
        start.elapsed().as_secs_f64(),
    ))
}

/// A profile of the deployment of `manifest` over `window`, from its
/// manager (what `weft rollout --plan auto` plans with, given no file).
pub(crate) async fn of_deployment(
    manifest: &ManifestFile,
    window: Duration,
) -> anyhow::Result<Profile> {
    let mut counts = Counts::Manager(manager_client(&manifest.dir)?);
    take(&mut counts, &Layout::of(manifest), window).await
}

/// Writes `profile` to `path` as JSON.
fn write(profile: &Profile, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(profile)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a profile that `weft profile` wrote.
pub(crate) fn read(path: &Path) -> anyhow::Result<Profile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--profile {}: cannot read it", path.display()))?;
    let profile: Profile = serde_json::from_str(&text).with_context(|| {
        format!(
            "--profile {}: not a profile that weft profile wrote; take a new one",
            path.display()
        )
    })?;
    profile
        .check()
        .map_err(|e| anyhow::anyhow!("--profile {}: {e}", path.display()))?;
    Ok(profile)
}

/// The profile as people read it.
fn summary(profile: &Profile, path: &Path) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "weft: profile of {} over {:.1} s written to {}",
        profile.app,
        profile.window_s,
        path.display()
    );
    for l in &profile.listeners {
        let _ = writeln!(
            out,
            "  listener {:<12} {:>8.1} req/s  mean {:.3} ms  p99 {:.3} ms",
            l.listener, l.requests_per_s, l.mean_ms, l.p99_ms
        );
    }
    let mut edges: Vec<_> = profile.edges.iter().collect();
    edges.sort_by(|a, b| b.calls_per_s.total_cmp(&a.calls_per_s));
    for e in edges {
        let _ = writeln!(
            out,
            "  {:<34} {:>8.1} calls/s {:>10.0} B/s  mean {:.3} ms{}",
            format!("{} -> {}", e.caller, e.callee),
            e.calls_per_s,
            e.bytes_per_s(),
            e.mean_ms,
            if e.remote { "  (remote)" } else { "" }
        );
    }
    for (c, load) in &profile.components {
        let _ = writeln!(
            out,
            "  {c:<20} busy {:.3} cores ({:.0} %)",
            load.busy_cores, load.busy_pct
        );
    }
    out
}
