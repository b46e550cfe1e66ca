//! `--build`: running each component's `build` command before loading.

use crate::manifest::ManifestFile;
use anyhow::{Context as _, bail};
use std::process::Command;

/// Runs the `build` command of every component that has one, in the
/// manifest's folder. A command shared by several components runs once.
pub fn build_components(manifest: &ManifestFile) -> anyhow::Result<()> {
    let mut done: Vec<&str> = Vec::new();
    for (name, spec) in &manifest.manifest.components {
        let Some(command) = spec.build.as_deref() else {
            continue;
        };
        if done.contains(&command) {
            continue;
        }
        println!("weft: building {name}: {command}");
        let status = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&manifest.dir)
            .status()
            .with_context(|| {
                format!("component '{name}': cannot start `sh` to run its build command")
            })?;
        if !status.success() {
            bail!(
                "{}: component '{name}': build command `{command}` failed ({status}); fix the build \
                 or components.{name}.build",
                manifest.path.display()
            );
        }
        done.push(command);
    }
    Ok(())
}
