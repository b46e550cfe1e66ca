//! `--build`: running each component's `build` command before loading.
//!
//! A build command runs with weft's own environment, less the variables that
//! cargo sets for a program it runs ([`without_cargo_run_vars`]). Under
//! `cargo run -- run --build` those would otherwise reach the nested cargo,
//! which treats them as changed inputs of build scripts that read them
//! (ring reads `CARGO_PKG_NAME`, for one) and rebuilds those crates.

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
        {
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout(), "weft: building {name}: {command}");
        }
        let mut sh = Command::new("sh");
        without_cargo_run_vars(&mut sh);
        let status = sh
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

/// Removes from `command`'s environment the variables cargo sets for the
/// program it runs or tests (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, ...).
pub fn without_cargo_run_vars(command: &mut Command) -> &mut Command {
    const SET_BY_CARGO: &[&str] = &[
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if SET_BY_CARGO.iter().any(|p| name.starts_with(p)) {
            command.env_remove(&key);
        }
    }
    command
}
