//! The `weft` command line.

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;
use weft_runtime::commands::deploy::DeployCommand;
use weft_runtime::commands::ingress::IngressCommand;
use weft_runtime::commands::kube::KubeCommand;
use weft_runtime::commands::links::LinksCommand;
use weft_runtime::commands::plan::PlanCommand;
use weft_runtime::commands::profile::ProfileCommand;
use weft_runtime::commands::rollout::{RollbackCommand, RolloutCommand};
use weft_runtime::commands::run::RunCommand;
use weft_runtime::commands::status::StatusCommand;
use weft_runtime::commands::worker::WorkerCommand;
use weft_runtime::telemetry::logs::{self, LogFormat};

/// weft runs one app made of WebAssembly components, as one process or split.
#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "weft runs one app made of WebAssembly components: as one process (run), or split over \
             worker processes by a plan (deploy), moved between versions without downtime \
             (rollout, rollback), and watched (status); who serves each import (links); what the \
             components did (profile) and the plan that suits it (plan); on Kubernetes, one Deployment per group \
             and version (kube), with weft's ingress splitting the listeners between versions \
             (ingress)"
)]
enum Weft {
    Run(RunCommand),
    Deploy(DeployCommand),
    Rollout(RolloutCommand),
    Rollback(RollbackCommand),
    Status(StatusCommand),
    Links(LinksCommand),
    Profile(ProfileCommand),
    Plan(PlanCommand),
    Kube(KubeCommand),
    Worker(WorkerCommand),
    Ingress(IngressCommand),
}

impl Weft {
    /// How this command writes its log lines.
    fn log_format(&self) -> LogFormat {
        match self {
            Weft::Run(run) => run.log_format,
            Weft::Deploy(deploy) => deploy.log_format,
            Weft::Worker(worker) => worker.log_format,
            _ => LogFormat::Text,
        }
    }
}

fn main() -> ExitCode {
    weft_runtime::heap::keep_freed_memory();
    let command = Weft::parse();
    let format = command.log_format();
    logs::set_format(format);
    let log = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,weft_runtime=info")),
        )
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => log.init(),
        LogFormat::Json => log.event_format(logs::JsonEvents).init(),
    }
    if std::env::var_os("WEFT_VAL_PATH").is_some_and(|v| v == "1") {
        weft_runtime::link::use_val_path_only(true);
    }
    if std::env::var_os("WEFT_CONCURRENT_ENGINE").is_some_and(|v| v == "1") {
        weft_runtime::engine::use_concurrent_everywhere(true);
    }
    if std::env::var_os("WEFT_TELEMETRY").is_some_and(|v| v == "off") {
        weft_runtime::telemetry::enable(false);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Spans go out over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT says where;
        // the exporter flushes when `_tracing` drops, before the runtime.
        let _tracing = weft_runtime::telemetry::trace::init("weft")?;
        match command {
            Weft::Run(run) => run.execute().await,
            Weft::Deploy(deploy) => deploy.execute().await,
            Weft::Rollout(rollout) => rollout.execute().await,
            Weft::Rollback(rollback) => rollback.execute().await,
            Weft::Status(status) => status.execute().await,
            Weft::Links(links) => links.execute().await,
            Weft::Profile(profile) => profile.execute().await,
            Weft::Plan(plan) => plan.execute().await,
            Weft::Kube(kube) => kube.execute().await,
            Weft::Worker(worker) => worker.execute().await,
            Weft::Ingress(ingress) => ingress.execute().await,
        }
    });
    // A worker's standard-input watcher blocks a thread in read(2), which
    // an ordinary runtime drop would wait for; everything has been drained
    // by now, so nothing is lost by not waiting.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
