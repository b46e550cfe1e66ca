//! `weft plan`: the plan that spends the least time on calls between
//! processes, from a profile of the app (or its static call graph), under
//! the manifest's `[placement]` constraints; explained.

use super::profile;
use crate::app::Prepared;
use crate::cache::CompileCache;
use crate::deploy::manager::load_absolute;
use crate::manifest::ManifestFile;
use crate::resolve::Provider;
use anyhow::Context as _;
use std::path::PathBuf;
use weft_placer::{Choice, Profile, Request};

/// Choose a plan: the groups that spend the least time on calls between
/// processes (calls/s × the cost of an RPC, plus bytes/s × the cost of a
/// byte, both measured on this machine), honouring the manifest's
/// [placement] constraints and a budget of busy cores per process. Prints
/// the plan, its cut edges, how each constraint is met, and each
/// listener's predicted latency against the monolith and split.
#[derive(Debug, clap::Args)]
pub struct PlanCommand {
    /// The app: a weft.toml, or a folder that holds one.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// A profile from `weft profile` [default: none; the static call graph].
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// The budget of busy cores per process.
    #[command(flatten)]
    pub budget: Budget,
    /// Print JSON: the plan and its explanation.
    #[arg(long)]
    pub json: bool,
    /// Also write the plan, as a plan file for --plan.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Where compiled components are cached (for the static graph).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// The budget of busy cores per process.
#[derive(Debug, Clone, clap::Args)]
pub struct Budget {
    /// The most busy cores one process may hold; a busier component runs
    /// alone, with replicas for its load [default: no limit]. Busy time is
    /// time spent in a component, waiting on I/O or a core included, so it
    /// bounds CPU from above: give the cores a process may really use.
    #[arg(long, value_name = "CORES", value_parser = parse_cores)]
    pub cpu_budget: Option<f64>,
}

/// `--cpu-budget`: a number of cores above 0.
fn parse_cores(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|c| c.is_finite() && *c > 0.0)
        .ok_or_else(|| format!("'{text}' is not a number of cores above 0, such as 2 or 0.5"))
}

impl PlanCommand {
    /// Plans, prints the choice, and writes the plan file if asked.
    pub async fn execute(self) -> anyhow::Result<()> {
        let manifest = load_absolute(&self.path)?;
        let profile = match &self.profile {
            Some(path) => profile::read(path)?,
            None => {
                let cache =
                    CompileCache::new(self.cache_dir.unwrap_or_else(CompileCache::default_dir));
                static_graph(&manifest, cache).await?
            }
        };
        let source = match &self.profile {
            Some(path) => format!("{} from {}", manifest.path.display(), path.display()),
            None => manifest.path.display().to_string(),
        };
        let choice = choose(&manifest, &profile, &self.budget).await?;
        if let Some(out) = &self.out {
            std::fs::write(out, choice.plan.to_toml())
                .with_context(|| format!("-o {}: cannot write the plan there", out.display()))?;
        }
        if self.json {
            say!("{}", serde_json::to_string_pretty(&choice)?);
        } else {
            print!("{}", choice.render(&source));
        }
        Ok(())
    }
}

/// The app's static call graph: one call per second on each wire from a
/// component to another.
async fn static_graph(manifest: &ManifestFile, cache: CompileCache) -> anyhow::Result<Profile> {
    let loaded = manifest.clone();
    let prepared = tokio::task::spawn_blocking(move || Prepared::load(loaded, &cache))
        .await
        .context("loading the app panicked")??;
    let wires: Vec<(String, String)> = prepared
        .resolution
        .wires
        .iter()
        .flat_map(|(component, wires)| {
            wires.iter().filter_map(move |w| match &w.provider {
                Provider::Component { name, .. } => Some((component.clone(), name.clone())),
                _ => None,
            })
        })
        .collect();
    let layout = crate::telemetry::profile::Layout::of(manifest);
    Ok(Profile::static_graph(
        &layout.app,
        layout.components,
        wires,
        layout.listeners,
    ))
}

/// The plan for `manifest` from `profile`, with this machine's costs.
pub(crate) async fn choose(
    manifest: &ManifestFile,
    profile: &Profile,
    budget: &Budget,
) -> anyhow::Result<Choice> {
    let components: Vec<String> = manifest.manifest.components.keys().cloned().collect();
    let (unknown, _) = profile.mismatch(&components);
    if !unknown.is_empty() {
        anyhow::bail!(
            "the profile names components that {} does not have ({}); it is of another app or \
             an older shape of this one: take a new one with weft profile",
            manifest.path.display(),
            unknown.join(", ")
        );
    }
    let calibrated = crate::rpc::calibrate::measure()
        .await
        .context("cannot time a call between processes on this machine")?;
    // The profile's own remote calls say best what one costs; the loopback
    // echo when it has none (a profile of one process).
    let (costs, costs_from) = match profile.rpc_cost_us(calibrated.per_byte_ns) {
        Some((per_call_us, calls)) => (
            weft_placer::Costs {
                per_call_us,
                ..calibrated
            },
            format!(
                "per call from the profile's {calls:.0} remote calls/s, the caller's time less the \
                 callee's; per byte over loopback here"
            ),
        ),
        None => (
            calibrated,
            "measured over loopback here, with mutual TLS".to_string(),
        ),
    };
    let request = Request {
        components: &components,
        constraints: &manifest.manifest.placement,
        profile,
        costs,
        costs_from: &costs_from,
        cpu_budget: budget.cpu_budget,
    };
    weft_placer::choose(&request).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        anyhow::anyhow!(
            "{}: no plan can honour the [placement] constraints:\n{}",
            manifest.path.display(),
            lines.join("\n")
        )
    })
}
