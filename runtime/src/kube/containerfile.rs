//! The Containerfile of a version's image: the `weft` that wrote the
//! objects, the version's component binaries, named by their SHA-256, and
//! each component's code compiled by that weft, so that a pod starts warm.
//!
//! The build context is the app's folder. `weft kube --containerfile`
//! copies its own executable to [`EXE_IN_CONTEXT`] there and the compiled
//! code to [`COMPILED_IN_CONTEXT`], and the version store already holds the
//! binaries (`.weft/versions/blobs/<sha256>.wasm`), so the image runs
//! exactly the weft and the components the objects name. Compiled code is
//! named by the binary's digest and the engine's, so a pod whose weft or
//! CPU differs finds none of its own and compiles, saying so.

use super::{AppVersion, COMPILED_DIR, COMPONENTS_DIR, WEFT_BIN};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Where `weft kube --containerfile` puts its own executable, in the app's
/// folder.
pub const EXE_IN_CONTEXT: &str = ".weft/kube/weft";
/// Where it puts each component's compiled code, in the app's folder.
pub const COMPILED_IN_CONTEXT: &str = ".weft/kube/compiled";

/// The Containerfile text. `image` names the tag in the build command it
/// shows (a placeholder without one); `compiled` names each component's
/// compiled-code entry in [`COMPILED_IN_CONTEXT`].
pub fn containerfile(
    app: &AppVersion<'_>,
    image: Option<&str>,
    compiled: &BTreeMap<String, String>,
) -> String {
    let name = &app.manifest.app.name;
    let version = &app.version;
    let source = app.source.display();
    let image = image.filter(|i| !i.trim().is_empty()).unwrap_or("IMAGE");
    let mut out = format!(
        "# The image of app '{name}', version {version}: weft and the version's components.\n\
         # Written by `weft kube --containerfile`. Build it with the app's folder as context:\n\
         #     podman build -f Containerfile -t {image} {source}\n\
         # weft is linked against glibc, which the distroless cc base has; a statically\n\
         # linked weft can use --build-arg BASE=scratch.\n\
         ARG BASE=gcr.io/distroless/cc-debian12\n\
         FROM ${{BASE}}\n\
         COPY {EXE_IN_CONTEXT} {WEFT_BIN}\n"
    );
    for (component, digest) in app.digests {
        let blob = crate::deploy::versions::blob_in_app(digest);
        let _ = write!(
            out,
            "# {component}\nCOPY {} {COMPONENTS_DIR}/{digest}.wasm\n",
            blob.display()
        );
        if let Some(entry) = compiled.get(component) {
            let digest_file = entry.replace(".cwasm", ".digest");
            for file in [entry.as_str(), digest_file.as_str()] {
                let _ = writeln!(
                    out,
                    "COPY {COMPILED_IN_CONTEXT}/{file} {COMPILED_DIR}/{file}"
                );
            }
        }
    }
    let _ = writeln!(out, "ENTRYPOINT [\"{WEFT_BIN}\"]");
    out
}
