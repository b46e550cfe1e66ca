//! `weft rollout` and `weft rollback`: move a running deployment to a new
//! version, or back to a stored one, through its manager.

use super::manager_client;
use crate::deploy::manager::{load_absolute, named_plan};
use crate::deploy::rollout::Schedule;
use crate::manifest::Timeout;
use anyhow::Context as _;
use std::path::PathBuf;
use std::time::Duration;
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
    /// The plan: `monolith`, `split`, or a plan file [default: the manifest's [deploy] table, else the running plan].
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<String>,
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
}

/// `--max-failure-points`: more than 0, at most 100.
fn parse_points(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|p| *p > 0.0 && *p <= 100.0)
        .ok_or_else(|| format!("'{text}' is not a number of percentage points above 0, up to 100"))
}

/// `--over`: a duration such as `60s`, `500ms` or `2m`, or `0`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    Timeout::parse(text).map(|t| t.0)
}

impl RolloutCommand {
    /// Asks the manager for the rollout and prints its steps; fails when
    /// the new version was refused or rolled back.
    pub async fn execute(self) -> anyhow::Result<()> {
        let manifest = load_absolute(&self.path)?;
        if self.build {
            crate::builder::build_components(&manifest)?;
        }
        let plan = match self.plan.as_deref() {
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
        follow(&manifest.dir, request).await
    }
}

impl RollbackCommand {
    /// Asks the manager to go back, at once, and prints its steps.
    pub async fn execute(self) -> anyhow::Result<()> {
        let manifest = load_absolute(&self.path)?;
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
