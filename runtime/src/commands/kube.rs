//! `weft kube`: the Kubernetes objects of one version of the app, its
//! image's Containerfile, its groups' TLS Secrets, or its config folder for
//! plain machines. The objects are made by [`crate::kube`]; this reads the files
//! and prints.

use crate::app::Prepared;
use crate::cache::CompileCache;
use crate::deploy::manager::{choose_plan, load_absolute};
use crate::deploy::versions::VersionStore;
use crate::kube::{self, AppVersion, EXE_IN_CONTEXT, Issued, KubeOptions, PlanOrigin};
use crate::manifest::ManifestFile;
use crate::rpc::identity::{Authority, Credentials, Identity};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use weft_placer::Plan;

/// Write the Kubernetes objects that run one version of an app: a ConfigMap,
/// a Deployment and a headless Service per group, and a stable Service per
/// listener, as YAML on standard output.
#[derive(Debug, clap::Args)]
pub struct KubeCommand {
    /// A weft.toml, or a folder that holds one.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The plan: `monolith`, `split`, or a plan file [default: the manifest's [deploy] table, else monolith].
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<String>,
    /// The container image of the workers, built from `--containerfile`.
    #[arg(
        long,
        value_name = "IMAGE",
        required_unless_present_any = ["secret", "containerfile", "write_config"]
    )]
    pub image: Option<String>,
    /// The namespace written into every object [default: none, so kubectl's current one].
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Write each group's replica count from the plan into its Deployment.
    /// Without it, `replicas` is left out so that the cluster owns the count
    /// (`kubectl scale`, or an autoscaler), and applying this file again
    /// keeps that count; a new Deployment then starts with one replica.
    #[arg(long)]
    pub replicas_from_plan: bool,
    /// How many replicas of the app's ingress run (the Deployment that
    /// serves the listeners and splits them between versions).
    #[arg(long, value_name = "N", default_value_t = kube::DEFAULT_INGRESS_REPLICAS)]
    pub ingress_replicas: u32,
    /// Print the version's TLS Secrets instead: a key and a certificate
    /// per group, issued by the app's CA in .weft/kube/ca (made on first
    /// use). Also writes weft's own credentials for the cluster into
    /// .weft/kube/cli.
    #[arg(long, conflicts_with_all = ["containerfile", "write_config"])]
    pub secret: bool,
    /// With --secret: make a new CA, which issues these Secrets, while pods
    /// trust both it and the one it replaces; see the README's rotation steps.
    #[arg(long, requires = "secret", conflicts_with = "finish_ca_rotation")]
    pub rotate_ca: bool,
    /// With --secret: stop trusting the CA that --rotate-ca replaced.
    #[arg(long, requires = "secret")]
    pub finish_ca_rotation: bool,
    /// With --secret: write each group's credentials into DIR/GROUP (for
    /// `weft worker --tls-dir` on plain machines) instead of printing
    /// Secrets.
    #[arg(long, value_name = "DIR", requires = "secret")]
    pub write_tls: Option<PathBuf>,
    /// Print the image's Containerfile instead, and copy this weft
    /// executable into the app's folder (.weft/kube/weft), the build context.
    #[arg(long, conflicts_with = "write_config")]
    pub containerfile: bool,
    /// Write the config files (weft.toml, plan.toml, cluster.toml) and
    /// DIR/components/<sha256>.wasm instead, for `weft worker --config DIR`
    /// on plain machines.
    #[arg(long, value_name = "DIR")]
    pub write_config: Option<PathBuf>,
    /// Where compiled components are cached [default: $WEFT_CACHE_DIR, else ~/.cache/weft].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl KubeCommand {
    /// Loads and checks the app, stores its version's binaries, and prints
    /// (or writes) what was asked for.
    pub async fn execute(self) -> anyhow::Result<()> {
        let loaded = LoadedApp::load(&self.path, self.plan.as_deref(), self.cache_dir.clone())?;
        let manifest = &loaded.manifest;
        let version = loaded.version.clone();
        let plan = &loaded.plan;
        let app = loaded.app();
        if self.secret {
            let ns = self.namespace.as_deref();
            kube::check(&app, ns)?;
            let step = if self.rotate_ca {
                CaStep::Rotate
            } else if self.finish_ca_rotation {
                CaStep::FinishRotation
            } else {
                CaStep::Keep
            };
            let issued = issue(&manifest.dir.join(".weft").join("kube"), &app, step)?;
            match &self.write_tls {
                Some(dir) => {
                    for (group, credentials) in &issued.groups {
                        credentials.write_dir(&dir.join(group))?;
                    }
                    say!(
                        "weft kube: wrote the credentials of each group of version {version} into \
                         {}/GROUP; give each machine its group's folder as --tls-dir",
                        dir.display()
                    );
                }
                None => print!("{}", kube::secrets_yaml(&app, &issued, ns)),
            }
            return Ok(());
        }
        // Checked before anything is written: a refused app leaves no trace.
        let yaml = match (self.containerfile, &self.write_config) {
            (false, None) => Some(kube::manifests(
                &app,
                &KubeOptions {
                    image: self.image.clone().unwrap_or_default(),
                    namespace: self.namespace.clone(),
                    replicas_from_plan: self.replicas_from_plan,
                    ingress_replicas: self.ingress_replicas,
                },
            )?),
            (false, Some(_)) => {
                kube::check(&app, None)?;
                None
            }
            (true, _) => None,
        };
        // The image copies the binaries from the version store, and so
        // does --write-config.
        let snapshot = VersionStore::new(&manifest.dir).snapshot(manifest, plan)?;
        anyhow::ensure!(
            snapshot.version == version,
            "a component binary of {} changed while weft kube read it; run it again",
            manifest.path.display()
        );
        if let Some(yaml) = yaml {
            print!("{yaml}");
        } else if let Some(dir) = &self.write_config {
            write_config(dir, &app, &snapshot.manifest)?;
            say!(
                "weft kube: wrote version {version} of '{}' into {d}; on each machine, run \
                 `weft worker --config {d} --components {d}/components --group GROUP` with \
                 --tls-dir (weft kube --secret --write-tls) and the peers",
                app.manifest.app.name,
                d = dir.display(),
            );
        } else {
            copy_self(&manifest.dir.join(EXE_IN_CONTEXT))?;
            let compiled = export_compiled(&loaded, self.cache_dir.clone())?;
            print!(
                "{}",
                kube::containerfile(&app, self.image.as_deref(), &compiled)
            );
        }
        Ok(())
    }
}

