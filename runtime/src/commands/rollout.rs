//! `weft rollout` and `weft rollback`: move a running deployment to a new
//! version, or back to a stored one, through its manager.

use super::kube::{CaStep, LoadedApp, issue};
use super::manager_client;
use crate::cluster::kubectl::Kubectl;
use crate::cluster::rollout::{Ask, Cluster, NewVersion};
use crate::deploy::driver::Setup;
use crate::deploy::manager::{AUTO_PLAN, gate_of, load_absolute, named_plan, schedule_of};
use crate::deploy::rollout::Schedule;
use crate::kube::traffic::VersionRoute;
use crate::kube::{self, AppVersion, Issued, KeptVersion, KubeOptions, Object};
use crate::manifest::Timeout;
use anyhow::Context as _;
use std::path::PathBuf;
use std::time::Duration;
use weft_placer::Plan;
use weft_proto::v1::RolloutRequest;
use weft_proto::v1::rollout_event::Outcome;

/// Roll out the app's files as a new version of its running deployment:
/// start the new version beside the old, shift new requests to it in
/// steps, and stop the old one; go back by itself when the new one fails
/// more.
#[derive(Debug, clap::Args)]
pub struct RolloutCommand {
    /// The deployed app: a weft.toml, or a folder that holds one.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The plan: `monolith`, `split`, `auto` (what `weft plan` chooses), or a plan file [default: the manifest's [deploy] table, else the running plan].
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<String>,
    /// With --plan auto: the profile to plan from [default: a profile of the running app, taken now over --profile-window].
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// With --plan auto and no --profile: how long to watch the running app.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::profile::parse_window)]
    pub profile_window: Duration,
    /// The budget of busy cores per process.
    #[command(flatten)]
    pub budget: super::plan::Budget,
    /// How long the shift takes, such as 60s or 2m; 0 switches at once.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub over: Duration,
    /// The new version's share of new requests at each step, in percent.
    #[arg(long, value_name = "PERCENTS", default_value = "10,25,50,100", value_parser = Schedule::parse_steps)]
    pub steps: std::vec::Vec<u8>,
    /// Roll back when the new version's failure rate is this many percentage points above the old one's [default: the manifest's deploy.rollback-failure-points, else 1].
    #[arg(long, value_name = "POINTS", value_parser = parse_points)]
    pub max_failure_points: Option<f64>,
    /// ... over at least this many of the new version's requests (or calls) [default: deploy.rollback-min-requests, else 20].
    #[arg(long, value_name = "N")]
    pub min_requests: Option<u64>,
    /// Run each component's `build` command first.
    #[arg(long)]
    pub build: bool,
    /// In a Kubernetes cluster instead (--kube).
    #[command(flatten)]
    pub kube: KubeFlags,
    /// With --kube: the new version's image, built from `weft kube --containerfile`.
    #[arg(long, value_name = "IMAGE", requires = "kube")]
    pub image: Option<String>,
    /// With --kube: how long the new version's pods may take to be ready.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration, requires = "kube")]
    pub ready_timeout: Duration,
    /// With --kube: how many versions the cluster keeps (their ConfigMaps) for `weft rollback --kube`.
    #[arg(long, value_name = "N", default_value_t = crate::deploy::manager::KEEP_VERSIONS, requires = "kube")]
    pub keep: usize,
}

/// Where a rollout runs: in a Kubernetes cluster instead of a `weft deploy`.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeFlags {
    /// In the Kubernetes cluster that kubectl reaches (the app's first
    /// version deployed there with `weft kube`), instead of a `weft deploy`
    /// on this machine.
    #[arg(long)]
    pub kube: bool,
    /// With --kube: the namespace [default: kubectl's current one].
    #[arg(long, value_name = "NS", requires = "kube")]
    pub namespace: Option<String>,
    /// With --kube: the kubectl to run [default: $WEFT_KUBECTL, else kubectl].
    #[arg(long, value_name = "PATH", requires = "kube")]
    pub kubectl: Option<PathBuf>,
}

impl KubeFlags {
    fn kubectl(&self) -> Kubectl {
        Kubectl::new(self.kubectl.clone(), self.namespace.clone())
    }
}

/// Roll the running deployment back to the previous stored version, or to
/// the one named.
#[derive(Debug, clap::Args)]
pub struct RollbackCommand {
    /// The deployed app: a weft.toml, or a folder that holds one.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The stored version to go back to [default: the previous one].
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// In a Kubernetes cluster instead (--kube).
    #[command(flatten)]
    pub kube: KubeFlags,
}

