//! The Containerfile of a version's image: the `weft` that wrote the
//! objects, and the version's component binaries, named by their SHA-256.
//!
//! The build context is the app's folder. `weft kube --containerfile`
//! copies its own executable to [`EXE_IN_CONTEXT`] there, and the version
//! store already holds the binaries (`.weft/versions/blobs/<sha256>.wasm`),
//! so the image runs exactly the weft and the components the objects name.

use super::{AppVersion, COMPONENTS_DIR, WEFT_BIN};
use std::fmt::Write as _;

/// Where `weft kube --containerfile` puts its own executable, in the app's
/// folder.
pub const EXE_IN_CONTEXT: &str = ".weft/kube/weft";

/// The Containerfile text. `image` names the tag in the build command it
/// shows (a placeholder without one).
pub fn containerfile(app: &AppVersion<'_>, image: Option<&str>) -> String {
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
    }
    let _ = writeln!(out, "ENTRYPOINT [\"{WEFT_BIN}\"]");
    out
}
