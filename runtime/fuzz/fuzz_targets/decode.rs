//! Fuzzes the value codec's decoder with hostile bytes.
//!
//! The input's first bytes describe a type (one byte picks a kind; compound
//! kinds read their parts from the bytes after it), and the rest is the
//! payload. Decoding must never panic, hang or allocate without bound; a
//! value it accepts must encode and decode to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_runtime::codec::{ValueType, decode, encode};

/// Reads a type from the front of `bytes`, at most `depth` levels deep.
fn read_type(bytes: &mut &[u8], depth: u32) -> ValueType {
    let mut next = || {
        let (first, rest) = bytes.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        *bytes = rest;
        first
    };
    let kind = next();
    let kinds = if depth == 0 { 13 } else { 23 };
    let n = usize::from(next() % 5);
    let names = |prefix: &str| (0..=n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
    let inner = |bytes: &mut &[u8]| Box::new(read_type(bytes, depth - 1));
    match kind % kinds {
        0 => ValueType::Bool,
        1 => ValueType::S8,
        2 => ValueType::U8,
        3 => ValueType::S16,
        4 => ValueType::U16,
        5 => ValueType::S32,
        6 => ValueType::U32,
        7 => ValueType::S64,
        8 => ValueType::U64,
        9 => ValueType::F32,
        10 => ValueType::F64,
        11 => ValueType::Char,
        12 => ValueType::String,
        13 => ValueType::List(inner(bytes)),
        14 => ValueType::Record(names("f").into_iter().map(|f| (f, *inner(bytes))).collect()),
        15 => ValueType::Tuple((0..n).map(|_| *inner(bytes)).collect()),
        16 => ValueType::Variant(
            names("c")
                .into_iter()
                .enumerate()
                .map(|(i, c)| (c, (i % 2 == 0).then(|| *inner(bytes))))
                .collect(),
        ),
        17 => ValueType::Enum(names("e")),
        18 => ValueType::Option(inner(bytes)),
        19 => ValueType::Result(Some(inner(bytes)), (n % 2 == 0).then(|| inner(bytes))),
        20 => ValueType::Flags((0..n * 5).map(|i| format!("flag{i}")).collect()),
        21 => ValueType::FixedList(inner(bytes), n as u32),
        _ => ValueType::Map(inner(bytes), inner(bytes)),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data;
    let ty = read_type(&mut bytes, 4);
    if let Ok(value) = decode(&ty, bytes) {
        let mut again = Vec::new();
        encode(&ty, &value, &mut again).expect("a decoded value encodes");
        let back = decode(&ty, &again).expect("an encoded value decodes");
        assert_eq!(format!("{back:?}"), format!("{value:?}"));
    }
});
