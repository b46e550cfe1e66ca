//! The value codec: a compact, type-directed binary encoding of
//! component-model values, for calls that cross a process boundary.
//!
//! Both sides know the type from the same WIT, so the bytes carry no tags and
//! no field names, only the values:
//!
//! | type | bytes |
//! |---|---|
//! | `bool`, `u8`, `s8` | one byte |
//! | other integers, `char` | LEB128 varint (signed ones zigzag-encoded first) |
//! | `f32`, `f64` | 4 or 8 bytes, little-endian |
//! | `string` | varint length, then UTF-8 |
//! | `list<T>`, `map<K, V>` | varint count, then the elements (`list<u8>` as raw bytes) |
//! | `list<T, N>` | the N elements |
//! | `record`, `tuple` | the fields in order |
//! | `variant`, `enum` | varint case index, then the payload if the case has one |
//! | `option<T>`, `result<T, E>` | one byte (0 = none / ok, 1 = some / err), then the payload |
//! | `flags` | one bit per flag, in declaration order, in `ceil(n / 8)` bytes |
//!
//! [`decode`] never trusts the bytes: every length is checked against what
//! remains before anything is allocated, so hostile input fails with a
//! [`DecodeError`] instead of panicking, looping or allocating without bound.
//! | `own<T>`, `borrow<T>` | varint: the handle's number at the resource's keeper |
//!
//! | `stream<T>`, `future<T>` | one byte, 0; the ends travel beside the call, as frames of their own |
//!
//! Error contexts belong to one instance and have no encoding;
//! [`ValueType::of`] refuses them. A stream or future decodes as a
//! placeholder, where [`crate::link::pipes`] puts the new end. A handle travels as the number
//! its keeper gave it: the values hold that number as a `u64` where the
//! type says `own` or `borrow`, and [`crate::link::handles`] swaps handles
//! for numbers before encoding and back after decoding.
//!
//! [`ValueType::of`] is the one walk over wasmtime's types that the call
//! path makes: the wire format follows its [`ValueType`]s, the typed path
//! ([`crate::link::typed`]) is chosen from them, and so is a function's
//! [`FuncTypes::fingerprint`], which also hashes [`CODEC_VERSION`], so that
//! two processes whose codecs differ refuse each other's calls instead of
//! misreading them.

use std::fmt;
use wasmtime::component::Val;
use wasmtime::component::types::{ComponentFunc, Type};

/// A component-model value type, as the codec needs it: plain data, built
/// once per function from wasmtime's [`Type`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueType {
    /// `bool`
    Bool,
    /// `s8`
    S8,
    /// `u8`
    U8,
    /// `s16`
    S16,
    /// `u16`
    U16,
    /// `s32`
    S32,
    /// `u32`
    U32,
    /// `s64`
    S64,
    /// `u64`
    U64,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `char`
    Char,
    /// `string`
    String,
    /// `list<T>`
    List(Box<ValueType>),
    /// `list<T, N>`
    FixedList(Box<ValueType>, u32),
    /// `map<K, V>`
    Map(Box<ValueType>, Box<ValueType>),
    /// `record { .. }`: field names and types, in order.
    Record(Vec<(String, ValueType)>),
    /// `tuple<..>`
    Tuple(Vec<ValueType>),
    /// `variant { .. }`: case names and payload types, in order.
    Variant(Vec<(String, Option<ValueType>)>),
    /// `enum { .. }`
    Enum(Vec<String>),
    /// `option<T>`
    Option(Box<ValueType>),
    /// `result<T, E>`, either side possibly without a payload.
    Result(Option<Box<ValueType>>, Option<Box<ValueType>>),
    /// `flags { .. }`
    Flags(Vec<String>),
    /// `own<T>`: a handle that hands its resource over. On the wire it is
    /// the number that the resource's keeper gave it, as a varint; the
    /// value is that number as a `u64` (see [`crate::link::handles`]).
    Own,
    /// `borrow<T>`: a handle lent for one call, encoded as [`ValueType::Own`].
    Borrow,
    /// `stream<T>`: no bytes; its items follow the call as frames of their
    /// own (`link::pipes`), and the decoded value is a placeholder where
    /// the stream's new end goes.
    Stream(Box<ValueType>),
    /// `future<T>`: as a stream, with one frame.
    Future(Box<ValueType>),
}

