//! Deployment versions: pure hashing.
//!
//! A [`Version`] names one deployment: a hash over the manifest (its
//! [canonical](crate::manifest::Manifest::canonical) form, without binary
//! paths or build commands), the plan and every component binary. Only
//! processes of the same version talk to each other, so the manager and
//! each worker compute it from the files they read, and a worker that finds
//! another value refuses its assignment.
//!
//! A function's type fingerprint is the codec's
//! ([`FuncTypes::fingerprint`](crate::codec::FuncTypes::fingerprint)): it
//! follows the wire format, not a text of its own.

use sha2::{Digest, Sha256};
use std::fmt;

/// The identity of one deployment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(String);

impl Version {
    /// The version of an app: its canonical manifest, its plan (as
    /// plan-file TOML) and its component binaries' digests, by component
    /// name.
    pub fn compute<'a>(
        manifest: &[u8],
        plan: &str,
        components: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Version {
        let mut hash = Sha256::new();
        hash.update(b"weft version 1\n");
        framed(&mut hash, manifest);
        framed(&mut hash, plan.as_bytes());
        let mut components: Vec<_> = components.into_iter().collect();
        components.sort_by_key(|(name, _)| *name);
        for (name, bytes) in components {
            framed(&mut hash, name.as_bytes());
            framed(&mut hash, bytes);
        }
        Version(hex(&hash.finalize()[..8]))
    }

    /// A version written as text, such as `3f2a9c01b7d4e512`, as
    /// `weft rollback --to` and the version store name them.
    pub fn parse(text: &str) -> Option<Version> {
        (text.len() == 16
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Version(text.to_string()))
    }

    /// The version as text, such as `3f2a9c01b7d4e512`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hashes a length before the bytes, so that no two inputs run together.
fn framed(hash: &mut Sha256, bytes: &[u8]) {
    hash.update((bytes.len() as u64).to_le_bytes());
    hash.update(bytes);
}

/// Bytes as lowercase hex, as versions, fingerprints and blob names write them.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(manifest: &str, plan: &str, components: &[(&str, &[u8])]) -> Version {
        Version::compute(manifest.as_bytes(), plan, components.iter().copied())
    }

    #[test]
    fn every_input_changes_the_version() {
        let base = version("m", "p", &[("a", b"1"), ("b", b"2")]);
        assert_eq!(base.as_str().len(), 16);
        assert_eq!(base, version("m", "p", &[("b", b"2"), ("a", b"1")]));
        assert_ne!(base, version("m2", "p", &[("a", b"1"), ("b", b"2")]));
        assert_ne!(base, version("m", "p2", &[("a", b"1"), ("b", b"2")]));
        assert_ne!(base, version("m", "p", &[("a", b"1"), ("b", b"3")]));
        assert_ne!(base, version("m", "p", &[("a", b"1"), ("c", b"2")]));
        // Lengths are hashed, so moving a byte across a boundary shows.
        assert_ne!(
            version("m", "p", &[("a", b"12")]),
            version("m", "p", &[("a1", b"2")])
        );
    }
}
