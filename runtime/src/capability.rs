//! Which host capability serves which WASI interface, and whether a
//! component's grants allow it.
//!
//! Deny by default: clocks, random, stdout and stderr are ambient; the other
//! `wasi:cli`, `wasi:filesystem` and `wasi:sockets` interfaces are linked so
//! that ordinary toolchain output loads, but they see no environment beyond
//! the granted variables, no files and no network. Key-value and outgoing
//! HTTP must be granted in the manifest.

use crate::manifest::{Grants, unversioned};
use std::fmt;

/// A capability that the host provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    /// `wasi:cli`, `wasi:io`, `wasi:clocks`, `wasi:random`, `wasi:filesystem`
    /// and `wasi:sockets`: always linked, empty unless granted.
    Wasi,
    /// `wasi:http/types`, used by every HTTP handler.
    HttpTypes,
    /// `wasi:http/outgoing-handler`: requests to the granted hosts only.
    OutgoingHttp,
    /// `wasi:keyvalue`: the granted buckets only.
    KeyValue,
    /// `wasi:config/store`: the component's `[config]` table.
    Config,
    /// `wasi:logging`: log lines prefixed with the component's name.
    Logging,
}

impl Capability {
    /// The capability that serves `interface`, if any does.
    pub fn for_interface(interface: &str) -> Option<Capability> {
        let name = unversioned(interface);
        let (package, _) = name.rsplit_once('/')?;
        Some(match package {
            "wasi:cli" | "wasi:io" | "wasi:clocks" | "wasi:random" | "wasi:filesystem"
            | "wasi:sockets" => Capability::Wasi,
            "wasi:http" if name == "wasi:http/types" => Capability::HttpTypes,
            "wasi:http" if name == "wasi:http/outgoing-handler" => Capability::OutgoingHttp,
            "wasi:keyvalue" => Capability::KeyValue,
            "wasi:config" => Capability::Config,
            "wasi:logging" => Capability::Logging,
            _ => return None,
        })
    }

    /// An example `[grants]` line that allows this capability, for those
    /// that need one.
    pub fn grant_example(self) -> Option<&'static str> {
        match self {
            Capability::OutgoingHttp => Some("outgoing-http = [\"example.com:443\"]"),
            Capability::KeyValue => Some("keyvalue = [\"BUCKET\"]"),
            _ => None,
        }
    }

    /// Whether `grants` allow a component to link this capability at all.
    pub fn is_granted(self, grants: &Grants) -> bool {
        match self {
            Capability::OutgoingHttp => !grants.outgoing_http.is_empty(),
            Capability::KeyValue => !grants.keyvalue.is_empty(),
            _ => true,
        }
    }

    /// The interface packages weft provides, for error messages.
    pub const PROVIDED: &'static str = "wasi:cli, wasi:io, wasi:clocks, wasi:random, \
        wasi:filesystem, wasi:sockets, wasi:http, wasi:keyvalue, wasi:config, wasi:logging";
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::Wasi => "wasi",
            Capability::HttpTypes => "http",
            Capability::OutgoingHttp => "outgoing-http",
            Capability::KeyValue => "keyvalue",
            Capability::Config => "config",
            Capability::Logging => "logging",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_map_to_capabilities() {
        use Capability::*;
        let cases = [
            ("wasi:cli/environment@0.2.0", Some(Wasi)),
            ("wasi:sockets/tcp@0.2.4", Some(Wasi)),
            ("wasi:http/types@0.2.4", Some(HttpTypes)),
            ("wasi:http/outgoing-handler@0.2.4", Some(OutgoingHttp)),
            ("wasi:keyvalue/atomics@0.2.0-draft", Some(KeyValue)),
            ("wasi:config/store@0.2.0-rc.1", Some(Config)),
            ("wasi:logging/logging", Some(Logging)),
            ("wasi:blobstore/container", None),
            ("demo:hello/greeter", None),
        ];
        for (interface, expected) in cases {
            assert_eq!(
                Capability::for_interface(interface),
                expected,
                "{interface}"
            );
        }
    }

    #[test]
    fn only_keyvalue_and_outgoing_http_need_grants() {
        let none = Grants::default();
        assert!(!Capability::KeyValue.is_granted(&none));
        assert!(!Capability::OutgoingHttp.is_granted(&none));
        assert!(Capability::Config.is_granted(&none));
        let kv = Grants {
            keyvalue: vec!["counts".into()],
            ..Grants::default()
        };
        assert!(Capability::KeyValue.is_granted(&kv));
    }
}
