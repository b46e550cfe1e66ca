//! What a component imports and exports, as plain data.
//!
//! [`World::reflect`] reads a compiled component's type
//! (`Component::component_type()`) once, at load time. Everything after that,
//! resolution in particular, works on these plain values, so it can be
//! unit-tested without compiling any Wasm.
//!
//! A function's [`FuncSig::signature`] is a canonical, WIT-like text of its
//! parameter and result types ("func(u64, u64) -> u64"). Two components agree
//! on a function exactly when the texts are equal; record and variant names do
//! not take part, only their structure, as in the component model itself.

use std::fmt::Write as _;
use wasmtime::Engine;
use wasmtime::component::types::{self, ComponentItem, Type};

/// A component's imports and exports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct World {
    /// Interfaces the component imports, by full name such as `wasi:http/types@0.2.4`.
    pub imports: Vec<Interface>,
    /// Interfaces the component exports.
    pub exports: Vec<Interface>,
    /// Items imported at the top level rather than inside an interface,
    /// which weft cannot route (such as a bare `import f: func()`).
    pub loose_imports: Vec<String>,
}

/// One imported or exported interface (a component instance).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interface {
    /// The full name, such as `demo:hello/greeter@0.1.0`.
    pub name: String,
    /// Its functions, including resource methods (`[method]bucket.get`).
    pub functions: Vec<FuncSig>,
    /// The resource types it declares, such as `bucket`; not those it
    /// `use`s from another interface.
    pub resources: Vec<String>,
}

/// One function of an interface.
#[derive(Debug, Clone, PartialEq)]
pub struct FuncSig {
    /// The function's name inside its interface.
    pub name: String,
    /// Canonical text of its type, such as `func(string) -> result<u64, string>`.
    pub signature: String,
    /// Whether a resource handle appears anywhere in its type: handles
    /// belong to one instance and cannot be copied to another.
    pub has_handles: bool,
    /// Whether a stream, future or error context appears anywhere in its
    /// type: their ends are moved between instances by the host.
    pub has_streams: bool,
    /// Whether it is an `async` function.
    pub is_async: bool,
    /// Why its streams or futures cannot pass between components, if
    /// they cannot (a payload weft cannot carry, an error context).
    pub stream_problem: Option<String>,
    /// The fingerprint that calls of it across processes carry
    /// ([`FuncTypes::fingerprint`](crate::codec::FuncTypes::fingerprint));
    /// none for a function whose values cannot cross.
    pub fingerprint: Option<String>,
}

impl World {
    /// Reads the imports and exports of a compiled component.
    pub fn reflect(engine: &Engine, ty: &types::Component) -> World {
        let mut world = World::default();
        // Resource types met so far: a later interface that `use`s one
        // names the same type again.
        let mut seen = Vec::new();
        for (name, item) in ty.imports(engine) {
            match item.ty {
                ComponentItem::ComponentInstance(inst) => {
                    (world.imports).push(Interface::reflect(engine, name, &inst, &mut seen));
                }
                // Types and resources come along with the interfaces that use them.
                ComponentItem::Type(_) | ComponentItem::Resource(_) => {}
                _ => world.loose_imports.push(name.to_string()),
            }
        }
        for (name, item) in ty.exports(engine) {
            if let ComponentItem::ComponentInstance(inst) = item.ty {
                (world.exports).push(Interface::reflect(engine, name, &inst, &mut seen));
            }
        }
        world
    }

    /// The exported interfaces whose name, versions aside, is `unversioned`:
    /// one, or several when the component exports more than one version.
    pub fn exports_named(&self, unversioned: &str) -> impl Iterator<Item = &Interface> {
        self.exports
            .iter()
            .filter(move |e| crate::manifest::unversioned(&e.name) == unversioned)
    }
}