/// A type that has no encoding because it belongs to one instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {0} cannot be copied to another process")]
pub struct Unencodable(pub &'static str);

/// Why a value could not be encoded: it does not match its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode value: expected {expected}, found {found}")]
pub struct EncodeError {
    /// What the type wanted.
    pub expected: String,
    /// What the value was.
    pub found: String,
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes ended inside a value.
    #[error("the payload ends in the middle of a value")]
    Truncated,
    /// Bytes were left over after the last value.
    #[error("{0} byte(s) left over after the last value")]
    Trailing(usize),
    /// A length, count, index or scalar is out of range.
    #[error("invalid payload: {0}")]
    Invalid(String),
}

/// The version of this wire format, part of every fingerprint; raise it
/// with any change to how a value is encoded.
pub const CODEC_VERSION: u32 = 1;

/// At most this many elements of a type that encodes to zero bytes (such
/// as `tuple<>`) are accepted in one list, since no byte count bounds them.
pub const MAX_EMPTY_ELEMENTS: u64 = 1 << 16;

impl ValueType {
    /// The codec's view of a wasmtime type.
    pub fn of(ty: &Type) -> Result<ValueType, Unencodable> {
        let boxed = |t: &Type| ValueType::of(t).map(Box::new);
        Ok(match ty {
            Type::Bool => ValueType::Bool,
            Type::S8 => ValueType::S8,
            Type::U8 => ValueType::U8,
            Type::S16 => ValueType::S16,
            Type::U16 => ValueType::U16,
            Type::S32 => ValueType::S32,
            Type::U32 => ValueType::U32,
            Type::S64 => ValueType::S64,
            Type::U64 => ValueType::U64,
            Type::Float32 => ValueType::F32,
            Type::Float64 => ValueType::F64,
            Type::Char => ValueType::Char,
            Type::String => ValueType::String,
            Type::List(l) => ValueType::List(boxed(&l.ty())?),
            Type::FixedLengthList(l) => ValueType::FixedList(boxed(&l.ty())?, l.len()),
            Type::Map(m) => ValueType::Map(boxed(&m.key())?, boxed(&m.value())?),
            Type::Record(r) => ValueType::Record(
                r.fields()
                    .map(|f| Ok((f.name.to_string(), ValueType::of(&f.ty)?)))
                    .collect::<Result<_, Unencodable>>()?,
            ),
            Type::Tuple(t) => ValueType::Tuple(
                t.types()
                    .map(|t| ValueType::of(&t))
                    .collect::<Result<_, _>>()?,
            ),
            Type::Variant(v) => ValueType::Variant(
                v.cases()
                    .map(|c| {
                        Ok((
                            c.name.to_string(),
                            c.ty.as_ref().map(ValueType::of).transpose()?,
                        ))
                    })
                    .collect::<Result<_, Unencodable>>()?,
            ),
            Type::Enum(e) => ValueType::Enum(e.names().map(str::to_string).collect()),
            Type::Option(o) => ValueType::Option(boxed(&o.ty())?),
            Type::Result(r) => ValueType::Result(
                r.ok().as_ref().map(boxed).transpose()?,
                r.err().as_ref().map(boxed).transpose()?,
            ),
            Type::Flags(f) => ValueType::Flags(f.names().map(str::to_string).collect()),
            Type::Own(_) => ValueType::Own,
            Type::Borrow(_) => ValueType::Borrow,
            Type::Future(f) => match f.ty() {
                Some(t) => ValueType::Future(boxed(&t)?),
                None => return Err(Unencodable("future without a payload")),
            },
            Type::Stream(s) => match s.ty() {
                Some(t) => ValueType::Stream(boxed(&t)?),
                None => return Err(Unencodable("stream without a payload")),
            },
            Type::ErrorContext => return Err(Unencodable("error-context")),
        })
    }

    /// Appends the canonical text of the type, names included, such as
    /// `record { id: u64, text: string }`.
    pub fn write_canonical(&self, out: &mut String) {
        use std::fmt::Write as _;
        let list = |out: &mut String, name: &str, types: &[&ValueType]| {
            out.push_str(name);
            out.push('<');
            for (i, t) in types.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                t.write_canonical(out);
            }
            out.push('>');
        };
        let optional = |out: &mut String, t: &Option<Box<ValueType>>| match t {
            Some(t) => t.write_canonical(out),
            None => out.push('_'),
        };
        match self {
            ValueType::List(t) => list(out, "list", &[t]),
            ValueType::FixedList(t, n) => {
                list(out, "list", &[t]);
                out.pop();
                let _ = write!(out, ", {n}>");
            }
            ValueType::Map(k, v) => list(out, "map", &[k, v]),
            ValueType::Option(t) => list(out, "option", &[t]),
            ValueType::Stream(t) => list(out, "stream", &[t]),
            ValueType::Future(t) => list(out, "future", &[t]),
            ValueType::Tuple(types) => list(out, "tuple", &types.iter().collect::<Vec<_>>()),
            ValueType::Result(ok, err) => {
                out.push_str("result<");
                optional(out, ok);
                out.push_str(", ");
                optional(out, err);
                out.push('>');
            }
            ValueType::Record(fields) => {
                out.push_str("record { ");
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{name}: ");
                    t.write_canonical(out);
                }
                out.push_str(" }");
            }
            ValueType::Variant(cases) => {
                out.push_str("variant { ");
                for (i, (name, t)) in cases.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(name);
                    if let Some(t) = t {
                        out.push('(');
                        t.write_canonical(out);
                        out.push(')');
                    }
                }
                out.push_str(" }");
            }
            ValueType::Enum(names) => {
                let _ = write!(out, "enum {{ {} }}", names.join(", "));
            }
            ValueType::Flags(names) => {
                let _ = write!(out, "flags {{ {} }}", names.join(", "));
            }
            scalar => out.push_str(kind(scalar)),
        }
    }

    /// The fewest bytes any value of this type encodes to.
    pub fn min_size(&self) -> u64 {
        match self {
            ValueType::Record(fields) => fields.iter().map(|(_, t)| t.min_size()).sum(),
            ValueType::Tuple(types) => types.iter().map(ValueType::min_size).sum(),
            ValueType::FixedList(t, n) => t.min_size().saturating_mul(u64::from(*n)),
            ValueType::Flags(names) => names.len().div_ceil(8) as u64,
            ValueType::F32 => 4,
            ValueType::F64 => 8,
            _ => 1,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", kind(self))
    }
}