/// An app loaded, checked and compiled for the cluster: what its objects
/// are made from.
pub(crate) struct LoadedApp {
    /// The app's folder as the user wrote it, for the commands in headers.
    pub(crate) source: PathBuf,
    pub(crate) manifest: ManifestFile,
    pub(crate) plan: Plan,
    pub(crate) plan_origin: PlanOrigin,
    pub(crate) version: crate::version::Version,
    /// Each component binary's SHA-256, by component.
    pub(crate) digests: BTreeMap<String, String>,
}

impl LoadedApp {
    /// Loads the app at `path` with the plan `--plan` names (else the
    /// manifest's, else the monolith), compiling it into the cache.
    pub(crate) fn load(
        path: &Path,
        plan: Option<&str>,
        cache_dir: Option<PathBuf>,
    ) -> anyhow::Result<LoadedApp> {
        let manifest = load_absolute(path)?;
        let source = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf()
        };
        let components = manifest.manifest.components.keys();
        let chosen = choose_plan(plan, &manifest, || Plan::monolith(components.clone()))?;
        let plan_origin = match plan {
            Some(name) if Plan::builtin(name, components).is_some() => {
                PlanOrigin::Builtin(name.to_string())
            }
            Some(file) => PlanOrigin::File(file.into()),
            None if manifest
                .manifest
                .deploy
                .as_ref()
                .is_some_and(|d| !d.groups.is_empty()) =>
            {
                PlanOrigin::Manifest
            }
            None => PlanOrigin::Builtin("monolith".into()),
        };
        let cache = CompileCache::new(cache_dir.unwrap_or_else(CompileCache::default_dir));
        let prepared = Prepared::load(manifest.clone(), &cache)?;
        let version = prepared.version(&chosen);
        let digests = prepared
            .compiled
            .iter()
            .map(|(name, c)| (name.clone(), crate::version::hex(&c.digest)))
            .collect();
        Ok(LoadedApp {
            source,
            manifest,
            plan: chosen,
            plan_origin,
            version,
            digests,
        })
    }

    /// The version, as the objects are made from it.
    pub(crate) fn app(&self) -> AppVersion<'_> {
        AppVersion {
            source: &self.source,
            manifest_path: &self.manifest.path,
            manifest: &self.manifest.manifest,
            plan: &self.plan,
            plan_origin: self.plan_origin.clone(),
            version: self.version.clone(),
            digests: &self.digests,
        }
    }
}

