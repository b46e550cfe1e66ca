//! `weft deploy`: the app split over worker processes by a plan, with this
//! process as their manager.

use crate::cache::CompileCache;
use crate::deploy::manager::{self, DeployOptions};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Deploy an app as several processes on this machine: one worker per
/// replica of every group of a plan, managed by this process.
#[derive(Debug, clap::Args)]
pub struct DeployCommand {
    /// A weft.toml, or a folder that holds one.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The plan: `monolith`, `split`, or a plan file [default: the manifest's [deploy] table, else monolith].
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<String>,
    /// Run each component's `build` command first.
    #[arg(long)]
    pub build: bool,
    /// Where embedded capabilities keep their data [default: .weft/data beside the manifest].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen for listener NAME on ADDR instead of the manifest's address (repeatable).
    #[arg(long, value_name = "NAME=ADDR", value_parser = super::run::parse_listen)]
    pub listen: Vec<(String, SocketAddr)>,
    /// Where compiled components are cached [default: $WEFT_CACHE_DIR, else ~/.cache/weft].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// How many versions to keep in .weft/versions for `weft rollback`.
    #[arg(long, value_name = "N", default_value_t = manager::KEEP_VERSIONS)]
    pub keep: usize,
    /// Serve the admin pages on ADDR: /metrics, every worker's added up, in Prometheus text.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// How log lines are written: text, or one JSON object per line on stderr.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t)]
    pub log_format: crate::telemetry::logs::LogFormat,
}

impl DeployCommand {
    /// Starts the workers, serves the listeners, and returns after Ctrl-C
    /// (or SIGTERM) once everything has drained.
    pub async fn execute(self) -> anyhow::Result<()> {
        let shutdown = super::run::shutdown_signal()?;
        let options = DeployOptions {
            path: self.path,
            plan: self.plan,
            build: self.build,
            data_dir: self.data_dir,
            listen: super::run::listen_overrides(self.listen)?,
            cache_dir: self.cache_dir.unwrap_or_else(CompileCache::default_dir),
            keep: self.keep,
            admin: self.admin,
        };
        manager::run(options, shutdown).await
    }
}