impl Interface {
    fn reflect(
        engine: &Engine,
        name: &str,
        inst: &types::ComponentInstance,
        seen: &mut Vec<types::ResourceType>,
    ) -> Interface {
        let mut interface = Interface {
            name: name.to_string(),
            ..Interface::default()
        };
        for (item_name, item) in inst.exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(f) => {
                    interface.functions.push(FuncSig::of(item_name, &f));
                }
                ComponentItem::Resource(ty) if !seen.contains(&ty) => {
                    seen.push(ty);
                    interface.resources.push(item_name.to_string());
                }
                _ => {}
            }
        }
        interface
    }

    /// The function called `name`.
    pub fn function(&self, name: &str) -> Option<&FuncSig> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// Whether it holds nothing but plain types (records, variants and the
    /// like), as a `types` interface that others `use` does: such an
    /// interface needs no provider.
    pub fn is_types_only(&self) -> bool {
        self.functions.is_empty() && self.resources.is_empty()
    }
}

/// Whether an import named `import` may be served by an export named
/// `export`, by semver on their versions, as the component model links
/// them: from 1.0 the same major version, before it the same minor (0.1.x),
/// and before 0.1 the same patch. A pre-release matches only itself, and a
/// name with a version never matches one without. The error says why not,
/// in words for a message.
pub fn compatibility(import: &str, export: &str) -> Result<(), &'static str> {
    let version = |name: &str| name.split_once('@').map(|(_, v)| v.to_string());
    let (i, e) = match (version(import), version(export)) {
        (None, None) => return Ok(()),
        (Some(_), None) | (None, Some(_)) => {
            return Err("one name has a version and the other has none");
        }
        (Some(i), Some(e)) => (i, e),
    };
    let (Ok(i), Ok(e)) = (semver::Version::parse(&i), semver::Version::parse(&e)) else {
        return if i == e {
            Ok(())
        } else {
            Err("their versions differ, and are not semver versions to compare")
        };
    };
    if !i.pre.is_empty() || !e.pre.is_empty() {
        return if (i.major, i.minor, i.patch, &i.pre) == (e.major, e.minor, e.patch, &e.pre) {
            Ok(())
        } else {
            Err("a pre-release version is compatible only with itself")
        };
    }
    if i.major != e.major {
        Err("their major versions differ")
    } else if i.major > 0 {
        Ok(())
    } else if i.minor != e.minor {
        Err("before 1.0, a new minor version is a breaking change")
    } else if i.minor > 0 || i.patch == e.patch {
        Ok(())
    } else {
        Err("before 0.1, a new patch version is a breaking change")
    }
}

impl FuncSig {
    /// Describes a function type.
    pub fn of(name: &str, f: &types::ComponentFunc) -> FuncSig {
        let mut text = String::from(if f.async_() { "async func(" } else { "func(" });
        let mut holds = Holds::NOTHING;
        for (i, (_, ty)) in f.params().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            holds |= describe(&mut text, &ty);
        }
        text.push(')');
        for (i, ty) in f.results().enumerate() {
            text.push_str(if i == 0 { " -> " } else { ", " });
            holds |= describe(&mut text, &ty);
        }
        FuncSig {
            name: name.to_string(),
            signature: text,
            has_handles: holds.resources,
            has_streams: holds.streams,
            is_async: f.async_(),
            stream_problem: holds
                .streams
                .then(|| {
                    let types = f.params().map(|(_, t)| t).chain(f.results()).collect();
                    crate::link::pipes::Ends::of(types).err()
                })
                .flatten(),
            fingerprint: crate::codec::FuncTypes::of(f)
                .ok()
                .map(|types| types.fingerprint()),
        }
    }
}

/// What a type holds that belongs to one instance: resource handles, and
/// streams, futures or error contexts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Holds {
    resources: bool,
    streams: bool,
}

impl Holds {
    const NOTHING: Holds = Holds {
        resources: false,
        streams: false,
    };
    const RESOURCE: Holds = Holds {
        resources: true,
        streams: false,
    };
    const STREAM: Holds = Holds {
        resources: false,
        streams: true,
    };
}