fn kind(ty: &ValueType) -> &'static str {
    match ty {
        ValueType::Bool => "bool",
        ValueType::S8 => "s8",
        ValueType::U8 => "u8",
        ValueType::S16 => "s16",
        ValueType::U16 => "u16",
        ValueType::S32 => "s32",
        ValueType::U32 => "u32",
        ValueType::S64 => "s64",
        ValueType::U64 => "u64",
        ValueType::F32 => "f32",
        ValueType::F64 => "f64",
        ValueType::Char => "char",
        ValueType::String => "string",
        ValueType::List(_) => "list",
        ValueType::FixedList(..) => "fixed-length list",
        ValueType::Map(..) => "map",
        ValueType::Record(_) => "record",
        ValueType::Tuple(_) => "tuple",
        ValueType::Variant(_) => "variant",
        ValueType::Enum(_) => "enum",
        ValueType::Option(_) => "option",
        ValueType::Result(..) => "result",
        ValueType::Flags(_) => "flags",
        ValueType::Own => "own",
        ValueType::Borrow => "borrow",
        ValueType::Stream(_) => "stream",
        ValueType::Future(_) => "future",
    }
}

fn val_kind(v: &Val) -> String {
    let name = match v {
        Val::Bool(_) => "bool",
        Val::S8(_) => "s8",
        Val::U8(_) => "u8",
        Val::S16(_) => "s16",
        Val::U16(_) => "u16",
        Val::S32(_) => "s32",
        Val::U32(_) => "u32",
        Val::S64(_) => "s64",
        Val::U64(_) => "u64",
        Val::Float32(_) => "f32",
        Val::Float64(_) => "f64",
        Val::Char(_) => "char",
        Val::String(_) => "string",
        Val::List(_) => "list",
        Val::FixedLengthList(_) => "fixed-length list",
        Val::Map(_) => "map",
        Val::Record(_) => "record",
        Val::Tuple(_) => "tuple",
        Val::Variant(..) => "variant",
        Val::Enum(_) => "enum",
        Val::Option(_) => "option",
        Val::Result(_) => "result",
        Val::Flags(_) => "flags",
        Val::Resource(_) => "resource",
        Val::Future(_) => "future",
        Val::Stream(_) => "stream",
        Val::ErrorContext(_) => "error-context",
    };
    name.to_string()
}

