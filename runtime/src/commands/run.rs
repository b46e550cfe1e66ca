//! `weft run`: the whole app in this process.

use crate::app::{App, LoadOptions};
use crate::cache::{CacheOutcome, CompileCache};
use crate::manifest::ManifestFile;
use crate::telemetry::admin;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Run an app as one process: every component in-process, listeners served here.
#[derive(Debug, clap::Args)]
pub struct RunCommand {
    /// A weft.toml, or a folder that holds one.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Run each component's `build` command first.
    #[arg(long)]
    pub build: bool,
    /// Where embedded capabilities keep their data [default: .weft/data beside the manifest].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen for listener NAME on ADDR instead of the manifest's address (repeatable).
    #[arg(long, value_name = "NAME=ADDR", value_parser = parse_listen)]
    pub listen: Vec<(String, SocketAddr)>,
    /// Where compiled components are cached [default: $WEFT_CACHE_DIR, else ~/.cache/weft].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Serve the admin pages on ADDR: /metrics, in Prometheus text.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// How log lines are written: text, or one JSON object per line on stderr.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t)]
    pub log_format: crate::telemetry::logs::LogFormat,
}

pub(crate) fn parse_listen(text: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not NAME=ADDR, such as web=127.0.0.1:8080"))?;
    let addr = addr.parse().map_err(|_| {
        format!("'{addr}' is not an IP address with a port, such as 127.0.0.1:8080")
    })?;
    Ok((name.to_string(), addr))
}

impl RunCommand {
    /// Loads the app, serves its listeners, and returns after Ctrl-C (or SIGTERM).
    pub async fn execute(self) -> anyhow::Result<()> {
        // Signals are watched from the start, so that a Ctrl-C right after
        // "running" is printed still shuts down cleanly.
        let shutdown = shutdown_signal()?;
        let manifest = ManifestFile::load(&self.path)?;
        if self.build {
            crate::builder::build_components(&manifest)?;
        }
        let options = LoadOptions {
            data_dir: self.data_dir,
            cache: CompileCache::new(self.cache_dir.unwrap_or_else(CompileCache::default_dir)),
        };
        let name = manifest.manifest.app.name.clone();
        say!(
            "weft: loading app '{name}' from {}",
            manifest.path.display()
        );
        tokio::pin!(shutdown);
        let app = tokio::select! {
            app = App::load(manifest, &options) => app?,
            () = &mut shutdown => anyhow::bail!("stopped while loading the app"),
        };
        crate::telemetry::logs::set_process(&app.group, app.version.as_str());
        let otlp_metrics = crate::telemetry::otlp_metrics::spawn(&app.metrics);
        for (component, outcome) in &app.compiled {
            let how = match outcome {
                CacheOutcome::Hit => "from the compile cache",
                CacheOutcome::Image => "from the image",
                CacheOutcome::Compiled | CacheOutcome::CompiledOverImage => "compiled",
            };
            say!("weft: component {component} ready ({how})");
        }
        if let Some(file) = &app.data_file {
            say!("weft: key-value data in {}", file.display());
        }
        if let Some(dir) = &app.blob_dir {
            say!("weft: blobs in {}", dir.display());
        }
        let overrides = listen_overrides(self.listen)?;
        let listeners = app.bind(&overrides).await?;
        for l in &listeners {
            say!(
                "weft: listener {} on http://{} (component {})",
                l.name,
                l.address,
                l.component
            );
        }
        if listeners.is_empty() {
            say!("weft: app '{name}' has no listeners; nothing to serve");
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let admin = match self.admin {
            Some(address) => {
                let source = Arc::new(admin::Local::new(
                    app.metrics.clone(),
                    &name,
                    app.version.as_str(),
                    app.pools.keys().cloned().collect(),
                ));
                let sampler = tokio::spawn(source.clone().keep_sampling());
                let server = admin::start(address, source, stopped.clone()).await?;
                Some((server, sampler))
            }
            None => None,
        };
        say!("weft: app '{name}' is running; press Ctrl-C to stop");
        app.serve(listeners, async {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await;
        if let Some(exporter) = otlp_metrics {
            exporter.abort();
        }
        if let Some((server, sampler)) = admin {
            sampler.abort();
            let _ = server.await;
        }
        say!("weft: stopped");
        Ok(())
    }
}

/// The `--listen NAME=ADDR` flags, by name; a name given twice is an error.
pub(crate) fn listen_overrides(
    flags: Vec<(String, SocketAddr)>,
) -> anyhow::Result<BTreeMap<String, SocketAddr>> {
    let mut overrides = BTreeMap::new();
    for (name, address) in flags {
        if overrides.insert(name.clone(), address).is_some() {
            anyhow::bail!("--listen {name}=... is given twice; give each listener one address");
        }
    }
    Ok(overrides)
}

/// A future that resolves on Ctrl-C (SIGINT) or SIGTERM; both are watched
/// from the moment this returns.
pub(crate) fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