impl std::ops::BitOrAssign for Holds {
    fn bitor_assign(&mut self, other: Holds) {
        self.resources |= other.resources;
        self.streams |= other.streams;
    }
}

/// The canonical text of `ty`, such as `record { a: u64 }`.
pub(crate) fn type_text(ty: &Type) -> String {
    let mut out = String::new();
    describe(&mut out, ty);
    out
}

/// Appends the canonical text of `ty` to `out`; returns what it holds.
fn describe(out: &mut String, ty: &Type) -> Holds {
    let simple = |out: &mut String, name: &str| {
        out.push_str(name);
        Holds::NOTHING
    };
    match ty {
        Type::Bool => simple(out, "bool"),
        Type::S8 => simple(out, "s8"),
        Type::U8 => simple(out, "u8"),
        Type::S16 => simple(out, "s16"),
        Type::U16 => simple(out, "u16"),
        Type::S32 => simple(out, "s32"),
        Type::U32 => simple(out, "u32"),
        Type::S64 => simple(out, "s64"),
        Type::U64 => simple(out, "u64"),
        Type::Float32 => simple(out, "f32"),
        Type::Float64 => simple(out, "f64"),
        Type::Char => simple(out, "char"),
        Type::String => simple(out, "string"),
        Type::ErrorContext => {
            out.push_str("error-context");
            Holds::STREAM
        }
        Type::List(l) => wrap(out, "list", [Some(l.ty())]),
        Type::FixedLengthList(l) => {
            let handles = wrap(out, "list", [Some(l.ty())]);
            out.pop();
            let _ = write!(out, ", {}>", l.len());
            handles
        }
        Type::Map(m) => wrap(out, "map", [Some(m.key()), Some(m.value())]),
        Type::Option(o) => wrap(out, "option", [Some(o.ty())]),
        Type::Result(r) => wrap(out, "result", [r.ok(), r.err()]),
        Type::Tuple(t) => wrap(out, "tuple", t.types().map(Some)),
        Type::Record(r) => {
            out.push_str("record { ");
            let mut handles = Holds::NOTHING;
            for (i, field) in r.fields().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}: ", field.name);
                handles |= describe(out, &field.ty);
            }
            out.push_str(" }");
            handles
        }
        Type::Variant(v) => {
            out.push_str("variant { ");
            let mut handles = Holds::NOTHING;
            for (i, case) in v.cases().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(case.name);
                if let Some(ty) = &case.ty {
                    out.push('(');
                    handles |= describe(out, ty);
                    out.push(')');
                }
            }
            out.push_str(" }");
            handles
        }
        Type::Enum(e) => {
            let _ = write!(
                out,
                "enum {{ {} }}",
                e.names().collect::<Vec<_>>().join(", ")
            );
            Holds::NOTHING
        }
        Type::Flags(f) => {
            let _ = write!(
                out,
                "flags {{ {} }}",
                f.names().collect::<Vec<_>>().join(", ")
            );
            Holds::NOTHING
        }
        Type::Own(_) => {
            out.push_str("own<resource>");
            Holds::RESOURCE
        }
        Type::Borrow(_) => {
            out.push_str("borrow<resource>");
            Holds::RESOURCE
        }
        Type::Future(f) => {
            wrap(out, "future", [f.ty()]);
            Holds::STREAM
        }
        Type::Stream(s) => {
            wrap(out, "stream", [s.ty()]);
            Holds::STREAM
        }
    }
}

/// `name<a, b>`, where a missing type prints as `_`.
fn wrap(out: &mut String, name: &str, args: impl IntoIterator<Item = Option<Type>>) -> Holds {
    out.push_str(name);
    out.push('<');
    let mut handles = Holds::NOTHING;
    for (i, arg) in args.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match arg {
            Some(ty) => handles |= describe(out, &ty),
            None => out.push('_'),
        }
    }
    out.push('>');
    handles
}