/// What `weft kube --secret` does to the app's CA before it issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaStep {
    /// Use the CA (made on first use).
    Keep,
    /// Make a new CA, trusting both.
    Rotate,
    /// Stop trusting the CA that a rotation replaced.
    FinishRotation,
}

/// The credentials of every group of `app`'s version and of the app's
/// ingress, issued by the app's CA in `dir/ca` (made there on first use,
/// or rotated as `step` says); weft's own credentials for the cluster go
/// into `dir/cli`.
pub(crate) fn issue(dir: &Path, app: &AppVersion<'_>, step: CaStep) -> anyhow::Result<Issued> {
    let name = &app.manifest.app.name;
    let ca = dir.join("ca");
    let authority = match step {
        CaStep::Rotate => Authority::rotate(&ca, name)?,
        CaStep::FinishRotation => Authority::finish_rotation(&ca, name)?,
        CaStep::Keep => Authority::load_or_create(&ca, name)?,
    };
    authority
        .issue(&Identity::cli(name))?
        .write_dir(&dir.join("cli"))?;
    let groups = app
        .plan
        .groups
        .keys()
        .map(|group| {
            let identity = Identity::worker(name, app.version.as_str(), group);
            Ok((group.clone(), authority.issue(&identity)?))
        })
        .collect::<anyhow::Result<BTreeMap<String, Credentials>>>()?;
    Ok(Issued {
        groups,
        ingress: authority.issue(&Identity::ingress(name))?,
    })
}

/// Copies each component's compiled code from the compile cache into the
/// build context, for the image; returns each one's entry, by component.
fn export_compiled(
    loaded: &LoadedApp,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let cache = CompileCache::new(cache_dir.unwrap_or_else(CompileCache::default_dir));
    let engines = crate::engine::Engines::new().map_err(anyhow::Error::from)?;
    let to = loaded.manifest.dir.join(kube::COMPILED_IN_CONTEXT);
    // Only this version's code goes in; what an earlier build left goes.
    let _ = std::fs::remove_dir_all(&to);
    let mut entries = BTreeMap::new();
    for (name, spec) in &loaded.manifest.manifest.components {
        let bytes = loaded.manifest.read_wasm(name, spec)?;
        let entry = cache.export(&engines, &bytes, &to)?;
        entries.insert(name.clone(), entry);
    }
    Ok(entries)
}

/// Copies the running weft to `to`, so that the image runs the weft that
/// wrote its objects.
fn copy_self(to: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find weft's own executable")?;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let partial = to.with_extension("partial");
    std::fs::copy(&exe, &partial)
        .and_then(|_| std::fs::rename(&partial, to))
        .with_context(|| format!("cannot copy {} to {}", exe.display(), to.display()))?;
    Ok(())
}

/// Writes the config files into `dir`, and the snapshot's binaries
/// (`snapshot` is its manifest) into `dir/components`.
fn write_config(dir: &Path, app: &AppVersion<'_>, snapshot: &Path) -> anyhow::Result<()> {
    let components = dir.join("components");
    std::fs::create_dir_all(&components)
        .with_context(|| format!("cannot create {}", components.display()))?;
    for (file, text) in kube::config_files(app) {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let stored = ManifestFile::load(snapshot)?;
    for (name, spec) in &stored.manifest.components {
        let from = stored.wasm_path(spec);
        let to = components.join(format!("{}.wasm", app.digests[name]));
        std::fs::copy(&from, &to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}