/// Where encoded bytes go: a buffer, or a [`Tally`] that only counts them.
pub trait Out {
    /// Appends one byte.
    fn push(&mut self, byte: u8);
    /// Appends `bytes`.
    fn extend_from_slice(&mut self, bytes: &[u8]);
}

impl Out for Vec<u8> {
    fn push(&mut self, byte: u8) {
        Vec::push(self, byte);
    }
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        Vec::extend_from_slice(self, bytes);
    }
}

/// Counts the bytes an encoding would take, without writing them: the
/// size of a call's values, which the metrics report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally(pub u64);

impl Out for Tally {
    fn push(&mut self, _byte: u8) {
        self.0 += 1;
    }
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.0 += bytes.len() as u64;
    }
}

/// How many bytes [`encode_all`] would write for `values`.
pub fn encoded_len(types: &[ValueType], values: &[Val]) -> Result<u64, EncodeError> {
    let mut tally = Tally::default();
    encode_all(types, values, &mut tally)?;
    Ok(tally.0)
}

/// Appends the encoding of `value`, of type `ty`, to `out`.
pub fn encode(ty: &ValueType, value: &Val, out: &mut impl Out) -> Result<(), EncodeError> {
    let mismatch = || EncodeError {
        expected: ty.to_string(),
        found: val_kind(value),
    };
    match (ty, value) {
        (ValueType::Bool, Val::Bool(b)) => out.push(u8::from(*b)),
        (ValueType::S8, Val::S8(n)) => out.push(*n as u8),
        (ValueType::U8, Val::U8(n)) => out.push(*n),
        (ValueType::S16, Val::S16(n)) => put_signed(out, i64::from(*n)),
        (ValueType::U16, Val::U16(n)) => put_varint(out, u64::from(*n)),
        (ValueType::S32, Val::S32(n)) => put_signed(out, i64::from(*n)),
        (ValueType::U32, Val::U32(n)) => put_varint(out, u64::from(*n)),
        (ValueType::S64, Val::S64(n)) => put_signed(out, *n),
        (ValueType::U64 | ValueType::Own | ValueType::Borrow, Val::U64(n)) => put_varint(out, *n),
        // A marker byte; the ends travel beside the call.
        (ValueType::Stream(_), Val::Stream(_)) | (ValueType::Future(_), Val::Future(_)) => {
            out.push(0)
        }
        (ValueType::F32, Val::Float32(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (ValueType::F64, Val::Float64(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (ValueType::Char, Val::Char(c)) => put_varint(out, u64::from(*c)),
        (ValueType::String, Val::String(s)) => {
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        (ValueType::List(elem), Val::List(items)) => {
            put_varint(out, items.len() as u64);
            if **elem == ValueType::U8 {
                for item in items {
                    match item {
                        Val::U8(b) => out.push(*b),
                        other => {
                            return Err(EncodeError {
                                expected: "u8".into(),
                                found: val_kind(other),
                            });
                        }
                    }
                }
            } else {
                for item in items {
                    encode(elem, item, out)?;
                }
            }
        }
        (ValueType::FixedList(elem, n), Val::FixedLengthList(items)) => {
            if items.len() as u64 != u64::from(*n) {
                return Err(EncodeError {
                    expected: format!("list of exactly {n} elements"),
                    found: format!("{} elements", items.len()),
                });
            }
            for item in items {
                encode(elem, item, out)?;
            }
        }
        (ValueType::Map(k, v), Val::Map(pairs)) => {
            put_varint(out, pairs.len() as u64);
            for (key, value) in pairs {
                encode(k, key, out)?;
                encode(v, value, out)?;
            }
        }
        (ValueType::Record(fields), Val::Record(values)) => {
            if fields.len() != values.len() {
                return Err(mismatch());
            }
            for ((name, t), (vname, v)) in fields.iter().zip(values) {
                if name != vname {
                    return Err(EncodeError {
                        expected: format!("field '{name}'"),
                        found: format!("field '{vname}'"),
                    });
                }
                encode(t, v, out)?;
            }
        }
        (ValueType::Tuple(types), Val::Tuple(values)) => encode_all(types, values, out)?,
        (ValueType::Variant(cases), Val::Variant(name, payload)) => {
            let names = cases.iter().map(|(c, _)| c);
            let index = position(names, name, "a case of the variant", "case")?;
            put_varint(out, index as u64);
            encode_payload(cases[index].1.as_ref(), payload.as_deref(), out, mismatch)?;
        }
        (ValueType::Enum(names), Val::Enum(name)) => {
            let index = position(names.iter(), name, "a case of the enum", "case")?;
            put_varint(out, index as u64);
        }
        (ValueType::Option(t), Val::Option(v)) => match v {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                encode(t, v, out)?;
            }
        },
        (ValueType::Result(ok, err), Val::Result(v)) => {
            let (tag, t, v) = match v {
                Ok(v) => (0, ok, v),
                Err(v) => (1, err, v),
            };
            out.push(tag);
            encode_payload(t.as_deref(), v.as_deref(), out, mismatch)?;
        }
        (ValueType::Flags(names), Val::Flags(set)) => {
            let mut bits = vec![0u8; names.len().div_ceil(8)];
            for flag in set {
                let i = position(names.iter(), flag, "a flag of the type", "flag")?;
                bits[i / 8] |= 1 << (i % 8);
            }
            out.extend_from_slice(&bits);
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// Where `name` is among `names`; `expected` and `what` describe a miss.
fn position<'a>(
    names: impl Iterator<Item = &'a String>,
    name: &str,
    expected: &str,
    what: &str,
) -> Result<usize, EncodeError> {
    names
        .into_iter()
        .position(|n| n == name)
        .ok_or_else(|| EncodeError {
            expected: expected.into(),
            found: format!("{what} '{name}'"),
        })
}

/// Encodes the payload of a variant case or result side: both or neither
/// of the type and the value must be there.
fn encode_payload(
    ty: Option<&ValueType>,
    value: Option<&Val>,
    out: &mut impl Out,
    mismatch: impl Fn() -> EncodeError,
) -> Result<(), EncodeError> {
    match (ty, value) {
        (Some(t), Some(v)) => encode(t, v, out),
        (None, None) => Ok(()),
        _ => Err(mismatch()),
    }
}

/// The parameter and result types of a function, as the codec sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncTypes {
    /// The parameters, in order.
    pub params: Vec<ValueType>,
    /// The results, in order.
    pub results: Vec<ValueType>,
}

impl FuncTypes {
    /// The codec's view of a wasmtime function type.
    pub fn of(func: &ComponentFunc) -> Result<FuncTypes, Unencodable> {
        Ok(FuncTypes {
            params: func
                .params()
                .map(|(_, t)| ValueType::of(&t))
                .collect::<Result<_, _>>()?,
            results: func
                .results()
                .map(|t| ValueType::of(&t))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl FuncTypes {
    /// The fingerprint of the function's type: a hash of the codec's
    /// version and the canonical text of its parameter and result types,
    /// such as `func(u64, u64) -> u64`. Caller and callee compute it from
    /// their own view of the WIT, and a call whose fingerprint is not the
    /// callee's is refused.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut text = format!("weft codec {CODEC_VERSION}\nfunc(");
        for (i, t) in self.params.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            t.write_canonical(&mut text);
        }
        text.push(')');
        for (i, t) in self.results.iter().enumerate() {
            text.push_str(if i == 0 { " -> " } else { ", " });
            t.write_canonical(&mut text);
        }
        crate::version::hex(&Sha256::digest(text.as_bytes())[..8])
    }
}

/// Appends the encodings of `values`, one for each of `types`, in order:
/// the bytes of a tuple of them, without building the tuple.
pub fn encode_all(
    types: &[ValueType],
    values: &[Val],
    out: &mut impl Out,
) -> Result<(), EncodeError> {
    if types.len() != values.len() {
        return Err(EncodeError {
            expected: format!("{} value(s)", types.len()),
            found: format!("{} value(s)", values.len()),
        });
    }
    for (ty, value) in types.iter().zip(values) {
        encode(ty, value, out)?;
    }
    Ok(())
}

/// Decodes one value for each of `types` from all of `bytes`, as
/// [`encode_all`] wrote them.
pub fn decode_all(types: &[ValueType], bytes: &[u8]) -> Result<Vec<Val>, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    let values = types
        .iter()
        .map(|ty| reader.value(ty))
        .collect::<Result<Vec<_>, _>>()?;
    match bytes.len() - reader.at {
        0 => Ok(values),
        n => Err(DecodeError::Trailing(n)),
    }
}

/// Decodes exactly one value of type `ty` from all of `bytes`.
pub fn decode(ty: &ValueType, bytes: &[u8]) -> Result<Val, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    let value = reader.value(ty)?;
    match bytes.len() - reader.at {
        0 => Ok(value),
        n => Err(DecodeError::Trailing(n)),
    }
}

fn put_varint(out: &mut impl Out, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_signed(out: &mut impl Out, n: i64) {
    put_varint(out, ((n << 1) ^ (n >> 63)) as u64);
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn invalid(message: impl Into<String>) -> DecodeError {
    DecodeError::Invalid(message.into())
}

impl Reader<'_> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.at) as u64
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if (n as u64) > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(invalid("varint overflows 64 bits"));
            }
            n |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(invalid("varint longer than 10 bytes"))
    }

    fn signed(&mut self) -> Result<i64, DecodeError> {
        let z = self.varint()?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    fn narrow<T: TryFrom<u64>>(&mut self, what: &str) -> Result<T, DecodeError> {
        let n = self.varint()?;
        T::try_from(n).map_err(|_| invalid(format!("{n} is out of range for {what}")))
    }

    fn narrow_signed<T: TryFrom<i64>>(&mut self, what: &str) -> Result<T, DecodeError> {
        let n = self.signed()?;
        T::try_from(n).map_err(|_| invalid(format!("{n} is out of range for {what}")))
    }

    /// A count of elements of type `elem`, checked against the bytes left.
    fn count(&mut self, elem_min: u64) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        let fits = match elem_min {
            0 => n <= MAX_EMPTY_ELEMENTS,
            size => n
                .checked_mul(size)
                .is_some_and(|need| need <= self.remaining()),
        };
        if !fits {
            return Err(if elem_min == 0 {
                invalid(format!("{n} empty elements"))
            } else {
                DecodeError::Truncated
            });
        }
        usize::try_from(n).map_err(|_| DecodeError::Truncated)
    }

    fn index(&mut self, len: usize, what: &str) -> Result<usize, DecodeError> {
        let i = self.varint()?;
        usize::try_from(i)
            .ok()
            .filter(|i| *i < len)
            .ok_or_else(|| invalid(format!("{what} index {i} is out of range (0..{len})")))
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(invalid(format!("{b} is not 0 or 1"))),
        }
    }

    fn value(&mut self, ty: &ValueType) -> Result<Val, DecodeError> {
        Ok(match ty {
            ValueType::Bool => Val::Bool(self.flag()?),
            ValueType::S8 => Val::S8(self.byte()? as i8),
            ValueType::U8 => Val::U8(self.byte()?),
            ValueType::S16 => Val::S16(self.narrow_signed("s16")?),
            ValueType::U16 => Val::U16(self.narrow("u16")?),
            ValueType::S32 => Val::S32(self.narrow_signed("s32")?),
            ValueType::U32 => Val::U32(self.narrow("u32")?),
            ValueType::S64 => Val::S64(self.signed()?),
            ValueType::U64 | ValueType::Own | ValueType::Borrow => Val::U64(self.varint()?),
            // A placeholder: `link::pipes::put_in` puts the new end there.
            ValueType::Stream(_) | ValueType::Future(_) => match self.byte()? {
                0 => Val::Bool(false),
                other => return Err(invalid(format!("stream or future marker {other}"))),
            },
            ValueType::F32 => Val::Float32(f32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            ValueType::F64 => Val::Float64(f64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            ValueType::Char => {
                let n: u32 = self.narrow("char")?;
                Val::Char(
                    char::from_u32(n)
                        .ok_or_else(|| invalid(format!("{n:#x} is not a Unicode scalar value")))?,
                )
            }
            ValueType::String => {
                let len = self.count(1)?;
                let text = std::str::from_utf8(self.take(len)?)
                    .map_err(|e| invalid(format!("string is not UTF-8: {e}")))?;
                Val::String(text.to_string())
            }
            ValueType::List(elem) => {
                let n = self.count(elem.min_size())?;
                if **elem == ValueType::U8 {
                    Val::List(self.take(n)?.iter().map(|b| Val::U8(*b)).collect())
                } else {
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.value(elem)?);
                    }
                    Val::List(items)
                }
            }
            ValueType::FixedList(elem, n) => {
                if elem.min_size().saturating_mul(u64::from(*n)) > self.remaining() {
                    return Err(DecodeError::Truncated);
                }
                let mut items = Vec::with_capacity(*n as usize);
                for _ in 0..*n {
                    items.push(self.value(elem)?);
                }
                Val::FixedLengthList(items)
            }
            ValueType::Map(k, v) => {
                let n = self.count(k.min_size() + v.min_size())?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    pairs.push((self.value(k)?, self.value(v)?));
                }
                Val::Map(pairs)
            }
            ValueType::Record(fields) => Val::Record(
                fields
                    .iter()
                    .map(|(name, t)| Ok((name.clone(), self.value(t)?)))
                    .collect::<Result<_, DecodeError>>()?,
            ),
            ValueType::Tuple(types) => Val::Tuple(
                types
                    .iter()
                    .map(|t| self.value(t))
                    .collect::<Result<_, _>>()?,
            ),
            ValueType::Variant(cases) => {
                let i = self.index(cases.len(), "variant case")?;
                let (name, payload) = &cases[i];
                let payload = match payload {
                    Some(t) => Some(Box::new(self.value(t)?)),
                    None => None,
                };
                Val::Variant(name.clone(), payload)
            }
            ValueType::Enum(names) => {
                Val::Enum(names[self.index(names.len(), "enum case")?].clone())
            }
            ValueType::Option(t) => Val::Option(if self.flag()? {
                Some(Box::new(self.value(t)?))
            } else {
                None
            }),
            ValueType::Result(ok, err) => {
                let is_err = self.flag()?;
                let side = if is_err { err } else { ok };
                let payload = match side {
                    Some(t) => Some(Box::new(self.value(t)?)),
                    None => None,
                };
                Val::Result(if is_err { Err(payload) } else { Ok(payload) })
            }
            ValueType::Flags(names) => {
                let bits = self.take(names.len().div_ceil(8))?;
                let mut set = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    if bits[i / 8] & (1 << (i % 8)) != 0 {
                        set.push(name.clone());
                    }
                }
                let unused = names.len() % 8;
                if unused != 0 && bits[bits.len() - 1] >> unused != 0 {
                    return Err(invalid("flags set beyond the last flag"));
                }
                Val::Flags(set)
            }
        })
    }
}

pub(crate) mod typed;

#[cfg(test)]
mod tests;
