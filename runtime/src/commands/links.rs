//! `weft links`: who serves each import of each component, as resolution
//! decided it, before anything runs.

use crate::app::Prepared;
use crate::cache::CompileCache;
use crate::manifest::ManifestFile;
use crate::resolve::{Provider, Wire};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Show who serves each import of each component: a host capability,
/// another component (through `[links]` or because it is the only one
/// that exports it), or nothing for an interface of plain types.
#[derive(Debug, clap::Args)]
pub struct LinksCommand {
    /// The app: a weft.toml, or a folder that holds one.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Print JSON: a list of {component, import, provider, capability,
    /// export}.
    #[arg(long)]
    pub json: bool,
    /// Where compiled components are cached.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// One resolved import, as `weft links --json` prints it.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Link {
    /// The importing component.
    pub component: String,
    /// The import, as the component names it.
    pub import: String,
    /// `host`, `component` or `types-only`.
    pub provider: String,
    /// The capability, when the host serves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// The serving component and its export, when a component serves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    /// The serving component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// Every wire of `wires`, as links.
pub fn links(wires: &BTreeMap<String, Vec<Wire>>) -> Vec<Link> {
    let mut links = Vec::new();
    for (component, wires) in wires {
        for wire in wires {
            let mut link = Link {
                component: component.clone(),
                import: wire.import.clone(),
                provider: String::new(),
                capability: None,
                export: None,
                from: None,
            };
            match &wire.provider {
                Provider::Capability(cap) => {
                    link.provider = "host".into();
                    link.capability = Some(cap.name().into());
                }
                Provider::TypesOnly => link.provider = "types-only".into(),
                Provider::Component { name, export } => {
                    link.provider = "component".into();
                    link.from = Some(name.clone());
                    link.export = Some(export.clone());
                }
            }
            links.push(link);
        }
    }
    links
}

impl LinksCommand {
    /// Compiles (through the cache) and resolves the app, and prints its
    /// links.
    pub async fn execute(self) -> anyhow::Result<()> {
        let manifest = ManifestFile::load(&self.path)?;
        let cache = CompileCache::new(self.cache_dir.unwrap_or_else(CompileCache::default_dir));
        let prepared = tokio::task::spawn_blocking(move || Prepared::load(manifest, &cache))
            .await
            .context("loading the app panicked")??;
        let links = links(&prepared.resolution.wires);
        if self.json {
            say!("{}", serde_json::to_string_pretty(&links)?);
            return Ok(());
        }
        // The WASI interfaces that every component gets are summed up.
        let mut ambient: BTreeMap<&str, usize> = BTreeMap::new();
        for link in &links {
            if link.capability.as_deref() == Some("wasi") {
                *ambient.entry(&link.component).or_default() += 1;
                continue;
            }
            let from = match (&link.capability, &link.from) {
                (Some(cap), _) => format!("the host ({cap})"),
                (None, Some(component)) => format!("component '{component}'"),
                (None, None) => "nothing (plain types)".into(),
            };
            say!("{} imports {} from {from}", link.component, link.import);
        }
        for (component, n) in ambient {
            say!("{component} imports {n} wasi:cli, wasi:io and like interfaces from the host");
        }
        Ok(())
    }
}