/// The plan the deployment of `manifest` runs now, as its manager says:
/// the serving version's groups, each with as many replicas as it has
/// workers.
async fn running_plan(manifest: &crate::manifest::ManifestFile) -> anyhow::Result<Plan> {
    let (state, _) = super::manager_state(&mut manager_client(&manifest.dir)?).await?;
    let serving = state
        .versions
        .iter()
        .find(|v| v.version == state.version)
        .context("the manager names no serving version")?;
    let groups = serving
        .groups
        .iter()
        .map(|(name, components)| {
            let workers = state
                .workers
                .iter()
                .filter(|w| w.version == state.version && &w.group == name)
                .count();
            let group = weft_placer::Group {
                components: components.clone(),
                replicas: weft_placer::Replicas::fixed(u32::try_from(workers).unwrap_or(1).max(1)),
                resources: Default::default(),
                fuse: false,
            };
            (name.clone(), group)
        })
        .collect();
    Ok(Plan { groups })
}

/// `--max-failure-points`: more than 0, at most 100.
fn parse_points(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|p| *p > 0.0 && *p <= 100.0)
        .ok_or_else(|| format!("'{text}' is not a number of percentage points above 0, up to 100"))
}

/// `--over`: a duration such as `60s`, `500ms` or `2m`, or `0`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    Timeout::parse(text).map(|t| t.0)
}

impl RolloutCommand {
    /// `--plan auto`: the plan `weft plan` chooses, from `--profile` or a
    /// profile of the running app taken now; its explanation is printed.
    async fn auto_plan(&self, manifest: &crate::manifest::ManifestFile) -> anyhow::Result<Plan> {
        let profile = match &self.profile {
            Some(path) => super::profile::read(path)?,
            None => {
                say!(
                    "weft: profiling the running app for {:.1} s to plan from",
                    self.profile_window.as_secs_f64()
                );
                super::profile::of_deployment(manifest, self.profile_window).await?
            }
        };
        let choice = super::plan::choose(manifest, &profile, &self.budget).await?;
        print!("{}", choice.render(&manifest.path.display().to_string()));
        // The replicas the running groups have carry over, where the
        // constraints allow it.
        let mut plan = choice.plan.clone();
        plan.keep_scale_of(&running_plan(manifest).await?);
        if !manifest.manifest.placement.violations(&plan).is_empty() {
            plan = choice.plan;
        }
        Ok(plan)
    }

    /// Asks the manager for the rollout and prints its steps; fails when
    /// the new version was refused or rolled back.
    pub async fn execute(self) -> anyhow::Result<()> {
        let manifest = load_absolute(&self.path)?;
        if self.build {
            crate::builder::build_components(&manifest)?;
        }
        let plan = match self.plan.as_deref() {
            Some(AUTO_PLAN) if self.kube.kube => anyhow::bail!(
                "--plan auto is not supported with --kube yet: write the plan with `weft plan \
                 --profile FILE -o plan.toml` and give --plan plan.toml"
            ),
            Some(AUTO_PLAN) => self.auto_plan(&manifest).await?.to_toml(),
            Some(name) => named_plan(name, &manifest)?.to_toml(),
            None => String::new(),
        };
        let request = RolloutRequest {
            plan,
            over_ms: u64::try_from(self.over.as_millis()).unwrap_or(u64::MAX),
            steps: self.steps.iter().map(|s| u32::from(*s)).collect(),
            margin_points: self.max_failure_points.unwrap_or(0.0),
            min_requests: self.min_requests.unwrap_or(0),
            rollback: false,
            to_version: String::new(),
        };
        if self.kube.kube {
            return self.in_cluster(request).await;
        }
        follow(&manifest.dir, request).await
    }

    /// `--kube`: applies the new version beside the running one and drives
    /// the rollout from here.
    async fn in_cluster(&self, request: RolloutRequest) -> anyhow::Result<()> {
        let image = self
            .image
            .clone()
            .filter(|i| !i.trim().is_empty())
            .context(
                "--kube needs --image IMAGE: the new version's image, built from `weft kube \
                 --containerfile` and pushed where the cluster pulls from",
            )?;
        let loaded = LoadedApp::load(&self.path, self.plan.as_deref(), None)?;
        let app = loaded.app();
        let options = KubeOptions {
            image,
            namespace: self.kube.namespace.clone(),
            replicas_from_plan: true,
            ..KubeOptions::default()
        };
        let objects = kube::version_objects(&app, &options)?;
        let issued = issue(
            &loaded.manifest.dir.join(".weft").join("kube"),
            &app,
            CaStep::Keep,
        )?;
        let table = loaded.manifest.manifest.deploy.clone().unwrap_or_default();
        let new = NewVersion {
            version: loaded.version.to_string(),
            yaml: version_yaml(&app, &issued, &objects, options.namespace.as_deref()),
            route: VersionRoute::of(&app),
        };
        let ask = Ask {
            setup: Setup::new(schedule_of(&request), gate_of(&request, &table)),
            ready_timeout: self.ready_timeout,
            drain_timeout: drain_timeout(&app),
            keep: self.keep,
            rollback: false,
        };
        let cluster = Cluster::new(self.kube.kubectl(), &app.manifest.app.name).await?;
        let last = cluster
            .roll_out(new, ask, &mut |line| say!("weft: {line}"))
            .await?;
        say!("weft: {last}");
        Ok(())
    }
}

