//! `weft run`: the whole app in this process.

use crate::app::{App, LoadOptions};
use crate::cache::{CacheOutcome, CompileCache};
use crate::manifest::ManifestFile;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

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
}

fn parse_listen(text: &str) -> Result<(String, SocketAddr), String> {
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
        let manifest = ManifestFile::load(&self.path)?;
        if self.build {
            crate::builder::build_components(&manifest)?;
        }
        let options = LoadOptions {
            data_dir: self.data_dir,
            cache: CompileCache::new(self.cache_dir.unwrap_or_else(CompileCache::default_dir)),
        };
        let name = manifest.manifest.app.name.clone();
        println!(
            "weft: loading app '{name}' from {}",
            manifest.path.display()
        );
        let app = App::load(manifest, &options).await?;
        for (component, outcome) in &app.compiled {
            let how = match outcome {
                CacheOutcome::Hit => "from the compile cache",
                CacheOutcome::Compiled => "compiled",
            };
            println!("weft: component {component} ready ({how})");
        }
        if let Some(file) = &app.data_file {
            println!("weft: key-value data in {}", file.display());
        }
        let overrides: BTreeMap<String, SocketAddr> = self.listen.into_iter().collect();
        let listeners = app.bind(&overrides).await?;
        for l in &listeners {
            println!(
                "weft: listener {} on http://{} (component {})",
                l.name, l.address, l.component
            );
        }
        if listeners.is_empty() {
            println!("weft: app '{name}' has no listeners; nothing to serve");
        }
        println!("weft: app '{name}' is running; press Ctrl-C to stop");
        app.serve(listeners, shutdown_signal()).await;
        println!("weft: stopped");
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r.context("cannot watch Ctrl-C") {
                tracing::warn!("{e:#}");
                std::future::pending::<()>().await
            }
        }
        () = term => {}
    }
}