/// A version's group Secrets and objects, as one YAML stream to apply.
fn version_yaml(
    app: &AppVersion<'_>,
    issued: &Issued,
    objects: &[Object],
    namespace: Option<&str>,
) -> String {
    // The ingress's Secret is the app's, and stays as it is.
    let mut yaml = kube::render("", &kube::group_secrets(app, issued, namespace));
    yaml.push_str(&kube::render("", objects));
    yaml
}

/// How long the old version's requests may take to finish: the longest
/// call timeout of the app, and 5 s more.
fn drain_timeout(app: &AppVersion<'_>) -> Duration {
    app.manifest
        .components
        .values()
        .map(|c| c.call_timeout())
        .max()
        .unwrap_or_default()
        + Duration::from_secs(5)
}

impl RollbackCommand {
    /// Asks the manager to go back, at once, and prints its steps.
    pub async fn execute(self) -> anyhow::Result<()> {
        let manifest = load_absolute(&self.path)?;
        if self.kube.kube {
            return self.in_cluster(&manifest).await;
        }
        let request = RolloutRequest {
            over_ms: 0,
            steps: vec![100],
            rollback: true,
            to_version: self.to.unwrap_or_default(),
            ..RolloutRequest::default()
        };
        follow(&manifest.dir, request).await
    }
}

impl RollbackCommand {
    /// `--kube`: ends the rollout under way, or goes back at once to a
    /// version the cluster keeps, made again from its ConfigMap.
    async fn in_cluster(&self, manifest: &crate::manifest::ManifestFile) -> anyhow::Result<()> {
        let name = &manifest.manifest.app.name;
        let cluster = Cluster::new(self.kube.kubectl(), name).await?;
        let drain = Duration::from_secs(30);
        if self.to.is_none()
            && let Some(line) = cluster.end_rollout(drain).await?
        {
            say!("weft: {line}");
            return Ok(());
        }
        let map = cluster.kept_version(self.to.as_deref()).await?;
        let kept = KeptVersion::from_config_map(&map)?;
        let app = kept.app();
        let options = KubeOptions {
            image: kept.image.clone(),
            namespace: self.kube.namespace.clone(),
            replicas_from_plan: true,
            ..KubeOptions::default()
        };
        let objects = kube::version_objects(&app, &options)?;
        let issued = issue(&manifest.dir.join(".weft").join("kube"), &app, CaStep::Keep)?;
        let new = NewVersion {
            version: kept.version.to_string(),
            yaml: version_yaml(&app, &issued, &objects, options.namespace.as_deref()),
            route: VersionRoute::of(&app),
        };
        let schedule = Schedule {
            steps: vec![100],
            over: Duration::ZERO,
        };
        let ask = Ask {
            setup: Setup::new(schedule, crate::deploy::rollout::Gate::default()),
            ready_timeout: Duration::from_secs(300),
            drain_timeout: drain_timeout(&app),
            keep: crate::deploy::manager::KEEP_VERSIONS,
            rollback: true,
        };
        let last = cluster
            .roll_out(new, ask, &mut |line| say!("weft: {line}"))
            .await?;
        say!("weft: {last}");
        Ok(())
    }
}

/// Sends `request` to the manager of the app in `dir` and prints each
/// event until the last.
async fn follow(dir: &std::path::Path, request: RolloutRequest) -> anyhow::Result<()> {
    let mut client = manager_client(dir)?;
    let mut events = client
        .rollout(request)
        .await
        .map_err(|s| anyhow::anyhow!("the manager refused the rollout: {}", s.message()))?
        .into_inner();
    while let Some(event) = events
        .message()
        .await
        .context("the manager stopped answering during the rollout")?
    {
        match event.outcome() {
            Outcome::Failed => anyhow::bail!("{}", event.line),
            Outcome::Done | Outcome::Unchanged => {
                say!("weft: {}", event.line);
                return Ok(());
            }
            Outcome::Progress | Outcome::Unspecified => say!("weft: {}", event.line),
        }
    }
    anyhow::bail!("the manager ended the rollout without saying how it went; see its output")
}
